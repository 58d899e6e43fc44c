// Command fakecwagent stands in for the Amazon CloudWatch agent inside the end-to-end
// sandbox. At start it reads every *.json file of
// /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d (as the real agent
// translates that directory), checks that each is valid JSON with a
// logs.logs_collected.files.collect_list array, and logs what it loaded, with the
// [proxy] section of ../common-config.toml when present, to stdout (the journal), in the
// agent's "TIME I! message" style. It exits 1 when a file is invalid or there is none,
// otherwise runs until SIGTERM or SIGINT and exits 0.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/internal/redact"
)

// Where the real agent keeps its configuration.
const (
	etcDir       = "/opt/aws/amazon-cloudwatch-agent/etc"
	configDir    = etcDir + "/amazon-cloudwatch-agent.d"
	commonConfig = etcDir + "/common-config.toml"
)

// collected is one collect_list entry, the fields the log shows.
type collected struct {
	FilePath      string `json:"file_path"`
	LogGroupName  string `json:"log_group_name"`
	LogStreamName string `json:"log_stream_name"`
}

// config is one loaded JSON file.
type config struct {
	Path  string
	Files []collected
}

// loadConfigs reads every *.json file in dir (names ending in .tmp are in-progress
// writes and skipped) and reports every invalid one at once. A missing or empty
// directory is an error: the agent has nothing to run.
func loadConfigs(dir string) ([]config, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read configuration directory: %w", err)
	}
	var (
		configs []config
		errs    []error
	)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".tmp") {
			continue
		}
		c, err := loadConfig(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		configs = append(configs, c)
	}
	if len(configs) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no *.json configuration in %s", dir))
	}
	return configs, errors.Join(errs...)
}

// loadConfig parses one file and checks it has logs.logs_collected.files.collect_list.
func loadConfig(path string) (config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config{}, fmt.Errorf("read %s: %w", path, err)
	}
	var doc struct {
		Logs *struct {
			LogsCollected *struct {
				Files *struct {
					CollectList *[]collected `json:"collect_list"`
				} `json:"files"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return config{}, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	if dec.More() {
		return config{}, fmt.Errorf("%s: invalid JSON: data after the top-level value", path)
	}
	if doc.Logs == nil || doc.Logs.LogsCollected == nil || doc.Logs.LogsCollected.Files == nil ||
		doc.Logs.LogsCollected.Files.CollectList == nil {
		return config{}, fmt.Errorf("%s: no logs.logs_collected.files.collect_list", path)
	}
	return config{Path: path, Files: *doc.Logs.LogsCollected.Files.CollectList}, nil
}

// proxySection returns the "key = value" lines of the [proxy] section of the TOML file
// at path, values of *_proxy keys redacted of credentials; nil when the file or the
// section is missing.
func proxySection(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var lines []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "["):
			in = line == "[proxy]"
		case in && line != "" && !strings.HasPrefix(line, "#"):
			key, value, _ := strings.Cut(line, "=")
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			lines = append(lines, key+" = "+redact.Value(key, value))
		}
	}
	return lines, sc.Err()
}

// logf writes one agent-style line: "TIME I! message".
func logf(w io.Writer, level, format string, args ...any) {
	fmt.Fprintf(w, "%s %s! %s\n", time.Now().UTC().Format(time.RFC3339), level, fmt.Sprintf(format, args...))
}

// report loads the configuration and logs it; it returns false when it is invalid.
func report(w io.Writer, dir, common string) bool {
	configs, err := loadConfigs(dir)
	for _, c := range configs {
		logf(w, "I", "loaded %s: %d log file(s)", c.Path, len(c.Files))
		sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].FilePath < c.Files[j].FilePath })
		for _, f := range c.Files {
			logf(w, "I", "  collect %s -> log group %q, stream %q", f.FilePath, f.LogGroupName, f.LogStreamName)
		}
	}
	ok := err == nil
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			logf(w, "E", "invalid configuration: %s", line)
		}
	}
	proxy, perr := proxySection(common)
	switch {
	case perr != nil:
		logf(w, "E", "%v", perr)
		ok = false
	case proxy == nil:
		logf(w, "I", "no [proxy] in %s", common)
	default:
		logf(w, "I", "[proxy] from %s: %s", common, strings.Join(proxy, "; "))
	}
	return ok
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf(os.Stdout, "I", "starting fakecwagent (Amazon CloudWatch agent stand-in)")
	if !report(os.Stdout, configDir, commonConfig) {
		os.Exit(1)
	}
	logf(os.Stdout, "I", "running")
	<-ctx.Done()
	logf(os.Stdout, "I", "stopping: signal received")
}
