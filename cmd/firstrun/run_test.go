package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// chapterEnv are the chapter's inputs, with a proxy that carries credentials.
var chapterEnv = []string{
	"ECS_CLUSTER=microtrader-cluster",
	"PROXY_URL=bob:p%40ss@proxy.internal:3128",
	"STACK_NAME=microtrader",
	"AUTOSCALING_GROUP=microtrader-ApplicationAutoscalingGroup-1X2Y",
	"AWS_DEFAULT_REGION=us-east-1",
	"PATH=/usr/bin:/bin",
}

// frRoot returns a temporary root that looks like an AL2023 ECS instance with the
// CloudWatch agent installed and an ecs.config holding a user's line.
func frRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	testenv.WriteFile(t, root, "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent", "", 0o755)
	testenv.WriteFile(t, root, "/etc/ecs/ecs.config", "ECS_LOGLEVEL=debug\n", 0o644)
	return root
}

// frRead returns a file's content under root, "" and false when it does not exist.
func frRead(t *testing.T, root, p string) (string, bool) {
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

// frResult is one run's outcome.
type frResult struct {
	code   int
	stdout string
	logs   []map[string]any
	stderr string
}

// actions returns the action logged for each file.
func (r frResult) actions() map[string]string {
	m := map[string]string{}
	for _, l := range r.logs {
		if l["msg"] == "file" {
			m[l["path"].(string)] = l["action"].(string)
		}
	}
	return m
}

// logged reports whether a log line has message msg and the field key.
func (r frResult) logged(msg, key string) bool {
	for _, l := range r.logs {
		if _, ok := l[key]; ok && l["msg"] == msg {
			return true
		}
	}
	return false
}

// phaseDone reports whether the phase was logged as done.
func (r frResult) phaseDone(phase string) bool {
	for _, l := range r.logs {
		if l["msg"] == "phase done" && l["phase"] == phase {
			return true
		}
	}
	return false
}

// frRun runs firstrun in-process with JSON logs and parses them.
func frRun(t *testing.T, env []string, args ...string) frResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"--log-format", "json"}, args...), env, &stdout, &stderr)
	return parseResult(t, code, stdout.String(), stderr.String())
}

// parseResult parses a run's JSON log lines; lines not starting with '{' (console
// logs, the readable error) are left in stderr only.
func parseResult(t *testing.T, code int, stdout, stderr string) frResult {
	t.Helper()
	r := frResult{code: code, stdout: stdout, stderr: stderr}
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
		r.logs = append(r.logs, m)
	}
	return r
}

func TestDryRunShowsChapterFilesAndWritesNothing(t *testing.T) {
	root := frRoot(t)
	before := testenv.Snapshot(t, root)
	r := frRun(t, chapterEnv, "--root", root, "--dry-run")
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"+++ b/etc/ecs/ecs.config",
		"+ECS_CLUSTER=microtrader-cluster",
		"+HTTP_PROXY=http://bob:REDACTED@proxy.internal:3128",
		"+++ b/etc/systemd/system/docker.service.d/http-proxy.conf",
		"+++ b/etc/systemd/system/ecs.service.d/http-proxy.conf",
		"+++ b/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml",
		"+++ b/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json",
		`"log_group_name": "/microtrader/ec2/microtrader-ApplicationAutoscalingGroup-1X2Y/var/log/ecs/ecs-agent"`,
		" ECS_LOGLEVEL=debug",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "p%40ss") {
		t.Error("the proxy password is shown")
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
}

func TestRunTwiceIsIdempotent(t *testing.T) {
	root := frRoot(t)
	first := frRun(t, chapterEnv, "--root", root)
	if first.code != exitOK {
		t.Fatalf("first run: exit %d\n%s", first.code, first.stderr)
	}
	created := 0
	for p, a := range first.actions() {
		if a == "created" {
			created++
		} else if p != "/etc/ecs/ecs.config" {
			t.Errorf("first run: %s %s", p, a)
		}
	}
	if created != 5 {
		t.Errorf("first run created %d files, want 5 (2 drop-ins, common-config, agent JSON, state): %v", created, first.actions())
	}
	// Let a rewrite show in mtimes, however coarse the filesystem's clock.
	time.Sleep(20 * time.Millisecond)
	before := testenv.Snapshot(t, root)
	second := frRun(t, chapterEnv, "--root", root)
	if second.code != exitOK {
		t.Fatalf("second run: exit %d\n%s", second.code, second.stderr)
	}
	if len(second.actions()) != 6 {
		t.Errorf("second run reported %d files, want 6", len(second.actions()))
	}
	for p, a := range second.actions() {
		if a != "unchanged" {
			t.Errorf("second run: %s %s, want unchanged", p, a)
		}
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
	if d := frRun(t, chapterEnv, "--root", root, "--dry-run"); d.stdout != "" {
		t.Errorf("dry run after convergence shows a diff:\n%s", d.stdout)
	}
}

func TestWrittenFiles(t *testing.T) {
	root := frRoot(t)
	if r := frRun(t, chapterEnv, "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	ecs, _ := frRead(t, root, "/etc/ecs/ecs.config")
	want := "ECS_LOGLEVEL=debug\n" +
		"ECS_CLUSTER=microtrader-cluster\n" +
		"HTTP_PROXY=http://bob:p%40ss@proxy.internal:3128\n" +
		"HTTPS_PROXY=http://bob:p%40ss@proxy.internal:3128\n" +
		"NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n"
	if ecs != want {
		t.Errorf("ecs.config:\n%s\nwant:\n%s", ecs, want)
	}
	modes := map[string]os.FileMode{
		"/etc/ecs/ecs.config": 0o600,
		"/etc/systemd/system/docker.service.d/http-proxy.conf":                         0o600,
		"/etc/systemd/system/ecs.service.d/http-proxy.conf":                            0o600,
		"/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml":                      0o600,
		"/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json": 0o644,
		"/var/lib/firstrun/state.json":                                                 0o644,
	}
	for p, m := range modes {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != m {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), m)
		}
	}
	docker, _ := frRead(t, root, "/etc/systemd/system/docker.service.d/http-proxy.conf")
	if !strings.Contains(docker, `Environment="HTTPS_PROXY=http://bob:p%%40ss@proxy.internal:3128"`) {
		t.Errorf("docker drop-in does not escape %% for systemd:\n%s", docker)
	}
}

// operatorCommonConfig is a common-config.toml an operator edited: firstrun may touch
// only its [proxy] table.
const operatorCommonConfig = "# site settings\n[credentials]\n   shared_credential_profile = \"AmazonCloudWatchAgent\"\n\n[ssl]\n   ca_bundle_path = \"/etc/pki/site.pem\"\n"

func TestProxyRemovedOnRerun(t *testing.T) {
	root := frRoot(t)
	const commonConfig = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	testenv.WriteFile(t, root, commonConfig, operatorCommonConfig, 0o644)
	if r := frRun(t, chapterEnv, "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if cc, _ := frRead(t, root, commonConfig); !strings.HasPrefix(cc, operatorCommonConfig) || !strings.Contains(cc, "[proxy]") {
		t.Errorf("common-config.toml with the proxy lost the operator's settings or lacks [proxy]:\n%s", cc)
	}
	// The user adds a line of their own after the first run.
	ecs, _ := frRead(t, root, "/etc/ecs/ecs.config")
	testenv.WriteFile(t, root, "/etc/ecs/ecs.config", ecs+"ECS_RESERVED_MEMORY=256\n", 0o600)

	r := frRun(t, testenv.WithEnv(chapterEnv, "-PROXY_URL"), "--root", root)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, p := range []string{
		"/etc/systemd/system/docker.service.d/http-proxy.conf",
		"/etc/systemd/system/ecs.service.d/http-proxy.conf",
	} {
		if _, ok := frRead(t, root, p); ok {
			t.Errorf("%s still exists", p)
		}
		if r.actions()[p] != "removed" {
			t.Errorf("%s: action %q, want removed", p, r.actions()[p])
		}
	}
	// The CloudWatch agent's start script needs common-config.toml: only firstrun's
	// [proxy] table goes, the operator's settings stay byte for byte.
	if cc, ok := frRead(t, root, commonConfig); !ok || cc != operatorCommonConfig {
		t.Errorf("common-config.toml after the proxy was removed (exists %v):\n%s\nwant the operator's file as it was:\n%s", ok, cc, operatorCommonConfig)
	}
	if a := r.actions()[commonConfig]; a != "updated" {
		t.Errorf("%s: action %q, want updated", commonConfig, a)
	}
	ecs, _ = frRead(t, root, "/etc/ecs/ecs.config")
	if want := "ECS_LOGLEVEL=debug\nECS_CLUSTER=microtrader-cluster\nECS_RESERVED_MEMORY=256\n"; ecs != want {
		t.Errorf("ecs.config:\n%s\nwant:\n%s", ecs, want)
	}
	st, _ := frRead(t, root, "/var/lib/firstrun/state.json")
	if strings.Contains(st, "http-proxy.conf") || strings.Contains(st, "HTTP_PROXY") || strings.Contains(st, "proxy.http_proxy") {
		t.Errorf("state still owns proxy settings:\n%s", st)
	}
	for p, a := range frRun(t, testenv.WithEnv(chapterEnv, "-PROXY_URL"), "--root", root).actions() {
		if a != "unchanged" {
			t.Errorf("third run: %s %s", p, a)
		}
	}
}

// TestSeedBugs are regressions for the chapter's script: `[ -n $PROXY_URL ]` is true
// for an empty PROXY_URL, and `>>` appends the proxy lines again on every rerun.
func TestSeedBugs(t *testing.T) {
	t.Run("empty PROXY_URL writes no proxy setting", func(t *testing.T) {
		root := frRoot(t)
		env := append(testenv.WithEnv(chapterEnv, "-PROXY_URL"), "PROXY_URL=")
		if r := frRun(t, env, "--root", root); r.code != exitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		ecs, _ := frRead(t, root, "/etc/ecs/ecs.config")
		if strings.Contains(ecs, "PROXY") {
			t.Errorf("ecs.config has proxy lines:\n%s", ecs)
		}
		for _, p := range []string{"/etc/systemd/system/docker.service.d", "/etc/systemd/system/ecs.service.d", "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"} {
			if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
				t.Errorf("%s exists", p)
			}
		}
	})
	t.Run("reruns and the seed's duplicates leave one line a key", func(t *testing.T) {
		root := frRoot(t)
		testenv.WriteFile(t, root, "/etc/ecs/ecs.config", "ECS_CLUSTER=old\nHTTPS_PROXY=http://old:1\nNO_PROXY=x\nHTTPS_PROXY=http://old:1\nNO_PROXY=x\n", 0o644)
		for i := 0; i < 3; i++ {
			if r := frRun(t, chapterEnv, "--root", root); r.code != exitOK {
				t.Fatalf("run %d: exit %d\n%s", i, r.code, r.stderr)
			}
		}
		ecs, _ := frRead(t, root, "/etc/ecs/ecs.config")
		for _, key := range []string{"ECS_CLUSTER=", "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY="} {
			if n := strings.Count("\n"+ecs, "\n"+key); n != 1 {
				t.Errorf("%s appears %d times:\n%s", key, n, ecs)
			}
		}
	})
}

func TestECSSettingsFollowTheirInput(t *testing.T) {
	root := frRoot(t)
	testenv.WriteFile(t, root, "/etc/ecs/ecs.config", "ECS_HAND_WRITTEN=yes\n", 0o600)
	env := append(testenv.WithEnv(chapterEnv, "-PROXY_URL"), "ECS_ENABLE_CONTAINER_METADATA=true")
	if r := frRun(t, env, "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	ecs, _ := frRead(t, root, "/etc/ecs/ecs.config")
	if !strings.Contains(ecs, "\nECS_ENABLE_CONTAINER_METADATA=true\n") {
		t.Fatalf("setting not written:\n%s", ecs)
	}
	if r := frRun(t, testenv.WithEnv(chapterEnv, "-PROXY_URL"), "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	ecs, _ = frRead(t, root, "/etc/ecs/ecs.config")
	if want := "ECS_HAND_WRITTEN=yes\nECS_CLUSTER=microtrader-cluster\n"; ecs != want {
		t.Errorf("ecs.config:\n%s\nwant:\n%s", ecs, want)
	}
}

func TestLogAgentSwitchRemovesItsFiles(t *testing.T) {
	root := frRoot(t)
	if r := frRun(t, chapterEnv, "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	r := frRun(t, append(chapterEnv, "FIRSTRUN_LOG_AGENT=awslogs"), "--root", root)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, ok := frRead(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"); ok {
		t.Error("CloudWatch agent config left behind")
	}
	for _, p := range []string{"/etc/awslogs/awslogs.conf", "/etc/awslogs/awscli.conf", "/etc/awslogs/proxy.conf"} {
		if _, ok := frRead(t, root, p); !ok {
			t.Errorf("%s not written", p)
		}
	}
	cli, _ := frRead(t, root, "/etc/awslogs/awscli.conf")
	if !strings.Contains(cli, "region = us-east-1") {
		t.Errorf("awscli.conf:\n%s", cli)
	}
	r = frRun(t, append(chapterEnv, "FIRSTRUN_LOG_AGENT=none"), "--root", root)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/awslogs")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "/etc/awslogs"))
	if len(entries) != 0 {
		t.Errorf("/etc/awslogs still holds %v", entries)
	}
}

// TestNeverRemovesWhatItDidNotWrite: a drop-in the user wrote by hand is not firstrun's
// to remove, even without a proxy.
func TestNeverRemovesWhatItDidNotWrite(t *testing.T) {
	root := frRoot(t)
	p := "/etc/systemd/system/docker.service.d/http-proxy.conf"
	testenv.WriteFile(t, root, p, "[Service]\nEnvironment=HTTP_PROXY=http://theirs:3128\n", 0o644)
	if r := frRun(t, testenv.WithEnv(chapterEnv, "-PROXY_URL"), "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got, ok := frRead(t, root, p); !ok || !strings.Contains(got, "theirs") {
		t.Errorf("user's drop-in changed: %q %v", got, ok)
	}
}

func TestEnvFileAndEnvironmentWins(t *testing.T) {
	root := frRoot(t)
	testenv.WriteFile(t, root, "/etc/firstrun/firstrun.env", "# from user data\nECS_CLUSTER=from-file\nSTACK_NAME=filestack\nAUTOSCALING_GROUP=\"file-asg\"\nAWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338\n", 0o600)
	r := frRun(t, []string{"ECS_CLUSTER=from-env"}, "--root", root)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	ecs, _ := frRead(t, root, "/etc/ecs/ecs.config")
	if !strings.Contains(ecs, "ECS_CLUSTER=from-env\n") {
		t.Errorf("environment did not win:\n%s", ecs)
	}
	agent, _ := frRead(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json")
	if !strings.Contains(agent, "/filestack/ec2/file-asg/var/log/ecs/ecs-init") {
		t.Errorf("env file values not used:\n%s", agent)
	}
	sources := map[string]string{}
	for _, l := range r.logs {
		if l["msg"] == "input" {
			sources[l["name"].(string)] = l["source"].(string)
		}
	}
	if sources["ECS_CLUSTER"] != "environment" || sources["STACK_NAME"] != "env file" {
		t.Errorf("sources logged: %v", sources)
	}
}

func TestPhasesAreLoggedWithDurations(t *testing.T) {
	r := frRun(t, chapterEnv, "--root", frRoot(t))
	var phases []string
	for _, l := range r.logs {
		if l["msg"] == "phase done" {
			if _, ok := l["duration"].(string); !ok {
				t.Errorf("phase %v logged without duration", l["phase"])
			}
			phases = append(phases, l["phase"].(string))
		}
	}
	if strings.Join(phases, ",") != "resolve,render,apply" {
		t.Errorf("phases = %v", phases)
	}
	// Every phase or step not taken under another root says so, instance metadata
	// discovery included.
	if !r.logged("instance metadata: not asked (--root is not /: the metadata here is not the root's)", "phase") {
		t.Error("instance metadata discovery skipped without a log line under --root")
	}
	if strings.Contains(r.stderr, "p%40ss") {
		t.Error("logs carry the proxy password")
	}
}

func TestApplyFailures(t *testing.T) {
	t.Run("a directory where a file goes", func(t *testing.T) {
		root := frRoot(t)
		if err := os.MkdirAll(filepath.Join(root, "/etc/systemd/system/docker.service.d/http-proxy.conf"), 0o755); err != nil {
			t.Fatal(err)
		}
		r := frRun(t, chapterEnv, "--root", root)
		if r.code != exitApply || !strings.Contains(r.stderr, "not a regular file") {
			t.Errorf("exit %d, want %d naming the problem:\n%s", r.code, exitApply, r.stderr)
		}
	})
	t.Run("a corrupt state file", func(t *testing.T) {
		root := frRoot(t)
		testenv.WriteFile(t, root, "/var/lib/firstrun/state.json", "{not json", 0o644)
		r := frRun(t, chapterEnv, "--root", root)
		if r.code != exitApply || !strings.Contains(r.stderr, "state.json") {
			t.Errorf("exit %d, want %d naming state.json:\n%s", r.code, exitApply, r.stderr)
		}
	})
}

func TestPlatform(t *testing.T) {
	t.Run("Amazon Linux 1 is refused, nothing written", func(t *testing.T) {
		root := frRoot(t)
		testenv.WriteFile(t, root, "/etc/os-release", "NAME=\"Amazon Linux AMI\"\nID=\"amzn\"\nVERSION_ID=\"2018.03\"\nPRETTY_NAME=\"Amazon Linux AMI 2018.03\"\n", 0o644)
		before := testenv.Snapshot(t, root)
		r := frRun(t, chapterEnv, "--root", root)
		if r.code != exitPlatform || !strings.Contains(r.stderr, "Amazon Linux 1") || !strings.Contains(r.stderr, "no systemd") {
			t.Errorf("exit %d, want %d saying why:\n%s", r.code, exitPlatform, r.stderr)
		}
		testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
	})
	t.Run("Amazon Linux 2023 is logged", func(t *testing.T) {
		root := frRoot(t)
		testenv.WriteFile(t, root, "/etc/os-release", "ID=\"amzn\"\nVERSION_ID=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241212\"\n", 0o644)
		r := frRun(t, chapterEnv, "--root", root)
		if r.code != exitOK || !strings.Contains(r.stderr, `"os":"Amazon Linux 2023.6.20241212"`) {
			t.Errorf("exit %d:\n%s", r.code, r.stderr)
		}
	})
}

func TestWorldReadableEnvFileWithSecretWarns(t *testing.T) {
	for _, tc := range []struct {
		content string
		mode    os.FileMode
		warn    bool
	}{
		{"ECS_CLUSTER=c\nPROXY_URL=http://bob:hunter2@proxy:3128\n", 0o644, true},
		{"ECS_CLUSTER=c\nPROXY_URL=http://bob:hunter2@proxy:3128\n", 0o600, false},
		{"ECS_CLUSTER=c\nPROXY_URL=http://proxy:3128\n", 0o644, false},
	} {
		root := frRoot(t)
		testenv.WriteFile(t, root, "/etc/firstrun/firstrun.env", tc.content, tc.mode)
		r := frRun(t, []string{"FIRSTRUN_LOG_AGENT=none"}, "--root", root)
		if r.code != exitOK {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
		if got := strings.Contains(r.stderr, "chmod 600"); got != tc.warn {
			t.Errorf("%q mode %04o: warned %v, want %v", tc.content, tc.mode, got, tc.warn)
		}
		if strings.Contains(r.stderr, "hunter2") {
			t.Error("the password is logged")
		}
	}
}

// TestAgentNamedUnderAnotherRoot: under a root other than /, health is skipped unless
// FIRSTRUN_AGENT_URL names an agent; then that agent is waited for, and --check asks
// it. Services stay skipped either way.
func TestAgentNamedUnderAnotherRoot(t *testing.T) {
	var asked atomic.Int32
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) < 3 { // starting up: not registered yet
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"Cluster":"microtrader-cluster","ContainerInstanceArn":"arn:aws:ecs:us-east-1:123456789012:container-instance/microtrader-cluster/0123","Version":"test"}`)
	}))
	defer agent.Close()
	root := frRoot(t)

	unnamed := frRun(t, chapterEnv, "--root", root)
	if unnamed.code != exitOK || unnamed.phaseDone("health") || asked.Load() != 0 {
		t.Fatalf("without FIRSTRUN_AGENT_URL: exit %d, health done %v, agent asked %d times; want 0, false, 0\n%s",
			unnamed.code, unnamed.phaseDone("health"), asked.Load(), unnamed.stderr)
	}
	if !strings.Contains(unnamed.stderr, "set FIRSTRUN_AGENT_URL to wait for one") {
		t.Errorf("the skipped health phase does not say how to wait for an agent:\n%s", unnamed.stderr)
	}

	env := append(slices.Clone(chapterEnv), "FIRSTRUN_AGENT_URL="+agent.URL+"/v1/metadata", "FIRSTRUN_HEALTH_TIMEOUT=20s")
	named := frRun(t, env, "--root", root)
	if named.code != exitOK || !named.phaseDone("health") || !named.logged("registered", "cluster") {
		t.Fatalf("with FIRSTRUN_AGENT_URL: exit %d, health done %v; want 0 and the agent waited for\n%s",
			named.code, named.phaseDone("health"), named.stderr)
	}
	if named.phaseDone("services") {
		t.Error("the services phase ran under a root other than /")
	}
	if n := asked.Load(); n < 3 {
		t.Errorf("the agent was asked %d times, want until it answered registered (3)", n)
	}

	check := frRun(t, env, "--root", root, "--check")
	if check.code != exitOK || !strings.Contains(check.stdout, "agent registration") || !strings.Contains(check.stdout, "microtrader-cluster") {
		t.Errorf("--check with FIRSTRUN_AGENT_URL: exit %d, want 0 and the agent's answer\n%s%s", check.code, check.stdout, check.stderr)
	}
}

// TestMalformedCommonConfig: a common-config.toml that is not TOML is neither
// overwritten nor mended: exit 4 naming it, no configuration written (only the
// last-run marker records the failure).
func TestMalformedCommonConfig(t *testing.T) {
	root := frRoot(t)
	const bad = "[ssl\nca_bundle_path = 1\n"
	testenv.WriteFile(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml", bad, 0o644)
	r := frRun(t, chapterEnv, "--root", root)
	if r.code != exitApply {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitApply, r.stderr)
	}
	if !strings.Contains(r.stderr, "common-config.toml") || !strings.Contains(r.stderr, "not valid TOML") {
		t.Errorf("error does not name the file and the problem:\n%s", r.stderr)
	}
	if cc, _ := frRead(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"); cc != bad {
		t.Errorf("common-config.toml changed:\n%s", cc)
	}
	if ecs, _ := frRead(t, root, "/etc/ecs/ecs.config"); ecs != "ECS_LOGLEVEL=debug\n" {
		t.Errorf("ecs.config written:\n%s", ecs)
	}
	for _, p := range []string{"/etc/systemd/system/docker.service.d/http-proxy.conf", "/var/lib/firstrun/state.json"} {
		if _, ok := frRead(t, root, p); ok {
			t.Errorf("%s written", p)
		}
	}
}

// TestCheckAfterFetchConfig: `amazon-cloudwatch-agent-ctl -a fetch-config` deletes
// firstrun.json, and the agent's translator wrote the proxy password into a 0644
// env-config.json: --check says both plainly, the password not shown.
func TestCheckAfterFetchConfig(t *testing.T) {
	root := frRoot(t)
	if r := frRun(t, chapterEnv, "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if err := os.Remove(filepath.Join(root, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json")); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/env-config.json",
		"{\n\t\"HTTPS_PROXY\": \"http://bob:p%40ss@proxy.internal:3128\"\n}", 0o644)
	for _, d := range []string{"", "/opt", "/opt/aws", "/opt/aws/amazon-cloudwatch-agent", "/opt/aws/amazon-cloudwatch-agent/etc"} {
		if err := os.Chmod(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := frRun(t, chapterEnv, "--root", root, "--check")
	if r.code != exitCheck {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitCheck, r.stdout)
	}
	for _, want := range []string{
		"amazon-cloudwatch-agent.d/firstrun.json  missing: `amazon-cloudwatch-agent-ctl -a fetch-config` deletes the other files in amazon-cloudwatch-agent.d, firstrun's included; rerun firstrun, or use -a append-config",
		"WARN    proxy credentials",
		"/opt/aws/amazon-cloudwatch-agent/etc/env-config.json (mode 0644)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "p%40ss") {
		t.Errorf("the report shows the proxy password:\n%s", r.stdout)
	}
}

// TestCheckMissingCommonConfig: without a proxy firstrun does not create
// common-config.toml, but the CloudWatch agent cannot start without it: --check says so.
func TestCheckMissingCommonConfig(t *testing.T) {
	root := frRoot(t)
	env := testenv.WithEnv(chapterEnv, "-PROXY_URL")
	if r := frRun(t, env, "--root", root); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, ok := frRead(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"); ok {
		t.Error("common-config.toml created without a proxy")
	}
	r := frRun(t, env, "--root", root, "--check")
	if want := "missing: the CloudWatch agent does not start without it"; r.code != exitCheck || !strings.Contains(r.stdout, want) {
		t.Errorf("--check: exit %d, want %d and %q:\n%s", r.code, exitCheck, want, r.stdout)
	}
	testenv.WriteFile(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml", "", 0o644)
	if r := frRun(t, env, "--root", root, "--check"); r.code != exitOK {
		t.Errorf("--check with an empty common-config.toml and no proxy: exit %d\n%s", r.code, r.stdout)
	}
}

// TestUpgradeFromWholeCommonConfig: an older firstrun owned common-config.toml whole
// (in the state file's files) and deleted it with the proxy; now the proxy's removal
// keeps the file and drops only what that firstrun wrote.
func TestUpgradeFromWholeCommonConfig(t *testing.T) {
	root := frRoot(t)
	const cc = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	testenv.WriteFile(t, root, cc, "# Written by firstrun; changes here are overwritten on its next run.\n[proxy]\n    http_proxy = \"http://old:1\"\n    https_proxy = \"http://old:1\"\n    no_proxy = \"169.254.169.254\"\n", 0o600)
	testenv.WriteFile(t, root, "/var/lib/firstrun/state.json", `{"version": 1, "files": ["`+cc+`"], "ecs_config_keys": ["ECS_CLUSTER"]}`, 0o644)
	r := frRun(t, testenv.WithEnv(chapterEnv, "-PROXY_URL"), "--root", root)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got, ok := frRead(t, root, cc); !ok || got != "" {
		t.Errorf("common-config.toml (exists %v) = %q, want it kept, emptied of what firstrun wrote", ok, got)
	}
	if st, _ := frRead(t, root, "/var/lib/firstrun/state.json"); strings.Contains(st, "common-config") {
		t.Errorf("state still owns common-config.toml:\n%s", st)
	}
}
