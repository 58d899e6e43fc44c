package emf_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/emf"
	"github.com/firstrun/firstrun/internal/emf/emftest"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
)

var boot = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// phases returns the five phases: those before failed ok, failed failed, the rest
// skipped; "" fails none. Each phase takes (index+1) seconds and a few microseconds.
func phases(failed string, skipped ...string) []runrecord.Phase {
	var out []runrecord.Phase
	outcome := runrecord.OK
	for i, name := range runrecord.PhaseNames {
		p := runrecord.Phase{Name: name, Outcome: outcome, Duration: time.Duration(i+1)*time.Second + 1234*time.Nanosecond}
		for _, s := range skipped {
			if s == name {
				p.Outcome, p.Duration = runrecord.Skipped, 0
			}
		}
		if outcome != runrecord.OK {
			p.Outcome, p.Duration = runrecord.Skipped, 0
		}
		if name == failed {
			p.Outcome = runrecord.Failed
			outcome = runrecord.Skipped
		}
		out = append(out, p)
	}
	return out
}

// run is a run of the chapter's cluster, started 40 s after boot.
func run(code int, ps []runrecord.Phase, registered time.Duration) runrecord.Run {
	r := runrecord.Run{
		Start: boot.Add(40 * time.Second), End: boot.Add(140 * time.Second),
		Version: "v0.3.0", InstanceID: "i-0123456789abcdef0",
		Cluster: "microtrader", AutoScalingGroup: "microtrader-ApplicationAutoscalingGroup-1X2Y", Stack: "microtrader",
		ExitCode: code, Phases: ps, BootTime: boot,
	}
	if registered > 0 {
		r.Registered = boot.Add(registered)
	}
	return r
}

// cases: success, each failure class and a rerun.
var cases = []struct {
	name string
	run  runrecord.Run
	// join is the BootToRegistered expected, 0 for none.
	join time.Duration
}{
	{"success", run(0, phases(""), 131*time.Second), 131 * time.Second},
	{"invalid input (exit 2)", func() runrecord.Run {
		r := run(2, phases(runrecord.PhaseResolve), 0)
		r.Cluster, r.AutoScalingGroup, r.Stack = "", "", "" // never validated
		return r
	}(), 0},
	{"services (exit 7)", run(7, phases(runrecord.PhaseServices), 0), 0},
	{"health (exit 8)", run(8, phases(runrecord.PhaseHealth), 0), 0},
	{"signal (exit 10)", run(10, phases(""), 131*time.Second), 131 * time.Second},
	{"rerun", func() runrecord.Run {
		r := run(0, phases(""), 3*time.Hour)
		r.Start, r.End, r.Rerun = boot.Add(3*time.Hour), boot.Add(3*time.Hour+time.Second), true
		return r
	}(), 0},
	{"image build (--skip services,health)", run(0, phases("", runrecord.PhaseServices, runrecord.PhaseHealth), 0), 0},
}

// decode returns the record's root members, numbers as float64.
func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("record %s: %v", line, err)
	}
	return m
}

// directives returns the record's metric directives.
func directives(t *testing.T, line []byte) []struct {
	Namespace  string
	Dimensions [][]string
	Metrics    []emf.Metric
} {
	t.Helper()
	var rec struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []emf.Metric
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.AWS.CloudWatchMetrics
}

func TestRecord(t *testing.T) {
	var all bytes.Buffer
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := emf.Record(tc.run)
			all.WriteString("-- " + tc.name + " --\n")
			all.Write(line)
			if err := emftest.Check(line); err != nil {
				t.Fatalf("invalid record: %v\n%s", err, line)
			}
			if !bytes.Equal(line, emf.Record(tc.run)) {
				t.Error("two renderings of the same run differ")
			}
			m := decode(t, line)
			ok := tc.run.ExitCode == 0
			want := map[string]any{
				"ExitCode": float64(tc.run.ExitCode), "Success": b2f(ok), "Failure": b2f(!ok),
				"InstanceId": tc.run.InstanceID, "Version": "v0.3.0", "Rerun": tc.run.Rerun,
				"Cluster": or(tc.run.Cluster, "unknown"), "AutoScalingGroup": or(tc.run.AutoScalingGroup, "unknown"),
				"ExitClass": runrecord.ExitClass(tc.run.ExitCode),
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			if got, has := m["BootToRegistered"]; (tc.join > 0) != has || (has && got != float64(tc.join/time.Millisecond)) {
				t.Errorf("BootToRegistered = %v (present %v), want %v", got, has, tc.join)
			}
			aws := m["_aws"].(map[string]any)
			if ts := int64(aws["Timestamp"].(float64)); ts != tc.run.End.UnixMilli() {
				t.Errorf("Timestamp = %d, want the run's end %d", ts, tc.run.End.UnixMilli())
			}
			// A duration metric for each phase run (ok or failed), none for a skipped one.
			ds := directives(t, line)
			declared := map[string]string{}
			for _, m := range ds[0].Metrics {
				declared[m.Name] = m.Unit
			}
			for _, p := range tc.run.Phases {
				name := emf.PhaseMetric(p.Name)
				if p.Outcome == runrecord.Skipped {
					if _, has := m[name]; has {
						t.Errorf("skipped phase %s has metric %s", p.Name, name)
					}
					continue
				}
				if declared[name] != "Milliseconds" || m[name] != float64(p.Duration.Microseconds())/1000 {
					t.Errorf("%s = %v (%s), want %v ms", name, m[name], declared[name], p.Duration)
				}
			}
			// The fleet's dimensions; failures also by exit class; never the instance.
			if len(ds) != 1+int(b2f(!ok)) {
				t.Fatalf("%d directives", len(ds))
			}
			for _, d := range ds {
				if d.Namespace != "firstrun" {
					t.Errorf("namespace %q", d.Namespace)
				}
				for _, set := range d.Dimensions {
					for _, k := range set {
						if k == "InstanceId" {
							t.Error("the instance id is a dimension")
						}
					}
				}
			}
			if !ok && (len(ds[1].Metrics) != 1 || ds[1].Metrics[0].Name != "Failure" || strings.Join(ds[1].Dimensions[0], ",") != "Cluster,ExitClass") {
				t.Errorf("failure directive %+v", ds[1])
			}
		})
	}
	testenv.Golden(t, "records", all.Bytes())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestEscaping: whatever the strings hold, the record stays one line of valid JSON,
// and dimension values stay valid (CloudWatch would refuse the whole record).
func TestEscaping(t *testing.T) {
	r := run(0, phases(""), time.Minute)
	r.InstanceID = "i-\"quoted\"\n</script>\u2028\xff"
	r.Cluster = "clus\"ter\nwith\tcontrol\x00and é"
	r.AutoScalingGroup = strings.Repeat("a", 2000)
	r.Stack = "   "
	line := emf.Record(r)
	if err := emftest.Check(line); err != nil {
		t.Fatalf("%v\n%s", err, line)
	}
	m := decode(t, line)
	if m["InstanceId"] != "i-\"quoted\"\n</script>\u2028\ufffd" {
		t.Errorf("InstanceId = %q", m["InstanceId"])
	}
	if m["Cluster"] != "clus\"ter?with?control?and ??" && m["Cluster"] != "clus\"ter?with?control?and ?" {
		t.Errorf("Cluster = %q", m["Cluster"])
	}
	if len(m["AutoScalingGroup"].(string)) != 1024 {
		t.Errorf("AutoScalingGroup has %d characters", len(m["AutoScalingGroup"].(string)))
	}
}

// TestCheckerRejects proves emftest.Check can fail: each case breaks one rule of the
// specification or of the agent's detection.
func TestCheckerRejects(t *testing.T) {
	good := string(emf.Record(run(8, phases(runrecord.PhaseHealth), 0)))
	tests := []struct{ name, from, to, blame string }{
		{"dimension not in the root", `"Cluster":"microtrader",`, ``, "dimension Cluster"},
		{"dimension not a string", `"Cluster":"microtrader"`, `"Cluster":7`, "dimension Cluster"},
		{"dimension empty", `"Cluster":"microtrader"`, `"Cluster":""`, "dimension Cluster"},
		{"metric not a number", `"Failure":1`, `"Failure":"1"`, "metric Failure"},
		{"metric missing", `"Success":0,`, ``, "metric Success"},
		{"unit not in the spec", `"Unit":"Count"`, `"Unit":"count"`, "schema"},
		{"unknown member in a directive", `"Namespace":"firstrun"`, `"Namespace":"firstrun","Extra":1`, "schema"},
		{"no timestamp", `"Timestamp":`, `"Time":`, "schema"},
		{"two lines", `,"Failure":1`, `,` + "\n" + `"Failure":1`, "more than one line"},
		{"not an object", `{`, `[{`, "would not see"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.from) {
				t.Fatalf("the record has no %s: %s", tt.from, good)
			}
			err := emftest.Check([]byte(strings.Replace(good, tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.blame) {
				t.Errorf("Check = %v, want an error about %s", err, tt.blame)
			}
		})
	}
	// 31 dimensions in a set, 101 metrics.
	m := decode(t, []byte(good))
	var keys []string
	for i := 0; i < 31; i++ {
		k := "D" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		keys = append(keys, k)
		m[k] = "v"
	}
	var metrics []map[string]string
	for i := 0; i < 101; i++ {
		metrics = append(metrics, map[string]string{"Name": "Failure" + string(rune('A'+i%26)) + string(rune('a'+i/26))})
	}
	m["_aws"].(map[string]any)["CloudWatchMetrics"] = []any{map[string]any{"Namespace": "firstrun", "Dimensions": [][]string{keys}, "Metrics": metrics}}
	data, _ := json.Marshal(m)
	if err := emftest.Check(data); err == nil || !strings.Contains(err.Error(), "maxItems") && !strings.Contains(err.Error(), "maximum") {
		t.Errorf("31 dimensions and 101 metrics: %v", err)
	}
}

// TestMetricsAndDimensions: every metric a record holds is listed by Metrics with its
// unit and dimension sets, so that a dashboard built from the list graphs what exists.
func TestMetricsAndDimensions(t *testing.T) {
	listed := map[string]string{}
	for _, m := range emf.Metrics() {
		listed[m.Name] = m.Unit
	}
	for _, tc := range cases {
		line := emf.Record(tc.run)
		for _, d := range directives(t, line) {
			for _, m := range d.Metrics {
				if listed[m.Name] != m.Unit {
					t.Errorf("%s: metric %s (%s) is not listed by Metrics with that unit", tc.name, m.Name, m.Unit)
				}
				found := false
				for _, set := range emf.DimensionSets(m.Name) {
					for _, s := range d.Dimensions {
						found = found || strings.Join(s, ",") == strings.Join(set, ",")
					}
				}
				if !found {
					t.Errorf("%s: %s's dimensions %v are not among DimensionSets", tc.name, m.Name, d.Dimensions)
				}
			}
		}
	}
	if emf.DimensionSets("NoSuchMetric") != nil {
		t.Error("dimension sets for a metric never emitted")
	}
	if got := emf.PhaseMetric("services"); got != "PhaseServices" {
		t.Errorf("PhaseMetric = %s", got)
	}
}

func TestAppend(t *testing.T) {
	root := hostpath.Root(t.TempDir())
	for _, tc := range cases[:2] {
		if err := emf.Append(root, tc.run); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(root.Join(hostpath.MetricsLog))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records in the file, want 2:\n%s", len(lines), data)
	}
	for _, l := range lines {
		if err := emftest.Check([]byte(l)); err != nil {
			t.Error(err)
		}
	}
	// Under a root where the log directory is a file, Append fails and says so.
	bad := hostpath.Root(filepath.Join(string(root), hostpath.MetricsLog))
	if err := emf.Append(bad, cases[0].run); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Errorf("Append where the log directory is a file: %v", err)
	}
}

func TestBootTime(t *testing.T) {
	root := hostpath.Root(t.TempDir())
	if _, err := emf.BootTime(root); err == nil {
		t.Error("no /proc/stat: no error")
	}
	stat := "cpu  1 2 3 4 5 6 7 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\nintr " + strings.Repeat("0 ", 40000) + "\nctxt 123\nbtime 1795860000\nprocesses 42\n"
	if err := os.MkdirAll(root.Join("/proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Join(hostpath.ProcStat), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := emf.BootTime(root)
	if err != nil || !got.Equal(time.Unix(1795860000, 0)) {
		t.Errorf("BootTime = %v, %v", got, err)
	}
	for _, bad := range []string{"cpu 1 2\n", "btime\n", "btime -5\n", "btime soon\n"} {
		if _, err := emf.ParseBootTime([]byte(bad)); err == nil {
			t.Errorf("ParseBootTime(%q) accepted", bad)
		}
	}
}
