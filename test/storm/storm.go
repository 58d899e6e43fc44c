package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
)

// The stack the storm's instances signal: an Auto Scaling group whose CreationPolicy
// waits for one SUCCESS from each of them.
const (
	stackName = "storm"
	logicalID = "ECSAutoScalingGroup"
	region    = "us-east-1"
)

// config is one storm.
type config struct {
	// N instances signal at once.
	N int
	// Rate and Burst are the account's request rate, enforced by the stand-in.
	Rate  float64
	Burst int
	// Budget is each signal's time budget (cfnsignal.Options.Timeout); 0 means
	// cfnsignal.DefaultTimeout.
	Budget time.Duration
	// BaseBackoff and MaxBackoff, when set, replace the client's defaults (tests).
	BaseBackoff, MaxBackoff time.Duration
}

// outcome is one instance's signal.
type outcome struct {
	uniqueID string
	took     time.Duration // from the storm's start to Send's return
	err      error         // nil: delivered
}

// run starts the stand-in on loopback and n in-process senders, each a real
// cfnsignal.Client of its own (its own connections, its own retries), all started
// at once, and returns what happened. The environment must hold the credentials the
// clients sign with (see isolate).
func run(ctx context.Context, c config) (report, error) {
	if c.N < 1 || c.Rate < 0 || c.Burst < 0 {
		return report{}, fmt.Errorf("storm: N %d must be at least 1, rate %v and burst %d not negative", c.N, c.Rate, c.Burst)
	}
	if c.Budget == 0 {
		c.Budget = cfnsignal.DefaultTimeout
	}
	cfn, err := cfnsignaltest.New(cfnsignaltest.Config{Region: region, Rate: c.Rate, Burst: c.Burst,
		Stacks: []cfnsignaltest.Stack{cfnsignaltest.Waiting(stackName, logicalID, c.N)}})
	if err != nil {
		return report{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // loopback only
	if err != nil {
		return report{}, fmt.Errorf("storm: listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: cfn, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	endpoint := "http://" + ln.Addr().String()

	outcomes := make([]outcome, c.N)
	start := make(chan struct{})
	var t0 time.Time
	var wg sync.WaitGroup
	for i := range c.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outcomes[i]
			o.uniqueID = fmt.Sprintf("i-%017x", i+1)
			client, err := cfnsignal.New(ctx, cfnsignal.Options{Region: region, Endpoint: endpoint, Timeout: c.Budget,
				BaseBackoff: c.BaseBackoff, MaxBackoff: c.MaxBackoff})
			<-start
			if err == nil {
				err = client.Send(ctx, cfnsignal.Signal{StackName: stackName, LogicalResourceID: logicalID,
					UniqueID: o.uniqueID, Status: cfnsignal.Success})
			}
			o.took, o.err = time.Since(t0), err
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)

	st, _ := cfn.Stack(stackName)
	return summarize(c, outcomes, cfn.Requests(), cfn.MaxInFlight(), st.Status, elapsed), nil
}

// kindOf names the kind of a Send's error, for the report.
func kindOf(err error) string {
	for _, k := range []error{cfnsignal.ErrNotAwaited, cfnsignal.ErrPermanent, cfnsignal.ErrRetriesExhausted, cfnsignal.ErrTimeout, cfnsignal.ErrInvalid} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return "other"
}
