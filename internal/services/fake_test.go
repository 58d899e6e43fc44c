package services

import (
	"context"
	"slices"
	"testing"
)

func TestFakeRefusesWhatSystemdRefuses(t *testing.T) {
	f := NewFake(Docker)
	f.Set(UnitState{Name: ECS, LoadState: "masked", ActiveState: "inactive", UnitFileState: "masked"})
	ctx := context.Background()
	for _, unit := range []string{ECS, Awslogs} {
		if err := f.Enable(ctx, unit); err == nil {
			t.Errorf("Enable(%s) succeeded", unit)
		}
		if err := f.Start(ctx, unit, false); err == nil {
			t.Errorf("Start(%s) succeeded", unit)
		}
	}
	if st := f.Units[ECS]; st.Active() || st.Enabled() {
		t.Errorf("masked unit changed: %s", st)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Start(ctx, Docker, false); err != context.Canceled {
		t.Errorf("Start with a cancelled context: %v", err)
	}
	if f.Units[Docker].Active() {
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
