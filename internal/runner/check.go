package runner

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
	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/runrecord"
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

// Check runs every check, changing nothing, prints the report to stdout in
// Options.Output's format and returns 0 when every check holds,
// runrecord.ExitCheck otherwise. It needs no terminal and ends within checkTimeout.
func (r *Runner) Check(ctx context.Context, log *zap.Logger) int {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// The report is the output; the log keeps only warnings and errors.
	log = log.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	var results []checkResult
	add := func(r ...checkResult) { results = append(results, r...) }

	res, err := r.resolve(ctx, log)
	if err != nil {
		add(checkResult{Name: "inputs", Status: checkFail, Detail: inputsDetail(err)})
	} else {
		add(checkResult{Name: "inputs", Status: checkOK, Detail: "valid"})
		add(r.checkFiles(res, r.render(log, res))...)
		if res.journald != "" {
			add(checkJournal(res))
		}
	}
	add(r.checkExposure())
	add(r.checkSecrets(res))
	add(r.checkUnits(ctx, res)...)
	add(r.checkAgent(ctx, res))
	add(r.checkLastRun())

	report := checkReport{OK: true, Checks: results}
	for _, r := range results {
		report.OK = report.OK && r.Status != checkFail
	}
	// Nothing in the report shows a resolved value; redact.Writer makes sure of it.
	if err := writeReport(redact.Writer(r.stdout), r.opts.Output, report); err != nil {
		fmt.Fprintf(r.stderr, "firstrun: writing the report: %v\n", err)
		return runrecord.ExitInternal
	}
	if !report.OK {
		return runrecord.ExitCheck
	}
	return runrecord.ExitOK
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
func (r *Runner) checkFiles(res resolved, ren rendered) []checkResult {
	w := r.deps.NewWriter(r.root)
	changes, err := w.Plan(ren.want, res.prev.Stale(ren.want))
	if err != nil {
		return []checkResult{{Name: "files", Status: checkFail, Detail: err.Error()}}
	}
	var out []checkResult
	planned := map[string]bool{}
	for _, c := range changes {
		planned[c.Path] = true
		fr := checkResult{Name: "file " + c.Path, Status: checkOK, Detail: "as rendered"}
		switch {
		case c.Action == files.Unchanged:
		case c.Action == files.Created && c.Path == hostpath.CloudWatchAgentConfig && slices.Contains(res.prev.Files, c.Path):
			fr.Status, fr.Detail = checkFail, cwagent.FetchConfigDeleted
		case c.Action == files.Created:
			fr.Status, fr.Detail = checkFail, "missing"
		case c.Action == files.Removed:
			fr.Status, fr.Detail = checkFail, "left over: no input asks for it now"
		case c.ModeOnly():
			fr.Status, fr.Detail = checkFail, fmt.Sprintf("mode %04o, want %04o", c.OldMode, c.Mode)
		default:
			fr.Status, fr.Detail = checkFail, "differs from what firstrun would write (edited by hand?)"
		}
		if fr.Status == checkFail {
			fr.Diff = files.Diff(c)
		}
		out = append(out, fr)
	}
	if cc := hostpath.CloudWatchCommonConfig; res.cfg.LogAgent == inputs.LogAgentCloudWatch && !planned[cc] && !exists(r.root.Join(cc)) {
		out = append(out, checkResult{Name: "file " + cc, Status: checkFail, Detail: cwagent.CommonConfigMissing})
	}
	return out
}

// checkJournal says whether the CloudWatch agent ships the journal of docker, ecs and
// firstrun, with a warning when it is too old to: a rerun cannot change that, an
// upgrade of the agent can.
func checkJournal(res resolved) checkResult {
	c := checkResult{Name: "journal shipping", Status: checkOK, Detail: res.journald}
	if !res.logs.Journald {
		c.Status = checkWarn
	}
	return c
}

// checkExposure warns when a proxy password sits in a file any local user can read.
func (r *Runner) checkExposure() checkResult {
	ok, detail := exposure.Report(r.root)
	c := checkResult{Name: "proxy credentials", Status: checkOK, Detail: detail}
	if !ok {
		c.Status = checkWarn
	}
	return c
}

// checkSecrets warns when a secret sits where it should not: a secret setting or a
// value a reference resolved to in a file every local user can read (the files firstrun
// writes or owns, the env file, what the CloudWatch agent derives), or such a value in
// the env file at all, which the reference was meant to keep it out of.
func (r *Runner) checkSecrets(res resolved) checkResult {
	paths := append(append(append([]string(nil), exposure.Paths...), exposure.Owned...), res.prev.Files...)
	ok, detail := exposure.SecretsReport(r.root, paths, res.envFile, res.secrets)
	c := checkResult{Name: "secrets", Status: checkOK, Detail: detail}
	if !ok {
		c.Status = checkWarn
	}
	return c
}

// checkUnits reports whether each unit firstrun manages is enabled and active.
// The inputs being invalid, it still checks docker and ecs.
func (r *Runner) checkUnits(ctx context.Context, res resolved) []checkResult {
	var out []checkResult
	for _, u := range units(r.root, res.cfg, nil) {
		c := checkResult{Name: "unit " + u.Name}
		if !r.deps.Live {
			c.Status, c.Detail = checkSkip, "--root is not /"
			out = append(out, c)
			continue
		}
		sd, err := r.systemd(ctx)
		if err != nil {
			c.Status, c.Detail = checkFail, "systemd: "+err.Error()
			out = append(out, c)
			continue
		}
		st, err := sd.State(ctx, u.Name)
		switch {
		case err != nil:
			c.Status, c.Detail = checkFail, err.Error()
		case st.Active() && st.Enabled():
			c.Status, c.Detail = checkOK, st.String()
		default:
			c.Status, c.Detail = checkFail, st.String()
		}
		out = append(out, c)
	}
	return out
}

// checkAgent asks the agent once whether it is registered to the cluster.
func (r *Runner) checkAgent(ctx context.Context, res resolved) checkResult {
	cfgOK, cfg := res.valid, res.cfg
	c := checkResult{Name: "agent registration"}
	switch {
	case !cfgOK && !r.deps.Live:
		c.Status, c.Detail = checkSkip, "--root is not /"
		return c
	case !cfgOK:
		c.Status, c.Detail = checkFail, "unknown: the inputs are invalid, so the cluster is unknown"
		return c
	case !r.deps.Live && !agentNamed(cfg):
		c.Status, c.Detail = checkSkip, "--root is not / (set FIRSTRUN_AGENT_URL to ask an agent)"
		return c
	}
	st := r.deps.NewAgent(cfg.AgentURL).Get(ctx)
	switch {
	case st.RegisteredTo(cfg.Cluster):
		c.Status, c.Detail = checkOK, st.String()
	case st.WrongCluster(cfg.Cluster) != "":
		c.Status, c.Detail = checkFail, fmt.Sprintf("registered to %q, not %q: was ECS_CLUSTER picked up?", st.WrongCluster(cfg.Cluster), cfg.Cluster)
	default:
		c.Status, c.Detail = checkFail, st.String()
	}
	return c
}

// checkLastRun reports the run-once marker: firstrun must have run, and succeeded.
func (r *Runner) checkLastRun() checkResult {
	c := checkResult{Name: "last run"}
	rec, ok, err := lastrun.Read(r.root)
	switch {
	case err != nil:
		c.Status, c.Detail = checkFail, err.Error()
	case !ok:
		c.Status, c.Detail = checkFail, "firstrun has not run here"
	case rec.Result != lastrun.OK:
		c.Status, c.Detail = checkFail, rec.String()
	default:
		c.Status, c.Detail = checkOK, rec.String()
	}
	return c
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
