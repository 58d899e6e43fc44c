package logfile_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/logfile"
)

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func open(t *testing.T, path string, max int64) *logfile.File {
	t.Helper()
	l, err := logfile.Open(path, max, logfile.Mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func write(t *testing.T, l *logfile.File, s string) {
	t.Helper()
	if n, err := l.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

// TestAppendAcrossRuns: each run opens the file again and appends to what the runs
// before wrote; the directory is created with DirMode.
func TestAppendAcrossRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var/log/firstrun/firstrun.log")
	for _, line := range []string{"run 1\n", "run 2\n"} {
		l := open(t, path, logfile.MaxSize)
		write(t, l, line)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(t, path); got != "run 1\nrun 2\n" {
		t.Errorf("file holds %q", got)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || st.Mode().Perm() != logfile.DirMode {
		t.Errorf("directory: %v, %v", st.Mode(), err)
	}
}

// TestRotation: past the bound the file becomes NAME.1, replacing the generation
// before, so at most two files of about the bound exist whatever the number of runs.
func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	const max = 20
	l := open(t, path, max)
	line := "0123456789\n" // 11 bytes: one fits, two do not
	for i := 0; i < 7; i++ {
		write(t, l, strings.Replace(line, "0", string(rune('a'+i)), 1))
	}
	if got := read(t, path); got != "g123456789\n" {
		t.Errorf("current generation holds %q", got)
	}
	if got := read(t, path+".1"); got != "f123456789\n" {
		t.Errorf("previous generation holds %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("%d files in the directory, want 2", len(entries))
	}
	// A line larger than the bound still goes in whole, alone in its generation.
	big := strings.Repeat("x", 3*max) + "\n"
	write(t, l, big)
	if got := read(t, path); got != big {
		t.Errorf("big line: file holds %q", got)
	}
}

// TestMode: a new file gets Mode whatever the umask, and an existing file with a wider
// mode is narrowed.
func TestMode(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.log")
	open(t, fresh, logfile.MaxSize)
	old := filepath.Join(dir, "old.log")
	if err := os.WriteFile(old, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open(t, old, logfile.MaxSize)
	for _, p := range []string{fresh, old} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", p, st.Mode().Perm(), err)
		}
	}
	// Rotation keeps the mode.
	l := open(t, filepath.Join(dir, "r.log"), 4)
	write(t, l, "abc\n")
	write(t, l, "def\n")
	if st, err := os.Stat(filepath.Join(dir, "r.log")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("rotated file: mode %v, %v", st.Mode().Perm(), err)
	}
}

// TestTornLine: a crash that cut the last line short leaves it alone on its line; the
// next record starts on a line of its own instead of being glued to it.
func TestTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.log")
	if err := os.WriteFile(path, []byte("{\"complete\":1}\n{\"torn\":"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := open(t, path, logfile.MaxSize)
	write(t, l, "{\"next\":2}\n")
	if got := read(t, path); got != "{\"complete\":1}\n{\"torn\":\n{\"next\":2}\n" {
		t.Errorf("file holds %q", got)
	}
	// An intact file gets nothing added.
	l.Close()
	l = open(t, path, logfile.MaxSize)
	write(t, l, "{\"last\":3}\n")
	if got := read(t, path); !strings.HasSuffix(got, "{\"next\":2}\n{\"last\":3}\n") {
		t.Errorf("file holds %q", got)
	}
}

// TestTwoWriters: two processes (a run and firstrun-health.service) append to the same
// file; when one rotates, the other follows to the new file instead of rotating again,
// which would throw away the generation just rotated.
func TestTwoWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "firstrun.log")
	a := open(t, path, 10)
	b := open(t, path, 10)
	write(t, a, "a1\n")
	write(t, b, "b1\n")
	write(t, a, "a2-long\n") // 6+8 > 10: a rotates
	write(t, b, "b2-long\n") // b's file is now .1, size 14 > 10: b reopens, does not rotate
	if got := read(t, path+".1"); got != "a1\nb1\n" {
		t.Errorf("previous generation holds %q", got)
	}
	if got := read(t, path); got != "a2-long\nb2-long\n" {
		t.Errorf("current generation holds %q", got)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := logfile.Open(filepath.Join(dir, "x.log"), 0, logfile.Mode); err == nil {
		t.Error("a zero bound is accepted")
	}
	if err := os.Mkdir(filepath.Join(dir, "d.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := logfile.Open(filepath.Join(dir, "d.log"), 10, logfile.Mode); err == nil || !strings.Contains(err.Error(), "d.log") {
		t.Errorf("a directory where the file goes: %v", err)
	}
	l := open(t, filepath.Join(dir, "c.log"), 10)
	l.Close()
	if _, err := l.Write([]byte("late\n")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Errorf("Sync after Close: %v", err)
	}
}

func TestAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log/metrics.log")
	for _, rec := range []string{"{\"run\":1}\n", "{\"run\":2}\n"} {
		if err := logfile.Append(path, logfile.MaxSize, logfile.Mode, []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(t, path); !bytes.Equal([]byte(got), []byte("{\"run\":1}\n{\"run\":2}\n")) {
		t.Errorf("file holds %q", got)
	}
}
