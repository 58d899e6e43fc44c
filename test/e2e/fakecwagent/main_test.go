package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `{"logs":{"logs_collected":{"files":{"collect_list":[
 {"file_path":"/var/log/ecs/ecs-agent.log","log_group_name":"/s/ec2/g/var/log/ecs/ecs-agent.log","log_stream_name":"{instance_id}"}]}}}}`

// shipped is the package's common-config.toml, comments only (as in the sandbox).
const shipped = "# This common-config is used to configure items used for both ssm and cloudwatch access\n# [proxy]\n#    http_proxy = \"{http_url}\"\n"

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testPaths lays out an agent etc directory in a temporary directory.
func testPaths(t *testing.T) paths {
	dir := t.TempDir()
	p := paths{
		JSON:   filepath.Join(dir, "amazon-cloudwatch-agent.json"),
		Dir:    filepath.Join(dir, "amazon-cloudwatch-agent.d"),
		Common: filepath.Join(dir, "common-config.toml"),
		Env:    filepath.Join(dir, "env-config.json"),
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStartNeedsCommonConfig: the start script always passes common-config.toml to the
// translator, which exits 1 when it is missing or not TOML.
func TestStartNeedsCommonConfig(t *testing.T) {
	for _, tc := range []struct{ name, common, want string }{
		{"missing", "", "E! Failed to open common-config file"},
		{"malformed", "[proxy\nhttp_proxy = 1\n", "E! Failed to parse common-config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPaths(t)
			write(t, p.Dir, "firstrun.json", good)
			if tc.common != "" {
				write(t, filepath.Dir(p.Common), "common-config.toml", tc.common)
			}
			var out strings.Builder
			code, run := start(&out, p)
			if code != 1 || run {
				t.Errorf("start = %d, %v; want exit 1", code, run)
			}
			for _, want := range []string{tc.want, "E! Cannot translate JSON config into TOML, ERROR is exit status 1"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestStartWritesEnvConfig: the proxy of common-config.toml goes to env-config.json,
// mode 0644, and the agent logs it in clear, as the real one does.
func TestStartWritesEnvConfig(t *testing.T) {
	p := testPaths(t)
	write(t, p.Dir, "firstrun.json", good)
	write(t, filepath.Dir(p.Common), "common-config.toml", shipped+"[ssl]\nca_bundle_path = \"/etc/pki/x.pem\"\n[proxy]\nhttp_proxy = \"http://u:p@h:1\"\nhttps_proxy = \"http://u:p@h:1\"\nno_proxy = \"169.254.169.254\"\n")
	var out strings.Builder
	if code, run := start(&out, p); !run {
		t.Fatalf("start = %d, not running:\n%s", code, out.String())
	}
	data, err := os.ReadFile(p.Env)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"HTTP_PROXY": "http://u:p@h:1", "HTTPS_PROXY": "http://u:p@h:1", "NO_PROXY": "169.254.169.254", "AWS_CA_BUNDLE": "/etc/pki/x.pem"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env-config.json %s = %q, want %q", k, env[k], v)
		}
	}
	if fi, _ := os.Stat(p.Env); fi.Mode().Perm() != 0o644 {
		t.Errorf("env-config.json mode %04o, want 0644", fi.Mode().Perm())
	}
	for _, want := range []string{`HTTPS_PROXY is set to "http://u:p@h:1"`, "collect /var/log/ecs/ecs-agent.log", "1 log source(s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestScanReadsEveryFile: the translator walks the .d directory in lexical order,
// dot files included, *.tmp only outside "remove" mode; the first file that is not a
// JSON object stops the walk, and what was read before it is kept.
func TestScanReadsEveryFile(t *testing.T) {
	p := testPaths(t)
	write(t, p.Dir, "b.json", good)
	write(t, p.Dir, "notes.txt", `{}`)
	write(t, p.Dir, "sub/c.json", good)
	write(t, p.Dir, ".firstrun.json.firstrun-1.tmp", `{"half`)
	names := func(ls []loaded) string {
		var out []string
		for _, l := range ls {
			out = append(out, strings.TrimPrefix(l.Path, p.Dir+"/"))
		}
		return strings.Join(out, " ")
	}
	// The start script: *.tmp skipped, every other file read, text files too.
	got, walkErr, fatal := scan(p, "remove")
	if walkErr != nil || fatal != nil || names(got) != "b.json notes.txt sub/c.json" {
		t.Errorf("remove: %q, %v, %v", names(got), walkErr, fatal)
	}
	// append-config: the half-written dot file is read first and stops the walk.
	got, walkErr, _ = scan(p, "append")
	if walkErr == nil || !strings.Contains(walkErr.Error(), "unable to scan config dir") || len(got) != 0 {
		t.Errorf("append: %q, %v; want the walk stopped at the temp file, nothing read", names(got), walkErr)
	}
	// A dot file that is not JSON stops the start script's walk too.
	write(t, p.Dir, ".a-note", "not json")
	got, walkErr, _ = scan(p, "remove")
	if walkErr == nil || len(got) != 0 {
		t.Errorf("remove with a dot file: %q, %v", names(got), walkErr)
	}
}

// TestStartWithoutConfiguration: nothing to translate (no file, or the walk stopped
// before the first one) ends the start script with exit 0, the agent not running.
func TestStartWithoutConfiguration(t *testing.T) {
	p := testPaths(t)
	write(t, filepath.Dir(p.Common), "common-config.toml", shipped)
	write(t, p.Dir, ".broken", "{")
	write(t, p.Dir, "firstrun.json", good)
	var out strings.Builder
	code, run := start(&out, p)
	if code != 0 || run {
		t.Errorf("start = %d, %v; want exit 0, not running", code, run)
	}
	for _, want := range []string{"unable to scan config dir", "No json config files found"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestStartRejectsSchema(t *testing.T) {
	p := testPaths(t)
	write(t, filepath.Dir(p.Common), "common-config.toml", shipped)
	write(t, p.Dir, "x.json", `{"logs":{"logs_collected":{"files":{"collect_list":[{"log_group_name":"g"}]}}}}`)
	var out strings.Builder
	if code, run := start(&out, p); code != 1 || run {
		t.Errorf("start = %d, %v; want exit 1\n%s", code, run, out.String())
	}
}

// journaldFragment is firstrun's fragment for an agent that ships the journal, cut
// down to one file and one unit.
const journaldFragment = `{"logs":{"logs_collected":{
 "files":{"collect_list":[{"file_path":"/var/log/firstrun/metrics.log","log_group_name":"/s/ec2/g/var/log/firstrun/metrics","log_stream_name":"{instance_id}"}]},
 "journald":{"collect_list":[{"units":["ecs.service"],"log_group_name":"/s/ec2/g/journal/ecs.service","log_stream_name":"{instance_id}"}]}}}}`

// TestVersion: bin/CWAGENT_VERSION's forms; journald from 1.300070.0 only; no file or
// an unreadable version is an old agent.
func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		in       string
		journald bool
	}{
		{"1.300070.0", true},
		{"1.300070.0\n", true},
		{"1.300073.2b1889", true},
		{"v1.300070.0-3-gabc1234-dirty", true},
		{"2.0.0", true},
		{"1.300069.9", false},
		{"1.300060.0", false},
		{"1.300064.1b1344", false},
		{"Unknown", false},
		{"", false},
		{"1.x.0", false},
	} {
		if got := parseVersion(tc.in).journald(); got != tc.journald {
			t.Errorf("parseVersion(%q).journald() = %v, want %v", tc.in, got, tc.journald)
		}
	}
	if v := readVersion(filepath.Join(t.TempDir(), "CWAGENT_VERSION")); v.Known || v.journald() {
		t.Errorf("no version file: %+v, want an unknown, old agent", v)
	}
}

// TestOldAgentRefusesJournald: before 1.300070.0 schema.json's logs_collected has no
// journald and allows no other property: the translator fails, the agent does not
// start, env-config.json is not written.
func TestOldAgentRefusesJournald(t *testing.T) {
	for _, version := range []string{"", "1.300060.0"} {
		t.Run("version "+version, func(t *testing.T) {
			p := testPaths(t)
			write(t, filepath.Dir(p.Common), "common-config.toml", shipped)
			write(t, p.Dir, "firstrun.json", journaldFragment)
			p.Version = filepath.Join(filepath.Dir(p.Common), "CWAGENT_VERSION")
			if version != "" {
				write(t, filepath.Dir(p.Common), "CWAGENT_VERSION", version+"\n")
			}
			var out strings.Builder
			code, cfg := translate(&out, p, metadata{})
			if code != 1 || cfg != nil {
				t.Fatalf("translate = %d, %v; want exit 1, not running\n%s", code, cfg, out.String())
			}
			for _, want := range []string{
				"E! Invalid Json input schema.",
				"Under path : /logs/logs_collected | Error : Additional property journald is not allowed",
				"Configuration validation first phase failed. Agent version: 1.0.",
				"E! Cannot translate JSON config into TOML, ERROR is exit status 1",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if _, err := os.Stat(p.Env); err == nil {
				t.Error("env-config.json written by a failed translation")
			}
		})
	}
}

// TestNewAgentTakesJournald: from 1.300070.0 the journald collect_list is taken, its
// names resolved as the files'; a wrong type fails as gojsonschema says.
func TestNewAgentTakesJournald(t *testing.T) {
	p := testPaths(t)
	write(t, filepath.Dir(p.Common), "common-config.toml", shipped)
	write(t, filepath.Dir(p.Common), "CWAGENT_VERSION", "1.300070.0\n")
	p.Version = filepath.Join(filepath.Dir(p.Common), "CWAGENT_VERSION")
	write(t, p.Dir, "firstrun.json", journaldFragment)
	var out strings.Builder
	code, cfg := translate(&out, p, metadata{InstanceID: "i-0abc"})
	if cfg == nil {
		t.Fatalf("translate = %d, not running:\n%s", code, out.String())
	}
	wantFile := fileSource{Glob: "/var/log/firstrun/metrics.log", Target: target{"/s/ec2/g/var/log/firstrun/metrics", "i-0abc"}}
	wantUnit := target{"/s/ec2/g/journal/ecs.service", "i-0abc"}
	if len(cfg.Files) != 1 || cfg.Files[0] != wantFile || len(cfg.Journald) != 1 || cfg.Journald[0].Target != wantUnit ||
		strings.Join(cfg.Journald[0].Units, ",") != "ecs.service" {
		t.Errorf("config %+v", cfg)
	}
	if !strings.Contains(out.String(), "2 log source(s)") {
		t.Errorf("output:\n%s", out.String())
	}

	for _, tc := range []struct{ name, fragment, want string }{
		{"units not an array", `{"logs":{"logs_collected":{"journald":{"collect_list":[{"units":123,"log_group_name":"g"}]}}}}`,
			"Under path : /logs/logs_collected/journald/collect_list/0/units | Error : Invalid type. Expected: array, given: integer"},
		{"stream not a string", `{"logs":{"logs_collected":{"journald":{"collect_list":[{"units":["a"],"log_stream_name":456}]}}}}`,
			"Under path : /logs/logs_collected/journald/collect_list/0/log_stream_name | Error : Invalid type. Expected: string, given: integer"},
		{"empty collect_list", `{"logs":{"logs_collected":{"journald":{"collect_list":[]}}}}`,
			"Under path : /logs/logs_collected/journald/collect_list | Error : Array must have at least 1 items"},
		{"unknown source", `{"logs":{"logs_collected":{"syslog":{}}}}`,
			"Under path : /logs/logs_collected | Error : Additional property syslog is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(t, p.Dir, "firstrun.json", tc.fragment)
			var out strings.Builder
			if code, cfg := translate(&out, p, metadata{}); code != 1 || cfg != nil || !strings.Contains(out.String(), tc.want) {
				t.Errorf("translate = %d, %v; want exit 1 and %q:\n%s", code, cfg, tc.want, out.String())
			}
		})
	}
}
