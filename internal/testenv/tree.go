package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/hostpath"
)

// WriteFile writes a file at host path p under root, making its directories.
func WriteFile(t testing.TB, root, p, content string, mode fs.FileMode) {
	t.Helper()
	real := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(real, mode); err != nil {
		t.Fatal(err)
	}
}

// FileInfo is what Snapshot records of one path.
type FileInfo struct {
	Mode    fs.FileMode // type bits and permissions
	ModTime time.Time
	Content string // file content; link target for a symlink; "" for a directory
}

// logDir is firstrun's own log directory, relative to a root.
var logDir = strings.TrimPrefix(filepath.Dir(hostpath.FirstrunLog), "/")

// Snapshot returns every path under root (root itself as "."), relative to root, with
// its mode, modification time and content, so that two snapshots taken around a run
// differ when the run created, changed, removed, re-modded or merely rewrote
// anything. Symlinks are recorded, not followed.
//
// firstrun's own log directory (/var/log/firstrun) is left out: every run but a dry
// run appends its log and its metrics record there, by design (LogDirFiles reads it).
// So are the directories on the way to it (/var, /var/log), which its creation makes,
// and the root's modification time, which it changes.
func Snapshot(t testing.TB, root string) map[string]FileInfo {
	t.Helper()
	snap := map[string]FileInfo{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		switch {
		case rel == logDir:
			return fs.SkipDir
		case rel != "." && strings.HasPrefix(logDir, rel+"/"):
			return nil // on the way to the log directory; its entries are walked
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		info := FileInfo{Mode: fi.Mode(), ModTime: fi.ModTime()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			info.Content, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			var data []byte
			data, err = os.ReadFile(p)
			info.Content = string(data)
		}
		if err != nil {
			return err
		}
		if rel == "." {
			info.ModTime = time.Time{}
		}
		snap[rel] = info
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// SameSnapshot fails the test for every path created, removed or changed between two
// snapshots.
func SameSnapshot(t testing.TB, before, after map[string]FileInfo) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s was removed", p)
		case a.Mode != b.Mode:
			t.Errorf("%s: mode changed from %v to %v", p, b.Mode, a.Mode)
		case !a.ModTime.Equal(b.ModTime):
			t.Errorf("%s: mtime changed from %v to %v", p, b.ModTime, a.ModTime)
		case a.Content != b.Content:
			t.Errorf("%s: content changed:\nbefore %q\nafter  %q", p, b.Content, a.Content)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// LogDirFiles returns the files in firstrun's own log directory under root, by name,
// with their content: what Snapshot leaves out.
func LogDirFiles(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(filepath.Join(root, logDir))
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, logDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}
