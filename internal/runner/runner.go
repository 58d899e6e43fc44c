// Package runner runs firstrun on one host: its phases in order (resolve, render,
// apply, services, health), each returning its result to the next, then the marker,
// the CloudFormation signal, the log summary and the metrics record, all written from
// one runrecord.Run; and --check, which changes nothing and reports what does not hold.
//
// The shape follows Ignition's internal/exec engine (stages run in order by one engine
// that owns their shared state) and nodeadm's daemon loop (each daemon a narrow
// interface): the phases are methods that take what they need and return what they
// made, and the side effects (systemd, the agent, the instance metadata,
// CloudFormation, SSM Parameter Store and Secrets Manager, the file writer, the clock)
// come in through Deps.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/emf"
	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/health"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/imds"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/secrets"
	"github.com/firstrun/firstrun/internal/services"
)

// Options are what the command line asks of a run.
type Options struct {
	// Root is the filesystem root to configure, "/" on an instance.
	Root string
	// EnvFile is the env file given with --env-file, "" for the default.
	EnvFile string
	// DryRun prints what would change and changes nothing.
	DryRun bool
	// LogFormat is the log's format on stderr: logging.Console or logging.JSON.
	LogFormat string
	// Skip holds the phases not to run (Skippable).
	Skip map[string]bool
	// Signal tells CloudFormation how the run ended (--signal).
	Signal bool
	// Output is Check's report format: "table" or "json".
	Output string
	// Version is firstrun's version, for the logs, the marker and the metrics.
	Version string
}

// Skippable are the phases --skip accepts: resolve and render only compute, and every
// later phase needs them.
var Skippable = []string{runrecord.PhaseApply, runrecord.PhaseServices, runrecord.PhaseHealth}

// FileWriter plans and applies file changes: *files.Writer.
type FileWriter interface {
	Plan(want []files.File, remove []string) ([]files.Change, error)
	Apply(changes []files.Change) error
}

// Deps are a run's side effects besides its configuration files: RealDeps in
// production, fakes in tests.
type Deps struct {
	// NewWriter returns the file writer (files.NewWriter; tests wrap it to fail).
	NewWriter func(hostpath.Root) FileWriter
	// Connect reaches systemd (services.Connect).
	Connect func(ctx context.Context) (services.Systemd, error)
	// NewAgent returns the client of the ECS agent's introspection endpoint.
	NewAgent func(endpoint string) health.Getter
	// Live says the root is this host's own ("/"): only then are its services started
	// and its agent asked. Under another root, a chroot or a test directory, the
	// services running here are not the root's.
	Live bool
	// Interval is how often health polls the agent.
	Interval time.Duration
	// Now is the clock, for the marker and the run record.
	Now func() time.Time
	// Discover asks the instance metadata (imds.Discover).
	Discover func(ctx context.Context, clusterTag string) (imds.Info, error)
	// Signaler returns the CloudFormation client for a target.
	Signaler func(ctx context.Context, t inputs.SignalTarget) (cfnsignal.Signaler, error)
	// BootTime returns when the kernel booted (emf.BootTime).
	BootTime func() (time.Time, error)
	// Secrets returns what reads the secrets that inputs reference (secrets.Client);
	// called only when an input is a reference. Nil: references cannot be resolved.
	Secrets func() (secrets.Getter, error)
}

// RealDeps are the production side effects for root.
func RealDeps(root string) Deps {
	// One instance metadata client for discovery and the instance role's credentials:
	// one session token for the run.
	imdsClient := imds.NewClient(imds.Options{})
	// One identity for every AWS request of the run: the environment's credentials,
	// else the instance role's through that client, fetched once.
	creds := cfnsignal.CredentialsProvider(imdsClient.SDK())
	return Deps{
		NewWriter: func(r hostpath.Root) FileWriter { return files.NewWriter(r) },
		Connect: func(ctx context.Context) (services.Systemd, error) {
			return services.Connect(ctx)
		},
		NewAgent: func(endpoint string) health.Getter { return health.NewClient(endpoint) },
		Live:     filepath.Clean(root) == "/",
		Interval: health.DefaultInterval,
		Now:      time.Now,
		Discover: func(ctx context.Context, clusterTag string) (imds.Info, error) {
			return imds.Discover(ctx, imdsClient, clusterTag)
		},
		Signaler: func(ctx context.Context, t inputs.SignalTarget) (cfnsignal.Signaler, error) {
			return realSignaler(ctx, t, imdsClient, creds)
		},
		Secrets: func() (secrets.Getter, error) {
			return secrets.NewClient(secrets.Options{Credentials: creds})
		},
		BootTime: func() (time.Time, error) { return emf.BootTime(hostpath.Root(root)) },
	}
}

// Runner runs firstrun once on one root. It holds what every phase shares and is not
// a phase's result: the options, the environment, the outputs, the side effects and
// the systemd connection (made on first use, closed by Close).
type Runner struct {
	opts   Options
	env    []string
	root   hostpath.Root
	stdout io.Writer
	stderr io.Writer
	deps   Deps
	sd     services.Systemd
}

// New returns a Runner of opts on env (KEY=value strings, as os.Environ returns them),
// writing the dry run's diff and the check's report to stdout and the console's last
// word to stderr.
func New(opts Options, env []string, stdout, stderr io.Writer, deps Deps) *Runner {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Runner{opts: opts, env: env, root: hostpath.Root(opts.Root), stdout: stdout, stderr: stderr, deps: deps}
}

// Close releases what the run holds.
func (r *Runner) Close() {
	if r.sd != nil {
		r.sd.Close()
		r.sd = nil
	}
}

// systemd returns the systemd connection, connecting on first use.
func (r *Runner) systemd(ctx context.Context) (services.Systemd, error) {
	if r.sd != nil {
		return r.sd, nil
	}
	sd, err := r.deps.Connect(ctx)
	if err != nil {
		return nil, err
	}
	r.sd = sd
	return sd, nil
}

// Run runs the phases in order, records the outcome in the marker, tells
// CloudFormation how they ended when asked to, appends the run's metrics record and
// returns the exit code. Every run but a dry run also appends its log to firstrun's own
// log file (hostpath.FirstrunLog), which the log agent ships.
func (r *Runner) Run(ctx context.Context, log *zap.Logger) int {
	if !r.opts.DryRun {
		flog, f, err := logging.WithFile(log, r.root)
		if err != nil {
			log.Warn("firstrun's own log is not kept", zap.Error(err))
		} else {
			defer f.Close()
			log = flog
		}
	}
	run, res, runErr := r.runPhases(ctx, log)
	r.describe(&run, res)
	r.recordOutcome(log, run, res)
	run.ExitCode = r.signal(ctx, log, run.ExitCode, runErr, res)
	run.End = r.deps.Now()
	r.finish(log, &run, res)
	return run.ExitCode
}

// results are what the phases made, each phase's from its return value.
type results struct {
	last      lastSeen
	res       resolved
	ren       rendered
	app       applied
	blockedBy string // firstrun's own unit, when ecs.service's start waits for it
	hl        healthResult
}

// phase is one step of a run, with its own log lines and duration.
type phase struct {
	name string
	run  func(ctx context.Context, log *zap.Logger) error
}

// phases lists the phases; each stores its result in out for the next.
func (r *Runner) phases(out *results) []phase {
	return []phase{
		{runrecord.PhaseResolve, func(ctx context.Context, log *zap.Logger) (err error) {
			out.res, err = r.resolve(ctx, log)
			return err
		}},
		{runrecord.PhaseRender, func(_ context.Context, log *zap.Logger) error {
			out.ren = r.render(log, out.res)
			return nil
		}},
		{runrecord.PhaseApply, func(_ context.Context, log *zap.Logger) (err error) {
			out.app, err = r.apply(log, out.res, out.ren)
			return err
		}},
		{runrecord.PhaseServices, func(ctx context.Context, log *zap.Logger) (err error) {
			out.blockedBy, err = r.services(ctx, log, out.res.cfg, out.app.changes)
			return err
		}},
		{runrecord.PhaseHealth, func(ctx context.Context, log *zap.Logger) (err error) {
			out.hl, err = r.health(ctx, log, out.res, out.blockedBy)
			return err
		}},
	}
}

// runPhases runs the phases in order and returns the run's record (its exit code that
// of the phases), what the phases made and the failure.
func (r *Runner) runPhases(ctx context.Context, log *zap.Logger) (runrecord.Run, *results, error) {
	out := &results{}
	run := runrecord.Run{Start: r.deps.Now(), Version: r.opts.Version}
	start := time.Now()
	log.Info("firstrun starting", zap.String("version", r.opts.Version), zap.String("root", r.opts.Root), zap.Bool("dry_run", r.opts.DryRun))
	out.last = r.logLastRun(log)
	for _, p := range r.phases(out) {
		plog := log.With(zap.String("phase", p.name))
		if why := r.skipped(p.name, out.res); why != "" {
			plog.Info("phase skipped", zap.String("reason", why))
			run.Phases = append(run.Phases, runrecord.Phase{Name: p.name, Outcome: runrecord.Skipped})
			continue
		}
		t0 := time.Now()
		err := ctx.Err()
		if err != nil {
			err = withCode(runrecord.ExitStopped, fmt.Errorf("stopped by a signal before phase %s: %w", p.name, err))
		} else {
			err = p.run(ctx, plog)
			if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				err = withCode(runrecord.ExitStopped, fmt.Errorf("stopped by a signal in phase %s: %w", p.name, err))
			}
		}
		took := time.Since(t0)
		if err != nil {
			run.Phases = append(run.Phases, runrecord.Phase{Name: p.name, Outcome: runrecord.Failed, Duration: took})
			run.ExitCode = codeOf(err)
			var report inputs.Report
			if errors.As(err, &report) {
				plog.Error("invalid input: nothing was written", zap.Duration("duration", took), zap.Strings("problems", report.Lines()))
			} else {
				plog.Error("phase failed", zap.Duration("duration", took), zap.Error(err))
			}
			log.Error("firstrun failed", zap.Int("exit_code", run.ExitCode), zap.Duration("duration", time.Since(start)))
			if r.opts.LogFormat == logging.Console {
				// Console logs escape newlines; say it once more, readably, for people.
				fmt.Fprintf(r.stderr, "\nfirstrun: %v\n", err)
			}
			return run, out, err
		}
		outcome := runrecord.OK
		if p.name == runrecord.PhaseHealth && out.hl.handedOff {
			outcome = runrecord.Skipped // firstrun-health.service waits, and records its wait
		}
		run.Phases = append(run.Phases, runrecord.Phase{Name: p.name, Outcome: outcome, Duration: took})
		plog.Info("phase done", zap.Duration("duration", took))
	}
	log.Info("firstrun done", zap.Duration("duration", time.Since(start)))
	return run, out, nil
}

// describe fills in, from what the phases made, where the run ran: the instance and,
// when the inputs were valid, the cluster, the Auto Scaling group and the stack; and
// when the agent was seen registered.
func (r *Runner) describe(run *runrecord.Run, out *results) {
	run.InstanceID = r.instance(out.res)
	if out.res.valid {
		run.Cluster = out.res.cfg.Cluster
		run.AutoScalingGroup = out.res.cfg.AutoscalingGroup
		run.Stack = out.res.cfg.StackName
	}
	run.Registered = out.hl.registered
}

// skipped returns why phase is not run, or "".
func (r *Runner) skipped(phase string, res resolved) string {
	switch {
	case r.opts.Skip[phase]:
		return "--skip"
	case r.opts.DryRun && (phase == runrecord.PhaseServices || phase == runrecord.PhaseHealth):
		return "--dry-run"
	case !r.deps.Live && phase == runrecord.PhaseServices:
		return "--root is not /: the services running here are not the root's"
	case !r.deps.Live && phase == runrecord.PhaseHealth && !agentNamed(res.cfg):
		return "--root is not /: the agent running here is not the root's (set FIRSTRUN_AGENT_URL to wait for one)"
	}
	return ""
}

// agentNamed says FIRSTRUN_AGENT_URL was given (environment or env file), not
// defaulted: under a root other than /, the agent it names is then asked all the same,
// as tests and benchmarks with an agent of their own on loopback do.
func agentNamed(cfg inputs.Config) bool {
	src := cfg.Sources["FIRSTRUN_AGENT_URL"]
	return src == inputs.FromEnvironment || src == inputs.FromEnvFile
}
