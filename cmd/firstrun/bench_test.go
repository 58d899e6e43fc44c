package main

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
	"github.com/firstrun/firstrun/internal/testenv"
)

// changedEnv are the chapter's inputs with another cluster and another proxy: on a
// root configured with chapterEnv, ecs.config and the proxy files are updated.
var changedEnv = testenv.WithEnv(chapterEnv,
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
	if code := run(benchRunArgs(root), env, io.Discard, io.Discard); code != exitOK {
		b.Fatalf("configuring %s: exit %d", root, code)
	}
}

// benchRunArgs are BenchmarkConfigure's flags: everything but the services and the
// agent, JSON logs.
func benchRunArgs(root string) []string {
	return []string{"--root", root, "--skip", "services,health", "--log-format", "json"}
}

// dryRunJob returns a job built as run builds one, for a --dry-run of root with env,
// resolved: its inputs are read and validated and the state file is read, so that
// render and apply are all that is left.
func dryRunJob(b *testing.B, root string, env []string) *job {
	b.Helper()
	opts, code, done := parseFlags([]string{"--root", root, "--dry-run"}, io.Discard, io.Discard)
	if done {
		b.Fatalf("parsing flags: exit %d", code)
	}
	j := &job{opts: opts, env: env, root: hostpath.Root(opts.root), stdout: io.Discard, stderr: io.Discard, deps: realDeps(opts.root)}
	b.Cleanup(j.close)
	if err := j.resolve(context.Background(), zap.NewNop()); err != nil {
		b.Fatalf("resolve: %v", err)
	}
	return j
}

// renderDiff is one run between validated inputs and writing, as --dry-run does it:
// render every file (job.render), plan them and the state file against the root,
// reading the files there, and diff every change (job.apply with --dry-run, which
// diffs every change to stdout, io.Discard here, and writes nothing). The changes are
// left in j.changes.
func renderDiff(b *testing.B, j *job) {
	ctx, log := context.Background(), zap.NewNop()
	if err := j.render(ctx, log); err != nil {
		b.Fatalf("render: %v", err)
	}
	if err := j.apply(ctx, log); err != nil {
		b.Fatalf("apply --dry-run: %v", err)
	}
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
		configure bool // run once with chapterEnv first
		env       []string
		check     func(b *testing.B, j *job, diffs []string)
	}{
		{"fresh", false, chapterEnv, func(b *testing.B, j *job, diffs []string) {
			if len(j.changes) != len(j.want)+1 {
				b.Fatalf("%d changes for %d files rendered and the state file", len(j.changes), len(j.want))
			}
			for i, c := range j.changes {
				if c.Action != files.Created || diffs[i] == "" {
					b.Fatalf("%s: %s with a diff of %d bytes, want created with a diff", c.Path, c.Action, len(diffs[i]))
				}
			}
		}},
		{"unchanged", true, chapterEnv, func(b *testing.B, j *job, diffs []string) {
			if len(j.changes) != len(j.want)+1 {
				b.Fatalf("%d changes for %d files rendered and the state file", len(j.changes), len(j.want))
			}
			for i, c := range j.changes {
				if c.Action != files.Unchanged || diffs[i] != "" {
					b.Fatalf("%s: %s with a diff of %d bytes, want unchanged without a diff", c.Path, c.Action, len(diffs[i]))
				}
			}
		}},
		{"changed", true, changedEnv, func(b *testing.B, j *job, diffs []string) {
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
			for i, c := range j.changes {
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
				benchConfigure(b, root, chapterEnv)
			}
			j := dryRunJob(b, root, bc.env)
			before := testenv.Snapshot(b, root)
			// The work measured is real: the files rendered, the changes and their
			// diffs are what the case says, before the loop and after it.
			sane := func() {
				renderDiff(b, j)
				diffs := make([]string, len(j.changes))
				for i, c := range j.changes {
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
			if code := run(benchRunArgs(root), chapterEnv, io.Discard, io.Discard); code != exitOK {
				b.Fatalf("exit %d", code)
			}
		}
		if _, err := os.Stat(filepath.Join(root, hostpath.StateFile)); err != nil {
			b.Fatalf("the last run wrote no state file: %v", err)
		}
	})
	b.Run("rerun", func(b *testing.B) {
		root := benchRoot(b, b.TempDir())
		benchConfigure(b, root, chapterEnv)
		before := testenv.Snapshot(b, root)
		b.ReportAllocs()
		for b.Loop() {
			if code := run(benchRunArgs(root), chapterEnv, io.Discard, io.Discard); code != exitOK {
				b.Fatalf("exit %d", code)
			}
		}
		testenv.SameSnapshot(b, before, testenv.Snapshot(b, root)) // nothing written
	})
}
