package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// sample is one run of a tool as the kernel accounts for it.
type sample struct {
	// Start is when the process was started, End when wait returned.
	Start, End time.Time
	// CPU is user plus system time, the tool's waited-for children included (wait4's
	// rusage counts the child and its reaped descendants).
	CPU time.Duration
	// MaxRSS is the peak resident set of the tool or of its largest descendant, bytes.
	MaxRSS int64
	// Exit is the exit status (128+N when killed by signal N).
	Exit int
}

// Wall is the process's wall time.
func (s sample) Wall() time.Duration { return s.End.Sub(s.Start) }

// measure runs cmd to its end and returns what it cost. An exit status other than 0 is
// not an error here: the caller decides.
func measure(cmd *exec.Cmd) (sample, error) {
	var s sample
	s.Start = time.Now()
	if err := cmd.Start(); err != nil {
		return s, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	err := cmd.Wait()
	s.End = time.Now()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return s, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	st := cmd.ProcessState
	s.CPU = st.UserTime() + st.SystemTime()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		s.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
	}
	s.Exit = st.ExitCode()
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		s.Exit = 128 + int(ws.Signal())
	}
	return s, nil
}

// command is exec.CommandContext with a clean environment (env only) and a bounded
// wait for its output pipes after it exits.
func command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// summary is the distribution of a set of durations.
type summary struct {
	N                  int
	Min, P50, P95, Max time.Duration
}

// summarize returns the distribution of ds; percentiles are nearest-rank (the value at
// rank ceil(p·N) in sorted order), so every figure is one that was measured.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{
		N: len(s), Min: s[0], Max: s[len(s)-1],
		P50: percentile(s, 0.50), P95: percentile(s, 0.95),
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 1) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// median returns the nearest-rank median of ds.
func median(ds []time.Duration) time.Duration { return summarize(ds).P50 }
