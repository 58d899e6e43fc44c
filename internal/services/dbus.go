package services

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// BootedDir exists when systemd is the running init system (what sd_booted(3)
// checks). Tests point it elsewhere.
var BootedDir = "/run/systemd/system"

// CallTimeout bounds every D-Bus call, on top of the caller's context.
var CallTimeout = 30 * time.Second

// DBus is the real Systemd: systemd's manager API on the system bus, through
// github.com/coreos/go-systemd/v22/dbus.
type DBus struct {
	conn *sddbus.Conn
	// stop ends the context the connection was dialled with, which closes it.
	stop context.CancelFunc
}

var _ Systemd = (*DBus)(nil)

// Connect checks that systemd is the init system (BootedDir is a directory) and
// connects to systemd over the system bus (DBUS_SYSTEM_BUS_ADDRESS, by default
// /run/dbus/system_bus_socket). Without systemd it fails at once with an error
// wrapping ErrNoSystemd. ctx and CallTimeout bound the connection and
// authentication: a bus that does not answer makes it fail with the deadline's error,
// never hang.
func Connect(ctx context.Context) (*DBus, error) {
	if fi, err := os.Stat(BootedDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: %w", BootedDir, ErrNoSystemd)
	}
	// The dial and authentication are bounded by CallTimeout too: a caller's context
	// (a run's, ended only by SIGTERM) may have no deadline, and a bus that accepts
	// and never answers must not hang a boot.
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	// godbus closes a connection when the context it was dialled with ends, so the
	// connection gets a context of its own, ended by Close (or by an abandoned
	// dial), and ctx bounds only the dial.
	connCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	type dialed struct {
		conn *sddbus.Conn
		err  error
	}
	done := make(chan dialed, 1)
	go func() {
		conn, err := sddbus.NewSystemConnectionContext(connCtx)
		done <- dialed{conn, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			stop()
			return nil, fmt.Errorf("connecting to systemd over the system D-Bus: %w", d.err)
		}
		return &DBus{conn: d.conn, stop: stop}, nil
	case <-ctx.Done():
		// Ending connCtx closes the connection being dialled, so the goroutine
		// returns (and its result is dropped).
		stop()
		return nil, fmt.Errorf("connecting to systemd over the system D-Bus: %w", ctx.Err())
	}
}

// call bounds one D-Bus call by ctx and CallTimeout.
func call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, CallTimeout)
}

// Reload is daemon-reload: systemd answers once it has reloaded.
func (d *DBus) Reload(ctx context.Context) error {
	ctx, cancel := call(ctx)
	defer cancel()
	if err := d.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("D-Bus Reload: %w", err)
	}
	return nil
}

// Enable is EnableUnitFiles(units, runtime=false, force=false).
func (d *DBus) Enable(ctx context.Context, units ...string) error {
	ctx, cancel := call(ctx)
	defer cancel()
	if _, _, err := d.conn.EnableUnitFilesContext(ctx, units, false, false); err != nil {
		return fmt.Errorf("D-Bus EnableUnitFiles: %w", err)
	}
	return nil
}

// Start queues a StartUnit (or RestartUnit) job in mode "replace" and returns once
// systemd has queued it, without waiting for the job to finish.
func (d *DBus) Start(ctx context.Context, unit string, restart bool) error {
	ctx, cancel := call(ctx)
	defer cancel()
	var err error
	method := "StartUnit"
	if restart {
		method = "RestartUnit"
		_, err = d.conn.RestartUnitContext(ctx, unit, "replace", nil)
	} else {
		_, err = d.conn.StartUnitContext(ctx, unit, "replace", nil)
	}
	if err != nil {
		return fmt.Errorf("D-Bus %s: %w", method, err)
	}
	return nil
}

// State reads the unit's properties (org.freedesktop.systemd1.Unit). systemd loads a
// unit it does not know yet to answer, so a unit that is not installed reads as
// LoadState not-found rather than as an error.
func (d *DBus) State(ctx context.Context, unit string) (UnitState, error) {
	ctx, cancel := call(ctx)
	defer cancel()
	props, err := d.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitState{Name: unit}, fmt.Errorf("D-Bus GetAll of %s: %w", unit, err)
	}
	return unitState(unit, props)
}

// OwnUnit is GetUnitByPID of this process.
func (d *DBus) OwnUnit(ctx context.Context) (string, error) {
	ctx, cancel := call(ctx)
	defer cancel()
	name, err := d.conn.GetUnitNameByPID(ctx, uint32(os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("D-Bus GetUnitByPID: %w", err)
	}
	return name, nil
}

// StartTransient is StartTransientUnit in mode "fail" (an active unit of that name is
// an error, not replaced), with CollectMode=inactive-or-failed so that a failed run
// does not block the name for the next one.
func (d *DBus) StartTransient(ctx context.Context, name string, argv []string, envFile string) error {
	ctx, cancel := call(ctx)
	defer cancel()
	props := []sddbus.Property{
		sddbus.PropDescription("firstrun: " + strings.Join(argv, " ")),
		sddbus.PropExecStart(argv, true),
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
	if envFile != "" {
		// EnvironmentFiles is a(sb): each path, and whether a missing file is ignored
		// (org.freedesktop.systemd1(5), EnvironmentFiles).
		files := []struct {
			Path    string
			Ignored bool
		}{{envFile, false}}
		props = append(props, sddbus.Property{Name: "EnvironmentFiles", Value: godbus.MakeVariant(files)})
	}
	if _, err := d.conn.StartTransientUnitContext(ctx, name, "fail", props, nil); err != nil {
		return fmt.Errorf("D-Bus StartTransientUnit %s: %w", name, err)
	}
	return nil
}

// Close closes the connection. It may be called more than once.
func (d *DBus) Close() {
	if d == nil || d.conn == nil {
		return
	}
	d.conn.Close()
	d.stop()
}

// unitState maps a unit's D-Bus properties, as go-systemd decodes them, to a
// UnitState.
func unitState(unit string, props map[string]any) (UnitState, error) {
	str := func(key string) string {
		s, _ := props[key].(string)
		return s
	}
	st := UnitState{
		Name:          unit,
		LoadState:     str("LoadState"),
		ActiveState:   str("ActiveState"),
		SubState:      str("SubState"),
		UnitFileState: str("UnitFileState"),
	}
	// ActiveEnterTimestamp is microseconds since the epoch (CLOCK_REALTIME), 0 for
	// never.
	if usec, ok := props["ActiveEnterTimestamp"].(uint64); ok && usec != 0 && usec <= math.MaxInt64 {
		st.ActiveSince = time.UnixMicro(int64(usec))
	}
	st.NeedReload, _ = props["NeedDaemonReload"].(bool)
	st.After, _ = props["After"].([]string)
	// Job is the struct (job id, job object path); id 0 is no job.
	if job, ok := props["Job"].([]any); ok && len(job) > 0 {
		id, _ := job[0].(uint32)
		st.JobPending = id != 0
	}
	if st.LoadState == "" {
		return st, fmt.Errorf("systemd sent no LoadState for %s", unit)
	}
	return st, nil
}
