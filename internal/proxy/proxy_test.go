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
	ownFiles := []string{hostpath.ECSProxyEnv, hostpath.ECSProxyDropIn, hostpath.DockerProxyEnv, hostpath.DockerProxyDropIn}
	tests := []struct {
		agent inputs.LogAgent
		paths []string
	}{
		{inputs.LogAgentCloudWatch, ownFiles}, // common-config.toml is merged: internal/commonconfig
		{inputs.LogAgentAwslogs, append(ownFiles[:4:4], hostpath.AwslogsProxyConfig)},
		{inputs.LogAgentNone, ownFiles},
	}
	for _, tt := range tests {
		t.Run(string(tt.agent), func(t *testing.T) {
			got := proxy.Render(proxyConfig(t, tt.agent))
			var paths []string
			for _, f := range got {
				paths = append(paths, f.Path)
				holdsURL := strings.Contains(string(f.Content), "p%40ss")
				switch {
				case holdsURL && f.Mode != 0o600:
					t.Errorf("%s: mode %#o, want 0600: it holds the proxy password", f.Path, f.Mode)
				case !holdsURL && f.Mode != 0o644:
					t.Errorf("%s: mode %#o, want 0644: it holds no secret", f.Path, f.Mode)
				}
				if strings.HasPrefix(f.Path, "/etc/systemd/") && holdsURL {
					t.Errorf("%s: a unit setting holds the proxy password, which systemd shows to every local user:\n%s", f.Path, f.Content)
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

// TestDropIns parses the systemd drop-ins as INI files: a [Service] section with one
// EnvironmentFile= naming the unit's env file, nothing else, and no proxy URL.
func TestDropIns(t *testing.T) {
	fl := proxy.Render(proxyConfig(t, inputs.LogAgentNone))
	for dropIn, env := range map[string]string{
		hostpath.ECSProxyDropIn:    hostpath.ECSProxyEnv,
		hostpath.DockerProxyDropIn: hostpath.DockerProxyEnv,
	} {
		t.Run(dropIn, func(t *testing.T) {
			data := byPath(t, fl, dropIn)
			f, err := ini.LoadSources(ini.LoadOptions{AllowShadows: true, AllowDuplicateShadowValues: true}, data)
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
			if got := svc.KeyStrings(); len(got) != 1 || got[0] != "EnvironmentFile" {
				t.Errorf("[Service] keys = %q, want only EnvironmentFile", got)
			}
			if got := svc.Key("EnvironmentFile").ValueWithShadows(); len(got) != 1 || got[0] != "-"+env {
				t.Errorf("EnvironmentFile = %q, want [-%s]", got, env)
			}
			if strings.Contains(string(data), "proxy.internal") || strings.Contains(string(data), "Environment=") {
				t.Errorf("the drop-in holds proxy settings:\n%s", data)
			}
		})
	}
}

// TestEnvFiles reads the env files as systemd does: each unit's process gets the proxy
// URL byte for byte (its percent-encoded password included: no % doubling, which only
// the unit-file parser's specifiers need) and the unit's NO_PROXY, and nothing else.
func TestEnvFiles(t *testing.T) {
	fl := proxy.Render(proxyConfig(t, inputs.LogAgentNone))
	for path, noProxy := range map[string]string{hostpath.ECSProxyEnv: agentNoProxy, hostpath.DockerProxyEnv: dockerNoProxy} {
		got := testenv.SystemdEnvFile(string(byPath(t, fl, path)))
		want := map[string]string{"HTTP_PROXY": proxyURL, "HTTPS_PROXY": proxyURL, "NO_PROXY": noProxy}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: systemd reads %v, want %v", path, got, want)
		}
	}
}

// TestEnvFileValue: whatever the value, systemd's env-file parser reads back what
// EnvFileValue wrote; values with nothing special to it are written as they are.
func TestEnvFileValue(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{proxyURL, proxyURL},
		{"http://u:%25%24%22%27%5C@h:1", "http://u:%25%24%22%27%5C@h:1"},
		{"50%", "50%"},
		{"$HOME`id`", "$HOME`id`"},
		{"#not-a-comment;", "#not-a-comment;"},
		{"", "''"},
		{"a b", "'a b'"},
		{" lead", "' lead'"},
		{"trail ", "'trail '"},
		{`back\slash`, `'back\slash'`},
		{`trailing\`, `'trailing\'`},
		{`"quoted"`, `'"quoted"'`},
		{"it's", `'it'"'"'s'`},
		{"'", `''"'"''`},
		{"two\nlines", "'two\nlines'"},
		{"cr\r", "'cr\r'"},
		{"tab\t", "'tab\t'"},
	} {
		got := proxy.EnvFileValue(tt.in)
		if got != tt.want {
			t.Errorf("EnvFileValue(%q) = %s, want %s", tt.in, got, tt.want)
		}
		checkEnvFileRoundTrip(t, tt.in)
	}
}

// checkEnvFileRoundTrip fails unless systemd reads v back from a line EnvFileValue
// wrote, between two other settings that must stay as they are.
func checkEnvFileRoundTrip(t *testing.T, v string) {
	t.Helper()
	content := "# comment\nBEFORE=1\nKEY=" + proxy.EnvFileValue(v) + "\nAFTER=2\n"
	got := testenv.SystemdEnvFile(content)
	if got["KEY"] != v || got["BEFORE"] != "1" || got["AFTER"] != "2" || len(got) != 3 {
		t.Errorf("systemd reads %q written as %s as %q (all: %q)", v, proxy.EnvFileValue(v), got["KEY"], got)
	}
}

func FuzzEnvFileValue(f *testing.F) {
	for _, s := range []string{proxyURL, "", "a b", `x\`, "'", `"`, "a'b\"c\\d\ne"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		checkEnvFileRoundTrip(t, v)
	})
}

// TestPasswordsReachTheProcess: a password with the bytes that quoting, escaping,
// shells and specifiers treat specially, given in PROXY_URL as validation takes it,
// reaches each unit's process as the same credentials: the URL systemd reads from the
// env file is ProxyString's, and it decodes to the user and password given.
func TestPasswordsReachTheProcess(t *testing.T) {
	for _, tt := range []struct{ proxyURL, user, password string }{
		{"http://bob:p%25ss@proxy.internal:3128", "bob", "p%ss"},
		{"http://bob:%25%25@proxy.internal:3128", "bob", "%%"},
		{"http://bob:p%24%7BHOME%7D@proxy.internal:3128", "bob", "p${HOME}"},
		{"http://bob:a%22b%27c%5Cd%60e@proxy.internal:3128", "bob", `a"b'c\d` + "`e"},
		{"http://b%20b:%25n%25i%25%25@proxy.internal:3128", "b b", "%n%i%%"},
		{"http://bob:pa$$w'rd@proxy.internal:3128", "bob", "pa$$w'rd"},
	} {
		raw, problems := inputs.Resolve([]string{"ECS_CLUSTER=c", "FIRSTRUN_LOG_AGENT=none", "PROXY_URL=" + tt.proxyURL}, "", nil)
		if len(problems) > 0 {
			t.Fatalf("%s: %v", tt.proxyURL, problems)
		}
		cfg, err := inputs.Validate(raw, inputs.Probe{})
		if err != nil {
			t.Errorf("%s: %v", tt.proxyURL, err)
			continue
		}
		fl := proxy.Render(cfg)
		for _, path := range []string{hostpath.ECSProxyEnv, hostpath.DockerProxyEnv} {
			got := testenv.SystemdEnvFile(string(byPath(t, fl, path)))["HTTPS_PROXY"]
			if got != cfg.ProxyString() {
				t.Errorf("%s: %s gives the process HTTPS_PROXY=%s, want %s", tt.proxyURL, path, got, cfg.ProxyString())
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Errorf("%s: the process's HTTPS_PROXY %s: %v", tt.proxyURL, got, err)
				continue
			}
			if p, _ := u.User.Password(); u.User.Username() != tt.user || p != tt.password {
				t.Errorf("%s: the process's proxy has user %q password %q, want %q %q", tt.proxyURL, u.User.Username(), p, tt.user, tt.password)
			}
		}
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
