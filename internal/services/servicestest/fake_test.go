package servicestest

import (
	"context"
	"slices"
	"testing"

	"github.com/firstrun/firstrun/internal/services"
)

func TestFakeRefusesWhatSystemdRefuses(t *testing.T) {
	f := NewFake(services.Docker)
	f.Set(services.UnitState{Name: services.ECS, LoadState: "masked", ActiveState: "inactive", UnitFileState: "masked"})
	ctx := context.Background()
	for _, unit := range []string{services.ECS, services.Awslogs} {
		if err := f.Enable(ctx, unit); err == nil {
			t.Errorf("Enable(%s) succeeded", unit)
		}
		if err := f.Start(ctx, unit, false); err == nil {
			t.Errorf("Start(%s) succeeded", unit)
		}
	}
	if st := f.Units[services.ECS]; st.Active() || st.Enabled() {
		t.Errorf("masked unit changed: %s", st)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Start(ctx, services.Docker, false); err != context.Canceled {
		t.Errorf("Start with a cancelled context: %v", err)
	}
	if f.Units[services.Docker].Active() {
		t.Error("started with a cancelled context")
	}
	f.Close()
	if !f.Closed() {
		t.Error("Closed() false after Close")
	}
	want := []string{"enable ecs.service", "start ecs.service", "enable awslogsd.service", "start awslogsd.service",
		"start docker.service"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}
