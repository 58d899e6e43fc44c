package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/health"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/imds"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/services"
	"github.com/firstrun/firstrun/internal/testenv"
)

// testDeps are the production deps for root, changed by mods.
func testDeps(root string, mods ...func(*deps)) deps {
	d := realDeps(root)
	for _, m := range mods {
		m(&d)
	}
	return d
}

// fakeAgent answers /v1/metadata like an agent that registers to cluster after the
// given number of polls (never when after < 0), counting the requests.
type fakeAgent struct {
	cluster string
	after   int
	polls   atomic.Int64
}

func (a *fakeAgent) Get(context.Context) health.Status {
	n := a.polls.Add(1)
	if a.after < 0 || n <= int64(a.after) {
		return health.Status{Err: errors.New("dial tcp 127.0.0.1:51678: connect: connection refused")}
	}
	arn := "arn:aws:ecs:us-east-1:123456789012:container-instance/" + a.cluster + "/0123456789abcdef0123456789abcdef"
	return health.Status{HTTPStatus: 200, Metadata: &health.Metadata{Cluster: a.cluster, ContainerInstanceArn: &arn, Version: "Amazon ECS Agent - v1.0.0 (fake)"}}
}

// liveHost is a job's world on a live host: a temporary root standing for "/", a fake
// systemd with docker, ecs and the CloudWatch agent installed, and a fake agent.
type liveHost struct {
	root  string
	sd    *services.Fake
	agent *fakeAgent
	dials int // connections made to systemd
	noBus error
	now   time.Time
	mods  []func(*deps) // more changes to the deps, such as a fake cloud
}

func newLiveHost(t *testing.T) *liveHost {
	return &liveHost{
		root:  frRoot(t),
		sd:    services.NewFake(services.Docker, services.ECS, services.CloudWatchAgent),
		agent: &fakeAgent{cluster: "microtrader-cluster", after: 3},
		now:   time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC),
	}
}

// run runs firstrun's job on h with env and args, JSON logs parsed.
func (h *liveHost) run(t *testing.T, env []string, args ...string) frResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	j := h.jobTo(t, &stdout, &stderr, env, args...)
	log, err := logging.New(&stderr, j.opts.logFormat)
	if err != nil {
		t.Fatal(err)
	}
	var code int
	if j.opts.check {
		code = j.check(context.Background(), log)
	} else {
		code = j.run(context.Background(), log)
	}
	j.close()
	return parseResult(t, code, stdout.String(), stderr.String())
}

// job returns the job firstrun would run on h, its output discarded.
func (h *liveHost) job(t *testing.T, env []string, args ...string) *job {
	return h.jobTo(t, io.Discard, io.Discard, env, args...)
}

// jobTo returns the job firstrun would run on h with env and args.
func (h *liveHost) jobTo(t *testing.T, stdout, stderr io.Writer, env []string, args ...string) *job {
	t.Helper()
	opts, code, done := parseFlags(append([]string{"--log-format", "json", "--root", h.root}, args...), stdout, stderr)
	if done {
		t.Fatalf("parseFlags ended the run: exit %d", code)
	}
	base := func(d *deps) {
		d.live = true
		d.interval = time.Millisecond
		d.now = func() time.Time { return h.now }
		d.connect = func(context.Context) (services.Systemd, error) {
			h.dials++
			if h.noBus != nil {
				return nil, h.noBus
			}
			return h.sd, nil
		}
		d.newAgent = func(string) health.Getter { return h.agent }
		d.discover = func(context.Context, string) (imds.Info, error) {
			return imds.Info{}, errors.New("no instance metadata in unit tests")
		}
		d.signaler = func(context.Context, inputs.SignalTarget) (cfnsignal.Signaler, error) {
			return nil, errors.New("no CloudFormation in unit tests")
		}
	}
	return &job{opts: opts, env: env, root: hostpath.Root(h.root), stdout: stdout, stderr: stderr,
		deps: testDeps(h.root, append([]func(*deps){base}, h.mods...)...)}
}

// fastEnv is chapterEnv with a short health timeout.
var fastEnv = testenv.WithEnv(chapterEnv, "FIRSTRUN_HEALTH_TIMEOUT=300ms", "FIRSTRUN_SERVICE_TIMEOUT=2s")

// unitCalls returns the fake's calls that change something (no reads).
func unitCalls(sd *services.Fake) []string {
	var out []string
	for _, c := range sd.Calls() {
		if !strings.HasPrefix(c, "state ") && c != "own-unit" {
			out = append(out, c)
		}
	}
	return out
}

func TestFirstRunStartsServicesAndWaitsForRegistration(t *testing.T) {
	h := newLiveHost(t)
	r := h.run(t, fastEnv)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	want := []string{
		"reload",
		"enable docker.service", "start docker.service",
		"enable ecs.service", "start ecs.service",
		"enable amazon-cloudwatch-agent.service", "start amazon-cloudwatch-agent.service",
	}
	if got := unitCalls(h.sd); !slices.Equal(got, want) {
		t.Errorf("systemd calls:\n got %q\nwant %q", got, want)
	}
	if n := h.agent.polls.Load(); n != 4 {
		t.Errorf("agent polled %d times, want 4 (registered at the 4th)", n)
	}
	if !r.logged("registered", "container_instance_arn") {
		t.Errorf("no 'registered' log line with the container instance ARN:\n%s", r.stderr)
	}
	for _, p := range []string{"services", "health"} {
		if !r.phaseDone(p) {
			t.Errorf("phase %s not logged as done", p)
		}
	}
	rec, ok, err := lastrun.Read(hostpath.Root(h.root))
	if err != nil || !ok || rec.Result != lastrun.OK || rec.ExitCode != 0 || !rec.Time.Equal(h.now) {
		t.Errorf("marker = %+v, %v, %v; want ok at %s", rec, ok, err, h.now)
	}
}

func TestRerunRestartsNothingAndTouchesNothing(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv); r.code != exitOK {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	before := testenv.Snapshot(t, h.root)
	h.sd = services.NewFake() // a fresh recording of the same units
	h.sd.Units = map[string]services.UnitState{}
	for _, u := range []string{services.Docker, services.ECS, services.CloudWatchAgent} {
		h.sd.Set(services.UnitState{Name: u, LoadState: "loaded", ActiveState: "active", SubState: "running", UnitFileState: "enabled", ActiveSince: time.Now().Add(time.Minute)})
	}
	h.now = h.now.Add(time.Hour)
	r := h.run(t, fastEnv)
	if r.code != exitOK {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	for _, c := range unitCalls(h.sd) {
		if c == "reload" || strings.HasPrefix(c, "restart ") {
			t.Errorf("rerun with nothing changed made the call %q", c)
		}
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, h.root))
	if !r.logged("rerun: converging", "last_run") {
		t.Errorf("the rerun does not report the last run:\n%s", r.stderr)
	}
}

func TestProxyRemovedRestartsDockerAndECS(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv); r.code != exitOK {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	h.sd = services.NewFake()
	for _, u := range []string{services.Docker, services.ECS, services.CloudWatchAgent} {
		h.sd.Set(services.UnitState{Name: u, LoadState: "loaded", ActiveState: "active", SubState: "running", UnitFileState: "enabled", ActiveSince: time.Now().Add(time.Minute)})
	}
	r := h.run(t, testenv.WithEnv(fastEnv, "-PROXY_URL"))
	if r.code != exitOK {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	want := []string{"reload", "restart docker.service", "restart ecs.service", "restart amazon-cloudwatch-agent.service"}
	if got := unitCalls(h.sd); !slices.Equal(got, want) {
		t.Errorf("systemd calls:\n got %q\nwant %q", got, want)
	}
}

func TestAgentNeverRegisters(t *testing.T) {
	h := newLiveHost(t)
	h.agent.after = -1
	testenv.WriteFile(t, h.root, hostpath.ECSAgentLog, "level=info msg=\"starting\"\nlevel=error msg=\"Unable to register as a container instance\"\n", 0o644)
	r := h.run(t, fastEnv, "--log-format", "console")
	if r.code != exitHealth {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitHealth, r.stderr)
	}
	for _, want := range []string{
		`did not register to cluster "microtrader-cluster" within 300ms`,
		"connection refused",
		"docker.service: active (running), enabled",
		"ecs.service: active (running), enabled",
		"Unable to register as a container instance",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, r.stderr)
		}
	}
	rec, _, _ := lastrun.Read(hostpath.Root(h.root))
	if rec.Result != lastrun.Failed || rec.ExitCode != exitHealth || rec.Phase != "health" {
		t.Errorf("marker = %+v, want failed in health with exit %d", rec, exitHealth)
	}
}

func TestAgentRegisteredToAnotherCluster(t *testing.T) {
	h := newLiveHost(t)
	h.agent = &fakeAgent{cluster: "default", after: 0}
	r := h.run(t, fastEnv)
	if r.code != exitHealth {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitHealth, r.stderr)
	}
	if !strings.Contains(r.stderr, `registered to cluster \"default\", not \"microtrader-cluster\": was ECS_CLUSTER picked up?`) {
		t.Errorf("no clear wrong-cluster message:\n%s", r.stderr)
	}
	if !r.logged("the agent is registered to another cluster", "agent_cluster") {
		t.Errorf("the wrong cluster is not warned about as soon as it is seen:\n%s", r.stderr)
	}
}

func TestNoSystemd(t *testing.T) {
	h := newLiveHost(t)
	h.noBus = fmt.Errorf("%w: /run/systemd/system does not exist", services.ErrNoSystemd)
	r := h.run(t, fastEnv)
	if r.code != exitServices {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitServices, r.stderr)
	}
	if !strings.Contains(r.stderr, "--skip services,health") {
		t.Errorf("the error does not say how to skip the services:\n%s", r.stderr)
	}
	if r.phaseDone("health") {
		t.Error("health ran after services failed")
	}
}

func TestSkipServicesAndHealth(t *testing.T) {
	h := newLiveHost(t)
	r := h.run(t, fastEnv, "--skip", "services,health")
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if h.dials != 0 || h.agent.polls.Load() != 0 {
		t.Errorf("systemd dialled %d times, agent polled %d times; want neither", h.dials, h.agent.polls.Load())
	}
	if !r.logged("phase skipped", "reason") {
		t.Errorf("skipped phases are not logged:\n%s", r.stderr)
	}
	if _, ok := frRead(t, h.root, "/etc/ecs/ecs.config"); !ok {
		t.Error("apply did not run")
	}
}

func TestSignalDuringHealth(t *testing.T) {
	h := newLiveHost(t)
	h.agent.after = -1
	ctx, cancel := context.WithCancel(context.Background())
	h.mods = append(h.mods, func(d *deps) {
		d.newAgent = func(string) health.Getter {
			return health.GetterFunc(func(ctx context.Context) health.Status {
				if h.agent.polls.Add(1) == 5 {
					cancel() // SIGTERM while waiting
				}
				return health.Status{Err: errors.New("connection refused")}
			})
		}
	})
	j := h.job(t, testenv.WithEnv(chapterEnv, "FIRSTRUN_HEALTH_TIMEOUT=1h"))
	done := make(chan int)
	go func() { done <- j.run(ctx, zap.NewNop()) }()
	select {
	case code := <-done:
		if code != exitInterrupted {
			t.Errorf("exit %d, want %d", code, exitInterrupted)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop on the signal while waiting for the agent")
	}
}

func TestCheck(t *testing.T) {
	h := newLiveHost(t)
	h.agent.after = 0
	if r := h.run(t, fastEnv); r.code != exitOK {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
	before := testenv.Snapshot(t, h.root)
	green := h.run(t, fastEnv, "--check")
	if green.code != exitOK {
		t.Fatalf("--check after a good run: exit %d\n%s%s", green.code, green.stdout, green.stderr)
	}
	for _, want := range []string{"STATUS", "file /etc/ecs/ecs.config", "unit docker.service", "unit ecs.service", "agent registration", "last run", "all checks hold"} {
		if !strings.Contains(green.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, green.stdout)
		}
	}
	if strings.Contains(green.stdout, "FAIL") {
		t.Errorf("a check fails after a good run:\n%s", green.stdout)
	}

	// An operator edits ecs.config by hand, and ecs stops.
	p := filepath.Join(h.root, "etc/ecs/ecs.config")
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(data, []byte("ECS_CLUSTER=microtrader-cluster"), []byte("ECS_CLUSTER=oops"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	ecs := h.sd.Units[services.ECS]
	ecs.ActiveState, ecs.SubState = "failed", "failed"
	h.sd.Set(ecs)
	before = testenv.Snapshot(t, h.root)
	polls := h.agent.polls.Load()
	red := h.run(t, fastEnv, "--check")
	if red.code != exitCheck {
		t.Fatalf("--check after a hand edit: exit %d, want %d\n%s", red.code, exitCheck, red.stdout)
	}
	for _, want := range []string{"-ECS_CLUSTER=oops", "+ECS_CLUSTER=microtrader-cluster", "failed (failed), enabled", "some checks FAIL"} {
		if !strings.Contains(red.stdout, want) {
			t.Errorf("red report lacks %q:\n%s", want, red.stdout)
		}
	}
	if n := h.agent.polls.Load() - polls; n != 1 {
		t.Errorf("--check asked the agent %d times, want once", n)
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, h.root))

	js := h.run(t, fastEnv, "--check", "--output", "json")
	var rep checkReport
	if err := json.Unmarshal([]byte(js.stdout), &rep); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, js.stdout)
	}
	failed := map[string]bool{}
	for _, c := range rep.Checks {
		if c.Status == checkFail {
			failed[c.Name] = true
		}
	}
	if rep.OK || !failed["file /etc/ecs/ecs.config"] || !failed["unit ecs.service"] || len(failed) != 2 {
		t.Errorf("JSON report: ok=%v failed=%v; want exactly ecs.config and ecs.service failing", rep.OK, failed)
	}
}

func TestCheckBeforeAnyRun(t *testing.T) {
	h := newLiveHost(t)
	h.agent.after = -1
	r := h.run(t, fastEnv, "--check")
	if r.code != exitCheck {
		t.Fatalf("exit %d, want %d", r.code, exitCheck)
	}
	for _, want := range []string{"missing", "firstrun has not run here", "inactive (dead), disabled", "connection refused"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "p%40ss") || strings.Contains(r.stdout, "p@ss") {
		t.Errorf("the report shows the proxy password:\n%s", r.stdout)
	}
}

func TestUsageOfNewFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--skip", "render"},
		{"--skip", "services,bogus"},
		{"--output", "yaml", "--check"},
		{"--check", "--dry-run"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, chapterEnv, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), "firstrun: ") {
			t.Errorf("%q: no usage message: %q", args, stderr.String())
		}
	}
}

// fromCloudFinal makes h's firstrun run inside cloud-final.service's start job, with
// ecs.service ordered after it, as the real ecs.service is.
func (h *liveHost) fromCloudFinal(state string) {
	h.sd.Own = "cloud-final.service"
	h.sd.Set(services.UnitState{Name: "cloud-final.service", LoadState: "loaded", ActiveState: state, SubState: "start", UnitFileState: "enabled"})
	ecs := h.sd.Units[services.ECS]
	ecs.After = []string{"docker.service", "cloud-final.service"}
	h.sd.Set(ecs)
}

func TestHandOffWhenECSWaitsForOurUnit(t *testing.T) {
	h := newLiveHost(t)
	h.fromCloudFinal("activating")
	r := h.run(t, testenv.WithEnv(fastEnv, "FIRSTRUN_HEALTH_TIMEOUT=1h"))
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := h.agent.polls.Load(); n != 0 {
		t.Errorf("the agent was polled %d times from inside cloud-final: that wait can only time out", n)
	}
	got, ok := h.sd.Transient[healthUnit]
	if !ok {
		t.Fatalf("no %s started; calls %q", healthUnit, h.sd.Calls())
	}
	argv, env := got[0], got[1]
	if want := []string{"--skip", "apply,services", "--log-format", "json"}; !slices.Equal(argv[1:], want) {
		t.Errorf("argv %q, want [firstrun %q]", argv, want)
	}
	for _, want := range []string{"ECS_CLUSTER=microtrader-cluster", "FIRSTRUN_HEALTH_TIMEOUT=1h", "PROXY_URL=bob:p%40ss@proxy.internal:3128"} {
		if !slices.Contains(env, want) {
			t.Errorf("the health unit's environment lacks %q: %q", want, env)
		}
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		t.Errorf("the health unit gets more than the inputs: %q", env)
	}
	if !r.logged("not waiting here for the agent to register: ecs.service starts only after this unit finishes; "+healthUnit+" waits instead", "follow") {
		t.Errorf("the hand-over is not logged:\n%s", r.stderr)
	}
}

func TestNoHandOffWhenOurUnitIsNotInTheWay(t *testing.T) {
	for _, state := range []string{"active", "deactivating"} {
		h := newLiveHost(t)
		h.fromCloudFinal(state)
		if r := h.run(t, fastEnv); r.code != exitOK {
			t.Fatalf("%s: exit %d\n%s", state, r.code, r.stderr)
		}
		if len(h.sd.Transient) != 0 || h.agent.polls.Load() == 0 {
			t.Errorf("%s: handed off %v, polled %d; want a wait in-process", state, h.sd.Transient, h.agent.polls.Load())
		}
	}
}

func TestHealthOnlyRunRecordsItsOutcome(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv, "--skip", "health"); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	h.agent.after = -1
	r := h.run(t, fastEnv, "--skip", "apply,services")
	if r.code != exitHealth {
		t.Fatalf("health-only run: exit %d, want %d", r.code, exitHealth)
	}
	rec, _, _ := lastrun.Read(hostpath.Root(h.root))
	if rec.Result != lastrun.Failed || rec.Phase != "health" {
		t.Errorf("marker %+v, want the health-only run's failure", rec)
	}
}
