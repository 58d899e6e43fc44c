package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/firstrun/firstrun/internal/secrets/secretstest"
	"github.com/firstrun/firstrun/internal/testenv"
	"github.com/firstrun/firstrun/test/e2e/sandbox"
	"github.com/firstrun/firstrun/test/imdsmock"
)

// The instance role's credentials as AWS's IMDS mock v1.12.0 hands them out (its
// default iam-security-credentials): the stand-in accepts only signatures made with
// them.
var mockRole = aws.Credentials{AccessKeyID: "12345678901", SecretAccessKey: "v/12345678901",
	SessionToken: "TEST92test48TEST+y6RpoTEST92test48TEST/8oWVAiBqTEsT5Ky7ty2tEStxC1T=="}

// The secrets kept by the stand-in; none may show outside the files they go into.
const (
	e2eProxyHost = "secret-proxy.e2e.internal:3128"
	e2eProxyPass = "e2e-pr0xy-pa55"
	e2eAuth      = `{"https://registry.e2e.internal":{"auth":"ZTJlLXJlZ2lzdHJ5LWF1dGg=","email":"ops@e2e.internal"}}`
)

var fakesecretsBin struct {
	once sync.Once
	path string
	err  error
}

// buildFakesecrets builds test/e2e/fakesecrets once, static, for the sandbox.
func buildFakesecrets(t *testing.T) string {
	t.Helper()
	fakesecretsBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "fakesecrets-")
		if err != nil {
			fakesecretsBin.err = err
			return
		}
		fakesecretsBin.path = filepath.Join(dir, "fakesecrets")
		cmd := exec.Command("go", "build", "-trimpath", "-o", fakesecretsBin.path, "./test/e2e/fakesecrets")
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fakesecretsBin.err = err
			t.Logf("%s", out)
		}
	})
	if fakesecretsBin.err != nil {
		t.Fatalf("building fakesecrets: %v", fakesecretsBin.err)
	}
	return fakesecretsBin.path
}

// startSecrets starts, in the instance, AWS's IMDS mock (region, instance id, the
// instance role's credentials) and the SSM and Secrets Manager stand-in (fakesecrets),
// which checks every signature against the mock's role credentials.
func startSecrets(t *testing.T, b *box) {
	t.Helper()
	bin := buildFakesecrets(t)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.WriteFile(b.ctx(30*time.Second), "/usr/local/bin/fakesecrets", data, 0o755); err != nil {
		t.Fatal(err)
	}
	mock := imdsmock.Config{Region: "eu-west-1", InstanceID: "i-0e2e0000000000002", Port: 1338, Hostname: "127.0.0.1"}
	mcfg, err := mock.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/imds-mock.json", mcfg, 0o644); err != nil {
		t.Fatal(err)
	}
	proxySecret := `{"url":"http://ops:` + e2eProxyPass + `@` + e2eProxyHost + `","note":"e2e"}`
	scfg, err := json.Marshal(secretstest.Config{
		Region:      "eu-west-1",
		Credentials: []aws.Credentials{mockRole},
		Parameters: map[string]secretstest.Param{
			"/e2e/docker-auth": {Value: e2eAuth, Type: "SecureString", KeyID: "e2e-key"},
		},
		Secrets: map[string]secretstest.Secret{"e2e/proxy": {String: &proxySecret}},
		Keys:    map[string]secretstest.Key{"e2e-key": {}},
		Denied:  []string{"/e2e/denied"},
		Role:    "baskinc-role",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/fakesecrets.json", scfg, 0o644); err != nil {
		t.Fatal(err)
	}
	b.sh("systemd-run", "--unit=imds-mock", "--setenv=HOME=/root", sandbox.BinMount+"/ec2-metadata-mock", "-c", "/etc/imds-mock.json")
	b.sh("systemd-run", "--unit=fakesecrets", "/usr/local/bin/fakesecrets", "-listen", "127.0.0.1:8082", "-log", "/var/log/fakesecrets.jsonl", "-config", "/etc/fakesecrets.json")
	b.sh("bash", "-c", `for i in $(seq 100); do
		(: </dev/tcp/127.0.0.1/1338) 2>/dev/null && (: </dev/tcp/127.0.0.1/8082) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`)
}

// runWithSecrets runs firstrun (args after the binary) with the stand-ins' endpoints,
// and an HTTP proxy in its environment that answers nothing: were any request of the
// run's to go through a proxy, it would fail.
func runWithSecrets(t *testing.T, b *box, args ...string) result {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, errOut, code, err := b.s.Exec(ctx, nil, append([]string{"env",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338",
		"AWS_ENDPOINT_URL_SSM=http://127.0.0.1:8082",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:8082",
		"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9",
		firstrunBin, "--log-format", "json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := result{code: code, stdout: string(out), stderr: string(errOut), took: time.Since(start)}
	t.Logf("firstrun %s: exit %d in %s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond))
	return r
}

// secretLeaks returns the secrets text shows.
func secretLeaks(text string) []string {
	var out []string
	for _, v := range []string{e2eProxyHost, e2eProxyPass, "ZTJlLXJlZ2lzdHJ5LWF1dGg="} {
		if strings.Contains(text, v) {
			out = append(out, v)
		}
	}
	return out
}

// TestSecretReferences: in the sandbox, with the IMDS mock's instance role and the SSM
// and Secrets Manager stand-in, an env file holding only references (the proxy from a
// Secrets Manager JSON key, the registry auth from a SecureString under a customer
// key) configures the instance, which joins its cluster: the values land in 0600 files
// only, the requests are signed with the role's credentials and never go through a
// proxy, no value shows in the log, firstrun's log file or --check; a reference the
// role may not read then fails the run with exit 2 and changes nothing.
func TestSecretReferences(t *testing.T) {
	b := boot(t)
	startSecrets(t, b)
	env := append([]string(nil), baseEnv...)
	env[len(env)-1] = "FIRSTRUN_IMDS=on" // the region and the role's credentials from the mock
	b.envFile(append(env,
		"PROXY_URL=secretsmanager:e2e/proxy#url",
		"ECS_ENGINE_AUTH_DATA=ssm:/e2e/docker-auth")...)
	r := runWithSecrets(t, b)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := b.agentCluster(); got != "e2e-cluster" {
		t.Errorf("the agent joined %q", got)
	}
	for _, want := range []string{
		`"msg":"secret resolved","phase":"resolve","name":"ECS_ENGINE_AUTH_DATA","reference":"ssm:/e2e/docker-auth","type":"SecureString"`,
		`"msg":"secret resolved","phase":"resolve","name":"PROXY_URL","reference":"secretsmanager:e2e/proxy#url","type":"SecretString"`,
		`"name":"PROXY_URL","value":"secretsmanager:e2e/proxy#url","source":"env file","reference":true`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %s:\n%s", want, r.stderr)
		}
	}
	cfg := b.sh("cat", "/etc/ecs/ecs.config")
	if !strings.Contains(cfg, "ECS_ENGINE_AUTH_DATA="+e2eAuth+"\n") || !strings.Contains(cfg, "HTTP_PROXY=http://ops:"+e2eProxyPass+"@"+e2eProxyHost+"\n") {
		t.Errorf("ecs.config lacks the resolved values:\n%s", cfg)
	}
	// Every file holding a value is 0600, and is one firstrun renders.
	holders := b.sh("sh", "-c", "grep -rlF -e "+e2eProxyHost+" -e ZTJlLXJlZ2lzdHJ5LWF1dGg= /etc/ecs /etc/systemd /etc/firstrun /etc/awslogs /var/lib/firstrun /var/log/firstrun /opt/aws 2>/dev/null | xargs -r stat -c '%n %a' | sort")
	want := strings.Join([]string{
		"/etc/ecs/ecs.config 600",
		"/etc/firstrun/proxy/docker.env 600",
		"/etc/firstrun/proxy/ecs.env 600",
		"/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml 600",
	}, "\n")
	// The CloudWatch agent stand-in writes env-config.json 0644 with the proxy, as the
	// real agent does (README, "Decisions"): --check warns of it, firstrun cannot change it.
	want += "\n/opt/aws/amazon-cloudwatch-agent/etc/env-config.json 644"
	if holders != want {
		t.Errorf("files holding a resolved value:\n%s\nwant:\n%s", holders, want)
	}
	ownLog := b.sh("cat", "/var/log/firstrun/firstrun.log")
	marker := b.sh("cat", "/var/lib/firstrun/last-run.json")
	for what, text := range map[string]string{"the log": r.stderr, "firstrun's log file": ownLog, "the marker": marker} {
		if l := secretLeaks(text); l != nil {
			t.Errorf("%s shows %v", what, l)
		}
	}
	reqs := strings.Split(b.sh("cat", "/var/log/fakesecrets.jsonl"), "\n")
	if len(reqs) != 2 {
		t.Errorf("the stand-in got %d requests, want 2:\n%s", len(reqs), strings.Join(reqs, "\n"))
	}
	for _, line := range reqs {
		if !strings.Contains(line, `"sigv4":true,"verified":true,"answer":"OK"`) {
			t.Errorf("a request not signed with the instance role's credentials, or refused: %s", line)
		}
	}

	chk := runWithSecrets(t, b, "--check")
	if !strings.Contains(chk.stdout, "WARN    secrets                                                                            any local user can read the value of secretsmanager:e2e/proxy#url in /opt/aws/amazon-cloudwatch-agent/etc/env-config.json (mode 0644), written by the CloudWatch agent") ||
		!strings.Contains(chk.stdout, "ok      inputs") || chk.code != 0 {
		t.Errorf("--check:\n%s\n%s", chk.stdout, chk.stderr)
	}
	if l := secretLeaks(chk.stdout + chk.stderr); l != nil {
		t.Errorf("--check shows %v:\n%s", l, chk.stdout)
	}

	// A reference the role may not read: exit 2, nothing changed.
	before := b.stamps("/etc/ecs/ecs.config", "/etc/firstrun/proxy/docker.env")
	b.envFile(append(env,
		"PROXY_URL=secretsmanager:e2e/proxy#url",
		"ECS_ENGINE_AUTH_DATA=ssm:/e2e/denied")...)
	bad := runWithSecrets(t, b)
	if bad.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", bad.code, bad.stderr)
	}
	if !strings.Contains(bad.stderr, "ECS_ENGINE_AUTH_DATA: ssm:/e2e/denied: access denied: AccessDeniedException") ||
		!strings.Contains(bad.stderr, "the instance role needs ssm:GetParameter on the parameter") {
		t.Errorf("the failure does not name the reference and the API's error:\n%s", bad.stderr)
	}
	if after := b.stamps("/etc/ecs/ecs.config", "/etc/firstrun/proxy/docker.env"); after != before {
		t.Errorf("files changed by the failed run:\n%s\n%s", before, after)
	}
	if l := secretLeaks(bad.stderr); l != nil {
		t.Errorf("the failed run's log shows %v", l)
	}
}
