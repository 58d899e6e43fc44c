package inputs_test

import (
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/ecsconfig"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/testenv"
)

// The two readers of ecs.config, written here from their sources' rules so that tests
// can show that every value firstrun accepts means the same to both.

// ecsInitRead reads an env file as ecs-init does for the agent's container
// (aws/amazon-ecs-agent ecs-init/docker/docker.go getEnvVars): lines split on "\n",
// each trimmed, split at the first "=", nothing unquoted or unescaped.
func ecsInitRead(content string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(content, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok {
			out[k] = v
		}
	}
	return out
}

// systemdRead reads an env file as systemd reads EnvironmentFile= (the model in
// internal/testenv, shared with the proxy env files' tests).
var systemdRead = testenv.SystemdEnvFile

// TestReadersModel checks the two readers above on the cases their sources describe,
// so that the properties below rest on readers that disagree where the real ones do.
func TestReadersModel(t *testing.T) {
	content := "A=plain\nB=\"quoted value\"\nC=back\\\\slash\nD=joins\\\nE=lost\nF= spaced \n#G=comment\nH='single'\n"
	sd := systemdRead(content)
	for k, want := range map[string]string{"A": "plain", "B": "quoted value", "C": `back\slash`, "D": "joinsE=lost", "F": "spaced", "H": "single"} {
		if sd[k] != want {
			t.Errorf("systemd reads %s as %q, want %q", k, sd[k], want)
		}
	}
	if _, ok := sd["E"]; ok {
		t.Error("systemd read E, which the backslash before it joined to D")
	}
	if _, ok := sd["#G"]; ok {
		t.Error("systemd read a comment line")
	}
	raw := ecsInitRead(content)
	for k, want := range map[string]string{"A": "plain", "B": `"quoted value"`, "C": `back\\slash`, "D": `joins\`, "E": "lost", "F": " spaced", "#G": "comment"} {
		if raw[k] != want {
			t.Errorf("ecs-init reads %s as %q, want %q", k, raw[k], want)
		}
	}
}

// TestECSValuesBothReadersAgree: an ECS_* value that systemd and ecs-init would read
// differently is refused at validation, naming the variable and saying why; the others
// are accepted and read alike.
func TestECSValuesBothReadersAgree(t *testing.T) {
	for _, tc := range []struct {
		value string
		why   string // "" when accepted
	}{
		{`info`, ""},
		{`{"https://index.docker.io/v1/":{"username":"u","password":"p"}}`, ""},
		{`a"b'c`, ""},
		{`C:\path`, "must not contain a backslash"},
		{`{"auth":"p\"w"}`, "must not contain a backslash"},
		{`trailing\`, "must not end with a backslash"},
		{`\\`, "must not end with a backslash"},
		{`"unterminated`, "must not start with a quote"},
		{`'x' y`, "must not start with a quote"},
		{`"both"`, "must not be quoted"},
	} {
		raw, problems := inputs.Resolve([]string{"ECS_CLUSTER=prod", "ECS_LOGLEVEL=" + tc.value}, "", nil)
		if len(problems) > 0 {
			t.Fatalf("Resolve: %v", problems)
		}
		cfg, err := inputs.Validate(raw, inputs.Probe{})
		if tc.why == "" {
			if err != nil {
				t.Errorf("ECS_LOGLEVEL=%s refused: %v", tc.value, err)
				continue
			}
			checkReadersAgree(t, cfg)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "ECS_LOGLEVEL: "+tc.why) {
			t.Errorf("ECS_LOGLEVEL=%s: error %v, want one naming ECS_LOGLEVEL with %q", tc.value, err, tc.why)
		}
		// The refusal is right: the two readers do disagree on it.
		line := "ECS_LOGLEVEL=" + tc.value + "\nECS_CLUSTER=prod\n"
		if sd, ei := systemdRead(line), ecsInitRead(line); sd["ECS_LOGLEVEL"] == ei["ECS_LOGLEVEL"] && sd["ECS_CLUSTER"] == ei["ECS_CLUSTER"] {
			t.Errorf("ECS_LOGLEVEL=%s is refused, but both readers read it as %q", tc.value, sd["ECS_LOGLEVEL"])
		}
	}
}

// checkReadersAgree fails when ecs.config rendered from an accepted cfg reads
// differently through systemd and ecs-init.
func checkReadersAgree(t *testing.T, cfg inputs.Config) {
	t.Helper()
	content := string(ecsconfig.Merge(nil, ecsconfig.Settings(cfg), nil))
	sd, ei := systemdRead(content), ecsInitRead(content)
	for k, v := range ei {
		if sd[k] != v {
			t.Errorf("ecs.config's %s: ecs-init reads %q, systemd %q\n%s", k, v, sd[k], content)
		}
	}
	if len(sd) != len(ei) {
		t.Errorf("ecs.config: systemd reads %d settings, ecs-init %d\n%s", len(sd), len(ei), content)
	}
}
