package inputs

import "testing"

// TestProxyStringEncodesCredentials: credentials with characters that a shell, systemd
// or TOML would read specially come out percent-encoded, the same to the proxy.
func TestProxyStringEncodesCredentials(t *testing.T) {
	cases := map[string]string{
		"http://bob:hunter2@proxy:3128":          "http://bob:hunter2@proxy:3128",
		"bob:p%40ss@proxy:3128":                  "http://bob:p%40ss@proxy:3128",
		"http://b%24b:p$ss'w&rd;(x)@proxy:3128":  "http://b%24b:p%24ss%27w%26rd%3B%28x%29@proxy:3128",
		"https://only-user@proxy.internal:8443/": "https://only-user@proxy.internal:8443",
		"http://[fd00::1]:3128":                  "http://[fd00::1]:3128",
	}
	for in, want := range cases {
		cfg, err := Validate(Raw{Values: map[string]string{"ECS_CLUSTER": "c", "PROXY_URL": in, "FIRSTRUN_LOG_AGENT": "none"}}, Probe{})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := cfg.ProxyString(); got != want {
			t.Errorf("%s: ProxyString() = %s, want %s", in, got, want)
		}
	}
}
