package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// diagnosisLog returns the agent log lines the diagnosis at the end of stderr shows.
func diagnosisLog(stderr string) []string {
	const header = "last lines of /var/log/ecs/ecs-agent.log:"
	i := strings.LastIndex(stderr, header)
	if i < 0 {
		return nil
	}
	rest := stderr[i+len(header):]
	var lines []string
	for _, l := range strings.Split(rest, "\n")[1:] {
		if !strings.HasPrefix(l, "    ") {
			break
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	return lines
}

// TestAgentURLWithoutPath: FIRSTRUN_AGENT_URL=http://127.0.0.1:51678 is the agent, whose
// GET / answers 200 with the list of its paths: firstrun polls /v1/metadata there
// instead of waiting out its timeout (issue 11, finding 4).
func TestAgentURLWithoutPath(t *testing.T) {
	b := boot(t)
	b.envFile(testenv.WithEnv(baseEnv, "FIRSTRUN_AGENT_URL=http://127.0.0.1:51678")...)
	r := b.mustRun()
	if !strings.Contains(r.stderr, `"endpoint":"http://127.0.0.1:51678/v1/metadata"`) || !strings.Contains(r.stderr, `"msg":"registered"`) {
		t.Errorf("firstrun did not poll the metadata endpoint:\n%s", r.stderr)
	}
	// The agent's root answers as the real one does.
	if root := b.sh("curl", "-sS", "--max-time", "5", "--noproxy", "*", "http://127.0.0.1:51678/"); root != `{"AvailableCommands":["/v1/metadata","/v1/tasks","/license"]}` {
		t.Errorf("the agent's GET / answered %s", root)
	}
	// A path that is not the metadata endpoint is bad input: exit 2, naming the variable.
	b.envFile(testenv.WithEnv(baseEnv, "FIRSTRUN_AGENT_URL=http://127.0.0.1:51678/v1/tasks")...)
	if bad := b.firstrun("--log-format", "console"); bad.code != 2 || !strings.Contains(bad.stderr, "FIRSTRUN_AGENT_URL: must be the agent's metadata endpoint, path /v1/metadata") {
		t.Errorf("FIRSTRUN_AGENT_URL with the path /v1/tasks: exit %d, want 2 naming it\n%s", bad.code, bad.stderr)
	}
}

// TestAgentInAnotherCluster: an agent registered to another cluster, which nothing
// restarts (ecs.config already says the right cluster, so firstrun changes nothing),
// makes firstrun fail after the 30 s grace, not after its 2 minutes timeout (issue
// 11, finding 6); with ECS_LOGLEVEL=debug the agent logs each of firstrun's polls,
// and the diagnosis leaves them out of its log tail (finding 7).
func TestAgentInAnotherCluster(t *testing.T) {
	b := boot(t)
	env := testenv.WithEnv(baseEnv, "ECS_LOGLEVEL=debug")
	b.envFile(env...)
	b.mustRun()

	// The agent is moved to "other" behind firstrun's back: its checkpoint removed,
	// restarted with ECS_CLUSTER=other, then ecs.config put back as firstrun wrote it.
	b.sh("cp", "-p", "/etc/ecs/ecs.config", "/root/ecs.config.firstrun")
	b.sh("systemctl", "stop", "ecs")
	b.sh("rm", "-f", "/var/lib/ecs/data/fakeagent-checkpoint.json")
	b.sh("sed", "-i", "s/^ECS_CLUSTER=.*/ECS_CLUSTER=other/", "/etc/ecs/ecs.config")
	b.sh("systemctl", "start", "ecs")
	b.sh("sh", "-c", `for i in $(seq 150); do
		curl -sS --max-time 2 --noproxy '*' http://127.0.0.1:51678/v1/metadata 2>/dev/null | grep -q '"Cluster":"other"' && exit 0
		sleep 0.2; done; exit 1`)
	b.sh("cp", "-p", "/root/ecs.config.firstrun", "/etc/ecs/ecs.config")

	b.envFile(testenv.WithEnv(env, "FIRSTRUN_HEALTH_TIMEOUT=2m")...)
	r := b.firstrun("--log-format", "console")
	if r.code != 8 {
		t.Fatalf("exit %d, want 8\n%s", r.code, r.stderr)
	}
	if want := `the ECS agent is registered to cluster "other", not "e2e-cluster", and stayed so for 30s`; !strings.Contains(r.stderr, want) {
		t.Errorf("the diagnosis does not say %q:\n%s", want, r.stderr)
	}
	if strings.Contains(r.stderr, "within 2m0s") {
		t.Errorf("firstrun waited out its timeout:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "ecs.service: active (running)") {
		t.Errorf("the diagnosis lacks the units' states:\n%s", r.stderr)
	}

	// Finding 7: the agent logged firstrun's polls, the diagnosis shows the rest.
	if polls := b.sh("grep", "-c", `msg="Handling http request"`, "/var/log/ecs/ecs-agent.log"); polls == "0" {
		t.Fatalf("the agent at debug logged no request: the test shows nothing")
	}
	tail := diagnosisLog(r.stderr)
	if len(tail) == 0 {
		t.Fatalf("no agent log lines in the diagnosis:\n%s", r.stderr)
	}
	for _, l := range tail {
		if strings.Contains(l, "Handling http request") {
			t.Errorf("the diagnosis shows the agent's request line %q:\n%s", l, strings.Join(tail, "\n"))
			break
		}
	}
	if !strings.Contains(strings.Join(tail, "\n"), `cluster="other"`) {
		t.Errorf("the diagnosis' log tail lacks the agent's registration to other:\n%s", strings.Join(tail, "\n"))
	}
}

// TestAgentPinnedByCheckpoint: an image baked after its agent once ran keeps that
// agent's checkpoint; the real agent then exits 5 ("Error restoring cluster") and
// ecs.service does not restart it. firstrun's diagnosis shows it.
func TestAgentPinnedByCheckpoint(t *testing.T) {
	b := boot(t)
	b.sh("mkdir", "-p", "/var/lib/ecs/data")
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/var/lib/ecs/data/fakeagent-checkpoint.json", []byte(`{"Cluster":"default"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	b.envFile(testenv.WithEnv(baseEnv, "FIRSTRUN_HEALTH_TIMEOUT=5s")...)
	r := b.firstrun("--log-format", "console")
	if r.code != 8 {
		t.Fatalf("exit %d, want 8\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`did not register to cluster "e2e-cluster" within 5s: last: connection refused`,
		"saved cluster 'default' does not match configured cluster 'e2e-cluster'",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, r.stderr)
		}
	}
	if state := b.sh("systemctl", "show", "-P", "ExecMainStatus", "ecs"); state != "5" {
		t.Errorf("the agent's exit status %s, want 5", state)
	}
	if c := b.firstrun("--check"); c.code != 9 {
		t.Errorf("--check: exit %d, want 9\n%s", c.code, c.stdout)
	}
}
