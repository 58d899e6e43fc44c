// Package e2e runs the real firstrun binary in a booted sandbox instance (package
// sandbox): systemd with its D-Bus, the real dockerd, an ecs.service shaped like Amazon
// Linux's with a fake agent, and a CloudWatch agent stand-in. The tests skip loudly
// where the sandbox cannot run (not root, packages missing) and fail under CI.
package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"

	"github.com/firstrun/firstrun/test/e2e/sandbox"
	"github.com/firstrun/firstrun/test/imdsmock"
)

// firstrunBin is where the sandbox has the firstrun binary built from this tree.
const firstrunBin = sandbox.BinMount + "/firstrun"

// baseEnv are the inputs of the tests' env file.
var baseEnv = []string{
	"ECS_CLUSTER=e2e-cluster",
	"STACK_NAME=e2e",
	"AUTOSCALING_GROUP=e2e-asg",
	"FIRSTRUN_HEALTH_TIMEOUT=60s",
	"FIRSTRUN_SERVICE_TIMEOUT=60s",
	"FIRSTRUN_IMDS=off", // the sandbox has no instance metadata but in TestOnAWS
}

// box is one booted sandbox and a test's helpers around it.
type box struct {
	t *testing.T
	s *sandbox.Sandbox
}

func boot(t *testing.T) *box {
	t.Parallel()
	return &box{t: t, s: sandbox.Boot(t)}
}

// ctx bounds one step.
func (b *box) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	b.t.Cleanup(cancel)
	return ctx
}

// sh runs a command that must succeed and returns its trimmed stdout.
func (b *box) sh(args ...string) string {
	b.t.Helper()
	out, err := b.s.Run(b.ctx(60*time.Second), args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// envFile writes firstrun's env file.
func (b *box) envFile(lines ...string) {
	b.t.Helper()
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/firstrun/firstrun.env", []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

// result is one firstrun run in the sandbox.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// firstrun runs the real binary in the sandbox, with JSON logs.
func (b *box) firstrun(args ...string) result {
	b.t.Helper()
	start := time.Now()
	out, errOut, code, err := b.s.Exec(b.ctx(3*time.Minute), nil, append([]string{firstrunBin, "--log-format", "json"}, args...)...)
	if err != nil {
		b.t.Fatalf("firstrun could not run: %v", err)
	}
	r := result{code: code, stdout: string(out), stderr: string(errOut), took: time.Since(start)}
	b.t.Logf("firstrun %s: exit %d in %s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond))
	return r
}

// mustRun runs firstrun and fails the test unless it exits 0.
func (b *box) mustRun(args ...string) result {
	b.t.Helper()
	r := b.firstrun(args...)
	if r.code != 0 {
		b.t.Fatalf("firstrun %q: exit %d\n%s", args, r.code, r.stderr)
	}
	return r
}

// prop reads one property of a unit.
func (b *box) prop(unit, name string) string {
	b.t.Helper()
	return b.sh("systemctl", "show", "--property", name, "--value", unit)
}

// mainEnv returns the environment of a unit's main process.
func (b *box) mainEnv(unit string) []string {
	b.t.Helper()
	pid := b.prop(unit, "MainPID")
	if pid == "" || pid == "0" {
		b.t.Fatalf("%s has no main process", unit)
	}
	data, err := b.s.ReadFile(b.ctx(10*time.Second), "/proc/"+pid+"/environ")
	if err != nil {
		b.t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// agentCluster asks the agent in the sandbox which cluster it joined.
func (b *box) agentCluster() string {
	b.t.Helper()
	return b.sh("sh", "-c", `curl -sS --max-time 5 --noproxy '*' http://127.0.0.1:51678/v1/metadata | sed -n 's/.*"Cluster":"\([^"]*\)".*/\1/p'`)
}

// stamps returns each file's path, size and modification time, for proof that a
// rerun touched nothing.
func (b *box) stamps(paths ...string) string {
	b.t.Helper()
	return b.sh(append([]string{"stat", "-c", "%n %s %.9Y %a"}, paths...)...)
}

// actions returns the action logged for each file.
func actions(r result) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(r.stderr, "\n") {
		if !strings.Contains(line, `"msg":"file"`) {
			continue
		}
		path := field(line, "path")
		m[path] = field(line, "action")
	}
	return m
}

// field extracts a string field from a JSON log line (enough for these logs).
func field(line, key string) string {
	_, rest, ok := strings.Cut(line, `"`+key+`":"`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// hasKey reports whether env sets key.
func hasKey(env []string, key string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

var managed = []string{
	"/etc/ecs/ecs.config",
	"/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json",
	"/var/lib/firstrun/state.json",
	"/var/lib/firstrun/last-run.json",
}

func TestHappyPathRerunAndCheck(t *testing.T) {
	b := boot(t)
	b.envFile(baseEnv...)
	r := b.mustRun()
	if !strings.Contains(r.stderr, `"msg":"registered"`) {
		t.Errorf("no registration logged:\n%s", r.stderr)
	}
	if cfg := b.sh("cat", "/etc/ecs/ecs.config"); !strings.Contains(cfg, "ECS_CLUSTER=e2e-cluster") {
		t.Errorf("ecs.config:\n%s", cfg)
	}
	for _, unit := range []string{"docker.service", "ecs.service", "amazon-cloudwatch-agent.service"} {
		if got := b.prop(unit, "UnitFileState"); got != "enabled" {
			t.Errorf("%s is %s, want enabled", unit, got)
		}
		if got := b.prop(unit, "ActiveState"); got != "active" {
			t.Errorf("%s is %s, want active", unit, got)
		}
	}
	if got := b.agentCluster(); got != "e2e-cluster" {
		t.Errorf("the agent joined %q, want e2e-cluster", got)
	}
	if !slices.Contains(b.mainEnv("ecs.service"), "ECS_CLUSTER=e2e-cluster") {
		t.Errorf("ecs.service's process did not get ECS_CLUSTER from ecs.config: %q", b.mainEnv("ecs.service"))
	}

	// A rerun converges on what is there: nothing written, nothing restarted.
	before := b.stamps(managed...)
	pids := b.prop("docker.service", "MainPID") + " " + b.prop("ecs.service", "MainPID") + " " + b.prop("amazon-cloudwatch-agent.service", "MainPID")
	r = b.mustRun()
	for p, a := range actions(r) {
		if a != "unchanged" {
			t.Errorf("rerun: %s %s", p, a)
		}
	}
	if strings.Contains(r.stderr, `"action":"restarted"`) || strings.Contains(r.stderr, `"action":"reloaded"`) {
		t.Errorf("rerun restarted or reloaded something:\n%s", r.stderr)
	}
	if after := b.stamps(managed...); after != before {
		t.Errorf("rerun touched files:\nbefore %s\nafter  %s", before, after)
	}
	if now := b.prop("docker.service", "MainPID") + " " + b.prop("ecs.service", "MainPID") + " " + b.prop("amazon-cloudwatch-agent.service", "MainPID"); now != pids {
		t.Errorf("rerun restarted services: main PIDs %s, then %s", pids, now)
	}

	// --check: green now; red, with the diff, once ecs.config is edited by hand.
	c := b.firstrun("--check")
	if c.code != 0 || !strings.Contains(c.stdout, "all checks hold") {
		t.Errorf("--check after success: exit %d\n%s%s", c.code, c.stdout, c.stderr)
	}
	b.sh("sed", "-i", "s/^ECS_CLUSTER=.*/ECS_CLUSTER=edited-by-hand/", "/etc/ecs/ecs.config")
	c = b.firstrun("--check")
	if c.code != 9 {
		t.Errorf("--check after a hand edit: exit %d, want 9\n%s", c.code, c.stdout)
	}
	for _, want := range []string{"-ECS_CLUSTER=edited-by-hand", "+ECS_CLUSTER=e2e-cluster", "FAIL"} {
		if !strings.Contains(c.stdout, want) {
			t.Errorf("--check report lacks %q:\n%s", want, c.stdout)
		}
	}
}

func TestProxyAddedThenRemoved(t *testing.T) {
	b := boot(t)
	const proxy = "http://proxy.example:3128"
	b.envFile(testenv.WithEnv(baseEnv, "PROXY_URL="+proxy)...)
	b.mustRun()
	if got := b.sh("docker", "info", "--format", "{{.HTTPProxy}}|{{.HTTPSProxy}}|{{.NoProxy}}"); got != proxy+"|"+proxy+"|169.254.169.254,169.254.170.2" {
		t.Errorf("docker info shows proxy settings %q", got)
	}
	env := b.mainEnv("ecs.service")
	for _, want := range []string{"HTTP_PROXY=" + proxy, "NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock"} {
		if !slices.Contains(env, want) {
			t.Errorf("ecs.service's process lacks %s: %q", want, env)
		}
	}
	dockerPID := b.prop("docker.service", "MainPID")

	b.envFile(baseEnv...)
	r := b.mustRun()
	for _, p := range []string{"/etc/systemd/system/docker.service.d/http-proxy.conf", "/etc/systemd/system/ecs.service.d/http-proxy.conf"} {
		if actions(r)[p] != "removed" {
			t.Errorf("%s: %q, want removed", p, actions(r)[p])
		}
	}
	if got := b.sh("docker", "info", "--format", "{{.HTTPProxy}}"); got != "" {
		t.Errorf("docker still has the proxy %q", got)
	}
	if env := b.mainEnv("ecs.service"); hasKey(env, "HTTP_PROXY") || hasKey(env, "NO_PROXY") {
		t.Errorf("ecs.service's process still has proxy settings: %q", env)
	}
	if b.prop("docker.service", "MainPID") == dockerPID {
		t.Error("docker was not restarted when its proxy was removed")
	}
	if got := b.agentCluster(); got != "e2e-cluster" {
		t.Errorf("after the restarts the agent is in %q", got)
	}
}

// failingAgent sets the fake agent's knob, runs firstrun with a 5 s health timeout and
// console logs, and fails the test unless it exits 8.
func (b *box) failingAgent(knob string) result {
	b.t.Helper()
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/fakeagent.env", []byte(knob+"\n"), 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.envFile(testenv.WithEnv(baseEnv, "FIRSTRUN_HEALTH_TIMEOUT=5s")...)
	r := b.firstrun("--log-format", "console")
	if r.code != 8 {
		b.t.Fatalf("exit %d, want 8\n%s", r.code, r.stderr)
	}
	return r
}

func TestAgentNeverRegisters(t *testing.T) {
	b := boot(t)
	r := b.failingAgent("FAKEAGENT_NEVER_REGISTER=true")
	// The bound: 5 s of waiting, after docker's start; generous for a shared machine.
	if r.took > 90*time.Second {
		t.Errorf("firstrun took %s with a 5 s health timeout", r.took)
	}
	for _, want := range []string{
		`did not register to cluster "e2e-cluster" within 5s: last: connection refused`,
		"docker.service: active (running), enabled",
		"ecs.service: active (running), enabled",
		"last lines of /var/log/ecs/ecs-agent.log:",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, r.stderr)
		}
	}
	if last := b.sh("cat", "/var/lib/firstrun/last-run.json"); !strings.Contains(last, `"result": "failed"`) || !strings.Contains(last, `"failed_phase": "health"`) {
		t.Errorf("marker: %s", last)
	}
}

func TestStartedFromCloudFinalDoesNotDeadlock(t *testing.T) {
	b := boot(t)
	b.envFile(baseEnv...)
	// cloud-init runs user data in cloud-final.service's start job, and ecs.service is
	// ordered After=cloud-final.service: a firstrun that waited there for the agent
	// would hold cloud-final until its timeout.
	unit := "[Unit]\nDescription=stand-in for cloud-init's final stage, running user data\n\n" +
		"[Service]\nType=oneshot\nExecStart=" + firstrunBin + " --log-format json\nTimeoutStartSec=120\nStandardOutput=journal\n"
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/systemd/system/cloud-final.service", []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sh("systemctl", "daemon-reload")
	start := time.Now()
	if _, err := b.s.Run(b.ctx(150*time.Second), "systemctl", "start", "cloud-final.service"); err != nil {
		t.Fatalf("cloud-final.service: %v\n%s", err, b.sh("journalctl", "-u", "cloud-final.service", "--no-pager", "-n", "50"))
	}
	t.Logf("cloud-final.service with firstrun finished in %s", time.Since(start).Round(time.Millisecond))
	if got := b.prop("cloud-final.service", "Result"); got != "success" {
		t.Errorf("cloud-final.service result %s", got)
	}

	// firstrun-health.service waits instead and records the outcome.
	ctx := b.ctx(90 * time.Second)
	for {
		c := b.firstrun("--check")
		if c.code == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("--check never turned green after the hand-over:\n%s\n%s", c.stdout, b.sh("journalctl", "-u", "firstrun-health.service", "--no-pager", "-n", "50"))
		case <-time.After(500 * time.Millisecond):
		}
	}
	journal := b.sh("journalctl", "-u", "firstrun-health.service", "--no-pager", "-o", "cat")
	if !strings.Contains(journal, `"msg":"registered"`) {
		t.Errorf("firstrun-health.service did not log the registration:\n%s", journal)
	}
	if got := b.agentCluster(); got != "e2e-cluster" {
		t.Errorf("the agent joined %q", got)
	}
}

// TestOnAWS: on an instance whose metadata says everything (AWS's IMDS mock in the
// sandbox, with the tags CloudFormation and Auto Scaling put on an instance), firstrun
// given only the IMDS endpoint discovers its inputs, joins, and signals SUCCESS.
func TestOnAWS(t *testing.T) {
	b := boot(t)
	mock := imdsmock.Config{Region: "eu-west-1", InstanceID: "i-0e2e0000000000001", Port: 1338, Hostname: "127.0.0.1", Tags: map[string]string{
		"aws:cloudformation:stack-name": "e2e-stack",
		"aws:cloudformation:logical-id": "ECSAutoScalingGroup",
		"aws:autoscaling:groupName":     "e2e-stack-ECSAutoScalingGroup-1A2B",
		"ecs:cluster-name":              "tagged-cluster",
	}}
	cfg, err := mock.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/imds-mock.json", cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	b.sh("systemd-run", "--unit=imds-mock", "--setenv=HOME=/root", sandbox.BinMount+"/ec2-metadata-mock", "-c", "/etc/imds-mock.json")
	b.sh("systemd-run", "--unit=fakecfn", sandbox.BinMount+"/fakecfn", "-listen", "127.0.0.1:8081", "-log", "/var/log/fakecfn.jsonl")
	// Ready when both listen (a bare TCP connect, so that fakecfn records no request).
	b.sh("bash", "-c", `for i in $(seq 100); do
		(: </dev/tcp/127.0.0.1/1338) 2>/dev/null && (: </dev/tcp/127.0.0.1/8081) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`)

	out, errOut, code, err := b.s.Exec(b.ctx(3*time.Minute), nil, "env",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338",
		"AWS_ENDPOINT_URL_CLOUDFORMATION=http://127.0.0.1:8081", // the fake, standing in for the regional endpoint
		"FIRSTRUN_HEALTH_TIMEOUT=60s",
		firstrunBin, "--log-format", "json", "--signal")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	logs := string(errOut)
	for _, want := range []string{
		`"name":"ECS_CLUSTER","value":"tagged-cluster","source":"instance metadata"`,
		`"name":"STACK_NAME","value":"e2e-stack","source":"instance metadata"`,
		`"name":"AUTOSCALING_GROUP","value":"e2e-stack-ECSAutoScalingGroup-1A2B","source":"instance metadata"`,
		`"name":"AWS_REGION","value":"eu-west-1","source":"instance metadata"`,
		`"msg":"CloudFormation signalled"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if got := b.agentCluster(); got != "tagged-cluster" {
		t.Errorf("the agent joined %q, want tagged-cluster", got)
	}
	signals := b.sh("cat", "/var/log/fakecfn.jsonl")
	want := `{"action":"SignalResource","stack_name":"e2e-stack","logical_resource_id":"ECSAutoScalingGroup","unique_id":"i-0e2e0000000000001","status":"SUCCESS","sigv4":true}`
	if signals != want {
		t.Errorf("CloudFormation got:\n%s\nwant one request:\n%s", signals, want)
	}
	// One IMDSv2 session token for the whole run: discovery and the instance role's
	// credentials share the client.
	if puts := b.sh("sh", "-c", "journalctl -u imds-mock --no-pager -o cat | grep -c 'GenerateToken Received request' || true"); puts != "1" {
		t.Errorf("the run asked IMDS for %s session tokens, want 1", puts)
	}
	if json := b.sh("cat", "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"); !strings.Contains(json, `"/e2e-stack/ec2/e2e-stack-ECSAutoScalingGroup-1A2B/var/log/ecs/ecs-agent"`) {
		t.Errorf("log groups not from the discovered stack and group:\n%s", json)
	}
}
