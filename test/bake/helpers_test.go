package bake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// scriptPath is the host path of one of the image build's scripts.
func scriptPath(name string) string {
	return filepath.Join(testenv.RepoRoot(), "packer", "scripts", name)
}

// readScript returns a script's content, to copy it into a sandbox.
func readScript(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(scriptPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// result is one run of a script.
type result struct {
	code           int
	stdout, stderr string
}

// runScript runs a script with bash on the host, with only PATH and env in its
// environment (so nothing of the tester's leaks in, ROOT least of all).
func runScript(t *testing.T, name string, env ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", scriptPath(name))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/sbin:/usr/bin:/bin"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s%s", name, err, r.stdout, r.stderr)
	}
	t.Logf("%s %s: exit %d\n%s%s", strings.Join(env, " "), name, r.code, r.stdout, r.stderr)
	return r
}

// mustRun runs a script that must exit 0.
func mustRun(t *testing.T, name string, env ...string) result {
	t.Helper()
	r := runScript(t, name, env...)
	if r.code != 0 {
		t.Fatalf("%s: exit %d, want 0\n%s", name, r.code, r.stderr)
	}
	return r
}

// mustFail runs a script that must exit non-zero with wantErr in its stderr.
func mustFail(t *testing.T, wantErr, name string, env ...string) result {
	t.Helper()
	r := runScript(t, name, env...)
	if r.code == 0 {
		t.Fatalf("%s: exit 0, want a failure (%q)", name, wantErr)
	}
	if !strings.Contains(r.stderr, wantErr) {
		t.Errorf("%s: stderr %q does not say %q", name, r.stderr, wantErr)
	}
	return r
}

// writeFiles writes each path → content under root (0644), making directories.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		testenv.WriteFile(t, root, p, content, 0o644)
	}
}

// readFile returns a file's content under root, failing the test if it is missing.
func readFile(t *testing.T, root, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// oldTime is what age sets every timestamp to.
var oldTime = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// age sets the times of everything under root, symlinks and directories included, to
// 2001: a run that then rewrites a file, even with the same bytes in the same clock
// tick as the setup, or creates and removes a temporary file in a directory, shows in
// the modification times a Snapshot records.
func age(t *testing.T, root string) {
	t.Helper()
	stamp := fmt.Sprintf("@%d", oldTime.Unix())
	out, err := exec.Command("find", root, "-exec", "touch", "-h", "-d", stamp, "{}", "+").CombinedOutput()
	if err != nil {
		t.Fatalf("age %s: %v\n%s", root, err, out)
	}
}

// changed lists the paths that a run created, removed or changed between two
// snapshots, sorted; a directory whose entries changed but which is otherwise the same
// is left out (its new or removed entries are listed).
func changed(before, after map[string]testenv.FileInfo) []string {
	var out []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			out = append(out, p+" (removed)")
		case a.Mode != b.Mode || a.Content != b.Content:
			out = append(out, p)
		case !a.ModTime.Equal(b.ModTime) && !a.Mode.IsDir():
			out = append(out, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, p+" (created)")
		}
	}
	sort.Strings(out)
	return out
}

// sameList fails the test unless got and want hold the same strings in the same order.
func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot  %q\nwant %q", what, got, want)
	}
}

// need skips (fails under CI) unless every command is on the PATH; pkgs names the
// Debian packages that have them.
func need(t *testing.T, pkgs string, commands ...string) {
	t.Helper()
	var missing []string
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			if _, err := exec.LookPath(filepath.Join("/usr/sbin", c)); err != nil {
				missing = append(missing, c)
			}
		}
	}
	testenv.Need(t, len(missing) == 0, strings.Join(missing, ", ")+" (Debian: "+pkgs+")")
}

// needRoot skips (fails under CI) unless the test runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "root (mkfs, losetup and mount)")
}
