package ecsconfig_test

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/ecsconfig"
	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/testenv"
)

const (
	// proxyURL carries credentials with a percent-encoded '@': ecs.config holds it as
	// is (no quotes, % not doubled), since ecs-init reads the file literally.
	proxyURL = "http://bob:p%40ss@proxy.internal:3128"
	// agentNoProxy is the ECS agent's NO_PROXY with no extras.
	agentNoProxy = "169.254.169.254,169.254.170.2,/var/run/docker.sock"
)

// proxyKeys are the keys the proxy adds to ecs.config.
var proxyKeys = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// config returns a Config for the cluster microtrader with two ECS_* settings, and the
// proxy when withProxy is set.
func config(t testing.TB, withProxy bool) inputs.Config {
	t.Helper()
	cfg := inputs.Config{
		Cluster: "microtrader",
		ECSSettings: []inputs.Setting{
			{Key: "ECS_AWSVPC_BLOCK_IMDS", Value: "true"},
			{Key: "ECS_ENABLE_TASK_IAM_ROLE", Value: "true"},
		},
		LogAgent: inputs.LogAgentNone,
	}
	if withProxy {
		u, err := url.Parse(proxyURL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Proxy = u
	}
	return cfg
}

// lines splits a file into its lines: on "\n", without the empty string after a final
// newline. An empty file has no lines.
func lines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	l := strings.Split(string(data), "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// keyOf returns a line's key as systemd reads it (split on the first '=', the key
// trimmed), or "" for a line without '='. It is written here independently of
// ecsconfig.Key so that the two check each other.
func keyOf(line string) string {
	parts := strings.SplitN(line, "=", 2)
	if len(parts) != 2 {
		return ""
	}
	return strings.TrimSpace(parts[0])
}

// isSubsequence reports whether sub appears in seq in the same relative order.
func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && s == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

// mergeCase is one ecs.config merge: the inputs of a run and the file it finds.
type mergeCase struct {
	name string
	cfg  inputs.Config
	// previouslyOwned are the keys an earlier run recorded in the state file.
	previouslyOwned []string
	// existing is ecs.config on disk, nil when there is no file.
	existing []byte
	// userLines are lines of existing that must survive, in this order.
	userLines []string
	// gone are keys that must have no line in the output.
	gone []string
}

// mergeCases returns the table shared by the golden, idempotence and format tests.
func mergeCases(t *testing.T) []mergeCase {
	withProxy, noProxy := config(t, true), config(t, false)
	return []mergeCase{
		{
			name:     "no-file",
			cfg:      withProxy,
			existing: nil,
		},
		{
			name:     "empty-file",
			cfg:      noProxy,
			existing: []byte{},
			gone:     proxyKeys,
		},
		{
			name: "user-lines",
			cfg:  withProxy,
			existing: []byte("# Written by hand: keep debug logs until ticket 42 is closed\n" +
				"ECS_CLUSTER=old-cluster\n" +
				"\n" +
				"ECS_LOGLEVEL=debug\n" +
				"an unrelated line without an equals sign\n" +
				"   # an indented comment\n" +
				"\n" +
				"ECS_RESERVED_MEMORY=256\n"),
			userLines: []string{
				"# Written by hand: keep debug logs until ticket 42 is closed",
				"",
				"ECS_LOGLEVEL=debug",
				"an unrelated line without an equals sign",
				"   # an indented comment",
				"",
				"ECS_RESERVED_MEMORY=256",
			},
		},
		{
			// Proxy lines piled up by >> appends. The seed's own rerun truncates
			// ecs.config first (echo ECS_CLUSTER=... >), but its proxy block appends,
			// and run again without that first line (or copied into another script)
			// it duplicates them, as it does in /etc/sysconfig/docker and proxy.conf.
			// Exactly one line a key must be left, where the first one was.
			name: "seed-duplicates",
			cfg:  withProxy,
			existing: []byte("ECS_CLUSTER=microtrader\n" +
				"HTTPS_PROXY=http://old-proxy:3128\n" +
				"NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n" +
				"ECS_LOGLEVEL=debug\n" +
				"HTTPS_PROXY=http://old-proxy:3128\n" +
				"NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n"),
			userLines: []string{"ECS_LOGLEVEL=debug"},
		},
		{
			name:            "proxy-removed",
			cfg:             noProxy,
			previouslyOwned: []string{"ECS_AWSVPC_BLOCK_IMDS", "ECS_CLUSTER", "ECS_ENABLE_TASK_IAM_ROLE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"},
			existing: []byte("# proxy until the NAT gateway is up\n" +
				"ECS_CLUSTER=microtrader\n" +
				"ECS_LOGLEVEL=debug\n" +
				"ECS_AWSVPC_BLOCK_IMDS=true\n" +
				"ECS_ENABLE_TASK_IAM_ROLE=true\n" +
				"HTTP_PROXY=" + proxyURL + "\n" +
				"HTTPS_PROXY=" + proxyURL + "\n" +
				"NO_PROXY=" + agentNoProxy + "\n" +
				"# end of file\n"),
			userLines: []string{"# proxy until the NAT gateway is up", "ECS_LOGLEVEL=debug", "# end of file"},
			gone:      proxyKeys,
		},
		{
			// ECS_ENABLE_SPOT_INSTANCE_DRAINING was an input of the last run and is no
			// longer given: it goes. ECS_IMAGE_PULL_BEHAVIOR was written by hand and
			// never owned: it stays, though it is an ECS_* key that is not given.
			name:            "previously-owned-removed",
			cfg:             noProxy,
			previouslyOwned: []string{"ECS_CLUSTER", "ECS_ENABLE_SPOT_INSTANCE_DRAINING"},
			existing: []byte("ECS_CLUSTER=microtrader\n" +
				"ECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n" +
				"ECS_IMAGE_PULL_BEHAVIOR=prefer-cached\n"),
			userLines: []string{"ECS_IMAGE_PULL_BEHAVIOR=prefer-cached"},
			gone:      []string{"ECS_ENABLE_SPOT_INSTANCE_DRAINING", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"},
		},
		{
			// A file edited on Windows: firstrun's lines are plain KEY=value\n, the
			// user's keep their CR, which ecs-init trims and systemd reads as a line end.
			name: "crlf",
			cfg:  withProxy,
			existing: []byte("# edited elsewhere\r\n" +
				"ECS_CLUSTER=old-cluster\r\n" +
				"ECS_LOGLEVEL=debug\r\n" +
				"HTTPS_PROXY=http://old-proxy:3128\r\n" +
				"\r\n"),
			userLines: []string{"# edited elsewhere\r", "ECS_LOGLEVEL=debug\r", "\r"},
		},
		{
			name:      "no-trailing-newline",
			cfg:       noProxy,
			existing:  []byte("# hand-written\nECS_LOGLEVEL=debug"),
			userLines: []string{"# hand-written", "ECS_LOGLEVEL=debug"},
			gone:      proxyKeys,
		},
		{
			// What the seed leaves without a proxy: its `[ -n $PROXY_URL ]` is always
			// true, so it writes an empty HTTPS_PROXY and a NO_PROXY. firstrun with no
			// proxy removes both.
			name: "seed-empty-proxy",
			cfg:  noProxy,
			existing: []byte("ECS_CLUSTER=microtrader\n" +
				"HTTPS_PROXY=\n" +
				"NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n"),
			gone: proxyKeys,
		},
	}
}

// merge renders ecs.config for c and merges it into c.existing as the writer does.
func merge(t *testing.T, c mergeCase) []byte {
	t.Helper()
	f, _ := ecsconfig.Render(c.cfg, c.previouslyOwned)
	if f.Merge == nil {
		t.Fatal("ecs.config has no Merge: it is shared with the user and must be merged")
	}
	return mergeFile(t, f, c.existing)
}

// mergeFile runs f.Merge, which never fails for ecs.config.
func mergeFile(t testing.TB, f files.File, existing []byte) []byte {
	t.Helper()
	out, err := f.Merge(existing)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	return out
}

// TestMerge checks the merged ecs.config against its golden file, and the properties
// every case must have: each wanted key once as KEY=value, the user's lines kept in
// order, the keys that must go gone, a final newline, and idempotence.
func TestMerge(t *testing.T) {
	for _, c := range mergeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			got := merge(t, c)
			testenv.Golden(t, c.name, got)

			if !bytes.HasSuffix(got, []byte("\n")) {
				t.Errorf("output does not end with a newline: %q", got)
			}
			if again := ecsconfig.Merge(got, ecsconfig.Settings(c.cfg), managed(c)); !bytes.Equal(again, got) {
				t.Errorf("Merge is not idempotent:\nonce:  %q\ntwice: %q", got, again)
			}
			f, _ := ecsconfig.Render(c.cfg, c.previouslyOwned)
			if again := mergeFile(t, f, got); !bytes.Equal(again, got) {
				t.Errorf("File.Merge is not idempotent:\nonce:  %q\ntwice: %q", got, again)
			}

			out := lines(got)
			for _, s := range ecsconfig.Settings(c.cfg) {
				var found []string
				for _, l := range out {
					if keyOf(l) == s.Key {
						found = append(found, l)
					}
				}
				if len(found) != 1 || found[0] != s.Key+"="+s.Value {
					t.Errorf("lines for %s = %q, want exactly [%q]", s.Key, found, s.Key+"="+s.Value)
				}
			}
			for _, l := range out {
				if slices.Contains(c.gone, keyOf(l)) {
					t.Errorf("line %q is still there; %s must be removed", l, keyOf(l))
				}
			}
			if !isSubsequence(c.userLines, out) {
				t.Errorf("user lines %q are not all kept in order in:\n%q", c.userLines, out)
			}
			// Nothing but the user's lines and one line a setting.
			if want := len(c.userLines) + len(ecsconfig.Settings(c.cfg)); len(out) != want {
				t.Errorf("output has %d lines, want %d (user lines + settings):\n%q", len(out), want, out)
			}
		})
	}
}

// managed returns the keys firstrun manages in a run: the fixed ones (the cluster and
// the proxy, so that a rerun without a proxy removes it), the previously owned ones,
// and those it writes now.
func managed(c mergeCase) map[string]bool {
	m := map[string]bool{"ECS_CLUSTER": true, "HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true}
	for _, k := range c.previouslyOwned {
		m[k] = true
	}
	for _, s := range ecsconfig.Settings(c.cfg) {
		m[s.Key] = true
	}
	return m
}

// TestMergeWritesPlainLines checks that the lines firstrun writes are plain KEY=value:
// no quotes added (systemd would strip them, ecs-init would not), no export, which
// ecs-init would read as part of the key.
func TestMergeWritesPlainLines(t *testing.T) {
	for _, c := range mergeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			before := map[string]bool{}
			for _, l := range lines(c.existing) {
				before[l] = true
			}
			for _, l := range lines(merge(t, c)) {
				if strings.HasPrefix(strings.TrimSpace(l), "export") {
					t.Errorf("line %q starts with export", l)
				}
				if !before[l] && strings.ContainsAny(l, `"'`) {
					t.Errorf("firstrun wrote the quoted line %q", l)
				}
			}
		})
	}
}

// TestNoProxyNoProxyLines is the regression test for the seed's `if [ -n $PROXY_URL ]`
// (unquoted, so always true): with no proxy, ecs.config gets no proxy line at all,
// whatever the file held before.
func TestNoProxyNoProxyLines(t *testing.T) {
	existing := map[string][]byte{
		"no file":          nil,
		"seed, no proxy":   []byte("ECS_CLUSTER=microtrader\nHTTPS_PROXY=\nNO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n"),
		"seed, with proxy": []byte("ECS_CLUSTER=microtrader\nHTTPS_PROXY=http://p:3128\nNO_PROXY=169.254.169.254\nHTTPS_PROXY=http://p:3128\n"),
		"firstrun, proxy":  []byte("ECS_CLUSTER=microtrader\nHTTP_PROXY=http://p:3128\nHTTPS_PROXY=http://p:3128\nNO_PROXY=169.254.169.254\n"),
	}
	cfg := config(t, false)
	for name, data := range existing {
		t.Run(name, func(t *testing.T) {
			f, owned := ecsconfig.Render(cfg, nil)
			out := mergeFile(t, f, data)
			for _, l := range lines(out) {
				if slices.Contains(proxyKeys, keyOf(l)) {
					t.Errorf("line %q written without a proxy:\n%s", l, out)
				}
			}
			for _, k := range owned {
				if slices.Contains(proxyKeys, k) {
					t.Errorf("owns %s without a proxy", k)
				}
			}
		})
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name      string
		withProxy bool
		wantOwned []string
	}{
		{"with proxy", true, []string{"ECS_AWSVPC_BLOCK_IMDS", "ECS_CLUSTER", "ECS_ENABLE_TASK_IAM_ROLE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}},
		{"without proxy", false, []string{"ECS_AWSVPC_BLOCK_IMDS", "ECS_CLUSTER", "ECS_ENABLE_TASK_IAM_ROLE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, owned := ecsconfig.Render(config(t, tt.withProxy), []string{"ECS_OLD"})
			if f.Path != "/etc/ecs/ecs.config" {
				t.Errorf("path = %q, want /etc/ecs/ecs.config", f.Path)
			}
			if f.Mode != 0o600 {
				t.Errorf("mode = %#o, want 0600: ecs.config may hold credentials", f.Mode)
			}
			if !f.Shared() || f.Content != nil {
				t.Errorf("ecs.config must be merged (Merge set, no Content)")
			}
			// The keys owned now are those written now, not the previously owned ones.
			if !slices.Equal(owned, tt.wantOwned) {
				t.Errorf("owned = %q, want %q", owned, tt.wantOwned)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	got := ecsconfig.Settings(config(t, true))
	want := []inputs.Setting{
		{Key: "ECS_CLUSTER", Value: "microtrader"},
		{Key: "ECS_AWSVPC_BLOCK_IMDS", Value: "true"},
		{Key: "ECS_ENABLE_TASK_IAM_ROLE", Value: "true"},
		{Key: "HTTP_PROXY", Value: proxyURL},
		{Key: "HTTPS_PROXY", Value: proxyURL},
		{Key: "NO_PROXY", Value: agentNoProxy},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Settings =\n%q\nwant\n%q", got, want)
	}
}

// TestRerunIsStable runs firstrun twice as the CLI does, the second run with the keys
// the first one owned: the file must not change.
func TestRerunIsStable(t *testing.T) {
	for _, c := range mergeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			f1, owned := ecsconfig.Render(c.cfg, c.previouslyOwned)
			first := mergeFile(t, f1, c.existing)
			f2, owned2 := ecsconfig.Render(c.cfg, owned)
			if second := mergeFile(t, f2, first); !bytes.Equal(second, first) {
				t.Errorf("second run changed the file:\nfirst:  %q\nsecond: %q", first, second)
			}
			if !slices.Equal(owned, owned2) {
				t.Errorf("owned keys changed between runs: %q then %q", owned, owned2)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct{ line, want string }{
		{"ECS_CLUSTER=a", "ECS_CLUSTER"},
		{"  ECS_CLUSTER=a  ", "ECS_CLUSTER"},
		{"ECS_CLUSTER=a=b", "ECS_CLUSTER"},
		{"ECS_CLUSTER = spaced", "ECS_CLUSTER"},
		{"\tECS_CLUSTER\t=x", "ECS_CLUSTER"},
		{"ECS_CLUSTER=\r", "ECS_CLUSTER"},
		{"ECS_CLUSTER=", "ECS_CLUSTER"},
		{"# ECS_CLUSTER=a", "# ECS_CLUSTER"},
		{"no equals sign", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ecsconfig.Key(tt.line); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.line, got, tt.want)
		}
		if got := keyOf(tt.line); got != tt.want {
			t.Errorf("keyOf(%q) = %q, want %q (the test's own reading is wrong)", tt.line, got, tt.want)
		}
	}
}
