// Package examples_test checks the examples operators start from: the CloudWatch
// dashboard graphs metrics firstrun really emits, and the fleet sweep's summary script
// says which instances fail which check.
package examples_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/emf"
	"github.com/firstrun/firstrun/internal/logsources"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
)

// placeholders are the ${...} a CloudFormation Fn::Sub fills in the dashboard body:
// the stack's parameters (README, "Fleet view") and pseudo parameters.
var placeholders = map[string]bool{"Cluster": true, "AutoScalingGroup": true, "AWS::Region": true, "AWS::StackName": true}

// dimensionValues is what each dimension is given in the dashboard.
var dimensionValues = map[string]string{emf.DimCluster: "${Cluster}", emf.DimAutoScalingGroup: "${AutoScalingGroup}"}

// stat is a CloudWatch statistic: the five basic ones and percentiles (pNN, pNN.NN).
var stat = regexp.MustCompile(`^(SampleCount|Average|Sum|Minimum|Maximum|p(\d{1,2}(\.\d{1,2})?|100))$`)

// search is a SEARCH expression over one schema: SEARCH('{NS,DIM,...} MetricName="M" ...', 'STAT', PERIOD).
var search = regexp.MustCompile(`^SEARCH\('\{([^}]*)\} MetricName="([^"]+)"([^']*)', '([^']+)', (\d+)\)$`)

// graphed records what the dashboard shows: metric name to the statistics graphed,
// and the dimension sets used.
type graphed struct {
	stats map[string][]string
	dims  map[string][]string
	logs  []string
}

// checkDashboard returns every way the dashboard body breaks CloudWatch's dashboard
// structure or graphs something firstrun does not emit.
func checkDashboard(data []byte) (graphed, []error) {
	g := graphed{stats: map[string][]string{}, dims: map[string][]string{}}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, m := range regexp.MustCompile(`\$\{([^}]*)\}`).FindAllSubmatch(data, -1) {
		if !placeholders[string(m[1])] {
			bad("placeholder ${%s} is not one Fn::Sub is given", m[1])
		}
	}
	var body struct {
		Widgets []struct {
			Type                string
			X, Y, Width, Height *int
			Properties          map[string]json.RawMessage
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return g, []error{fmt.Errorf("dashboard body: %w", err)}
	}
	if len(body.Widgets) == 0 {
		bad("no widgets")
	}
	known := map[string]bool{}
	for _, m := range emf.Metrics() {
		known[m.Name] = true
	}
	checkMetric := func(w int, ns, name string, dims []string, st string) {
		if ns != emf.Namespace {
			bad("widget %d: namespace %q, want %q", w, ns, emf.Namespace)
		}
		if !known[name] {
			bad("widget %d: metric %q is not one internal/emf emits", w, name)
		}
		sorted := slices.Sorted(slices.Values(dims))
		found := false
		for _, set := range emf.DimensionSets(name) {
			found = found || slices.Equal(sorted, slices.Sorted(slices.Values(set)))
		}
		if !found {
			bad("widget %d: %s with dimensions %v, which no record gives it", w, name, dims)
		}
		if !stat.MatchString(st) {
			bad("widget %d: %s: statistic %q", w, name, st)
		}
		g.stats[name] = append(g.stats[name], st)
		g.dims[name] = append(g.dims[name], strings.Join(sorted, ","))
	}
	for i, w := range body.Widgets {
		if w.X == nil || w.Y == nil || w.Width == nil || w.Height == nil || *w.X < 0 || *w.Width < 1 || *w.X+*w.Width > 24 || *w.Height < 1 {
			bad("widget %d: position or size outside the 24-column grid", i)
		}
		prop := func(k string, v any) bool { return json.Unmarshal(w.Properties[k], v) == nil && w.Properties[k] != nil }
		switch w.Type {
		case "text":
			var md string
			if !prop("markdown", &md) || md == "" {
				bad("widget %d: text without markdown", i)
			}
		case "log":
			var q, region string
			if !prop("query", &q) || !prop("region", &region) {
				bad("widget %d: log widget without query or region", i)
			}
			g.logs = append(g.logs, q)
		case "metric":
			var region, defStat string
			var metrics []json.RawMessage
			if !prop("region", &region) || !prop("metrics", &metrics) || len(metrics) == 0 {
				bad("widget %d: metric widget without region or metrics", i)
				continue
			}
			prop("stat", &defStat)
			for _, raw := range metrics {
				var entry []json.RawMessage
				if json.Unmarshal(raw, &entry) != nil || len(entry) == 0 {
					bad("widget %d: metrics entry %s is not an array", i, raw)
					continue
				}
				var opts struct {
					Expression, ID, Stat string
				}
				if json.Unmarshal(entry[len(entry)-1], &opts) == nil {
					entry = entry[:len(entry)-1]
				}
				if opts.Expression != "" {
					m := search.FindStringSubmatch(opts.Expression)
					if m == nil || opts.ID == "" || len(entry) != 0 {
						bad("widget %d: expression %q is not a SEARCH of one metric, with an id", i, opts.Expression)
						continue
					}
					schema := strings.Split(m[1], ",")
					checkMetric(i, schema[0], m[2], schema[1:], m[4])
					continue
				}
				var parts []string
				for _, p := range entry {
					var s string
					if json.Unmarshal(p, &s) != nil {
						bad("widget %d: metrics entry %s holds a non-string", i, raw)
					}
					parts = append(parts, s)
				}
				if len(parts) < 2 || len(parts)%2 != 0 {
					bad("widget %d: metrics entry %v is not [namespace, name, key, value, ...]", i, parts)
					continue
				}
				var keys []string
				for k := 2; k < len(parts); k += 2 {
					keys = append(keys, parts[k])
					if dimensionValues[parts[k]] != parts[k+1] {
						bad("widget %d: dimension %s = %q, want %q", i, parts[k], parts[k+1], dimensionValues[parts[k]])
					}
				}
				st := opts.Stat
				if st == "" {
					st = defStat
				}
				checkMetric(i, parts[0], parts[1], keys, st)
			}
		default:
			bad("widget %d: type %q", i, w.Type)
		}
	}
	return g, errs
}

func readDashboard(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDashboard(t *testing.T) {
	g, errs := checkDashboard(readDashboard(t))
	for _, err := range errs {
		t.Error(err)
	}
	// What the issue asks it to graph: join time p50/p90/max per Auto Scaling group,
	// failures by exit code, every phase's duration.
	for _, s := range []string{"p50", "p90", "Maximum"} {
		if !slices.Contains(g.stats[emf.BootToRegistered], s) {
			t.Errorf("join time is not graphed at %s", s)
		}
	}
	if !slices.Contains(g.dims[emf.BootToRegistered], "AutoScalingGroup,Cluster") {
		t.Error("join time is not graphed per Auto Scaling group")
	}
	if !slices.Contains(g.dims[emf.Failure], "Cluster,ExitClass") {
		t.Error("failures are not graphed by exit code")
	}
	for _, p := range runrecord.PhaseNames {
		if len(g.stats[emf.PhaseMetric(p)]) == 0 {
			t.Errorf("phase %s's duration is not graphed", p)
		}
	}
	// The log widget reads the metrics group the agent fills, and the members it shows
	// are in the records.
	group := "/${AWS::StackName}/ec2/${AutoScalingGroup}" + logsources.Firstrun[1].Suffix
	if logsources.Firstrun[1].File != "/var/log/firstrun/metrics.log" {
		t.Fatalf("logsources.Firstrun[1] is %s, not the metrics file", logsources.Firstrun[1].File)
	}
	var rec map[string]any
	if err := json.Unmarshal(emf.Record(runrecord.Run{End: time.Now(), ExitCode: 8}), &rec); err != nil {
		t.Fatal(err)
	}
	for _, q := range g.logs {
		if !strings.HasPrefix(q, "SOURCE '"+group+"' |") {
			t.Errorf("log query %q does not read %s", q, group)
		}
		_, commands, _ := strings.Cut(q, "' |")
		for _, m := range regexp.MustCompile(`\b([A-Z][A-Za-z]+)\b`).FindAllStringSubmatch(commands, -1) {
			if _, ok := rec[m[1]]; !ok {
				t.Errorf("log query names %s, which the records do not hold", m[1])
			}
		}
	}
	if len(g.logs) == 0 {
		t.Error("no widget lists the failed instances")
	}
}

// TestDashboardCheckRejects proves checkDashboard can fail: each case breaks the
// dashboard one way.
func TestDashboardCheckRejects(t *testing.T) {
	good := string(readDashboard(t))
	tests := []struct{ name, from, to, blame string }{
		{"metric emf never emits", `"BootToRegistered", "Cluster"`, `"BootToRegister", "Cluster"`, "not one internal/emf emits"},
		{"namespace", `["firstrun", "Success"`, `["FirstRun", "Success"`, "namespace"},
		{"statistic", `"stat": "p90", "label": "p90"`, `"stat": "P90", "label": "p90"`, "statistic"},
		{"dimension set no record has", `"Failure", "Cluster", "${Cluster}", "AutoScalingGroup", "${AutoScalingGroup}"`, `"Failure", "AutoScalingGroup", "${AutoScalingGroup}"`, "no record gives it"},
		{"search of a dimension set no record has", `{firstrun,Cluster,ExitClass}`, `{firstrun,ExitClass}`, "no record gives it"},
		{"unknown placeholder", `${Cluster}"`, `${ClusterName}"`, "placeholder"},
		{"off the grid", `"x": 12, "y": 2`, `"x": 14, "y": 2`, "grid"},
		{"unknown widget type", `"type": "text"`, `"type": "txt"`, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.from) {
				t.Fatalf("dashboard.json has no %s", tt.from)
			}
			_, errs := checkDashboard([]byte(strings.Replace(good, tt.from, tt.to, 1)))
			if err := errors.Join(errs...); err == nil || !strings.Contains(err.Error(), tt.blame) {
				t.Errorf("errors %v, want one about %s", err, tt.blame)
			}
		})
	}
}

// report is --check --output json's format (README, "Checking an instance").
type report struct {
	OK     bool    `json:"ok"`
	Checks []check `json:"checks"`
}

type check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Diff   string `json:"diff,omitempty"`
}

func TestFleetCheckSummary(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "awk"} {
		_, err := exec.LookPath(tool)
		testenv.Need(t, err == nil, tool)
	}
	dir := t.TempDir()
	write := func(rel string, v any) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, ok := v.([]byte)
		if !ok {
			var err error
			if data, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fine := report{OK: true, Checks: []check{{"inputs", "ok", "valid", ""}, {"unit ecs.service", "ok", "active (running), enabled", ""}, {"agent registration", "skip", "", ""}}}
	// SSM's S3 layout: PREFIX/COMMAND_ID/INSTANCE_ID/awsrunShellScript/0.awsrunShellScript/stdout.
	write("s3/cmd-1/i-0aaaaaaaaaaaaaaa1/awsrunShellScript/0.awsrunShellScript/stdout", fine)
	write("s3/cmd-1/i-0bbbbbbbbbbbbbbb2/awsrunShellScript/0.awsrunShellScript/stdout", report{Checks: []check{
		{"inputs", "ok", "valid", ""},
		{"file /etc/ecs/ecs.config", "FAIL", "differs from what firstrun would write (edited by hand?)", "--- a/etc/ecs/ecs.config\n+++ b/etc/ecs/ecs.config\n"},
		{"agent registration", "FAIL", "not registered:\tdial tcp 127.0.0.1:51678: connection refused", ""},
	}})
	// get-command-invocation's output saved as INSTANCE.json.
	write("cli/i-0ccccccccccccccc3.json", report{Checks: []check{{"agent registration", "FAIL", "registered to default: was ECS_CLUSTER picked up?", ""}}})
	write("cli/i-0ddddddddddddddd4.json", []byte("bash: line 1: firstrun: command not found\n"))
	write("cli/i-0eeeeeeeeeeeeeee5.json", fine)

	cmd := exec.Command("bash", "fleet-check-summary.sh", filepath.Join(dir, "s3"), filepath.Join(dir, "cli"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v (want 1: checks fail)\n%s%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	lines := strings.Split(out, "\n")
	if lines[0] != "5 instances: 2 all checks ok, 2 failing, 1 without a report" {
		t.Errorf("summary line %q", lines[0])
	}
	// One row a failing check, naming the instance, the check and its detail (tabs and
	// newlines flattened), and none for the healthy instances.
	row := func(id, name, detail string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + ` +` + regexp.QuoteMeta(name) + ` +` + regexp.QuoteMeta(detail) + `$`)
	}
	for _, r := range []*regexp.Regexp{
		row("i-0bbbbbbbbbbbbbbb2", "file /etc/ecs/ecs.config", "differs from what firstrun would write (edited by hand?)"),
		row("i-0bbbbbbbbbbbbbbb2", "agent registration", "not registered: dial tcp 127.0.0.1:51678: connection refused"),
		row("i-0ccccccccccccccc3", "agent registration", "registered to default: was ECS_CLUSTER picked up?"),
		row("i-0ddddddddddddddd4", "(no report)", "not the output of firstrun --check --output json (did the command run?)"),
	} {
		if !r.MatchString(out) {
			t.Errorf("no row matching %s in:\n%s", r, out)
		}
	}
	for _, healthy := range []string{"i-0aaaaaaaaaaaaaaa1", "i-0eeeeeeeeeeeeeee5"} {
		if strings.Contains(out, healthy) {
			t.Errorf("healthy %s is listed:\n%s", healthy, out)
		}
	}
	// Which checks fail, with how many instances each, most first.
	_, counts, _ := strings.Cut(out, "failing checks (instances):\n")
	if !strings.HasPrefix(counts, "  2 agent registration\n") || !strings.Contains(counts, "  1 file /etc/ecs/ecs.config\n") {
		t.Errorf("counts:\n%s", counts)
	}

	// Every report holds: exit 0, no table. No report at all: exit 1.
	cmd = exec.Command("bash", "fleet-check-summary.sh", filepath.Join(dir, "cli", "i-0eeeeeeeeeeeeeee5.json"))
	if out, err := cmd.Output(); err != nil || string(out) != "1 instances: 1 all checks ok, 0 failing, 0 without a report\n" {
		t.Errorf("all ok: %q, %v", out, err)
	}
	empty := t.TempDir()
	if err := exec.Command("bash", "fleet-check-summary.sh", empty).Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("no report: %v, want exit 1", err)
	}
	if err := exec.Command("bash", "fleet-check-summary.sh").Run(); !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("no argument: %v, want exit 2", err)
	}
}

// TestFleetSweepOnRealReports runs the real firstrun --check --output json as SSM Run
// Command does, with no terminal (a new session, stdin /dev/null), on two scratch
// roots: one where firstrun ran (every check holds, exit 0) and an empty one (checks
// fail, exit 9); the summary script reads those reports and names the failing
// instance and its checks.
func TestFleetSweepOnRealReports(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "awk"} {
		_, err := exec.LookPath(tool)
		testenv.Need(t, err == nil, tool)
	}
	bin := filepath.Join(t.TempDir(), "firstrun")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/firstrun").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := []string{"PATH=/usr/bin:/bin", "FIRSTRUN_IMDS=off", "ECS_CLUSTER=prod", "FIRSTRUN_LOG_AGENT=none"}
	good, empty := t.TempDir(), t.TempDir()
	run := exec.Command(bin, "--root", good)
	run.Env = env
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("firstrun: %v\n%s", err, out)
	}
	reports := t.TempDir()
	var failed []check // the failing instance's failed checks, as its report says
	for _, tc := range []struct {
		id, root string
		code     int
	}{{"i-0aaaaaaaaaaaaaaa1", good, 0}, {"i-0bbbbbbbbbbbbbbb2", empty, 9}} {
		check := exec.Command(bin, "--root", tc.root, "--check", "--output", "json")
		check.Env = env
		check.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
		var stdout, stderr bytes.Buffer
		check.Stdout, check.Stderr = &stdout, &stderr
		err := check.Run()
		if code := check.ProcessState.ExitCode(); code != tc.code {
			t.Fatalf("%s: --check exit %d (%v), want %d\n%s%s", tc.id, code, err, tc.code, stdout.String(), stderr.String())
		}
		var r report
		dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil || r.OK != (tc.code == 0) || len(r.Checks) == 0 {
			t.Fatalf("%s: report %+v, %v\n%s", tc.id, r, err, stdout.String())
		}
		if err := os.WriteFile(filepath.Join(reports, tc.id+".json"), stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Checks {
			if c.Status == "FAIL" {
				failed = append(failed, c)
			}
		}
	}
	if len(failed) == 0 {
		t.Fatal("the empty root's report has no failed check")
	}
	out, err := exec.Command("bash", "fleet-check-summary.sh", reports).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("summary exit: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "2 instances: 1 all checks ok, 1 failing, 0 without a report\n") {
		t.Errorf("summary:\n%s", out)
	}
	for _, c := range failed {
		row := regexp.MustCompile(`(?m)^i-0bbbbbbbbbbbbbbb2 +` + regexp.QuoteMeta(c.Name) + ` +` + regexp.QuoteMeta(strings.NewReplacer("\t", " ", "\n", " ").Replace(c.Detail)) + `$`)
		if !row.Match(out) {
			t.Errorf("no row for failed check %q (%s):\n%s", c.Name, c.Detail, out)
		}
	}
	if strings.Contains(string(out), "i-0aaaaaaaaaaaaaaa1") {
		t.Errorf("the healthy instance is listed:\n%s", out)
	}
}
