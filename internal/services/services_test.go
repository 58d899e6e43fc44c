package services_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/services"
	"github.com/firstrun/firstrun/internal/services/servicestest"
)

func TestEnabled(t *testing.T) {
	for state, want := range map[string]bool{
		"enabled":         true,
		"alias":           true,
		"static":          true,
		"generated":       true,
		"transient":       true,
		"enabled-runtime": false,
		"linked":          false,
		"linked-runtime":  false,
		"indirect":        false,
		"disabled":        false,
		"masked":          false,
		"masked-runtime":  false,
		"bad":             false,
		"":                false,
	} {
		if got := (services.UnitState{UnitFileState: state}).Enabled(); got != want {
			t.Errorf("Enabled() with UnitFileState %q = %v, want %v", state, got, want)
		}
	}
}

func TestUnitStateString(t *testing.T) {
	for _, tc := range []struct {
		st   services.UnitState
		want string
	}{
		{services.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", UnitFileState: "enabled"},
			"active (running), enabled"},
		{services.UnitState{LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart", UnitFileState: "enabled",
			JobPending: true, NeedReload: true},
			"activating (auto-restart), enabled, job queued, changed on disk"},
		{services.UnitState{LoadState: "loaded", ActiveState: "inactive"}, "inactive"},
		{services.UnitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, "not installed"},
		{services.UnitState{LoadState: "masked", ActiveState: "inactive", UnitFileState: "masked"}, "masked"},
		{services.UnitState{LoadState: "error", ActiveState: "inactive"}, "not loaded (error)"},
		{services.UnitState{}, "unknown"},
	} {
		if got := tc.st.String(); got != tc.want {
			t.Errorf("%+v: String() = %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestWaitActive(t *testing.T) {
	fastPoll(t)
	loaded := func(active, sub string, job bool) services.UnitState {
		return services.UnitState{Name: services.Docker, LoadState: "loaded", ActiveState: active, SubState: sub,
			UnitFileState: "enabled", JobPending: job}
	}
	for _, tc := range []struct {
		name    string
		states  []services.UnitState // in the order State returns them; the last repeats
		wantErr string               // "" for success
		polls   int
	}{
		{"active", []services.UnitState{loaded("active", "running", false)}, "", 1},
		{"restart queued on the running unit",
			[]services.UnitState{loaded("active", "running", true), loaded("active", "running", true), loaded("active", "running", false)},
			"", 3},
		{"start queued on a failed unit",
			[]services.UnitState{loaded("failed", "failed", true), loaded("activating", "start", true), loaded("active", "running", false)},
			"", 3},
		{"fails while starting",
			[]services.UnitState{loaded("activating", "start", true), loaded("failed", "failed", false)},
			"docker.service did not start: failed (failed), enabled; see `systemctl status docker.service`", 2},
		{"inactive, nothing queued", []services.UnitState{loaded("inactive", "dead", false)},
			"docker.service did not start: inactive (dead), enabled", 1},
		{"not installed", []services.UnitState{{LoadState: "not-found", ActiveState: "inactive"}},
			"docker.service is not installed (systemd: not-found)", 1},
		{"masked", []services.UnitState{{LoadState: "masked", ActiveState: "inactive"}},
			"docker.service is masked: `systemctl unmask docker.service`", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			polls := 0
			f := &servicestest.Fake{StateFunc: func(ctx context.Context, unit string) (services.UnitState, error) {
				st := tc.states[min(polls, len(tc.states)-1)]
				polls++
				return st, nil
			}}
			st, err := services.WaitActive(context.Background(), f, services.Docker, time.Minute)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if polls != tc.polls {
				t.Errorf("%d polls, want %d", polls, tc.polls)
			}
			if last := tc.states[len(tc.states)-1]; !reflect.DeepEqual(st, last) {
				t.Errorf("returned state %+v, want %+v", st, last)
			}
		})
	}
}

func TestWaitActiveStateError(t *testing.T) {
	boom := errors.New("bus gone")
	f := &servicestest.Fake{StateFunc: func(context.Context, string) (services.UnitState, error) { return services.UnitState{}, boom }}
	_, err := services.WaitActive(context.Background(), f, services.Docker, time.Minute)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading the state of docker.service") {
		t.Errorf("error %v, want the State error naming docker.service", err)
	}
}

// A State call that hangs past the timeout ends with the timeout error, not the
// call's own.
func TestWaitActiveHungState(t *testing.T) {
	f := &servicestest.Fake{StateFunc: func(ctx context.Context, unit string) (services.UnitState, error) {
		<-ctx.Done()
		return services.UnitState{}, ctx.Err()
	}}
	began := time.Now()
	_, err := services.WaitActive(context.Background(), f, services.Docker, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "docker.service did not become active within 50ms (last state: unknown)") {
		t.Errorf("error %v", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("returned after %s", took)
	}
}
