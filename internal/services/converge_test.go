package services_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/firstrun/firstrun/internal/services"
	"github.com/firstrun/firstrun/internal/services/servicestest"
)

// host is a root with docker's drop-in and ecs.config, and the units converging them.
type host struct {
	dockerDropIn, ecsConfig string
}

func newHost(t *testing.T) host {
	t.Helper()
	root := t.TempDir()
	h := host{
		dockerDropIn: filepath.Join(root, "etc/systemd/system/docker.service.d/http-proxy.conf"),
		ecsConfig:    filepath.Join(root, "etc/ecs/ecs.config"),
	}
	for _, p := range []string{h.dockerDropIn, h.ecsConfig} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// touch sets the mtime of p.
func touch(t *testing.T, p string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// units are docker (waited for) then ecs (not waited for), as firstrun converges them.
func (h host) units(dockerChanged, ecsChanged bool) []services.Unit {
	return []services.Unit{
		{Name: services.Docker, Settings: []string{h.dockerDropIn}, Changed: dockerChanged, Wait: true},
		{Name: services.ECS, Settings: []string{h.ecsConfig}, Changed: ecsChanged},
	}
}

// since is when the units of a booted fake became active; the settings files are
// older.
var since = time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)

// booted returns a fake with docker and ecs enabled and active since `since`, and a
// host whose settings files were written before that.
func booted(t *testing.T) (*servicestest.Fake, host) {
	t.Helper()
	h := newHost(t)
	touch(t, h.dockerDropIn, since.Add(-time.Minute))
	touch(t, h.ecsConfig, since.Add(-time.Minute))
	touch(t, filepath.Dir(h.dockerDropIn), since.Add(-time.Minute))
	f := servicestest.NewFake(services.Docker, services.ECS)
	for _, name := range []string{services.Docker, services.ECS} {
		f.Set(services.UnitState{Name: name, LoadState: "loaded", ActiveState: "active", SubState: "running",
			UnitFileState: "enabled", ActiveSince: since})
	}
	return f, h
}

// fastPoll makes WaitActive poll every millisecond for the test.
func fastPoll(t *testing.T) {
	old := services.PollInterval
	services.PollInterval = time.Millisecond
	t.Cleanup(func() { services.PollInterval = old })
}

// observed returns a logger and the (action, unit) pairs it logged.
func observed() (*zap.Logger, func() []string) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), func() []string {
		var got []string
		for _, e := range logs.All() {
			m := e.ContextMap()
			s, _ := m["action"].(string)
			if u, ok := m["unit"].(string); ok {
				s += " " + u
			}
			got = append(got, s)
		}
		return got
	}
}

func checkCalls(t *testing.T, f *servicestest.Fake, want ...string) {
	t.Helper()
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
}

func TestConvergeFirstRun(t *testing.T) {
	fastPoll(t)
	h := newHost(t)
	f := servicestest.NewFake(services.Docker, services.ECS)
	log, actions := observed()
	if err := services.Converge(context.Background(), f, log, true, time.Minute, h.units(true, true)...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f,
		"reload",
		"state docker.service", "enable docker.service", "start docker.service", "state docker.service",
		"state ecs.service", "enable ecs.service", "start ecs.service")
	wantActions := []string{
		"reloaded",
		"enabled docker.service", "started docker.service", "active docker.service",
		"enabled ecs.service", "started ecs.service",
	}
	if got := actions(); !slices.Equal(got, wantActions) {
		t.Errorf("logged actions:\n got %q\nwant %q", got, wantActions)
	}
	for _, name := range []string{services.Docker, services.ECS} {
		if st := f.Units[name]; !st.Active() || !st.Enabled() {
			t.Errorf("%s after the first run: %s", name, st)
		}
	}
}

func TestConvergeRerunUnchanged(t *testing.T) {
	f, h := booted(t)
	log, actions := observed()
	if err := services.Converge(context.Background(), f, log, false, time.Minute, h.units(false, false)...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f,
		"state docker.service", "state ecs.service", // does any need a daemon-reload?
		"state docker.service", "state ecs.service")
	want := []string{"already active docker.service", "already active ecs.service"}
	if got := actions(); !slices.Equal(got, want) {
		t.Errorf("logged actions %q, want %q", got, want)
	}
	if st := f.Units[services.Docker]; !st.ActiveSince.Equal(since) {
		t.Errorf("docker restarted: active since %s", st.ActiveSince)
	}
}

func TestConvergeDockerDropInChanged(t *testing.T) {
	fastPoll(t)
	f, h := booted(t)
	touch(t, h.dockerDropIn, time.Now())
	if err := services.Converge(context.Background(), f, zap.NewNop(), true, time.Minute, h.units(true, false)...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f,
		"reload",
		"state docker.service", "restart docker.service", "state docker.service",
		"state ecs.service")
	if st := f.Units[services.Docker]; !st.ActiveSince.After(since) {
		t.Errorf("docker not restarted: %s since %s", st, st.ActiveSince)
	}
}

func TestConvergeECSConfigChanged(t *testing.T) {
	f, h := booted(t)
	touch(t, h.ecsConfig, time.Now())
	if err := services.Converge(context.Background(), f, zap.NewNop(), false, time.Minute, h.units(false, true)...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f,
		"state docker.service", "state ecs.service",
		"state docker.service",
		"state ecs.service", "restart ecs.service") // and no wait for ecs
}

// A run that wrote the files, then died before restarting: the next run finds the
// files unchanged (Changed false) but newer than the running services.
func TestConvergeInterruptedRun(t *testing.T) {
	fastPoll(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, h host)
	}{
		{"drop-in written", func(t *testing.T, h host) {
			touch(t, h.dockerDropIn, since.Add(time.Minute))
		}},
		{"drop-in removed", func(t *testing.T, h host) {
			if err := os.Remove(h.dockerDropIn); err != nil {
				t.Fatal(err)
			}
			touch(t, filepath.Dir(h.dockerDropIn), since.Add(time.Minute))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := booted(t)
			tc.change(t, h)
			log, actions := observed()
			if err := services.Converge(context.Background(), f, log, false, time.Minute, h.units(false, false)...); err != nil {
				t.Fatal(err)
			}
			checkCalls(t, f,
				"state docker.service", "state ecs.service",
				"state docker.service", "restart docker.service", "state docker.service",
				"state ecs.service")
			if got := actions(); len(got) == 0 || got[0] != "restarted docker.service" {
				t.Errorf("logged actions %q, want a restart of docker first", got)
			}
		})
	}
}

// A drop-in directory that exists without the drop-in, older than the service, is
// no reason to restart.
func TestConvergeRemovedLongAgo(t *testing.T) {
	f, h := booted(t)
	if err := os.Remove(h.dockerDropIn); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Dir(h.dockerDropIn), since.Add(-time.Minute))
	units := h.units(false, false)
	units[1].Settings = append(units[1].Settings, filepath.Join(t.TempDir(), "missing/dir/http-proxy.conf"))
	if err := services.Converge(context.Background(), f, zap.NewNop(), false, time.Minute, units...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, "state docker.service", "state ecs.service", "state docker.service", "state ecs.service")
}

func TestConvergeNeedReload(t *testing.T) {
	f, h := booted(t)
	st := f.Units[services.Docker]
	st.NeedReload = true
	f.Set(st)
	log, actions := observed()
	if err := services.Converge(context.Background(), f, log, false, time.Minute, h.units(false, false)...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f,
		"state docker.service", "reload",
		"state docker.service", "state ecs.service")
	if got := actions(); len(got) == 0 || got[0] != "reloaded" {
		t.Errorf("logged actions %q, want a reload first", got)
	}
	if f.Units[services.Docker].NeedReload {
		t.Error("NeedReload still set after the reload")
	}
}

func TestConvergeNotLoaded(t *testing.T) {
	for _, tc := range []struct {
		loadState string
		want      string
	}{
		{"not-found", "ecs.service is not installed"},
		{"masked", "ecs.service is masked"},
		{"bad-setting", `ecs.service could not be loaded (systemd: "bad-setting")`},
	} {
		t.Run(tc.loadState, func(t *testing.T) {
			h := newHost(t)
			f := servicestest.NewFake(services.Docker, services.ECS)
			f.Set(services.UnitState{Name: services.ECS, LoadState: tc.loadState, ActiveState: "inactive"})
			err := services.Converge(context.Background(), f, zap.NewNop(), false, time.Minute, h.units(true, true)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			checkCalls(t, f,
				"state docker.service", "state ecs.service",
				"state docker.service", "enable docker.service", "start docker.service", "state docker.service",
				"state ecs.service")
		})
	}
}

// stuck makes every start of the Fake leave the unit in state st.
func stuck(f *servicestest.Fake, st services.UnitState) {
	f.StartFunc = func(ctx context.Context, unit string, restart bool) error {
		st.Name = unit
		f.Set(st)
		return nil
	}
}

var activating = services.UnitState{LoadState: "loaded", ActiveState: "activating", SubState: "start",
	UnitFileState: "enabled", JobPending: true}

func TestConvergeDockerNeverActive(t *testing.T) {
	fastPoll(t)
	h := newHost(t)
	f := servicestest.NewFake(services.Docker, services.ECS)
	stuck(f, activating)
	began := time.Now()
	err := services.Converge(context.Background(), f, zap.NewNop(), true, 200*time.Millisecond, h.units(true, true)...)
	took := time.Since(began)
	want := "docker.service did not become active within 200ms (last state: activating (start), enabled, job queued)"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want %q wrapping context.DeadlineExceeded", err, want)
	}
	if took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %s, want about 200ms", took)
	}
	if calls := f.Calls(); slices.Contains(calls, "start ecs.service") {
		t.Errorf("ecs started although docker is not active: %q", calls)
	}
}

func TestConvergeDockerFails(t *testing.T) {
	fastPoll(t)
	h := newHost(t)
	f := servicestest.NewFake(services.Docker, services.ECS)
	stuck(f, services.UnitState{LoadState: "loaded", ActiveState: "failed", SubState: "failed", UnitFileState: "enabled"})
	began := time.Now()
	err := services.Converge(context.Background(), f, zap.NewNop(), true, time.Minute, h.units(true, true)...)
	want := "starting docker.service: docker.service did not start: failed (failed), enabled"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("failed after %s, want at once", took)
	}
	checkCalls(t, f,
		"reload",
		"state docker.service", "enable docker.service", "start docker.service", "state docker.service")
}

func TestConvergeCancelled(t *testing.T) {
	fastPoll(t)
	h := newHost(t)
	f := servicestest.NewFake(services.Docker, services.ECS)
	stuck(f, activating)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel)
	began := time.Now()
	err := services.Converge(ctx, f, zap.NewNop(), true, time.Hour, h.units(true, true)...)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "docker.service") {
		t.Fatalf("error %v, want context.Canceled naming docker.service", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("returned after %s, want promptly after the cancel", took)
	}

	// Cancelled before it begins: nothing is done.
	f = servicestest.NewFake(services.Docker, services.ECS)
	err = services.Converge(ctx, f, zap.NewNop(), true, time.Hour, h.units(true, true)...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	checkCalls(t, f, "reload")
}

// A failed unit restarted because its settings changed is started, and its earlier
// "failed" state, still shown while the start job is queued, is not taken for a new
// failure.
func TestConvergeRestartsFailedUnit(t *testing.T) {
	fastPoll(t)
	f, h := booted(t)
	f.Set(services.UnitState{Name: services.Docker, LoadState: "loaded", ActiveState: "failed", SubState: "failed",
		UnitFileState: "enabled", ActiveSince: since})
	polls := 0
	f.StateFunc = func(ctx context.Context, unit string) (services.UnitState, error) {
		st := f.Units[unit] // the simulated state (Converge calls one method at a time)
		if unit == services.Docker && st.Active() {
			if polls++; polls < 3 {
				// The job is queued, not run yet: systemd still shows the failure.
				return services.UnitState{Name: services.Docker, LoadState: "loaded", ActiveState: "failed", SubState: "failed",
					UnitFileState: "enabled", JobPending: true}, nil
			}
		}
		return st, nil
	}
	log, actions := observed()
	if err := services.Converge(context.Background(), f, log, true, time.Minute, h.units(true, false)...); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f,
		"reload",
		"state docker.service", "start docker.service",
		"state docker.service", "state docker.service", "state docker.service",
		"state ecs.service")
	want := []string{"reloaded", "started docker.service", "active docker.service", "already active ecs.service"}
	if got := actions(); !slices.Equal(got, want) {
		t.Errorf("logged actions %q, want %q", got, want)
	}
}

func TestConvergeErrorsNameUnitAndAction(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		setup func(f *servicestest.Fake)
		want  string
	}{
		{"reload", func(f *servicestest.Fake) { f.ReloadFunc = func(context.Context) error { return boom } },
			"systemd daemon-reload: boom"},
		{"enable", func(f *servicestest.Fake) {
			f.EnableFunc = func(context.Context, ...string) error { return boom }
		}, "enabling docker.service: boom"},
		{"start", func(f *servicestest.Fake) {
			f.StartFunc = func(context.Context, string, bool) error { return boom }
		}, "starting docker.service: boom"},
		{"state", func(f *servicestest.Fake) {
			f.StateFunc = func(context.Context, string) (services.UnitState, error) { return services.UnitState{}, boom }
		}, "reading the state of docker.service: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			f := servicestest.NewFake(services.Docker, services.ECS)
			tc.setup(f)
			err := services.Converge(context.Background(), f, nil, true, time.Minute, h.units(true, true)...)
			if !errors.Is(err, boom) || err.Error() != tc.want {
				t.Errorf("error %q, want %q wrapping boom", err, tc.want)
			}
		})
	}
}

// ecs.service waiting to be restarted by systemd (Restart=on-failure) is left to it,
// unless its settings changed.
func TestConvergeActivating(t *testing.T) {
	for _, changed := range []bool{false, true} {
		f, h := booted(t)
		f.Set(services.UnitState{Name: services.ECS, LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart",
			UnitFileState: "enabled", ActiveSince: since, JobPending: true})
		log, actions := observed()
		if err := services.Converge(context.Background(), f, log, false, time.Minute, h.units(false, changed)...); err != nil {
			t.Fatal(err)
		}
		want := []string{"already active docker.service", "already starting ecs.service"}
		if changed {
			want[1] = "restarted ecs.service"
		}
		if got := actions(); !slices.Equal(got, want) {
			t.Errorf("changed %v: logged actions %q, want %q", changed, got, want)
		}
	}
}
