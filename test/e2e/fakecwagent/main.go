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
//     translator/cmdutil TranslateJsonMapToEnvConfigFile), after the TOML and YAML;
//   - translator/cmdutil/translatorutil.go GenerateMergedJsonConfigMap: it walks the
//     .d directory (filepath.Walk: lexical order, subdirectories, dot files) and, in
//     "remove" mode, parses every file not ending in .tmp as a JSON object ("append"
//     also reads *.tmp, "default" only *.tmp); the first file that is not a JSON
//     object stops the walk ("unable to scan config dir … with error: …"), the
//     translation going on with the files read before it;
//   - translator/jsonconfig/mergeJsonConfig.go MergeJsonConfigMaps: no configuration
//     read in "remove" mode exits with ERR_CODE_NOJSONFILE;
//   - the same file's checkSchema: the merged configuration is validated against
//     translator/config/schema.json (gojsonschema); each error is logged as "Under path :
//     /logs/logs_collected | Error : …" after "E! Invalid Json input schema.", then
//     "Configuration validation first phase failed. Agent version: 1.0. Verify the JSON
//     input is only using features supported by this version." (cmdutil
//     translator.go), and the translator exits 1. schema.json's logs_collected has
//     "additionalProperties": false; before journald support its properties are files,
//     windows_events and application_signals, so an agent older than 1.300070.0 refuses a
//     "journald" key ("Additional property journald is not allowed") and does not start.
//     From 1.300070.0 logs.logs_collected.journald.collect_list[] takes units,
//     log_group_name, log_stream_name (translator/config/sampleSchema/
//     validLogJournald.json; invalidLogJournaldWithInvalidUnitsType.json and
//     …InvalidLogStreamNameType.json for the types). The stand-in knows its version from
//     bin/CWAGENT_VERSION (cfg/agentinfo reads that file); without one it is an agent
//     older than 1.300070.0.
//   - translator/translate/util/placeholderUtil.go ResolvePlaceholder and
//     GetMetadataInfo, used by the log_stream_name rules (files:
//     translator/translate/logs/logs_collected/files/collect_list/ruleLogStreamName.go;
//     journald: translator/translate/otel/exporter/journald/translator.go): at each
//     start the translator fills {instance_id} (and {hostname}, {local_hostname},
//     {ip_address}, {aws_region}, {account_id}, {date}) from IMDS's instance identity
//     document (translator/util/ec2util/ec2util.go: IMDSv2 token first, then without);
//     an empty stream name is "{instance_id}"; with no IMDS the instance id is
//     "i-UNKNOWN". The IMDS endpoint is the SDK's: AWS_EC2_METADATA_SERVICE_ENDPOINT when
//     set (aws-sdk-go #3504), else http://169.254.169.254.
//
// Not copied, on purpose: in mode ec2 the real translator also needs a region, from
// agent.region or IMDS (translator/translate/agent/ruleRegion.go, "Region info is
// missing for mode: ec2"), and before asking IMDS it waits up to 5 s for a network
// interface other than loopback (ec2util.go). The sandbox has neither IMDS nor such an
// interface by default, so the real agent would not start there at all; the stand-in
// starts with the region unknown ({aws_region} "UNKNOWN-REGION").
//
// The agent then logs each proxy variable it is given (`HTTPS_PROXY is set to "…"`) and
// runs until SIGTERM or SIGINT, "publishing" (publish.go) to a sink file instead of
// CloudWatch Logs. Unlike the real start script, which logs to
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// Where the real agent lives (path_linux.go).
const (
	agentDir = "/opt/aws/amazon-cloudwatch-agent"
	etcDir   = agentDir + "/etc"
)

// paths are the translator's inputs and its env-config output, the agent's version
// file, the logfile input's state folder and the stand-in's sink.
type paths struct {
	JSON, Dir, Common, Env string
	// Version is bin/CWAGENT_VERSION; "" or a missing file: an agent older than
	// 1.300070.0.
	Version string
	// State is the logfile input's file_state_folder: the offset reached in each file
	// (translator/translate/logs/util: /opt/aws/amazon-cloudwatch-agent/logs/state).
	State string
	// Sink receives one JSON line per event the agent would put to CloudWatch Logs.
	Sink string
}

// realPaths are the start script's, and the stand-in's sink.
var realPaths = paths{
	JSON:    etcDir + "/amazon-cloudwatch-agent.json",
	Dir:     etcDir + "/amazon-cloudwatch-agent.d",
	Common:  etcDir + "/common-config.toml",
	Env:     etcDir + "/env-config.json",
	Version: agentDir + "/bin/CWAGENT_VERSION",
	State:   agentDir + "/logs/state",
	Sink:    "/var/lib/fakecwagent/events.jsonl",
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

// collected is one files collect_list entry, the fields the log shows.
type collected struct {
	FilePath      string `json:"file_path"`
	LogGroupName  string `json:"log_group_name"`
	LogStreamName string `json:"log_stream_name"`
}

// unitsCollected is one journald collect_list entry.
type unitsCollected struct {
	Units         []string `json:"units"`
	LogGroupName  string   `json:"log_group_name"`
	LogStreamName string   `json:"log_stream_name"`
}

// loaded is one configuration file the translator read.
type loaded struct {
	Path     string
	Files    []collected
	Journald []unitsCollected
	// Stream is logs.log_stream_name, the default of the entries without one.
	Stream string
	// raw is the file's JSON object, for the schema check.
	raw map[string]any
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
// nothing), and picks its logs.logs_collected collect lists.
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
	l := &loaded{Path: path, raw: m}
	l.Stream, _ = dig(m, "logs", "log_stream_name").(string)
	// A wrong shape leaves fields empty: the schema check reports it.
	list, _ := dig(m, "logs", "logs_collected", "files", "collect_list").([]any)
	for _, e := range list {
		raw, _ := json.Marshal(e)
		var c collected
		_ = json.Unmarshal(raw, &c)
		l.Files = append(l.Files, c)
	}
	list, _ = dig(m, "logs", "logs_collected", "journald", "collect_list").([]any)
	for _, e := range list {
		raw, _ := json.Marshal(e)
		var u unitsCollected
		_ = json.Unmarshal(raw, &u)
		l.Journald = append(l.Journald, u)
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

// logf writes one agent-style line: "TIME L! message", or "TIME message" without a
// level (the translator's own log.Println lines).
func logf(w io.Writer, level, format string, args ...any) {
	if level == "" {
		fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
		return
	}
	fmt.Fprintf(w, "%s %s! %s\n", time.Now().UTC().Format(time.RFC3339), level, fmt.Sprintf(format, args...))
}

// agentVersion is the version bin/CWAGENT_VERSION gives ("1.300070.0", "1.300064.1b1344",
// the Makefile's git describe without its "v").
type agentVersion struct {
	// Raw is the file's content, trimmed; "" without a file.
	Raw string
	// Known is false without a file or with one that is not MAJOR.MINOR.PATCH.
	Known bool
	N     [3]int
}

// journaldSince is the first release whose schema takes logs_collected.journald.
var journaldSince = [3]int{1, 300070, 0}

// readVersion reads the version file; any problem makes an unknown version.
func readVersion(path string) agentVersion {
	if path == "" {
		return agentVersion{}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return agentVersion{}
	}
	return parseVersion(string(data))
}

// parseVersion reads MAJOR.MINOR.PATCH and ignores what follows the patch's digits.
func parseVersion(s string) agentVersion {
	v := agentVersion{Raw: strings.TrimSpace(s)}
	parts := strings.SplitN(strings.TrimPrefix(v.Raw, "v"), ".", 3)
	if len(parts) != 3 {
		return v
	}
	for i, p := range parts {
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		if end == 0 || (i < 2 && end != len(p)) {
			return v
		}
		n, err := strconv.Atoi(p[:end])
		if err != nil {
			return v
		}
		v.N[i] = n
	}
	v.Known = true
	return v
}

// journald reports whether this agent's schema takes logs_collected.journald.
func (v agentVersion) journald() bool {
	if !v.Known {
		return false
	}
	for i := range v.N {
		if v.N[i] != journaldSince[i] {
			return v.N[i] > journaldSince[i]
		}
	}
	return true
}

func (v agentVersion) String() string {
	if v.Raw == "" {
		return "unknown (no version file)"
	}
	return v.Raw
}

// schemaError is one gojsonschema error as the translator logs it.
type schemaError struct{ Path, Msg string }

func (e schemaError) String() string { return "Under path : " + e.Path + " | Error : " + e.Msg }

// schemaErrors checks the part of translator/config/schema.json that firstrun's
// fragments touch: logs.logs_collected's properties (journald only from 1.300070.0),
// files.collect_list[].file_path, and journald.collect_list's shape. Messages are
// gojsonschema's.
func schemaErrors(m map[string]any, v agentVersion) []schemaError {
	var errs []schemaError
	add := func(path, format string, args ...any) {
		errs = append(errs, schemaError{path, fmt.Sprintf(format, args...)})
	}
	lc, ok := dig(m, "logs", "logs_collected").(map[string]any)
	if !ok {
		return nil
	}
	const base = "/logs/logs_collected"
	allowed := map[string]bool{"files": true, "windows_events": true, "application_signals": true, "journald": v.journald()}
	keys := make([]string, 0, len(lc))
	for k := range lc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !allowed[k] {
			add(base, "Additional property %s is not allowed", k)
		}
	}
	if len(lc) == 0 {
		add(base, "Must have at least 1 properties")
	}
	if files, ok := lc["files"].(map[string]any); ok {
		list, ok := files["collect_list"].([]any)
		if !ok {
			add(base+"/files", "collect_list is required")
		}
		for i, e := range list {
			entry, _ := e.(map[string]any)
			if _, ok := entry["file_path"]; !ok {
				add(fmt.Sprintf("%s/files/collect_list/%d", base, i), "file_path is required")
			}
		}
	}
	if j, ok := lc["journald"].(map[string]any); ok && allowed["journald"] {
		list, ok := j["collect_list"].([]any)
		switch {
		case j["collect_list"] == nil:
			add(base+"/journald", "collect_list is required")
		case !ok:
			add(base+"/journald/collect_list", "Invalid type. Expected: array, given: %s", jsonType(j["collect_list"]))
		case len(list) == 0:
			add(base+"/journald/collect_list", "Array must have at least 1 items")
		}
		for i, e := range list {
			path := fmt.Sprintf("%s/journald/collect_list/%d", base, i)
			entry, ok := e.(map[string]any)
			if !ok {
				add(path, "Invalid type. Expected: object, given: %s", jsonType(e))
				continue
			}
			if u, ok := entry["units"]; ok {
				if us, ok := u.([]any); !ok {
					add(path+"/units", "Invalid type. Expected: array, given: %s", jsonType(u))
				} else {
					for k, name := range us {
						if _, ok := name.(string); !ok {
							add(fmt.Sprintf("%s/units/%d", path, k), "Invalid type. Expected: string, given: %s", jsonType(name))
						}
					}
				}
			}
			for _, key := range []string{"log_group_name", "log_stream_name"} {
				if s, ok := entry[key]; ok {
					if _, ok := s.(string); !ok {
						add(path+"/"+key, "Invalid type. Expected: string, given: %s", jsonType(s))
					}
				}
			}
		}
	}
	return errs
}

// jsonType names a decoded JSON value's type as gojsonschema does.
func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if v == float64(int64(v)) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// agentConfig is what the translation gives the running agent: its log sources, names
// resolved.
type agentConfig struct {
	Version  agentVersion
	Files    []fileSource
	Journald []unitSource
}

// fileSource is one files collect_list entry, translated.
type fileSource struct {
	Glob   string
	Target target
}

// unitSource is one journald collect_list entry, translated.
type unitSource struct {
	Units  []string
	Target target
}

// translate runs the start script's steps: translate, then start the agent. It returns
// the exit code when the process ends here, or the agent's configuration when it runs.
func translate(w io.Writer, p paths, md metadata) (code int, cfg *agentConfig) {
	fail := func(format string, args ...any) (int, *agentConfig) {
		logf(w, "E", format, args...)
		logf(w, "E", "Cannot translate JSON config into TOML, ERROR is exit status 1")
		return 1, nil
	}
	version := readVersion(p.Version)
	logf(w, "I", "agent version %s", version)
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
		return 0, nil
	}
	var errs []schemaError
	seen := map[schemaError]bool{}
	for _, c := range configs {
		for _, e := range schemaErrors(c.raw, version) {
			if !seen[e] {
				seen[e] = true
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		logf(w, "E", "Invalid Json input schema.")
		for _, e := range errs {
			logf(w, "", "%s", e)
		}
		return fail("Configuration validation first phase failed. Agent version: 1.0. Verify the JSON input is only using features supported by this version.")
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
	cfg = &agentConfig{Version: version}
	for _, c := range configs {
		logf(w, "I", "loaded %s: %d log file(s), %d journald collect_list entr(ies)", c.Path, len(c.Files), len(c.Journald))
		files := append([]collected(nil), c.Files...)
		sort.Slice(files, func(i, j int) bool { return files[i].FilePath < files[j].FilePath })
		for _, f := range files {
			t := md.target(f.LogGroupName, f.LogStreamName, c.Stream)
			logf(w, "I", "  collect %s -> log group %q, stream %q", f.FilePath, t.Group, t.Stream)
			cfg.Files = append(cfg.Files, fileSource{Glob: f.FilePath, Target: t})
		}
		for _, u := range c.Journald {
			t := md.target(u.LogGroupName, u.LogStreamName, c.Stream)
			logf(w, "I", "  collect journald units %s -> log group %q, stream %q", strings.Join(u.Units, ","), t.Group, t.Stream)
			cfg.Journald = append(cfg.Journald, unitSource{Units: u.Units, Target: t})
		}
	}
	logf(w, "I", "%d log source(s)", len(cfg.Files)+len(cfg.Journald))
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		logf(w, "I", "%s is set to %q", k, env[k]) // as the real agent does: in clear
	}
	return 0, cfg
}

// start is translate with the metadata of an instance without IMDS; it returns the
// exit code when the process ends here, or run=true when the agent runs.
func start(w io.Writer, p paths) (code int, run bool) {
	code, cfg := translate(w, p, metadata{})
	return code, cfg != nil
}

func main() {
	logf(os.Stdout, "I", "starting fakecwagent (Amazon CloudWatch agent stand-in)")
	md := fetchMetadata(context.Background(), os.Stdout, imdsEndpoint())
	code, cfg := translate(os.Stdout, realPaths, md)
	if cfg == nil {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf(os.Stdout, "I", "running")
	if err := publish(ctx, os.Stdout, realPaths, cfg); err != nil {
		logf(os.Stdout, "E", "publishing: %v", err)
		os.Exit(1)
	}
	logf(os.Stdout, "I", "stopping: signal received")
}
