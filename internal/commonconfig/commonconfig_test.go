package commonconfig_test

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/firstrun/firstrun/internal/commonconfig"
	"github.com/firstrun/firstrun/internal/testenv"
)

// shipped is the file the amazon-cloudwatch-agent package installs
// (aws/amazon-cloudwatch-agent cfg/commonconfig/common-config.toml): comments only.
func shipped(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/shipped.toml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// want is the proxy of most cases: credentials with a percent-encoded '@'.
var want = &commonconfig.Proxy{
	HTTP:    "http://bob:p%40ss@proxy.internal:3128",
	HTTPS:   "http://bob:p%40ss@proxy.internal:3128",
	NoProxy: "169.254.169.254,169.254.170.2",
}

// operator is a file an operator edited: credentials, a CA bundle, their own proxy
// with comments, a trailing comment, and a table after it.
const operator = `# site settings
[credentials]
   shared_credential_profile = "AmazonCloudWatchAgent"

[proxy]   # ours
   http_proxy = "http://old:3128"  # the old proxy
   # https too
   https_proxy = 'http://old:3128'

[ssl]
   ca_bundle_path = "/etc/pki/site.pem"
`

type mergeCase struct {
	name  string
	old   []byte
	want  *commonconfig.Proxy
	owned bool
}

func mergeCases(t testing.TB) []mergeCase {
	sh := shipped(t)
	return []mergeCase{
		{"shipped-proxy", sh, want, false},
		{"shipped-no-proxy", sh, nil, false},
		{"no-file-proxy", nil, want, false},
		{"empty-file-proxy", []byte{}, want, false},
		{"operator-proxy", []byte(operator), want, false},
		{"operator-proxy-removed", []byte(operator), nil, true},
		{"operator-proxy-not-ours", []byte(operator), nil, false},
		{"extra-key-proxy-removed", []byte("[proxy]\nhttp_proxy = \"http://a:1\"\nno_proxy = \"x\"\nsocks = \"keep\"\n[ssl]\nca_bundle_path = \"/x\"\n"), nil, true},
		{"empty-table-proxy", []byte("[proxy]\n# nothing yet\n\n[ssl]\nca_bundle_path = \"/x\"\n"), want, false},
		{"legacy-firstrun-file", []byte("# Written by firstrun; changes here are overwritten on its next run.\n[proxy]\n    http_proxy = \"http://a:1\"\n    https_proxy = \"http://a:1\"\n    no_proxy = \"169.254.169.254\"\n"), want, true},
		{"legacy-firstrun-file-removed", []byte("# Written by firstrun; changes here are overwritten on its next run.\n[proxy]\n    http_proxy = \"http://a:1\"\n    https_proxy = \"http://a:1\"\n    no_proxy = \"169.254.169.254\"\n"), nil, true},
		{"crlf", []byte("[ssl]\r\nca_bundle_path = \"/x\"\r\n[proxy]\r\nhttp_proxy = \"http://a:1\"\r\n"), want, false},
		{"no-trailing-newline", []byte("[ssl]\nca_bundle_path = \"/x\""), want, false},
		{"multiline-strings", []byte("[credentials]\nshared_credential_file = \"\"\"\n[proxy]\nhttp_proxy = \"no\"\n\"\"\"\nlist = [\n  \"[proxy]\", # not a header\n  ['x'],\n]\n[proxy]\nno_proxy = '''\nlocal\n'''\n"), want, false},
		{"injection", []byte("[ssl]\nca_bundle_path = \"/x\"\n"), &commonconfig.Proxy{HTTP: "http://a:1\"\n[ssl]\nca_bundle_path = \"/evil", HTTPS: "x\\\"\r\t\x7f", NoProxy: "é,ü"}, false},
	}
}

// TestMerge compares each merge with its golden file and checks the promises every
// merge keeps: idempotent, valid TOML, everything but the managed keys unchanged and
// those as wanted.
func TestMerge(t *testing.T) {
	for _, c := range mergeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			got, err := commonconfig.Merge(c.old, c.want, c.owned)
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			testenv.Golden(t, c.name, got)
			checkMerge(t, c.old, got, c.want, c.owned)
		})
	}
}

// checkMerge checks out = Merge(old, want, owned) against its promises.
func checkMerge(t *testing.T, old, out []byte, want *commonconfig.Proxy, owned bool) {
	t.Helper()
	again, err := commonconfig.Merge(out, want, owned || want != nil)
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("not idempotent: %v\nonce:  %q\ntwice: %q", err, out, again)
	}
	if old == nil && want == nil {
		if out != nil {
			t.Errorf("no file and no proxy: got %q, want nothing", out)
		}
		return
	}
	before, after := decode(t, old), decode(t, out)
	ap, _ := after["proxy"].(map[string]any)
	delete(before, "proxy")
	delete(after, "proxy")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("settings outside [proxy] changed:\nbefore %v\nafter  %v", before, after)
	}
	switch {
	case want != nil:
		for k, v := range map[string]string{"http_proxy": want.HTTP, "https_proxy": want.HTTPS, "no_proxy": want.NoProxy} {
			if ap[k] != v {
				t.Errorf("%s = %q, want %q", k, ap[k], v)
			}
		}
	case owned:
		for _, k := range commonconfig.Keys {
			if _, ok := ap[k]; ok {
				t.Errorf("%s still set after the proxy was removed", k)
			}
		}
	default:
		if !bytes.Equal(old, out) {
			t.Errorf("no proxy and nothing owned, yet the file changed:\n%q\n%q", old, out)
		}
	}
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	if _, err := toml.Decode(string(data), &m); err != nil {
		t.Fatalf("not TOML: %v\n%s", err, data)
	}
	return m
}

// TestRoundTrip: a proxy set and then removed leaves the file byte for byte as it was,
// for the package's file and for an operator's file without a [proxy] table.
func TestRoundTrip(t *testing.T) {
	for name, old := range map[string][]byte{
		"shipped":  shipped(t),
		"operator": []byte("[credentials]\nshared_credential_profile = \"p\"\n\n[ssl]\nca_bundle_path = \"/etc/pki/site.pem\"\n"),
		"empty":    {},
	} {
		t.Run(name, func(t *testing.T) {
			with, err := commonconfig.Merge(old, want, false)
			if err != nil {
				t.Fatal(err)
			}
			other := &commonconfig.Proxy{HTTP: "http://other:8080", HTTPS: "http://other:8080", NoProxy: "x"}
			changed, err := commonconfig.Merge(with, other, true)
			if err != nil {
				t.Fatal(err)
			}
			without, err := commonconfig.Merge(changed, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(without, old) {
				t.Errorf("after set, change and removal:\n%q\nwant the original\n%q", without, old)
			}
		})
	}
}

// TestMergeRefuses: a file that is not TOML, or a proxy written in a form the line
// editor does not handle, is an error and nothing is returned.
func TestMergeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, old string
		want      *commonconfig.Proxy
		owned     bool
		malformed bool
	}{
		{"not TOML", "[proxy\nhttp_proxy = \"x\"\n", want, false, true},
		{"not TOML, no proxy", "= broken\n", nil, true, true},
		{"not TOML, nothing to do", "[ssl\n", nil, false, true},
		{"duplicate table", "[proxy]\n[proxy]\n", want, false, true},
		{"inline table", "proxy = { http_proxy = \"http://a:1\" }\n", want, false, false},
		{"inline table, removal", "proxy = { http_proxy = \"http://a:1\" }\n", nil, true, false},
		{"dotted keys", "proxy.http_proxy = \"http://a:1\"\n", want, false, false},
		{"proxy is a string", "proxy = \"http://a:1\"\n", want, false, false},
		{"invalid UTF-8 value", "", &commonconfig.Proxy{HTTP: "http://\xff:1"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := commonconfig.Merge([]byte(tc.old), tc.want, tc.owned)
			if err == nil {
				t.Fatalf("Merge = %q, want an error", out)
			}
			if out != nil {
				t.Errorf("Merge returned %q with its error", out)
			}
			if errors.Is(err, commonconfig.ErrMalformed) != tc.malformed {
				t.Errorf("error %v: ErrMalformed %v, want %v", err, !tc.malformed, tc.malformed)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b\c`, "line\nbreak\r", "tab\t", "\x00\x1f\x7f", "é€😀"} {
		q := commonconfig.Quote(s)
		if strings.ContainsAny(q, "\n\r") {
			t.Errorf("Quote(%q) = %s holds a line break", s, q)
		}
		var doc struct{ V string }
		if _, err := toml.Decode("V = "+q, &doc); err != nil || doc.V != s {
			t.Errorf("Quote(%q) = %s reads back as %q, %v", s, q, doc.V, err)
		}
	}
}
