package runner

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/emf"
	"github.com/firstrun/firstrun/internal/emf/emftest"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
)

// instanceID is the instance id cloud-init records in the tests' roots.
const instanceID = "i-0123456789abcdef0"

// bootedHost is a live host that booted 95 s before the runs' clock, with cloud-init's
// record of the instance id.
func bootedHost(t *testing.T) *liveHost {
	h := newLiveHost(t)
	h.boot = h.now.Add(-95 * time.Second)
	testenv.WriteFile(t, h.root, hostpath.CloudInitInstanceID, instanceID+"\n", 0o644)
	return h
}

// metricRecords returns the EMF records in the metrics file under root, each checked
// against the specification's schema and rules.
func metricRecords(t *testing.T, root string) []map[string]any {
	t.Helper()
	data, ok := runnertest.Read(t, root, hostpath.MetricsLog)
	if !ok {
		return nil
	}
	var out []map[string]any
	for _, line := range strings.SplitAfter(data, "\n") {
		if line == "" {
			continue
		}
		if err := emftest.Check([]byte(line)); err != nil {
			t.Errorf("record is not valid EMF: %v\n%s", err, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// lastRecord returns the last EMF record under root, failing when there is none.
func lastRecord(t *testing.T, root string) map[string]any {
	t.Helper()
	recs := metricRecords(t, root)
	if len(recs) == 0 {
		t.Fatalf("no metrics record in %s", hostpath.MetricsLog)
	}
	return recs[len(recs)-1]
}

// phaseOutcomes returns the record's phases as name: outcome.
func phaseOutcomes(rec map[string]any) map[string]string {
	out := map[string]string{}
	ps, _ := rec["Phases"].([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		out[m["name"].(string)] = m["outcome"].(string)
	}
	return out
}

func TestRecordOfAFirstJoin(t *testing.T) {
	h := bootedHost(t)
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	recs := metricRecords(t, h.root)
	if len(recs) != 1 {
		t.Fatalf("%d records after one run, want 1", len(recs))
	}
	rec := recs[0]
	for k, want := range map[string]any{
		emf.DimCluster: "microtrader-cluster", emf.DimAutoScalingGroup: "microtrader-ApplicationAutoscalingGroup-1X2Y",
		emf.DimExitClass: "0-ok", "InstanceId": instanceID, "Stack": "microtrader", "Version": "test", "Rerun": false,
		emf.ExitCode: 0.0, emf.Success: 1.0, emf.Failure: 0.0,
		// The clock stands still in these tests: registration is at h.now, 95 s after boot.
		emf.BootToRegistered: 95000.0,
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v", k, rec[k], want)
		}
	}
	for _, p := range runrecord.PhaseNames {
		if _, ok := rec[emf.PhaseMetric(p)].(float64); !ok {
			t.Errorf("no %s metric: %v", emf.PhaseMetric(p), rec)
		}
		if got := phaseOutcomes(rec)[p]; got != "ok" {
			t.Errorf("phase %s: %q, want ok", p, got)
		}
	}
	if !r.Logged("run", "boot_to_registered") || r.Line("run", "metrics")["exit_class"] != "0-ok" {
		t.Errorf("no run summary with the join time and where the metrics went:\n%s", r.Stderr)
	}
}

// TestRecordOfARerun: a rerun on the same boot records its phases and outcome but no
// join time: the agent was registered when it first asked (or the marker says a run
// saw it join since the boot), so the time since boot is not a join's.
func TestRecordOfARerun(t *testing.T) {
	h := bootedHost(t)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	h.now = h.now.Add(time.Hour)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK { // the agent answers registered at once
		t.Fatalf("rerun: exit %d\n%s", r.Code, r.Stderr)
	}
	h.agent.polls.Store(0) // the agent restarts (say, a proxy change): not registered at first
	h.now = h.now.Add(time.Hour)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("rerun after a restart: exit %d\n%s", r.Code, r.Stderr)
	}
	recs := metricRecords(t, h.root)
	if len(recs) != 3 {
		t.Fatalf("%d records after three runs, want 3", len(recs))
	}
	for i, rec := range recs[1:] {
		if rec["Rerun"] != true || rec[emf.BootToRegistered] != nil || rec[emf.Success] != 1.0 {
			t.Errorf("rerun %d: Rerun %v, BootToRegistered %v, Success %v; want true, none, 1", i+1, rec["Rerun"], rec[emf.BootToRegistered], rec[emf.Success])
		}
	}
	h.boot = h.now.Add(-time.Minute) // a reboot: the marker's join was the boot before
	h.agent.polls.Store(0)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("after a reboot: exit %d\n%s", r.Code, r.Stderr)
	}
	if rec := lastRecord(t, h.root); rec["Rerun"] != false || rec[emf.BootToRegistered] != 60000.0 {
		t.Errorf("first join after a reboot: Rerun %v, BootToRegistered %v; want false, 60000", rec["Rerun"], rec[emf.BootToRegistered])
	}
}

// TestRecordOfEachFailure: every failure class leaves one record with its exit code
// and class, Failure 1, the failure directive and the failed phase.
func TestRecordOfEachFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		setup func(h *liveHost)
		ctx   func() context.Context
		code  int
		phase string // the failed phase, "" for none
	}{
		{name: "invalid input", env: testenv.WithEnv(fastEnv, "-ECS_CLUSTER"), code: runrecord.ExitInput, phase: runrecord.PhaseResolve},
		{name: "unreadable state", env: fastEnv, code: runrecord.ExitFile, phase: runrecord.PhaseResolve, setup: func(h *liveHost) {
			testenv.WriteFile(t, h.root, hostpath.StateFile, "{not json", 0o644)
		}},
		{name: "a directory where a file goes", env: fastEnv, code: runrecord.ExitFile, phase: runrecord.PhaseApply, setup: func(h *liveHost) {
			if err := os.MkdirAll(filepath.Join(h.root, hostpath.DockerProxyDropIn), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "Amazon Linux 1", env: fastEnv, code: runrecord.ExitPlatform, phase: runrecord.PhaseResolve, setup: func(h *liveHost) {
			testenv.WriteFile(t, h.root, "/etc/os-release", "NAME=\"Amazon Linux AMI\"\nID=\"amzn\"\nVERSION_ID=\"2018.03\"\n", 0o644)
		}},
		{name: "stopped by a signal", env: fastEnv, code: runrecord.ExitStopped, phase: runrecord.PhaseResolve, ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
		{name: "no systemd", env: fastEnv, code: runrecord.ExitServices, phase: runrecord.PhaseServices, setup: func(h *liveHost) {
			h.noBus = errors.New("dial unix /run/dbus/system_bus_socket: connect: no such file or directory")
		}},
		{name: "agent never registers", env: fastEnv, code: runrecord.ExitHealth, phase: runrecord.PhaseHealth, setup: func(h *liveHost) {
			h.agent.after = -1
		}},
		{name: "CloudFormation signal fails", env: testenv.WithEnv(fastEnv, "FIRSTRUN_SIGNAL=true", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"), code: runrecord.ExitSignal, setup: func(h *liveHost) {
			(&cloud{signalErr: errors.New("AccessDenied: not authorized to perform cloudformation:SignalResource")}).on(h)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := bootedHost(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			var code int
			if tc.ctx != nil {
				rn := h.runner(tc.env)
				code = rn.Run(tc.ctx(), zap.NewNop())
				rn.Close()
			} else {
				code = h.run(t, tc.env).Code
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			recs := metricRecords(t, h.root)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			rec := recs[0]
			if rec[emf.ExitCode] != float64(tc.code) || rec[emf.DimExitClass] != runrecord.ExitClass(tc.code) || rec[emf.Failure] != 1.0 || rec[emf.Success] != 0.0 {
				t.Errorf("ExitCode %v, ExitClass %v, Failure %v, Success %v; want %d, %s, 1, 0", rec[emf.ExitCode], rec[emf.DimExitClass], rec[emf.Failure], rec[emf.Success], tc.code, runrecord.ExitClass(tc.code))
			}
			directives := rec["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)
			if len(directives) != 2 {
				t.Errorf("%d directives, want the fleet's and the failure's", len(directives))
			}
			outcomes := phaseOutcomes(rec)
			for name, outcome := range outcomes {
				if (outcome == "failed") != (name == tc.phase) {
					t.Errorf("phase %s %s; want only %q failed", name, outcome, tc.phase)
				}
			}
			if tc.phase != "" && outcomes[tc.phase] != "failed" {
				t.Errorf("phases %v: %s not failed", outcomes, tc.phase)
			}
			if rec[emf.BootToRegistered] != nil && tc.code != runrecord.ExitSignal {
				t.Errorf("a failed join has a join time: %v", rec[emf.BootToRegistered])
			}
			if rec["InstanceId"] != instanceID {
				t.Errorf("InstanceId %v, want %s", rec["InstanceId"], instanceID)
			}
		})
	}
}

// TestRecordWithoutValidInputs: a run whose inputs are invalid does not know its
// cluster: its dimensions say so rather than being left out, which would drop the
// record from the fleet's metrics.
func TestRecordWithoutValidInputs(t *testing.T) {
	h := bootedHost(t)
	if r := h.run(t, testenv.WithEnv(fastEnv, "-ECS_CLUSTER")); r.Code != runrecord.ExitInput {
		t.Fatalf("exit %d", r.Code)
	}
	rec := lastRecord(t, h.root)
	if rec[emf.DimCluster] != emf.Unknown || rec[emf.DimAutoScalingGroup] != emf.Unknown {
		t.Errorf("Cluster %v, AutoScalingGroup %v; want %q", rec[emf.DimCluster], rec[emf.DimAutoScalingGroup], emf.Unknown)
	}
}

// TestHandedOverJoinIsTimedByTheHealthUnit: the run in cloud-final hands the wait over
// and records no health duration; the run in firstrun-health.service (health only)
// sees the join and times it from the boot, though the marker already says ok.
func TestHandedOverJoinIsTimedByTheHealthUnit(t *testing.T) {
	h := bootedHost(t)
	h.fromCloudFinal("activating")
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	rec := lastRecord(t, h.root)
	if phaseOutcomes(rec)[runrecord.PhaseHealth] != "skipped" || rec[emf.PhaseMetric(runrecord.PhaseHealth)] != nil || rec[emf.BootToRegistered] != nil {
		t.Errorf("handing-over run: health %q, PhaseHealth %v, BootToRegistered %v; want skipped, none, none",
			phaseOutcomes(rec)[runrecord.PhaseHealth], rec[emf.PhaseMetric(runrecord.PhaseHealth)], rec[emf.BootToRegistered])
	}
	h.now = h.now.Add(20 * time.Second)
	if r := h.run(t, fastEnv, Options{Skip: skip("apply", "services")}); r.Code != runrecord.ExitOK {
		t.Fatalf("health unit: exit %d\n%s", r.Code, r.Stderr)
	}
	rec = lastRecord(t, h.root)
	if rec["Rerun"] != false || rec[emf.BootToRegistered] != 115000.0 {
		t.Errorf("health unit's run: Rerun %v, BootToRegistered %v; want false, 115000", rec["Rerun"], rec[emf.BootToRegistered])
	}
}

// TestOwnLogFile: a run appends its log, secrets redacted as on stderr, to firstrun's
// own log file (0600); a dry run and --check write neither it nor a metrics record.
func TestOwnLogFile(t *testing.T) {
	h := bootedHost(t)
	if r := h.run(t, fastEnv, Options{DryRun: true}); r.Code != runrecord.ExitOK {
		t.Fatalf("dry run: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := h.check(t, fastEnv, "json"); r.Code != runrecord.ExitCheck {
		t.Fatalf("check before any run: exit %d, want %d", r.Code, runrecord.ExitCheck)
	}
	if got := testenv.LogDirFiles(t, h.root); len(got) != 0 {
		t.Fatalf("a dry run and --check wrote %v", got)
	}
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	data, ok := runnertest.Read(t, h.root, hostpath.FirstrunLog)
	if !ok {
		t.Fatalf("no %s", hostpath.FirstrunLog)
	}
	fi, err := os.Stat(filepath.Join(h.root, hostpath.FirstrunLog))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", hostpath.FirstrunLog, fi.Mode(), err)
	}
	file := runnertest.Parse(t, 0, "", data)
	if len(file.Logs) != len(r.Logs) {
		t.Errorf("the file has %d lines, stderr %d: want the same log", len(file.Logs), len(r.Logs))
	}
	for _, msg := range []string{"firstrun starting", "registered", "firstrun done", "run"} {
		if !file.Logged(msg, "msg") {
			t.Errorf("the file lacks %q", msg)
		}
	}
	if !strings.Contains(data, `"value":"bob:***@proxy.internal:3128"`) && !strings.Contains(data, "PROXY_URL") {
		t.Errorf("the file does not log the inputs:\n%s", data)
	}
	for _, secret := range []string{"p%40ss", "p@ss"} {
		if strings.Contains(data, secret) {
			t.Errorf("the file shows the proxy password %q", secret)
		}
	}
}

// TestJournalFollowsTheAgentVersion: the journal of docker, ecs and firstrun is shipped
// only by a CloudWatch agent that collects journald units; with an older one the log
// and --check say why, and an upgrade of the agent ships it on the next run.
func TestJournalFollowsTheAgentVersion(t *testing.T) {
	h := bootedHost(t)
	h.agent.after = 0
	testenv.WriteFile(t, h.root, hostpath.CloudWatchAgentVersion, "1.300060.0b1255\n", 0o644)
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	frag, _ := runnertest.Read(t, h.root, hostpath.CloudWatchAgentConfig)
	if strings.Contains(frag, "journald") {
		t.Errorf("an agent older than 1.300070.0 is given journald units:\n%s", frag)
	}
	if why := "journald units not shipped: CloudWatch agent 1.300060.0b1255 is older than 1.300070.0"; !r.Logged(why, "msg") {
		t.Errorf("the log does not say %q:\n%s", why, r.Stderr)
	}
	if code, st := checkStatus(t, h, "journal shipping"); code != runrecord.ExitOK || st != checkWarn {
		t.Errorf("--check with an old agent: exit %d, journal shipping %q; want 0 with a warning", code, st)
	}

	testenv.WriteFile(t, h.root, hostpath.CloudWatchAgentVersion, "1.300070.0\n", 0o644)
	r = h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK || r.Actions()[hostpath.CloudWatchAgentConfig] != "updated" {
		t.Fatalf("after the agent's upgrade: exit %d, fragment %q\n%s", r.Code, r.Actions()[hostpath.CloudWatchAgentConfig], r.Stderr)
	}
	var cfg struct {
		Logs struct {
			Collected struct {
				Journald struct {
					List []struct {
						Units []string `json:"units"`
					} `json:"collect_list"`
				} `json:"journald"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	frag, _ = runnertest.Read(t, h.root, hostpath.CloudWatchAgentConfig)
	if err := json.Unmarshal([]byte(frag), &cfg); err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, e := range cfg.Logs.Collected.Journald.List {
		units = append(units, e.Units...)
	}
	if got := strings.Join(units, " "); got != "docker.service ecs.service firstrun.service firstrun-early.service" {
		t.Errorf("journald units %q, want docker, ecs and firstrun's two:\n%s", got, frag)
	}
	if !strings.Contains(strings.Join(unitCalls(h.sd), " "), "restart amazon-cloudwatch-agent.service") {
		t.Errorf("the agent was not restarted for its new configuration: %q", unitCalls(h.sd))
	}
	if code, st := checkStatus(t, h, "journal shipping"); code != runrecord.ExitOK || st != checkOK {
		t.Errorf("--check with a new agent: exit %d, journal shipping %q; want 0, ok", code, st)
	}
}

// checkStatus runs --check --output json on h and returns its exit code and the status
// of the check named name ("" when the report has none).
func checkStatus(t *testing.T, h *liveHost, name string) (int, string) {
	t.Helper()
	c := h.check(t, fastEnv, "json")
	var rep checkReport
	if err := json.Unmarshal([]byte(c.Stdout), &rep); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, c.Stdout)
	}
	for _, r := range rep.Checks {
		if r.Name == name {
			return c.Code, r.Status
		}
	}
	return c.Code, ""
}
