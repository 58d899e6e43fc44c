package files

import (
	"fmt"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/firstrun/firstrun/internal/redact"
)

// Diff returns a unified diff of the change, secrets redacted, or "" when unchanged.
// A mode-only change is one line.
func Diff(c Change) string {
	switch {
	case c.Action == Unchanged:
		return ""
	case c.ModeOnly():
		return fmt.Sprintf("mode %s: %04o -> %04o\n", c.Path, c.OldMode, c.Mode)
	}
	from, to := "a"+c.Path, "b"+c.Path
	switch c.Action {
	case Created:
		from = "/dev/null"
	case Removed:
		to = "/dev/null"
	}
	d := udiff.Unified(from, to, redact.Text(string(c.Old)), redact.Text(string(c.New)))
	if c.Action == Updated && c.OldMode != c.Mode {
		d = fmt.Sprintf("mode %s: %04o -> %04o\n", c.Path, c.OldMode, c.Mode) + d
	}
	if d != "" && !strings.HasSuffix(d, "\n") {
		d += "\n"
	}
	return d
}
