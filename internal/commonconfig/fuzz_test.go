package commonconfig_test

import (
	"bytes"
	"testing"

	"github.com/firstrun/firstrun/internal/commonconfig"
)

// FuzzMerge merges a proxy into arbitrary content, and removes it again: whenever
// Merge accepts, the result is TOML, idempotent, unchanged outside the managed keys,
// and a file that had no proxy at all and ended with a newline comes back byte for
// byte once the proxy is removed.
func FuzzMerge(f *testing.F) {
	for _, c := range mergeCases(f) {
		f.Add(c.old, "http://u:p@h:1", "169.254.169.254")
	}
	f.Add([]byte("a = [\n [1],\n]\n[proxy]\n"), "x\"\n[y]", "\\")
	f.Fuzz(func(t *testing.T, old []byte, url, noProxy string) {
		p := &commonconfig.Proxy{HTTP: url, HTTPS: url, NoProxy: noProxy}
		with, err := commonconfig.Merge(old, p, false)
		if err != nil {
			return
		}
		checkMerge(t, old, with, p, false)
		without, err := commonconfig.Merge(with, nil, true)
		if err != nil {
			t.Fatalf("removing the proxy just set: %v\n%q", err, with)
		}
		checkMerge(t, with, without, nil, true)
		if len(old) > 0 && bytes.HasSuffix(old, []byte("\n")) && !bytes.Contains(old, []byte("proxy")) &&
			!bytes.Contains(old, []byte("Written by firstrun")) && !bytes.Equal(without, old) {
			t.Errorf("set then removed:\n%q\nwant the original\n%q", without, old)
		}
	})
}
