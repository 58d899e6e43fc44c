// Package services starts and restarts the systemd units firstrun configures (the log
// agent, docker.service, ecs.service) over D-Bus, and reads their state.
//
// Systemd is the narrow interface to systemd: DBus is the real one, servicestest.Fake
// the one for tests. Converge brings a list of units up in order: daemon-reload when a unit file or
// drop-in changed, enable, then start, or restart when the unit's settings changed.
//
// ecs.service is ordered After=cloud-final.service, and firstrun often runs inside
// cloud-final (user data, cfn-init): waiting for ecs.service's start job there would
// deadlock until a timeout (aws/amazon-ecs-agent issues 1707, 4818). So no start here
// ever waits for its job: Start queues it and returns, and units that must be up
// before the next step (docker) are polled with WaitActive, within a bound.
package services

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Units firstrun manages.
const (
	Docker          = "docker.service"
	ECS             = "ecs.service"
	CloudWatchAgent = "amazon-cloudwatch-agent.service"
	// Awslogs is the legacy awslogs agent of Amazon Linux 2.
	Awslogs = "awslogsd.service"
)

// UnitState is what systemd says of a unit.
type UnitState struct {
	Name string
	// LoadState is loaded, not-found, masked, error, bad-setting, ...
	LoadState string
	// ActiveState is active, activating, deactivating, reloading, inactive, failed, ...
	ActiveState string
	// SubState is the unit type's own state: running, dead, exited, auto-restart, ...
	SubState string
	// UnitFileState is enabled, enabled-runtime, disabled, static, masked, ...
	UnitFileState string
	// ActiveSince is when the unit last entered the active state
	// (ActiveEnterTimestamp); zero when it never did. It is kept after the unit stops.
	ActiveSince time.Time
	// NeedReload is NeedDaemonReload: the unit's files changed on disk since systemd
	// loaded them.
	NeedReload bool
	// JobPending tells that a job (start, stop, restart, ...) is queued or running for
	// the unit (its Job property is set), so its state is about to change.
	JobPending bool
	// After lists the units this unit is ordered after: its start job waits for
	// theirs.
	After []string
}

// Active reports whether the unit is active.
func (u UnitState) Active() bool { return u.ActiveState == "active" }

// Loaded reports whether systemd found and parsed the unit.
func (u UnitState) Loaded() bool { return u.LoadState == "loaded" }

// Enabled reports whether the unit's enablement is settled for good, so that Enable
// has nothing to do:
//
//   - enabled and alias: linked under /etc, it starts at every boot;
//   - static: it has no [Install] section, there is nothing to enable (it runs when
//     another unit pulls it in);
//   - generated and transient: systemd made it at run time, it cannot be enabled.
//
// enabled-runtime, linked and linked-runtime (gone at the next reboot), indirect (only
// its Also= units get enabled), disabled, masked and anything else count as not
// enabled. This is stricter than `systemctl is-enabled`, which also accepts
// enabled-runtime and indirect.
func (u UnitState) Enabled() bool {
	switch u.UnitFileState {
	case "enabled", "alias", "static", "generated", "transient":
		return true
	}
	return false
}

// String describes the state for people, such as "active (running), enabled, job
// queued" or "not installed".
func (u UnitState) String() string {
	switch u.LoadState {
	case "loaded":
	case "not-found":
		return "not installed"
	case "masked":
		return "masked"
	case "":
		return "unknown"
	default:
		return "not loaded (" + u.LoadState + ")"
	}
	parts := []string{u.ActiveState}
	if u.SubState != "" {
		parts[0] += " (" + u.SubState + ")"
	}
	if u.UnitFileState != "" {
		parts = append(parts, u.UnitFileState)
	}
	if u.JobPending {
		parts = append(parts, "job queued")
	}
	if u.NeedReload {
		parts = append(parts, "changed on disk")
	}
	return strings.Join(parts, ", ")
}

// Systemd is the narrow interface to systemd. *DBus is the real one; *servicestest.Fake
// is for tests.
type Systemd interface {
	// Reload is daemon-reload; it returns when systemd has reloaded.
	Reload(ctx context.Context) error
	// Enable enables the units persistently (not runtime-only, no force); enabling an
	// enabled unit changes nothing.
	Enable(ctx context.Context, units ...string) error
	// Start queues a start job, or a restart job when restart is true, in mode
	// "replace", and returns without waiting for the job.
	Start(ctx context.Context, unit string, restart bool) error
	// State reads the unit's state.
	State(ctx context.Context, unit string) (UnitState, error)
	// OwnUnit names the unit this process runs in, such as cloud-final.service when
	// user data runs firstrun, or session-3.scope over SSH.
	OwnUnit(ctx context.Context) (string, error)
	// StartTransient starts a transient service unit that runs argv with the
	// environment read from envFile (EnvironmentFile=; "" for none), like systemd-run,
	// and returns once it is queued. Never the values themselves: systemd shows a
	// unit's Environment= to every local user over D-Bus (systemd.exec(5)), and only
	// the path of an EnvironmentFile=. The unit is garbage-collected when it ends, its
	// log stays in the journal.
	StartTransient(ctx context.Context, name string, argv []string, envFile string) error
	// Close releases the connection.
	Close()
}

// PollInterval is how often WaitActive reads a unit's state.
var PollInterval = 100 * time.Millisecond

// WaitActive polls the unit's state every PollInterval until it is active with no job
// left queued, and returns that state. It fails at once when the unit is not loaded
// (not installed, masked, broken), or is failed or inactive with no job queued
// (nothing is going to start it); after timeout it fails with an error naming the
// unit, its last state and the timeout, which wraps context.DeadlineExceeded. When ctx
// ends first, the error wraps ctx's error.
func WaitActive(ctx context.Context, sd Systemd, unit string, timeout time.Duration) (UnitState, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	var last UnitState
	for {
		st, err := sd.State(wctx, unit)
		if err != nil && wctx.Err() == nil {
			return last, fmt.Errorf("reading the state of %s: %w", unit, err)
		}
		if err == nil {
			if done, err := settled(unit, st); done {
				return st, err
			}
			last = st
			select {
			case <-tick.C:
				continue
			case <-wctx.Done():
			}
		}
		if ctx.Err() != nil {
			return last, fmt.Errorf("waiting for %s to become active (last state: %s): %w", unit, last, ctx.Err())
		}
		return last, fmt.Errorf("%s did not become active within %s (last state: %s): %w",
			unit, timeout, last, context.DeadlineExceeded)
	}
}

// settled tells whether WaitActive is done with a unit in state st, and if so
// whether the unit failed.
func settled(unit string, st UnitState) (bool, error) {
	switch {
	case st.Active() && !st.JobPending:
		return true, nil
	case !st.Loaded():
		return true, notLoaded(unit, st.LoadState)
	case (st.ActiveState == "failed" || st.ActiveState == "inactive") && !st.JobPending:
		return true, fmt.Errorf("%s did not start: %s; see `systemctl status %s` and `journalctl -u %s`",
			unit, st, unit, unit)
	}
	return false, nil
}

// notLoaded is the error for a unit systemd could not load.
func notLoaded(unit, loadState string) error {
	switch loadState {
	case "not-found":
		return fmt.Errorf("%s is not installed (systemd: not-found)", unit)
	case "masked":
		return fmt.Errorf("%s is masked: `systemctl unmask %s` allows it to start", unit, unit)
	default:
		return fmt.Errorf("%s could not be loaded (systemd: %q); see `systemctl status %s`",
			unit, loadState, unit)
	}
}

// ErrNoSystemd is returned when systemd is not the host's init system, as on Amazon
// Linux 1 (upstart), which firstrun does not support.
var ErrNoSystemd = errors.New("systemd is not running on this host (Amazon Linux 1 and other non-systemd hosts are not supported); to run without starting services, use --skip services,health")
