package inputs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/redact"
)

// envKey is a shell-style variable name.
var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseEnvFile reads KEY=value lines, the subset that firstrun and systemd's
// EnvironmentFile= read alike: blank lines and lines starting with # or ; are skipped,
// white space around the line is trimmed, and one pair of matching quotes around the
// value is removed. "export KEY=value" and lines without '=' are errors, not guesses.
// name is used in problems ("FILE:LINE").
func ParseEnvFile(name string, data []byte) (map[string]string, []Problem) {
	values := map[string]string{}
	var problems []Problem
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		where := fmt.Sprintf("%s:%d", name, n)
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		switch {
		case !ok:
			problems = append(problems, Problem{Var: where, Msg: "is not a KEY=value line"})
			continue
		case strings.HasPrefix(key, "export "):
			problems = append(problems, Problem{Var: where, Msg: "must not start with 'export': systemd's EnvironmentFile= does not accept it"})
			continue
		case !envKey.MatchString(key):
			// The text before '=' may be a pasted URL: show it with its password hidden.
			problems = append(problems, Problem{Var: where, Msg: fmt.Sprintf("%q is not a variable name", redact.Value("", key))})
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		if _, dup := values[key]; dup {
			problems = append(problems, Problem{Var: where, Msg: fmt.Sprintf("sets %s a second time", key)})
			continue
		}
		values[key] = value
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, Problem{Var: name, Msg: fmt.Sprintf("cannot be read: %v", err)})
	}
	return values, problems
}

// ReadEnvFile returns the env file's name and content: name when given (--env-file,
// which must exist), else the default file under root, whose content is nil when it
// does not exist.
func ReadEnvFile(root hostpath.Root, name string) (string, []byte, error) {
	explicit := name != ""
	if !explicit {
		name = root.Join(hostpath.EnvFile)
	}
	data, err := os.ReadFile(name)
	switch {
	case err == nil:
		if data == nil {
			data = []byte{}
		}
		return name, data, nil
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		return name, nil, nil
	default:
		return name, nil, fmt.Errorf("env file: %w", err)
	}
}
