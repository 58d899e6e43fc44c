package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/runner/runnertest"
	"github.com/firstrun/firstrun/internal/runrecord"
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
	r := New(Options{Root: root, LogFormat: logging.JSON}, env, io.Discard, io.Discard, testDeps(root, func(d *Deps) {
		d.NewWriter = func(r hostpath.Root) FileWriter { return &failingWriter{Writer: files.NewWriter(r), failAt: failAt} }
	}))
	defer r.Close()
	return r.Run(context.Background(), zap.NewNop())
}

// ownedOnDisk returns the files the state file on disk says firstrun owns, and the
// keys it owns in common-config.toml.
func ownedOnDisk(t *testing.T, root string) ([]string, []string) {
	t.Helper()
	data, _ := runnertest.Read(t, root, "/var/lib/firstrun/state.json")
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
		"/etc/firstrun/proxy/docker.env",
		"/etc/firstrun/proxy/ecs.env",
	}
	const commonConfig = "/opt/aws/amazon-cloudwatch-agent/etc/common-config.toml"
	t.Run("stopped while creating", func(t *testing.T) {
		root := runnertest.Root(t)
		if code := runWith(t, root, runnertest.ChapterEnv, files.Created); code != runrecord.ExitFile {
			t.Fatalf("exit %d, want %d", code, runrecord.ExitFile)
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
		root := runnertest.Root(t)
		if r := runRoot(t, root, runnertest.ChapterEnv); r.Code != runrecord.ExitOK {
			t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
		}
		noProxy := testenv.WithEnv(runnertest.ChapterEnv, "-PROXY_URL")
		if code := runWith(t, root, noProxy, files.Removed); code != runrecord.ExitFile {
			t.Fatalf("exit %d, want %d", code, runrecord.ExitFile)
		}
		files, keys := ownedOnDisk(t, root)
		owned := strings.Join(files, ",")
		for _, p := range proxyFiles {
			if _, exists := runnertest.Read(t, root, p); exists && !strings.Contains(owned, p) {
				t.Errorf("%s is still on disk but the state forgot it: %s", p, owned)
			}
		}
		if cc, _ := runnertest.Read(t, root, commonConfig); strings.Contains(cc, "http_proxy") && len(keys) == 0 {
			t.Errorf("common-config.toml still holds the proxy but the state forgot its keys:\n%s", cc)
		}
		// The next run finishes the job.
		if r := runRoot(t, root, noProxy); r.Code != runrecord.ExitOK {
			t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
		}
		for _, p := range proxyFiles {
			if _, exists := runnertest.Read(t, root, p); exists {
				t.Errorf("%s left behind", p)
			}
		}
		if cc, exists := runnertest.Read(t, root, commonConfig); !exists || strings.Contains(cc, "proxy") {
			t.Errorf("common-config.toml (exists %v) after the proxy was removed:\n%s", exists, cc)
		}
	})
}

// TestSignalStopsBetweenPhases: a run whose context is cancelled (SIGTERM) stops
// before the next phase with its own exit code, and writes nothing it had not begun.
func TestSignalStopsBetweenPhases(t *testing.T) {
	root := runnertest.Root(t)
	before := testenv.Snapshot(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := New(Options{Root: root}, runnertest.ChapterEnv, io.Discard, io.Discard, testDeps(root))
	defer r.Close()
	if code := r.Run(ctx, zap.NewNop()); code != runrecord.ExitStopped {
		t.Errorf("exit %d, want %d", code, runrecord.ExitStopped)
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
}

// runRoot runs firstrun on root (not live: no services, no agent) with env, JSON logs
// parsed.
func runRoot(t *testing.T, root string, env []string) runnertest.Result {
	t.Helper()
	var stderr bytes.Buffer
	log, err := logging.New(&stderr, logging.JSON)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{Root: root, LogFormat: logging.JSON}, env, io.Discard, &stderr, RealDeps(root))
	defer r.Close()
	code := r.Run(context.Background(), log)
	return runnertest.Parse(t, code, "", stderr.String())
}
