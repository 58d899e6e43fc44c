// Package e2e runs the real firstrun binary in a booted sandbox instance (package
// sandbox): systemd with its D-Bus, the real dockerd, an ecs.service shaped like Amazon
// Linux's with a fake agent, and a CloudWatch agent stand-in. The tests skip loudly
// where the sandbox cannot run (not root, packages missing) and fail under CI.
package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
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
	return b.firstrunEnv(nil, args...)
}

// firstrunEnv is firstrun with env (KEY=VALUE) added to its environment.
func (b *box) firstrunEnv(env []string, args ...string) result {
	b.t.Helper()
	start := time.Now()
	cmd := append(append([]string{"env"}, env...), append([]string{firstrunBin, "--log-format", "json"}, args...)...)
	out, errOut, code, err := b.s.Exec(b.ctx(3*time.Minute), nil, cmd...)
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
		"[Service]\nType=oneshot\nEnvironment=FIRSTRUN_HEALTH_TIMEOUT=100s\nExecStart=" + firstrunBin + " --log-format json\nTimeoutStartSec=120\nStandardOutput=journal\n"
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/systemd/system/cloud-final.service", []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	// The stock ecs.service's ordering: the image's has no After=cloud-final.service
	// (packer/scripts/ecs-unit.sh), but firstrun may run on a stock ECS AMI too.
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/systemd/system/ecs.service.d/stock-order.conf", []byte("[Unit]\nAfter=cloud-final.service\n"), 0o644); err != nil {
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
	// The inputs of firstrun's environment reach it through its root-only env file
	// (hostpath.HealthEnv), not as a unit property every local user can read.
	if !strings.Contains(journal, `"name":"FIRSTRUN_HEALTH_TIMEOUT","value":"100s","source":"environment"`) {
		t.Errorf("firstrun-health.service did not get the environment's input:\n%s", journal)
	}
	if env := b.sh("stat", "-c", "%a", "/run/firstrun/health.env"); env != "600" {
		t.Errorf("/run/firstrun/health.env mode %s, want 600", env)
	}
	if got := b.agentCluster(); got != "e2e-cluster" {
		t.Errorf("the agent joined %q", got)
	}
}

// startAWS starts, in the instance, AWS's IMDS mock with the metadata of an instance
// that CloudFormation launched in an Auto Scaling group, and the CloudFormation stand-in
// (fakecfn) holding stack.
func startAWS(t *testing.T, b *box, stack cfnsignaltest.Stack) {
	t.Helper()
	startIMDS(t, b)
	cfnCfg, err := json.Marshal(cfnsignaltest.Config{Region: "eu-west-1", Stacks: []cfnsignaltest.Stack{stack}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/fakecfn.json", cfnCfg, 0o644); err != nil {
		t.Fatal(err)
	}
	b.sh("systemd-run", "--unit=fakecfn", sandbox.BinMount+"/fakecfn", "-listen", "127.0.0.1:8081", "-log", "/var/log/fakecfn.jsonl", "-config", "/etc/fakecfn.json")
	// Ready when it listens (a bare TCP connect, so that fakecfn records no request).
	b.sh("bash", "-c", `for i in $(seq 100); do (: </dev/tcp/127.0.0.1/8081) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`)
}

// The instance metadata startIMDS serves, at imdsEndpoint.
const (
	imdsEndpoint   = "http://127.0.0.1:1338"
	imdsInstanceID = "i-0e2e0000000000001"
)

// startIMDS starts, in the instance, AWS's IMDS mock (at imdsEndpoint) with the
// metadata of an instance that CloudFormation launched in an Auto Scaling group, and
// returns once it listens.
func startIMDS(t *testing.T, b *box) {
	t.Helper()
	mock := imdsmock.Config{Region: "eu-west-1", InstanceID: imdsInstanceID, Port: 1338, Hostname: "127.0.0.1", Tags: map[string]string{
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
	b.sh("bash", "-c", `for i in $(seq 100); do (: </dev/tcp/127.0.0.1/1338) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`)
}

// runOnAWS runs firstrun --signal given only the IMDS endpoint and CloudFormation's
// (the stand-in's), and returns its log and exit code.
func runOnAWS(t *testing.T, b *box) (string, int) {
	t.Helper()
	_, errOut, code, err := b.s.Exec(b.ctx(3*time.Minute), nil, "env",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsEndpoint,
		"AWS_ENDPOINT_URL_CLOUDFORMATION=http://127.0.0.1:8081", // the fake, standing in for the regional endpoint
		"FIRSTRUN_HEALTH_TIMEOUT=60s",
		firstrunBin, "--log-format", "json", "--signal")
	if err != nil {
		t.Fatal(err)
	}
	return string(errOut), code
}

// TestOnAWS: on an instance whose metadata says everything (AWS's IMDS mock in the
// sandbox, with the tags CloudFormation and Auto Scaling put on an instance), firstrun
// given only the IMDS endpoint discovers its inputs, joins, and signals SUCCESS to the
// stack whose CreationPolicy waits for it.
func TestOnAWS(t *testing.T) {
	b := boot(t)
	startAWS(t, b, cfnsignaltest.Waiting("e2e-stack", "ECSAutoScalingGroup", 1))
	logs, code := runOnAWS(t, b)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, logs)
	}
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
	want := `{"action":"SignalResource","stack_name":"e2e-stack","logical_resource_id":"ECSAutoScalingGroup","unique_id":"` + imdsInstanceID + `","status":"SUCCESS","sigv4":true,"answer":"OK"}`
	if signals != want {
		t.Errorf("CloudFormation got:\n%s\nwant one request:\n%s", signals, want)
	}
	// One IMDSv2 session token for the whole run: discovery and the instance role's
	// credentials share the client.
	if puts := b.sh("sh", "-c", "journalctl -u imds-mock --no-pager -o cat | grep -c 'GenerateToken Received request' || true"); puts != "1" {
		t.Errorf("the run asked IMDS for %s session tokens, want 1", puts)
	}
	if cw := b.sh("cat", "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"); !strings.Contains(cw, `"/e2e-stack/ec2/e2e-stack-ECSAutoScalingGroup-1A2B/var/log/ecs/ecs-agent"`) {
		t.Errorf("log groups not from the discovered stack and group:\n%s", cw)
	}
}

// TestScaleOutNobodyAwaitsTheSignal: an instance launched after the stack's creation
// (a scale-out, a replacement) joins its cluster and signals; CloudFormation refuses
// the signal, the stack being in CREATE_COMPLETE state, and firstrun, with README's
// user data (--signal), exits 0 after that one request, saying nobody awaited it.
func TestScaleOutNobodyAwaitsTheSignal(t *testing.T) {
	b := boot(t)
	startAWS(t, b, cfnsignaltest.Complete("e2e-stack", "ECSAutoScalingGroup"))
	logs, code := runOnAWS(t, b)
	if code != 0 || !strings.Contains(logs, `"level":"info"`) || !strings.Contains(logs, `"msg":"no signal awaited: Stack arn:aws:cloudformation:eu-west-1:123456789012:stack/e2e-stack/`) ||
		!strings.Contains(logs, `is in CREATE_COMPLETE state and cannot be signaled"`) {
		t.Errorf("exit %d, want 0 with \"no signal awaited: …\" at info\n%s", code, logs)
	}
	if got := b.agentCluster(); got != "tagged-cluster" {
		t.Errorf("the agent joined %q, want tagged-cluster", got)
	}
	signals := strings.Split(b.sh("cat", "/var/log/fakecfn.jsonl"), "\n")
	if len(signals) != 1 || !strings.Contains(signals[0], `"answer":"ValidationError","message":"Stack arn:aws:cloudformation:eu-west-1:`) {
		t.Errorf("CloudFormation got %d requests, want one refused:\n%s", len(signals), strings.Join(signals, "\n"))
	}
}

// cwAgentRun waits, bounded, until the CloudWatch agent stand-in's latest start has
// either started the agent or ended, and returns what that start logged.
func (b *box) cwAgentRun() string {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j := b.sh("journalctl", "-u", "amazon-cloudwatch-agent.service", "--no-pager", "-o", "cat")
		if i := strings.LastIndex(j, "starting fakecwagent"); i >= 0 {
			j = j[i:]
			if strings.Contains(j, "I! running") || strings.Contains(j, "E! ") || strings.Contains(j, "exit now") {
				return j
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the CloudWatch agent stand-in logged no outcome in 30 s:\n%s", j)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCloudWatchAgentAcrossProxyChanges: the CloudWatch agent's start script needs
// common-config.toml (the package ships it, comments only). firstrun adds its [proxy]
// table, changes it, and removes it again, keeping the operator's [credentials] and
// [ssl] byte for byte, and the agent starts every time (it used to fail for good once
// the proxy was removed: firstrun deleted the file). The agent's translator copies the
// proxy password into a 0644 env-config.json: --check warns, without failing.
func TestCloudWatchAgentAcrossProxyChanges(t *testing.T) {
	b := boot(t)
	const cc = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	shipped, err := b.s.ReadFile(b.ctx(10*time.Second), cc)
	if err != nil || !strings.Contains(string(shipped), "# [proxy]") {
		t.Fatalf("the sandbox's shipped common-config.toml: %v\n%s", err, shipped)
	}
	operator := string(shipped) + "\n[credentials]\n   shared_credential_profile = \"AmazonCloudWatchAgent\"\n\n[ssl]\n   ca_bundle_path = \"/etc/ssl/certs/ca-certificates.crt\"\n"
	if err := b.s.WriteFile(b.ctx(10*time.Second), cc, []byte(operator), 0o644); err != nil {
		t.Fatal(err)
	}
	agentUp := func(step string) {
		t.Helper()
		if j := b.cwAgentRun(); !strings.Contains(j, "I! running") {
			t.Errorf("%s: the CloudWatch agent did not start:\n%s", step, j)
		}
		if got := b.prop("amazon-cloudwatch-agent.service", "ActiveState"); got != "active" {
			t.Errorf("%s: amazon-cloudwatch-agent.service is %s", step, got)
		}
	}

	for _, proxy := range []string{"http://bob:p%40ss@proxy.example:3128", "http://proxy2.example:8080"} {
		b.envFile(testenv.WithEnv(baseEnv, "PROXY_URL="+proxy)...)
		b.mustRun()
		agentUp("proxy " + proxy)
		got := b.sh("cat", cc)
		if !strings.HasPrefix(got+"\n", operator) || !strings.Contains(got, `https_proxy = "`+proxy+`"`) {
			t.Errorf("proxy %s: common-config.toml lost the operator's settings or lacks the proxy:\n%s", proxy, got)
		}
		if env := b.sh("cat", "/opt/aws/amazon-cloudwatch-agent/etc/env-config.json"); !strings.Contains(env, `"HTTPS_PROXY": "`+proxy+`"`) ||
			!strings.Contains(env, `"AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"`) {
			t.Errorf("proxy %s: the agent's env-config.json:\n%s", proxy, env)
		}
		c := b.firstrun("--check")
		exposed := strings.Contains(c.stdout, "WARN    proxy credentials") && strings.Contains(c.stdout, "env-config.json (mode 0644)")
		if want := strings.Contains(proxy, "p%40ss"); exposed != want || c.code != 0 || strings.Contains(c.stdout, "p%40ss") {
			t.Errorf("proxy %s: --check exit %d, warns of env-config.json: %v, want %v:\n%s", proxy, c.code, exposed, want, c.stdout)
		}
	}

	b.envFile(baseEnv...)
	r := b.mustRun()
	if a := actions(r)[cc]; a != "updated" {
		t.Errorf("common-config.toml: %q, want updated", a)
	}
	if got, err := b.s.ReadFile(b.ctx(10*time.Second), cc); err != nil || string(got) != operator {
		t.Errorf("after the proxy was removed, common-config.toml (%v):\n%s\nwant the operator's file as it was:\n%s", err, got, operator)
	}
	agentUp("proxy removed")
	if c := b.firstrun("--check"); c.code != 0 {
		t.Errorf("--check after the proxy was removed: exit %d\n%s", c.code, c.stdout)
	}

	// `amazon-cloudwatch-agent-ctl -a fetch-config` keeps only the fetched file in the
	// .d directory (cwa_config, multi_config=default: rm -f of every other file):
	// --check says so, and the next run writes firstrun.json back.
	const own = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"
	b.sh("rm", "-f", own)
	c := b.firstrun("--check")
	if want := "missing: `amazon-cloudwatch-agent-ctl -a fetch-config` deletes the other files in amazon-cloudwatch-agent.d"; c.code != 9 || !strings.Contains(c.stdout, want) {
		t.Errorf("--check after fetch-config: exit %d, want 9 and %q:\n%s", c.code, want, c.stdout)
	}
	if a := actions(b.mustRun())[own]; a != "created" {
		t.Errorf("the rerun after fetch-config: firstrun.json %q, want created", a)
	}
	agentUp("firstrun.json written back")
}
