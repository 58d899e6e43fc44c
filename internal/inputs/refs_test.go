package inputs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/inputs"
)

func TestReferences(t *testing.T) {
	raw, _ := inputs.Resolve([]string{
		"ECS_CLUSTER=c",
		"PROXY_URL=secretsmanager:prod/proxy#url",
		"ECS_ENGINE_AUTH_DATA=ssm:/prod/docker-auth",
		"ECS_LOGLEVEL=debug",
		"ECS_RESERVED_MEMORY=ssm:",
		"ECS_INSTANCE_ATTRIBUTES=secretmanager:prod/attrs",
		"STACK_NAME=ssm:/prod/stack",
	}, "", nil)
	refs, problems := inputs.References(raw)
	var got []string
	for _, r := range refs {
		got = append(got, r.Key+"="+r.Ref.Text)
	}
	if strings.Join(got, " ") != "ECS_ENGINE_AUTH_DATA=ssm:/prod/docker-auth PROXY_URL=secretsmanager:prod/proxy#url" {
		t.Errorf("references %v", got)
	}
	var vars []string
	for _, p := range problems {
		vars = append(vars, p.Var)
		if _, still := raw.Values[p.Var]; still {
			t.Errorf("%s: a malformed reference is left among the values", p.Var)
		}
	}
	if strings.Join(vars, " ") != "ECS_INSTANCE_ATTRIBUTES ECS_RESERVED_MEMORY STACK_NAME" {
		t.Errorf("problems %v", problems)
	}
	if raw.Values["ECS_LOGLEVEL"] != "debug" || raw.Values["ECS_CLUSTER"] != "c" {
		t.Errorf("plain values changed: %v", raw.Values)
	}
}

func TestClusterCannotBeAReference(t *testing.T) {
	raw, _ := inputs.Resolve([]string{"ECS_CLUSTER=ssm:/prod/cluster"}, "", nil)
	_, problems := inputs.References(raw)
	if len(problems) != 1 || problems[0].Var != "ECS_CLUSTER" || !strings.Contains(problems[0].Msg, "the cluster is no secret") {
		t.Errorf("problems %v", problems)
	}
}

// TestResolvedValueIsNeverShown: a resolved value that breaks its input's rule is
// reported by its reference.
func TestResolvedValueIsNeverShown(t *testing.T) {
	raw, _ := inputs.Resolve([]string{"ECS_CLUSTER=c", "FIRSTRUN_LOG_AGENT=none"}, "", nil)
	raw.Resolved("PROXY_URL", "ssm:/prod/proxy", "ftp://user:hunter2-secret@proxy:3128")
	raw.Resolved("ECS_ENGINE_AUTH_DATA", "secretsmanager:prod/auth", `"hunter2-quoted"`)
	raw.Resolved("ECS_FOO", "ssm:/prod/foo", "hunter2-newline\n")
	_, err := inputs.Validate(raw, inputs.Probe{})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the message shows a resolved value:\n%s", msg)
	}
	for _, want := range []string{`the value of "ssm:/prod/proxy"`, `the value of "secretsmanager:prod/auth"`, `the value of "ssm:/prod/foo"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message does not say %s:\n%s", want, msg)
		}
	}
}

func TestRegionAndSecretsTimeout(t *testing.T) {
	raw, _ := inputs.Resolve([]string{"AWS_DEFAULT_REGION=eu-west-1", "FIRSTRUN_SECRETS_TIMEOUT=90s"}, "", nil)
	if got := inputs.Region(raw); got != "eu-west-1" {
		t.Errorf("Region = %q", got)
	}
	if got := inputs.SecretsTimeout(raw); got != 90*time.Second {
		t.Errorf("SecretsTimeout = %v", got)
	}
	raw, _ = inputs.Resolve([]string{"AWS_REGION=nowhere", "FIRSTRUN_SECRETS_TIMEOUT=soon"}, "", nil)
	if got := inputs.Region(raw); got != "" {
		t.Errorf("Region = %q", got)
	}
	if got := inputs.SecretsTimeout(raw); got != time.Minute {
		t.Errorf("SecretsTimeout = %v", got)
	}
	if _, err := inputs.Validate(raw, inputs.Probe{}); err == nil || !strings.Contains(err.Error(), "FIRSTRUN_SECRETS_TIMEOUT") {
		t.Errorf("Validate: %v", err)
	}
}
