package runner

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/secrets"
	"github.com/firstrun/firstrun/internal/testenv"
)

// fakeSecrets is SSM and Secrets Manager as a fake Getter: values by name, errors by
// name, and the names asked.
type fakeSecrets struct {
	params  map[string]string
	secrets map[string]string
	errs    map[string]error
	asked   []string
	regions []string
}

func (f *fakeSecrets) GetParameter(_ context.Context, region, name string) (secrets.Parameter, error) {
	f.asked, f.regions = append(f.asked, "ssm:"+name), append(f.regions, region)
	if err := f.errs[name]; err != nil {
		return secrets.Parameter{}, err
	}
	v, ok := f.params[name]
	if !ok {
		return secrets.Parameter{}, &smithy.GenericAPIError{Code: "ParameterNotFound", Message: "Parameter " + name + " not found."}
	}
	return secrets.Parameter{Value: v, Type: "SecureString"}, nil
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, region, id string) (secrets.Secret, error) {
	f.asked, f.regions = append(f.asked, "secretsmanager:"+id), append(f.regions, region)
	if err := f.errs[id]; err != nil {
		return secrets.Secret{}, err
	}
	v, ok := f.secrets[id]
	if !ok {
		return secrets.Secret{}, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret."}
	}
	return secrets.Secret{String: &v}, nil
}

// on makes h's runs read secrets from f.
func (f *fakeSecrets) on(h *liveHost) {
	h.mods = append(h.mods, func(d *Deps) {
		d.Secrets = func() (secrets.Getter, error) { return f, nil }
	})
}

// The resolved values: none may show anywhere but in the 0600 files they go into.
const (
	proxyHost    = "hidden-proxy.internal:3128"
	proxyPass    = "pr0xy-pa55"
	authData     = `{"https://index.docker.io/v1/":{"auth":"c2VjcmV0LWF1dGg=","email":"ops@example.com"}}`
	plainSetting = "settingvalue-from-ssm"
)

func newSecretHost(t *testing.T) (*liveHost, *fakeSecrets) {
	h := newLiveHost(t)
	f := &fakeSecrets{
		params:  map[string]string{"/prod/ecs/docker-auth": authData, "/prod/ecs/setting": plainSetting},
		secrets: map[string]string{"prod/proxy": `{"url":"http://ops:` + proxyPass + `@` + proxyHost + `","other":"x"}`},
	}
	f.on(h)
	return h, f
}

// refEnv are the chapter's inputs with the proxy, the registry auth and a setting
// whose name says nothing of secrets, as references.
var refEnv = testenv.WithEnv(fastEnv,
	"PROXY_URL=secretsmanager:prod/proxy#url",
	"ECS_ENGINE_AUTH_DATA=ssm:/prod/ecs/docker-auth",
	"ECS_IMAGE_PULL_BEHAVIOR=ssm:/prod/ecs/setting",
)

// leaks returns where a resolved value shows in text.
func leaks(text string) []string {
	var out []string
	for _, v := range []string{proxyHost, proxyPass, "c2VjcmV0LWF1dGg=", plainSetting} {
		if strings.Contains(text, v) {
			out = append(out, v)
		}
	}
	return out
}

// TestReferencesResolvedNeverShown: references resolve into the files, which are 0600,
// and no value shows in the log (stderr and firstrun's own log file), a dry run's
// diff, --check's report, the marker or any other file; the log names the references.
func TestReferencesResolvedNeverShown(t *testing.T) {
	h, f := newSecretHost(t)
	dry := h.run(t, refEnv, Options{DryRun: true})
	if dry.Code != runrecord.ExitOK {
		t.Fatalf("dry run: exit %d\n%s", dry.Code, dry.Stderr)
	}
	if !strings.Contains(dry.Stdout, "ECS_ENGINE_AUTH_DATA=REDACTED") || !strings.Contains(dry.Stdout, "ECS_IMAGE_PULL_BEHAVIOR=REDACTED") {
		t.Errorf("the dry run's diff does not show the settings, redacted:\n%s", dry.Stdout)
	}
	r := h.run(t, refEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	cfg, _ := runnertest.Read(t, h.root, hostpath.ECSConfig)
	for _, want := range []string{"ECS_ENGINE_AUTH_DATA=" + authData + "\n", "ECS_IMAGE_PULL_BEHAVIOR=" + plainSetting + "\n", "HTTP_PROXY=http://ops:" + proxyPass + "@" + proxyHost + "\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("ecs.config lacks %q:\n%s", want, cfg)
		}
	}
	if got := strings.Join(f.asked, " "); got != "ssm:/prod/ecs/docker-auth ssm:/prod/ecs/setting secretsmanager:prod/proxy ssm:/prod/ecs/docker-auth ssm:/prod/ecs/setting secretsmanager:prod/proxy" {
		t.Errorf("asked %s", got)
	}
	if f.regions[0] != "us-east-1" {
		t.Errorf("asked in %v, want the given region", f.regions)
	}
	refs := map[string]string{}
	for _, l := range r.Logs {
		if l["msg"] == "input" && l["reference"] == true {
			refs[l["name"].(string)] = l["value"].(string)
		}
	}
	if refs["PROXY_URL"] != "secretsmanager:prod/proxy#url" || refs["ECS_ENGINE_AUTH_DATA"] != "ssm:/prod/ecs/docker-auth" {
		t.Errorf("the log does not name the references: %v\n%s", refs, r.Stderr)
	}
	if !r.Logged("secret resolved", "reference") {
		t.Errorf("no 'secret resolved' line")
	}

	chk := h.check(t, refEnv, "table")
	chkJSON := h.check(t, refEnv, "json")
	if !strings.Contains(chk.Stdout, "ok      secrets") {
		t.Errorf("--check's secrets line:\n%s", chk.Stdout)
	}
	for what, text := range map[string]string{"the dry run's output": dry.Stdout, "the dry run's log": dry.Stderr, "the log": r.Stderr,
		"--check": chk.Stdout + chk.Stderr, "--check json": chkJSON.Stdout} {
		if l := leaks(text); l != nil {
			t.Errorf("%s shows %v:\n%s", what, l, text)
		}
	}
	// Every file under the root: a resolved value only in 0600 files, and only in
	// those firstrun renders.
	filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		l := leaks(string(data))
		if l == nil {
			return nil
		}
		rel := strings.TrimPrefix(p, h.root)
		fi, _ := d.Info()
		switch rel {
		case hostpath.ECSConfig, hostpath.ECSProxyEnv, hostpath.DockerProxyEnv, hostpath.CloudWatchCommonConfig:
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s holds %v with mode %04o", rel, l, fi.Mode().Perm())
			}
		default:
			t.Errorf("%s holds %v", rel, l)
		}
		return nil
	})
}

// TestResolutionFailureWritesNothing: a reference that cannot be resolved is exit 2
// before anything is written, naming the variable, the reference and the API's error,
// with every other problem.
func TestResolutionFailureWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"not found", nil, "PROXY_URL: secretsmanager:prod/nope#url: not found: ResourceNotFoundException"},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: arn:aws:sts::123456789012:assumed-role/r/i-1 is not authorized to perform: secretsmanager:GetSecretValue"},
			"PROXY_URL: secretsmanager:prod/nope#url: access denied: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/r/i-1 is not authorized to perform: secretsmanager:GetSecretValue; the instance role needs secretsmanager:GetSecretValue on the secret"},
		{"KMS", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "Access to KMS is not allowed"},
			"PROXY_URL: secretsmanager:prod/nope#url: cannot decrypt it (KMS): AccessDeniedException: Access to KMS is not allowed; the instance role needs kms:Decrypt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, f := newSecretHost(t)
			f.errs = map[string]error{"prod/nope": tc.err}
			before := snapshot(t, h.root)
			r := h.run(t, testenv.WithEnv(refEnv, "PROXY_URL=secretsmanager:prod/nope#url", "FIRSTRUN_HEALTH_TIMEOUT=forever"))
			if r.Code != runrecord.ExitInput {
				t.Fatalf("exit %d, want %d\n%s", r.Code, runrecord.ExitInput, r.Stderr)
			}
			problems := strings.Join(problemsOf(r), "\n")
			if !strings.Contains(problems, tc.want) || !strings.Contains(problems, "FIRSTRUN_HEALTH_TIMEOUT") {
				t.Errorf("problems:\n%s\nwant %q and the other problem", problems, tc.want)
			}
			if got := changedFiles(t, h.root, before); len(got) > 0 {
				t.Errorf("files written: %v", got)
			}
			if l := leaks(r.Stderr); l != nil {
				t.Errorf("the log shows %v", l)
			}
		})
	}
}

// TestMalformedReferenceAsksNothing: a malformed reference is exit 2 naming the
// variable, and nothing is asked of SSM or Secrets Manager for it.
func TestMalformedReferenceAsksNothing(t *testing.T) {
	h, f := newSecretHost(t)
	before := snapshot(t, h.root)
	r := h.run(t, testenv.WithEnv(refEnv, "ECS_ENGINE_AUTH_DATA=ssm:/prod/ecs/docker auth", "ECS_CLUSTER=ssm:/prod/cluster"))
	if r.Code != runrecord.ExitInput {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	problems := strings.Join(problemsOf(r), "\n")
	for _, want := range []string{"ECS_ENGINE_AUTH_DATA: is not a valid reference", "ECS_CLUSTER: cannot be a reference"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems:\n%s\nwant %q", problems, want)
		}
	}
	for _, a := range f.asked {
		if strings.Contains(a, "docker") || strings.Contains(a, "cluster") {
			t.Errorf("asked for a malformed reference: %v", f.asked)
		}
	}
	if got := changedFiles(t, h.root, before); len(got) > 0 {
		t.Errorf("files written: %v", got)
	}
}

// TestCheckFlagsExposedSecrets: --check warns of a resolved value in a file every
// local user can read, and in the env file, naming the reference, never the value.
func TestCheckFlagsExposedSecrets(t *testing.T) {
	h, _ := newSecretHost(t)
	if r := h.run(t, refEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if err := os.Chmod(filepath.Join(h.root, hostpath.ECSConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, h.root, hostpath.EnvFile, "# pasted by hand\nNOTE="+plainSetting+"\n", 0o600)
	chk := h.check(t, refEnv, "table")
	for _, want := range []string{
		"WARN    secrets",
		"any local user can read the value of ssm:/prod/ecs/setting in /etc/ecs/ecs.config (mode 0644)",
		"a value of ECS_ENGINE_AUTH_DATA in /etc/ecs/ecs.config",
		"the env file " + filepath.Join(h.root, hostpath.EnvFile) + " holds the value of ssm:/prod/ecs/setting in clear",
	} {
		if !strings.Contains(chk.Stdout, want) {
			t.Errorf("--check does not say %q:\n%s", want, chk.Stdout)
		}
	}
	if l := leaks(chk.Stdout); l != nil {
		t.Errorf("--check shows %v:\n%s", l, chk.Stdout)
	}
}

// problemsOf returns the problems of the run's "invalid input" line.
func problemsOf(r runnertest.Result) []string {
	for _, l := range r.Logs {
		if l["msg"] == "invalid input: nothing was written" {
			var out []string
			for _, p := range l["problems"].([]any) {
				out = append(out, p.(string))
			}
			return out
		}
	}
	return nil
}

// snapshot returns every file under root but firstrun's own log and metrics, with
// its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, filepath.Join(root, "/var/log/firstrun")) {
			return err
		}
		data, _ := os.ReadFile(p)
		out[p] = string(data)
		return nil
	})
	return out
}

// changedFiles returns the files that differ from before.
func changedFiles(t *testing.T, root string, before map[string]string) []string {
	var out []string
	after := snapshot(t, root)
	for p, v := range after {
		if old, ok := before[p]; !ok || old != v {
			out = append(out, p)
		}
	}
	return out
}
