package awslogs_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/ini.v1"

	"github.com/firstrun/firstrun/internal/awslogs"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/testenv"
)

// The chapter's names: the stack is microtrader, the group its application ASG.
const (
	stack  = "microtrader"
	asg    = "microtrader-ApplicationAutoscalingGroup-1X2Y"
	region = "us-east-1"
	// groupPrefix is /${STACK_NAME}/ec2/${AUTOSCALING_GROUP} for the names above.
	groupPrefix = "/" + stack + "/ec2/" + asg
)

// chapterConfig returns a validated-looking Config with the chapter's names and the
// given log agent.
func chapterConfig(agent inputs.LogAgent) inputs.Config {
	return inputs.Config{
		Cluster:          "microtrader",
		StackName:        stack,
		AutoscalingGroup: asg,
		Region:           region,
		LogAgent:         agent,
	}
}

// renderOne renders cfg and returns the content of the file at path, failing the test
// when Render does not produce it.
func renderOne(t *testing.T, cfg inputs.Config, path string) []byte {
	t.Helper()
	for _, f := range awslogs.Render(cfg) {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("Render(%s) did not produce %s", cfg.LogAgent, path)
	return nil
}

func TestRender(t *testing.T) {
	tests := []struct {
		agent    inputs.LogAgent
		journald bool
		paths    []string
	}{
		{inputs.LogAgentCloudWatch, false, []string{hostpath.CloudWatchAgentConfig}},
		{inputs.LogAgentCloudWatch, true, []string{hostpath.CloudWatchAgentConfig}},
		{inputs.LogAgentAwslogs, false, []string{hostpath.AwslogsCLIConfig, hostpath.AwslogsConfig}},
		{inputs.LogAgentNone, false, nil},
	}
	for _, tt := range tests {
		name := string(tt.agent)
		if tt.journald {
			name += "-journald"
		}
		t.Run(name, func(t *testing.T) {
			got := awslogs.RenderWith(chapterConfig(tt.agent), awslogs.Options{Journald: tt.journald})
			var paths []string
			for _, f := range got {
				paths = append(paths, f.Path)
				if f.Mode != 0o644 {
					t.Errorf("%s: mode %#o, want 0644", f.Path, f.Mode)
				}
				if f.Shared() {
					t.Errorf("%s: is merged, want a file firstrun owns whole", f.Path)
				}
				if len(f.Content) == 0 || f.Content[len(f.Content)-1] != '\n' {
					t.Errorf("%s: content is empty or does not end with a newline", f.Path)
				}
				if strings.Contains(string(f.Content), "${") {
					t.Errorf("%s: holds an unexpanded ${...}: %s", f.Path, f.Content)
				}
			}
			if strings.Join(paths, " ") != strings.Join(tt.paths, " ") {
				t.Errorf("paths = %q, want %q", paths, tt.paths)
			}
			testenv.Golden(t, name, testenv.Dump(got))
			if !tt.journald && !bytes.Equal(testenv.Dump(awslogs.Render(chapterConfig(tt.agent))), testenv.Dump(got)) {
				t.Error("Render differs from RenderWith without journald")
			}
		})
	}
}

// cwFile is one collect_list entry as the agent reads it.
type cwFile struct {
	FilePath        string `json:"file_path"`
	LogGroupName    string `json:"log_group_name"`
	LogStreamName   string `json:"log_stream_name"`
	TimestampFormat string `json:"timestamp_format"`
	Timezone        string `json:"timezone"`
}

func TestCloudWatchConfigContent(t *testing.T) {
	data := renderOne(t, chapterConfig(inputs.LogAgentCloudWatch), hostpath.CloudWatchAgentConfig)
	var doc struct {
		Logs struct {
			LogsCollected struct {
				Files struct {
					CollectList []cwFile `json:"collect_list"`
				} `json:"files"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decoding the agent's JSON: %v\n%s", err, data)
	}
	// AL2023: the ECS logs of the chapter (no messages, docker or dmesg files: those go
	// to the journal), and cloud-init's.
	want := []cwFile{
		{"/var/log/ecs/ecs-init.log*", groupPrefix + "/var/log/ecs/ecs-init", "{instance_id}", "%Y-%m-%dT%H:%M:%SZ", "UTC"},
		{"/var/log/ecs/ecs-agent.log*", groupPrefix + "/var/log/ecs/ecs-agent", "{instance_id}", "%Y-%m-%dT%H:%M:%SZ", "UTC"},
		{"/var/log/ecs/audit.log*", groupPrefix + "/var/log/ecs/audit.log", "{instance_id}", "%Y-%m-%dT%H:%M:%SZ", "UTC"},
		{"/var/log/cloud-init.log", groupPrefix + "/var/log/cloud-init", "{instance_id}", "", ""},
		{"/var/log/cloud-init-output.log", groupPrefix + "/var/log/cloud-init-output", "{instance_id}", "", ""},
		// firstrun's own log and metrics, each in a group of its own.
		{"/var/log/firstrun/firstrun.log", groupPrefix + "/var/log/firstrun/firstrun", "{instance_id}", "", ""},
		{"/var/log/firstrun/metrics.log", groupPrefix + "/var/log/firstrun/metrics", "{instance_id}", "", ""},
	}
	got := doc.Logs.LogsCollected.Files.CollectList
	if len(got) != len(want) {
		t.Fatalf("collect_list has %d entries, want %d:\n%s", len(got), len(want), data)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("collect_list[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// loadSchema compiles the CloudWatch agent's JSON schema from the shared reference
// directory, skipping (failing under CI) when it is absent.
func loadSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := testenv.NeedShared(t, "reference/cloudwatch-agent-schema.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	if err := c.AddResource("cloudwatch-agent-schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("cloudwatch-agent-schema.json")
	if err != nil {
		t.Fatalf("compiling %s: %v", path, err)
	}
	return sch
}

// parseJSON decodes data the way the schema validator wants it (numbers as json.Number).
func parseJSON(t *testing.T, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing JSON: %v\n%s", err, data)
	}
	return v
}

func TestCloudWatchConfigMatchesSchema(t *testing.T) {
	sch := loadSchema(t)
	for _, journald := range []bool{false, true} {
		data := awslogs.CloudWatchConfig(chapterConfig(inputs.LogAgentCloudWatch), awslogs.Options{Journald: journald})
		if err := sch.Validate(parseJSON(t, data)); err != nil {
			t.Errorf("the rendered agent configuration (journald %v) breaks the schema: %v\n%s", journald, err, data)
		}
	}
}

// TestJournald: with an agent that collects journald units, each of docker.service,
// ecs.service, firstrun.service and firstrun-early.service goes to a group of its own in the same scheme,
// streams named after the instance; with an older agent there is no journald section
// (the agent would refuse the key it does not know).
func TestJournald(t *testing.T) {
	type unit struct {
		Units         []string `json:"units"`
		LogGroupName  string   `json:"log_group_name"`
		LogStreamName string   `json:"log_stream_name"`
	}
	var doc struct {
		Logs struct {
			LogsCollected struct {
				Files    json.RawMessage `json:"files"`
				Journald *struct {
					CollectList []unit `json:"collect_list"`
				} `json:"journald"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	data := awslogs.CloudWatchConfig(chapterConfig(inputs.LogAgentCloudWatch), awslogs.Options{Journald: true})
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || doc.Logs.LogsCollected.Journald == nil {
		t.Fatalf("decoding: %v\n%s", err, data)
	}
	got := doc.Logs.LogsCollected.Journald.CollectList
	want := []unit{
		{[]string{"docker.service"}, groupPrefix + "/journal/docker.service", "{instance_id}"},
		{[]string{"ecs.service"}, groupPrefix + "/journal/ecs.service", "{instance_id}"},
		{[]string{"firstrun.service"}, groupPrefix + "/journal/firstrun.service", "{instance_id}"},
		{[]string{"firstrun-early.service"}, groupPrefix + "/journal/firstrun-early.service", "{instance_id}"},
	}
	if len(got) != len(want) {
		t.Fatalf("journald collect_list = %+v", got)
	}
	for i := range want {
		if strings.Join(got[i].Units, ",") != strings.Join(want[i].Units, ",") || got[i].LogGroupName != want[i].LogGroupName || got[i].LogStreamName != want[i].LogStreamName {
			t.Errorf("journald collect_list[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	old := awslogs.CloudWatchConfig(chapterConfig(inputs.LogAgentCloudWatch), awslogs.Options{})
	if bytes.Contains(old, []byte("journald")) {
		t.Errorf("an older agent's configuration names journald:\n%s", old)
	}
	// awslogs (Amazon Linux 2) reads no journal: the option changes nothing there.
	cfg := chapterConfig(inputs.LogAgentAwslogs)
	if !bytes.Equal(testenv.Dump(awslogs.RenderWith(cfg, awslogs.Options{Journald: true})), testenv.Dump(awslogs.Render(cfg))) {
		t.Error("the journald option changes awslogs' files")
	}
}

// TestSchemaRejectsBrokenConfig proves that the schema test can fail: each case breaks
// one thing in the rendered configuration, which the schema must reject.
func TestSchemaRejectsBrokenConfig(t *testing.T) {
	sch := loadSchema(t)
	data := renderOne(t, chapterConfig(inputs.LogAgentCloudWatch), hostpath.CloudWatchAgentConfig)
	tests := []struct {
		name   string
		mutate func(entry map[string]any)
		// blame is what the validation error must name.
		blame string
	}{
		{"log_stream_name is a number", func(e map[string]any) { e["log_stream_name"] = json.Number("42") }, "/log_stream_name"},
		{"file_path missing", func(e map[string]any) { delete(e, "file_path") }, "'file_path'"},
		{"log_group_name empty", func(e map[string]any) { e["log_group_name"] = "" }, "/log_group_name"},
		{"timezone not UTC or Local", func(e map[string]any) { e["timezone"] = "utc" }, "/timezone"},
		{"unknown key", func(e map[string]any) { e["log_stream"] = "{instance_id}" }, "'log_stream'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := parseJSON(t, data)
			entry := doc.(map[string]any)["logs"].(map[string]any)["logs_collected"].(map[string]any)["files"].(map[string]any)["collect_list"].([]any)[0].(map[string]any)
			tt.mutate(entry)
			err := sch.Validate(doc)
			if err == nil {
				t.Fatalf("the schema accepts a configuration with %s", tt.name)
			}
			if !strings.Contains(err.Error(), tt.blame) {
				t.Errorf("the schema rejects it for another reason than %s: %v", tt.blame, err)
			}
		})
	}
}

func TestAwscliConf(t *testing.T) {
	data := renderOne(t, chapterConfig(inputs.LogAgentAwslogs), hostpath.AwslogsCLIConfig)
	f, err := ini.Load(data)
	if err != nil {
		t.Fatalf("parsing awscli.conf: %v\n%s", err, data)
	}
	want := map[string]map[string]string{
		"plugins": {"cwlogs": "cwlogs"},
		"default": {"region": region},
	}
	checkINI(t, f, []string{"plugins", "default"}, want)
}

func TestAwslogsConf(t *testing.T) {
	data := renderOne(t, chapterConfig(inputs.LogAgentAwslogs), hostpath.AwslogsConfig)
	f, err := ini.Load(data)
	if err != nil {
		t.Fatalf("parsing awslogs.conf: %v\n%s", err, data)
	}
	// The chapter's six sections, with its files (rotation globs on the ECS logs), group
	// names and time stamps.
	ecsTime := map[string]string{"datetime_format": "%Y-%m-%dT%H:%M:%SZ", "time_zone": "UTC"}
	logs := []struct {
		section, file, suffix string
		extra                 map[string]string
	}{
		{"/var/log/dmesg", "/var/log/dmesg", "/var/log/dmesg", nil},
		{"/var/log/messages", "/var/log/messages", "/var/log/messages", map[string]string{"datetime_format": "%b %d %H:%M:%S"}},
		{"/var/log/docker", "/var/log/docker", "/var/log/docker", map[string]string{"datetime_format": "%Y-%m-%dT%H:%M:%S.%f"}},
		{"/var/log/ecs/ecs-init.log", "/var/log/ecs/ecs-init.log*", "/var/log/ecs/ecs-init", ecsTime},
		{"/var/log/ecs/ecs-agent.log", "/var/log/ecs/ecs-agent.log*", "/var/log/ecs/ecs-agent", ecsTime},
		{"/var/log/ecs/audit.log", "/var/log/ecs/audit.log*", "/var/log/ecs/audit.log", ecsTime},
		// firstrun's own, after the chapter's.
		{"/var/log/firstrun/firstrun.log", "/var/log/firstrun/firstrun.log", "/var/log/firstrun/firstrun", nil},
		{"/var/log/firstrun/metrics.log", "/var/log/firstrun/metrics.log", "/var/log/firstrun/metrics", nil},
	}
	order := []string{"general"}
	want := map[string]map[string]string{
		"general": {"state_file": "/var/lib/awslogs/agent-state"},
	}
	for _, l := range logs {
		keys := map[string]string{
			"file":            l.file,
			"log_group_name":  groupPrefix + l.suffix,
			"log_stream_name": "{instance_id}",
		}
		for k, v := range l.extra {
			keys[k] = v
		}
		order = append(order, l.section)
		want[l.section] = keys
	}
	checkINI(t, f, order, want)
}

// checkINI asserts that f has exactly the sections named in order (besides ini's
// implicit, empty DEFAULT section), in that order, each with exactly the keys and
// values of want.
func checkINI(t *testing.T, f *ini.File, order []string, want map[string]map[string]string) {
	t.Helper()
	var sections []string
	for _, s := range f.Sections() {
		if s.Name() == ini.DefaultSection {
			if len(s.Keys()) > 0 {
				t.Errorf("keys outside any section: %q", s.KeyStrings())
			}
			continue
		}
		sections = append(sections, s.Name())
	}
	if strings.Join(sections, "\n") != strings.Join(order, "\n") {
		t.Errorf("sections = %q, want %q", sections, order)
	}
	for _, name := range order {
		s, err := f.GetSection(name)
		if err != nil {
			t.Errorf("section [%s] is missing", name)
			continue
		}
		got := map[string]string{}
		for _, k := range s.Keys() {
			got[k.Name()] = k.Value()
		}
		for k, v := range want[name] {
			if got[k] != v {
				t.Errorf("[%s] %s = %q, want %q", name, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[name][k]; !ok {
				t.Errorf("[%s] has unexpected key %s = %q", name, k, got[k])
			}
		}
	}
}

// seedHeredoc returns the body of the seed script's here-document that writes path
// (sudo tee path << EOF ... EOF).
func seedHeredoc(t *testing.T, script, path string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)tee ` + regexp.QuoteMeta(path) + ` << EOF > /dev/null\n(.*?\n)EOF\n`)
	m := re.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("the seed script has no here-document for %s", path)
	}
	return m[1]
}

// TestAwslogsMatchesChapter compares the awslogs files with the chapter's, which the
// seed script writes with here-documents, its variables expanded with the same names.
// awslogs.conf starts with the chapter's content, byte for byte; firstrun's own
// sections follow it (TestAwslogsConf checks them).
func TestAwslogsMatchesChapter(t *testing.T) {
	path := testenv.NeedShared(t, "reference/seed-firstrun.sh")
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	expand := strings.NewReplacer("${STACK_NAME}", stack, "${AUTOSCALING_GROUP}", asg, "${AWS_DEFAULT_REGION}", region)
	cfg := chapterConfig(inputs.LogAgentAwslogs)
	for _, p := range []string{hostpath.AwslogsCLIConfig, hostpath.AwslogsConfig} {
		want := expand.Replace(seedHeredoc(t, string(script), p))
		got := string(renderOne(t, cfg, p))
		if p == hostpath.AwslogsConfig {
			got, _, _ = strings.Cut(got, "\n[/var/log/firstrun/") // keeps the chapter's last newline
		}
		if got != want {
			t.Errorf("%s differs from the chapter's\n--- got ---\n%s\n--- chapter ---\n%s", p, got, want)
		}
	}
}
