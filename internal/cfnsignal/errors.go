package cfnsignal

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// sendError is a signal that was not delivered.
type sendError struct {
	signal   Signal
	attempts int    // requests attempted; 0 when the signal was invalid
	kind     error  // ErrNotAwaited, ErrPermanent, ErrRetriesExhausted or ErrTimeout; nil when none fits
	hint     string // what kind means here, such as which permission is missing
	err      error  // the SDK's error
	last     error  // with ErrTimeout: the last attempt's error, when err does not say it
}

func (e *sendError) Error() string {
	if e.attempts == 0 {
		return fmt.Sprintf("CloudFormation signal %s not sent: %v", e.signal, e.err)
	}
	how := ""
	if e.kind != nil {
		how = " (" + e.kind.Error() + ")"
	}
	if e.hint != "" {
		how = " (" + e.kind.Error() + ": " + e.hint + ")"
	}
	if e.last != nil {
		return fmt.Sprintf("CloudFormation signal %s not sent: failed after %s%s: %v; the last answer: %v",
			e.signal, plural(e.attempts, "attempt"), how, e.err, e.last)
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

// The ValidationError messages that say nobody waits for a signal, as CloudFormation
// words them (see package cfnsignaltest for the sources): a stack or a resource in a
// state that takes no signal, and a stack that does not exist; and the one that says
// the logical id is not in the stack.
var (
	notAwaitedState = regexp.MustCompile(`^(?:Stack|Resource) \S+ is in [A-Z_]+ state and cannot be signaled`)
	noStack         = regexp.MustCompile(`^Stack (?:with id )?\S+ does not exist`)
	noResource      = regexp.MustCompile(`^Resource (\S+) does not exist for stack (\S+)`)
)

// classify says why a SignalResource call failed with err, and what that means for
// this signal. ctx is the context the call ran under; retryer is the one it used.
func classify(ctx context.Context, retryer aws.Retryer, err error) (kind error, hint string) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		msg := apiErr.ErrorMessage()
		switch code := apiErr.ErrorCode(); {
		case code == "ValidationError" && (notAwaitedState.MatchString(msg) || noStack.MatchString(msg)):
			return ErrNotAwaited, "nobody waits for this signal"
		case code == "ValidationError" && noResource.MatchString(msg):
			m := noResource.FindStringSubmatch(msg)
			return ErrPermanent, fmt.Sprintf("resource %q is not in stack %q: a wrong logical id", m[1], m[2])
		case code == "AccessDenied" || code == "AccessDeniedException":
			return ErrPermanent, "the instance role lacks cloudformation:SignalResource"
		}
	}
	return classifyRetry(ctx, retryer, err), ""
}

// classifyRetry says how the retries of a call that failed with err ended.
func classifyRetry(ctx context.Context, retryer aws.Retryer, err error) error {
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

// Message returns what CloudFormation answered to the Send that returned err, such
// as "Stack arn:… is in CREATE_COMPLETE state and cannot be signaled"; "" when it did
// not answer with an error.
func Message(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorMessage()
	}
	return ""
}
