package runner

import (
	"errors"

	"github.com/firstrun/firstrun/internal/runrecord"
)

// exitError carries the exit code of a failure (runrecord's Exit constants, README
// "Exit codes").
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

// codeOf returns the exit code err carries, runrecord.ExitInternal for an untagged
// error.
func codeOf(err error) int {
	if err == nil {
		return runrecord.ExitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return runrecord.ExitInternal
}
