// Package runnertest helps tests run firstrun in-process: the chapter's inputs, a
// temporary root that looks like an Amazon Linux 2023 ECS instance, and a run's outcome
// with its JSON log lines parsed.
package runnertest

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/testenv"
)

// ChapterEnv are the chapter's inputs, with a proxy that carries credentials.
var ChapterEnv = []string{
	"ECS_CLUSTER=microtrader-cluster",
	"PROXY_URL=bob:p%40ss@proxy.internal:3128",
	"STACK_NAME=microtrader",
	"AUTOSCALING_GROUP=microtrader-ApplicationAutoscalingGroup-1X2Y",
	"AWS_DEFAULT_REGION=us-east-1",
	"PATH=/usr/bin:/bin",
}

// Root returns a temporary root that looks like an AL2023 ECS instance with the
// CloudWatch agent installed and an ecs.config holding a user's line.
func Root(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	testenv.WriteFile(t, root, hostpath.CloudWatchAgentBinary, "", 0o755)
	testenv.WriteFile(t, root, hostpath.ECSConfig, "ECS_LOGLEVEL=debug\n", 0o644)
	return root
}

// Read returns a file's content under root, "" and false when it does not exist.
func Read(t testing.TB, root, p string) (string, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, p))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data), true
}

// Result is one run's outcome.
type Result struct {
	Code   int
	Stdout string
	// Logs are the JSON log lines, parsed.
	Logs   []map[string]any
	Stderr string
}

// Parse parses a run's JSON log lines; lines not starting with '{' (console logs, the
// readable error) are left in Stderr only.
func Parse(t testing.TB, code int, stdout, stderr string) Result {
	t.Helper()
	r := Result{Code: code, Stdout: stdout, Stderr: stderr}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		r.Logs = append(r.Logs, m)
	}
	return r
}

// Actions returns the action logged for each file.
func (r Result) Actions() map[string]string {
	m := map[string]string{}
	for _, l := range r.Logs {
		if l["msg"] == "file" {
			m[l["path"].(string)] = l["action"].(string)
		}
	}
	return m
}

// Logged reports whether a log line has message msg and the field key.
func (r Result) Logged(msg, key string) bool {
	return r.Line(msg, key) != nil
}

// Line returns the first log line with message msg and the field key, nil when none.
func (r Result) Line(msg, key string) map[string]any {
	for _, l := range r.Logs {
		if _, ok := l[key]; ok && l["msg"] == msg {
			return l
		}
	}
	return nil
}

// PhaseDone reports whether the phase was logged as done.
func (r Result) PhaseDone(phase string) bool {
	for _, l := range r.Logs {
		if l["msg"] == "phase done" && l["phase"] == phase {
			return true
		}
	}
	return false
}
