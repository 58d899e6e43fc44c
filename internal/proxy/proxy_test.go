package proxy_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"gopkg.in/ini.v1"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/proxy"
	"github.com/firstrun/firstrun/internal/testenv"
)

const (
	// proxyURL has credentials whose password holds a percent-encoded '@' (p@ss), which
	// systemd would read as a specifier if it were not doubled.
	proxyURL = "http://bob:p%40ss@proxy.internal:3128"
	// agentNoProxy is the ECS agent's NO_PROXY for extras: the base entries once, the
	// extras in order, the repeated 169.254.169.254 and localhost dropped.
	agentNoProxy = "169.254.169.254,169.254.170.2,/var/run/docker.sock,localhost,.corp.example,10.0.0.0/8"
	// dockerNoProxy is dockerd's and the log agent's NO_PROXY for extras.
	dockerNoProxy = "169.254.169.254,169.254.170.2,localhost,.corp.example,10.0.0.0/8"
)

// extras are FIRSTRUN_NO_PROXY's entries: one repeats a base entry, one repeats itself.
var extras = []string{"localhost", "169.254.169.254", ".corp.example", "localhost", "10.0.0.0/8"}

// mustParse parses a URL that the test knows is valid.
func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// proxyConfig returns a Config with the proxy, the NO_PROXY extras and the log agent.
func proxyConfig(t *testing.T, agent inputs.LogAgent) inputs.Config {
	t.Helper()
	return inputs.Config{
		Cluster:          "microtrader",
		Proxy:            mustParse(t, proxyURL),
		NoProxy:          extras,
		StackName:        "microtrader",
		AutoscalingGroup: "microtrader-ApplicationAutoscalingGroup-1X2Y",
		Region:           "us-east-1",
		LogAgent:         agent,
	}
}

// byPath returns the content of the file at path among fl, failing the test when it
// is not there.
func byPath(t *testing.T, fl []files.File, path string) []byte {
	t.Helper()
	for _, f := range fl {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("no file %s among the rendered files", path)
	return nil
}

func TestRender(t *testing.T) {
	dropIns := []string{hostpath.ECSProxyDropIn, hostpath.DockerProxyDropIn}
	tests := []struct {
		agent inputs.LogAgent
		paths []string
	}{
		{inputs.LogAgentCloudWatch, dropIns}, // common-config.toml is merged: internal/commonconfig
		{inputs.LogAgentAwslogs, append(dropIns[:2:2], hostpath.AwslogsProxyConfig)},
		{inputs.LogAgentNone, dropIns},
	}
	for _, tt := range tests {
		t.Run(string(tt.agent), func(t *testing.T) {
			got := proxy.Render(proxyConfig(t, tt.agent))
			var paths []string
			for _, f := range got {
				paths = append(paths, f.Path)
				if f.Mode != 0o600 {
					t.Errorf("%s: mode %#o, want 0600: it holds the proxy password", f.Path, f.Mode)
				}
				if f.Shared() {
					t.Errorf("%s: is merged, want a file firstrun owns whole", f.Path)
				}
			}
			if strings.Join(paths, " ") != strings.Join(tt.paths, " ") {
				t.Errorf("paths = %q, want %q", paths, tt.paths)
			}
			testenv.Golden(t, "proxy-"+string(tt.agent), testenv.Dump(got))
		})
	}
}

// TestNoProxy covers the seed's `[ -n $PROXY_URL ]` bug: without a proxy nothing
// proxy-related is rendered, whatever the log agent and the NO_PROXY extras.
func TestNoProxy(t *testing.T) {
	for _, agent := range []inputs.LogAgent{inputs.LogAgentCloudWatch, inputs.LogAgentAwslogs, inputs.LogAgentNone} {
		t.Run(string(agent), func(t *testing.T) {
			cfg := proxyConfig(t, agent)
			cfg.Proxy = nil
			if got := proxy.Render(cfg); got != nil {
				t.Errorf("Render = %d files, want nil:\n%s", len(got), testenv.Dump(got))
			}
			if got := proxy.AgentSettings(cfg); got != nil {
				t.Errorf("AgentSettings = %v, want nil", got)
			}
		})
	}
}

func TestAgentSettings(t *testing.T) {
	got := proxy.AgentSettings(proxyConfig(t, inputs.LogAgentNone))
	// ecs.config is read literally by ecs-init and as an EnvironmentFile by systemd
	// (no specifiers there): the value is the URL as is, % not doubled, no quotes.
	want := []inputs.Setting{
		{Key: "HTTP_PROXY", Value: proxyURL},
		{Key: "HTTPS_PROXY", Value: proxyURL},
		{Key: "NO_PROXY", Value: agentNoProxy},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("AgentSettings = %v, want %v", got, want)
	}
}

func TestNoProxyLists(t *testing.T) {
	tests := []struct {
		name   string
		extras []string
		agent  string
		docker string
	}{
		{"no extras", nil,
			"169.254.169.254,169.254.170.2,/var/run/docker.sock",
			"169.254.169.254,169.254.170.2"},
		{"extras with repeats", extras, agentNoProxy, dockerNoProxy},
		{"extra repeating the agent's socket", []string{"/var/run/docker.sock"},
			"169.254.169.254,169.254.170.2,/var/run/docker.sock",
			"169.254.169.254,169.254.170.2,/var/run/docker.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := inputs.Config{Proxy: mustParse(t, proxyURL), NoProxy: tt.extras}
			if got := proxy.AgentNoProxy(cfg); got != tt.agent {
				t.Errorf("AgentNoProxy = %q, want %q", got, tt.agent)
			}
			if got := proxy.DockerNoProxy(cfg); got != tt.docker {
				t.Errorf("DockerNoProxy = %q, want %q", got, tt.docker)
			}
		})
	}
}

func TestSystemdQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"p%40ss", `"p%%40ss"`},
		{"%%", `"%%%%"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\dir`, `"C:\\dir"`},
		{`\"`, `"\\\""`},
		{`a%b"c\d`, `"a%%b\"c\\d"`},
	}
	for _, tt := range tests {
		if got := proxy.SystemdQuote(tt.in); got != tt.want {
			t.Errorf("SystemdQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if back, err := systemdUnquote(proxy.SystemdQuote(tt.in)); err != nil || back != tt.in {
			t.Errorf("systemdUnquote(SystemdQuote(%q)) = %q, %v; want the input back", tt.in, back, err)
		}
	}
}

// systemdUnquote reads a quoted unit file value the way systemd does for
// Environment=: the outer double quotes removed, \\ and \" unescaped, then the %%
// specifier turned into %. Any other escape or specifier is an error: SystemdQuote
// never writes one.
func systemdUnquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("%s is not in double quotes", s)
	}
	var b strings.Builder
	body := s[1 : len(s)-1]
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '\\':
			if i+1 == len(body) || (body[i+1] != '\\' && body[i+1] != '"') {
				return "", fmt.Errorf("%s: unexpected escape at byte %d", s, i+1)
			}
			i++
			b.WriteByte(body[i])
		case '"':
			return "", fmt.Errorf("%s: unescaped quote at byte %d", s, i+1)
		case '%':
			if i+1 == len(body) || body[i+1] != '%' {
				return "", fmt.Errorf("%s: specifier %%%s would be expanded by systemd", s, body[i+1:min(i+2, len(body))])
			}
			i++
			b.WriteByte('%')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// TestDropIns parses the systemd drop-ins as INI files and checks each Environment=
// assignment once unquoted as systemd would.
func TestDropIns(t *testing.T) {
	fl := proxy.Render(proxyConfig(t, inputs.LogAgentNone))
	tests := []struct {
		path    string
		noProxy string
	}{
		{hostpath.ECSProxyDropIn, agentNoProxy},
		{hostpath.DockerProxyDropIn, dockerNoProxy},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			data := byPath(t, fl, tt.path)
			f, err := ini.LoadSources(ini.LoadOptions{
				AllowShadows:               true,
				AllowDuplicateShadowValues: true, // so that a repeated line shows
				PreserveSurroundedQuote:    true, // so that systemdUnquote sees the quotes
			}, data)
			if err != nil {
				t.Fatalf("parsing the drop-in: %v\n%s", err, data)
			}
			if got := f.SectionStrings(); strings.Join(got, " ") != ini.DefaultSection+" Service" {
				t.Errorf("sections = %q, want only [Service]", got)
			}
			svc, err := f.GetSection("Service")
			if err != nil {
				t.Fatal(err)
			}
			if got := svc.KeyStrings(); len(got) != 1 || got[0] != "Environment" {
				t.Errorf("[Service] keys = %q, want only Environment", got)
			}
			var env []string
			for _, raw := range svc.Key("Environment").ValueWithShadows() {
				v, err := systemdUnquote(raw)
				if err != nil {
					t.Errorf("Environment=%s: %v", raw, err)
				}
				env = append(env, v)
			}
			want := []string{"HTTP_PROXY=" + proxyURL, "HTTPS_PROXY=" + proxyURL, "NO_PROXY=" + tt.noProxy}
			if strings.Join(env, "\n") != strings.Join(want, "\n") {
				t.Errorf("Environment values =\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestAwslogsProxyConf checks awslogs' proxy.conf: KEY=value lines, the URL as is.
func TestAwslogsProxyConf(t *testing.T) {
	data := byPath(t, proxy.Render(proxyConfig(t, inputs.LogAgentAwslogs)), hostpath.AwslogsProxyConfig)
	want := "HTTP_PROXY=" + proxyURL + "\nHTTPS_PROXY=" + proxyURL + "\nNO_PROXY=" + dockerNoProxy + "\n"
	if string(data) != want {
		t.Errorf("proxy.conf =\n%s\nwant\n%s", data, want)
	}
}
