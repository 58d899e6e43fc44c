// Package redact hides secrets (proxy credentials, registry auth data) in text that is
// logged or printed, so that neither logs nor --dry-run diffs carry them in clear.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// userinfo matches the password part of a URL's userinfo: scheme://user:PASSWORD@.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s"']*:)[^@\s"']*@`)

// bareUserinfo matches the password of a scheme-less user:PASSWORD@host value, as
// PROXY_URL may be given.
var bareUserinfo = regexp.MustCompile(`^([^/@:\s"']*:)[^@\s"']*@`)

// secretName is a variable name whose value is a secret.
const secretName = `[A-Z0-9_]*(?:AUTH_DATA|PASSWORD|SECRET|TOKEN)[A-Z0-9_]*=`

// Secret KEY=value settings: a whole line (ecs.config), a quoted assignment (systemd's
// Environment="KEY=value", escapes included), or a bare word in other text.
var (
	secretLine   = regexp.MustCompile(`(?m)^(\s*` + secretName + `).*$`)
	secretQuoted = regexp.MustCompile(`("` + secretName + `)(?:[^"\\]|\\.)*"`)
	secretWord   = regexp.MustCompile(`\b(` + secretName + `)[^\s"]*`)
)

// Text hides URL passwords and the values of secret-looking KEY=value settings.
func Text(s string) string {
	s = userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	s = secretLine.ReplaceAllString(s, "${1}"+Mask)
	s = secretQuoted.ReplaceAllString(s, "${1}"+Mask+`"`)
	return secretWord.ReplaceAllString(s, "${1}"+Mask)
}

// IsSecretKey reports whether a variable's value must never be shown.
func IsSecretKey(key string) bool {
	k := strings.ToUpper(key)
	for _, w := range []string{"AUTH_DATA", "PASSWORD", "SECRET", "TOKEN"} {
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
	if !strings.Contains(value, "://") {
		return bareUserinfo.ReplaceAllString(value, "${1}"+Mask+"@")
	}
	return userinfo.ReplaceAllString(value, "${1}"+Mask+"@")
}
