package inputs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/inputs"
)

// TestValidateAgentURL: FIRSTRUN_AGENT_URL is the agent's metadata endpoint. The
// agent's introspection server answers GET / with the list of its paths, not with its
// metadata (aws/amazon-ecs-agent ecs-agent/introspection/server.go), so a URL without
// a path gets /v1/metadata rather than being polled as is.
func TestValidateAgentURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:51678", "http://127.0.0.1:51678/v1/metadata"},
		{"http://127.0.0.1:51678/", "http://127.0.0.1:51678/v1/metadata"},
		{"http://127.0.0.1:51678/v1/metadata", "http://127.0.0.1:51678/v1/metadata"},
		{"http://localhost:51678/v1/metadata", "http://localhost:51678/v1/metadata"},
		{"http://[::1]:51678", "http://[::1]:51678/v1/metadata"},
		{"HTTP://127.0.0.1:8080", "http://127.0.0.1:8080/v1/metadata"},
	} {
		cfg := validate(t, inputs.Probe{}, "ECS_CLUSTER=prod", "FIRSTRUN_AGENT_URL="+tc.in)
		if cfg.AgentURL != tc.want {
			t.Errorf("FIRSTRUN_AGENT_URL=%s: AgentURL %q, want %q", tc.in, cfg.AgentURL, tc.want)
		}
	}
	if got := validate(t, inputs.Probe{}, "ECS_CLUSTER=prod").AgentURL; got != "http://127.0.0.1:51678/v1/metadata" {
		t.Errorf("default AgentURL %q", got)
	}
}

func TestValidateAgentURLRejects(t *testing.T) {
	for _, tc := range []struct{ in, wantMsg string }{
		{"http://127.0.0.1:51678/v1/tasks", `must be the agent's metadata endpoint, path /v1/metadata (got "http://127.0.0.1:51678/v1/tasks")`},
		{"http://127.0.0.1:51678/v1/metadata/", "path /v1/metadata"},
		{"http://127.0.0.1:51678/metadata", "path /v1/metadata"},
		{"https://127.0.0.1:51678/v1/metadata", "must use the http scheme"},
		{"ftp://127.0.0.1:51678/v1/metadata", "must use the http scheme"},
		{"http:///v1/metadata", "must name a host"},
		{"http://u:secret@127.0.0.1:51678/v1/metadata", "must not carry credentials"},
		{"http://127.0.0.1:51678/v1/metadata?x=1", "must not have a query"},
		{"http://127.0.0.1:51678/v1/metadata?", "must not have a query"},
		{"http://127.0.0.1:51678/v1/metadata#top", "must not have a fragment"},
		{"127.0.0.1:51678", "is not a valid URL"},
	} {
		raw, problems := inputs.Resolve([]string{"ECS_CLUSTER=prod", "FIRSTRUN_AGENT_URL=" + tc.in}, "", nil)
		if len(problems) > 0 {
			t.Fatalf("Resolve: %v", problems)
		}
		_, err := inputs.Validate(raw, inputs.Probe{})
		var report inputs.Report
		if !errors.As(err, &report) || len(report) != 1 || report[0].Var != "FIRSTRUN_AGENT_URL" ||
			!strings.Contains(report[0].Msg, tc.wantMsg) {
			t.Errorf("FIRSTRUN_AGENT_URL=%s: error %v, want one problem of FIRSTRUN_AGENT_URL saying %q", tc.in, err, tc.wantMsg)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("FIRSTRUN_AGENT_URL=%s: error shows the password: %v", tc.in, err)
		}
	}
}
