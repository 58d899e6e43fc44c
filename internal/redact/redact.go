// Package redact hides secrets (proxy credentials, registry auth data) in text that is
// logged or printed, so that neither logs nor --dry-run diffs carry them in clear.
package redact

import (
	"regexp"
	"strings"
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

// Text hides URL passwords and the values of secret-looking KEY=value settings in text
// made of lines (file contents, messages). A URL runs to the next URL on its line.
func Text(s string) string {
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

// Value returns how a variable's value may be shown: hidden when the key is secret,
// with URL passwords hidden otherwise.
func Value(key, value string) string {
	if IsSecretKey(key) {
		return Mask
	}
	return hidePassword(value)
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
