package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// prepared is what Boot builds once per test process.
var prepared struct {
	once   sync.Once
	cache  string
	binDir string
	err    error
}

// prepare builds the cached rootfs and the binaries, once per process. The binaries go
// to a directory named for this process, so concurrent test processes never replace a
// binary another one's sandbox runs; directories of processes that are gone are
// removed.
func prepare() (cache, binDir string, err error) {
	prepared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		prepared.cache = DefaultCacheDir()
		if _, prepared.err = Rootfs(ctx, prepared.cache); prepared.err != nil {
			return
		}
		removeStaleBinDirs()
		prepared.binDir = filepath.Join(os.TempDir(), "firstrun-sandbox-bin-"+strconv.Itoa(os.Getpid()))
		prepared.err = BuildBinaries(ctx, prepared.binDir)
	})
	return prepared.cache, prepared.binDir, prepared.err
}

// removeStaleBinDirs removes the binary directories of test processes that are gone.
func removeStaleBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "firstrun-sandbox-bin-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "firstrun-sandbox-bin-"))
		if err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// Boot starts a sandbox for a test, or skips the test loudly (fails it under CI=true)
// when Requirements are not met. The rootfs and the binaries (fakeagent, fakecwagent,
// firstrun, at /opt/sandbox/bin inside) are built once per test process. The sandbox
// is stopped when the test ends; if the test failed, the end of the sandbox's journal
// is logged first. Set FIRSTRUN_SANDBOX_CONSOLE=1 to see the container's console on
// stderr.
func Boot(t testing.TB) *Sandbox {
	t.Helper()
	req := Requirements()
	testenv.Need(t, req == nil, fmt.Sprintf("end-to-end sandbox (%v)", req))
	cache, binDir, err := prepare()
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	cfg := Config{CacheDir: cache, BinDir: binDir}
	if os.Getenv("FIRSTRUN_SANDBOX_CONSOLE") == "1" {
		cfg.Stdout, cfg.Stderr = os.Stderr, os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	start := time.Now()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Logf("sandbox %s booted in %s", s.Name(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sandbox %s journal, last 200 lines:\n%s", s.Name(), s.journalTail())
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// journalTail returns the last 200 lines of the sandbox's journal for this boot, or why
// it could not be read.
func (s *Sandbox) journalTail() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.Run(ctx, "journalctl", "-b", "--no-pager", "-n", "200")
	if err != nil {
		return fmt.Sprintf("(journal unavailable: %v)\n%s", err, out)
	}
	return string(out)
}

// BootInstance boots a sandbox as an EC2 instance boots (see Instance) for a test, or
// skips the test as Boot does. It returns once the container's systemd answers: the
// boot goes on (WaitSystem, WaitRegistered). The sandbox is stopped when the test
// ends; if the test failed, the end of its journal and of its console are logged first.
func BootInstance(t testing.TB, in Instance) *Sandbox {
	t.Helper()
	req := Requirements()
	testenv.Need(t, req == nil, fmt.Sprintf("end-to-end sandbox (%v)", req))
	cache, binDir, err := prepare()
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	cfg := Config{CacheDir: cache, BinDir: binDir, Instance: &in}
	if os.Getenv("FIRSTRUN_SANDBOX_CONSOLE") == "1" {
		cfg.Stdout, cfg.Stderr = os.Stderr, os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sandbox %s journal, last 200 lines:\n%s\nconsole, last lines:\n%s", s.Name(), s.journalTail(), lastLines(s.Console(), 60))
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}
