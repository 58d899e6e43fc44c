package runner

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
	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/services"
	"github.com/firstrun/firstrun/internal/services/servicestest"
	"github.com/firstrun/firstrun/internal/testenv"
)

// testDeps are the production deps for root, changed by mods.
func testDeps(root string, mods ...func(*Deps)) Deps {
	d := RealDeps(root)
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
	sd    *servicestest.Fake
	agent *fakeAgent
	dials int // connections made to systemd
	noBus error
	now   time.Time
	boot  time.Time     // when the host booted: zero, unknown
	mods  []func(*Deps) // more changes to the deps, such as a fake cloud
}

func newLiveHost(t *testing.T) *liveHost {
	return &liveHost{
		root:  runnertest.Root(t),
		sd:    servicestest.NewFake(services.Docker, services.ECS, services.CloudWatchAgent),
		agent: &fakeAgent{cluster: "microtrader-cluster", after: 3},
		now:   time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC),
	}
}

// run runs firstrun on h with env and opts (JSON logs, root h.root), logs parsed.
func (h *liveHost) run(t *testing.T, env []string, opts ...Options) runnertest.Result {
	t.Helper()
	return h.do(t, env, (*Runner).Run, opts...)
}

// check runs --check on h with env, the report in the format output.
func (h *liveHost) check(t *testing.T, env []string, output string) runnertest.Result {
	t.Helper()
	return h.do(t, env, (*Runner).Check, Options{Output: output})
}

// do calls what (Run or Check) on a runner of h, logs parsed.
func (h *liveHost) do(t *testing.T, env []string, what func(*Runner, context.Context, *zap.Logger) int, opts ...Options) runnertest.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	r := h.runnerTo(&stdout, &stderr, env, opts...)
	log, err := logging.New(&stderr, r.opts.LogFormat)
	if err != nil {
		t.Fatal(err)
	}
	code := what(r, context.Background(), log)
	r.Close()
	return runnertest.Parse(t, code, stdout.String(), stderr.String())
}

// runner returns the runner firstrun would make on h, its output discarded.
func (h *liveHost) runner(env []string, opts ...Options) *Runner {
	return h.runnerTo(io.Discard, io.Discard, env, opts...)
}

// runnerTo returns the runner firstrun would make on h with env and opts: opts[0]
// with the root and, unless given, JSON logs.
func (h *liveHost) runnerTo(stdout, stderr io.Writer, env []string, opts ...Options) *Runner {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Root, o.Version = h.root, "test"
	if o.LogFormat == "" {
		o.LogFormat = logging.JSON
	}
	base := func(d *Deps) {
		d.Live = true
		d.Interval = time.Millisecond
		d.Now = func() time.Time { return h.now }
		d.Connect = func(context.Context) (services.Systemd, error) {
			h.dials++
			if h.noBus != nil {
				return nil, h.noBus
			}
			return h.sd, nil
		}
		d.NewAgent = func(string) health.Getter { return h.agent }
		d.Discover = func(context.Context, string) (imds.Info, error) {
			return imds.Info{}, errors.New("no instance metadata in unit tests")
		}
		d.Signaler = func(context.Context, inputs.SignalTarget) (cfnsignal.Signaler, error) {
			return nil, errors.New("no CloudFormation in unit tests")
		}
		d.BootTime = func() (time.Time, error) {
			if h.boot.IsZero() {
				return time.Time{}, errors.New("no boot time in unit tests")
			}
			return h.boot, nil
		}
	}
	return New(o, env, stdout, stderr, testDeps(h.root, append([]func(*Deps){base}, h.mods...)...))
}

// fastEnv is runnertest.ChapterEnv with a short health timeout.
var fastEnv = testenv.WithEnv(runnertest.ChapterEnv, "FIRSTRUN_HEALTH_TIMEOUT=300ms", "FIRSTRUN_SERVICE_TIMEOUT=2s")

// unitCalls returns the fake's calls that change something (no reads).
func unitCalls(sd *servicestest.Fake) []string {
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
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
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
	if !r.Logged("registered", "container_instance_arn") {
		t.Errorf("no 'registered' log line with the container instance ARN:\n%s", r.Stderr)
	}
	for _, p := range []string{"services", "health"} {
		if !r.PhaseDone(p) {
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
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("first run: exit %d\n%s", r.Code, r.Stderr)
	}
	before := testenv.Snapshot(t, h.root)
	h.sd = servicestest.NewFake() // a fresh recording of the same units
	h.sd.Units = map[string]services.UnitState{}
	for _, u := range []string{services.Docker, services.ECS, services.CloudWatchAgent} {
		h.sd.Set(services.UnitState{Name: u, LoadState: "loaded", ActiveState: "active", SubState: "running", UnitFileState: "enabled", ActiveSince: time.Now().Add(time.Minute)})
	}
	h.now = h.now.Add(time.Hour)
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("rerun: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, c := range unitCalls(h.sd) {
		if c == "reload" || strings.HasPrefix(c, "restart ") {
			t.Errorf("rerun with nothing changed made the call %q", c)
		}
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, h.root))
	if !r.Logged("rerun: converging", "last_run") {
		t.Errorf("the rerun does not report the last run:\n%s", r.Stderr)
	}
}

func TestProxyRemovedRestartsDockerAndECS(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("first run: exit %d\n%s", r.Code, r.Stderr)
	}
	h.sd = servicestest.NewFake()
	for _, u := range []string{services.Docker, services.ECS, services.CloudWatchAgent} {
		h.sd.Set(services.UnitState{Name: u, LoadState: "loaded", ActiveState: "active", SubState: "running", UnitFileState: "enabled", ActiveSince: time.Now().Add(time.Minute)})
	}
	r := h.run(t, testenv.WithEnv(fastEnv, "-PROXY_URL"))
	if r.Code != runrecord.ExitOK {
		t.Fatalf("rerun: exit %d\n%s", r.Code, r.Stderr)
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
	r := h.run(t, fastEnv, Options{LogFormat: logging.Console})
	if r.Code != runrecord.ExitHealth {
		t.Fatalf("exit %d, want %d\n%s", r.Code, runrecord.ExitHealth, r.Stderr)
	}
	for _, want := range []string{
		`did not register to cluster "microtrader-cluster" within 300ms`,
		"connection refused",
		"docker.service: active (running), enabled",
		"ecs.service: active (running), enabled",
		"Unable to register as a container instance",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, r.Stderr)
		}
	}
	rec, _, _ := lastrun.Read(hostpath.Root(h.root))
	if rec.Result != lastrun.Failed || rec.ExitCode != runrecord.ExitHealth || rec.Phase != "health" {
		t.Errorf("marker = %+v, want failed in health with exit %d", rec, runrecord.ExitHealth)
	}
}

func TestAgentRegisteredToAnotherCluster(t *testing.T) {
	h := newLiveHost(t)
	h.agent = &fakeAgent{cluster: "default", after: 0}
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitHealth {
		t.Fatalf("exit %d, want %d\n%s", r.Code, runrecord.ExitHealth, r.Stderr)
	}
	if !strings.Contains(r.Stderr, `registered to cluster \"default\", not \"microtrader-cluster\": was ECS_CLUSTER picked up?`) {
		t.Errorf("no clear wrong-cluster message:\n%s", r.Stderr)
	}
	if !r.Logged("the agent is registered to another cluster", "agent_cluster") {
		t.Errorf("the wrong cluster is not warned about as soon as it is seen:\n%s", r.Stderr)
	}
}

func TestNoSystemd(t *testing.T) {
	h := newLiveHost(t)
	h.noBus = fmt.Errorf("%w: /run/systemd/system does not exist", services.ErrNoSystemd)
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitServices {
		t.Fatalf("exit %d, want %d\n%s", r.Code, runrecord.ExitServices, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "--skip services,health") {
		t.Errorf("the error does not say how to skip the services:\n%s", r.Stderr)
	}
	if r.PhaseDone("health") {
		t.Error("health ran after services failed")
	}
}

func TestSkipServicesAndHealth(t *testing.T) {
	h := newLiveHost(t)
	r := h.run(t, fastEnv, Options{Skip: skip("services", "health")})
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if h.dials != 0 || h.agent.polls.Load() != 0 {
		t.Errorf("systemd dialled %d times, agent polled %d times; want neither", h.dials, h.agent.polls.Load())
	}
	if !r.Logged("phase skipped", "reason") {
		t.Errorf("skipped phases are not logged:\n%s", r.Stderr)
	}
	if _, ok := runnertest.Read(t, h.root, "/etc/ecs/ecs.config"); !ok {
		t.Error("apply did not run")
	}
}

func TestSignalDuringHealth(t *testing.T) {
	h := newLiveHost(t)
	h.agent.after = -1
	ctx, cancel := context.WithCancel(context.Background())
	h.mods = append(h.mods, func(d *Deps) {
		d.NewAgent = func(string) health.Getter {
			return health.GetterFunc(func(ctx context.Context) health.Status {
				if h.agent.polls.Add(1) == 5 {
					cancel() // SIGTERM while waiting
				}
				return health.Status{Err: errors.New("connection refused")}
			})
		}
	})
	rn := h.runner(testenv.WithEnv(runnertest.ChapterEnv, "FIRSTRUN_HEALTH_TIMEOUT=1h"))
	done := make(chan int)
	go func() { done <- rn.Run(ctx, zap.NewNop()) }()
	select {
	case code := <-done:
		if code != runrecord.ExitStopped {
			t.Errorf("exit %d, want %d", code, runrecord.ExitStopped)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop on the signal while waiting for the agent")
	}
}

func TestCheck(t *testing.T) {
	h := newLiveHost(t)
	h.agent.after = 0
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("run: exit %d\n%s", r.Code, r.Stderr)
	}
	before := testenv.Snapshot(t, h.root)
	green := h.check(t, fastEnv, "table")
	if green.Code != runrecord.ExitOK {
		t.Fatalf("--check after a good run: exit %d\n%s%s", green.Code, green.Stdout, green.Stderr)
	}
	for _, want := range []string{"STATUS", "file /etc/ecs/ecs.config", "unit docker.service", "unit ecs.service", "agent registration", "last run", "all checks hold"} {
		if !strings.Contains(green.Stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, green.Stdout)
		}
	}
	if strings.Contains(green.Stdout, "FAIL") {
		t.Errorf("a check fails after a good run:\n%s", green.Stdout)
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
	red := h.check(t, fastEnv, "table")
	if red.Code != runrecord.ExitCheck {
		t.Fatalf("--check after a hand edit: exit %d, want %d\n%s", red.Code, runrecord.ExitCheck, red.Stdout)
	}
	for _, want := range []string{"-ECS_CLUSTER=oops", "+ECS_CLUSTER=microtrader-cluster", "failed (failed), enabled", "some checks FAIL"} {
		if !strings.Contains(red.Stdout, want) {
			t.Errorf("red report lacks %q:\n%s", want, red.Stdout)
		}
	}
	if n := h.agent.polls.Load() - polls; n != 1 {
		t.Errorf("--check asked the agent %d times, want once", n)
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, h.root))

	js := h.check(t, fastEnv, "json")
	var rep checkReport
	if err := json.Unmarshal([]byte(js.Stdout), &rep); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, js.Stdout)
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
	r := h.check(t, fastEnv, "table")
	if r.Code != runrecord.ExitCheck {
		t.Fatalf("exit %d, want %d", r.Code, runrecord.ExitCheck)
	}
	for _, want := range []string{"missing", "firstrun has not run here", "inactive (dead), disabled", "connection refused"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "p%40ss") || strings.Contains(r.Stdout, "p@ss") {
		t.Errorf("the report shows the proxy password:\n%s", r.Stdout)
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
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if n := h.agent.polls.Load(); n != 0 {
		t.Errorf("the agent was polled %d times from inside cloud-final: that wait can only time out", n)
	}
	got, ok := h.sd.Transient[healthUnit]
	if !ok {
		t.Fatalf("no %s started; calls %q", healthUnit, h.sd.Calls())
	}
	argv := got[0]
	if want := []string{"--skip", "apply,services", "--log-format", "json"}; !slices.Equal(argv[1:], want) {
		t.Errorf("argv %q, want [firstrun %q]", argv, want)
	}
	// The inputs reach the unit through a root-only env file, never as its Environment=
	// property, which systemd shows to every local user.
	if !slices.Equal(got[1], []string{hostpath.HealthEnv}) {
		t.Fatalf("the health unit's env file %q, want %s", got[1], hostpath.HealthEnv)
	}
	data, _ := runnertest.Read(t, h.root, hostpath.HealthEnv)
	if fi, err := os.Stat(filepath.Join(h.root, hostpath.HealthEnv)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v; want mode 0600", hostpath.HealthEnv, err)
	}
	env := testenv.SystemdEnvFile(data)
	for k, want := range map[string]string{"ECS_CLUSTER": "microtrader-cluster", "FIRSTRUN_HEALTH_TIMEOUT": "1h", "PROXY_URL": "bob:p%40ss@proxy.internal:3128"} {
		if env[k] != want {
			t.Errorf("the health unit's environment has %s=%q, want %q:\n%s", k, env[k], want, data)
		}
	}
	if _, ok := env["PATH"]; ok {
		t.Errorf("the health unit gets more than the inputs:\n%s", data)
	}
	if !r.Logged("not waiting here for the agent to register: ecs.service starts only after this unit finishes; "+healthUnit+" waits instead", "follow") {
		t.Errorf("the hand-over is not logged:\n%s", r.Stderr)
	}
}

func TestNoHandOffWhenOurUnitIsNotInTheWay(t *testing.T) {
	for _, state := range []string{"active", "deactivating"} {
		h := newLiveHost(t)
		h.fromCloudFinal(state)
		if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
			t.Fatalf("%s: exit %d\n%s", state, r.Code, r.Stderr)
		}
		if len(h.sd.Transient) != 0 || h.agent.polls.Load() == 0 {
			t.Errorf("%s: handed off %v, polled %d; want a wait in-process", state, h.sd.Transient, h.agent.polls.Load())
		}
	}
}

func TestHealthOnlyRunRecordsItsOutcome(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv, Options{Skip: skip("health")}); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	h.agent.after = -1
	r := h.run(t, fastEnv, Options{Skip: skip("apply", "services")})
	if r.Code != runrecord.ExitHealth {
		t.Fatalf("health-only run: exit %d, want %d", r.Code, runrecord.ExitHealth)
	}
	rec, _, _ := lastrun.Read(hostpath.Root(h.root))
	if rec.Result != lastrun.Failed || rec.Phase != "health" {
		t.Errorf("marker %+v, want the health-only run's failure", rec)
	}
}

// skip returns Options.Skip for the phases.
func skip(phases ...string) map[string]bool {
	m := map[string]bool{}
	for _, p := range phases {
		m[p] = true
	}
	return m
}
