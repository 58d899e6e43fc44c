package main

import (
	"bytes"
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

	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
)

// frRun runs firstrun in-process with JSON logs and parses them.
func frRun(t *testing.T, env []string, args ...string) runnertest.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"--log-format", "json"}, args...), env, &stdout, &stderr)
	return runnertest.Parse(t, code, stdout.String(), stderr.String())
}

func TestDryRunShowsChapterFilesAndWritesNothing(t *testing.T) {
	root := runnertest.Root(t)
	before := testenv.Snapshot(t, root)
	r := frRun(t, runnertest.ChapterEnv, "--root", root, "--dry-run")
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"+++ b/etc/ecs/ecs.config",
		"+ECS_CLUSTER=microtrader-cluster",
		"+HTTP_PROXY=http://bob:REDACTED@proxy.internal:3128",
		"+++ b/etc/systemd/system/docker.service.d/http-proxy.conf",
		"+++ b/etc/systemd/system/ecs.service.d/http-proxy.conf",
		"+++ b/etc/firstrun/proxy/docker.env",
		"+HTTPS_PROXY=http://bob:REDACTED@proxy.internal:3128",
		"+++ b/etc/firstrun/proxy/ecs.env",
		"+++ b/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml",
		"+++ b/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json",
		`"log_group_name": "/microtrader/ec2/microtrader-ApplicationAutoscalingGroup-1X2Y/var/log/ecs/ecs-agent"`,
		" ECS_LOGLEVEL=debug",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if strings.Contains(r.Stdout+r.Stderr, "p%40ss") {
		t.Error("the proxy password is shown")
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
}

func TestRunTwiceIsIdempotent(t *testing.T) {
	root := runnertest.Root(t)
	first := frRun(t, runnertest.ChapterEnv, "--root", root)
	if first.Code != runrecord.ExitOK {
		t.Fatalf("first run: exit %d\n%s", first.Code, first.Stderr)
	}
	created := 0
	for p, a := range first.Actions() {
		if a == "created" {
			created++
		} else if p != "/etc/ecs/ecs.config" {
			t.Errorf("first run: %s %s", p, a)
		}
	}
	if created != 7 {
		t.Errorf("first run created %d files, want 7 (2 drop-ins, 2 proxy env files, common-config, agent JSON, state): %v", created, first.Actions())
	}
	// Let a rewrite show in mtimes, however coarse the filesystem's clock.
	time.Sleep(20 * time.Millisecond)
	before := testenv.Snapshot(t, root)
	second := frRun(t, runnertest.ChapterEnv, "--root", root)
	if second.Code != runrecord.ExitOK {
		t.Fatalf("second run: exit %d\n%s", second.Code, second.Stderr)
	}
	if len(second.Actions()) != 8 {
		t.Errorf("second run reported %d files, want 8", len(second.Actions()))
	}
	for p, a := range second.Actions() {
		if a != "unchanged" {
			t.Errorf("second run: %s %s, want unchanged", p, a)
		}
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
	if d := frRun(t, runnertest.ChapterEnv, "--root", root, "--dry-run"); d.Stdout != "" {
		t.Errorf("dry run after convergence shows a diff:\n%s", d.Stdout)
	}
}

func TestWrittenFiles(t *testing.T) {
	root := runnertest.Root(t)
	if r := frRun(t, runnertest.ChapterEnv, "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config")
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
		"/etc/systemd/system/docker.service.d/http-proxy.conf":                         0o644,
		"/etc/systemd/system/ecs.service.d/http-proxy.conf":                            0o644,
		"/etc/firstrun/proxy/docker.env":                                               0o600,
		"/etc/firstrun/proxy/ecs.env":                                                  0o600,
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
	// The drop-ins name the env files and hold no secret: systemd shows unit settings to
	// every local user. The env files hold the URL as is (no % doubling: systemd's
	// env-file parser has no specifiers).
	for unit, env := range map[string]string{"docker": "/etc/firstrun/proxy/docker.env", "ecs": "/etc/firstrun/proxy/ecs.env"} {
		dropIn, _ := runnertest.Read(t, root, "/etc/systemd/system/"+unit+".service.d/http-proxy.conf")
		if !strings.Contains(dropIn, "\nEnvironmentFile=-"+env+"\n") || strings.Contains(dropIn, "proxy.internal") {
			t.Errorf("%s drop-in does not name %s, or holds the proxy:\n%s", unit, env, dropIn)
		}
		if content, _ := runnertest.Read(t, root, env); !strings.Contains(content, "\nHTTPS_PROXY=http://bob:p%40ss@proxy.internal:3128\n") {
			t.Errorf("%s lacks the proxy URL as is:\n%s", env, content)
		}
	}
}

// operatorCommonConfig is a common-config.toml an operator edited: firstrun may touch
// only its [proxy] table.
const operatorCommonConfig = "# site settings\n[credentials]\n   shared_credential_profile = \"AmazonCloudWatchAgent\"\n\n[ssl]\n   ca_bundle_path = \"/etc/pki/site.pem\"\n"

func TestProxyRemovedOnRerun(t *testing.T) {
	root := runnertest.Root(t)
	const commonConfig = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	testenv.WriteFile(t, root, commonConfig, operatorCommonConfig, 0o644)
	if r := frRun(t, runnertest.ChapterEnv, "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if cc, _ := runnertest.Read(t, root, commonConfig); !strings.HasPrefix(cc, operatorCommonConfig) || !strings.Contains(cc, "[proxy]") {
		t.Errorf("common-config.toml with the proxy lost the operator's settings or lacks [proxy]:\n%s", cc)
	}
	// The user adds a line of their own after the first run.
	ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config")
	testenv.WriteFile(t, root, "/etc/ecs/ecs.config", ecs+"ECS_RESERVED_MEMORY=256\n", 0o600)

	r := frRun(t, testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "--root", root)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, p := range []string{
		"/etc/systemd/system/docker.service.d/http-proxy.conf",
		"/etc/systemd/system/ecs.service.d/http-proxy.conf",
		"/etc/firstrun/proxy/docker.env",
		"/etc/firstrun/proxy/ecs.env",
	} {
		if _, ok := runnertest.Read(t, root, p); ok {
			t.Errorf("%s still exists", p)
		}
		if r.Actions()[p] != "removed" {
			t.Errorf("%s: action %q, want removed", p, r.Actions()[p])
		}
	}
	// The CloudWatch agent's start script needs common-config.toml: only firstrun's
	// [proxy] table goes, the operator's settings stay byte for byte.
	if cc, ok := runnertest.Read(t, root, commonConfig); !ok || cc != operatorCommonConfig {
		t.Errorf("common-config.toml after the proxy was removed (exists %v):\n%s\nwant the operator's file as it was:\n%s", ok, cc, operatorCommonConfig)
	}
	if a := r.Actions()[commonConfig]; a != "updated" {
		t.Errorf("%s: action %q, want updated", commonConfig, a)
	}
	ecs, _ = runnertest.Read(t, root, "/etc/ecs/ecs.config")
	if want := "ECS_LOGLEVEL=debug\nECS_CLUSTER=microtrader-cluster\nECS_RESERVED_MEMORY=256\n"; ecs != want {
		t.Errorf("ecs.config:\n%s\nwant:\n%s", ecs, want)
	}
	st, _ := runnertest.Read(t, root, "/var/lib/firstrun/state.json")
	if strings.Contains(st, "http-proxy.conf") || strings.Contains(st, "/etc/firstrun/proxy/") || strings.Contains(st, "HTTP_PROXY") || strings.Contains(st, "proxy.http_proxy") {
		t.Errorf("state still owns proxy settings:\n%s", st)
	}
	for p, a := range frRun(t, testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "--root", root).Actions() {
		if a != "unchanged" {
			t.Errorf("third run: %s %s", p, a)
		}
	}
}

// TestSeedBugs are regressions for the chapter's script: `[ -n $PROXY_URL ]` is true
// for an empty PROXY_URL, and `>>` appends the proxy lines again on every rerun.
func TestSeedBugs(t *testing.T) {
	t.Run("empty PROXY_URL writes no proxy setting", func(t *testing.T) {
		root := runnertest.Root(t)
		env := append(testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "PROXY_URL=")
		if r := frRun(t, env, "--root", root); r.Code != runrecord.ExitOK {
			t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
		}
		ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config")
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
		root := runnertest.Root(t)
		testenv.WriteFile(t, root, "/etc/ecs/ecs.config", "ECS_CLUSTER=old\nHTTPS_PROXY=http://old:1\nNO_PROXY=x\nHTTPS_PROXY=http://old:1\nNO_PROXY=x\n", 0o644)
		for i := 0; i < 3; i++ {
			if r := frRun(t, runnertest.ChapterEnv, "--root", root); r.Code != runrecord.ExitOK {
				t.Fatalf("run %d: exit %d\n%s", i, r.Code, r.Stderr)
			}
		}
		ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config")
		for _, key := range []string{"ECS_CLUSTER=", "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY="} {
			if n := strings.Count("\n"+ecs, "\n"+key); n != 1 {
				t.Errorf("%s appears %d times:\n%s", key, n, ecs)
			}
		}
	})
}

func TestECSSettingsFollowTheirInput(t *testing.T) {
	root := runnertest.Root(t)
	testenv.WriteFile(t, root, "/etc/ecs/ecs.config", "ECS_HAND_WRITTEN=yes\n", 0o600)
	env := append(testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "ECS_ENABLE_CONTAINER_METADATA=true")
	if r := frRun(t, env, "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config")
	if !strings.Contains(ecs, "\nECS_ENABLE_CONTAINER_METADATA=true\n") {
		t.Fatalf("setting not written:\n%s", ecs)
	}
	if r := frRun(t, testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	ecs, _ = runnertest.Read(t, root, "/etc/ecs/ecs.config")
	if want := "ECS_HAND_WRITTEN=yes\nECS_CLUSTER=microtrader-cluster\n"; ecs != want {
		t.Errorf("ecs.config:\n%s\nwant:\n%s", ecs, want)
	}
}

func TestLogAgentSwitchRemovesItsFiles(t *testing.T) {
	root := runnertest.Root(t)
	if r := frRun(t, runnertest.ChapterEnv, "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	r := frRun(t, append(runnertest.ChapterEnv, "FIRSTRUN_LOG_AGENT=awslogs"), "--root", root)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if _, ok := runnertest.Read(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"); ok {
		t.Error("CloudWatch agent config left behind")
	}
	for _, p := range []string{"/etc/awslogs/awslogs.conf", "/etc/awslogs/awscli.conf", "/etc/awslogs/proxy.conf"} {
		if _, ok := runnertest.Read(t, root, p); !ok {
			t.Errorf("%s not written", p)
		}
	}
	cli, _ := runnertest.Read(t, root, "/etc/awslogs/awscli.conf")
	if !strings.Contains(cli, "region = us-east-1") {
		t.Errorf("awscli.conf:\n%s", cli)
	}
	r = frRun(t, append(runnertest.ChapterEnv, "FIRSTRUN_LOG_AGENT=none"), "--root", root)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
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
	root := runnertest.Root(t)
	p := "/etc/systemd/system/docker.service.d/http-proxy.conf"
	testenv.WriteFile(t, root, p, "[Service]\nEnvironment=HTTP_PROXY=http://theirs:3128\n", 0o644)
	if r := frRun(t, testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if got, ok := runnertest.Read(t, root, p); !ok || !strings.Contains(got, "theirs") {
		t.Errorf("user's drop-in changed: %q %v", got, ok)
	}
}

func TestEnvFileAndEnvironmentWins(t *testing.T) {
	root := runnertest.Root(t)
	testenv.WriteFile(t, root, "/etc/firstrun/firstrun.env", "# from user data\nECS_CLUSTER=from-file\nSTACK_NAME=filestack\nAUTOSCALING_GROUP=\"file-asg\"\nAWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338\n", 0o600)
	r := frRun(t, []string{"ECS_CLUSTER=from-env"}, "--root", root)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config")
	if !strings.Contains(ecs, "ECS_CLUSTER=from-env\n") {
		t.Errorf("environment did not win:\n%s", ecs)
	}
	agent, _ := runnertest.Read(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json")
	if !strings.Contains(agent, "/filestack/ec2/file-asg/var/log/ecs/ecs-init") {
		t.Errorf("env file values not used:\n%s", agent)
	}
	sources := map[string]string{}
	for _, l := range r.Logs {
		if l["msg"] == "input" {
			sources[l["name"].(string)] = l["source"].(string)
		}
	}
	if sources["ECS_CLUSTER"] != "environment" || sources["STACK_NAME"] != "env file" {
		t.Errorf("sources logged: %v", sources)
	}
}

func TestPhasesAreLoggedWithDurations(t *testing.T) {
	r := frRun(t, runnertest.ChapterEnv, "--root", runnertest.Root(t))
	var phases []string
	for _, l := range r.Logs {
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
	if !r.Logged("instance metadata: not asked (--root is not /: the metadata here is not the root's)", "phase") {
		t.Error("instance metadata discovery skipped without a log line under --root")
	}
	if strings.Contains(r.Stderr, "p%40ss") {
		t.Error("logs carry the proxy password")
	}
}

func TestApplyFailures(t *testing.T) {
	t.Run("a directory where a file goes", func(t *testing.T) {
		root := runnertest.Root(t)
		if err := os.MkdirAll(filepath.Join(root, "/etc/systemd/system/docker.service.d/http-proxy.conf"), 0o755); err != nil {
			t.Fatal(err)
		}
		r := frRun(t, runnertest.ChapterEnv, "--root", root)
		if r.Code != runrecord.ExitFile || !strings.Contains(r.Stderr, "not a regular file") {
			t.Errorf("exit %d, want %d naming the problem:\n%s", r.Code, runrecord.ExitFile, r.Stderr)
		}
	})
	t.Run("a corrupt state file", func(t *testing.T) {
		root := runnertest.Root(t)
		testenv.WriteFile(t, root, "/var/lib/firstrun/state.json", "{not json", 0o644)
		r := frRun(t, runnertest.ChapterEnv, "--root", root)
		if r.Code != runrecord.ExitFile || !strings.Contains(r.Stderr, "state.json") {
			t.Errorf("exit %d, want %d naming state.json:\n%s", r.Code, runrecord.ExitFile, r.Stderr)
		}
	})
}

func TestPlatform(t *testing.T) {
	t.Run("Amazon Linux 1 is refused, nothing written", func(t *testing.T) {
		root := runnertest.Root(t)
		testenv.WriteFile(t, root, "/etc/os-release", "NAME=\"Amazon Linux AMI\"\nID=\"amzn\"\nVERSION_ID=\"2018.03\"\nPRETTY_NAME=\"Amazon Linux AMI 2018.03\"\n", 0o644)
		before := testenv.Snapshot(t, root)
		r := frRun(t, runnertest.ChapterEnv, "--root", root)
		if r.Code != runrecord.ExitPlatform || !strings.Contains(r.Stderr, "Amazon Linux 1") || !strings.Contains(r.Stderr, "no systemd") {
			t.Errorf("exit %d, want %d saying why:\n%s", r.Code, runrecord.ExitPlatform, r.Stderr)
		}
		testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
	})
	t.Run("Amazon Linux 2023 is logged", func(t *testing.T) {
		root := runnertest.Root(t)
		testenv.WriteFile(t, root, "/etc/os-release", "ID=\"amzn\"\nVERSION_ID=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241212\"\n", 0o644)
		r := frRun(t, runnertest.ChapterEnv, "--root", root)
		if r.Code != runrecord.ExitOK || !strings.Contains(r.Stderr, `"os":"Amazon Linux 2023.6.20241212"`) {
			t.Errorf("exit %d:\n%s", r.Code, r.Stderr)
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
		root := runnertest.Root(t)
		testenv.WriteFile(t, root, "/etc/firstrun/firstrun.env", tc.content, tc.mode)
		r := frRun(t, []string{"FIRSTRUN_LOG_AGENT=none"}, "--root", root)
		if r.Code != runrecord.ExitOK {
			t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
		}
		if got := strings.Contains(r.Stderr, "chmod 600"); got != tc.warn {
			t.Errorf("%q mode %04o: warned %v, want %v", tc.content, tc.mode, got, tc.warn)
		}
		if strings.Contains(r.Stderr, "hunter2") {
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
	root := runnertest.Root(t)

	unnamed := frRun(t, runnertest.ChapterEnv, "--root", root)
	if unnamed.Code != runrecord.ExitOK || unnamed.PhaseDone("health") || asked.Load() != 0 {
		t.Fatalf("without FIRSTRUN_AGENT_URL: exit %d, health done %v, agent asked %d times; want 0, false, 0\n%s",
			unnamed.Code, unnamed.PhaseDone("health"), asked.Load(), unnamed.Stderr)
	}
	if !strings.Contains(unnamed.Stderr, "set FIRSTRUN_AGENT_URL to wait for one") {
		t.Errorf("the skipped health phase does not say how to wait for an agent:\n%s", unnamed.Stderr)
	}

	env := append(slices.Clone(runnertest.ChapterEnv), "FIRSTRUN_AGENT_URL="+agent.URL+"/v1/metadata", "FIRSTRUN_HEALTH_TIMEOUT=20s")
	named := frRun(t, env, "--root", root)
	if named.Code != runrecord.ExitOK || !named.PhaseDone("health") || !named.Logged("registered", "cluster") {
		t.Fatalf("with FIRSTRUN_AGENT_URL: exit %d, health done %v; want 0 and the agent waited for\n%s",
			named.Code, named.PhaseDone("health"), named.Stderr)
	}
	if named.PhaseDone("services") {
		t.Error("the services phase ran under a root other than /")
	}
	if n := asked.Load(); n < 3 {
		t.Errorf("the agent was asked %d times, want until it answered registered (3)", n)
	}

	check := frRun(t, env, "--root", root, "--check")
	if check.Code != runrecord.ExitOK || !strings.Contains(check.Stdout, "agent registration") || !strings.Contains(check.Stdout, "microtrader-cluster") {
		t.Errorf("--check with FIRSTRUN_AGENT_URL: exit %d, want 0 and the agent's answer\n%s%s", check.Code, check.Stdout, check.Stderr)
	}
}

// TestMalformedCommonConfig: a common-config.toml that is not TOML is neither
// overwritten nor mended: exit 4 naming it, no configuration written (only the
// last-run marker records the failure).
func TestMalformedCommonConfig(t *testing.T) {
	root := runnertest.Root(t)
	const bad = "[ssl\nca_bundle_path = 1\n"
	testenv.WriteFile(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml", bad, 0o644)
	r := frRun(t, runnertest.ChapterEnv, "--root", root)
	if r.Code != runrecord.ExitFile {
		t.Fatalf("exit %d, want %d\n%s", r.Code, runrecord.ExitFile, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "common-config.toml") || !strings.Contains(r.Stderr, "not valid TOML") {
		t.Errorf("error does not name the file and the problem:\n%s", r.Stderr)
	}
	if cc, _ := runnertest.Read(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"); cc != bad {
		t.Errorf("common-config.toml changed:\n%s", cc)
	}
	if ecs, _ := runnertest.Read(t, root, "/etc/ecs/ecs.config"); ecs != "ECS_LOGLEVEL=debug\n" {
		t.Errorf("ecs.config written:\n%s", ecs)
	}
	for _, p := range []string{"/etc/systemd/system/docker.service.d/http-proxy.conf", "/var/lib/firstrun/state.json"} {
		if _, ok := runnertest.Read(t, root, p); ok {
			t.Errorf("%s written", p)
		}
	}
}

// TestCheckAfterFetchConfig: `amazon-cloudwatch-agent-ctl -a fetch-config` deletes
// firstrun.json, and the agent's translator wrote the proxy password into a 0644
// env-config.json: --check says both plainly, the password not shown.
func TestCheckAfterFetchConfig(t *testing.T) {
	root := runnertest.Root(t)
	if r := frRun(t, runnertest.ChapterEnv, "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
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
	r := frRun(t, runnertest.ChapterEnv, "--root", root, "--check")
	if r.Code != runrecord.ExitCheck {
		t.Fatalf("exit %d, want %d\n%s", r.Code, runrecord.ExitCheck, r.Stdout)
	}
	for _, want := range []string{
		"amazon-cloudwatch-agent.d/firstrun.json  missing: `amazon-cloudwatch-agent-ctl -a fetch-config` deletes the other files in amazon-cloudwatch-agent.d, firstrun's included; rerun firstrun, or use -a append-config",
		"WARN    proxy credentials",
		"/opt/aws/amazon-cloudwatch-agent/etc/env-config.json (mode 0644)",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "p%40ss") {
		t.Errorf("the report shows the proxy password:\n%s", r.Stdout)
	}
}

// TestCheckMissingCommonConfig: without a proxy firstrun does not create
// common-config.toml, but the CloudWatch agent cannot start without it: --check says so.
func TestCheckMissingCommonConfig(t *testing.T) {
	root := runnertest.Root(t)
	env := testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL")
	if r := frRun(t, env, "--root", root); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if _, ok := runnertest.Read(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"); ok {
		t.Error("common-config.toml created without a proxy")
	}
	r := frRun(t, env, "--root", root, "--check")
	if want := "missing: the CloudWatch agent does not start without it"; r.Code != runrecord.ExitCheck || !strings.Contains(r.Stdout, want) {
		t.Errorf("--check: exit %d, want %d and %q:\n%s", r.Code, runrecord.ExitCheck, want, r.Stdout)
	}
	testenv.WriteFile(t, root, "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml", "", 0o644)
	if r := frRun(t, env, "--root", root, "--check"); r.Code != runrecord.ExitOK {
		t.Errorf("--check with an empty common-config.toml and no proxy: exit %d\n%s", r.Code, r.Stdout)
	}
}

// TestUpgradeFromWholeCommonConfig: an older firstrun owned common-config.toml whole
// (in the state file's files) and deleted it with the proxy; now the proxy's removal
// keeps the file and drops only what that firstrun wrote.
func TestUpgradeFromWholeCommonConfig(t *testing.T) {
	root := runnertest.Root(t)
	const cc = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	testenv.WriteFile(t, root, cc, "# Written by firstrun; changes here are overwritten on its next run.\n[proxy]\n    http_proxy = \"http://old:1\"\n    https_proxy = \"http://old:1\"\n    no_proxy = \"169.254.169.254\"\n", 0o600)
	testenv.WriteFile(t, root, "/var/lib/firstrun/state.json", `{"version": 1, "files": ["`+cc+`"], "ecs_config_keys": ["ECS_CLUSTER"]}`, 0o644)
	r := frRun(t, testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL"), "--root", root)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if got, ok := runnertest.Read(t, root, cc); !ok || got != "" {
		t.Errorf("common-config.toml (exists %v) = %q, want it kept, emptied of what firstrun wrote", ok, got)
	}
	if st, _ := runnertest.Read(t, root, "/var/lib/firstrun/state.json"); strings.Contains(st, "common-config") {
		t.Errorf("state still owns common-config.toml:\n%s", st)
	}
}
