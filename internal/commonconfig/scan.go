package commonconfig

import "strings"

// kind is what a statement is.
type kind int

const (
	blank       kind = iota // an empty line or a comment line
	header                  // [table]
	arrayHeader             // [[array of tables]]
	keyValue                // key = value, the value possibly over several lines
)

// stmt is one statement of a TOML document: whole lines, data[start:end], the last one
// with its line ending.
type stmt struct {
	kind       kind
	start, end int
	// name is a header's table name or a key, its parts unquoted and joined with
	// dots; "" when a part has escapes (then it matches nothing firstrun looks for).
	name string
	// valueStart and valueEnd delimit a key's value in data (a keyValue only).
	valueStart, valueEnd int
}

// text is the statement without its line ending.
func (s stmt) text(data []byte) string {
	return strings.TrimRight(string(data[s.start:s.end]), "\r\n")
}

// indent is the white space that starts the statement.
func (s stmt) indent(data []byte) string {
	t := s.text(data)
	return t[:len(t)-len(strings.TrimLeft(t, " \t"))]
}

// scan splits a TOML document into statements. It is a lexer, not a validator: on a
// valid document (Merge checks that first) it tells headers, keys and values apart,
// strings and multi-line arrays included; on anything else the result only has to
// cover data, in order.
func scan(data []byte) []stmt {
	var out []stmt
	for i := 0; i < len(data); {
		s := scanStmt(data, i)
		out = append(out, s)
		i = s.end
	}
	return out
}

func scanStmt(data []byte, start int) stmt {
	s := stmt{start: start}
	i := skipSpace(data, start)
	switch {
	case i >= len(data) || data[i] == '\n' || data[i] == '\r' || data[i] == '#':
		s.kind = blank
		s.end = lineEnd(data, i)
	case data[i] == '[':
		s.kind = header
		i++
		if i < len(data) && data[i] == '[' {
			s.kind = arrayHeader
			i++
		}
		s.name, i = scanKey(data, i, ']')
		s.end = lineEnd(data, i)
	default:
		s.kind = keyValue
		s.name, i = scanKey(data, i, '=')
		if i < len(data) {
			i++ // '='
		}
		s.valueStart = skipSpace(data, i)
		s.valueEnd = scanValue(data, s.valueStart)
		s.end = lineEnd(data, s.valueEnd)
	}
	return s
}

// skipSpace returns the index of the first byte at or after i that is not a space or
// a tab.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
		i++
	}
	return i
}

// lineEnd returns the index just after the newline at or after i (len(data) when there
// is none).
func lineEnd(data []byte, i int) int {
	for i < len(data) {
		if data[i] == '\n' {
			return i + 1
		}
		i++
	}
	return len(data)
}

// scanKey reads a dotted key up to the byte stop (not consumed; its index is
// returned) and returns it normalised.
func scanKey(data []byte, i int, stop byte) (string, int) {
	var parts []string
	var part strings.Builder
	plain := true
	for i < len(data) && data[i] != stop && data[i] != '\n' {
		switch c := data[i]; c {
		case '"', '\'':
			j := i + 1
			for j < len(data) && data[j] != c && data[j] != '\n' {
				if c == '"' && data[j] == '\\' {
					plain = false
					j++
				}
				j++
			}
			if j > len(data) {
				j = len(data)
			}
			part.Write(data[i+1 : j])
			i = j + 1
		case '.':
			parts = append(parts, part.String())
			part.Reset()
			i++
		case ' ', '\t':
			i++
		default:
			part.WriteByte(c)
			i++
		}
	}
	parts = append(parts, part.String())
	if !plain {
		return "", min(i, len(data))
	}
	return strings.Join(parts, "."), min(i, len(data))
}

// scanValue returns the index just after a value that starts at i: a string (one line
// or several), an array or inline table over any number of lines, or a bare value. A
// trailing comment is not part of the value.
func scanValue(data []byte, i int) int {
	depth := 0
	end := i
	for i < len(data) {
		c := data[i]
		switch {
		case c == '\n' || (c == '\r' && depth == 0):
			if depth == 0 {
				return end
			}
			i++
		case c == '#':
			if depth == 0 {
				return end
			}
			i = lineEnd(data, i) - 1 // the newline is read next
			if i < 0 || data[i] != '\n' {
				return len(data)
			}
		case c == '"' || c == '\'':
			i = skipString(data, i)
			end = i
		case c == '[' || c == '{':
			depth++
			i++
			end = i
		case c == ']' || c == '}':
			depth--
			i++
			end = i
		case c == ' ' || c == '\t':
			i++
		default:
			i++
			end = i
		}
	}
	return end
}

// skipString returns the index just after the string that starts at i: basic or
// literal, on one line or multi-line.
func skipString(data []byte, i int) int {
	q := data[i]
	if i+2 < len(data) && data[i+1] == q && data[i+2] == q {
		delim := string([]byte{q, q, q})
		j := i + 3
		for j < len(data) {
			if q == '"' && data[j] == '\\' {
				j += 2
				continue
			}
			if strings.HasPrefix(string(data[j:min(j+3, len(data))]), delim) {
				j += 3
				// Up to two more quotes belong to the string's content.
				for k := 0; k < 2 && j < len(data) && data[j] == q; k++ {
					j++
				}
				return j
			}
			j++
		}
		return len(data)
	}
	j := i + 1
	for j < len(data) && data[j] != q && data[j] != '\n' {
		if q == '"' && data[j] == '\\' {
			j++
		}
		j++
	}
	return min(j+1, len(data))
}
