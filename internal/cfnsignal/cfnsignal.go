// Package cfnsignal tells CloudFormation that this instance is ready (or has failed),
// so that a stack whose resource has a CreationPolicy succeeds once the ECS agent has
// joined its cluster, and fails at once instead of waiting for the policy's timeout
// when the first run went wrong.
//
// A Signal is one SignalResource call (StackName, LogicalResourceId, UniqueId = the
// instance id, Status SUCCESS or FAILURE). *Client sends it with the AWS SDK: request
// signed with the environment's credentials when it has them, else the instance role's
// (New says why no other source is read), through an HTTP proxy when one is given,
// retried with full-jitter exponential backoff on throttling, 5xx answers and
// connection errors for as long as its time budget (Options.Timeout) lasts, not a
// count of attempts: in a boot storm, hundreds of instances share the account's
// request rate. A Send that fails says so
// in its error, which wraps ErrInvalid, ErrNotAwaited, ErrPermanent,
// ErrRetriesExhausted or ErrTimeout; Attempts tells how many requests it made and
// Message what CloudFormation answered. ErrNotAwaited is not a failure of the caller:
// CloudFormation takes a signal only while a CreationPolicy or an UpdatePolicy with
// WaitOnResourceSignals waits for it, and an instance launched later has nobody to
// tell.
//
// SignalResource has no reason field: the API's SignalResourceInput holds only
// LogicalResourceId, StackName, Status and UniqueId. (cfn-signal's --reason exists only
// for wait condition handles, a presigned URL that takes a JSON document.) A Signal's
// Reason is therefore for the caller's log alone and is never sent.
package cfnsignal

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Status is the outcome a Signal reports.
type Status string

// The two statuses SignalResource accepts.
const (
	// Success counts towards the resource's CreationPolicy.
	Success Status = "SUCCESS"
	// Failure fails the resource, and so the stack creation or update, at once.
	Failure Status = "FAILURE"
)

// Signal is one SignalResource call.
type Signal struct {
	// StackName is the stack's name or its stack id (ARN).
	StackName string
	// LogicalResourceID is the resource's logical id in the template, such as the
	// Auto Scaling group's.
	LogicalResourceID string
	// UniqueID is the instance id: CloudFormation counts one signal per unique id.
	UniqueID string
	// Status is Success or Failure.
	Status Status
	// Reason is why the run failed, for the caller's log only: SignalResource has no
	// field to carry it, and it is never sent.
	Reason string
}

// String describes the signal in one line, for logs and errors. It leaves Reason out.
func (s Signal) String() string {
	return fmt.Sprintf("%s for stack %q, resource %q, instance %q",
		s.Status, s.StackName, s.LogicalResourceID, s.UniqueID)
}

// Validate returns every problem with s at once, each naming its field, wrapping
// ErrInvalid; nil when s can be sent.
func (s Signal) Validate() error {
	var problems []string
	for _, f := range []struct{ name, value string }{
		{"StackName", s.StackName},
		{"LogicalResourceID", s.LogicalResourceID},
		{"UniqueID", s.UniqueID},
	} {
		if strings.TrimSpace(f.value) == "" {
			problems = append(problems, f.name+" is empty")
		}
	}
	if s.Status != Success && s.Status != Failure {
		problems = append(problems, fmt.Sprintf("Status %q is neither %s nor %s", s.Status, Success, Failure))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
}

// Signaler sends a signal. *Client is the real one; tests use Func.
type Signaler interface {
	Send(ctx context.Context, s Signal) error
}

// Func adapts a function to a Signaler.
type Func func(ctx context.Context, s Signal) error

// Send calls f.
func (f Func) Send(ctx context.Context, s Signal) error { return f(ctx, s) }

// The kinds of failure a Send error wraps; test them with errors.Is.
var (
	// ErrInvalid: the Signal is incomplete; no request was made.
	ErrInvalid = errors.New("invalid signal")
	// ErrNotAwaited: CloudFormation refused the signal because nothing waits for it:
	// the stack or the resource is in a state that takes no signal (CREATE_COMPLETE,
	// UPDATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, …: no CreationPolicy nor UpdatePolicy
	// with WaitOnResourceSignals waits, as for an instance launched by a scale-out or
	// replacing an unhealthy one), or the stack does not exist (any more). One
	// request, never retried; Message(err) is CloudFormation's message.
	ErrNotAwaited = errors.New("no signal awaited")
	// ErrPermanent: an attempt failed in a way the SDK does not retry, so retrying
	// the same signal would fail again: CloudFormation refused it (ValidationError
	// for a logical id that is not in the stack, AccessDenied without
	// cloudformation:SignalResource, InvalidClientTokenId, SignatureDoesNotMatch), or
	// no request could be made (no credentials, a host name that does not exist). The
	// error says which where it can tell.
	ErrPermanent = errors.New("permanent failure, not retried")
	// ErrRetriesExhausted: every attempt failed with an error worth retrying
	// (throttling, 5xx, connection errors) until Options.MaxAttempts were made.
	ErrRetriesExhausted = errors.New("retries exhausted")
	// ErrTimeout: the time ran out first, Options.Timeout or the deadline of the
	// context given to Send; the error also wraps context.DeadlineExceeded.
	ErrTimeout = errors.New("timed out")
)
