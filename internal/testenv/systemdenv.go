package testenv

import "strings"

// A model of systemd's env-file parser, written from its source's rules, for tests of
// the files systemd reads as EnvironmentFile= (ecs.config, the proxy env files): what
// a process started by systemd gets from them.

// SystemdEnvFile reads an env file as systemd reads EnvironmentFile= (systemd
// src/basic/env-file.c parse_env_file_internal): '#' or ';' before a key starts a
// comment line; white space around the key and before the value is skipped; a value
// may open with a single quote (literal up to the next one) or a double quote (where a
// backslash escapes " \ ` $ and a newline, and is kept before anything else); outside
// quotes a backslash escapes the next character and is dropped, and before a newline
// joins the next line; trailing white space of an unquoted value is trimmed; after a
// closing quote the value goes on as at its start.
func SystemdEnvFile(content string) map[string]string {
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		single
		double
		doubleEscape
		comment
	)
	out := map[string]string{}
	state := preKey
	var k, v strings.Builder
	trim := -1 // where the trailing white space of an unquoted value starts
	push := func() {
		val := v.String()
		if state == value && trim >= 0 {
			val = val[:trim]
		}
		out[strings.TrimRight(k.String(), " \t")] = val
		k.Reset()
		v.Reset()
		trim = -1
	}
	for i := 0; i < len(content); i++ {
		c := content[i]
		nl := c == '\n' || c == '\r'
		ws := c == ' ' || c == '\t' || nl
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case !ws:
				state = key
				k.WriteByte(c)
			}
		case key:
			switch {
			case nl:
				state = preKey
				k.Reset()
			case c == '=':
				state = preValue
				trim = -1
			default:
				k.WriteByte(c)
			}
		case preValue:
			switch {
			case nl:
				push()
				state = preKey
			case c == '\'':
				state = single
			case c == '"':
				state = double
			case c == '\\':
				state = valueEscape
			case !ws:
				state = value
				v.WriteByte(c)
			}
		case value:
			switch {
			case nl:
				push()
				state = preKey
			case c == '\\':
				state = valueEscape
				trim = -1
			default:
				if !ws {
					trim = -1
				} else if trim < 0 {
					trim = v.Len()
				}
				v.WriteByte(c)
			}
		case valueEscape:
			state = value
			if !nl {
				v.WriteByte(c)
			}
		case single:
			if c == '\'' {
				state = preValue
			} else {
				v.WriteByte(c)
			}
		case double:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleEscape
			default:
				v.WriteByte(c)
			}
		case doubleEscape:
			state = double
			switch {
			case strings.IndexByte("\"\\`$", c) >= 0:
				v.WriteByte(c)
			case c != '\n':
				v.WriteByte('\\')
				v.WriteByte(c)
			}
		case comment:
			if nl {
				state = preKey
			}
		}
	}
	if state != preKey && state != key && state != comment {
		push()
	}
	return out
}
