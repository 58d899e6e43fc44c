package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/state"
	"github.com/firstrun/firstrun/internal/testenv"
)

// failingWriter is the real writer that fails, as a crash would stop it, at the first
// change of the given action to a file other than the state file (the changes before it
// are made).
type failingWriter struct {
	*files.Writer
	failAt files.Action
	failed bool
}

func (w *failingWriter) Apply(changes []files.Change) error {
	for _, c := range changes {
		if c.Action == w.failAt && c.Path != hostpath.StateFile && !w.failed {
			w.failed = true
			return errors.New("injected failure before " + string(c.Action) + " " + c.Path)
		}
		if err := w.Writer.Apply([]files.Change{c}); err != nil {
			return err
		}
	}
	return nil
}

// runWith runs a job on root with env whose writer fails at the first change of action.
func runWith(t *testing.T, root string, env []string, failAt files.Action) int {
	t.Helper()
	j := &job{
		opts: options{root: root, logFormat: "json"}, env: env, root: hostpath.Root(root),
		stdout: io.Discard, stderr: io.Discard,
		deps: testDeps(root, func(d *deps) {
			d.newWriter = func(r hostpath.Root) fileWriter { return &failingWriter{Writer: files.NewWriter(r), failAt: failAt} }
		}),
	}
	return j.run(context.Background(), zap.NewNop())
}

// ownedOnDisk returns the files the state file on disk says firstrun owns, and the
// keys it owns in common-config.toml.
func ownedOnDisk(t *testing.T, root string) ([]string, []string) {
	t.Helper()
	data, _ := frRead(t, root, "/var/lib/firstrun/state.json")
	s, err := state.Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return s.Files, s.CommonConfigKeys
}

// TestStopMidApplyForgetsNothing: wherever a run stops, the state file on disk names
// every file firstrun has written and not yet removed, so the next run can converge.
func TestStopMidApplyForgetsNothing(t *testing.T) {
	proxyFiles := []string{
		"/etc/systemd/system/docker.service.d/http-proxy.conf",
		"/etc/systemd/system/ecs.service.d/http-proxy.conf",
	}
	const commonConfig = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	t.Run("stopped while creating", func(t *testing.T) {
		root := frRoot(t)
		if code := runWith(t, root, chapterEnv, files.Created); code != exitApply {
			t.Fatalf("exit %d, want %d", code, exitApply)
		}
		files, keys := ownedOnDisk(t, root)
		owned := strings.Join(files, ",")
		for _, p := range proxyFiles {
			if !strings.Contains(owned, p) {
				t.Errorf("state does not own %s before it is written: %s", p, owned)
			}
		}
		if len(keys) != 3 {
			t.Errorf("state owns %q of common-config.toml before writing it, want the 3 proxy keys", keys)
		}
	})
	t.Run("stopped while removing", func(t *testing.T) {
		root := frRoot(t)
		if r := frRun(t, chapterEnv, "--root", root); r.code != exitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		noProxy := testenv.WithEnv(chapterEnv, "-PROXY_URL")
		if code := runWith(t, root, noProxy, files.Removed); code != exitApply {
			t.Fatalf("exit %d, want %d", code, exitApply)
		}
		files, keys := ownedOnDisk(t, root)
		owned := strings.Join(files, ",")
		for _, p := range proxyFiles {
			if _, exists := frRead(t, root, p); exists && !strings.Contains(owned, p) {
				t.Errorf("%s is still on disk but the state forgot it: %s", p, owned)
			}
		}
		if cc, _ := frRead(t, root, commonConfig); strings.Contains(cc, "http_proxy") && len(keys) == 0 {
			t.Errorf("common-config.toml still holds the proxy but the state forgot its keys:\n%s", cc)
		}
		// The next run finishes the job.
		if r := frRun(t, noProxy, "--root", root); r.code != exitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		for _, p := range proxyFiles {
			if _, exists := frRead(t, root, p); exists {
				t.Errorf("%s left behind", p)
			}
		}
		if cc, exists := frRead(t, root, commonConfig); !exists || strings.Contains(cc, "proxy") {
			t.Errorf("common-config.toml (exists %v) after the proxy was removed:\n%s", exists, cc)
		}
	})
}

// TestSignalStopsBetweenPhases: a run whose context is cancelled (SIGTERM) stops
// before the next phase with its own exit code, and writes nothing it had not begun.
func TestSignalStopsBetweenPhases(t *testing.T) {
	root := frRoot(t)
	before := testenv.Snapshot(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j := &job{opts: options{root: root}, env: chapterEnv, root: hostpath.Root(root),
		stdout: io.Discard, stderr: io.Discard, deps: testDeps(root)}
	if code := j.run(ctx, zap.NewNop()); code != exitInterrupted {
		t.Errorf("exit %d, want %d", code, exitInterrupted)
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
}
