package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
)

func TestSummarize(t *testing.T) {
	outcomes := []outcome{
		{uniqueID: "i-1", took: 3 * time.Second},
		{uniqueID: "i-2", took: 7 * time.Second},
		{uniqueID: "i-3", took: 9 * time.Second, err: fmt.Errorf("signal: %w", cfnsignal.ErrTimeout)},
	}
	var requests []cfnsignaltest.Request
	for id, answers := range map[string][]string{
		"i-1": {"Throttling", "OK"},
		"i-2": {"Throttling", "Throttling", "Throttling", "OK"},
		"i-3": {"Throttling", "Throttling", "Throttling", "Throttling", "Throttling", "Throttling"},
	} {
		for _, a := range answers {
			requests = append(requests, cfnsignaltest.Request{UniqueID: id, Answer: a})
		}
	}
	r := summarize(config{Rate: 10, Burst: 20, Budget: 8 * time.Second}, outcomes, requests, 4, cfnsignaltest.CreateInProgress, 9*time.Second)
	want := report{N: 3, Rate: 10, Burst: 20, Budget: 8 * time.Second, Delivered: 2, LastDelivered: 7 * time.Second,
		Elapsed: 9 * time.Second, Requests: 12, Throttled: 10, RequestsMean: 4, RequestsMax: 6, MaxInFlight: 4,
		StackStatus: cfnsignaltest.CreateInProgress, Failures: map[string]int{"timed out": 1},
		FirstFailure: "signal: timed out", AcceptedPerSecond: 2.0 / 7}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("summarize =\n %+v\nwant\n %+v", r, want)
	}
	if r.ok() {
		t.Error("ok with a signal not delivered")
	}
	var b bytes.Buffer
	r.write(&b)
	for _, line := range []string{
		"signals delivered      2 of 3",
		"time until the last    7s (0.3 signals/s)",
		"requests per signal    mean 4.00, max 6 (12 requests, 10 throttled)",
		"most requests in flight 4",
		"not delivered          timed out: 1",
		"goal                   NOT all delivered within the budget",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, b.String())
		}
	}
}

func TestOKNeedsEverySignalWithinTheBudget(t *testing.T) {
	all := report{N: 2, Delivered: 2, LastDelivered: time.Minute, Budget: 2 * time.Minute}
	late := all
	late.LastDelivered = 3 * time.Minute
	if !all.ok() || late.ok() {
		t.Errorf("ok: all in time %v, one late %v; want true, false", all.ok(), late.ok())
	}
}

// A small storm, throttled, with short backoffs: every signal is delivered, each
// counted once by the stack's CreationPolicy, which completes.
func TestSmallStorm(t *testing.T) {
	if err := isolate(func(k, v string) error { t.Setenv(k, v); return nil }); err != nil {
		t.Fatal(err)
	}
	c := config{N: 20, Rate: 200, Burst: 5, Budget: time.Minute, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	r, err := run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered != 20 || r.StackStatus != cfnsignaltest.CreateComplete || r.Requests < 20 || r.RequestsMax < 1 || r.MaxInFlight < 1 {
		var b bytes.Buffer
		r.write(&b)
		t.Errorf("small storm:\n%s", b.String())
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for _, c := range []config{{N: 0}, {N: 1, Rate: -1}, {N: 1, Burst: -1}} {
		if _, err := run(context.Background(), c); err == nil {
			t.Errorf("run(%+v) accepted", c)
		}
	}
}
