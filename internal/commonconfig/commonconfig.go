// Package commonconfig edits the [proxy] table of the CloudWatch agent's
// common-config.toml, and nothing else in it.
//
// The agent's package ships that file as a configuration file it never replaces, with
// commented-out examples, and its start script (aws/amazon-cloudwatch-agent
// cmd/start-amazon-cloudwatch-agent, path_linux.go) always hands it to the config
// translator, which exits 1 when it is missing or is not TOML ("E! Failed to open
// common-config file …", cmd/config-translator/translator.go). The file may hold the
// operator's [credentials] and [ssl] ca_bundle_path too (cfg/commonconfig/commonconfig.go).
// So firstrun never owns it whole and never deletes it: Merge sets or removes only the
// keys http_proxy, https_proxy and no_proxy of its [proxy] table and keeps every other
// byte, and refuses a file that is not TOML.
package commonconfig

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Table is the table firstrun edits (cfg/commonconfig ProxySection).
const Table = "proxy"

// Keys are the keys of Table firstrun manages, in the order it writes them
// (cfg/commonconfig HttpProxy, HttpsProxy, NoProxy).
var Keys = []string{"http_proxy", "https_proxy", "no_proxy"}

// Proxy is the [proxy] table firstrun wants.
type Proxy struct {
	HTTP, HTTPS, NoProxy string
}

// values returns the wanted values by key; none for a nil Proxy.
func (p *Proxy) values() map[string]string {
	if p == nil {
		return nil
	}
	return map[string]string{"http_proxy": p.HTTP, "https_proxy": p.HTTPS, "no_proxy": p.NoProxy}
}

// Marker is the comment line firstrun writes above a [proxy] table it adds; it goes
// with the table when the proxy is removed.
const Marker = "# [proxy] is written by firstrun from PROXY_URL, and removed with it."

// legacyHeader started the whole file an older firstrun wrote; it is dropped.
const legacyHeader = "# Written by firstrun; changes here are overwritten on its next run."

// ErrMalformed is wrapped by Merge's error when the existing file is not TOML.
var ErrMalformed = errors.New("not valid TOML")

// Merge returns old with the [proxy] keys firstrun manages set to want's values or,
// when want is nil and owned says an earlier run wrote them, removed (and the [proxy]
// header and firstrun's marker with them when no other key is left in the table).
// Everything else stays byte for byte. old is nil when the file does not exist: with no
// proxy wanted the result is then nil too (nothing to create).
//
// An old that is not TOML is an error wrapping ErrMalformed; so is a [proxy] written in
// a form this line editor does not handle (an inline table, dotted keys): the result is
// checked to parse and to differ from old only in the managed keys.
// Merge(Merge(x)) == Merge(x).
func Merge(old []byte, want *Proxy, owned bool) ([]byte, error) {
	if old == nil && want == nil {
		return nil, nil
	}
	before, err := decode(old)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if want == nil && !owned {
		return old, nil
	}
	for _, v := range want.list() {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("proxy value %q is not valid UTF-8, which TOML cannot hold", v)
		}
	}
	out := edit(old, want)
	after, err := decode(out)
	if err != nil {
		return nil, fmt.Errorf("editing the [proxy] table gave a file that is not TOML (is proxy written as an inline table or dotted keys? make it a [proxy] table): %w", err)
	}
	if err := checkOnlyProxy(before, after, want); err != nil {
		return nil, err
	}
	return out, nil
}

// list returns the wanted values; none for a nil Proxy.
func (p *Proxy) list() []string {
	if p == nil {
		return nil
	}
	return []string{p.HTTP, p.HTTPS, p.NoProxy}
}

// decode parses a TOML document into a map.
func decode(data []byte) (map[string]any, error) {
	m := map[string]any{}
	if _, err := toml.Decode(string(data), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkOnlyProxy checks that after differs from before only in the managed keys of
// [proxy], and that those hold what is wanted.
func checkOnlyProxy(before, after map[string]any, want *Proxy) error {
	b, a := maps.Clone(before), maps.Clone(after)
	bp, bok := table(b[Table])
	ap, aok := table(a[Table])
	if !bok || !aok {
		return fmt.Errorf("%q is not a table: firstrun edits only a [proxy] table", Table)
	}
	delete(b, Table)
	delete(a, Table)
	if !reflect.DeepEqual(a, b) {
		return errors.New("editing the [proxy] table changed other settings: not written (is the file's layout unusual?)")
	}
	wanted := want.values()
	for _, k := range Keys {
		got, has := ap[k]
		switch {
		case want != nil && got != wanted[k]:
			return fmt.Errorf("editing the [proxy] table gave %s = %v, want %q (is proxy written as dotted keys or an inline table? make it a [proxy] table)", k, got, wanted[k])
		case want == nil && has:
			return fmt.Errorf("removing %s from the [proxy] table left it set (is proxy written as dotted keys or an inline table? make it a [proxy] table)", k)
		}
		delete(ap, k)
		delete(bp, k)
	}
	if !reflect.DeepEqual(ap, bp) {
		return errors.New("editing the [proxy] table changed keys firstrun does not manage: not written")
	}
	return nil
}

// table returns v as a table; a missing value is an empty table.
func table(v any) (map[string]any, bool) {
	if v == nil {
		return map[string]any{}, true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return maps.Clone(m), true
}

// edit rewrites the managed keys of the [proxy] table line by line: a key's value is
// replaced in place (its line's text up to the value and a trailing comment kept); a
// missing key goes after the table's last key; a missing table goes at the end, under
// Marker. With want nil the managed keys' statements go, and the header (with the
// marker above it) when no key is left in the table.
func edit(old []byte, want *Proxy) []byte {
	stmts := scan(old)
	stmts = dropLegacyHeader(stmts, old)
	values := want.values()
	eol := "\n"
	if bytes.Contains(old, []byte("\r\n")) {
		eol = "\r\n" // lines firstrun adds end as the file's do
	}
	hdr := slices.IndexFunc(stmts, func(s stmt) bool { return s.kind == header && s.name == Table })
	var out bytes.Buffer
	if hdr < 0 {
		for _, s := range stmts {
			out.Write(old[s.start:s.end])
		}
		if want == nil {
			return out.Bytes()
		}
		if out.Len() > 0 {
			if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
				out.WriteString(eol)
			}
			out.WriteString(eol) // a blank line between the file and firstrun's table
		}
		out.WriteString(Marker + eol + "[" + Table + "]" + eol)
		for _, k := range Keys {
			out.WriteString(keyLine("    ", k, values[k], eol))
		}
		return out.Bytes()
	}
	// The table runs from its header to the next header.
	end := len(stmts)
	for i := hdr + 1; i < len(stmts); i++ {
		if stmts[i].kind == header || stmts[i].kind == arrayHeader {
			end = i
			break
		}
	}
	lastKey, indent, others := hdr, "    ", 0
	for i := hdr + 1; i < end; i++ {
		if stmts[i].kind != keyValue {
			continue
		}
		if lastKey == hdr {
			indent = stmts[i].indent(old)
		}
		lastKey = i
		if !slices.Contains(Keys, stmts[i].name) {
			others++
		}
	}
	dropHeader := want == nil && others == 0
	from := hdr
	if dropHeader {
		// firstrun's marker, and the blank line it put above it, go with the header.
		if from > 0 && stmts[from-1].text(old) == Marker {
			from--
			if from > 0 && stmts[from-1].kind == blank && strings.TrimSpace(stmts[from-1].text(old)) == "" {
				from--
			}
		}
	}
	done := map[string]bool{}
	for i, s := range stmts {
		switch {
		case i >= from && i <= hdr && dropHeader:
			continue
		case i > hdr && i < end && s.kind == keyValue && slices.Contains(Keys, s.name):
			if want == nil || done[s.name] {
				continue
			}
			done[s.name] = true
			out.Write(old[s.start:s.valueStart])
			out.WriteString(Quote(values[s.name]))
			out.Write(old[s.valueEnd:s.end])
		default:
			out.Write(old[s.start:s.end])
		}
		if i == lastKey && want != nil {
			if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
				out.WriteString(eol)
			}
			for _, k := range Keys {
				if !done[k] {
					done[k] = true
					out.WriteString(keyLine(indent, k, values[k], eol))
				}
			}
		}
	}
	return out.Bytes()
}

// dropLegacyHeader drops the first statement when it is the header line an older
// firstrun wrote, when it owned the whole file.
func dropLegacyHeader(stmts []stmt, data []byte) []stmt {
	if len(stmts) > 0 && stmts[0].kind == blank && stmts[0].text(data) == legacyHeader {
		return stmts[1:]
	}
	return stmts
}

func keyLine(indent, key, value, eol string) string {
	return indent + key + " = " + Quote(value) + eol
}

// Quote writes s as a TOML basic string: backslash, double quote and every control
// character escaped, so that no value can end the string or the line.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
