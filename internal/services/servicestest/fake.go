// Package servicestest provides a fake of systemd (services.Systemd) for tests, as
// net/http/httptest does for HTTP.
package servicestest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/firstrun/firstrun/internal/services"
)

// Fake is a services.Systemd for tests. It records every call, in order, as "reload",
// "enable docker.service", "start ecs.service", "restart docker.service" and
// "state ecs.service". A func field, when set, replaces the simulation of its method;
// otherwise Fake simulates the units in Units: Reload clears NeedReload, Enable makes
// a unit enabled, Start makes it active (running) with ActiveSince now, and State
// returns it (a unit missing from Units is not installed). Simulated methods fail
// with ctx's error once ctx has ended. It is safe for concurrent use.
type Fake struct {
	// Units are the simulated units by name. Tests may change it directly before and
	// after a run; during one (in a func field, say), through Set.
	Units map[string]services.UnitState

	ReloadFunc func(ctx context.Context) error
	EnableFunc func(ctx context.Context, units ...string) error
	StartFunc  func(ctx context.Context, unit string, restart bool) error
	StateFunc  func(ctx context.Context, unit string) (services.UnitState, error)

	// Own is the unit OwnUnit names ("" reads as an error, as for a process systemd
	// does not know).
	Own string
	// Transient records StartTransient's units: name to argv and [env file].
	Transient map[string][2][]string

	mu     sync.Mutex
	calls  []string
	closed bool
}

var _ services.Systemd = (*Fake)(nil)

// NewFake returns a Fake with the named units installed, inactive and disabled, as
// on a freshly baked image.
func NewFake(units ...string) *Fake {
	f := &Fake{Units: map[string]services.UnitState{}}
	for _, name := range units {
		f.Units[name] = services.UnitState{
			Name:          name,
			LoadState:     "loaded",
			ActiveState:   "inactive",
			SubState:      "dead",
			UnitFileState: "disabled",
		}
	}
	return f
}

// Calls returns the calls made so far, in order.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// Set replaces the simulated state of the unit st.Name.
func (f *Fake) Set(st services.UnitState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Units == nil {
		f.Units = map[string]services.UnitState{}
	}
	f.Units[st.Name] = st
}

func (f *Fake) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

// Reload records "reload" and clears every unit's NeedReload.
func (f *Fake) Reload(ctx context.Context) error {
	f.record("reload")
	if f.ReloadFunc != nil {
		return f.ReloadFunc(ctx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, st := range f.Units {
		st.NeedReload = false
		f.Units[name] = st
	}
	return nil
}

// Enable records "enable UNIT..." and enables the units; like systemd it fails for a
// unit that is not installed or is masked.
func (f *Fake) Enable(ctx context.Context, units ...string) error {
	f.record("enable " + strings.Join(units, " "))
	if f.EnableFunc != nil {
		return f.EnableFunc(ctx, units...)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range units {
		st, ok := f.Units[name]
		switch {
		case !ok || st.LoadState == "not-found":
			return fmt.Errorf("unit file %s does not exist", name)
		case st.LoadState == "masked":
			return fmt.Errorf("unit file %s is masked", name)
		}
		if !st.Enabled() {
			st.UnitFileState = "enabled"
			f.Units[name] = st
		}
	}
	return nil
}

// Start records "start UNIT" or "restart UNIT" and makes the unit active now; a start
// of an active unit changes nothing. Like systemd it fails for a unit that is not
// loaded.
func (f *Fake) Start(ctx context.Context, unit string, restart bool) error {
	if restart {
		f.record("restart " + unit)
	} else {
		f.record("start " + unit)
	}
	if f.StartFunc != nil {
		return f.StartFunc(ctx, unit, restart)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.Units[unit]
	if !ok || !st.Loaded() {
		return fmt.Errorf("unit %s not found or not loaded", unit)
	}
	if st.Active() && !restart {
		return nil
	}
	now := time.Now()
	if !now.After(st.ActiveSince) {
		now = st.ActiveSince.Add(time.Microsecond)
	}
	st.ActiveState, st.SubState, st.ActiveSince, st.JobPending = "active", "running", now, false
	f.Units[unit] = st
	return nil
}

// State records "state UNIT" and returns the unit's simulated state.
func (f *Fake) State(ctx context.Context, unit string) (services.UnitState, error) {
	f.record("state " + unit)
	if f.StateFunc != nil {
		return f.StateFunc(ctx, unit)
	}
	if err := ctx.Err(); err != nil {
		return services.UnitState{}, err
	}
	return f.unit(unit), nil
}

// unit returns the simulated state of the unit.
func (f *Fake) unit(name string) services.UnitState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.Units[name]
	if !ok {
		return services.UnitState{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
	}
	st.Name = name
	return st
}

// OwnUnit records "own-unit" and returns Own.
func (f *Fake) OwnUnit(ctx context.Context) (string, error) {
	f.record("own-unit")
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if f.Own == "" {
		return "", fmt.Errorf("PID %d does not belong to any loaded unit", os.Getpid())
	}
	return f.Own, nil
}

// StartTransient records "transient NAME" and keeps argv and the env file's path in
// Transient; like systemd in mode "fail", it refuses a name already in use.
func (f *Fake) StartTransient(ctx context.Context, name string, argv []string, envFile string) error {
	f.record("transient " + name)
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Transient[name]; ok {
		return fmt.Errorf("unit %s already exists", name)
	}
	if f.Transient == nil {
		f.Transient = map[string][2][]string{}
	}
	f.Transient[name] = [2][]string{argv, {envFile}}
	return nil
}

// Close marks the Fake closed; it records no call.
func (f *Fake) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}
