// Package lastrun keeps the run-once marker: a small JSON record under /var/lib/firstrun
// of firstrun's last outcome on this instance (instance id when known, result, exit
// code, failed phase, version and time).
//
// firstrun always converges, so the marker never makes a rerun skip work: it tells an
// operator and the next run what happened before. To keep reruns from touching
// anything, the record is rewritten only when what it says changes; Time is when the
// instance first reached the recorded outcome.
package lastrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
)

// Results.
const (
	OK     = "ok"
	Failed = "failed"
)

// Record is one outcome.
type Record struct {
	// InstanceID is the EC2 instance id when known (cloud-init's record of it), so that
	// a marker baked into an image by mistake is told apart from this instance's.
	InstanceID string `json:"instance_id,omitempty"`
	// Result is OK or Failed.
	Result string `json:"result"`
	// ExitCode is firstrun's exit code.
	ExitCode int `json:"exit_code"`
	// Phase is the phase that failed, empty on success.
	Phase string `json:"failed_phase,omitempty"`
	// Version is firstrun's version.
	Version string `json:"version"`
	// Time is when this outcome was first reached, in UTC.
	Time time.Time `json:"time"`
	// Registered is when a run first saw the agent registered to the cluster with this
	// outcome, in UTC; zero when none did (the wait was skipped or handed over, or it
	// failed). The next run reads it to tell a rerun from the boot's first join.
	Registered time.Time `json:"registered,omitzero"`
}

// Same reports whether r and o record the same outcome, whatever their times: whether
// a registration was seen counts, not when.
func (r Record) Same(o Record) bool {
	if r.Registered.IsZero() != o.Registered.IsZero() {
		return false
	}
	r.Time, o.Time, r.Registered, o.Registered = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return r == o
}

// JoinedSince reports whether the record says the agent was seen registered at t or
// later: a run after it on the same boot is a rerun.
func (r Record) JoinedSince(t time.Time) bool {
	return r.Result == OK && !r.Registered.IsZero() && !r.Registered.Before(t)
}

// String is a one-line summary for logs and --check.
func (r Record) String() string {
	s := fmt.Sprintf("%s (exit %d", r.Result, r.ExitCode)
	if r.Phase != "" {
		s += ", phase " + r.Phase
	}
	s += ") at " + r.Time.Format(time.RFC3339)
	if r.InstanceID != "" {
		s += " on " + r.InstanceID
	}
	return s + " by firstrun " + r.Version
}

// File renders the record as the marker file.
func (r Record) File() files.File {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("lastrun: marshal: %v", err)) // a struct of strings, ints and a time
	}
	return files.File{Path: hostpath.LastRun, Mode: 0o644, Content: append(data, '\n')}
}

// Read returns the record under root, and false when there is none.
func Read(root hostpath.Root) (Record, bool, error) {
	p := root.Join(hostpath.LastRun)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("reading the last-run marker: %w", err)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, false, fmt.Errorf("last-run marker %s: %w (remove it; the next run writes it anew)", p, err)
	}
	return r, true, nil
}

// InstanceID returns the instance id cloud-init recorded under root, "" when unknown.
func InstanceID(root hostpath.Root) string {
	data, err := os.ReadFile(root.Join(hostpath.CloudInitInstanceID))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(data))
	if strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) || len(id) > 64 {
		return "" // not an instance id; never let it into the marker
	}
	return id
}

// Next returns the record to write after a run with outcome now: prev unchanged (and
// false) when it already says the same, else now (and true).
func Next(prev Record, hadPrev bool, now Record) (Record, bool) {
	if hadPrev && prev.Same(now) {
		return prev, false
	}
	return now, true
}
