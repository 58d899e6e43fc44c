package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/firstrun/firstrun/internal/cwagent"
	"github.com/firstrun/firstrun/internal/exposure"
	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/lastrun"
)

// checkTimeout bounds the whole of --check: it asks systemd a few questions and the
// agent once, and never waits for anything to change.
const checkTimeout = 10 * time.Second

// Check statuses.
const (
	checkOK   = "ok"
	checkFail = "FAIL"
	checkSkip = "skip"
	// checkWarn is something to know that a rerun cannot change: it does not fail.
	checkWarn = "WARN"
)

// checkResult is one line of --check's report.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Diff shows a file's drift: what firstrun would change, secrets redacted.
	Diff string `json:"diff,omitempty"`
}

// checkReport is --check's JSON output.
type checkReport struct {
	OK     bool          `json:"ok"`
	Checks []checkResult `json:"checks"`
}

// check runs every check, changing nothing, prints the report and returns exitOK when
// every check holds, exitCheck otherwise.
func (j *job) check(ctx context.Context, log *zap.Logger) int {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// The report is the output; the log keeps only warnings and errors.
	log = log.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	var results []checkResult
	add := func(r ...checkResult) { results = append(results, r...) }

	cfgOK := true
	if err := j.resolve(ctx, log); err != nil {
		cfgOK = false
		add(checkResult{Name: "inputs", Status: checkFail, Detail: inputsDetail(err)})
	} else {
		add(checkResult{Name: "inputs", Status: checkOK, Detail: "valid"})
		_ = j.render(ctx, log) // pure
		add(j.checkFiles()...)
	}
	add(j.checkExposure())
	add(j.checkUnits(ctx, cfgOK)...)
	add(j.checkAgent(ctx, cfgOK))
	add(j.checkLastRun())

	report := checkReport{OK: true, Checks: results}
	for _, r := range results {
		report.OK = report.OK && r.Status != checkFail
	}
	if err := writeReport(j.stdout, j.opts.output, report); err != nil {
		fmt.Fprintf(j.stderr, "firstrun: writing the report: %v\n", err)
		return exitInternal
	}
	if !report.OK {
		return exitCheck
	}
	return exitOK
}

// inputsDetail is the inputs problem on one line per problem.
func inputsDetail(err error) string {
	var report inputs.Report
	if errors.As(err, &report) {
		return strings.Join(report.Lines(), "; ")
	}
	return err.Error()
}

// checkFiles compares every file firstrun manages with what it would write now,
// including files an earlier run wrote that are no longer wanted.
func (j *job) checkFiles() []checkResult {
	w := j.deps.newWriter(j.root)
	changes, err := w.Plan(j.want, j.prev.Stale(j.want))
	if err != nil {
		return []checkResult{{Name: "files", Status: checkFail, Detail: err.Error()}}
	}
	var out []checkResult
	planned := map[string]bool{}
	for _, c := range changes {
		planned[c.Path] = true
		r := checkResult{Name: "file " + c.Path, Status: checkOK, Detail: "as rendered"}
		switch {
		case c.Action == files.Unchanged:
		case c.Action == files.Created && c.Path == hostpath.CloudWatchAgentConfig && slices.Contains(j.prev.Files, c.Path):
			r.Status, r.Detail = checkFail, cwagent.FetchConfigDeleted
		case c.Action == files.Created:
			r.Status, r.Detail = checkFail, "missing"
		case c.Action == files.Removed:
			r.Status, r.Detail = checkFail, "left over: no input asks for it now"
		case c.ModeOnly():
			r.Status, r.Detail = checkFail, fmt.Sprintf("mode %04o, want %04o", c.OldMode, c.Mode)
		default:
			r.Status, r.Detail = checkFail, "differs from what firstrun would write (edited by hand?)"
		}
		if r.Status == checkFail {
			r.Diff = files.Diff(c)
		}
		out = append(out, r)
	}
	if cc := hostpath.CloudWatchCommonConfig; j.cfg.LogAgent == inputs.LogAgentCloudWatch && !planned[cc] && !exists(j.root.Join(cc)) {
		out = append(out, checkResult{Name: "file " + cc, Status: checkFail, Detail: cwagent.CommonConfigMissing})
	}
	return out
}

// checkExposure warns when a proxy password sits in a file any local user can read.
func (j *job) checkExposure() checkResult {
	ok, detail := exposure.Report(j.root)
	r := checkResult{Name: "proxy credentials", Status: checkOK, Detail: detail}
	if !ok {
		r.Status = checkWarn
	}
	return r
}

// checkUnits reports whether each unit firstrun manages is enabled and active.
func (j *job) checkUnits(ctx context.Context, cfgOK bool) []checkResult {
	cfg := j.cfg
	if !cfgOK {
		cfg = inputs.Config{} // still check docker and ecs
	}
	var out []checkResult
	for _, u := range units(j.root, cfg, nil) {
		r := checkResult{Name: "unit " + u.Name}
		if !j.deps.live {
			r.Status, r.Detail = checkSkip, "--root is not /"
			out = append(out, r)
			continue
		}
		sd, err := j.systemd(ctx)
		if err != nil {
			r.Status, r.Detail = checkFail, "systemd: "+err.Error()
			out = append(out, r)
			continue
		}
		st, err := sd.State(ctx, u.Name)
		switch {
		case err != nil:
			r.Status, r.Detail = checkFail, err.Error()
		case st.Active() && st.Enabled():
			r.Status, r.Detail = checkOK, st.String()
		default:
			r.Status, r.Detail = checkFail, st.String()
		}
		out = append(out, r)
	}
	return out
}

// checkAgent asks the agent once whether it is registered to the cluster.
func (j *job) checkAgent(ctx context.Context, cfgOK bool) checkResult {
	r := checkResult{Name: "agent registration"}
	switch {
	case !cfgOK && !j.deps.live:
		r.Status, r.Detail = checkSkip, "--root is not /"
		return r
	case !cfgOK:
		r.Status, r.Detail = checkFail, "unknown: the inputs are invalid, so the cluster is unknown"
		return r
	case !j.deps.live && !j.agentNamed():
		r.Status, r.Detail = checkSkip, "--root is not / (set FIRSTRUN_AGENT_URL to ask an agent)"
		return r
	}
	st := j.deps.newAgent(j.cfg.AgentURL).Get(ctx)
	switch {
	case st.RegisteredTo(j.cfg.Cluster):
		r.Status, r.Detail = checkOK, st.String()
	case st.WrongCluster(j.cfg.Cluster) != "":
		r.Status, r.Detail = checkFail, fmt.Sprintf("registered to %q, not %q: was ECS_CLUSTER picked up?", st.WrongCluster(j.cfg.Cluster), j.cfg.Cluster)
	default:
		r.Status, r.Detail = checkFail, st.String()
	}
	return r
}

// checkLastRun reports the run-once marker: firstrun must have run, and succeeded.
func (j *job) checkLastRun() checkResult {
	r := checkResult{Name: "last run"}
	rec, ok, err := lastrun.Read(j.root)
	switch {
	case err != nil:
		r.Status, r.Detail = checkFail, err.Error()
	case !ok:
		r.Status, r.Detail = checkFail, "firstrun has not run here"
	case rec.Result != lastrun.OK:
		r.Status, r.Detail = checkFail, rec.String()
	default:
		r.Status, r.Detail = checkOK, rec.String()
	}
	return r
}

// writeReport prints the report as a table (diffs after it) or as JSON.
func writeReport(w io.Writer, format string, report checkReport) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tDETAIL")
	for _, r := range report.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Name, r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range report.Checks {
		if r.Diff != "" {
			fmt.Fprintf(w, "\n%s drifted; firstrun would change it so:\n%s", r.Name[len("file "):], r.Diff)
		}
	}
	verdict := "all checks hold"
	if !report.OK {
		verdict = "some checks FAIL: rerun firstrun to converge, or see the details above"
	}
	_, err := fmt.Fprintf(w, "\n%s\n", verdict)
	return err
}
