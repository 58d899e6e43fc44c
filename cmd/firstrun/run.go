package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/awslogs"
	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/commonconfig"
	"github.com/firstrun/firstrun/internal/ecsconfig"
	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/health"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/imds"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/platform"
	"github.com/firstrun/firstrun/internal/proxy"
	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/services"
	"github.com/firstrun/firstrun/internal/state"
)

// options are the command line flags.
type options struct {
	root      string
	envFile   string
	dryRun    bool
	logFormat string
	skip      map[string]bool // phases not to run
	check     bool            // --check: report, change nothing
	signal    bool            // --signal: tell CloudFormation how the run ended
	output    string          // --check's output: table or json
}

// skippable are the phases --skip accepts: resolve and render only compute, and every
// later phase needs them.
var skippable = []string{"apply", "services", "health"}

const usageText = `Usage: firstrun [flags]
       firstrun --check [--output table|json]

Makes this ECS container instance a member of its cluster: writes /etc/ecs/ecs.config,
the proxy settings of docker, the ECS agent and the log agent, and the log agent's
configuration, changing only what differs; starts docker, ecs and the log agent through
systemd (restarting those whose settings changed); and waits, bounded, until the agent
has registered to the cluster. Inputs come from the environment and the env file; the
environment wins. --check changes nothing and reports what does not hold.

Flags:
`

// run is main without the exit: it parses args, runs the phases and returns the exit
// code. env holds KEY=value strings, as os.Environ returns them.
func run(args, env []string, stdout, stderr io.Writer) int {
	opts, code, done := parseFlags(args, stdout, stderr)
	if done {
		return code
	}
	log, err := logging.New(stderr, opts.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "firstrun: %v\n", err)
		return exitUsage
	}
	defer log.Sync() //nolint:errcheck // stderr cannot be synced on every system

	// SIGTERM or SIGINT stops the run between phases; a phase under way finishes (every
	// file write is atomic) or, when it waits, returns at once through the context.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	j := &job{opts: opts, env: env, root: hostpath.Root(opts.root), stdout: stdout, stderr: stderr, deps: realDeps(opts.root)}
	defer j.close()
	if opts.check {
		return j.check(ctx, log)
	}
	return j.run(ctx, log)
}

// deps are the job's side effects besides files: realDeps in production, fakes in
// tests.
type deps struct {
	// newWriter returns the file writer (files.NewWriter; tests wrap it to fail).
	newWriter func(hostpath.Root) fileWriter
	// connect reaches systemd (services.Connect).
	connect func(ctx context.Context) (services.Systemd, error)
	// newAgent returns the client of the ECS agent's introspection endpoint.
	newAgent func(endpoint string) health.Getter
	// live says the root is this host's own ("/"): only then are its services started
	// and its agent asked. Under another root, a chroot or a test directory, the
	// services running here are not the root's.
	live bool
	// interval is how often health polls the agent.
	interval time.Duration
	// now is the clock, for the last-run marker.
	now func() time.Time
	// discover asks the instance metadata (imds.Discover).
	discover func(ctx context.Context, clusterTag string) (imds.Info, error)
	// signaler returns the CloudFormation client for a target.
	signaler func(ctx context.Context, t inputs.SignalTarget) (cfnsignal.Signaler, error)
}

// realDeps are the production side effects.
func realDeps(root string) deps {
	// One instance metadata client for discovery and the instance role's credentials:
	// one session token for the run.
	imdsClient := imds.NewClient(imds.Options{})
	return deps{
		newWriter: realWriter,
		connect: func(ctx context.Context) (services.Systemd, error) {
			return services.Connect(ctx)
		},
		newAgent: func(endpoint string) health.Getter { return health.NewClient(endpoint) },
		live:     filepath.Clean(root) == "/",
		interval: health.DefaultInterval,
		now:      time.Now,
		discover: func(ctx context.Context, clusterTag string) (imds.Info, error) {
			return imds.Discover(ctx, imdsClient, clusterTag)
		},
		signaler: func(ctx context.Context, t inputs.SignalTarget) (cfnsignal.Signaler, error) {
			return realSignaler(ctx, t, imdsClient)
		},
	}
}

// run runs the job's phases in order, logging each with its duration, then tells
// CloudFormation how they ended when asked to, and returns the exit code.
func (j *job) run(ctx context.Context, log *zap.Logger) int {
	code, err := j.runPhases(ctx, log)
	return j.signal(ctx, log, code, err)
}

// runPhases runs the phases in order and returns the exit code and the failure.
func (j *job) runPhases(ctx context.Context, log *zap.Logger) (int, error) {
	start := time.Now()
	log.Info("firstrun starting", zap.String("version", version), zap.String("root", j.opts.root), zap.Bool("dry_run", j.opts.dryRun))
	j.logLastRun(log)
	for _, p := range j.phases() {
		plog := log.With(zap.String("phase", p.name))
		if why := j.skipped(p.name); why != "" {
			plog.Info("phase skipped", zap.String("reason", why))
			continue
		}
		t0 := time.Now()
		j.reached = j.reached || (p.name != "resolve" && p.name != "render")
		err := ctx.Err()
		if err != nil {
			err = withCode(exitInterrupted, fmt.Errorf("stopped by a signal before phase %s: %w", p.name, err))
		} else {
			err = p.run(ctx, plog)
			if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				err = withCode(exitInterrupted, fmt.Errorf("stopped by a signal in phase %s: %w", p.name, err))
			}
		}
		if err != nil {
			code := codeOf(err)
			j.recordOutcome(log, p.name, code)
			var report inputs.Report
			if errors.As(err, &report) {
				plog.Error("invalid input: nothing was written", zap.Duration("duration", time.Since(t0)), zap.Strings("problems", report.Lines()))
			} else {
				plog.Error("phase failed", zap.Duration("duration", time.Since(t0)), zap.Error(err))
			}
			log.Error("firstrun failed", zap.Int("exit_code", code), zap.Duration("duration", time.Since(start)))
			if j.opts.logFormat == logging.Console {
				// Console logs escape newlines; say it once more, readably, for people.
				fmt.Fprintf(j.stderr, "\nfirstrun: %v\n", err)
			}
			return code, err
		}
		plog.Info("phase done", zap.Duration("duration", time.Since(t0)))
	}
	j.recordOutcome(log, "", exitOK)
	log.Info("firstrun done", zap.Duration("duration", time.Since(start)))
	return exitOK, nil
}

// skipped returns why phase is not run, or "".
func (j *job) skipped(phase string) string {
	switch {
	case j.opts.skip[phase]:
		return "--skip"
	case j.opts.dryRun && (phase == "services" || phase == "health"):
		return "--dry-run"
	case !j.deps.live && phase == "services":
		return "--root is not /: the services running here are not the root's"
	case !j.deps.live && phase == "health" && !j.agentNamed():
		return "--root is not /: the agent running here is not the root's (set FIRSTRUN_AGENT_URL to wait for one)"
	}
	return ""
}

// agentNamed says FIRSTRUN_AGENT_URL was given (environment or env file), not
// defaulted: under a root other than /, the agent it names is then asked all the same,
// as tests and benchmarks with an agent of their own on loopback do.
func (j *job) agentNamed() bool {
	src := j.cfg.Sources["FIRSTRUN_AGENT_URL"]
	return src == inputs.FromEnvironment || src == inputs.FromEnvFile
}

// parseFlags returns the options, or the exit code when the run ends here (help,
// version, usage error).
func parseFlags(args []string, stdout, stderr io.Writer) (options, int, bool) {
	var o options
	var showVersion bool
	fsFlags := flag.NewFlagSet("firstrun", flag.ContinueOnError)
	fsFlags.SetOutput(io.Discard)
	fsFlags.StringVar(&o.root, "root", "/", "filesystem root `DIR` to configure (tests and image builds use another)")
	fsFlags.StringVar(&o.envFile, "env-file", "", "env `FILE` of KEY=value lines (default "+hostpath.EnvFile+" under --root, if it exists)")
	fsFlags.BoolVar(&o.dryRun, "dry-run", false, "print a unified diff of what would change, and change nothing")
	fsFlags.StringVar(&o.logFormat, "log-format", logging.Console, "log `FORMAT` on stderr: console or json")
	var skip string
	fsFlags.StringVar(&skip, "skip", "", "comma-separated `PHASES` not to run: "+strings.Join(skippable, ", ")+" (image builds skip services,health)")
	fsFlags.BoolVar(&o.check, "check", false, "check the files, the units and the agent's registration, print a report and change nothing; exit 0 when all hold")
	fsFlags.StringVar(&o.output, "output", "table", "--check's report `FORMAT`: table or json")
	fsFlags.BoolVar(&o.signal, "signal", false, "tell CloudFormation SUCCESS once the agent has joined, FAILURE on any failure (as FIRSTRUN_SIGNAL=true)")
	fsFlags.BoolVar(&showVersion, "version", false, "print the version and exit")
	usage := func(w io.Writer) {
		fmt.Fprint(w, usageText)
		fsFlags.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  %s\n      %s", strings.TrimSpace("--"+f.Name+" "+name), usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
		fmt.Fprint(w, "\nInputs (environment or env file):\n")
		if err := inputs.Usage(w); err != nil {
			fmt.Fprintf(w, "  (cannot list inputs: %v)\n", err)
		}
		fmt.Fprint(w, "  ECS_*\n      Any other ECS agent setting, written to ecs.config as given.\n")
		fmt.Fprint(w, "\nExit codes: 0 done, 1 internal error, 2 invalid input (nothing written), 3 usage error,\n"+
			"4 files could not be read or written, 5 unsupported platform (Amazon Linux 1), 6 stopped by a signal,\n"+
			"7 a service could not be started (or no systemd), 8 the agent did not register in time,\n"+
			"9 --check found a problem, 10 the run succeeded but the CloudFormation signal failed.\n")
	}
	err := fsFlags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return o, exitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "firstrun: %v\nRun 'firstrun --help' for usage.\n", err)
		return o, exitUsage, true
	case fsFlags.NArg() > 0:
		fmt.Fprintf(stderr, "firstrun: unexpected argument %q: firstrun takes flags only\nRun 'firstrun --help' for usage.\n", fsFlags.Arg(0))
		return o, exitUsage, true
	case showVersion:
		fmt.Fprintf(stdout, "firstrun %s\n", version)
		return o, exitOK, true
	case o.logFormat != logging.Console && o.logFormat != logging.JSON:
		fmt.Fprintf(stderr, "firstrun: --log-format %q: want console or json\n", o.logFormat)
		return o, exitUsage, true
	case o.root == "":
		fmt.Fprintf(stderr, "firstrun: --root must not be empty\n")
		return o, exitUsage, true
	case o.output != "table" && o.output != "json":
		fmt.Fprintf(stderr, "firstrun: --output %q: want table or json\n", o.output)
		return o, exitUsage, true
	case o.check && o.dryRun:
		fmt.Fprintf(stderr, "firstrun: --check and --dry-run: give one (--check already changes nothing)\n")
		return o, exitUsage, true
	}
	o.skip = map[string]bool{}
	for _, p := range strings.Split(skip, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case !slices.Contains(skippable, p):
			fmt.Fprintf(stderr, "firstrun: --skip %q: %q is not a phase that can be skipped (%s)\n", skip, p, strings.Join(skippable, ", "))
			return o, exitUsage, true
		default:
			o.skip[p] = true
		}
	}
	return o, exitOK, false
}

// phase is one step of a run, with its own log lines and duration. IMDS discovery and
// the CloudFormation signal join this list as phases of their own.
type phase struct {
	name string
	run  func(ctx context.Context, log *zap.Logger) error
}

// job carries one run's data from phase to phase.
type job struct {
	opts   options
	env    []string
	root   hostpath.Root
	stdout io.Writer
	stderr io.Writer

	deps deps

	cfg     inputs.Config
	prev    state.State // what earlier runs owned
	want    []files.File
	owned   state.State // what this run owns
	writer  fileWriter
	changes []files.Change
	sd      services.Systemd // connected on first use; closed by close
	reached bool             // a phase past render ran: the outcome is worth recording
	last    lastrun.Record   // the marker as the run found it
	hadLast bool             // there was a marker

	blockedBy string // firstrun's own unit, when ecs.service's start waits for it
	handedOff bool   // the wait for registration was handed to healthUnit

	sig        signalInputs // the CloudFormation signal's inputs, even when others are invalid
	instanceID string       // from the instance metadata
}

// signalInputs are what the CloudFormation signal needs, read in resolve.
type signalInputs struct {
	read   bool // the inputs could be read
	on     bool // --signal or FIRSTRUN_SIGNAL=true
	target inputs.SignalTarget
}

// fileWriter plans and applies file changes: *files.Writer.
type fileWriter interface {
	Plan(want []files.File, remove []string) ([]files.Change, error)
	Apply(changes []files.Change) error
}

// realWriter is the production fileWriter.
func realWriter(root hostpath.Root) fileWriter { return files.NewWriter(root) }

func (j *job) phases() []phase {
	return []phase{
		{"resolve", j.resolve},
		{"render", j.render},
		{"apply", j.apply},
		{"services", j.services},
		{"health", j.health},
	}
}

// resolve checks the platform, reads the env file, the environment, the host's probes
// and the state file, and validates every input: all problems at once, before anything
// is written.
func (j *job) resolve(ctx context.Context, log *zap.Logger) error {
	plat, err := platform.Detect(j.root)
	if err != nil {
		return withCode(exitApply, err)
	}
	log.Info("platform", zap.String("os", plat.String()))
	if err := plat.Check(); err != nil {
		return withCode(exitPlatform, err)
	}
	name, data, err := inputs.ReadEnvFile(j.root, j.opts.envFile)
	if err != nil {
		return withCode(exitInput, err)
	}
	raw, problems := inputs.Resolve(j.env, name, data)
	j.discover(ctx, log, raw)
	on, target := inputs.Signal(raw)
	j.sig = signalInputs{read: true, on: on || j.opts.signal, target: target}
	if j.sig.on && j.deps.live && j.instance() == "" {
		problems = append(problems, inputs.Problem{Var: "instance id", Msg: "is unknown (the instance metadata did not answer and cloud-init left no record): the CloudFormation signal needs it"})
	}
	probe := inputs.Probe{
		CloudWatchAgent: exists(j.root.Join(hostpath.CloudWatchAgentBinary)),
		Awslogs:         exists(j.root.Join(hostpath.AwslogsDir)),
	}
	cfg, err := inputs.Validate(raw, probe)
	var report inputs.Report
	if errors.As(err, &report) {
		problems = append(problems, report...)
	} else if err != nil {
		return err
	}
	if len(problems) > 0 {
		return withCode(exitInput, inputs.Report(problems))
	}
	j.cfg = cfg
	logInputs(log, raw, name)
	log.Info("log agent", zap.String("agent", string(cfg.LogAgent)), zap.Bool("cloudwatch_agent_installed", probe.CloudWatchAgent), zap.Bool("awslogs_installed", probe.Awslogs))

	prev, err := state.Read(j.root)
	if err != nil {
		return withCode(exitApply, err)
	}
	j.prev = prev
	return nil
}

// logInputs logs every input given, redacted, with where it came from, and warns when
// the env file holds a secret (something redaction hides) yet every local user can
// read it.
func logInputs(log *zap.Logger, raw inputs.Raw, envFile string) {
	secretInFile := false
	for _, k := range slices.Sorted(maps.Keys(raw.Values)) {
		v := raw.Values[k]
		shown := redact.Value(k, v)
		log.Info("input", zap.String("name", k), zap.String("value", shown), zap.String("source", string(raw.Sources[k])))
		secretInFile = secretInFile || (raw.Sources[k] == inputs.FromEnvFile && shown != v)
	}
	if fi, err := os.Stat(envFile); secretInFile && err == nil && fi.Mode().Perm()&0o004 != 0 {
		log.Warn("the env file holds a secret and any local user can read it: chmod 600 it",
			zap.String("env_file", envFile), zap.String("mode", fmt.Sprintf("%04o", fi.Mode().Perm())))
	}
}

// render asks every renderer for its files. It touches nothing.
func (j *job) render(_ context.Context, log *zap.Logger) error {
	ecsFile, ecsKeys := ecsconfig.Render(j.cfg, j.prev.ECSConfigKeys)
	j.want = append([]files.File{ecsFile}, proxy.Render(j.cfg)...)
	cwCommon, cwKeys, ok := commonconfig.Render(j.cfg, j.prev)
	if ok {
		j.want = append(j.want, cwCommon)
	}
	j.want = append(j.want, awslogs.Render(j.cfg)...)
	j.owned = state.Owned(j.want, ecsKeys).WithCommonConfigKeys(cwKeys)
	log.Info("rendered", zap.Int("files", len(j.want)), zap.Bool("proxy", j.cfg.Proxy != nil))
	return nil
}

// apply plans the changes and, unless --dry-run, makes them. The state file grows to
// what this run and earlier ones own before any file is written, and shrinks to this
// run's after, so that a crash in between never leaves a file firstrun wrote but no
// longer knows it owns.
func (j *job) apply(_ context.Context, log *zap.Logger) error {
	j.writer = j.deps.newWriter(j.root)
	changes, err := j.writer.Plan(j.want, j.prev.Stale(j.want))
	if err != nil {
		return withCode(exitApply, err)
	}
	stateChange, err := j.writer.Plan([]files.File{j.owned.File()}, nil)
	if err != nil {
		return withCode(exitApply, err)
	}
	j.changes = append(changes, stateChange...)
	if j.opts.dryRun {
		n := 0
		for _, c := range j.changes {
			if d := files.Diff(c); d != "" {
				fmt.Fprint(j.stdout, d)
				n++
			}
		}
		log.Info("dry run: nothing written", zap.Int("would_change", n))
		return nil
	}
	if err := j.writeState(state.Union(j.prev, j.owned)); err != nil {
		return err
	}
	if err := j.writer.Apply(changes); err != nil {
		return withCode(exitApply, err)
	}
	if err := j.writeState(j.owned); err != nil {
		return err
	}
	for _, c := range j.changes {
		fields := []zap.Field{zap.String("path", c.Path), zap.String("action", string(c.Action))}
		if c.Action != files.Removed {
			fields = append(fields, zap.String("mode", fmt.Sprintf("%04o", c.Mode)))
		}
		log.Info("file", fields...)
	}
	return nil
}

// writeState writes the state file when it differs from s.
func (j *job) writeState(s state.State) error {
	c, err := j.writer.Plan([]files.File{s.File()}, nil)
	if err == nil {
		err = j.writer.Apply(c)
	}
	return withCode(exitApply, err)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
