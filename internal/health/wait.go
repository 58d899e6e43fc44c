package health

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultInterval is the time between two polls: registration is noticed within one
// interval and one loopback request. At 50 ms, `make bench` measured firstrun's exit
// 48 ms after registration at p95 and 52 ms at worst (the wait, then the last-run
// marker and the exit); 25 ms halves the wait. Before registration the agent's port
// refuses connections, and a refused loopback connect costs tens of microseconds: 40
// polls a second are nothing beside a booting instance.
const DefaultInterval = 25 * time.Millisecond

// ErrTimeout is what a *TimeoutError unwraps to.
var ErrTimeout = errors.New("timed out waiting for the ECS agent to register")

// TimeoutError says the agent did not register to Cluster within Timeout, and how it
// last answered.
type TimeoutError struct {
	Cluster string
	Timeout time.Duration
	Last    Status
}

// Error names the cluster, the timeout and the last status; when the agent is
// registered to another cluster, it says so and points at ECS_CLUSTER.
func (e *TimeoutError) Error() string {
	head := fmt.Sprintf("the ECS agent did not register to cluster %q within %v", e.Cluster, e.Timeout)
	if other := e.Last.WrongCluster(e.Cluster); other != "" {
		return fmt.Sprintf("%s: the agent is registered to cluster %q, not %q: was ECS_CLUSTER picked up?",
			head, other, e.Cluster)
	}
	return fmt.Sprintf("%s: last: %s", head, e.Last)
}

// Unwrap returns ErrTimeout and ErrNotRegistered, so errors.Is(err, ErrTimeout) holds.
func (e *TimeoutError) Unwrap() []error { return []error{ErrTimeout, ErrNotRegistered} }

// Wait polls g every interval (DefaultInterval when interval <= 0), starting at once,
// until a status is RegisteredTo(cluster), ctx ends, timeout passes, or the answer is
// final. Each request is also bounded by the time left. Connection errors, statuses
// other than 200 and bad answers are tolerated: polling goes on. Two answers are
// final: a 200 that is not the agent's metadata (a *NotMetadataError, at once), and a
// registration to another cluster seen without a break for WrongClusterGrace (a
// *WrongClusterError).
//
// onChange, when not nil, is called with the first status and with each status whose
// String differs from the previous one, so that the caller logs changes, not polls.
//
// Wait returns the registered status and nil; or the last status and a *TimeoutError
// (errors.Is(err, ErrTimeout)) when the timeout passed, or one of the final errors
// (all three unwrap to ErrNotRegistered); or the last status and ctx's
// error, wrapped, when ctx ended first (errors.Is(err, context.Canceled) after a
// cancel, never ErrTimeout). A timeout <= 0 is an error and nothing is polled.
func Wait(ctx context.Context, g Getter, cluster string, timeout, interval time.Duration, onChange func(Status)) (Status, error) {
	return wait(ctx, g, cluster, timeout, interval, WrongClusterGrace, time.Now, onChange)
}

// wait is Wait with the wrong cluster's grace and the clock that measures it given.
func wait(ctx context.Context, g Getter, cluster string, timeout, interval, grace time.Duration, now func() time.Time, onChange func(Status)) (Status, error) {
	if timeout <= 0 {
		return Status{}, fmt.Errorf("waiting for the ECS agent: timeout must be positive, not %v", timeout)
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	var last Status
	polled := false
	wrong := wrongClusterWatch{cluster: cluster, grace: grace}
	for {
		st := g.Get(waitCtx)
		// A request cut short because the wait itself ended says nothing about the
		// agent: keep the status before it, if any.
		if !(polled && waitCtx.Err() != nil && st.HTTPStatus == 0) {
			if onChange != nil && (!polled || !st.Same(last)) {
				onChange(st)
			}
			last, polled = st, true
			if last.NotMetadata() {
				return last, &NotMetadataError{Last: last}
			}
			if err := wrong.see(last, now()); err != nil {
				return last, err
			}
		}
		if last.RegisteredTo(cluster) {
			return last, nil
		}
		if waitCtx.Err() != nil {
			return last, stopped(ctx, cluster, timeout, last)
		}
		select {
		case <-ticker.C:
		case <-waitCtx.Done():
			return last, stopped(ctx, cluster, timeout, last)
		}
	}
}

// stopped is Wait's error once its context has ended: ctx's error, wrapped with its
// cause (say, the signal) when there is one, or else a *TimeoutError.
func stopped(ctx context.Context, cluster string, timeout time.Duration, last Status) error {
	err := ctx.Err()
	if err == nil {
		return &TimeoutError{Cluster: cluster, Timeout: timeout, Last: last}
	}
	msg := fmt.Sprintf("stopped waiting for the ECS agent to register to cluster %q (last: %s)", cluster, last)
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%s: %w: %w", msg, err, cause)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
