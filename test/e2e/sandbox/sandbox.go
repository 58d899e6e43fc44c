// Package sandbox boots a throwaway Amazon ECS container instance look-alike for
// firstrun's end-to-end tests: a Debian bookworm root file system with systemd, D-Bus
// and docker, provisioned by mkrootfs.sh like a freshly booted, baked ECS AMI (docker,
// ecs and the CloudWatch agent installed but disabled; a fake ECS agent and a fake
// CloudWatch agent behind the real unit names), booted with systemd-nspawn.
//
// Each sandbox has its own network namespace (loopback only), its own volatile overlay
// over the cached rootfs (every write is thrown away at Stop) and its own cgroup
// subtree, so several can run at once. The host directory Config.BinDir is bound
// read-only at /opt/sandbox/bin: fakeagent, fakecwagent and firstrun live there, so
// rebuilding them never invalidates the rootfs cache.
//
// The container is reached with nsenter into its PID 1's namespaces (machinectl and
// systemd-run -M need a host systemd, which the test machines lack). Everything needs
// root; Requirements says what is missing.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/test/imdsmock"
)

// BinMount is where Config.BinDir appears inside the sandbox.
const BinMount = "/opt/sandbox/bin"

// CloudWatchAgentVersion is what the image's CloudWatch agent version file
// (/opt/aws/amazon-cloudwatch-agent/bin/CWAGENT_VERSION) says: an agent that ships the
// journal (1.300070.0 and later). A test writes an older version there before running
// firstrun to stand for an older agent.
const CloudWatchAgentVersion = "1.300070.0"

// Bounds of the sandbox's life cycle.
const (
	bootTimeout = 60 * time.Second // nspawn started → running or degraded
	stopTimeout = 10 * time.Second // SIGTERM (poweroff) → SIGKILL
	consoleTail = 64 << 10         // console bytes kept for diagnosis
)

// namePrefix starts every sandbox's machine name, and its cgroups' names.
const namePrefix = "fr-e2e-"

// containerPath is the PATH of every command run in the sandbox.
const containerPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// Config says how to start a sandbox.
type Config struct {
	// CacheDir holds the cached rootfs (see Rootfs); DefaultCacheDir when empty.
	CacheDir string
	// BinDir is the host directory bound read-only at /opt/sandbox/bin (BinMount).
	BinDir string
	// Stdout and Stderr receive systemd-nspawn's output, the container's console
	// included; either may be nil. The last 64 KiB are kept anyway (Sandbox.Console).
	Stdout, Stderr io.Writer
}

// Sandbox is a running container. Its methods are safe for concurrent use.
type Sandbox struct {
	name    string
	rootfs  string
	cmd     *exec.Cmd
	pid1    int
	exited  chan struct{} // closed once systemd-nspawn has exited
	console *tail
	cgroups []string

	mu       sync.Mutex                      // guards the fields below
	execs    map[int]context.CancelCauseFunc // Execs in flight
	lastExec int
	idle     chan struct{} // closed when the last Exec returns, while Stop waits
	stopping bool

	stopOnce sync.Once
	stopErr  error
}

// DefaultCacheDir is where the rootfs is cached: $FIRSTRUN_SANDBOX_CACHE, else
// /var/cache/firstrun-sandbox.
func DefaultCacheDir() string {
	if d := os.Getenv("FIRSTRUN_SANDBOX_CACHE"); d != "" {
		return d
	}
	return "/var/cache/firstrun-sandbox"
}

// Requirements returns nil when sandboxes can run here, else an error naming
// everything that is missing.
func Requirements() error {
	var missing []string
	if uid := os.Geteuid(); uid != 0 {
		missing = append(missing, fmt.Sprintf("must run as root (euid %d)", uid))
	}
	for _, tool := range []struct{ name, pkg string }{
		{"systemd-nspawn", "systemd-container"},
		{"debootstrap", "debootstrap"},
		{"nsenter", "util-linux"},
		{"flock", "util-linux"},
		{"findmnt", "util-linux"},
		{"go", "a Go toolchain"},
		{"make", "make"},
	} {
		if _, err := exec.LookPath(tool.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s not found (install %s)", tool.name, tool.pkg))
		}
	}
	if _, err := cgroupDirs("probe"); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return fmt.Errorf("sandbox requirements: %s", strings.Join(missing, "; "))
	}
	return nil
}

// sourceDir is the directory of this file, where mkrootfs.sh sits.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// repoRoot is the repository's top directory.
func repoRoot() string { return filepath.Join(sourceDir(), "..", "..", "..") }

// Rootfs returns the path of the cached rootfs in cacheDir, building it first when
// missing (mkrootfs.sh: about 75 s cold, instant warm).
func Rootfs(ctx context.Context, cacheDir string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(sourceDir(), "mkrootfs.sh"), cacheDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// On cancel, SIGTERM the whole group (debootstrap included) so the script's
	// EXIT trap removes its half-built tree; SIGKILL if that takes too long.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build rootfs in %s: %w\n%s", cacheDir, err, lastLines(stderr.String(), 30))
	}
	dir := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(filepath.Join(dir, "etc", "systemd", "system", "ecs.service")); err != nil {
		return "", fmt.Errorf("build rootfs in %s: script printed %q, not a rootfs: %w", cacheDir, dir, err)
	}
	return dir, nil
}

// BuildBinaries builds, static (CGO_ENABLED=0), what the sandbox runs from
// /opt/sandbox/bin into dir: fakeagent, fakecwagent, fakecfn, AWS's IMDS mock
// (ec2-metadata-mock), and firstrun itself
// (`make build OUT=dir/firstrun`, the release build).
func BuildBinaries(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("build binaries: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build binaries: %w", err)
	}
	root := repoRoot()
	builds := [][]string{
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "fakeagent"), "./test/e2e/fakeagent"},
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "fakecwagent"), "./test/e2e/fakecwagent"},
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "fakecfn"), "./test/e2e/fakecfn"},
		{"make", "--no-print-directory", "-C", root, "build", "OUT=" + filepath.Join(dir, "firstrun")},
	}
	if err := imdsmock.Build(ctx, filepath.Join(dir, "ec2-metadata-mock")); err != nil {
		return fmt.Errorf("build binaries: %w", err)
	}
	for _, args := range builds {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build binaries: %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// Start boots a sandbox and returns once its systemd reports the system running or
// degraded (bounded by 60 s and ctx). On failure nothing is left running and the error
// carries the end of the console output.
func Start(ctx context.Context, cfg Config) (*Sandbox, error) {
	if err := Requirements(); err != nil {
		return nil, err
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = DefaultCacheDir()
	}
	bin, err := filepath.Abs(cfg.BinDir)
	if err != nil || cfg.BinDir == "" || strings.Contains(bin, ":") {
		return nil, fmt.Errorf("start sandbox: BinDir %q must be a directory path without ':'", cfg.BinDir)
	}
	if st, err := os.Stat(bin); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("start sandbox: BinDir %q is not a directory", bin)
	}
	rootfs, err := Rootfs(ctx, cfg.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}

	s := &Sandbox{name: namePrefix + randomHex(4), rootfs: rootfs, exited: make(chan struct{}), console: &tail{max: consoleTail}}
	if s.cgroups, err = cgroupDirs(s.name); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	for _, d := range s.cgroups {
		sweepCgroups(d)
		if err := os.Mkdir(d, 0o755); err != nil {
			s.removeCgroups()
			return nil, fmt.Errorf("start sandbox %s: create cgroup: %w", s.name, err)
		}
	}

	nspawn := []string{
		"systemd-nspawn", "--boot", "--directory=" + rootfs, "--machine=" + s.name,
		"--register=no", "--keep-unit", "--console=read-only", "--link-journal=no",
		"--volatile=overlay", "--private-network", "--bind-ro=" + bin + ":" + BinMount,
		"--setenv=SYSTEMD_COLORS=0", // a plain console log to show in errors
	}
	// The wrapper shell moves itself into the sandbox's own cgroups, then becomes
	// systemd-nspawn: with --keep-unit, nspawn puts the container in "payload" and itself
	// in "supervisor" below its current cgroup, so two sandboxes started from one
	// process would otherwise share (and fight over) one cgroup tree.
	args := []string{"-c", `while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs" || exit 1; shift; done; shift; exec "$@"`, "sh"}
	args = append(append(append(args, s.cgroups...), "--"), nspawn...)
	s.cmd = exec.Command("/bin/sh", args...)
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	s.cmd.Stdout = writers(s.console, cfg.Stdout)
	s.cmd.Stderr = writers(s.console, cfg.Stderr)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // no terminal signals meant for the test process
		Pdeathsig: syscall.SIGTERM, // the test process dies: nspawn powers the container off
	}
	if err := s.cmd.Start(); err != nil {
		s.removeCgroups()
		return nil, fmt.Errorf("start sandbox %s: %w", s.name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	bootCtx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if err := s.waitBooted(bootCtx); err != nil {
		s.kill()
		<-s.exited
		s.removeCgroups()
		return nil, fmt.Errorf("start sandbox %s: %w\nconsole output, last lines:\n%s", s.name, err, lastLines(s.console.String(), 40))
	}
	return s, nil
}

// waitBooted finds the container's PID 1 and waits until systemd says the system is
// running or degraded.
func (s *Sandbox) waitBooted(ctx context.Context) error {
	start := time.Now()
	for s.pid1 == 0 {
		pid, err := containerInit(s.cmd.Process.Pid)
		if err != nil {
			return err
		}
		if pid != 0 {
			s.pid1 = pid
			break
		}
		if err := s.pause(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("no container PID 1 after %s: %w", time.Since(start).Round(time.Millisecond), err)
		}
	}
	state := ""
	for {
		out, _, _, err := s.Exec(ctx, nil, "systemctl", "is-system-running", "--wait")
		if err == nil {
			state = strings.TrimSpace(string(out))
			if state == "running" || state == "degraded" {
				return nil
			}
		}
		if err := s.pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("system not running after %s (last state %q): %w", time.Since(start).Round(time.Millisecond), state, err)
		}
	}
}

// pause sleeps for d; it returns an error when ctx ends or nspawn has exited.
func (s *Sandbox) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.exited:
		return fmt.Errorf("systemd-nspawn exited: %v", s.cmd.ProcessState)
	case <-time.After(d):
		return nil
	}
}

// Name returns the sandbox's machine name, also its host name.
func (s *Sandbox) Name() string { return s.name }

// PID1 returns the host PID of the container's systemd.
func (s *Sandbox) PID1() int { return s.pid1 }

// Rootfs returns the host directory the sandbox's overlay is based on; it never
// reflects the sandbox's writes.
func (s *Sandbox) Rootfs() string { return s.rootfs }

// Console returns the last 64 KiB of systemd-nspawn's output.
func (s *Sandbox) Console() string { return s.console.String() }

// Exec runs args inside the sandbox, in all of its namespaces, with a clean
// environment (only PATH; nothing of the host's leaks in), stdin from stdin (may be
// nil). It returns the command's output and exit status (128+N when killed by signal
// N; 127 when the command is not found); err is set only when the command could not
// be run or did not finish before ctx ended.
func (s *Sandbox) Exec(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr []byte, exit int, err error) {
	if len(args) == 0 {
		return nil, nil, -1, errors.New("sandbox exec: no command")
	}
	ctx, done, err := s.execStart(ctx)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("sandbox %s exec %s: %w", s.name, args[0], err)
	}
	defer done()
	full := append([]string{"-t", strconv.Itoa(s.pid1), "-a", "--", "env", "-i", containerPath}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = []string{containerPath}
	cmd.Stdin = stdin
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	// On cancel, kill what nsenter runs but not nsenter itself: it reaps its child and
	// exits. Killing both at once would leave the child's zombie to the host's init
	// (orphans of nsenter are reparented on the host side), and until that reaps it the
	// container cannot finish shutting down. WaitDelay kills nsenter if it lingers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		killGroupBut(cmd.Process.Pid)
		return nil
	}
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	stdout, stderr = outBuf.Bytes(), errBuf.Bytes()
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errStopping) {
			return stdout, stderr, -1, fmt.Errorf("sandbox %s exec %s: %w", s.name, args[0], errStopping)
		}
		return stdout, stderr, -1, fmt.Errorf("sandbox %s exec %s: %w", s.name, args[0], ctx.Err())
	}
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		return stdout, stderr, 0, nil
	case errors.As(runErr, &exitErr):
		if exitErr.ExitCode() == 1 && bytes.HasPrefix(stderr, []byte("nsenter: ")) {
			// nsenter could not enter the container (gone, or half torn down).
			return stdout, stderr, -1, fmt.Errorf("sandbox %s exec %s: %s", s.name, args[0], bytes.TrimSpace(stderr))
		}
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return stdout, stderr, 128 + int(ws.Signal()), nil
		}
		return stdout, stderr, exitErr.ExitCode(), nil
	default:
		return stdout, stderr, -1, fmt.Errorf("sandbox %s exec %s: %w", s.name, args[0], runErr)
	}
}

// errStopping is why Execs are cut short when Stop begins.
var errStopping = errors.New("sandbox is stopping")

// execStart registers an Exec so that Stop can end it first: it returns the context
// to run it with (cancelled when Stop begins) and the function to call when it is
// over; an error when the sandbox is stopping or gone.
func (s *Sandbox) execStart(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.exited:
		return nil, nil, errors.New("sandbox has stopped")
	default:
	}
	if s.stopping {
		return nil, nil, errStopping
	}
	ctx, cancel := context.WithCancelCause(ctx)
	if s.execs == nil {
		s.execs = map[int]context.CancelCauseFunc{}
	}
	s.lastExec++
	id := s.lastExec
	s.execs[id] = cancel
	return ctx, func() {
		cancel(nil)
		s.mu.Lock()
		delete(s.execs, id)
		if len(s.execs) == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
		s.mu.Unlock()
	}, nil
}

// endExecs cancels the Execs in flight and waits, bounded, until they have returned:
// an nsenter still waiting for its command at poweroff would hold up the shutdown.
func (s *Sandbox) endExecs() {
	s.mu.Lock()
	s.stopping = true
	var idle chan struct{}
	if len(s.execs) > 0 {
		idle = make(chan struct{})
		s.idle = idle
		for _, cancel := range s.execs {
			cancel(errStopping)
		}
	}
	s.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-time.After(5 * time.Second):
		}
	}
}

// killGroupBut SIGKILLs the members of process group pgid, and the children of its
// leader, except the leader itself.
func killGroupBut(pgid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold anything, so split after it.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 {
			continue
		}
		if f[1] == strconv.Itoa(pgid) || f[2] == strconv.Itoa(pgid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Run is Exec for commands expected to succeed: it returns their stdout, or an error
// with the exit status and stderr.
func (s *Sandbox) Run(ctx context.Context, args ...string) ([]byte, error) {
	out, errOut, code, err := s.Exec(ctx, nil, args...)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("sandbox %s: %s: exit status %d: %s", s.name, strings.Join(args, " "), code, bytes.TrimSpace(errOut))
	}
	return out, nil
}

// WriteFile writes data to path inside the sandbox (its overlay, not the rootfs on
// the host), creating missing parent directories, with the permission bits of mode.
func (s *Sandbox) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("sandbox %s write %s: path must be absolute", s.name, path)
	}
	_, errOut, code, err := s.Exec(ctx, bytes.NewReader(data),
		"install", "-D", "-m", fmt.Sprintf("%04o", mode.Perm()), "/dev/stdin", path)
	if err != nil {
		return fmt.Errorf("sandbox %s write %s: %w", s.name, path, err)
	}
	if code != 0 {
		return fmt.Errorf("sandbox %s write %s: install exit status %d: %s", s.name, path, code, bytes.TrimSpace(errOut))
	}
	return nil
}

// ReadFile returns the content of path inside the sandbox. A missing file gives an
// error that matches fs.ErrNotExist.
func (s *Sandbox) ReadFile(ctx context.Context, path string) ([]byte, error) {
	out, errOut, code, err := s.Exec(ctx, nil, "cat", "--", path)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s read %s: %w", s.name, path, err)
	}
	if code != 0 {
		if bytes.Contains(errOut, []byte("No such file or directory")) {
			return nil, fmt.Errorf("sandbox %s read %s: %w", s.name, path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("sandbox %s read %s: cat exit status %d: %s", s.name, path, code, bytes.TrimSpace(errOut))
	}
	return out, nil
}

// Stop powers the sandbox off (SIGTERM to systemd-nspawn), kills it if it is not gone
// within 10 s, and removes its cgroups. The overlay and every write to it are thrown
// away. Stop is idempotent; later calls return the first call's result.
func (s *Sandbox) Stop() error {
	s.stopOnce.Do(func() {
		s.endExecs()
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				s.kill()
				select {
				case <-s.exited:
					s.stopErr = fmt.Errorf("stop sandbox %s: no poweroff within %s, killed", s.name, stopTimeout)
				case <-time.After(stopTimeout):
					s.stopErr = fmt.Errorf("stop sandbox %s: systemd-nspawn (pid %d) survives SIGKILL", s.name, s.cmd.Process.Pid)
					return
				}
			}
		}
		s.removeCgroups()
	})
	return s.stopErr
}

// kill SIGKILLs every process of the sandbox: all of its cgroups' members (nspawn
// and the whole container, even before its PID 1 is known; killing nspawn alone would
// orphan the container), and nspawn itself in case it never joined them.
func (s *Sandbox) kill() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
	}
	for _, pid := range cgroupProcs(s.cgroups) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// removeCgroups removes the sandbox's cgroup trees, deepest first. A cgroup whose last
// process is still exiting cannot be removed yet, so it retries for up to 2 s; after
// that, what is left stays (and is swept by a later Start).
func (s *Sandbox) removeCgroups() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := false
		for _, top := range s.cgroups {
			if removeTree(top) != nil {
				left = true
			}
		}
		if !left || time.Now().After(deadline) {
			return
		}
		for _, pid := range cgroupProcs(s.cgroups) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeTree removes the cgroup directory top and its children, deepest first; it
// returns an error when some are left.
func removeTree(top string) error {
	var dirs []string
	_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cgroupProcs returns the PIDs of the processes in the cgroup trees under tops.
func cgroupProcs(tops []string) []int {
	var pids []int
	for _, top := range tops {
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// sweepCgroups removes the cgroup trees that sandboxes of processes killed before their
// Stop left beside dir: those named like a sandbox's, holding no process, and older
// than a minute (a younger one may belong to a Start in progress).
func sweepCgroups(dir string) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), namePrefix+"*"))
	for _, top := range old {
		st, err := os.Stat(top)
		if err != nil || time.Since(st.ModTime()) < time.Minute || len(cgroupProcs([]string{top})) > 0 {
			continue
		}
		_ = removeTree(top)
	}
}

// cgroupDirs returns, for each cgroup hierarchy systemd-nspawn uses (the v1
// name=systemd one and the unified one), the path of a child named name of this
// process's cgroup.
func cgroupDirs(name string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var mount string
		switch {
		case parts[1] == "name=systemd":
			mount = "/sys/fs/cgroup/systemd"
		case parts[0] == "0" && parts[1] == "":
			mount = "/sys/fs/cgroup/unified" // hybrid
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				mount = "/sys/fs/cgroup" // unified only
			}
		default:
			continue
		}
		if _, err := os.Stat(filepath.Join(mount, "cgroup.procs")); err != nil {
			continue
		}
		dirs = append(dirs, filepath.Join(mount, parts[2], name))
	}
	if len(dirs) == 0 {
		return nil, errors.New("cgroups: neither a name=systemd nor a unified cgroup hierarchy is mounted under /sys/fs/cgroup")
	}
	return dirs, nil
}

// containerInit returns the host PID of the container's systemd: the child of
// nspawnPID that is PID 1 of its own PID namespace and has executed systemd; 0 while
// there is none yet.
func containerInit(nspawnPID int) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find container PID 1: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue // gone meanwhile
		}
		var ppid, nspid, name string
		for _, line := range strings.Split(string(status), "\n") {
			key, value, _ := strings.Cut(line, ":")
			value = strings.TrimSpace(value)
			switch key {
			case "PPid":
				ppid = value
			case "NSpid":
				if f := strings.Fields(value); len(f) > 0 {
					nspid = f[len(f)-1]
				}
			case "Name":
				name = value
			}
		}
		if ppid == strconv.Itoa(nspawnPID) && nspid == "1" && name == "systemd" {
			return pid, nil
		}
	}
	return 0, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// writers returns a writer to w and to o when o is not nil.
func writers(w, o io.Writer) io.Writer {
	if o == nil {
		return w
	}
	return io.MultiWriter(w, o)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
