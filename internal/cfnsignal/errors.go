package cfnsignal

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// sendError is a signal that was not delivered.
type sendError struct {
	signal   Signal
	attempts int   // requests attempted; 0 when the signal was invalid
	kind     error // ErrPermanent, ErrRetriesExhausted or ErrTimeout; nil when none fits
	err      error // the SDK's error
}

func (e *sendError) Error() string {
	if e.attempts == 0 {
		return fmt.Sprintf("CloudFormation signal %s not sent: %v", e.signal, e.err)
	}
	how := ""
	if e.kind != nil {
		how = " (" + e.kind.Error() + ")"
	}
	return fmt.Sprintf("CloudFormation signal %s not sent: failed after %s%s: %v",
		e.signal, plural(e.attempts, "attempt"), how, e.err)
}

func (e *sendError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// Attempts returns how many requests the Send that returned err attempted: 1 when it
// failed without a retry, Options.MaxAttempts when retries ran out, 0 for an invalid
// Signal or an error that does not come from Send.
func Attempts(err error) int {
	var se *sendError
	if errors.As(err, &se) {
		return se.attempts
	}
	return 0
}

// classify says why a SignalResource call failed with err. ctx is the context the
// call ran under; retryer is the one it used.
func classify(ctx context.Context, retryer aws.Retryer, err error) error {
	var maxErr *retry.MaxAttemptsError
	switch {
	case errors.As(err, &maxErr):
		return ErrRetriesExhausted
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ErrTimeout
	case ctx.Err() != nil:
		return nil // cancelled by the caller: err wraps context.Canceled
	case retryer.IsErrorRetryable(err):
		return ErrRetriesExhausted // the retryer's token bucket ran dry
	}
	return ErrPermanent
}

// plural returns "1 attempt", "2 attempts".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
