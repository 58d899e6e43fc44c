package files_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/testenv"
)

// newRoot returns a files.Writer over a fresh temporary root.
func newRoot(t *testing.T) (*files.Writer, string) {
	t.Helper()
	dir := t.TempDir()
	return files.NewWriter(hostpath.Root(dir)), dir
}

// read returns a file's content and mode under root.
func read(t *testing.T, root, p string) (string, fs.FileMode) {
	t.Helper()
	real := filepath.Join(root, p)
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), fi.Mode().Perm()
}

// actions maps each change's path to its action.
func actions(changes []files.Change) map[string]files.Action {
	m := map[string]files.Action{}
	for _, c := range changes {
		m[c.Path] = c.Action
	}
	return m
}

func TestPlanAndApply(t *testing.T) {
	w, root := newRoot(t)
	testenv.WriteFile(t, root, "/etc/same", "same\n", 0o644)
	testenv.WriteFile(t, root, "/etc/old", "old\n", 0o644)
	testenv.WriteFile(t, root, "/etc/mode", "m\n", 0o644)
	testenv.WriteFile(t, root, "/etc/gone", "bye\n", 0o644)
	want := []files.File{
		{Path: "/etc/new/deep/file", Mode: 0o600, Content: []byte("new\n")},
		{Path: "/etc/same", Mode: 0o644, Content: []byte("same\n")},
		{Path: "/etc/old", Mode: 0o644, Content: []byte("fresh\n")},
		{Path: "/etc/mode", Mode: 0o600, Content: []byte("m\n")},
	}
	changes, err := w.Plan(want, []string{"/etc/gone", "/etc/never-existed"})
	if err != nil {
		t.Fatal(err)
	}
	got := actions(changes)
	wantActions := map[string]files.Action{
		"/etc/new/deep/file": files.Created, "/etc/same": files.Unchanged, "/etc/old": files.Updated,
		"/etc/mode": files.Updated, "/etc/gone": files.Removed,
	}
	if len(got) != len(wantActions) {
		t.Fatalf("actions = %v, want %v", got, wantActions)
	}
	for p, a := range wantActions {
		if got[p] != a {
			t.Errorf("%s: action %q, want %q", p, got[p], a)
		}
	}
	for _, c := range changes {
		if c.Path == "/etc/mode" && !c.ModeOnly() {
			t.Errorf("/etc/mode: want a mode-only change")
		}
	}

	// Planning wrote nothing.
	if _, err := os.Stat(filepath.Join(root, "/etc/new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Plan created a directory: %v", err)
	}

	if err := w.Apply(changes); err != nil {
		t.Fatal(err)
	}
	for _, f := range want {
		content, mode := read(t, root, f.Path)
		if content != string(f.Content) || mode != f.Mode {
			t.Errorf("%s: %q %04o, want %q %04o", f.Path, content, mode, f.Content, f.Mode)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/gone still exists: %v", err)
	}

	// A second plan finds nothing to do.
	again, err := w.Plan(want, []string{"/etc/gone"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if c.Action != files.Unchanged {
			t.Errorf("second plan: %s %s, want unchanged", c.Path, c.Action)
		}
	}
}

func TestApplyUnchangedTouchesNothing(t *testing.T) {
	w, root := newRoot(t)
	testenv.WriteFile(t, root, "/etc/a", "a\n", 0o600)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	real := filepath.Join(root, "/etc/a")
	if err := os.Chtimes(real, old, old); err != nil {
		t.Fatal(err)
	}
	changes, err := w.Plan([]files.File{{Path: "/etc/a", Mode: 0o600, Content: []byte("a\n")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(changes); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("mtime changed to %v", fi.ModTime())
	}
}

func TestMergeSeesDiskContent(t *testing.T) {
	w, root := newRoot(t)
	testenv.WriteFile(t, root, "/etc/shared", "user line\n", 0o600)
	var seen []string
	merge := func(existing []byte) ([]byte, error) {
		seen = append(seen, string(existing))
		return append(append([]byte{}, existing...), "ours\n"...), nil
	}
	changes, err := w.Plan([]files.File{
		{Path: "/etc/shared", Mode: 0o600, Merge: merge},
		{Path: "/etc/absent", Mode: 0o600, Merge: merge},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "user line\n" || seen[1] != "" {
		t.Fatalf("Merge saw %q", seen)
	}
	if string(changes[0].New) != "user line\nours\n" || changes[1].Action != files.Created {
		t.Fatalf("changes = %+v", changes)
	}
}

func TestPlanRefusesWhatIsNotARegularFile(t *testing.T) {
	w, root := newRoot(t)
	if err := os.MkdirAll(filepath.Join(root, "/etc/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, root, "/etc/target", "t\n", 0o644)
	if err := os.Symlink(filepath.Join(root, "/etc/target"), filepath.Join(root, "/etc/link")); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]files.File{
		"directory":     {{Path: "/etc/dir", Mode: 0o644, Content: []byte("x")}},
		"symbolic link": {{Path: "/etc/link", Mode: 0o644, Content: []byte("x")}},
		"not absolute":  {{Path: "etc/x", Mode: 0o644}},
		"not clean":     {{Path: "/etc/../x", Mode: 0o644}},
		"wanted twice":  {{Path: "/etc/x", Mode: 0o644}, {Path: "/etc/x", Mode: 0o644}},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := w.Plan(want, nil)
			if err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) && name != "not absolute" && name != "not clean" {
				t.Fatalf("err = %v, want one naming %q", err, name)
			}
		})
	}
	if content, _ := read(t, root, "/etc/target"); content != "t\n" {
		t.Errorf("symlink target changed: %q", content)
	}
}

// TestFailureBeforeRenameLeavesOldFile makes the rename fail after the temp file is
// written and synced: the old file must be intact and no temp file left behind.
func TestFailureBeforeRenameLeavesOldFile(t *testing.T) {
	w, root := newRoot(t)
	testenv.WriteFile(t, root, "/etc/ecs/ecs.config", "ECS_CLUSTER=old\n", 0o600)
	var tmpSeen string
	files.SetRename(w, func(oldpath, newpath string) error {
		data, err := os.ReadFile(oldpath)
		if err != nil || string(data) != "ECS_CLUSTER=new\n" {
			t.Errorf("temp file before rename: %q, %v", data, err)
		}
		tmpSeen = oldpath
		return errors.New("injected: power cut")
	})
	changes, err := w.Plan([]files.File{{Path: "/etc/ecs/ecs.config", Mode: 0o600, Content: []byte("ECS_CLUSTER=new\n")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Apply(changes)
	if err == nil || !strings.Contains(err.Error(), "injected") || !strings.Contains(err.Error(), "ecs.config") {
		t.Fatalf("Apply error = %v, want the injected failure naming the file", err)
	}
	if content, mode := read(t, root, "/etc/ecs/ecs.config"); content != "ECS_CLUSTER=old\n" || mode != 0o600 {
		t.Errorf("old file changed: %q %04o", content, mode)
	}
	if !strings.HasSuffix(tmpSeen, files.TempSuffix) || filepath.Dir(tmpSeen) != filepath.Join(root, "/etc") ||
		!strings.HasPrefix(filepath.Base(tmpSeen), ".ecs.ecs.config.firstrun-") {
		t.Errorf("temp file %q: want /etc/.ecs.ecs.config.firstrun-*%s under the root", tmpSeen, files.TempSuffix)
	}
	if _, err := os.Stat(tmpSeen); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temp file left behind after the failure: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "/etc/ecs"))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only ecs.config: %v", len(entries), entries)
	}
}

// TestNoTempFileInTheTargetDirectory: the CloudWatch agent's translator reads every
// file of amazon-cloudwatch-agent.d, dot files and *.tmp included (append-config), so
// at no point of a write, and not after a failure between the temp file's write and
// its rename (a crash), may that directory hold anything but firstrun.json and the
// operator's files.
func TestNoTempFileInTheTargetDirectory(t *testing.T) {
	const p = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"
	for _, tc := range []struct {
		name string
		old  bool // firstrun.json is there before
		fail bool // the rename fails: a crash after the temp file's write
	}{
		{"create", false, false}, {"update", true, false},
		{"create, crash before rename", false, true}, {"update, crash before rename", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, root := newRoot(t)
			dir := filepath.Join(root, filepath.Dir(p))
			testenv.WriteFile(t, root, filepath.Join(filepath.Dir(p), "metrics.json"), "{}\n", 0o644)
			want := []string{"metrics.json"}
			if tc.old {
				testenv.WriteFile(t, root, p, "{\"old\":1}\n", 0o644)
				want = []string{"firstrun.json", "metrics.json"}
			}
			listing := func() []string {
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				return names
			}
			files.SetRename(w, func(oldpath, newpath string) error {
				if got := listing(); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("before the rename %s holds %q, want only %q: the temp file %s is where the agent reads", dir, got, want, oldpath)
				}
				if tc.fail {
					return errors.New("injected: power cut")
				}
				return os.Rename(oldpath, newpath)
			})
			changes, err := w.Plan([]files.File{{Path: p, Mode: 0o644, Content: []byte("{\"new\":1}\n")}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Apply(changes)
			if tc.fail != (err != nil) {
				t.Fatalf("Apply error = %v, want an error: %v", err, tc.fail)
			}
			after := want
			if !tc.fail {
				after = []string{"firstrun.json", "metrics.json"}
			}
			if got := listing(); strings.Join(got, " ") != strings.Join(after, " ") {
				t.Errorf("after the write %s holds %q, want %q", dir, got, after)
			}
			parent, _ := os.ReadDir(filepath.Dir(dir))
			for _, e := range parent {
				if strings.HasSuffix(e.Name(), files.TempSuffix) {
					t.Errorf("temp file %s left in %s", e.Name(), filepath.Dir(dir))
				}
			}
		})
	}
}

// TestStaleTempFilesAreRemoved: temp files a crashed run left behind (staged beside
// the directory, or, by older versions, in it) are cleaned by the next write.
func TestStaleTempFilesAreRemoved(t *testing.T) {
	w, root := newRoot(t)
	p := "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"
	stale := filepath.Join(filepath.Dir(p), ".firstrun.json.firstrun-12345"+files.TempSuffix)
	testenv.WriteFile(t, root, stale, `{"half`, 0o600)
	staged := filepath.Join(filepath.Dir(filepath.Dir(p)), ".amazon-cloudwatch-agent.d.firstrun.json.firstrun-678"+files.TempSuffix)
	testenv.WriteFile(t, root, staged, `{"half`, 0o600)
	other := filepath.Join(filepath.Dir(filepath.Dir(p)), ".other.d.firstrun.json.firstrun-678"+files.TempSuffix)
	testenv.WriteFile(t, root, other, `{"half`, 0o600)
	testenv.WriteFile(t, root, filepath.Join(filepath.Dir(p), "user.json"), "{}", 0o644)
	changes, err := w.Plan([]files.File{{Path: p, Mode: 0o644, Content: []byte("{}\n")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(changes); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{stale, staged} {
		if _, err := os.Stat(filepath.Join(root, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale temp file %s still there: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, other)); err != nil {
		t.Errorf("another file's temp file removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.Dir(p), "user.json")); err != nil {
		t.Errorf("user's file removed: %v", err)
	}
}

func TestDiff(t *testing.T) {
	c := files.Change{
		Path: "/etc/ecs/ecs.config", Action: files.Updated,
		Old: []byte("ECS_CLUSTER=a\nHTTP_PROXY=http://bob:hunter2@p:3128\n"), OldMode: 0o644,
		New: []byte("ECS_CLUSTER=b\nECS_ENGINE_AUTH_DATA={\"secret\":1}\n"), Mode: 0o600,
	}
	d := files.Diff(c)
	for _, want := range []string{"--- a/etc/ecs/ecs.config", "+++ b/etc/ecs/ecs.config", "-ECS_CLUSTER=a", "+ECS_CLUSTER=b", "mode /etc/ecs/ecs.config: 0644 -> 0600"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	for _, secret := range []string{"hunter2", "secret"} {
		if strings.Contains(d, secret) {
			t.Errorf("diff shows secret %q:\n%s", secret, d)
		}
	}
	if files.Diff(files.Change{Path: "/x", Action: files.Unchanged, Old: []byte("a"), New: []byte("a")}) != "" {
		t.Error("unchanged file has a diff")
	}
	created := files.Diff(files.Change{Path: "/x", Action: files.Created, New: []byte("a\n")})
	if !strings.Contains(created, "--- /dev/null") || !strings.Contains(created, "+a") {
		t.Errorf("created diff:\n%s", created)
	}
	removed := files.Diff(files.Change{Path: "/x", Action: files.Removed, Old: []byte("a\n")})
	if !strings.Contains(removed, "+++ /dev/null") || !strings.Contains(removed, "-a") {
		t.Errorf("removed diff:\n%s", removed)
	}
}

// TestMergeErrorsAbsentAndModeKept: a merge that fails stops the plan naming the file;
// a merge that wants nothing where there is no file creates none; a merged file with
// Mode 0 keeps its mode (0644 when created).
func TestMergeErrorsAbsentAndModeKept(t *testing.T) {
	w, root := newRoot(t)
	testenv.WriteFile(t, root, "/etc/kept", "a\n", 0o640)
	fail := func([]byte) ([]byte, error) { return nil, errors.New("not TOML") }
	if _, err := w.Plan([]files.File{{Path: "/etc/kept", Merge: fail}}, nil); err == nil ||
		!strings.Contains(err.Error(), "not TOML") || !strings.Contains(err.Error(), "/etc/kept") {
		t.Errorf("Plan error = %v, want the merge's error naming the file", err)
	}
	none := func(old []byte) ([]byte, error) { return old, nil }
	add := func(old []byte) ([]byte, error) { return append(append([]byte{}, old...), "b\n"...), nil }
	changes, err := w.Plan([]files.File{
		{Path: "/etc/absent", Merge: none},
		{Path: "/etc/kept", Merge: add},
		{Path: "/etc/new", Merge: add},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Path != "/etc/kept" || changes[1].Path != "/etc/new" {
		t.Fatalf("changes = %+v, want /etc/kept and /etc/new only", changes)
	}
	if err := w.Apply(changes); err != nil {
		t.Fatal(err)
	}
	if content, mode := read(t, root, "/etc/kept"); content != "a\nb\n" || mode != 0o640 {
		t.Errorf("/etc/kept = %q %04o, want a, b and mode 0640 kept", content, mode)
	}
	if _, mode := read(t, root, "/etc/new"); mode != 0o644 {
		t.Errorf("/etc/new mode %04o, want 0644", mode)
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/absent created: %v", err)
	}
}
