package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/awslogs"
	"github.com/firstrun/firstrun/internal/commonconfig"
	"github.com/firstrun/firstrun/internal/cwagent"
	"github.com/firstrun/firstrun/internal/ecsconfig"
	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/platform"
	"github.com/firstrun/firstrun/internal/proxy"
	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/state"
)

// resolved is what resolve found: the validated inputs, what the host's agent can do,
// what earlier runs owned, the instance, and the signal's inputs.
type resolved struct {
	// valid says the inputs were read and validated: cfg holds them.
	valid bool
	cfg   inputs.Config
	// logs are what the installed log agent can do; journald says why the journal is
	// shipped or not (CloudWatch agent only).
	logs     awslogs.Options
	journald string
	// prev is what earlier runs owned (the state file).
	prev state.State
	// instanceID is the instance metadata's, "" when not asked or unanswered.
	instanceID string
	// sig are the CloudFormation signal's inputs, read even when others are invalid.
	sig signalInputs
	// secrets maps each reference resolved to its value, for --check's search of them;
	// envFile is the env file's path.
	secrets map[string]string
	envFile string
}

// signalInputs are what the CloudFormation signal needs, read in resolve.
type signalInputs struct {
	read   bool // the inputs could be read
	on     bool // --signal or FIRSTRUN_SIGNAL=true
	target inputs.SignalTarget
}

// resolve checks the platform, reads the env file, the environment, the host's probes
// and the state file, and validates every input: all problems at once, before anything
// is written. On failure it still returns what it learnt (the instance, the signal's
// inputs), for the signal and the run record.
func (r *Runner) resolve(ctx context.Context, log *zap.Logger) (resolved, error) {
	var res resolved
	plat, err := platform.Detect(r.root)
	if err != nil {
		return res, withCode(runrecord.ExitFile, err)
	}
	log.Info("platform", zap.String("os", plat.String()))
	if err := plat.Check(); err != nil {
		return res, withCode(runrecord.ExitPlatform, err)
	}
	name, data, err := inputs.ReadEnvFile(r.root, r.opts.EnvFile)
	if err != nil {
		return res, withCode(runrecord.ExitInput, err)
	}
	raw, problems := inputs.Resolve(r.env, name, data)
	res.instanceID = r.discover(ctx, log, raw)
	// References are resolved after discovery (which may give the region) and before
	// anything reads the values, the signal's proxy included.
	resolvedRefs, refProblems := r.resolveSecrets(ctx, log, raw)
	res.secrets, res.envFile = resolvedRefs, name
	problems = append(problems, refProblems...)
	on, target := inputs.Signal(raw)
	res.sig = signalInputs{read: true, on: on || r.opts.Signal, target: target}
	if res.sig.on && r.deps.Live && r.instance(res) == "" {
		problems = append(problems, inputs.Problem{Var: "instance id", Msg: "is unknown (the instance metadata did not answer and cloud-init left no record): the CloudFormation signal needs it"})
	}
	probe := inputs.Probe{
		CloudWatchAgent: exists(r.root.Join(hostpath.CloudWatchAgentBinary)),
		Awslogs:         exists(r.root.Join(hostpath.AwslogsDir)),
	}
	cfg, err := inputs.Validate(raw, probe)
	var report inputs.Report
	if errors.As(err, &report) {
		problems = append(problems, report...)
	} else if err != nil {
		return res, err
	}
	if len(problems) > 0 {
		return res, withCode(runrecord.ExitInput, inputs.Report(problems))
	}
	res.valid, res.cfg = true, cfg
	hideProxy(raw, cfg)
	logInputs(log, raw, name)
	log.Info("log agent", zap.String("agent", string(cfg.LogAgent)), zap.Bool("cloudwatch_agent_installed", probe.CloudWatchAgent), zap.Bool("awslogs_installed", probe.Awslogs))
	if cfg.LogAgent == inputs.LogAgentCloudWatch {
		res.logs.Journald, res.journald = cwagent.ProbeJournald(r.root)
		log.Info(res.journald)
	}

	prev, err := state.Read(r.root)
	if err != nil {
		return res, withCode(runrecord.ExitFile, err)
	}
	res.prev = prev
	return res, nil
}

// logInputs logs every input given, redacted, with where it came from, and warns when
// the env file holds a secret (something redaction hides) yet every local user can
// read it.
func logInputs(log *zap.Logger, raw inputs.Raw, envFile string) {
	secretInFile := false
	for _, k := range slices.Sorted(maps.Keys(raw.Values)) {
		v := raw.Values[k]
		if ref, ok := raw.Refs[k]; ok { // the reference is shown, never the value
			log.Info("input", zap.String("name", k), zap.String("value", ref), zap.String("source", string(raw.Sources[k])), zap.Bool("reference", true))
			continue
		}
		shown := redact.Value(k, v)
		log.Info("input", zap.String("name", k), zap.String("value", shown), zap.String("source", string(raw.Sources[k])))
		secretInFile = secretInFile || (raw.Sources[k] == inputs.FromEnvFile && shown != v)
	}
	if fi, err := os.Stat(envFile); secretInFile && err == nil && fi.Mode().Perm()&0o004 != 0 {
		log.Warn("the env file holds a secret and any local user can read it: chmod 600 it",
			zap.String("env_file", envFile), zap.String("mode", fmt.Sprintf("%04o", fi.Mode().Perm())))
	}
}

// rendered is what render made: every file firstrun wants, and what it then owns.
type rendered struct {
	want  []files.File
	owned state.State
}

// render asks every renderer for its files. It touches nothing.
func (r *Runner) render(log *zap.Logger, res resolved) rendered {
	ecsFile, ecsKeys := ecsconfig.Render(res.cfg, res.prev.ECSConfigKeys)
	want := append([]files.File{ecsFile}, proxy.Render(res.cfg)...)
	cwCommon, cwKeys, ok := commonconfig.Render(res.cfg, res.prev)
	if ok {
		want = append(want, cwCommon)
	}
	want = append(want, awslogs.RenderWith(res.cfg, res.logs)...)
	log.Info("rendered", zap.Int("files", len(want)), zap.Bool("proxy", res.cfg.Proxy != nil))
	return rendered{want: want, owned: state.Owned(want, ecsKeys).WithCommonConfigKeys(cwKeys)}
}

// applied is what apply did: the writer it used and every change, the state file's
// included (planned only, under --dry-run).
type applied struct {
	writer  FileWriter
	changes []files.Change
}

// apply plans the changes and, unless --dry-run, makes them. The state file grows to
// what this run and earlier ones own before any file is written, and shrinks to this
// run's after, so that a crash in between never leaves a file firstrun wrote but no
// longer knows it owns.
func (r *Runner) apply(log *zap.Logger, res resolved, ren rendered) (applied, error) {
	app := applied{writer: r.deps.NewWriter(r.root)}
	changes, err := app.writer.Plan(ren.want, res.prev.Stale(ren.want))
	if err != nil {
		return app, withCode(runrecord.ExitFile, err)
	}
	stateChange, err := app.writer.Plan([]files.File{ren.owned.File()}, nil)
	if err != nil {
		return app, withCode(runrecord.ExitFile, err)
	}
	app.changes = append(changes, stateChange...)
	if r.opts.DryRun {
		n := 0
		for _, c := range app.changes {
			if d := files.Diff(c); d != "" {
				fmt.Fprint(r.stdout, d)
				n++
			}
		}
		log.Info("dry run: nothing written", zap.Int("would_change", n))
		return app, nil
	}
	if err := writeState(app.writer, state.Union(res.prev, ren.owned)); err != nil {
		return app, err
	}
	if err := app.writer.Apply(changes); err != nil {
		return app, withCode(runrecord.ExitFile, err)
	}
	if err := writeState(app.writer, ren.owned); err != nil {
		return app, err
	}
	for _, c := range app.changes {
		fields := []zap.Field{zap.String("path", c.Path), zap.String("action", string(c.Action))}
		if c.Action != files.Removed {
			fields = append(fields, zap.String("mode", fmt.Sprintf("%04o", c.Mode)))
		}
		log.Info("file", fields...)
	}
	return app, nil
}

// writeState writes the state file when it differs from s.
func writeState(w FileWriter, s state.State) error {
	c, err := w.Plan([]files.File{s.File()}, nil)
	if err == nil {
		err = w.Apply(c)
	}
	return withCode(runrecord.ExitFile, err)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
