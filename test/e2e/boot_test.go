package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

// The boot tests boot the sandbox as an EC2 instance boots (sandbox.Instance): cloud-init
// runs the user data from its NoCloud seed in cloud-final.service, firstrun.service is
// wanted by cloud-init.target as `make ami` enables it, ecs.service is ordered
// After=cloud-final.service as on Amazon Linux, and IMDS and CloudFormation answer at
// their addresses. Nothing is started by hand: the test only watches, from outside.

// bootCluster is the cluster every boot joins; writeFilesUserData its cloud-config form.
const (
	bootCluster        = sandbox.BootCluster
	writeFilesUserData = sandbox.WriteFilesUserData
)

// bootIMDS is the instance metadata of the boot forms' instance.
var bootIMDS = sandbox.BootIMDS

// within returns a context for one step of t.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestBootForms boots an instance with each user data form and waits, from outside,
// for its agent to register; then the boot must have ended cleanly: cloud-final
// succeeded, no unit failed, no job left queued, no ordering cycle broken, and
// CloudFormation signalled exactly as asked.
func TestBootForms(t *testing.T) {
	for _, f := range sandbox.BootForms() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			s := sandbox.BootInstance(t, f.Instance)
			at, err := s.WaitRegistered(within(t, 3*time.Minute), bootCluster)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("boot → registered: %s", at.Sub(s.Started()).Round(time.Millisecond))
			checkBootEnd(t, s, f)
		})
	}
}

// checkBootEnd waits for the boot's jobs to end and checks how they ended.
func checkBootEnd(t *testing.T, s *sandbox.Sandbox, f sandbox.BootForm) sandbox.BootReport {
	t.Helper()
	state, err := s.WaitSystem(within(t, 3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cloud-final.service": "active/success", "ecs.service": "active/success", "docker.service": "active/success"}
	if f.Firstrun {
		// The unit that joins ends active; the other is skipped by its ExecCondition.
		want["firstrun-early.service"], want["firstrun.service"] = "inactive/exec-condition", "active/success"
		if f.Early {
			want["firstrun-early.service"], want["firstrun.service"] = "active/success", "inactive/exec-condition"
		}
	}
	var units []string
	for u := range want {
		units = append(units, u)
	}
	r, err := s.Report(within(t, time.Minute), units...)
	if err != nil {
		t.Fatal(err)
	}
	if state != "running" || len(r.Failed) > 0 || len(r.Jobs) > 0 {
		t.Errorf("the boot ended %s; failed units %q; jobs left %q", state, r.Failed, r.Jobs)
	}
	for u, w := range want {
		if got := r.Results[u]; got != w {
			t.Errorf("%s: %s, want %s", u, got, w)
		}
	}
	cycles, _, _, err := s.Exec(within(t, time.Minute), nil, "journalctl", "-b", "--no-pager", "-o", "cat", "-g", "ordering cycle")
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.TrimSpace(string(cycles))) > 0 && !strings.Contains(string(cycles), "-- No entries --") {
		t.Errorf("systemd broke an ordering cycle:\n%s", cycles)
	}
	var ok int
	for _, l := range r.Signals {
		if strings.Contains(l, `"status":"SUCCESS"`) && strings.Contains(l, `"answer":"OK"`) {
			ok++
		}
	}
	if ok != f.Signals || len(r.Signals) != f.Signals {
		t.Errorf("CloudFormation got %d requests (%d SUCCESS accepted), want %d:\n%s", len(r.Signals), ok, f.Signals, strings.Join(r.Signals, "\n"))
	}
	return r
}

// consoleWait waits, bounded, until the sandbox's console (what EC2's "Get system log"
// shows) holds every one of want, and fails t if it does not.
func consoleWait(t *testing.T, s *sandbox.Sandbox, d time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c := s.Console()
		var missing []string
		for _, w := range want {
			if !strings.Contains(c, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s the console did not show %q; its end:\n%s", d, missing, tailLines(c, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// unitResult reads a unit's ActiveState/Result/ExecMainStatus.
func unitResult(t *testing.T, s *sandbox.Sandbox, unit string) string {
	t.Helper()
	st, err := s.UnitState(within(t, 30*time.Second), unit)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBootWithoutInputsAndIMDSHanging: the instance metadata service accepts
// connections and never answers, and nothing else gives the cluster. firstrun's
// discovery gives up within its 5 s bound, validation names what is missing, and
// firstrun-early.service fails with exit 2, then firstrun.service, which tries again
// after user data, the same way; cloud-final and the boot end, and the reason is on the
// console.
func TestBootWithoutInputsAndIMDSHanging(t *testing.T) {
	t.Parallel()
	s := sandbox.BootInstance(t, sandbox.Instance{IMDSSilent: true})
	state, err := s.WaitSystem(within(t, 3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if state != "degraded" {
		t.Errorf("system %s, want degraded (firstrun.service failed)", state)
	}
	for _, u := range []string{"firstrun-early.service", "firstrun.service"} {
		if got := unitResult(t, s, u); got != "failed/exit-code/2" {
			t.Errorf("%s: %s, want failed/exit-code/2 (invalid input)", u, got)
		}
	}
	if got := unitResult(t, s, "cloud-final.service"); got != "active/success/0" {
		t.Errorf("cloud-final.service: %s", got)
	}
	if got := unitResult(t, s, "ecs.service"); got != "inactive/success/0" {
		t.Errorf("ecs.service: %s, want never started", got)
	}
	consoleWait(t, s, 10*time.Second, "ECS_CLUSTER", "instance metadata")
	ts, err := s.Timestamps(within(t, 30*time.Second), "firstrun.service")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Report(within(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Jobs) > 0 || len(r.Failed) != 2 {
		t.Errorf("jobs left %q; failed units %q, want firstrun-early.service and firstrun.service only", r.Jobs, r.Failed)
	}
	t.Logf("firstrun.service started %s after power-on", ts["firstrun.service"][0].Sub(s.Started()).Round(time.Millisecond))
}

// TestBootAgentNeverRegistersThenKilled: the agent never registers. firstrun-early.service
// fails with exit 8 once FIRSTRUN_HEALTH_TIMEOUT (here 15 s, from the env file that
// cloud-config writes) has passed, and firstrun.service, trying again after user data,
// 15 s later, with the diagnosis on the console. Rerun as README
// says (systemctl restart firstrun) and killed with SIGKILL while it waits, it fails
// again at once, and nothing is left waiting.
func TestBootAgentNeverRegistersThenKilled(t *testing.T) {
	t.Parallel()
	s := sandbox.BootInstance(t, sandbox.Instance{
		UserData: strings.Replace(writeFilesUserData, "      ECS_CLUSTER=", "      FIRSTRUN_HEALTH_TIMEOUT=15s\n      ECS_CLUSTER=", 1),
		IMDS:     bootIMDS(false),
		AgentEnv: []string{"FAKEAGENT_NEVER_REGISTER=true"},
	})
	state, err := s.WaitSystem(within(t, 4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if state != "degraded" {
		t.Errorf("system %s, want degraded (firstrun.service failed)", state)
	}
	for _, u := range []string{"firstrun-early.service", "firstrun.service"} {
		if got := unitResult(t, s, u); got != "failed/exit-code/8" {
			t.Errorf("%s: %s, want failed/exit-code/8 (not registered)", u, got)
		}
	}
	if got := unitResult(t, s, "cloud-final.service"); got != "active/success/0" {
		t.Errorf("cloud-final.service: %s", got)
	}
	consoleWait(t, s, 10*time.Second, `did not register to cluster "`+bootCluster+`" within 15s`, "ecs.service: active (running)")

	// The rerun, killed while it waits for the agent.
	if _, err := s.Run(within(t, 30*time.Second), "systemctl", "start", "--no-block", "firstrun.service"); err != nil {
		t.Fatal(err)
	}
	ctx := within(t, time.Minute)
	for unitResult(t, s, "firstrun.service") != "activating/success/0" {
		if ctx.Err() != nil {
			t.Fatalf("the rerun did not start: %s", unitResult(t, s, "firstrun.service"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := s.Run(within(t, 30*time.Second), "bash", "-c", `for i in $(seq 100); do journalctl -u firstrun.service -b -o cat | grep -q 'waiting for the ECS agent' && exit 0; sleep 0.1; done; exit 1`); err != nil {
		t.Fatalf("the rerun never waited for the agent: %v", err)
	}
	if _, err := s.Run(within(t, 30*time.Second), "systemctl", "kill", "--signal=SIGKILL", "firstrun.service"); err != nil {
		t.Fatal(err)
	}
	state, err = s.WaitSystem(within(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := unitResult(t, s, "firstrun.service"); got != "failed/signal/9" {
		t.Errorf("firstrun.service killed: %s, want failed/signal/9", got)
	}
	consoleWait(t, s, 10*time.Second, "Failed to start firstrun.service")
	r, err := s.Report(within(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Jobs) > 0 {
		t.Errorf("jobs left after the kill: %q (system %s)", r.Jobs, state)
	}
}

// TestBootJoinsWhileUserDataRuns: the cluster is in the instance's tags and the user
// data's script works for an hour at something else. firstrun-early.service joins
// while cloud-final is still running the script: the stock AMI's agent would wait for
// the hour (aws/amazon-ecs-agent issues 4130, 4792, 4824).
func TestBootJoinsWhileUserDataRuns(t *testing.T) {
	t.Parallel()
	s := sandbox.BootInstance(t, sandbox.Instance{UserData: "#!/bin/bash\nsleep 3600 # the user data's own work\n", IMDS: bootIMDS(true)})
	at, err := s.WaitRegistered(within(t, 3*time.Minute), bootCluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot → registered: %s", at.Sub(s.Started()).Round(time.Millisecond))
	if got := unitResult(t, s, "cloud-final.service"); got != "activating/success/0" {
		t.Errorf("cloud-final.service: %s, want still running the user data", got)
	}
	ctx := within(t, time.Minute)
	for unitResult(t, s, "firstrun-early.service") != "active/success/0" {
		if ctx.Err() != nil {
			t.Fatalf("firstrun-early.service: %s, want active/success/0", unitResult(t, s, "firstrun-early.service"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	consoleWait(t, s, 10*time.Second, "joining now, while user data runs")
}

// TestBootUserDataWritesECSSettings: a user-data script that appends a setting to
// ecs.config itself, as on the stock AMI (the cluster comes from the tags). It names
// ecs.config, so firstrun-early.service is skipped and firstrun.service joins after
// it: the agent starts with the script's setting, kept by firstrun's merge.
func TestBootUserDataWritesECSSettings(t *testing.T) {
	t.Parallel()
	s := sandbox.BootInstance(t, sandbox.Instance{
		UserData: "#!/bin/bash\nsleep 2\necho ECS_LOGLEVEL=debug >> /etc/ecs/ecs.config\n",
		IMDS:     bootIMDS(true),
	})
	if _, err := s.WaitRegistered(within(t, 3*time.Minute), bootCluster); err != nil {
		t.Fatal(err)
	}
	checkBootEnd(t, s, sandbox.BootForm{Firstrun: true})
	consoleWait(t, s, 10*time.Second, "firstrun.service joins after user data", "/var/lib/cloud/instance/scripts/part-001")
	pid, err := s.Run(within(t, 30*time.Second), "systemctl", "show", "-P", "MainPID", "ecs.service")
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.ReadFile(within(t, 30*time.Second), "/proc/"+strings.TrimSpace(string(pid))+"/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ECS_LOGLEVEL=debug", "ECS_CLUSTER=" + bootCluster} {
		if !strings.Contains("\x00"+string(env)+"\x00", "\x00"+want+"\x00") {
			t.Errorf("the agent's environment lacks %s: %q", want, env)
		}
	}
}
