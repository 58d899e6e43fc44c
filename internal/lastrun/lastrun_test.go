package lastrun_test

import (
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/testenv"
)

func TestFileRoundTrip(t *testing.T) {
	root := t.TempDir()
	r := lastrun.Record{InstanceID: "i-0123456789abcdef0", Result: lastrun.Failed, ExitCode: 8, Phase: "health", Version: "v1.2.3", Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	f := r.File()
	if f.Path != hostpath.LastRun || f.Mode != 0o644 {
		t.Errorf("file %s %04o, want %s 0644", f.Path, f.Mode, hostpath.LastRun)
	}
	testenv.WriteFile(t, root, f.Path, string(f.Content), f.Mode)
	got, ok, err := lastrun.Read(hostpath.Root(root))
	if err != nil || !ok || got != r {
		t.Fatalf("Read = %+v, %v, %v; want %+v", got, ok, err, r)
	}
	if want := "failed (exit 8, phase health) at 2026-11-22T10:00:00Z on i-0123456789abcdef0 by firstrun v1.2.3"; got.String() != want {
		t.Errorf("String = %q, want %q", got.String(), want)
	}
}

func TestReadMissingAndCorrupt(t *testing.T) {
	root := t.TempDir()
	if _, ok, err := lastrun.Read(hostpath.Root(root)); ok || err != nil {
		t.Fatalf("missing marker: ok=%v err=%v, want false, nil", ok, err)
	}
	testenv.WriteFile(t, root, hostpath.LastRun, "{not json", 0o644)
	_, _, err := lastrun.Read(hostpath.Root(root))
	if err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("corrupt marker: err = %v, want an error saying to remove it", err)
	}
}

func TestNextRewritesOnlyWhenTheOutcomeChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := lastrun.Record{Result: lastrun.OK, Version: "v1", Time: t0}
	later := ok
	later.Time = t0.Add(time.Hour)
	if got, write := lastrun.Next(ok, true, later); write || got != ok {
		t.Errorf("same outcome later: Next = %+v, %v; want the earlier record kept, no write", got, write)
	}
	failed := later
	failed.Result, failed.ExitCode, failed.Phase = lastrun.Failed, 8, "health"
	if got, write := lastrun.Next(ok, true, failed); !write || got != failed {
		t.Errorf("new outcome: Next = %+v, %v; want the new record written", got, write)
	}
	if got, write := lastrun.Next(lastrun.Record{}, false, ok); !write || got != ok {
		t.Errorf("no marker: Next = %+v, %v; want the record written", got, write)
	}
	other := later
	other.InstanceID = "i-0fedcba9876543210"
	if _, write := lastrun.Next(ok, true, other); !write {
		t.Error("another instance id must rewrite the marker")
	}
}

func TestInstanceID(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"cloud-init's file", "i-0123456789abcdef0\n", "i-0123456789abcdef0"},
		{"junk with a newline inside", "i-1\nINJECTED=1\n", ""},
		{"too long", strings.Repeat("i", 65), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			testenv.WriteFile(t, root, hostpath.CloudInitInstanceID, tc.content, 0o644)
			if got := lastrun.InstanceID(hostpath.Root(root)); got != tc.want {
				t.Errorf("InstanceID = %q, want %q", got, tc.want)
			}
		})
	}
	if got := lastrun.InstanceID(hostpath.Root(t.TempDir())); got != "" {
		t.Errorf("no cloud-init record: InstanceID = %q, want empty", got)
	}
}

// TestRegistrationSeen: a run that sees the agent join rewrites a marker that saw no
// join (a handed-over run's), and later joins seen on reruns keep the first one's time;
// JoinedSince tells a rerun on the same boot.
func TestRegistrationSeen(t *testing.T) {
	boot := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	handedOver := lastrun.Record{Result: lastrun.OK, Version: "v1", Time: boot.Add(time.Minute)}
	joined := handedOver
	joined.Time, joined.Registered = boot.Add(2*time.Minute), boot.Add(2*time.Minute)
	if got, write := lastrun.Next(handedOver, true, joined); !write || got != joined {
		t.Errorf("first join seen: Next = %+v, %v; want the join recorded", got, write)
	}
	rejoined := joined
	rejoined.Time, rejoined.Registered = boot.Add(time.Hour), boot.Add(time.Hour)
	if got, write := lastrun.Next(joined, true, rejoined); write || got != joined {
		t.Errorf("rerun: Next = %+v, %v; want the first join kept, no write", got, write)
	}
	for _, c := range []struct {
		rec  lastrun.Record
		boot time.Time
		want bool
	}{
		{joined, boot, true},
		{joined, boot.Add(time.Hour), false}, // a join on an earlier boot
		{handedOver, boot, false},
		{lastrun.Record{Result: lastrun.Failed, Registered: boot.Add(time.Minute)}, boot, false},
	} {
		if got := c.rec.JoinedSince(c.boot); got != c.want {
			t.Errorf("%+v.JoinedSince(%v) = %v, want %v", c.rec, c.boot, got, c.want)
		}
	}
}
