// Package testenv holds helpers shared by firstrun's tests: loud skips that CI turns
// into failures, and the location of the shared reference files.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need skips the test with a loud message when a requirement is missing, or fails it
// under CI, where .ci/run must have provided everything.
func Need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("REQUIREMENT MISSING under CI: %s (.ci/run must provide it)", what)
	}
	t.Skipf("SKIPPED, requirement missing: %s (CI runs this test)", what)
}

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// SharedFile returns the path of a file in the shared reference directory that sits
// beside the repository (../shared), or FIRSTRUN_SHARED when set, and whether it exists.
func SharedFile(rel string) (string, bool) {
	p, err := sharedFile(rel)
	return p, err == nil
}

// NeedShared returns the path of a shared reference file (see SharedFile), or skips
// the test with one line saying which file and why it is not in the repository. Unlike
// Need, it skips under CI too: the reference files are the chapter's material (the
// seed script firstrun replaces, the CloudWatch agent's schema) that sits beside the
// project's checkout, not a package that .ci/run could install, and a clone of the
// repository alone does not have them.
func NeedShared(t testing.TB, rel string) string {
	t.Helper()
	p, err := sharedFile(rel)
	if err != nil {
		t.Skipf("SKIPPED: %s is not here (%v): it is the chapter's reference material, kept beside the repository in ../shared/ (or FIRSTRUN_SHARED) and not in it; this comparison runs where it is", rel, err)
	}
	return p
}

func sharedFile(rel string) (string, error) {
	dir := os.Getenv("FIRSTRUN_SHARED")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "..", "shared")
	}
	p := filepath.Join(dir, rel)
	_, err := os.Stat(p)
	return p, err
}

// WithEnv returns a copy of base (KEY=value entries) changed: "KEY=value" sets KEY,
// replacing it where present; "-KEY" removes it.
func WithEnv(base []string, changes ...string) []string {
	env := append([]string(nil), base...)
	for _, c := range changes {
		key, _, _ := strings.Cut(strings.TrimPrefix(c, "-"), "=")
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
		if !strings.HasPrefix(c, "-") {
			env = append(env, c)
		}
	}
	return env
}
