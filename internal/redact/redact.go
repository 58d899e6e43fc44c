// Package redact hides secrets (proxy credentials, registry auth data, the values that
// references resolved to) in text that is logged or printed, so that neither logs,
// --dry-run diffs nor --check reports carry them in clear.
package redact

import (
	"encoding/json"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// urlStart finds where a URL starts in text.
var urlStart = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://`)

// secretWords mark a variable whose value is a secret, wherever they stand in its name.
var secretWords = []string{"AUTH_DATA", "PASSWORD", "SECRET", "TOKEN"}

// secretName matches "NAME=" for such a variable.
var secretName = `[A-Z0-9_]*(?:` + strings.Join(secretWords, "|") + `)[A-Z0-9_]*=`

// Secret KEY=value settings: a whole line (ecs.config), a quoted assignment (systemd's
// Environment="KEY=value", escapes included), or a bare word in other text.
var (
	secretLine   = regexp.MustCompile(`(?m)^(\s*` + secretName + `).*$`)
	secretQuoted = regexp.MustCompile(`("` + secretName + `)(?:[^"\\]|\\.)*"`)
	secretWord   = regexp.MustCompile(`\b(` + secretName + `)[^\s"]*`)
)

// Text hides URL passwords, the values of secret-looking KEY=value settings, and what
// Hide and HideKey registered, in text made of lines (file contents, messages). A URL
// runs to the next URL on its line.
func Text(s string) string {
	s = Secrets(s)
	s = hideURLPasswords(s)
	s = secretLine.ReplaceAllString(s, "${1}"+Mask)
	s = secretQuoted.ReplaceAllString(s, "${1}"+Mask+`"`)
	return secretWord.ReplaceAllString(s, "${1}"+Mask)
}

// HasURLPassword reports whether text holds a scheme://user:password@ URL.
func HasURLPassword(s string) bool {
	return urlStart.MatchString(s) && hideURLPasswords(s) != s
}

// IsSecretKey reports whether a variable's value must never be shown.
func IsSecretKey(key string) bool {
	k := strings.ToUpper(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Value returns how a variable's value may be shown: hidden when the key is secret (by
// its name, or registered by HideKey), with URL passwords and Hide's values hidden
// otherwise.
func Value(key, value string) string {
	if IsSecretKey(key) || hiddenKey(key) {
		return Mask
	}
	return hidePassword(Secrets(value))
}

// hideURLPasswords hides the password of every scheme://user:password@ URL, line by
// line.
func hideURLPasswords(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		locs := urlStart.FindAllStringIndex(line, -1)
		if locs == nil {
			continue
		}
		var b strings.Builder
		b.WriteString(line[:locs[0][0]])
		for k, loc := range locs {
			end := len(line)
			if k+1 < len(locs) {
				end = locs[k+1][0]
			}
			b.WriteString(hidePassword(line[loc[0]:end]))
		}
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}

// hidePassword hides the password of a URL given as a value, with or without a scheme:
// everything between the first ':' of the userinfo and the last '@' (where url.Parse
// splits userinfo from host), whatever it holds: '@', quotes, spaces. Hiding too much
// is safe; hiding too little is not.
func hidePassword(v string) string {
	at := strings.LastIndex(v, "@")
	if at < 0 {
		return v
	}
	start := 0
	if i := strings.Index(v, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	colon := strings.Index(v[start:at], ":")
	if colon < 0 {
		return v // a user name alone is no secret
	}
	return v[:start+colon+1] + Mask + v[at:]
}

// MinHidden is the shortest value Hide hides wherever it appears: a shorter one would
// mask common text (and break the JSON of log lines), and is no secret worth the name.
// HideKey still hides it in its own KEY=value settings.
const MinHidden = 4

// hidden holds what Hide and HideKey registered.
var hidden struct {
	sync.RWMutex
	forms []string        // the values and their quoted forms, longest first
	keys  map[string]bool // keys whose values are secret
	// line, quoted and word are secretLine, secretQuoted and secretWord for keys.
	line, quoted, word *regexp.Regexp
}

// Hide registers values that are secrets though nothing in them says so (the values
// that references resolved to): from then on, for the life of the process, Text, Value
// and Secrets replace each with Mask, as written and as Go's %q and JSON quote it.
// Values shorter than MinHidden are not registered (see MinHidden). Hiding too much is
// safe; hiding too little is not.
func Hide(values ...string) {
	hidden.Lock()
	defer hidden.Unlock()
	seen := map[string]bool{}
	for _, f := range hidden.forms {
		seen[f] = true
	}
	for _, v := range values {
		if len(v) < MinHidden {
			continue
		}
		q := strconv.Quote(v)
		for _, f := range []string{v, jsonEscape(v), q[1 : len(q)-1], jsonEscape(q[1 : len(q)-1])} {
			if !seen[f] {
				seen[f] = true
				hidden.forms = append(hidden.forms, f)
			}
		}
	}
	sort.SliceStable(hidden.forms, func(i, j int) bool { return len(hidden.forms[i]) > len(hidden.forms[j]) })
}

// HideKey registers keys whose values are secret though their names do not say so
// (ECS_* settings whose values came from references): Text hides their KEY=value
// settings as it hides those of IsSecretKey's names, and Value hides their values.
func HideKey(keys ...string) {
	hidden.Lock()
	defer hidden.Unlock()
	if hidden.keys == nil {
		hidden.keys = map[string]bool{}
	}
	for _, k := range keys {
		hidden.keys[k] = true
	}
	names := make([]string, 0, len(hidden.keys))
	for k := range hidden.keys {
		names = append(names, regexp.QuoteMeta(k))
	}
	sort.Strings(names)
	name := `(?:` + strings.Join(names, "|") + `)=`
	hidden.line = regexp.MustCompile(`(?m)^(\s*` + name + `).*$`)
	hidden.quoted = regexp.MustCompile(`("` + name + `)(?:[^"\\]|\\.)*"`)
	hidden.word = regexp.MustCompile(`\b(` + name + `)[^\s"]*`)
}

// jsonEscape is s as a JSON string's content, as zap and encoding/json write it.
func jsonEscape(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return s
	}
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// Secrets replaces the values Hide registered, and the values of HideKey's keys'
// settings, with Mask.
func Secrets(s string) string {
	hidden.RLock()
	defer hidden.RUnlock()
	for _, f := range hidden.forms {
		s = strings.ReplaceAll(s, f, Mask)
	}
	if hidden.line != nil {
		s = hidden.line.ReplaceAllString(s, "${1}"+Mask)
		s = hidden.quoted.ReplaceAllString(s, "${1}"+Mask+`"`)
		s = hidden.word.ReplaceAllString(s, "${1}"+Mask)
	}
	return s
}

// HasSecret reports whether s holds a value Hide registered.
func HasSecret(s string) bool {
	hidden.RLock()
	defer hidden.RUnlock()
	for _, f := range hidden.forms {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

// hiddenKey reports whether HideKey registered key.
func hiddenKey(key string) bool {
	hidden.RLock()
	defer hidden.RUnlock()
	return hidden.keys[key]
}

// Writer returns w with Secrets applied to each write: for log outputs, which zap
// writes one entry at a time.
func Writer(w io.Writer) io.Writer { return writer{w} }

type writer struct{ w io.Writer }

func (w writer) Write(p []byte) (int, error) {
	s := Secrets(string(p))
	if _, err := io.WriteString(w.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Sync syncs the underlying writer when it can.
func (w writer) Sync() error {
	if s, ok := w.w.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}
