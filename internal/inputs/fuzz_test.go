package inputs_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/firstrun/firstrun/internal/inputs"
)

// FuzzValidate feeds arbitrary ECS_CLUSTER, PROXY_URL, STACK_NAME, AUTOSCALING_GROUP
// and ECS_LOGLEVEL values through Resolve and Validate, with and without a log agent.
// Validate must never panic; what it accepts can never carry a control character into
// a config file, and its proxy is always scheme://host:port; what it rejects is a
// Report whose every problem names its variable.
func FuzzValidate(f *testing.F) {
	seeds := [][5]string{
		{"microtrader-cluster", "http://proxy.internal:3128", "microtrader", "microtrader-asg", "debug"},
		{"arn:aws:ecs:us-east-1:123456789012:cluster/prod", "bob:p%40ss@proxy:3128", "s", "a", "info"},
		{"prod", "[::1]:3128", "", "", ""},
		{"prod", "https://proxy:8443/", "Stack-1", "asg.v#2_x/y", `["json-file"]`},
		{"prod\nECS_ENGINE_AUTH_DATA=x", "http://proxy:3128\nHTTP_PROXY=evil", "s\n", "a\n", "debug\nECS_CLUSTER=evil"},
		{"prod\r", "http://proxy:3128\r", "s\r", "a\r", "debug\r"},
		{"prod%0a", "http://proxy:3128%0a", "s%0a", "a%0a", "debug%0a"},
		{"prod", "http://b%0aob:x@proxy:3128", "s", "a", "x"},
		{"prod", "http://[fe80::1%25%0a]:3128", "s", "a", "x"},
		{"prödüction", "http://prøxy:3128", "stäck", "grüppe", "ünïcode"},
		{"prod\u0085", "http://proxy:3128\u2028", "s\u200b", "a\u0085", "\u00a0debug"},
		{"", "ftp://bob:hunter2@proxy:21", "1st", "a b", `"quoted"`},
		{"prod", "http://:3128", "s", "a", " lead"},
		{"prod", "http://proxy:3128?x#y", "s", "a", "x"},
		{"prod", "http://proxy:0", "s", "a", "x"},
		{"prod", "http://proxy:70000", "s", "a", "x"},
		{"prod", "proxy", "s", "a", "\x00"},
		{"prod", "http://bob:hun@ter2@proxy:3128", "s", "a", "\xff"},
		// One tricky value among valid ones, so that only its own check can stop it.
		{"prod", "", "s", "a", "debug\nECS_CLUSTER=evil"},
		{"prod", "", "s", "a", "debug\r"},
		{"prod", "", "s", "a", "a\u0085b"},
		{"prod", "", "s", "a\x00", "debug"},
		{"prod", "http://proxy:3128", "s", "a", "%0a"},
		{"prod", "http://proxy:3128", "s", "a", `C:\\dir`},
		{"prod", "http://proxy:3128", "s", "a", `line\`},
		{"prod", "http://proxy:3128", "s", "a", `"open`},
		{"prod", `http://b\ob:x@proxy:3128`, "s", "a", "x"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	f.Fuzz(func(t *testing.T, cluster, proxy, stack, asg, extra string) {
		env := []string{
			"ECS_CLUSTER=" + cluster,
			"PROXY_URL=" + proxy,
			"STACK_NAME=" + stack,
			"AUTOSCALING_GROUP=" + asg,
			"ECS_LOGLEVEL=" + extra,
		}
		raw, problems := inputs.Resolve(env, "", nil)
		if len(problems) > 0 {
			t.Fatalf("Resolve without an env file has problems: %v", problems)
		}
		for _, probe := range []inputs.Probe{{}, {CloudWatchAgent: true}} {
			cfg, err := inputs.Validate(raw, probe)
			if err != nil {
				checkReport(t, err)
				continue
			}
			checkConfig(t, cfg)
			checkReadersAgree(t, cfg)
			if cfg.Cluster != cluster {
				t.Errorf("Cluster = %q, want the input %q", cfg.Cluster, cluster)
			}
		}
	})
}

// checkReport fails unless err is a non-empty Report whose problems all name a
// variable and say something.
func checkReport(t *testing.T, err error) {
	t.Helper()
	var report inputs.Report
	if !errors.As(err, &report) {
		t.Fatalf("error %v (%T) is not an inputs.Report", err, err)
	}
	if len(report) == 0 {
		t.Fatal("empty Report returned as an error")
	}
	for _, p := range report {
		if p.Var == "" || p.Msg == "" {
			t.Errorf("problem without a variable or a message: %#v", p)
		}
	}
}

// checkConfig fails when an accepted Config holds a control character or a proxy that
// is not scheme://[userinfo@]host:port.
func checkConfig(t *testing.T, cfg inputs.Config) {
	t.Helper()
	fields := map[string]string{
		"Cluster":          cfg.Cluster,
		"Proxy":            cfg.ProxyString(),
		"StackName":        cfg.StackName,
		"AutoscalingGroup": cfg.AutoscalingGroup,
		"Region":           cfg.Region,
	}
	for _, s := range cfg.ECSSettings {
		fields["ECSSettings key "+s.Key] = s.Key
		fields["ECSSettings "+s.Key] = s.Value
	}
	for i, e := range cfg.NoProxy {
		fields["NoProxy["+strconv.Itoa(i)+"]"] = e
	}
	for name, v := range fields {
		if strings.ContainsFunc(v, unicode.IsControl) {
			t.Errorf("accepted %s %q holds a control character", name, v)
		}
	}
	u := cfg.Proxy
	if u == nil {
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		t.Errorf("proxy %q: scheme %q, want http or https", u, u.Scheme)
	}
	if u.Hostname() == "" {
		t.Errorf("proxy %q has no host", u)
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		t.Errorf("proxy %q: port %q, want 1-65535", u, u.Port())
	}
	if u.Opaque != "" || u.Path != "" || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		t.Errorf("proxy %q has an opaque part, path, query or fragment", u)
	}
	if rest, ok := strings.CutPrefix(cfg.ProxyString(), u.Scheme+"://"); !ok || strings.ContainsAny(rest, "/?#") {
		t.Errorf("proxy string %q is not scheme://[userinfo@]host:port", cfg.ProxyString())
	}
}
