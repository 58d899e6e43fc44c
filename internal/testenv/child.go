package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// childEnv marks the test process InFreshProcess starts.
const childEnv = "FIRSTRUN_TEST_FRESH_PROCESS"

// InFreshProcess reports whether the calling test runs in a fresh test process of its
// own, where process-wide state is untouched: Go's net/http reads the proxy
// environment once, on first use, so a test of proxy settings run after anything
// else made a request proves nothing. Called in the usual test process, it runs the
// test again in a fresh one, fails t if that run does not pass, and returns false: the
// caller then returns at once. In the fresh process it returns true.
func InFreshProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test in a fresh process failed: %v\n%s", err, out)
	}
	return false
}
