package services

import (
	"github.com/firstrun/firstrun/internal/testenv"
	"reflect"

	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// These tests run DBus against a stand-in for systemd's manager on a private
// dbus-daemon, so that the calls, their arguments and the properties' D-Bus types are
// those go-systemd really sends and decodes. They skip loudly where dbus-daemon is
// not installed (and fail under CI, which installs it). The real systemd is exercised end to end in a booted container.

// privateBus starts a dbus-daemon of its own and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	testenv.Need(t, err == nil, "dbus-daemon (Debian package dbus-daemon) for the D-Bus tests")
	dir := t.TempDir()
	config := filepath.Join(dir, "bus.conf")
	err = os.WriteFile(config, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <!-- as in dbus-daemon's session.conf: without the eavesdrop rules, the
         replies never reach the clients -->
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+config, "--nofork", "--print-address")
	// The daemon dies with the test binary, even when a timeout kills it before the
	// cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// manager stands in for org.freedesktop.systemd1.Manager.
type manager struct {
	mu    sync.Mutex
	calls []string
	// hang, when not nil, makes Reload wait until it is closed.
	hang chan struct{}
}

func (m *manager) record(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, fmt.Sprintf(format, args...))
}

func (m *manager) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func (m *manager) Reload() *dbus.Error {
	m.record("Reload")
	if m.hang != nil {
		<-m.hang
	}
	return nil
}

func noSuchUnit(name string) *dbus.Error {
	return dbus.NewError("org.freedesktop.systemd1.NoSuchUnit", []any{"Unit " + name + " not found."})
}

func (m *manager) StartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	m.record("StartUnit %s %s", name, mode)
	if name != Docker {
		return "", noSuchUnit(name)
	}
	return "/org/freedesktop/systemd1/job/7", nil
}

func (m *manager) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	m.record("RestartUnit %s %s", name, mode)
	return "/org/freedesktop/systemd1/job/8", nil
}

type unitFileChange struct{ Type, Filename, Destination string }

func (m *manager) EnableUnitFiles(files []string, runtime, force bool) (bool, []unitFileChange, *dbus.Error) {
	m.record("EnableUnitFiles %v runtime=%v force=%v", files, runtime, force)
	return true, []unitFileChange{{"symlink", "/etc/systemd/system/multi-user.target.wants/" + files[0],
		"/usr/lib/systemd/system/" + files[0]}}, nil
}

// properties stands in for a unit object's org.freedesktop.DBus.Properties.
type properties map[string]dbus.Variant

func (p properties) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != "org.freedesktop.systemd1.Unit" {
		return nil, dbus.MakeFailedError(fmt.Errorf("unexpected interface %s", iface))
	}
	return p, nil
}

type job struct {
	ID   uint32
	Path dbus.ObjectPath
}

// fakeSystemd serves a manager and docker.service's properties on the bus at addr.
func fakeSystemd(t *testing.T, addr string, m *manager, docker properties) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Export(m, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(docker, "/org/freedesktop/systemd1/unit/docker_2eservice", "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning org.freedesktop.systemd1: %v, %v", reply, err)
	}
}

// connectTo connects a DBus to the bus at addr.
func connectTo(t *testing.T, addr string) *DBus {
	t.Helper()
	bootedDir(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestDBus(t *testing.T) {
	addr := privateBus(t)
	m := &manager{}
	const usec = 1_782_900_000_123_456
	fakeSystemd(t, addr, m, properties{
		"Id":                   dbus.MakeVariant(Docker),
		"LoadState":            dbus.MakeVariant("loaded"),
		"ActiveState":          dbus.MakeVariant("active"),
		"SubState":             dbus.MakeVariant("running"),
		"UnitFileState":        dbus.MakeVariant("enabled"),
		"ActiveEnterTimestamp": dbus.MakeVariant(uint64(usec)),
		"NeedDaemonReload":     dbus.MakeVariant(true),
		"After":                dbus.MakeVariant([]string{"network-online.target", "containerd.service"}),
		"Job":                  dbus.MakeVariant(job{8, "/org/freedesktop/systemd1/job/8"}),
		"Description":          dbus.MakeVariant("Docker Application Container Engine"),
	})
	d := connectTo(t, addr)
	ctx := context.Background()

	if err := d.Reload(ctx); err != nil {
		t.Error(err)
	}
	if err := d.Enable(ctx, Docker); err != nil {
		t.Error(err)
	}
	if err := d.Start(ctx, Docker, false); err != nil {
		t.Error(err)
	}
	if err := d.Start(ctx, Docker, true); err != nil {
		t.Error(err)
	}
	err := d.Start(ctx, "nosuch.service", false)
	var derr dbus.Error
	if !errors.As(err, &derr) || derr.Name != "org.freedesktop.systemd1.NoSuchUnit" ||
		!strings.Contains(err.Error(), "D-Bus StartUnit: Unit nosuch.service not found.") {
		t.Errorf("start of a missing unit: %v", err)
	}
	want := []string{
		"Reload",
		"EnableUnitFiles [docker.service] runtime=false force=false",
		"StartUnit docker.service replace",
		"RestartUnit docker.service replace",
		"StartUnit nosuch.service replace",
	}
	if got := m.Calls(); !slices.Equal(got, want) {
		t.Errorf("systemd got\n %q\nwant\n %q", got, want)
	}

	st, err := d.State(ctx, Docker)
	if err != nil {
		t.Fatal(err)
	}
	wantState := UnitState{Name: Docker, LoadState: "loaded", ActiveState: "active", SubState: "running",
		UnitFileState: "enabled", ActiveSince: time.UnixMicro(usec), NeedReload: true, JobPending: true,
		After: []string{"network-online.target", "containerd.service"}}
	if !reflect.DeepEqual(st, wantState) {
		t.Errorf("State:\n got %+v\nwant %+v", st, wantState)
	}
	if _, err := d.State(ctx, ECS); err == nil || !strings.Contains(err.Error(), "ecs.service") {
		t.Errorf("State of an object the bus does not have: %v", err)
	}

	d.Close()
	d.Close()
	if err := d.Reload(ctx); err == nil {
		t.Error("Reload after Close succeeded")
	}
}

func TestDBusCallTimeout(t *testing.T) {
	addr := privateBus(t)
	m := &manager{hang: make(chan struct{})}
	t.Cleanup(func() { close(m.hang) })
	fakeSystemd(t, addr, m, properties{})
	d := connectTo(t, addr)
	old := CallTimeout
	CallTimeout = 100 * time.Millisecond
	t.Cleanup(func() { CallTimeout = old })

	began := time.Now()
	err := d.Reload(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Reload that systemd never answers: %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("returned after %s, want after CallTimeout", took)
	}

	// The caller's context bounds the call too.
	CallTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := d.Reload(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Reload with a cancelled context: %v, want context.Canceled", err)
	}
}
