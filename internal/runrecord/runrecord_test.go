package runrecord_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/runrecord"
)

var boot = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func TestBootToRegistered(t *testing.T) {
	tests := []struct {
		name string
		run  runrecord.Run
		want time.Duration
		ok   bool
	}{
		{"first join", runrecord.Run{BootTime: boot, Registered: boot.Add(95 * time.Second)}, 95 * time.Second, true},
		{"not registered", runrecord.Run{BootTime: boot}, 0, false},
		{"boot time unknown", runrecord.Run{Registered: boot}, 0, false},
		{"rerun", runrecord.Run{BootTime: boot, Registered: boot.Add(time.Hour), Rerun: true}, 0, false},
		{"clock before boot", runrecord.Run{BootTime: boot, Registered: boot.Add(-time.Second)}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.run.BootToRegistered()
			if got != tt.want || ok != tt.ok {
				t.Errorf("BootToRegistered() = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPhaseAndOK(t *testing.T) {
	r := runrecord.Run{ExitCode: 8, Phases: []runrecord.Phase{
		{Name: runrecord.PhaseResolve, Outcome: runrecord.OK, Duration: time.Millisecond},
		{Name: runrecord.PhaseHealth, Outcome: runrecord.Failed, Duration: time.Minute},
	}}
	if p, ok := r.Phase(runrecord.PhaseHealth); !ok || p.Outcome != runrecord.Failed || p.Duration != time.Minute {
		t.Errorf("Phase(health) = %+v, %v", p, ok)
	}
	if _, ok := r.Phase(runrecord.PhaseApply); ok {
		t.Error("Phase(apply) found in a run without it")
	}
	if r.OK() {
		t.Error("a run with exit 8 is OK")
	}
}

// TestJSON pins the record's JSON names and that an unknown registration and boot
// time are left out rather than written as year 1.
func TestJSON(t *testing.T) {
	r := runrecord.Run{Start: boot, End: boot.Add(time.Second), Cluster: "c", ExitCode: 2,
		Phases: []runrecord.Phase{{Name: "resolve", Outcome: runrecord.Failed, Duration: 1500}}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got := string(data)
	want := `{"start":"2026-11-28T10:00:00Z","end":"2026-11-28T10:00:01Z","cluster":"c","exit_code":2,"phases":[{"name":"resolve","outcome":"failed","duration_ns":1500}]}`
	if got != want {
		t.Errorf("JSON\n got %s\nwant %s", got, want)
	}
	var back runrecord.Run
	if err := json.Unmarshal(data, &back); err != nil || back.Cluster != "c" || back.Phases[0].Duration != 1500 || !back.Start.Equal(boot) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

// TestExitClassesMatchREADME checks that every exit code the README documents has a
// class here and the other way round, so the dashboard's legend follows the README.
func TestExitClassesMatchREADME(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "### Exit codes\n")
	if !ok {
		t.Fatal("README has no Exit codes section")
	}
	table, _, _ = strings.Cut(table, "\n\n#")
	row := regexp.MustCompile(`(?m)^\| (\d+) \|`)
	documented := map[int]bool{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		code, _ := strconv.Atoi(m[1])
		documented[code] = true
	}
	if len(documented) < 10 {
		t.Fatalf("found only %d exit codes in the README's table", len(documented))
	}
	for code := range documented {
		if c := runrecord.ExitClass(code); strings.HasSuffix(c, "-unknown") {
			t.Errorf("README documents exit %d, which has no class", code)
		}
	}
	for code := 0; code <= 20; code++ {
		if c := runrecord.ExitClass(code); !strings.HasSuffix(c, "-unknown") && !documented[code] {
			t.Errorf("class %s for exit %d, which the README does not document", c, code)
		}
	}
	if got := runrecord.ExitClass(8); got != "8-health" {
		t.Errorf("ExitClass(8) = %q", got)
	}
	if got := runrecord.ExitClass(42); got != "42-unknown" {
		t.Errorf("ExitClass(42) = %q", got)
	}
}
