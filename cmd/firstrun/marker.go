package main

import (
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/lastrun"
)

// logLastRun reads the marker once, for recordOutcome, and logs the outcome of the
// previous run.
func (j *job) logLastRun(log *zap.Logger) {
	prev, ok, err := lastrun.Read(j.root)
	j.last, j.hadLast = prev, ok
	switch {
	case err != nil:
		log.Warn("last run", zap.Error(err))
	case !ok:
		log.Info("first run on this instance")
	default:
		log.Info("rerun: converging", zap.String("last_run", prev.String()))
		if id := lastrun.InstanceID(j.root); id != "" && prev.InstanceID != "" && id != prev.InstanceID {
			log.Warn("the last-run marker is another instance's: was it baked into the image?", zap.String("marker_instance", prev.InstanceID), zap.String("instance", id))
		}
	}
}

// recordOutcome writes the run-once marker when the run got as far as applying files
// (invalid input and dry runs write nothing) and the outcome differs from the marker's.
func (j *job) recordOutcome(log *zap.Logger, failedPhase string, code int) {
	if !j.reached || j.opts.dryRun {
		return
	}
	now := lastrun.Record{InstanceID: j.instance(), Result: lastrun.OK, ExitCode: code, Phase: failedPhase, Version: version, Time: j.deps.now().UTC().Truncate(time.Second)}
	if code != exitOK {
		now.Result = lastrun.Failed
	}
	rec, write := lastrun.Next(j.last, j.hadLast, now)
	if !write {
		return
	}
	w := j.writer
	if w == nil { // apply was skipped
		w = j.deps.newWriter(j.root)
	}
	c, err := w.Plan([]files.File{rec.File()}, nil)
	if err == nil {
		err = w.Apply(c)
	}
	if err != nil {
		log.Warn("could not record the outcome", zap.String("path", hostpath.LastRun), zap.Error(err))
	}
}
