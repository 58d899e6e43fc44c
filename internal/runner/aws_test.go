package runner

import (
	"context"
	"debug/elf"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
	"github.com/firstrun/firstrun/internal/health"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/imds"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
	"go.uber.org/zap"
)

// cloud is a fake of the AWS side: what IMDS says, and the signals CloudFormation got.
type cloud struct {
	info      imds.Info
	imdsErr   error
	asked     int
	signals   []cfnsignal.Signal
	targets   []inputs.SignalTarget
	signalErr error
}

// on makes h's runs talk to c instead of AWS.
func (c *cloud) on(h *liveHost) {
	h.mods = append(h.mods, func(d *Deps) {
		d.Discover = func(_ context.Context, tag string) (imds.Info, error) {
			c.asked++
			info := c.info
			if tag != imds.DefaultClusterTag {
				info.Cluster = "" // the fake instance has only the default tag
			}
			return info, c.imdsErr
		}
		d.Signaler = func(_ context.Context, t inputs.SignalTarget) (cfnsignal.Signaler, error) {
			c.targets = append(c.targets, t)
			return cfnsignal.Func(func(_ context.Context, s cfnsignal.Signal) error {
				c.signals = append(c.signals, s)
				return c.signalErr
			}), nil
		}
	})
}

// taggedInstance is an instance launched by CloudFormation in an Auto Scaling group
// with instance metadata tags on.
func taggedInstance() imds.Info {
	return imds.Info{Region: "eu-west-1", InstanceID: "i-0123456789abcdef0", TagsExposed: true, Requests: 7,
		StackName: "microtrader", LogicalID: "ECSAutoScalingGroup", AutoscalingGroup: "microtrader-ECSAutoScalingGroup-1X2Y", Cluster: "tagged-cluster"}
}

// onlyTimeouts are inputs that name nothing: everything else comes from IMDS.
var onlyTimeouts = []string{"FIRSTRUN_HEALTH_TIMEOUT=300ms", "FIRSTRUN_SERVICE_TIMEOUT=2s", "PATH=/usr/bin:/bin"}

func TestDiscoveryFillsWhatIsNotGiven(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance()}
	c.on(h)
	h.agent.cluster = "tagged-cluster"
	r := h.run(t, testenv.WithEnv(onlyTimeouts, "STACK_NAME=given-stack"), Options{Signal: true})
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	cfg, _ := runnertest.Read(t, h.root, "/etc/ecs/ecs.config")
	if !strings.Contains(cfg, "ECS_CLUSTER=tagged-cluster\n") {
		t.Errorf("ECS_CLUSTER not taken from the tag:\n%s", cfg)
	}
	json, _ := runnertest.Read(t, h.root, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json")
	if !strings.Contains(json, "/given-stack/ec2/microtrader-ECSAutoScalingGroup-1X2Y/") {
		t.Errorf("log groups do not use the given stack and the discovered group:\n%s", json)
	}
	sources := map[string]string{}
	for _, l := range r.Logs {
		if l["msg"] == "input" {
			sources[l["name"].(string)] = l["source"].(string)
		}
	}
	for k, want := range map[string]string{"ECS_CLUSTER": "instance metadata", "STACK_NAME": "environment", "AUTOSCALING_GROUP": "instance metadata", "AWS_REGION": "instance metadata", "LOGICAL_RESOURCE_ID": "instance metadata"} {
		if sources[k] != want {
			t.Errorf("%s logged as from %q, want %q", k, sources[k], want)
		}
	}
	want := cfnsignal.Signal{StackName: "given-stack", LogicalResourceID: "ECSAutoScalingGroup", UniqueID: "i-0123456789abcdef0", Status: cfnsignal.Success}
	if len(c.signals) != 1 || c.signals[0] != want {
		t.Errorf("signals %+v, want one %+v", c.signals, want)
	}
	if len(c.targets) != 1 || c.targets[0].Region != "eu-west-1" {
		t.Errorf("signal targets %+v, want the discovered region", c.targets)
	}
}

func TestIMDSUnavailableCarriesOnWithTheEnvironment(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{imdsErr: errors.New("instance metadata service unavailable: connection refused")}
	c.on(h)
	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if !r.Logged("instance metadata unavailable: carrying on with the environment and the env file", "error") {
		t.Errorf("IMDS being down is not logged:\n%s", r.Stderr)
	}

	// With nothing in the environment, validation names what is then missing.
	h2 := newLiveHost(t)
	c.on(h2)
	r = h2.run(t, onlyTimeouts)
	if r.Code != runrecord.ExitInput || !strings.Contains(r.Stderr, "ECS_CLUSTER") {
		t.Errorf("exit %d, want %d naming ECS_CLUSTER\n%s", r.Code, runrecord.ExitInput, r.Stderr)
	}
}

func TestIMDSOff(t *testing.T) {
	for _, env := range [][]string{
		testenv.WithEnv(fastEnv, "FIRSTRUN_IMDS=off"),
		testenv.WithEnv(fastEnv, "AWS_EC2_METADATA_DISABLED=true"),
	} {
		h := newLiveHost(t)
		c := &cloud{info: taggedInstance()}
		c.on(h)
		if r := h.run(t, env); r.Code != runrecord.ExitOK {
			t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
		}
		if c.asked != 0 {
			t.Errorf("%q: IMDS asked %d times", env[len(env)-1], c.asked)
		}
	}
}

func TestSignalFailureOnEveryFailure(t *testing.T) {
	sig := []string{"FIRSTRUN_SIGNAL=true", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"}
	for _, tc := range []struct {
		name  string
		env   []string
		setup func(h *liveHost)
		code  int
	}{
		{"invalid input", testenv.WithEnv(fastEnv, append(sig, "ECS_CLUSTER=bad cluster")...), nil, runrecord.ExitInput},
		{"services", testenv.WithEnv(fastEnv, sig...), func(h *liveHost) { h.noBus = errors.New("no bus") }, runrecord.ExitServices},
		{"health timeout", testenv.WithEnv(fastEnv, sig...), func(h *liveHost) { h.agent.after = -1 }, runrecord.ExitHealth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLiveHost(t)
			c := &cloud{info: taggedInstance()}
			c.on(h)
			if tc.setup != nil {
				tc.setup(h)
			}
			r := h.run(t, tc.env)
			if r.Code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.Code, tc.code, r.Stderr)
			}
			if len(c.signals) != 1 || c.signals[0].Status != cfnsignal.Failure || c.signals[0].Reason == "" {
				t.Errorf("signals %+v, want one FAILURE with a reason", c.signals)
			}
			if !r.Logged("CloudFormation signalled", "reason") {
				t.Errorf("the FAILURE signal and its reason are not logged:\n%s", r.Stderr)
			}
		})
	}
}

func TestFailedSignal(t *testing.T) {
	sig := []string{"FIRSTRUN_SIGNAL=true", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"}
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance(), signalErr: errors.New("AccessDenied: not authorized to perform cloudformation:SignalResource")}
	c.on(h)
	if r := h.run(t, testenv.WithEnv(fastEnv, sig...)); r.Code != runrecord.ExitSignal || !strings.Contains(r.Stderr, "AccessDenied") {
		t.Errorf("a run that succeeded but could not signal: exit %d, want %d\n%s", r.Code, runrecord.ExitSignal, r.Stderr)
	}
	// It never hides the run's own failure.
	h = newLiveHost(t)
	c.on(h)
	h.agent.after = -1
	if r := h.run(t, testenv.WithEnv(fastEnv, sig...)); r.Code != runrecord.ExitHealth {
		t.Errorf("a failed run whose signal failed too: exit %d, want %d", r.Code, runrecord.ExitHealth)
	}
}

// onStandIn makes h's runs signal, with the real client, the CloudFormation stand-in
// holding stacks; it returns the stand-in.
func onStandIn(t *testing.T, h *liveHost, stacks ...cfnsignaltest.Stack) *cfnsignaltest.Server {
	t.Helper()
	return onStandInWith(t, h, cfnsignaltest.Config{Stacks: stacks})
}

// onStandInWith is onStandIn with the stand-in's whole configuration.
func onStandInWith(t *testing.T, h *liveHost, cfg cfnsignaltest.Config) *cfnsignaltest.Server {
	t.Helper()
	cfg.Region = "us-east-1"
	cfn, err := cfnsignaltest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cfn)
	t.Cleanup(srv.Close)
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	h.mods = append(h.mods, func(d *Deps) {
		d.Discover = func(context.Context, string) (imds.Info, error) { return taggedInstance(), nil }
		d.Signaler = func(ctx context.Context, target inputs.SignalTarget) (cfnsignal.Signaler, error) {
			return cfnsignal.New(ctx, cfnsignal.Options{Region: target.Region, Endpoint: srv.URL, Timeout: time.Minute})
		}
	})
	return cfn
}

// An instance launched after the stack's CreationPolicy is over (a scale-out, a
// replacement) has nobody to signal: that is no failure, and one request says so.
func TestSignalNobodyAwaits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stacks []cfnsignaltest.Stack
		says   string
	}{
		{"stack complete", []cfnsignaltest.Stack{cfnsignaltest.Complete("microtrader", "ECSAutoScalingGroup")},
			`no signal awaited: Stack arn:aws:cloudformation:us-east-1:123456789012:stack/microtrader/00000000-0000-4000-8000-000000000001 is in CREATE_COMPLETE state and cannot be signaled`},
		{"stack gone", nil, "no signal awaited: Stack with id microtrader does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLiveHost(t)
			cfn := onStandIn(t, h, tc.stacks...)
			r := h.run(t, fastEnv, Options{Signal: true})
			if r.Code != runrecord.ExitOK || !strings.Contains(r.Stderr, tc.says) || !strings.Contains(r.Stderr, `"level":"info"`) {
				t.Errorf("exit %d, want %d with %q logged at info\n%s", r.Code, runrecord.ExitOK, tc.says, r.Stderr)
			}
			if n := len(cfn.Requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	// A failed run keeps its own exit code.
	h := newLiveHost(t)
	onStandIn(t, h, cfnsignaltest.Complete("microtrader", "ECSAutoScalingGroup"))
	h.agent.after = -1
	if r := h.run(t, fastEnv, Options{Signal: true}); r.Code != runrecord.ExitHealth || !strings.Contains(r.Stderr, "no signal awaited") {
		t.Errorf("a failed run whose FAILURE nobody awaits: exit %d, want %d\n%s", r.Code, runrecord.ExitHealth, r.Stderr)
	}
}

// A wrong logical id and a role without the permission stay failures, saying which.
func TestSignalRefusedSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  cfnsignaltest.Config
		says string
	}{
		{"wrong logical id", cfnsignaltest.Config{Stacks: []cfnsignaltest.Stack{cfnsignaltest.Waiting("microtrader", "OtherGroup", 1)}},
			`resource \"ECSAutoScalingGroup\" is not in stack \"microtrader\": a wrong logical id`},
		{"role without the permission", cfnsignaltest.Config{Deny: []string{"*"},
			Stacks: []cfnsignaltest.Stack{cfnsignaltest.Waiting("microtrader", "ECSAutoScalingGroup", 1)}},
			"the instance role lacks cloudformation:SignalResource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLiveHost(t)
			onStandInWith(t, h, tc.cfg)
			r := h.run(t, fastEnv, Options{Signal: true})
			if r.Code != runrecord.ExitSignal || !strings.Contains(r.Stderr, tc.says) {
				t.Errorf("exit %d, want %d saying %q\n%s", r.Code, runrecord.ExitSignal, tc.says, r.Stderr)
			}
		})
	}
}

// FIRSTRUN_SIGNAL_TIMEOUT's default is the client's: one budget, documented once.
func TestSignalTimeoutDefaultIsTheClients(t *testing.T) {
	raw, _ := inputs.Resolve(nil, "", nil)
	if _, target := inputs.Signal(raw); target.Timeout != cfnsignal.DefaultTimeout {
		t.Errorf("FIRSTRUN_SIGNAL_TIMEOUT defaults to %v, the client to %v", target.Timeout, cfnsignal.DefaultTimeout)
	}
}

// FIRSTRUN_SIGNAL_TIMEOUT is the signal's time budget.
func TestSignalTimeoutReachesTheClient(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance()}
	c.on(h)
	if r := h.run(t, testenv.WithEnv(fastEnv, "FIRSTRUN_SIGNAL_TIMEOUT=90s", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"), Options{Signal: true}); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if len(c.targets) != 1 || c.targets[0].Timeout != 90*time.Second {
		t.Errorf("targets %+v, want one with Timeout 90s", c.targets)
	}
}

func TestSignalNeedsTheInstanceID(t *testing.T) {
	h := newLiveHost(t)
	info := taggedInstance()
	info.InstanceID = ""
	c := &cloud{info: info}
	c.on(h)
	r := h.run(t, testenv.WithEnv(fastEnv, "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"), Options{Signal: true})
	if r.Code != runrecord.ExitInput || !strings.Contains(r.Stderr, "instance id") {
		t.Errorf("exit %d, want %d naming the instance id\n%s", r.Code, runrecord.ExitInput, r.Stderr)
	}
}

func TestNoSignalUnlessAsked(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance()}
	c.on(h)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if len(c.signals) != 0 {
		t.Errorf("signalled %+v without --signal or FIRSTRUN_SIGNAL", c.signals)
	}
}

func TestHandOffCarriesTheSignal(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance()}
	c.on(h)
	h.fromCloudFinal("activating")
	if r := h.run(t, testenv.WithEnv(fastEnv, "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"), Options{Signal: true}); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if len(c.signals) != 0 {
		t.Errorf("the handing-over run signalled %+v before the agent joined", c.signals)
	}
	if argv := h.sd.Transient[healthUnit][0]; !slices.Contains(argv, "--signal") {
		t.Errorf("%s does not signal: argv %q", healthUnit, argv)
	}
}

func TestSIGTERMSignalsFailure(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance()}
	c.on(h)
	ctx, cancel := context.WithCancel(context.Background())
	polls := 0
	h.mods = append(h.mods, func(d *Deps) {
		d.NewAgent = func(string) health.Getter {
			return health.GetterFunc(func(context.Context) health.Status {
				if polls++; polls == 3 {
					cancel() // SIGTERM while waiting for the agent
				}
				return health.Status{Err: errors.New("connection refused")}
			})
		}
	})
	rn := h.runner(testenv.WithEnv(fastEnv, "FIRSTRUN_HEALTH_TIMEOUT=1h", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup"), Options{Signal: true})
	if code := rn.Run(ctx, zap.NewNop()); code != runrecord.ExitStopped {
		t.Fatalf("exit %d, want %d", code, runrecord.ExitStopped)
	}
	if len(c.signals) != 1 || c.signals[0].Status != cfnsignal.Failure || !strings.Contains(c.signals[0].Reason, "stopped by a signal") {
		t.Errorf("signals %+v, want one FAILURE saying the run was stopped", c.signals)
	}
}

func TestMarkerRecordsTheDiscoveredInstanceID(t *testing.T) {
	h := newLiveHost(t)
	c := &cloud{info: taggedInstance()}
	c.on(h)
	testenv.WriteFile(t, h.root, hostpath.CloudInitInstanceID, "iid-datasource-none\n", 0o644)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	rec, ok, err := lastrun.Read(hostpath.Root(h.root))
	if err != nil || !ok || rec.InstanceID != "i-0123456789abcdef0" {
		t.Errorf("marker %+v (%v, %v), want the instance id IMDS gave, which wins over cloud-init's record", rec, ok, err)
	}
}

// TestSignalLinksOnlyWhatItUses: the CloudFormation client links neither the SDK's
// default configuration (shared files, SSO, STS, web identity: cfnsignal.New says
// why) nor the CloudFormation operations it never calls, and reflect's method lookup
// by name, which would keep every exported method, is not linked. The size itself is
// measured by make bench, not asserted here: these cost 6.6 MB of the binary's 17.1.
func TestSignalLinksOnlyWhatItUses(t *testing.T) {
	gobin, err := exec.LookPath("go")
	testenv.Need(t, err == nil, "go")
	dir := t.TempDir()
	build := func(out string) {
		t.Helper()
		args := []string{"build", "-trimpath", "-o", out}
		cmd := exec.Command(gobin, append(args, "./cmd/firstrun")...)
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}

	withSymbols := filepath.Join(dir, "firstrun-symbols")
	build(withSymbols)
	f, err := elf.Open(withSymbols)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	const sdk = "github.com/aws/aws-sdk-go-v2/"
	unwanted := []string{sdk + "config", // config and its INI parser, config/internal/ini
		sdk + "service/sts.", sdk + "service/sso.", sdk + "service/ssooidc.", sdk + "service/signin.",
		sdk + "credentials/ssocreds.", sdk + "credentials/stscreds.", sdk + "credentials/processcreds.",
		// An operation firstrun never calls: linked only when every method of the
		// client is (a *cloudformation.Client reachable from an interface, while
		// reflect's method lookup by name is linked).
		sdk + "service/cloudformation.(*Client).CreateStack",
		// That lookup, which text/template linked for envconfig's usage text
		// (inputs.Usage says why).
		"reflect.Value.MethodByName"}
	found := map[string]string{}
	for _, s := range syms {
		name := strings.TrimPrefix(strings.TrimPrefix(s.Name, "type:"), "*")
		for _, u := range unwanted {
			if strings.HasPrefix(name, u) && found[u] == "" {
				found[u] = s.Name
			}
		}
	}
	for _, u := range unwanted {
		if found[u] != "" {
			t.Errorf("the binary links %s (symbol %s)", strings.TrimSuffix(u, "."), found[u])
		}
	}
}
