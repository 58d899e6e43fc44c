package e2e

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkReport is `firstrun --check --output json`'s report.
type checkReport struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

// checkWithoutTerminal runs `firstrun --check --output json` as SSM Run Command does:
// in a session of its own (no controlling terminal), stdin from /dev/null, stdout and
// stderr pipes, with env added. Its own bound is 10 s; the 60 s here only tells a
// --check that never ends from one that does.
func (b *box) checkWithoutTerminal(env ...string) (checkReport, result) {
	b.t.Helper()
	args := append(append([]string{"setsid", "-w", "env"}, env...), firstrunBin, "--check", "--output", "json")
	start := time.Now()
	out, errOut, code, err := b.s.Exec(b.ctx(60*time.Second), nil, args...)
	if err != nil {
		b.t.Fatalf("firstrun --check did not end by itself (given 60 s): %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	r := result{code: code, stdout: string(out), stderr: string(errOut), took: time.Since(start)}
	b.t.Logf("firstrun --check --output json %v: exit %d in %s", env, code, r.took.Round(time.Millisecond))
	var rep checkReport
	if err := json.Unmarshal(out, &rep); err != nil {
		b.t.Fatalf("--check --output json printed no valid JSON (exit %d): %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	return rep, r
}

// status returns the status of the check named name, "" when there is none.
func (rep checkReport) status(name string) string {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

// keepCPUsBusy runs one busy loop a CPU in the sandbox until the test ends.
func (b *box) keepCPUsBusy() {
	b.t.Helper()
	n := runtime.NumCPU()
	for i := range n {
		b.sh("systemd-run", fmt.Sprintf("--unit=busy-%d", i), "/bin/sh", "-c", "while :; do :; done")
	}
	b.t.Cleanup(func() {
		for i := range n {
			_, _, _, _ = b.s.Exec(b.ctx(30*time.Second), nil, "systemctl", "stop", fmt.Sprintf("busy-%d", i))
		}
	})
}

// TestCheckWithoutTerminal: `firstrun --check --output json` as a fleet sweep runs it
// (no terminal) on an instance whose every CPU is busy: exit 0 and valid JSON when all
// holds; and, when the agent's endpoint takes connections but never answers, exit 9
// (a check failed) with valid JSON whose agent registration check fails, ending by
// itself.
func TestCheckWithoutTerminal(t *testing.T) {
	b := boot(t)
	b.envFile(baseEnv...)
	b.mustRun()

	// A listener that accepts and never answers: systemd holds the socket, and the
	// service it starts on the first connection never accepts one.
	const hangs = "127.0.0.1:51999"
	b.sh("systemd-run", "--unit=hanging-agent", "--socket-property=ListenStream="+hangs, "/bin/sleep", "infinity")
	if _, _, code, err := b.s.Exec(b.ctx(30*time.Second), nil, "curl", "-sS", "--noproxy", "*", "--max-time", "2", "http://"+hangs+"/v1/metadata"); err != nil || code != 28 {
		t.Fatalf("the hanging listener: curl exit %d (%v), want 28 (connected, then no answer)", code, err)
	}
	// What setsid starts has no terminal.
	if _, errOut, code, err := b.s.Exec(b.ctx(30*time.Second), nil, "setsid", "-w", "sh", "-c", "! test -t 0 && ! test -t 1 && ! test -t 2 && ! (: </dev/tty) 2>/dev/null"); err != nil || code != 0 {
		t.Fatalf("the command has a terminal: exit %d, %v %s", code, err, errOut)
	}

	b.keepCPUsBusy()

	rep, r := b.checkWithoutTerminal()
	if r.code != 0 || !rep.OK || rep.status("agent registration") != "ok" {
		t.Errorf("--check with all holding: exit %d, ok %v, agent registration %q; want 0, true, ok\n%s\n%s", r.code, rep.OK, rep.status("agent registration"), r.stdout, r.stderr)
	}
	for _, c := range rep.Checks {
		if c.Status == "FAIL" {
			t.Errorf("--check with all holding: %s FAIL: %s", c.Name, c.Detail)
		}
	}

	rep, r = b.checkWithoutTerminal("FIRSTRUN_AGENT_URL=http://" + hangs + "/v1/metadata")
	if r.code != 9 || rep.OK || rep.status("agent registration") != "FAIL" {
		t.Errorf("--check with an agent that never answers: exit %d, ok %v, agent registration %q; want 9, false, FAIL\n%s\n%s",
			r.code, rep.OK, rep.status("agent registration"), r.stdout, r.stderr)
	}
	if strings.TrimSpace(r.stdout) == "" || len(rep.Checks) < 3 {
		t.Errorf("the report is short:\n%s", r.stdout)
	}
}
