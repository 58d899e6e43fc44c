package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/emf/emftest"
	"github.com/firstrun/firstrun/internal/testenv"
	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

// Paths of the fleet view in the sandbox.
const (
	firstrunLog  = "/var/log/firstrun/firstrun.log"
	metricsLog   = "/var/log/firstrun/metrics.log"
	cwFragment   = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json"
	cwVersion    = "/opt/aws/amazon-cloudwatch-agent/bin/CWAGENT_VERSION"
	cwAgentUnit  = "amazon-cloudwatch-agent.service"
	cwAgentSink  = "/var/lib/fakecwagent/events.jsonl" // test/e2e/fakecwagent's
	groupPrefix  = "/e2e/ec2/e2e-asg"                  // baseEnv's STACK_NAME and AUTOSCALING_GROUP
	journalUnits = "docker.service,ecs.service,firstrun.service"
)

// sinkEvent is one event the CloudWatch agent stand-in would have put to CloudWatch
// Logs (test/e2e/fakecwagent, publish.go).
type sinkEvent struct {
	LogGroup  string `json:"log_group"`
	LogStream string `json:"log_stream"`
	Source    string `json:"source"`
	EMF       bool   `json:"emf"`
	Message   string `json:"message"`
}

// sink reads the stand-in's events.
func (b *box) sink() []sinkEvent {
	b.t.Helper()
	data, err := b.s.ReadFile(b.ctx(10*time.Second), cwAgentSink)
	if err != nil {
		return nil
	}
	var out []sinkEvent
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e sinkEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			b.t.Fatalf("the stand-in's sink holds %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// inGroup returns the events put to group.
func inGroup(es []sinkEvent, group string) []sinkEvent {
	var out []sinkEvent
	for _, e := range es {
		if e.LogGroup == group {
			out = append(out, e)
		}
	}
	return out
}

// waitSink waits, bounded, until done holds for the sink's events, and returns them.
func (b *box) waitSink(what string, done func([]sinkEvent) bool) []sinkEvent {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		es := b.sink()
		if done(es) {
			return es
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the CloudWatch agent stand-in never published %s in 30 s; it has %d events; its journal:\n%s",
				what, len(es), b.sh("journalctl", "-u", cwAgentUnit, "--no-pager", "-o", "cat", "-n", "60"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lines returns a file's non-empty lines in the sandbox.
func (b *box) lines(path string) []string {
	b.t.Helper()
	data, err := b.s.ReadFile(b.ctx(10*time.Second), path)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// fragmentJournald returns the units of the CloudWatch agent fragment's journald collect_list
// by log group, nil when it has no journald section.
func (b *box) fragmentJournald() map[string]string {
	b.t.Helper()
	var frag struct {
		Logs struct {
			LogsCollected struct {
				Files *struct {
					CollectList []struct {
						FilePath string `json:"file_path"`
					} `json:"collect_list"`
				} `json:"files"`
				Journald *struct {
					CollectList []struct {
						Units         []string `json:"units"`
						LogGroupName  string   `json:"log_group_name"`
						LogStreamName string   `json:"log_stream_name"`
					} `json:"collect_list"`
				} `json:"journald"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	data := b.sh("cat", cwFragment)
	if err := json.Unmarshal([]byte(data), &frag); err != nil {
		b.t.Fatalf("%s: %v\n%s", cwFragment, err, data)
	}
	if frag.Logs.LogsCollected.Files == nil {
		b.t.Errorf("%s ships no files:\n%s", cwFragment, data)
	}
	if frag.Logs.LogsCollected.Journald == nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range frag.Logs.LogsCollected.Journald.CollectList {
		out[e.LogGroupName] = strings.Join(e.Units, ",") + " " + e.LogStreamName
	}
	return out
}

// cwAgentStarts counts the CloudWatch agent stand-in's starts so far.
func (b *box) cwAgentStarts() int {
	b.t.Helper()
	return strings.Count(b.sh("journalctl", "-u", cwAgentUnit, "--no-pager", "-o", "cat"), "starting fakecwagent")
}

// cwAgentRunAfter waits, bounded, for a start of the CloudWatch agent stand-in after
// the first n to have an outcome (cwAgentRun), and returns what it logged.
func (b *box) cwAgentRunAfter(n int) string {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.cwAgentStarts() <= n {
		if time.Now().After(deadline) {
			b.t.Fatalf("the CloudWatch agent stand-in did not start again in 30 s:\n%s", b.sh("journalctl", "-u", cwAgentUnit, "--no-pager", "-o", "cat", "-n", "40"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return b.cwAgentRun()
}

// TestFleetView: each run leaves its log and its one EMF record, 0600, and the
// CloudWatch agent (the stand-in, doing what the real one does with firstrun's
// fragment) ships them: the log lines to the firstrun log group, the records to the
// metrics group marked EMF, each stream the instance id the agent got from IMDS; the
// journal of the units firstrun names goes to their own groups. The first run is the
// boot's join (BootToRegistered); the second is a rerun, with no join time.
func TestFleetView(t *testing.T) {
	b := boot(t)
	// The sandbox's IMDS is at 127.0.0.1; the agent finds it as the SDK does.
	startIMDS(t, b)
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/etc/systemd/system/"+cwAgentUnit+".d/imds.conf",
		[]byte("[Service]\nEnvironment=AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsEndpoint+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sh("systemctl", "daemon-reload")
	b.envFile(testenv.WithEnv(baseEnv, "FIRSTRUN_IMDS=on")...)
	imds := []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imdsEndpoint}

	for i := 1; i <= 2; i++ {
		if r := b.firstrunEnv(imds); r.code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	if got := b.sh("stat", "-c", "%n %a", firstrunLog, metricsLog); got != firstrunLog+" 600\n"+metricsLog+" 600" {
		t.Errorf("modes:\n%s\nwant 600 each", got)
	}

	// One record a run, each valid EMF; the first run joined, the second is a rerun.
	records := b.lines(metricsLog)
	if len(records) != 2 {
		t.Fatalf("%s holds %d records after 2 runs:\n%s", metricsLog, len(records), strings.Join(records, "\n"))
	}
	for i, rec := range records {
		if err := emftest.Check([]byte(rec)); err != nil {
			t.Errorf("record %d is not valid EMF: %v\n%s", i+1, err, rec)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(rec), &m); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		_, joined := m["BootToRegistered"]
		if rerun := i == 1; m["Rerun"] != rerun || joined == rerun {
			t.Errorf("record %d: Rerun %v, BootToRegistered present %v; want Rerun %v and a join time only on the first run\n%s", i+1, m["Rerun"], joined, rerun, rec)
		}
		if m["InstanceId"] != imdsInstanceID || m["ExitCode"] != 0.0 || m["Cluster"] != "e2e-cluster" || m["AutoScalingGroup"] != "e2e-asg" {
			t.Errorf("record %d: InstanceId %v, ExitCode %v, Cluster %v, AutoScalingGroup %v\n%s", i+1, m["InstanceId"], m["ExitCode"], m["Cluster"], m["AutoScalingGroup"], rec)
		}
	}
	logLines := b.lines(firstrunLog)
	runLines := 0
	for _, l := range logLines {
		if strings.Contains(l, `"msg":"run"`) {
			runLines++
		}
	}
	if runLines != 2 {
		t.Errorf("%s has %d run summary lines after 2 runs", firstrunLog, runLines)
	}

	// The fragment names the journal's units, each to its group.
	want := map[string]string{}
	for _, u := range strings.Split(journalUnits, ",") {
		want[groupPrefix+"/journal/"+u] = u + " {instance_id}"
	}
	if got := b.fragmentJournald(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the fragment's journald collect_list by group: %v, want %v", got, want)
	}

	// What the agent put to CloudWatch Logs.
	logGroup, metricsGroup := groupPrefix+"/var/log/firstrun/firstrun", groupPrefix+"/var/log/firstrun/metrics"
	ecsGroup := groupPrefix + "/journal/ecs.service"
	events := b.waitSink("both runs' log and records and ecs.service's journal", func(es []sinkEvent) bool {
		return len(inGroup(es, logGroup)) >= len(logLines) && len(inGroup(es, metricsGroup)) >= len(records) && len(inGroup(es, ecsGroup)) > 0
	})
	var got []string
	for _, e := range inGroup(events, logGroup) {
		got = append(got, e.Message)
		if e.EMF || e.LogStream != imdsInstanceID || e.Source != firstrunLog {
			t.Errorf("firstrun.log event %+v: want no EMF, stream %s, source %s", e, imdsInstanceID, firstrunLog)
		}
	}
	if !slices.Equal(got, logLines) {
		t.Errorf("the firstrun log group got %d events, want firstrun.log's %d lines in order:\ngot  %q\nwant %q", len(got), len(logLines), got, logLines)
	}
	got = nil
	for _, e := range inGroup(events, metricsGroup) {
		got = append(got, e.Message)
		if !e.EMF || e.LogStream != imdsInstanceID || e.Source != metricsLog {
			t.Errorf("metrics.log event %+v: want EMF, stream %s, source %s", e, imdsInstanceID, metricsLog)
		}
	}
	if !slices.Equal(got, records) {
		t.Errorf("the metrics log group got:\n%s\nwant the records:\n%s", strings.Join(got, "\n"), strings.Join(records, "\n"))
	}
	for _, e := range inGroup(events, ecsGroup) {
		var entry map[string]any
		if err := json.Unmarshal([]byte(e.Message), &entry); err != nil {
			t.Errorf("journal event %q: %v", e.Message, err)
			continue
		}
		if entry["_SYSTEMD_UNIT"] != "ecs.service" && entry["UNIT"] != "ecs.service" || e.LogStream != imdsInstanceID || e.EMF {
			t.Errorf("event in %s not of ecs.service, or stream or EMF wrong: %+v", ecsGroup, e)
		}
	}
}

// TestFleetViewOldAgent: with a CloudWatch agent older than 1.300070.0, whose schema
// refuses a journald section, firstrun's fragment has none and its log says why; the
// agent starts and ships firstrun's files. After an upgrade and a rerun the journal is
// shipped; after a downgrade the agent fails on that fragment, as the real one does,
// until firstrun reruns.
func TestFleetViewOldAgent(t *testing.T) {
	b := boot(t)
	setVersion := func(v string) {
		t.Helper()
		if err := b.s.WriteFile(b.ctx(10*time.Second), cwVersion, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const old = "1.300060.0"
	setVersion(old)
	b.envFile(baseEnv...)
	r := b.mustRun()
	why := `"msg":"journald units not shipped: CloudWatch agent ` + old + ` is older than 1.300070.0"`
	if !strings.Contains(r.stderr, why) {
		t.Errorf("firstrun's log does not say %s:\n%s", why, r.stderr)
	}
	if log := b.sh("cat", firstrunLog); !strings.Contains(log, why) {
		t.Errorf("%s does not say %s", firstrunLog, why)
	}
	if got := b.fragmentJournald(); got != nil {
		t.Errorf("the fragment has a journald section for agent %s: %v", old, got)
	}
	if j := b.cwAgentRun(); !strings.Contains(j, "I! running") {
		t.Fatalf("the CloudWatch agent %s did not start:\n%s", old, j)
	}
	b.waitSink("the run's metrics record", func(es []sinkEvent) bool {
		return len(inGroup(es, groupPrefix+"/var/log/firstrun/metrics")) == 1
	})
	c := b.firstrun("--check")
	if c.code != 0 || !strings.Contains(c.stdout, "WARN    journal shipping") {
		t.Errorf("--check with agent %s: exit %d, want 0 with a WARN journal shipping line:\n%s", old, c.code, c.stdout)
	}

	// Upgraded (the package restarts the agent), then firstrun rerun: the journal.
	n := b.cwAgentStarts()
	setVersion(sandbox.CloudWatchAgentVersion)
	b.sh("systemctl", "restart", cwAgentUnit)
	if j := b.cwAgentRunAfter(n); !strings.Contains(j, "I! running") {
		t.Fatalf("the upgraded agent did not start:\n%s", j)
	}
	n = b.cwAgentStarts()
	b.mustRun()
	if got := b.fragmentJournald(); len(got) != 3 {
		t.Errorf("after the upgrade and a rerun the fragment's journald: %v", got)
	}
	if j := b.cwAgentRunAfter(n); !strings.Contains(j, "I! running") {
		t.Fatalf("the agent did not start on the fragment with the journal:\n%s", j)
	}

	// Downgraded: the older agent refuses the journald section and does not run.
	n = b.cwAgentStarts()
	setVersion(old)
	_, _, _, _ = b.s.Exec(b.ctx(30*time.Second), nil, "systemctl", "restart", cwAgentUnit)
	j := b.cwAgentRunAfter(n)
	if !strings.Contains(j, "Under path : /logs/logs_collected | Error : Additional property journald is not allowed") || strings.Contains(j, "I! running") {
		t.Fatalf("the downgraded agent %s on a fragment with journald:\n%s\nwant it to refuse the schema and stop", old, j)
	}
	if c := b.firstrun("--check"); c.code != 9 || !strings.Contains(c.stdout, "FAIL    unit "+cwAgentUnit) {
		t.Errorf("--check with the downgraded agent failing: exit %d, want 9 and the unit failing:\n%s", c.code, c.stdout)
	}
	// A rerun writes the fragment for the older agent and starts it again.
	n = b.cwAgentStarts()
	r = b.mustRun()
	if !strings.Contains(r.stderr, why) || b.fragmentJournald() != nil {
		t.Errorf("the rerun after the downgrade: fragment journald %v\n%s", b.fragmentJournald(), r.stderr)
	}
	if j := b.cwAgentRunAfter(n); !strings.Contains(j, "I! running") {
		t.Errorf("after the rerun the downgraded agent did not start:\n%s", j)
	}
	if got := b.prop(cwAgentUnit, "ActiveState"); got != "active" {
		t.Errorf("%s is %s after the rerun", cwAgentUnit, got)
	}
}
