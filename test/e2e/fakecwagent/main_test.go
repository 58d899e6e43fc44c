package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `{"logs":{"logs_collected":{"files":{"collect_list":[
 {"file_path":"/var/log/ecs/ecs-agent.log","log_group_name":"/s/ec2/g/var/log/ecs/ecs-agent.log","log_stream_name":"{instance_id}"}]}}}}`

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "firstrun.json", good)
	write(t, dir, "firstrun.json.tmp", "{half")
	write(t, dir, "notes.txt", "not json")
	configs, err := loadConfigs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) != 1 || len(configs[0].Files) != 1 || configs[0].Files[0].FilePath != "/var/log/ecs/ecs-agent.log" {
		t.Errorf("got %+v", configs)
	}
}

func TestLoadConfigsReportsEveryInvalidFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.json", good)
	write(t, dir, "b.json", "{not json")
	write(t, dir, "c.json", `{"logs":{"logs_collected":{}}}`)
	write(t, dir, "d.json", `{} {}`)
	_, err := loadConfigs(dir)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"b.json: invalid JSON", "c.json: no logs.logs_collected.files.collect_list", "d.json: invalid JSON"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLoadConfigsEmpty(t *testing.T) {
	if _, err := loadConfigs(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.json") {
		t.Errorf("err = %v", err)
	}
	if _, err := loadConfigs(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestProxySection(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "common-config.toml")
	if got, err := proxySection(p); got != nil || err != nil {
		t.Errorf("missing file: %v, %v", got, err)
	}
	write(t, dir, "common-config.toml", `# comment
[credentials]
   shared_credential_profile = "x"
[proxy]
   http_proxy = "http://user:secret@proxy.example:3128"
   no_proxy = "169.254.169.254"
`)
	got, err := proxySection(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`http_proxy = "http://user:REDACTED@proxy.example:3128"`, `no_proxy = "169.254.169.254"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "firstrun.json", good)
	var out strings.Builder
	if !report(&out, dir, filepath.Join(dir, "none.toml")) {
		t.Errorf("valid configuration rejected:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "collect /var/log/ecs/ecs-agent.log") {
		t.Errorf("output:\n%s", out.String())
	}
	write(t, dir, "bad.json", "[")
	out.Reset()
	if report(&out, dir, filepath.Join(dir, "none.toml")) || !strings.Contains(out.String(), "E! invalid configuration") {
		t.Errorf("invalid configuration accepted:\n%s", out.String())
	}
}
