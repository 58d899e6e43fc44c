package runner

import (
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/emf"
	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/runrecord"
)

// lastSeen is the marker as the run found it.
type lastSeen struct {
	rec lastrun.Record
	ok  bool // there was a marker
}

// logLastRun reads the marker once, for recordOutcome and the rerun test, and logs the
// outcome of the previous run.
func (r *Runner) logLastRun(log *zap.Logger) lastSeen {
	prev, ok, err := lastrun.Read(r.root)
	switch {
	case err != nil:
		log.Warn("last run", zap.Error(err))
	case !ok:
		log.Info("first run on this instance")
	default:
		log.Info("rerun: converging", zap.String("last_run", prev.String()))
		if id := lastrun.InstanceID(r.root); id != "" && prev.InstanceID != "" && id != prev.InstanceID {
			log.Warn("the last-run marker is another instance's: was it baked into the image?", zap.String("marker_instance", prev.InstanceID), zap.String("instance", id))
		}
	}
	return lastSeen{rec: prev, ok: ok}
}

// reached says a phase past render ran: the outcome is worth recording (invalid input
// and a stop before apply write nothing).
func reached(run runrecord.Run) bool {
	for _, p := range run.Phases {
		if p.Name != runrecord.PhaseResolve && p.Name != runrecord.PhaseRender && p.Outcome != runrecord.Skipped {
			return true
		}
	}
	return false
}

// failedPhase returns the name of the phase that failed, "" when none did.
func failedPhase(run runrecord.Run) string {
	for _, p := range run.Phases {
		if p.Outcome == runrecord.Failed {
			return p.Name
		}
	}
	return ""
}

// recordOutcome writes the run-once marker from run when the run got as far as
// applying files (dry runs write nothing) and the outcome differs from the marker's.
func (r *Runner) recordOutcome(log *zap.Logger, run runrecord.Run, out *results) {
	if !reached(run) || r.opts.DryRun {
		return
	}
	now := lastrun.Record{InstanceID: run.InstanceID, Result: lastrun.OK, ExitCode: run.ExitCode, Phase: failedPhase(run),
		Version: r.opts.Version, Time: r.deps.Now().UTC().Truncate(time.Second)}
	if run.ExitCode != runrecord.ExitOK {
		now.Result = lastrun.Failed
	}
	if !run.Registered.IsZero() {
		now.Registered = run.Registered.UTC().Truncate(time.Second)
	}
	rec, write := lastrun.Next(out.last.rec, out.last.ok, now)
	if !write {
		return
	}
	w := out.app.writer
	if w == nil { // apply was skipped
		w = r.deps.NewWriter(r.root)
	}
	c, err := w.Plan([]files.File{rec.File()}, nil)
	if err == nil {
		err = w.Apply(c)
	}
	if err != nil {
		log.Warn("could not record the outcome", zap.String("path", hostpath.LastRun), zap.Error(err))
	}
}

// finish completes the run's record (the boot time, whether it is a rerun), logs its
// summary and, unless --dry-run, appends its metrics record (internal/emf), which the
// log agent ships and CloudWatch turns into metrics.
func (r *Runner) finish(log *zap.Logger, run *runrecord.Run, out *results) {
	if r.deps.BootTime != nil {
		boot, err := r.deps.BootTime()
		if err != nil {
			log.Debug("boot time unknown", zap.Error(err))
		}
		run.BootTime = boot
	}
	run.Rerun = out.hl.already || (out.last.ok && !run.BootTime.IsZero() && out.last.rec.JoinedSince(run.BootTime.Truncate(time.Second)))
	fields := []zap.Field{zap.Int("exit_code", run.ExitCode), zap.String("exit_class", runrecord.ExitClass(run.ExitCode)),
		zap.Duration("duration", run.End.Sub(run.Start)), zap.Bool("rerun", run.Rerun)}
	for _, p := range run.Phases {
		fields = append(fields, zap.String("phase_"+p.Name, string(p.Outcome)+" "+p.Duration.String()))
	}
	if d, ok := run.BootToRegistered(); ok {
		fields = append(fields, zap.Duration("boot_to_registered", d))
	}
	if r.opts.DryRun {
		log.Info("run", fields...)
		return
	}
	if err := emf.Append(r.root, *run); err != nil {
		log.Warn("run", append(fields, zap.Error(err))...)
		return
	}
	log.Info("run", append(fields, zap.String("metrics", hostpath.MetricsLog))...)
}
