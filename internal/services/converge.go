package services

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// Unit is one unit to converge.
type Unit struct {
	// Name is the unit's name, such as "docker.service".
	Name string
	// Settings are the real paths (already joined under the root) of the files that
	// configure the unit: its drop-ins, ecs.config, the log agent's configuration.
	Settings []string
	// Changed tells that a settings file changed in this run.
	Changed bool
	// Wait makes Converge wait, within its timeout, until the unit is active; false for
	// ecs.service (see the package doc).
	Wait bool
}

// Actions Converge logs.
const (
	actionReloaded        = "reloaded"
	actionEnabled         = "enabled"
	actionStarted         = "started"
	actionRestarted       = "restarted"
	actionActive          = "active"
	actionAlreadyActive   = "already active"
	actionAlreadyStarting = "already starting"
)

// Converge brings the units up, in order:
//
//  1. daemon-reload, when reload is true (a unit file or drop-in changed in this run)
//     or any unit reports NeedReload;
//  2. for each unit: fail if systemd cannot load it (not installed, masked); enable it
//     unless UnitState.Enabled; then
//     - start it when it is not running (inactive, failed),
//     - restart it when it is running and Changed, or when it is active and one of its
//     Settings (for a missing one: its directory, which a removal changes) was
//     modified after it became active, so that a run interrupted between writing
//     the files and restarting converges on the next run,
//     - else leave it alone;
//     and, when Wait is set and something was done or the unit is not yet settled,
//     WaitActive within waitTimeout.
//
// It logs each action (unit, action, reason) to log, which may be nil. Errors name
// the unit and the action.
func Converge(ctx context.Context, sd Systemd, log *zap.Logger, reload bool, waitTimeout time.Duration, units ...Unit) error {
	if log == nil {
		log = zap.NewNop()
	}
	reason := "a unit file or drop-in changed"
	if !reload {
		for _, u := range units {
			st, err := sd.State(ctx, u.Name)
			if err != nil {
				return fmt.Errorf("reading the state of %s: %w", u.Name, err)
			}
			if st.NeedReload {
				reload, reason = true, u.Name+" changed on disk since systemd loaded it"
				break
			}
		}
	}
	if reload {
		if err := sd.Reload(ctx); err != nil {
			return fmt.Errorf("systemd daemon-reload: %w", err)
		}
		log.Info("systemd", zap.String("action", actionReloaded), zap.String("reason", reason))
	}
	for _, u := range units {
		if err := converge(ctx, sd, log.With(zap.String("unit", u.Name)), u, waitTimeout); err != nil {
			return err
		}
	}
	return nil
}

// converge brings one unit up (step 2 of Converge).
func converge(ctx context.Context, sd Systemd, log *zap.Logger, u Unit, waitTimeout time.Duration) error {
	st, err := sd.State(ctx, u.Name)
	if err != nil {
		return fmt.Errorf("reading the state of %s: %w", u.Name, err)
	}
	if !st.Loaded() {
		return notLoaded(u.Name, st.LoadState)
	}
	if !st.Enabled() {
		if err := sd.Enable(ctx, u.Name); err != nil {
			return fmt.Errorf("enabling %s: %w", u.Name, err)
		}
		log.Info("systemd", zap.String("action", actionEnabled), zap.String("reason", "was "+orUnknown(st.UnitFileState)))
	}

	action, reason, err := plan(st, u)
	if err != nil {
		return err
	}
	verb := "starting"
	switch action {
	case actionStarted:
		err = sd.Start(ctx, u.Name, false)
	case actionRestarted:
		verb = "restarting"
		err = sd.Start(ctx, u.Name, true)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, u.Name, err)
	}
	if !u.Wait && (action == actionStarted || action == actionRestarted) {
		reason += "; not waiting for the job"
	}
	log.Info("systemd", zap.String("action", action), zap.String("reason", reason))

	if !u.Wait || (action == actionAlreadyActive && !st.JobPending) {
		return nil
	}
	began := time.Now()
	if _, err := WaitActive(ctx, sd, u.Name, waitTimeout); err != nil {
		return fmt.Errorf("%s %s: %w", verb, u.Name, err)
	}
	log.Info("systemd", zap.String("action", actionActive), zap.Duration("waited", time.Since(began)))
	return nil
}

// plan says what to do with a loaded unit in state st, and why.
func plan(st UnitState, u Unit) (action, reason string, err error) {
	switch st.ActiveState {
	case "active", "activating", "reloading", "refreshing":
	default: // inactive, failed, deactivating, maintenance
		reason = "was " + orUnknown(st.ActiveState)
		if u.Changed {
			reason += "; settings changed"
		}
		return actionStarted, reason, nil
	}
	if u.Changed {
		return actionRestarted, "settings changed", nil
	}
	if !st.Active() {
		return actionAlreadyStarting, "is " + st.String(), nil
	}
	if !st.ActiveSince.IsZero() {
		path, mtime, err := newestAfter(u.Settings, st.ActiveSince)
		if err != nil {
			return "", "", fmt.Errorf("checking the settings of %s: %w", u.Name, err)
		}
		if path != "" {
			return actionRestarted, fmt.Sprintf("%s was modified at %s, after the unit became active at %s",
				path, mtime.Format(time.RFC3339Nano), st.ActiveSince.Format(time.RFC3339Nano)), nil
		}
	}
	return actionAlreadyActive, "settings unchanged", nil
}

// newestAfter returns the first of paths modified after t, and its mtime; "" when
// none is. A missing file stands for its directory, whose mtime changed when the file
// was removed; a missing directory is skipped.
func newestAfter(paths []string, t time.Time) (string, time.Time, error) {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			p = filepath.Dir(p)
			fi, err = os.Stat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		if err != nil {
			return "", time.Time{}, err
		}
		if fi.ModTime().After(t) {
			return p, fi.ModTime(), nil
		}
	}
	return "", time.Time{}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
