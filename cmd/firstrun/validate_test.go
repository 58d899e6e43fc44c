package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
)

// vtValidEnv is a complete, valid set of inputs for a host with the CloudWatch agent
// installed (so STACK_NAME and AUTOSCALING_GROUP are required). Every bad-input row
// changes it in one place, so that the row's change alone is what makes the run fail.
var vtValidEnv = []string{
	"ECS_CLUSTER=microtrader-cluster",
	"STACK_NAME=microtrader",
	"AUTOSCALING_GROUP=microtrader-ApplicationAutoscalingGroup-1X2Y",
	"AWS_REGION=us-east-1",
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=/root",
}

// vtEnv returns vtValidEnv changed as withEnv says.
func vtEnv(changes ...string) []string { return testenv.WithEnv(vtValidEnv, changes...) }

// vtOldTime is the modification time of every file of a test root: far enough in the
// past that any write during the test shows as a changed mtime.
var vtOldTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// vtHostRoot returns a temporary root that looks like an instance configured before:
// an ecs.config with the user's own lines, the CloudWatch agent installed, and a
// docker proxy drop-in, plus the extra files given (host path → content). Every path
// gets vtOldTime as its mtime.
func vtHostRoot(t *testing.T, extra map[string]string) string {
	t.Helper()
	root := t.TempDir()
	put := func(p, content string, mode os.FileMode) { testenv.WriteFile(t, root, p, content, mode) }
	put("/etc/ecs/ecs.config", "ECS_CLUSTER=old-cluster\nECS_LOGLEVEL=debug\nECS_ENABLE_CONTAINER_METADATA=true\n", 0o644)
	put("/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent", "#!/bin/sh\nexit 0\n", 0o755)
	put("/etc/systemd/system/docker.service.d/http-proxy.conf",
		"[Service]\nEnvironment=\"HTTP_PROXY=http://old-proxy.internal:3128\"\nEnvironment=\"NO_PROXY=169.254.169.254,169.254.170.2\"\n", 0o644)
	for p, content := range extra {
		put(p, content, 0o600)
	}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, vtOldTime, vtOldTime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// vtResult is one in-process run of firstrun.
type vtResult struct {
	code           int
	stdout, stderr string
	// problems are the failure's problems, one a line, such as
	// "ECS_CLUSTER: is required: ...".
	problems []string
}

// vtRun runs firstrun with JSON logs and collects the failure's problems: those of an
// invalid-input log entry (its "problems" list), or the lines of a failed phase's
// "error" (an invalid-input report's header line left out).
func vtRun(t *testing.T, env []string, args ...string) vtResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"--log-format", "json"}, args...), env, &stdout, &stderr)
	r := vtResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var entry struct {
			Problems []string `json:"problems"`
			Error    string   `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		r.problems = append(r.problems, entry.Problems...)
		for _, p := range strings.Split(entry.Error, "\n") {
			if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, "invalid input") {
				r.problems = append(r.problems, p)
			}
		}
	}
	return r
}

// hasProblem reports whether one problem names the variable (or, for a path such as
// "/x/firstrun.env:3", ends with "/"+name) and contains the rule fragment.
func (r vtResult) hasProblem(name, rule string) bool {
	for _, p := range r.problems {
		v, msg, ok := strings.Cut(p, ": ")
		if ok && (v == name || strings.HasSuffix(v, "/"+name)) && strings.Contains(msg, rule) {
			return true
		}
	}
	return false
}

// vtEnvFile is the default env file under a root.
const vtEnvFile = "/etc/firstrun/firstrun.env"

// vtBadInputs are runs that must stop with exit 2 before writing anything. wantVar is
// the variable (or FILE:LINE) the error must name, wantRule a fragment of the rule.
var vtBadInputs = []struct {
	name    string
	env     []string
	envFile string            // content of /etc/firstrun/firstrun.env; "" for no file
	files   map[string]string // other files to create under the root
	args    []string          // extra flags; "ROOT" in them is replaced by the root
	wantVar string
	wantMsg string
}{
	// ECS_CLUSTER
	{name: "cluster missing", env: vtEnv("-ECS_CLUSTER"), wantVar: "ECS_CLUSTER", wantMsg: "is required"},
	{name: "cluster 256 chars", env: vtEnv("ECS_CLUSTER=" + strings.Repeat("c", 256)), wantVar: "ECS_CLUSTER", wantMsg: "must be 1-255 letters"},
	{name: "cluster with space", env: vtEnv("ECS_CLUSTER=prod cluster"), wantVar: "ECS_CLUSTER", wantMsg: "must be 1-255 letters, digits, hyphens and underscores"},
	{name: "cluster newline injection", env: vtEnv("ECS_CLUSTER=prod\nECS_ENGINE_AUTH_DATA=x"), wantVar: "ECS_CLUSTER", wantMsg: "found U+000A at byte 4"},
	{name: "cluster carriage return", env: vtEnv("ECS_CLUSTER=prod\r"), wantVar: "ECS_CLUSTER", wantMsg: "found U+000D"},
	{name: "cluster NUL", env: vtEnv("ECS_CLUSTER=prod\x00evil"), wantVar: "ECS_CLUSTER", wantMsg: "found U+0000"},
	{name: "cluster tab", env: vtEnv("ECS_CLUSTER=prod\tcluster"), wantVar: "ECS_CLUSTER", wantMsg: "found U+0009"},
	{name: "cluster unicode letters", env: vtEnv("ECS_CLUSTER=prödüction"), wantVar: "ECS_CLUSTER", wantMsg: "must be 1-255 letters"},
	{name: "cluster ARN of another service", env: vtEnv("ECS_CLUSTER=arn:aws:ec2:us-east-1:123456789012:cluster/prod"), wantVar: "ECS_CLUSTER", wantMsg: "or a cluster ARN"},
	{name: "cluster ARN with short account id", env: vtEnv("ECS_CLUSTER=arn:aws:ecs:us-east-1:12345:cluster/prod"), wantVar: "ECS_CLUSTER", wantMsg: "or a cluster ARN"},
	{name: "cluster invalid in env file", env: vtEnv("-ECS_CLUSTER"), envFile: "ECS_CLUSTER=prod cluster\n", wantVar: "ECS_CLUSTER", wantMsg: "must be 1-255 letters"},

	// PROXY_URL
	{name: "proxy ftp scheme", env: vtEnv("PROXY_URL=ftp://proxy.internal:3128"), wantVar: "PROXY_URL", wantMsg: "must use the http or https scheme"},
	{name: "proxy socks5", env: vtEnv("PROXY_URL=socks5://proxy.internal:1080"), wantVar: "PROXY_URL", wantMsg: "must use the http or https scheme"},
	{name: "proxy with path", env: vtEnv("PROXY_URL=http://proxy.internal:3128/proxy"), wantVar: "PROXY_URL", wantMsg: "must not have a path"},
	{name: "proxy with query", env: vtEnv("PROXY_URL=http://proxy.internal:3128?x=1"), wantVar: "PROXY_URL", wantMsg: "must not have a query"},
	{name: "proxy with fragment", env: vtEnv("PROXY_URL=http://proxy.internal:3128#top"), wantVar: "PROXY_URL", wantMsg: "must not have a fragment"},
	{name: "proxy without port", env: vtEnv("PROXY_URL=http://proxy.internal"), wantVar: "PROXY_URL", wantMsg: "must give a port from 1 to 65535"},
	{name: "proxy port 0", env: vtEnv("PROXY_URL=http://proxy.internal:0"), wantVar: "PROXY_URL", wantMsg: "must give a port from 1 to 65535"},
	{name: "proxy port 70000", env: vtEnv("PROXY_URL=http://proxy.internal:70000"), wantVar: "PROXY_URL", wantMsg: "must give a port from 1 to 65535"},
	{name: "proxy with white space", env: vtEnv("PROXY_URL=http://proxy.internal :3128"), wantVar: "PROXY_URL", wantMsg: "must not contain white space"},
	{name: "proxy newline injection", env: vtEnv("PROXY_URL=http://proxy.internal:3128\nECS_CLUSTER=evil"), wantVar: "PROXY_URL", wantMsg: "must not contain control characters"},
	{name: "proxy bad host chars", env: vtEnv("PROXY_URL=http://proxy_internal:3128"), wantVar: "PROXY_URL", wantMsg: "must name a valid host name or IP address"},
	{name: "proxy empty host", env: vtEnv("PROXY_URL=http://:3128"), wantVar: "PROXY_URL", wantMsg: "must name a valid host name or IP address"},

	// STACK_NAME
	{name: "stack starts with digit", env: vtEnv("STACK_NAME=1microtrader"), wantVar: "STACK_NAME", wantMsg: "must start with a letter"},
	{name: "stack with underscore", env: vtEnv("STACK_NAME=micro_trader"), wantVar: "STACK_NAME", wantMsg: "only letters, digits and hyphens"},
	{name: "stack 129 chars", env: vtEnv("STACK_NAME=s" + strings.Repeat("a", 128)), wantVar: "STACK_NAME", wantMsg: "at most 128 characters"},
	{name: "stack missing with CloudWatch agent", env: vtEnv("-STACK_NAME"), wantVar: "STACK_NAME", wantMsg: "is required with the cloudwatch log agent"},

	// AUTOSCALING_GROUP
	{name: "asg with space", env: vtEnv("AUTOSCALING_GROUP=microtrader asg"), wantVar: "AUTOSCALING_GROUP", wantMsg: "breaks CloudWatch Logs' rule"},
	{name: "asg with @", env: vtEnv("AUTOSCALING_GROUP=asg@prod"), wantVar: "AUTOSCALING_GROUP", wantMsg: "breaks CloudWatch Logs' rule"},
	{name: "asg 256 chars", env: vtEnv("AUTOSCALING_GROUP=" + strings.Repeat("g", 256)), wantVar: "AUTOSCALING_GROUP", wantMsg: "must be at most 255 characters"},
	{name: "asg missing with CloudWatch agent", env: vtEnv("-AUTOSCALING_GROUP"), wantVar: "AUTOSCALING_GROUP", wantMsg: "is required with the cloudwatch log agent"},

	// Region and log agent
	{name: "region upper case", env: vtEnv("AWS_REGION=US-EAST-1"), wantVar: "AWS_REGION", wantMsg: "must be a region code"},
	{name: "region without hyphens", env: vtEnv("AWS_REGION=useast1"), wantVar: "AWS_REGION", wantMsg: "must be a region code"},
	{name: "default region malformed", env: vtEnv("-AWS_REGION", "AWS_DEFAULT_REGION=us_east_1"), wantVar: "AWS_DEFAULT_REGION", wantMsg: "must be a region code"},
	{name: "default region disagrees", env: vtEnv("AWS_DEFAULT_REGION=eu-west-1"), wantVar: "AWS_DEFAULT_REGION", wantMsg: "disagrees with AWS_REGION"},
	{name: "awslogs agent without region", env: vtEnv("-AWS_REGION", "FIRSTRUN_LOG_AGENT=awslogs"), wantVar: "AWS_REGION", wantMsg: "is required with the awslogs agent"},
	{name: "log agent bogus", env: vtEnv("FIRSTRUN_LOG_AGENT=journald"), wantVar: "FIRSTRUN_LOG_AGENT", wantMsg: "must be one of auto, cloudwatch, awslogs, none"},
	{name: "no proxy entry with quote", env: vtEnv(`FIRSTRUN_NO_PROXY=10.0.0.0/8,"internal"`), wantVar: "FIRSTRUN_NO_PROXY", wantMsg: "must be a host, domain, IP address, CIDR or path"},
	{name: "no proxy entry with percent", env: vtEnv("FIRSTRUN_NO_PROXY=.internal,%2e.evil"), wantVar: "FIRSTRUN_NO_PROXY", wantMsg: "must be a host, domain, IP address, CIDR or path"},
	{name: "health timeout not a duration", env: vtEnv("FIRSTRUN_HEALTH_TIMEOUT=10"), wantVar: "FIRSTRUN_HEALTH_TIMEOUT", wantMsg: "must be a duration such as 90s or 10m"},
	{name: "health timeout zero", env: vtEnv("FIRSTRUN_HEALTH_TIMEOUT=0s"), wantVar: "FIRSTRUN_HEALTH_TIMEOUT", wantMsg: "must be above zero"},
	{name: "health timeout negative", env: vtEnv("FIRSTRUN_HEALTH_TIMEOUT=-5m"), wantVar: "FIRSTRUN_HEALTH_TIMEOUT", wantMsg: "must be above zero"},
	{name: "service timeout beyond 12h", env: vtEnv("FIRSTRUN_SERVICE_TIMEOUT=13h"), wantVar: "FIRSTRUN_SERVICE_TIMEOUT", wantMsg: "must be at most 12h0m0s"},
	{name: "signal timeout not a duration", env: vtEnv("FIRSTRUN_SIGNAL_TIMEOUT=300"), wantVar: "FIRSTRUN_SIGNAL_TIMEOUT", wantMsg: "must be a duration such as 90s or 10m"},
	{name: "signal timeout zero", env: vtEnv("FIRSTRUN_SIGNAL_TIMEOUT=0"), wantVar: "FIRSTRUN_SIGNAL_TIMEOUT", wantMsg: "must be above zero"},
	{name: "signal timeout beyond 12h", env: vtEnv("FIRSTRUN_SIGNAL_TIMEOUT=12h1m"), wantVar: "FIRSTRUN_SIGNAL_TIMEOUT", wantMsg: "must be at most 12h0m0s"},
	{name: "agent url scheme", env: vtEnv("FIRSTRUN_AGENT_URL=ftp://127.0.0.1:51678/v1/metadata"), wantVar: "FIRSTRUN_AGENT_URL", wantMsg: "must use the http scheme"},
	{name: "agent url without host", env: vtEnv("FIRSTRUN_AGENT_URL=http:///v1/metadata"), wantVar: "FIRSTRUN_AGENT_URL", wantMsg: "must name a host"},
	{name: "agent url with credentials", env: vtEnv("FIRSTRUN_AGENT_URL=http://u:secret@127.0.0.1:51678/"), wantVar: "FIRSTRUN_AGENT_URL", wantMsg: "must not carry credentials"},
	{name: "signal not a boolean", env: vtEnv("FIRSTRUN_SIGNAL=maybe"), wantVar: "FIRSTRUN_SIGNAL", wantMsg: "must be true or false"},
	{name: "signal without logical id", env: vtEnv("FIRSTRUN_SIGNAL=true"), wantVar: "LOGICAL_RESOURCE_ID", wantMsg: "is required with FIRSTRUN_SIGNAL=true"},
	{name: "signal without region", env: vtEnv("FIRSTRUN_SIGNAL=true", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup", "-AWS_REGION"), wantVar: "AWS_REGION", wantMsg: "is required with FIRSTRUN_SIGNAL=true"},
	{name: "logical id with a hyphen", env: vtEnv("LOGICAL_RESOURCE_ID=ECS-Group"), wantVar: "LOGICAL_RESOURCE_ID", wantMsg: "must be 1-255 letters and digits"},
	{name: "imds switch", env: vtEnv("FIRSTRUN_IMDS=auto"), wantVar: "FIRSTRUN_IMDS", wantMsg: "must be on or off"},
	{name: "cluster tag with a space", env: vtEnv("FIRSTRUN_CLUSTER_TAG=ecs cluster"), wantVar: "FIRSTRUN_CLUSTER_TAG", wantMsg: "must be a tag key readable in the instance metadata"},
	{name: "cluster tag _index", env: vtEnv("FIRSTRUN_CLUSTER_TAG=_index"), wantVar: "FIRSTRUN_CLUSTER_TAG", wantMsg: "must be a tag key readable in the instance metadata"},
	{name: "unknown FIRSTRUN_ variable", env: vtEnv("FIRSTRUN_LOGAGENT=none"), wantVar: "FIRSTRUN_LOGAGENT", wantMsg: "is not a firstrun setting"},

	// ECS_* passthrough
	{name: "ECS_ key lower case", env: vtEnv("ECS_foo=bar"), wantVar: "ECS_foo", wantMsg: "is not an ECS agent setting name"},
	{name: "ECS_ value with newline", env: vtEnv("ECS_LOGLEVEL=debug\nECS_CLUSTER=evil"), wantVar: "ECS_LOGLEVEL", wantMsg: "must not contain control characters"},
	{name: "ECS_ value quoted", env: vtEnv(`ECS_LOGLEVEL="debug"`), wantVar: "ECS_LOGLEVEL", wantMsg: "must not be quoted"},
	{name: "ECS_ value trailing backslash", env: vtEnv(`ECS_LOGLEVEL=debug\`), wantVar: "ECS_LOGLEVEL", wantMsg: "must not end with a backslash"},
	{name: "ECS_ value backslash", env: vtEnv(`ECS_ENGINE_AUTH_DATA={"r":{"auth":"a\"b"}}`), wantVar: "ECS_ENGINE_AUTH_DATA", wantMsg: "must not contain a backslash"},
	{name: "ECS_ value opening quote", env: vtEnv(`ECS_LOGLEVEL="debug`), wantVar: "ECS_LOGLEVEL", wantMsg: "must not start with a quote"},
	{name: "ECS_ value leading space", env: vtEnv("ECS_LOGLEVEL= debug"), wantVar: "ECS_LOGLEVEL", wantMsg: "must not start or end with white space"},

	// Env file
	{name: "env file export line", envFile: "# site settings\nexport ECS_CLUSTER=x\n", env: vtValidEnv, wantVar: "firstrun.env:2", wantMsg: "must not start with 'export'"},
	{name: "env file line without =", envFile: "STACK_NAME=microtrader\nECS_CLUSTER\n", env: vtValidEnv, wantVar: "firstrun.env:2", wantMsg: "is not a KEY=value line"},
	{name: "env file unknown key", envFile: "PROXYURL=http://proxy.internal:3128\n", env: vtValidEnv, wantVar: "PROXYURL", wantMsg: "is not a firstrun input"},
	{name: "env file key twice", envFile: "STACK_NAME=a\n\nSTACK_NAME=b\n", env: vtValidEnv, wantVar: "firstrun.env:3", wantMsg: "sets STACK_NAME a second time"},
	{
		name: "explicit env file unknown key", env: vtValidEnv,
		files: map[string]string{"/etc/firstrun/site.env": "STACKNAME=microtrader\n"}, args: []string{"--env-file", "ROOT/etc/firstrun/site.env"},
		wantVar: "STACKNAME", wantMsg: "is not a firstrun input",
	},
	{name: "explicit env file missing", env: vtValidEnv, args: []string{"--env-file", "ROOT/etc/firstrun/missing.env"}, wantVar: "env file", wantMsg: "missing.env: no such file or directory"},
	{name: "explicit env file is a directory", env: vtValidEnv, args: []string{"--env-file", "ROOT/etc/ecs"}, wantVar: "env file", wantMsg: "is a directory"},
}

// TestBadInputsWriteNothing runs every bad input against a configured host: exit 2,
// the problem named with its variable and rule, and not one file touched.
func TestBadInputsWriteNothing(t *testing.T) {
	if len(vtBadInputs) < 35 {
		t.Fatalf("only %d bad inputs; the table must cover at least 35", len(vtBadInputs))
	}
	for _, tc := range vtBadInputs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{}
			for p, c := range tc.files {
				files[p] = c
			}
			if tc.envFile != "" {
				files[vtEnvFile] = tc.envFile
			}
			root := vtHostRoot(t, files)
			args := []string{"--root", root}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "ROOT", root))
			}
			before := testenv.Snapshot(t, root)

			r := vtRun(t, tc.env, args...)

			if r.code != runrecord.ExitInput {
				t.Errorf("exit code %d, want %d (invalid input); stderr:\n%s", r.code, runrecord.ExitInput, r.stderr)
			}
			if !r.hasProblem(tc.wantVar, tc.wantMsg) {
				t.Errorf("no problem naming %s with %q; problems:\n  %s", tc.wantVar, tc.wantMsg, strings.Join(r.problems, "\n  "))
			}
			if r.stdout != "" {
				t.Errorf("stdout is not empty: %q", r.stdout)
			}
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
}

// TestValidEnvIsAccepted is the control of the bad-input table: the inputs every row
// starts from, on the same host, are valid, so each row fails for its own change.
func TestValidEnvIsAccepted(t *testing.T) {
	for _, env := range [][]string{
		vtValidEnv,
		vtEnv("PROXY_URL=http://bob:hunter2@proxy.internal:3128", "FIRSTRUN_NO_PROXY=10.0.0.0/8,.internal", "ECS_LOGLEVEL=info"),
	} {
		root := vtHostRoot(t, map[string]string{vtEnvFile: "# comment\nAWS_DEFAULT_REGION=us-east-1\n"})
		before := testenv.Snapshot(t, root)
		r := vtRun(t, env, "--root", root, "--dry-run")
		if r.code != runrecord.ExitOK {
			t.Fatalf("exit code %d, want 0; problems:\n  %s\nstderr:\n%s", r.code, strings.Join(r.problems, "\n  "), r.stderr)
		}
		testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
	}
}

// TestAllProblemsReportedAtOnce: one run names every bad input, from the environment
// and from the env file, not only the first.
func TestAllProblemsReportedAtOnce(t *testing.T) {
	root := vtHostRoot(t, map[string]string{vtEnvFile: "PROXYURL=http://proxy.internal:3128\n"})
	before := testenv.Snapshot(t, root)
	r := vtRun(t, vtEnv("ECS_CLUSTER=prod cluster", "PROXY_URL=ftp://proxy.internal:21", "STACK_NAME=9lives", "AWS_REGION=US-EAST-1"), "--root", root)
	if r.code != runrecord.ExitInput {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, runrecord.ExitInput, r.stderr)
	}
	for _, want := range []struct{ name, rule string }{
		{"ECS_CLUSTER", "must be 1-255 letters"},
		{"PROXY_URL", "must use the http or https scheme"},
		{"STACK_NAME", "must start with a letter"},
		{"AWS_REGION", "must be a region code"},
		{"PROXYURL", "is not a firstrun input"},
	} {
		if !r.hasProblem(want.name, want.rule) {
			t.Errorf("no problem naming %s with %q", want.name, want.rule)
		}
	}
	if len(r.problems) != 5 {
		t.Errorf("%d problems, want 5:\n  %s", len(r.problems), strings.Join(r.problems, "\n  "))
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
}

// vtSecretLeaks are invalid runs whose inputs carry the secret "hunter2": the error
// must name the variable, and neither log format may print the secret.
var vtSecretLeaks = []struct {
	name    string
	env     []string
	envFile string
	wantVar string
}{
	{name: "valid proxy password, other input invalid", env: vtEnv("PROXY_URL=http://bob:hunter2@proxy.internal:3128", "ECS_CLUSTER=prod cluster"), wantVar: "ECS_CLUSTER"},
	{name: "invalid proxy with password", env: vtEnv("PROXY_URL=ftp://bob:hunter2@proxy.internal:3128"), wantVar: "PROXY_URL"},
	{name: "bare proxy with password and path", env: vtEnv("PROXY_URL=bob:hunter2@proxy.internal:3128/x"), wantVar: "PROXY_URL"},
	{name: "proxy with password and newline", env: vtEnv("PROXY_URL=http://bob:hunter2@proxy.internal:3128\n"), wantVar: "PROXY_URL"},
	{name: "proxy password in env file", env: vtValidEnv, envFile: "PROXY_URL=https://bob:hunter2@proxy.internal\n", wantVar: "PROXY_URL"},
	{name: "auth data with newline", env: vtEnv("ECS_ENGINE_AUTH_DATA={\"https://index.docker.io/v1/\":{\"username\":\"bob\",\"password\":\"hunter2\"}}\nECS_CLUSTER=evil"), wantVar: "ECS_ENGINE_AUTH_DATA"},
	{name: "auth data quoted", env: vtEnv(`ECS_ENGINE_AUTH_DATA="hunter2"`), wantVar: "ECS_ENGINE_AUTH_DATA"},
	{name: "auth data leading space", env: vtEnv("ECS_ENGINE_AUTH_DATA= hunter2"), wantVar: "ECS_ENGINE_AUTH_DATA"},
	{name: "auth data invalid UTF-8", env: vtEnv("ECS_ENGINE_AUTH_DATA=hunter2\xff"), wantVar: "ECS_ENGINE_AUTH_DATA"},
	{name: "auth data with tab in env file", env: vtValidEnv, envFile: "ECS_ENGINE_AUTH_DATA=\"hunter2\tx\"\n", wantVar: "ECS_ENGINE_AUTH_DATA"},

	// Passwords that hold characters the redaction patterns stop at.
	{name: "proxy password with space", env: vtEnv("PROXY_URL=http://bob:hunter2 x@proxy.internal:3128"), wantVar: "PROXY_URL"},
	{name: "proxy password with newline", env: vtEnv("PROXY_URL=http://bob:hunter2\n@proxy.internal:3128"), wantVar: "PROXY_URL"},
	{name: "proxy password with double quote", env: vtEnv(`PROXY_URL=http://bob:hunter2"x@proxy.internal:3128`), wantVar: "PROXY_URL"},
	{name: "proxy password with slash", env: vtEnv("PROXY_URL=http://bob:hunter2/x@proxy.internal:3128"), wantVar: "PROXY_URL"},
	{name: "proxy password with hash", env: vtEnv("PROXY_URL=http://bob:hunter2#x@proxy.internal:3128"), wantVar: "PROXY_URL"},
	{name: "proxy password with @", env: vtEnv("PROXY_URL=ftp://bob:x@hunter2@proxy.internal:3128"), wantVar: "PROXY_URL"},
}

// TestSecretsNeverPrinted: whatever is wrong, stderr and stdout never show a password
// or the registry auth data, in either log format.
func TestSecretsNeverPrinted(t *testing.T) {
	for _, tc := range vtSecretLeaks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var files map[string]string
			if tc.envFile != "" {
				files = map[string]string{vtEnvFile: tc.envFile}
			}
			root := vtHostRoot(t, files)
			before := testenv.Snapshot(t, root)

			r := vtRun(t, tc.env, "--root", root)
			if r.code != runrecord.ExitInput {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, runrecord.ExitInput, r.stderr)
			}
			if !r.hasProblem(tc.wantVar, "") {
				t.Errorf("no problem names %s; problems:\n  %s", tc.wantVar, strings.Join(r.problems, "\n  "))
			}
			if strings.Contains(r.stderr+r.stdout, "hunter2") {
				t.Errorf("JSON log output shows the secret:\n%s", r.stderr)
			}

			var stdout, stderr bytes.Buffer
			if code := run([]string{"--root", root, "--log-format", "console"}, tc.env, &stdout, &stderr); code != runrecord.ExitInput {
				t.Errorf("console: exit code %d, want %d", code, runrecord.ExitInput)
			}
			if out := stdout.String() + stderr.String(); strings.Contains(out, "hunter2") {
				t.Errorf("console log output shows the secret:\n%s", out)
			} else if !strings.Contains(out, tc.wantVar) {
				t.Errorf("console log output does not name %s:\n%s", tc.wantVar, out)
			}
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
}

// TestUsageErrors: bad command lines exit 3, say why on stderr, and write nothing.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string // "ROOT" is replaced by the root
		want string
	}{
		{"unknown flag", []string{"--root", "ROOT", "--bogus"}, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"--root", "ROOT", "apply"}, `unexpected argument "apply"`},
		{"log format xml", []string{"--root", "ROOT", "--log-format", "xml"}, `--log-format "xml": want console or json`},
		{"empty root", []string{"--root", ""}, "--root must not be empty"},
		{"flag without value", []string{"--root", "ROOT", "--env-file"}, "flag needs an argument: -env-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := vtHostRoot(t, nil)
			before := testenv.Snapshot(t, root)
			var args []string
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "ROOT", root))
			}
			var stdout, stderr bytes.Buffer
			code := run(args, vtValidEnv, &stdout, &stderr)
			if code != runrecord.ExitUsage {
				t.Errorf("exit code %d, want %d (usage)", code, runrecord.ExitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout is not empty: %q", stdout.String())
			}
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
}

// TestHelpAndVersion: --help and --version print on stdout, exit 0 and write nothing,
// even with invalid inputs in the environment.
func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want []string
	}{
		{"--help", []string{"Usage: firstrun [flags]", "-env-file", "-dry-run", "ECS_CLUSTER", "PROXY_URL", "FIRSTRUN_LOG_AGENT (default auto)", "Exit codes:"}},
		{"-h", []string{"Usage: firstrun [flags]"}},
		{"--version", []string{"firstrun " + version + "\n"}},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			root := vtHostRoot(t, nil)
			before := testenv.Snapshot(t, root)
			var stdout, stderr bytes.Buffer
			code := run([]string{"--root", root, tc.flag}, vtEnv("ECS_CLUSTER=bad cluster"), &stdout, &stderr)
			if code != runrecord.ExitOK {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr is not empty: %q", stderr.String())
			}
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
}

// TestValidRunNeverShowsSecrets: a valid --dry-run shows its inputs (log lines) and
// the files it would write (diff on stdout), with every secret hidden.
func TestValidRunNeverShowsSecrets(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{name: "proxy password", env: vtEnv("PROXY_URL=http://bob:hunter2@proxy.internal:3128")},
		{name: "bare proxy password", env: vtEnv("PROXY_URL=bob:hunter2@proxy.internal:3128")},
		{name: "escaped proxy password", env: vtEnv("PROXY_URL=https://bob:hunter2%2Fx@proxy.internal:8443")},
		{name: "registry auth data", env: vtEnv("ECS_ENGINE_AUTH_TYPE=dockercfg", `ECS_ENGINE_AUTH_DATA={"https://index.docker.io/v1/":{"auth":"hunter2","email":"bob@example.com"}}`)},
		{name: "proxy password with a quote", env: vtEnv("PROXY_URL=http://bob:hunter2'x@proxy.internal:3128")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := vtHostRoot(t, nil)
			before := testenv.Snapshot(t, root)
			r := vtRun(t, tc.env, "--root", root, "--dry-run")
			if r.code != runrecord.ExitOK {
				t.Fatalf("exit code %d, want 0; problems: %q", r.code, r.problems)
			}
			if !strings.Contains(r.stdout, "+++ b/etc/ecs/ecs.config") {
				t.Errorf("no ecs.config diff on stdout:\n%s", r.stdout)
			}
			if out := r.stdout + r.stderr; strings.Contains(out, "hunter2") {
				t.Errorf("output shows the secret:\n%s", out)
			}
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
}

func TestUsageOfNewFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--skip", "render"},
		{"--skip", "services,bogus"},
		{"--output", "yaml", "--check"},
		{"--check", "--dry-run"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, runnertest.ChapterEnv, &stdout, &stderr); code != runrecord.ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, runrecord.ExitUsage)
		}
		if !strings.Contains(stderr.String(), "firstrun: ") {
			t.Errorf("%q: no usage message: %q", args, stderr.String())
		}
	}
}
