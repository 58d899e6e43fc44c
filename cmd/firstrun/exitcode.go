package main

import "errors"

// Exit codes, documented in README.md ("Exit codes"). Each failure class has its own.
const (
	exitOK          = 0  // everything done (or, with --dry-run, planned)
	exitInternal    = 1  // a bug or an unexpected failure
	exitInput       = 2  // the inputs are invalid: nothing was written
	exitUsage       = 3  // unknown flag, stray argument, bad flag value
	exitApply       = 4  // the host's files could not be read or written
	exitPlatform    = 5  // the host is not a platform firstrun targets (Amazon Linux 1)
	exitInterrupted = 6  // SIGTERM or SIGINT stopped the run
	exitServices    = 7  // systemd unreachable, a unit missing, failed or not active in time
	exitHealth      = 8  // the ECS agent did not register to the cluster in time
	exitCheck       = 9  // --check found something that does not hold
	exitSignal      = 10 // the run succeeded, but the CloudFormation signal could not be sent
)

// exitError carries the exit code of a failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode tags err with an exit code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// codeOf returns the exit code err carries, exitInternal for an untagged error.
func codeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitInternal
}
