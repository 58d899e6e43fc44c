package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// tailWindow is the most of a file's end that Tail reads.
const tailWindow = 64 << 10

// agentLogWindow is the most of the agent log's end that TailAgentLog reads, looking
// for lines other than request lines: at 40 polls a second the agent at debug writes
// about 5 KB a second of them, and Wait polls an answering agent for at most
// WrongClusterGrace before failing.
const agentLogWindow = 1 << 20

// Tail returns up to n last lines of the file at path, for a diagnosis (say, the end
// of the ECS agent's log). It reads at most the last 64 KiB; a line cut by that window
// is dropped unless it is the only one. Line ends are "\n" or "\r\n" and are not
// returned. A missing file returns nil, nil; other errors are returned wrapped with
// the path.
func Tail(path string, n int) ([]string, error) {
	return tail(path, n, tailWindow, nil)
}

// TailAgentLog is Tail for the ECS agent's log, leaving out the lines the agent logs
// at debug for each request from this host (ECS_LOGLEVEL=debug): while firstrun polls
// they are all there is, 40 a second. It reads back further than Tail, up to 1 MiB,
// to find n other lines.
func TailAgentLog(path string, n int) ([]string, error) {
	return tail(path, n, agentLogWindow, isIntrospectionPoll)
}

// tail returns up to n last lines of path for which skip is false (all lines when skip
// is nil), reading windows of the file's end from 64 KiB up to maxWindow, doubling,
// until it has n lines.
func tail(path string, n, maxWindow int, skip func(string) bool) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", path, err)
	}
	for window := int64(tailWindow); ; window *= 2 {
		window = min(window, int64(maxWindow))
		lines, whole, err := readEnd(f, info, window)
		if err != nil {
			return nil, fmt.Errorf("tail %s: %w", path, err)
		}
		kept := lines[:0]
		for _, l := range lines {
			if skip == nil || !skip(l) {
				kept = append(kept, l)
			}
		}
		if len(kept) >= n || whole || window >= int64(maxWindow) {
			if len(kept) > n {
				kept = kept[len(kept)-n:]
			}
			if len(kept) == 0 {
				return nil, nil
			}
			return kept, nil
		}
	}
}

// readEnd returns the lines of the last window bytes of f, the first one dropped when
// the window cut it (unless it is the only one), and whether that is the whole file.
func readEnd(f *os.File, info os.FileInfo, window int64) ([]string, bool, error) {
	whole := true
	if info.Mode().IsRegular() && info.Size() > window {
		if _, err := f.Seek(info.Size()-window, io.SeekStart); err != nil {
			return nil, false, err
		}
		whole = false
	} else if _, err := f.Seek(0, io.SeekStart); err != nil && info.Mode().IsRegular() {
		return nil, false, err
	}
	data, err := io.ReadAll(io.LimitReader(f, window))
	if err != nil {
		return nil, false, err
	}
	text := string(data)
	if !whole {
		if i := strings.IndexByte(text, '\n'); i >= 0 && i < len(text)-1 {
			text = text[i+1:]
		}
	}
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return nil, whole, nil
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, whole, nil
}

// isIntrospectionPoll reports whether line is the agent's debug line for a GET from
// this host. The agent logs one for every request to its introspection server (port
// 51678) and its task metadata server: aws/amazon-ecs-agent
// ecs-agent/tmds/logging/logging_handler.go, LoggingHandler.ServeHTTP, logs
// "Handling http request" at debug with the fields method and from (the remote
// address; neither path nor port), in the agent's logfmt
//
//	level=debug time=… logger=structured msg="Handling http request" method="GET" from="127.0.0.1:41234"
//
// (fields in any order) or, with ECS_LOG_OUTPUT_FORMAT=json, the same as a JSON object
// (ecs-agent/logger/log.go, logfmtFormatter and jsonFormatter). firstrun's polls come
// from a loopback address; tasks' requests to the task metadata server come from
// their own addresses and are kept.
func isIntrospectionPoll(line string) bool {
	var f map[string]string
	if strings.HasPrefix(line, "{") {
		var j map[string]any
		if json.Unmarshal([]byte(line), &j) != nil {
			return false
		}
		f = map[string]string{}
		for k, v := range j {
			if s, ok := v.(string); ok {
				f[k] = s
			}
		}
	} else {
		f = logfmtFields(line)
	}
	if f["level"] != "debug" || f["msg"] != "Handling http request" || f["method"] != "GET" {
		return false
	}
	host, _, err := net.SplitHostPort(f["from"])
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// logfmtFields parses key=value and key="quoted value" pairs separated by spaces, the
// agent's logfmt; nil when line is not that.
func logfmtFields(line string) map[string]string {
	f := map[string]string{}
	for line != "" {
		key, rest, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return nil
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			quoted, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil
			}
			if value, err = strconv.Unquote(quoted); err != nil {
				return nil
			}
			rest = rest[len(quoted):]
		} else {
			value, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		f[key] = value
		if rest != "" && rest != " " && !strings.HasPrefix(rest, " ") {
			return nil
		}
		line = strings.TrimLeft(rest, " ")
	}
	return f
}
