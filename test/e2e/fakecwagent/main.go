// Command fakecwagent stands in for the Amazon CloudWatch agent inside the end-to-end
// sandbox, started by its unit as the real start-amazon-cloudwatch-agent is, and fails
// where the real one fails. It follows aws/amazon-cloudwatch-agent:
//
//   - cmd/start-amazon-cloudwatch-agent (start-amazon-cloudwatch-agent.go, path_linux.go):
//     the start script runs the config translator with --input
//     etc/amazon-cloudwatch-agent.json --input-dir etc/amazon-cloudwatch-agent.d
//     --config etc/common-config.toml and no --multi-config (so "remove"); a translator
//     failure ends it with "E! Cannot translate JSON config into TOML, ERROR is exit
//     status 1" and exit 1 (the unit restarts it after RestartSec); the translator's
//     "no JSON configuration" exit ends it with exit 0, the agent not started;
//   - cmd/config-translator/translator.go and tool/translator/translator.go: the
//     common-config file must open ("E! Failed to open common-config file … with
//     error: …") and parse as TOML ("E! Failed to parse common-config file … with error:
//     unable to decode toml: …"), or the translator exits 1; it writes env-config.json
//     beside the TOML, mode 0644, with HTTP_PROXY, HTTPS_PROXY, NO_PROXY from [proxy]
//     and AWS_CA_BUNDLE from [ssl] (translator/tocwconfig/toenvconfig/toEnvConfig.go,
//     translator/cmdutil TranslateJsonMapToEnvConfigFile);
//   - translator/cmdutil/translatorutil.go GenerateMergedJsonConfigMap: it walks the
//     .d directory (filepath.Walk: lexical order, subdirectories, dot files) and, in
//     "remove" mode, parses every file not ending in .tmp as a JSON object ("append"
//     also reads *.tmp, "default" only *.tmp); the first file that is not a JSON
//     object stops the walk ("unable to scan config dir … with error: …"), the
//     translation going on with the files read before it;
//   - translator/jsonconfig/mergeJsonConfig.go MergeJsonConfigMaps: no configuration
//     read in "remove" mode exits with ERR_CODE_NOJSONFILE.
//
// The agent then logs each proxy variable it is given (`HTTPS_PROXY is set to "…"`) and
// runs until SIGTERM or SIGINT. Unlike the real start script, which logs to
// logs/amazon-cloudwatch-agent.log, everything goes to stdout (the journal), in the
// agent's "TIME I! message" style, with the files and log sources it loaded.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// Where the real agent keeps its configuration (path_linux.go).
const etcDir = "/opt/aws/amazon-cloudwatch-agent/etc"

// paths are the translator's inputs and its env-config output.
type paths struct {
	JSON, Dir, Common, Env string
}

// realPaths are the start script's.
var realPaths = paths{
	JSON:   etcDir + "/amazon-cloudwatch-agent.json",
	Dir:    etcDir + "/amazon-cloudwatch-agent.d",
	Common: etcDir + "/common-config.toml",
	Env:    etcDir + "/env-config.json",
}

// tmpSuffix is translator/context TmpFileSuffix.
const tmpSuffix = ".tmp"

// commonConfig is cfg/commonconfig.CommonConfig.
type commonConfig struct {
	Credentials *struct {
		Profile *string `toml:"shared_credential_profile"`
		File    *string `toml:"shared_credential_file"`
	} `toml:"credentials"`
	Proxy *struct {
		HTTP  *string `toml:"http_proxy"`
		HTTPS *string `toml:"https_proxy"`
		No    *string `toml:"no_proxy"`
	} `toml:"proxy"`
	SSL *struct {
		CABundle *string `toml:"ca_bundle_path"`
	} `toml:"ssl"`
}

// readCommonConfig opens and parses common-config.toml as the translator does.
func readCommonConfig(path string) (commonConfig, error) {
	var c commonConfig
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("Failed to open common-config file %s with error: %v", path, err)
	}
	defer f.Close()
	if _, err := toml.NewDecoder(f).Decode(&c); err != nil {
		return c, fmt.Errorf("Failed to parse common-config file %s with error: unable to decode toml: %v", path, err)
	}
	return c, nil
}

// envConfig is what toEnvConfig writes from common-config.toml: the proxy variables
// and AWS_CA_BUNDLE, those that are set and not empty.
func envConfig(c commonConfig) map[string]string {
	env := map[string]string{}
	set := func(k string, v *string) {
		if v != nil && *v != "" {
			env[k] = *v
		}
	}
	if c.Proxy != nil {
		set("HTTP_PROXY", c.Proxy.HTTP)
		set("HTTPS_PROXY", c.Proxy.HTTPS)
		set("NO_PROXY", c.Proxy.No)
	}
	if c.SSL != nil {
		set("AWS_CA_BUNDLE", c.SSL.CABundle)
	}
	return env
}

// collected is one collect_list entry, the fields the log shows.
type collected struct {
	FilePath      string `json:"file_path"`
	LogGroupName  string `json:"log_group_name"`
	LogStreamName string `json:"log_stream_name"`
}

// loaded is one configuration file the translator read.
type loaded struct {
	Path  string
	Files []collected
}

// scan reads the configuration files as GenerateMergedJsonConfigMap does in mode
// multiConfig ("remove" for the start script, "append" for -a append-config, "default"
// for -a fetch-config). It returns the files read, in order, and the error that stopped
// the walk, if any (the files before it are kept, as the real translator keeps them,
// logging the error only); fatal is an amazon-cloudwatch-agent.json that cannot be
// read, which ends the translation.
func scan(p paths, multiConfig string) (out []loaded, walkErr, fatal error) {
	if multiConfig == "append" || multiConfig == "remove" {
		if _, err := os.Stat(p.JSON); err == nil {
			l, err := readJSON(p.JSON)
			if err != nil {
				return nil, nil, fmt.Errorf("unable to get old json config file with error: %v", err)
			}
			if l != nil {
				out = append(out, *l)
			}
		}
	}
	err := filepath.Walk(p.Dir, func(path string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if info, err = os.Stat(path); err != nil {
				return nil
			}
		}
		if info.IsDir() {
			return nil
		}
		tmp := filepath.Ext(path) == tmpSuffix
		if (tmp && multiConfig == "remove") || (!tmp && multiConfig == "default") {
			return nil
		}
		l, err := readJSON(path)
		if err != nil {
			return err
		}
		if l != nil {
			out = append(out, *l)
		}
		return nil
	})
	if err != nil {
		walkErr = fmt.Errorf("unable to scan config dir %v with error: %v", p.Dir, err)
	}
	return out, walkErr, nil
}

// readJSON parses one file into a JSON object as translator/util GetJsonMapFromFile
// does (json.Unmarshal into a map: a file that is not an object fails; "null" reads as
// nothing), and picks its logs.logs_collected.files.collect_list.
func readJSON(path string) (*loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("unable to parse json, error: %v", err)
	}
	if m == nil {
		return nil, nil
	}
	l := &loaded{Path: path}
	list, _ := dig(m, "logs", "logs_collected", "files", "collect_list").([]any)
	for _, e := range list {
		raw, _ := json.Marshal(e)
		var c collected
		_ = json.Unmarshal(raw, &c) // a wrong shape leaves file_path empty: the schema check fails
		l.Files = append(l.Files, c)
	}
	return l, nil
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// logf writes one agent-style line: "TIME L! message".
func logf(w io.Writer, level, format string, args ...any) {
	fmt.Fprintf(w, "%s %s! %s\n", time.Now().UTC().Format(time.RFC3339), level, fmt.Sprintf(format, args...))
}

// start runs the start script's steps: translate, then start the agent. It returns
// the exit code when the process ends here, or run=true when the agent runs.
func start(w io.Writer, p paths) (code int, run bool) {
	fail := func(format string, args ...any) (int, bool) {
		logf(w, "E", format, args...)
		logf(w, "E", "Cannot translate JSON config into TOML, ERROR is exit status 1")
		return 1, false
	}
	cc, err := readCommonConfig(p.Common)
	if err != nil {
		return fail("%v", err)
	}
	configs, walkErr, fatal := scan(p, "remove")
	if fatal != nil {
		return fail("Failed to generate merged json config: %v", fatal)
	}
	if walkErr != nil {
		logf(w, "I", "%v", walkErr)
	}
	if len(configs) == 0 {
		// The translator exits with ERR_CODE_NOJSONFILE; the start script exits 0.
		logf(w, "I", "No json config files found, please provide config, exit now")
		return 0, false
	}
	for _, c := range configs {
		if !validSchema(c) {
			logf(w, "E", "Invalid Json input schema: %s has a collect_list entry without file_path", c.Path)
			return fail("Configuration validation first phase failed")
		}
	}
	env := envConfig(cc)
	data, err := json.MarshalIndent(env, "", "\t")
	if err != nil {
		return fail("Failed to create json map for environment variables. Reason: %v", err)
	}
	if err := os.WriteFile(p.Env, data, 0o644); err != nil {
		return fail("Failed to create env config. Reason: %v", err)
	}
	logf(w, "I", "Config has been translated into TOML")
	sources := 0
	for _, c := range configs {
		logf(w, "I", "loaded %s: %d log file(s)", c.Path, len(c.Files))
		sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].FilePath < c.Files[j].FilePath })
		for _, f := range c.Files {
			logf(w, "I", "  collect %s -> log group %q, stream %q", f.FilePath, f.LogGroupName, f.LogStreamName)
		}
		sources += len(c.Files)
	}
	logf(w, "I", "%d log source(s)", sources)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		logf(w, "I", "%s is set to %q", k, env[k]) // as the real agent does: in clear
	}
	return 0, true
}

// validSchema is the part of the translator's schema check (translator/config
// schema.json) that matters here: every collect_list entry has a file_path.
func validSchema(l loaded) bool {
	for _, f := range l.Files {
		if f.FilePath == "" {
			return false
		}
	}
	return true
}

func main() {
	logf(os.Stdout, "I", "starting fakecwagent (Amazon CloudWatch agent stand-in)")
	code, run := start(os.Stdout, realPaths)
	if !run {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf(os.Stdout, "I", "running")
	<-ctx.Done()
	logf(os.Stdout, "I", "stopping: signal received")
}
