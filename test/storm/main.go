// Command storm simulates a boot storm: N instances launched at once, each sending
// its CloudFormation signal, against one account whose request rate CloudFormation
// throttles. The senders are in-process, each the real cfnsignal.Client (its own
// connections, SigV4 signing, full-jitter retries and time budget), not processes;
// CloudFormation is the stand-in of internal/cfnsignal/cfnsignaltest on 127.0.0.1,
// throttling account-wide (a token bucket: -burst requests at once, then -rate a
// second, Throttling "Rate exceeded" over it) and counting the stack's
// CreationPolicy signals.
//
// It prints: the signals delivered out of N, the time until the last one, the
// requests per signal (mean, max) and the most requests in flight at the stand-in.
// `make storm` runs it; it exits 1 unless every signal was delivered within the
// signal's time budget. The whole run is bounded by the budget plus a minute.
//
//	go run ./test/storm -n 1000 -rate 10 -burst 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal"
)

func main() {
	c := config{}
	flag.IntVar(&c.N, "n", 1000, "instances signalling at once")
	flag.Float64Var(&c.Rate, "rate", 10, "the account's SignalResource rate, requests/s")
	flag.IntVar(&c.Burst, "burst", 20, "the account's burst, requests")
	flag.DurationVar(&c.Budget, "budget", cfnsignal.DefaultTimeout, "each signal's time budget (FIRSTRUN_SIGNAL_TIMEOUT)")
	flag.Parse()
	if c.Budget <= 0 {
		fmt.Fprintln(os.Stderr, "storm: -budget must be above zero")
		os.Exit(2)
	}
	if err := isolate(os.Setenv); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Budget+time.Minute) // every Send ends by its budget
	defer cancel()
	r, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r.write(os.Stdout)
	if !r.ok() {
		os.Exit(1)
	}
}

// isolate gives the clients static credentials in the environment (cfnsignal.New
// reads them first) and keeps them off IMDS and any endpoint, CA bundle or proxy the
// environment names: the storm talks to the stand-in alone.
func isolate(setenv func(k, v string) error) error {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDSTORMEXAMPLE", "AWS_SECRET_ACCESS_KEY": "storm-secret", "AWS_SESSION_TOKEN": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CA_BUNDLE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_CLOUDFORMATION": "",
		"HTTP_PROXY": "", "HTTPS_PROXY": "", "http_proxy": "", "https_proxy": "",
	} {
		if err := setenv(k, v); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return nil
}
