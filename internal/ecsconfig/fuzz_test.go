package ecsconfig_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"github.com/firstrun/firstrun/internal/ecsconfig"
	"github.com/firstrun/firstrun/internal/inputs"
)

// FuzzMerge merges ECS_CLUSTER and ECS_LOGLEVEL=value into arbitrary existing content,
// with ECS_RESERVED_MEMORY owned by an earlier run, and checks Merge's promises:
// idempotence, each wanted key once as KEY=value, no line left for the other managed
// keys, every other line kept in order, nothing else added, a final newline.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(nil), "info")
	f.Add([]byte("ECS_CLUSTER=old\nECS_LOGLEVEL=debug\n"), "warn")
	f.Add([]byte("ECS_CLUSTER=x\nHTTPS_PROXY=http://p:3128\nNO_PROXY=169.254.169.254\nHTTPS_PROXY=http://p:3128\nNO_PROXY=169.254.169.254\n"), "debug")
	f.Add([]byte("# comment\r\nECS_CLUSTER=old\r\nno equals sign\r\n\r\n"), "a=b=c")
	f.Add([]byte("ECS_LOGLEVEL=debug"), "")
	f.Add([]byte("\n\n  ECS_CLUSTER = spaced \n=no key\nECS_LOGLEVEL\nECS_RESERVED_MEMORY=256\nECS_RESERVED_MEMORY=512\n"), "  padded  ")
	f.Add([]byte("\n"), `quoted "value" and 'this' and %40 and \`)
	f.Add([]byte("\r"), "ünïcödé\u2028line separator")

	const reserved = "ECS_RESERVED_MEMORY"
	f.Fuzz(func(t *testing.T, existing []byte, value string) {
		if strings.ContainsFunc(value, unicode.IsControl) {
			t.Skip("validation rejects control characters in values")
		}
		cfg := inputs.Config{
			Cluster:     "microtrader",
			ECSSettings: []inputs.Setting{{Key: "ECS_LOGLEVEL", Value: value}},
		}
		file, _ := ecsconfig.Render(cfg, []string{reserved})
		out := mergeFile(t, file, existing)

		if !bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("output does not end with a newline: %q", out)
		}
		if again := mergeFile(t, file, out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\nexisting: %q\nonce:     %q\ntwice:    %q", existing, out, again)
		}

		want := map[string]string{"ECS_CLUSTER": "microtrader", "ECS_LOGLEVEL": value}
		managed := map[string]bool{"ECS_CLUSTER": true, "ECS_LOGLEVEL": true, reserved: true,
			"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true}

		outLines := lines(out)
		count := map[string]int{}
		for _, l := range outLines {
			k := keyOf(l)
			if !managed[k] {
				continue
			}
			count[k]++
			v, wanted := want[k]
			if !wanted {
				t.Fatalf("line %q left for the unwanted managed key %s\nexisting: %q\noutput:   %q", l, k, existing, out)
			}
			if l != k+"="+v {
				t.Fatalf("line %q, want %q\nexisting: %q\noutput:   %q", l, k+"="+v, existing, out)
			}
		}
		for k := range want {
			if count[k] != 1 {
				t.Fatalf("%s has %d lines, want 1\nexisting: %q\noutput:   %q", k, count[k], existing, out)
			}
		}

		var kept []string
		for _, l := range lines(existing) {
			if !managed[keyOf(l)] {
				kept = append(kept, l)
			}
		}
		if !isSubsequence(kept, outLines) {
			t.Fatalf("lines of the existing content lost or reordered\nexisting: %q\noutput:   %q", existing, out)
		}
		if len(outLines) != len(kept)+len(want) {
			t.Fatalf("output has %d lines, want %d kept + %d settings\nexisting: %q\noutput:   %q", len(outLines), len(kept), len(want), existing, out)
		}
	})
}
