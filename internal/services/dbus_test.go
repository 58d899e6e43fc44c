package services

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

func TestUnitState(t *testing.T) {
	const usec = uint64(1_782_900_000_123_456) // 2026-07-01T10:00:00.123456Z
	for _, tc := range []struct {
		name    string
		props   map[string]any
		want    UnitState
		wantErr bool
	}{
		{
			name: "active with a job",
			props: map[string]any{
				"Id": "docker.service", "LoadState": "loaded", "ActiveState": "active", "SubState": "running",
				"UnitFileState": "enabled", "ActiveEnterTimestamp": usec, "NeedDaemonReload": true,
				"After": []string{"cloud-final.service", "docker.service"},
				"Job":   []any{uint32(42), dbus.ObjectPath("/org/freedesktop/systemd1/job/42")},
			},
			want: UnitState{Name: Docker, LoadState: "loaded", ActiveState: "active", SubState: "running",
				UnitFileState: "enabled", ActiveSince: time.UnixMicro(int64(usec)), NeedReload: true, JobPending: true,
				After: []string{"cloud-final.service", "docker.service"}},
		},
		{
			name: "never active, no job",
			props: map[string]any{
				"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead", "UnitFileState": "disabled",
				"ActiveEnterTimestamp": uint64(0), "NeedDaemonReload": false,
				"Job": []any{uint32(0), dbus.ObjectPath("/")},
			},
			want: UnitState{Name: Docker, LoadState: "loaded", ActiveState: "inactive", SubState: "dead",
				UnitFileState: "disabled"},
		},
		{
			name:  "not installed",
			props: map[string]any{"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead", "UnitFileState": ""},
			want:  UnitState{Name: Docker, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"},
		},
		{
			name:  "mistyped values are ignored",
			props: map[string]any{"LoadState": "loaded", "ActiveEnterTimestamp": int64(5), "Job": "none", "NeedDaemonReload": "yes"},
			want:  UnitState{Name: Docker, LoadState: "loaded"},
		},
		{
			name:    "no LoadState",
			props:   map[string]any{"ActiveState": "active"},
			want:    UnitState{Name: Docker, ActiveState: "active"},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unitState(Docker, tc.props)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	st, _ := unitState(Docker, map[string]any{"LoadState": "loaded", "ActiveEnterTimestamp": usec})
	if want := time.Date(2026, 7, 1, 10, 0, 0, 123_456_000, time.UTC); !st.ActiveSince.Equal(want) {
		t.Errorf("ActiveSince %s, want %s", st.ActiveSince, want)
	}
}

// bootedDir points BootedDir at a directory that exists, as on a systemd host.
func bootedDir(t *testing.T) {
	old := BootedDir
	BootedDir = t.TempDir()
	t.Cleanup(func() { BootedDir = old })
}

func TestConnectNoSystemd(t *testing.T) {
	old := BootedDir
	t.Cleanup(func() { BootedDir = old })
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), notDir} {
		BootedDir = dir
		// A bus that never answers: Connect must not even try it.
		t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+silentBus(t))
		began := time.Now()
		d, err := Connect(context.Background())
		if !errors.Is(err, ErrNoSystemd) || d != nil {
			t.Fatalf("BootedDir %s: got %v, %v; want ErrNoSystemd", dir, d, err)
		}
		if took := time.Since(began); took > time.Second {
			t.Errorf("took %s, want at once", took)
		}
	}
	if msg := ErrNoSystemd.Error(); !strings.Contains(msg, "--skip services,health") {
		t.Errorf("ErrNoSystemd %q does not say how to skip", msg)
	}
}

// silentBus listens on a unix socket, accepts connections and never answers. It
// returns the socket's path; accepted connections are closed at the test's end.
func silentBus(t *testing.T) string {
	t.Helper()
	path, _ := silentBusConns(t)
	return path
}

func silentBusConns(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return path, conns
}

func TestConnectSilentBus(t *testing.T) {
	bootedDir(t)
	path, conns := silentBusConns(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+path)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	d, err := Connect(ctx)
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) || d != nil {
		t.Fatalf("got %v, %v; want context.DeadlineExceeded", d, err)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("returned after %s, want at the 200ms deadline", took)
	}
	// The abandoned connection is closed, not leaked: the bus sees EOF.
	var c net.Conn
	select {
	case c = <-conns:
	case <-time.After(2 * time.Second):
		t.Fatal("Connect never connected to the bus")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("the abandoned connection was not closed: %v", err)
	}
	c.Close()
}

// TestConnectSilentBusWithoutDeadline: a run's context has no deadline (only SIGTERM
// ends it); CallTimeout bounds the dial all the same.
func TestConnectSilentBusWithoutDeadline(t *testing.T) {
	bootedDir(t)
	path, _ := silentBusConns(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+path)
	old := CallTimeout
	CallTimeout = 200 * time.Millisecond
	t.Cleanup(func() { CallTimeout = old })
	done := make(chan error, 1)
	go func() {
		d, err := Connect(context.Background())
		if d != nil {
			d.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Connect hung on a silent bus with no deadline in its context")
	}
}

func TestConnectNoBus(t *testing.T) {
	bootedDir(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "missing"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	d, err := Connect(ctx)
	if err == nil || d != nil || errors.Is(err, ErrNoSystemd) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, %v; want a connection error", d, err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("took %s, want at once", took)
	}
}
