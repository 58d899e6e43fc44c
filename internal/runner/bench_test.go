package runner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/testenv"
)

// changedEnv are the chapter's inputs with another cluster and another proxy: on a
// root configured with runnertest.ChapterEnv, ecs.config and the proxy files are updated.
var changedEnv = testenv.WithEnv(runnertest.ChapterEnv,
	"ECS_CLUSTER=other-cluster",
	"PROXY_URL=http://carol:s3cret@proxy2.internal:8080",
)

// benchRoot returns a fresh root under dir that looks like an AL2023 ECS instance
// with the CloudWatch agent installed and nothing configured yet: every file firstrun
// renders is missing.
func benchRoot(b *testing.B, dir string) string {
	b.Helper()
	root, err := os.MkdirTemp(dir, "root-")
	if err != nil {
		b.Fatal(err)
	}
	testenv.WriteFile(b, root, hostpath.CloudWatchAgentBinary, "", 0o755)
	return root
}

// benchConfigure runs the whole tool once on root with env, as an image build would.
func benchConfigure(b *testing.B, root string, env []string) {
	b.Helper()
	if code := configure(b, root, env); code != runrecord.ExitOK {
		b.Fatalf("configuring %s: exit %d", root, code)
	}
}

// configure runs firstrun on root with env as an image build does (everything but the
// services and the agent), JSON logs to io.Discard, and returns the exit code.
func configure(b *testing.B, root string, env []string) int {
	log, err := logging.New(io.Discard, logging.JSON)
	if err != nil {
		b.Fatal(err)
	}
	r := New(Options{Root: root, LogFormat: logging.JSON, Skip: skip("services", "health"), Version: "bench"}, env, io.Discard, io.Discard, RealDeps(root))
	defer r.Close()
	return r.Run(context.Background(), log)
}

// dryRun is a --dry-run of root with env, resolved: its inputs are read and validated
// and the state file is read, so that render and apply are all that is left.
type dryRun struct {
	r   *Runner
	res resolved
	app applied // the last renderDiff's
	ren rendered
}

// newDryRun returns the dry run of root with env, resolved.
func newDryRun(b *testing.B, root string, env []string) *dryRun {
	b.Helper()
	r := New(Options{Root: root, DryRun: true, LogFormat: logging.JSON}, env, io.Discard, io.Discard, RealDeps(root))
	b.Cleanup(r.Close)
	res, err := r.resolve(context.Background(), zap.NewNop())
	if err != nil {
		b.Fatalf("resolve: %v", err)
	}
	return &dryRun{r: r, res: res}
}

// renderDiff is one run between validated inputs and writing, as --dry-run does it:
// render every file (Runner.render), plan them and the state file against the root,
// reading the files there, and diff every change (Runner.apply with --dry-run, which
// diffs every change to stdout, io.Discard here, and writes nothing). The changes are
// left in d.app.changes.
func renderDiff(b *testing.B, d *dryRun) {
	log := zap.NewNop()
	d.ren = d.r.render(log, d.res)
	app, err := d.r.apply(log, d.res, d.ren)
	if err != nil {
		b.Fatalf("apply --dry-run: %v", err)
	}
	d.app = app
}

// BenchmarkRenderDiff measures what a run does between having validated inputs and
// writing, with its allocations: rendering every file (ecs.config, the proxy drop-ins,
// the log agent's files, the state file), planning them against the root (reading
// every current file) and the unified diff of every change, secrets redacted. Inputs
// and the earlier state are resolved once, outside the timed loop.
//
//   - fresh: nothing configured yet; every file is created and every diff is whole.
//   - unchanged: the root is configured with the same inputs; every file is
//     unchanged and no diff is made.
//   - changed: the root is configured, then the cluster and the proxy differ; those
//     files are updated and their diffs are non-empty.
func BenchmarkRenderDiff(b *testing.B) {
	for _, bc := range []struct {
		name      string
		configure bool // run once with runnertest.ChapterEnv first
		env       []string
		check     func(b *testing.B, d *dryRun, diffs []string)
	}{
		{"fresh", false, runnertest.ChapterEnv, func(b *testing.B, d *dryRun, diffs []string) {
			if len(d.app.changes) != len(d.ren.want)+1 {
				b.Fatalf("%d changes for %d files rendered and the state file", len(d.app.changes), len(d.ren.want))
			}
			for i, c := range d.app.changes {
				if c.Action != files.Created || diffs[i] == "" {
					b.Fatalf("%s: %s with a diff of %d bytes, want created with a diff", c.Path, c.Action, len(diffs[i]))
				}
			}
		}},
		{"unchanged", true, runnertest.ChapterEnv, func(b *testing.B, d *dryRun, diffs []string) {
			if len(d.app.changes) != len(d.ren.want)+1 {
				b.Fatalf("%d changes for %d files rendered and the state file", len(d.app.changes), len(d.ren.want))
			}
			for i, c := range d.app.changes {
				if c.Action != files.Unchanged || diffs[i] != "" {
					b.Fatalf("%s: %s with a diff of %d bytes, want unchanged without a diff", c.Path, c.Action, len(diffs[i]))
				}
			}
		}},
		{"changed", true, changedEnv, func(b *testing.B, d *dryRun, diffs []string) {
			all := strings.Join(diffs, "")
			for _, want := range []string{"-ECS_CLUSTER=microtrader-cluster", "+ECS_CLUSTER=other-cluster", "proxy2.internal:8080"} {
				if !strings.Contains(all, want) {
					b.Fatalf("the diffs lack %q:\n%s", want, all)
				}
			}
			if strings.Contains(all, "s3cret") {
				b.Fatalf("the diffs show the proxy password:\n%s", all)
			}
			updated := 0
			for i, c := range d.app.changes {
				if c.Action == files.Updated && diffs[i] != "" {
					updated++
				}
			}
			if updated < 3 { // ecs.config and the two drop-ins at least
				b.Fatalf("%d files updated with a diff, want at least 3:\n%s", updated, all)
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			root := benchRoot(b, b.TempDir())
			if bc.configure {
				benchConfigure(b, root, runnertest.ChapterEnv)
			}
			j := newDryRun(b, root, bc.env)
			before := testenv.Snapshot(b, root)
			// The work measured is real: the files rendered, the changes and their
			// diffs are what the case says, before the loop and after it.
			sane := func() {
				renderDiff(b, j)
				diffs := make([]string, len(j.app.changes))
				for i, c := range j.app.changes {
					diffs[i] = files.Diff(c)
				}
				bc.check(b, j, diffs)
			}
			sane()

			b.ReportAllocs()
			for b.Loop() {
				renderDiff(b, j)
			}

			sane()
			testenv.SameSnapshot(b, before, testenv.Snapshot(b, root)) // nothing written
		})
	}
}

// BenchmarkConfigure measures the whole tool in process, as an image build runs it
// (run with --skip services,health and JSON logs to io.Discard), with its allocations:
// flags, logger, platform, inputs, state, render, plan, apply and the last-run marker.
//
//   - first: a fresh root each iteration (made with the timer stopped): every file is
//     created, each durably (temp file, fsync, rename, fsync of the directory, and
//     fsyncs of the directories made), so the fsyncs dominate on most disks.
//   - rerun: the same configured root each iteration: nothing changes and nothing is
//     written (checked after the loop).
func BenchmarkConfigure(b *testing.B) {
	b.Run("first", func(b *testing.B) {
		dir := b.TempDir()
		var root string
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			if root != "" {
				if err := os.RemoveAll(root); err != nil {
					b.Fatal(err)
				}
			}
			root = benchRoot(b, dir)
			b.StartTimer()
			if code := configure(b, root, runnertest.ChapterEnv); code != runrecord.ExitOK {
				b.Fatalf("exit %d", code)
			}
		}
		if _, err := os.Stat(filepath.Join(root, hostpath.StateFile)); err != nil {
			b.Fatalf("the last run wrote no state file: %v", err)
		}
	})
	b.Run("rerun", func(b *testing.B) {
		root := benchRoot(b, b.TempDir())
		benchConfigure(b, root, runnertest.ChapterEnv)
		before := testenv.Snapshot(b, root)
		b.ReportAllocs()
		for b.Loop() {
			if code := configure(b, root, runnertest.ChapterEnv); code != runrecord.ExitOK {
				b.Fatalf("exit %d", code)
			}
		}
		testenv.SameSnapshot(b, before, testenv.Snapshot(b, root)) // nothing written
	})
}
