package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
)

// report is what a storm measured.
type report struct {
	N                 int
	Rate              float64
	Burst             int
	Budget            time.Duration
	Delivered         int
	LastDelivered     time.Duration // from the start to the last signal delivered
	Elapsed           time.Duration // from the start to the last sender's return
	Requests          int
	Throttled         int
	RequestsMean      float64 // requests a signal, over the N signals
	RequestsMax       int
	MaxInFlight       int
	StackStatus       string
	Failures          map[string]int // error kind → signals
	FirstFailure      string
	AcceptedPerSecond float64 // signals accepted a second, start to last delivery
}

// summarize makes the report of a storm from its outcomes and what the stand-in saw.
func summarize(c config, outcomes []outcome, requests []cfnsignaltest.Request, maxInFlight int, stackStatus string, elapsed time.Duration) report {
	r := report{N: len(outcomes), Rate: c.Rate, Burst: c.Burst, Budget: c.Budget, Requests: len(requests),
		MaxInFlight: maxInFlight, StackStatus: stackStatus, Elapsed: elapsed, Failures: map[string]int{}}
	perSignal := map[string]int{}
	for _, q := range requests {
		perSignal[q.UniqueID]++
		if q.Answer == "Throttling" {
			r.Throttled++
		}
	}
	for _, o := range outcomes {
		if o.err != nil {
			r.Failures[kindOf(o.err)]++
			if r.FirstFailure == "" {
				r.FirstFailure = o.err.Error()
			}
			continue
		}
		r.Delivered++
		r.LastDelivered = max(r.LastDelivered, o.took)
	}
	for _, o := range outcomes {
		r.RequestsMax = max(r.RequestsMax, perSignal[o.uniqueID])
	}
	if r.N > 0 {
		r.RequestsMean = float64(len(requests)) / float64(r.N)
	}
	if r.LastDelivered > 0 {
		r.AcceptedPerSecond = float64(r.Delivered) / r.LastDelivered.Seconds()
	}
	return r
}

// ok says whether every signal was delivered within the budget.
func (r report) ok() bool { return r.Delivered == r.N && r.LastDelivered <= r.Budget }

// write prints the report.
func (r report) write(w io.Writer) {
	fmt.Fprintf(w, "boot storm: %d in-process signal senders (the real cfnsignal.Client each), one CloudFormation stand-in on 127.0.0.1\n", r.N)
	fmt.Fprintf(w, "  account rate           %g requests/s, burst %d (Throttling over it)\n", r.Rate, r.Burst)
	fmt.Fprintf(w, "  signal time budget     %s\n", r.Budget)
	fmt.Fprintf(w, "  signals delivered      %d of %d\n", r.Delivered, r.N)
	fmt.Fprintf(w, "  time until the last    %s (%.1f signals/s)\n", r.LastDelivered.Round(10*time.Millisecond), r.AcceptedPerSecond)
	fmt.Fprintf(w, "  requests per signal    mean %.2f, max %d (%d requests, %d throttled)\n", r.RequestsMean, r.RequestsMax, r.Requests, r.Throttled)
	fmt.Fprintf(w, "  most requests in flight %d\n", r.MaxInFlight)
	fmt.Fprintf(w, "  stack status after     %s\n", r.StackStatus)
	if len(r.Failures) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Failures[k]))
		}
		fmt.Fprintf(w, "  not delivered          %s\n  first error            %s\n", strings.Join(parts, ", "), r.FirstFailure)
	}
	verdict := "all delivered within the budget"
	if !r.ok() {
		verdict = "NOT all delivered within the budget"
	}
	fmt.Fprintf(w, "  goal                   %s\n", verdict)
}
