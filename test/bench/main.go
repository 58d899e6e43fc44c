// Command bench measures firstrun side by side with the script it replaces,
// shared/reference/seed-firstrun.sh, and writes the figures to a file and a table:
//
//   - detection latency: from the moment the test agent (test/e2e/fakeagent, on
//     loopback) registers to the moment the tool exits 0, over runs with the
//     registration at varied delays; firstrun with --skip services, the seed with its
//     /etc paths under a temporary root and sudo, service, chkconfig and start
//     stubbed, both in the same run, alternating;
//   - the configuration phase: wall and CPU time from start to all files written, a
//     first run on a fresh root and a rerun that changes nothing;
//   - footprint: the static binary's size, peak RSS, the processes each tool spawns
//     (strace), and a full run on a booted sandbox instance against AWS's IMDS mock
//     (peak RSS, IMDS token PUTs and GETs);
//   - the Go benchmarks (go test -bench, with allocations).
//
// `make bench` runs it as root (the sandbox instance and strace need it). Timings are
// reported, never asserted: the targets are printed as met or missed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, benchTimeout)
	defer cancel()
	o := options{}
	flag.IntVar(&o.runs, "runs", 20, "detection runs per tool")
	flag.IntVar(&o.configRuns, "config-runs", 30, "configuration phase runs per tool")
	flag.StringVar(&o.out, "out", "bin/bench", "`DIR` for results.md and results.json")
	seedDefault, _ := testenv.SharedFile(seedScript)
	flag.StringVar(&o.seedPath, "seed-script", seedDefault, "the seed script `FILE`")
	flag.BoolVar(&o.instance, "instance", true, "measure a full run on a booted sandbox instance (root)")
	flag.BoolVar(&o.goBench, "go-bench", true, "run the Go benchmarks")
	flag.IntVar(&o.boots, "boots", 10, "boots of each user data form as an instance, for the boot table (0: none; root)")
	flag.StringVar(&o.forms, "forms", "", "boot only the user data forms whose name matches this `REGEXP` (all when empty)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the registration delays' order")
	flag.Parse()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\nbench: %v\n", err)
		os.Exit(1)
	}
}

// benchTimeout bounds the whole run, builds included: it takes about 3 minutes and the
// boots (-boots 10) about 20 more, and the first time it also builds the sandbox's
// root file systems (about 3 minutes).
const benchTimeout = 60 * time.Minute

// options are the command's flags.
type options struct {
	runs, configRuns int
	out, seedPath    string
	instance         bool
	goBench          bool
	seed             uint64
	boots            int
	forms            string
}

// inputs are both tools' inputs: the chapter's, with a proxy, so that both write
// every file they know.
var inputs = []string{
	"ECS_CLUSTER=bench-cluster",
	"PROXY_URL=http://proxy.internal:3128",
	"STACK_NAME=bench-stack",
	"AUTOSCALING_GROUP=bench-stack-ECSAutoScalingGroup-1A2B",
	"AWS_DEFAULT_REGION=eu-west-1",
}

// bench runs every measurement and reports.
func bench(ctx context.Context, o options) error {
	if o.runs < 1 || o.configRuns < 1 {
		return errors.New("-runs and -config-runs must be at least 1")
	}
	if err := requirements(o); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "firstrun-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	r := &results{Date: time.Now().UTC().Format(time.RFC3339), Host: hostInfo(work)}

	step("Building firstrun (make build), the test agent and the AWS stand-ins")
	binDir := filepath.Join(work, "bin")
	if err := sandbox.BuildBinaries(ctx, binDir); err != nil {
		return err
	}
	h := &host{work: work, bin: binDir, firstrun: filepath.Join(binDir, "firstrun"), traces: filepath.Join(o.out, "traces")}
	if err := os.MkdirAll(h.traces, 0o755); err != nil {
		return err
	}
	st, err := os.Stat(h.firstrun)
	if err != nil {
		return err
	}
	r.BinaryBytes = st.Size()
	if out, err := exec.CommandContext(ctx, h.firstrun, "--version").Output(); err == nil {
		r.Version = strings.TrimSpace(string(out))
	}
	if h.seed, err = prepareSeed(o.seedPath, filepath.Join(work, "seed")); err != nil {
		return err
	}
	sock, stopPing, err := dockerPing(work)
	if err != nil {
		return err
	}
	defer stopPing()
	h.dockerSock = sock

	if o.boots > 0 {
		step("Boot → registered: %d boots of each user data form, as an instance boots", o.boots)
		if _, err := sandbox.Rootfs(ctx, sandbox.DefaultCacheDir()); err != nil {
			return err
		}
		b, err := boots(ctx, binDir, o.out, o.boots, o.forms)
		if err != nil {
			return err
		}
		r.Boots = &b
	}
	step("Configuration phase: %d runs of each, alternating", o.configRuns)
	if r.Config, err = h.configPhase(ctx, o.configRuns); err != nil {
		return err
	}
	step("Process start floors: %d runs of each", o.configRuns)
	if r.Floors, err = h.floors(ctx, o.configRuns); err != nil {
		return err
	}
	step("Detection latency: %d runs of each, alternating, registration after 0.1-4.9 s", o.runs)
	if r.Detection, err = h.detection(ctx, o.runs, o.seed); err != nil {
		return err
	}
	step("Processes and fsyncs: one run of each under strace")
	if r.Trace, err = h.trace(ctx); err != nil {
		return err
	}
	if o.instance {
		step("A full run on a booted sandbox instance with AWS's IMDS mock")
		if _, err := sandbox.Rootfs(ctx, sandbox.DefaultCacheDir()); err != nil {
			return err
		}
		fr, err := measureFullRun(ctx, binDir, h.traces)
		if err != nil {
			return err
		}
		r.FullRun = &fr
	}
	if o.goBench {
		step("Go benchmarks")
		if r.GoBench, err = goBenchmarks(ctx); err != nil {
			return err
		}
	}
	return r.write(o.out)
}

// requirements names everything missing for the run o asks for.
func requirements(o options) error {
	var missing []string
	for _, tool := range []struct{ name, pkg string }{
		{"bash", "bash"}, {"curl", "curl"}, {"jq", "jq"}, {"strace", "strace"}, {"make", "make"}, {"go", "a Go toolchain"},
	} {
		if _, err := exec.LookPath(tool.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s not found (install %s)", tool.name, tool.pkg))
		}
	}
	if _, err := os.Stat(o.seedPath); err != nil {
		missing = append(missing, fmt.Sprintf("the seed script: %v (-seed-script FILE)", err))
	}
	if o.instance || o.boots > 0 {
		if err := sandbox.Requirements(); err != nil {
			missing = append(missing, err.Error()+" (or -instance=false)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cannot run:\n  %s", strings.Join(missing, "\n  "))
	}
	return nil
}

func step(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "== %s\n", fmt.Sprintf(format, a...))
}

// host runs both tools on this host, each on temporary roots under work.
type host struct {
	work, bin, firstrun string
	traces              string // where the strace outputs are kept
	seed                seed
	dockerSock          string
	roots               int
}

// newRoot returns a fresh directory for a tool's root.
func (h *host) newRoot(tool string) (string, error) {
	h.roots++
	root := filepath.Join(h.work, "roots", fmt.Sprintf("%s-%03d", tool, h.roots))
	return root, os.MkdirAll(root, 0o755)
}

// firstrunRoot is a fresh root that looks like an Amazon Linux 2023 ECS instance with
// the CloudWatch agent installed.
func (h *host) firstrunRoot() (string, error) {
	root, err := h.newRoot("firstrun")
	if err != nil {
		return "", err
	}
	for p, data := range map[string]string{
		"etc/os-release": "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\n",
		"opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent": "",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o755); err != nil {
			return "", err
		}
	}
	return root, os.MkdirAll(filepath.Join(root, "etc", "ecs"), 0o755)
}

// seedRoot is a fresh root for the seed.
func (h *host) seedRoot() (string, error) {
	root, err := h.newRoot("seed")
	if err != nil {
		return "", err
	}
	return root, seedRoot(root)
}

// firstrunCmd is firstrun on root with the inputs, the agent named so that health
// runs under a root other than /.
func (h *host) firstrunCmd(ctx context.Context, root string, skip string) *exec.Cmd {
	env := append([]string{"PATH=/usr/bin:/bin", "FIRSTRUN_AGENT_URL=" + agentURL, "FIRSTRUN_HEALTH_TIMEOUT=60s"}, inputs...)
	return command(ctx, env, h.firstrun, "--root", root, "--skip", skip, "--log-format", "json")
}

// seedCmd is the seed script (or its configuration part) on root.
func (h *host) seedCmd(ctx context.Context, root, script string) *exec.Cmd {
	return command(ctx, h.seed.env(root, inputs), "bash", script)
}

// run measures cmd and fails unless it exits 0; what it printed goes into the error.
func run(cmd *exec.Cmd) (sample, error) {
	s, _, err := runOutput(cmd)
	return s, err
}

// runOutput is run that also returns what cmd printed.
func runOutput(cmd *exec.Cmd) (sample, string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	s, err := measure(cmd)
	if err == nil && s.Exit != 0 {
		err = fmt.Errorf("%s exited %d:\n%s", strings.Join(cmd.Args, " "), s.Exit, out.String())
	}
	return s, out.String(), err
}

// ownTime returns the duration firstrun logged on its "firstrun done" line (JSON
// logs): its own work, from its phases' start to their end, without starting the
// process, reading its flags, or exiting.
func ownTime(log string) (time.Duration, error) {
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			Msg      string `json:"msg"`
			Duration string `json:"duration"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "firstrun done" {
			return time.ParseDuration(l.Duration)
		}
	}
	return 0, fmt.Errorf("no \"firstrun done\" line with a duration in firstrun's log:\n%s", log)
}

// configResults are the configuration phase's samples.
type configResults struct {
	FirstrunFirst, FirstrunRerun, SeedFirst, SeedRerun []sample
	// OwnFirst and OwnRerun are firstrun's own work in each of its runs (ownTime).
	OwnFirst, OwnRerun []time.Duration
}

// configPhase runs each tool n times on a fresh root, then again on the same root.
// firstrun skips services and health; the seed stops before "# Start services".
func (h *host) configPhase(ctx context.Context, n int) (configResults, error) {
	var c configResults
	for i := range n {
		// one runs a tool twice on a fresh root; own, when set, reads its own time from
		// what it printed.
		one := func(first, rerun *[]sample, owns []*[]time.Duration, newRoot func() (string, error), cmd func(root string) *exec.Cmd) error {
			root, err := newRoot()
			if err != nil {
				return err
			}
			for i, into := range []*[]sample{first, rerun} {
				settle()
				s, out, err := runOutput(cmd(root))
				if err != nil {
					return err
				}
				*into = append(*into, s)
				if owns != nil {
					own, err := ownTime(out)
					if err != nil {
						return err
					}
					*owns[i] = append(*owns[i], own)
				}
			}
			return hasCluster(root, "etc/ecs/ecs.config")
		}
		fr := func() error {
			return one(&c.FirstrunFirst, &c.FirstrunRerun, []*[]time.Duration{&c.OwnFirst, &c.OwnRerun}, h.firstrunRoot,
				func(root string) *exec.Cmd { return h.firstrunCmd(ctx, root, "services,health") })
		}
		sd := func() error {
			return one(&c.SeedFirst, &c.SeedRerun, nil, h.seedRoot,
				func(root string) *exec.Cmd { return h.seedCmd(ctx, root, h.seed.Config) })
		}
		if err := alternate(i, fr, sd); err != nil {
			return c, err
		}
	}
	return c, nil
}

// floorResults are the costs of starting each tool's programs and doing nothing.
type floorResults struct {
	// GoHello is a static Go program that prints a line; FirstrunVersion is
	// `firstrun --version`; BashNoop is `bash -c :`.
	GoHello, FirstrunVersion, BashNoop []sample
}

// helloGo is the smallest Go program, built static as firstrun is.
const helloGo = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"

// floors measures what starting a program costs on this machine, for each tool, n
// times, alternating: the part of each run no change to the tool's work can remove.
func (h *host) floors(ctx context.Context, n int) (floorResults, error) {
	var f floorResults
	dir := filepath.Join(h.work, "hello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloGo), 0o644); err != nil {
		return f, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		return f, err
	}
	hello := filepath.Join(dir, "hello")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", hello, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return f, fmt.Errorf("building a Go hello world: %w\n%s", err, out)
	}
	env := []string{"PATH=/usr/bin:/bin"}
	for range n {
		for _, c := range []struct {
			into *[]sample
			cmd  *exec.Cmd
		}{
			{&f.GoHello, command(ctx, env, hello)},
			{&f.FirstrunVersion, command(ctx, env, h.firstrun, "--version")},
			{&f.BashNoop, command(ctx, env, "bash", "-c", ":")},
		} {
			s, err := run(c.cmd)
			if err != nil {
				return f, err
			}
			*c.into = append(*c.into, s)
		}
	}
	return f, nil
}

// alternate runs a then b in even rounds, b then a in odd ones, so that neither tool
// always runs on the other's heels; it stops at the first error.
func alternate(round int, a, b func() error) error {
	if round%2 == 1 {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}

// settle flushes every file system before a timed run: the seed's writes, never
// flushed, and the roots just made would otherwise be committed by the next fsync
// firstrun makes, and timed as firstrun's.
func settle() { syscall.Sync() }

// hasCluster checks that a tool wrote the cluster into ecs.config under root.
func hasCluster(root, p string) error {
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		return fmt.Errorf("the tool did not write %s: %w", p, err)
	}
	if !strings.Contains(string(data), "ECS_CLUSTER=bench-cluster\n") {
		return fmt.Errorf("%s under %s lacks ECS_CLUSTER=bench-cluster:\n%s", p, root, data)
	}
	return nil
}

// detectionRun is one detection measurement.
type detectionRun struct {
	Delay   time.Duration // the agent's registration delay
	Latency time.Duration // registration → the tool's exit
	Sample  sample
}

// detectionResults are both tools' detection runs.
type detectionResults struct {
	Firstrun, Seed []detectionRun
}

// delays returns n registration delays spread evenly over [lo, hi), one in each of n
// equal slices at a random place in it, in random order.
func delays(n int, lo, hi time.Duration, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed))
	slice := (hi - lo) / time.Duration(n)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = lo + time.Duration(i)*slice + time.Duration(rng.Int64N(int64(slice)))
	}
	rng.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// detection runs each tool n times against a fresh test agent, alternating, with the
// registration at varied delays below the seed's 5 s poll period.
func (h *host) detection(ctx context.Context, n int, seed uint64) (detectionResults, error) {
	var d detectionResults
	for i, delay := range delays(n, 100*time.Millisecond, 4900*time.Millisecond, seed) {
		fr := func() error {
			root, err := h.firstrunRoot()
			if err != nil {
				return err
			}
			r, err := h.detect(ctx, delay, func(ctx context.Context) *exec.Cmd { return h.firstrunCmd(ctx, root, "services") })
			d.Firstrun = append(d.Firstrun, r)
			return err
		}
		sd := func() error {
			root, err := h.seedRoot()
			if err != nil {
				return err
			}
			r, err := h.detect(ctx, delay, func(ctx context.Context) *exec.Cmd { return h.seedCmd(ctx, root, h.seed.Full) })
			d.Seed = append(d.Seed, r)
			return err
		}
		if err := alternate(i, fr, sd); err != nil {
			return d, err
		}
		fmt.Fprintf(os.Stderr, "   %2d/%d  registration after %5dms: firstrun %6.1fms, seed %7.1fms\n", i+1, n,
			delay.Milliseconds(), ms(d.Firstrun[i].Latency), ms(d.Seed[i].Latency))
	}
	return d, nil
}

// detect starts a test agent that registers after delay, runs the tool at once, and
// measures from the registration to the tool's exit.
func (h *host) detect(ctx context.Context, delay time.Duration, tool func(context.Context) *exec.Cmd) (detectionRun, error) {
	r := detectionRun{Delay: delay}
	ctx, cancel := context.WithTimeout(ctx, delay+time.Minute)
	defer cancel()
	if err := waitPortFree(ctx); err != nil {
		return r, err
	}
	settle()
	a, err := startAgent(filepath.Join(h.bin, "fakeagent"), h.dockerSock, h.work, "bench-cluster", delay)
	if err != nil {
		return r, err
	}
	defer a.stop()
	if r.Sample, err = run(tool(ctx)); err != nil {
		return r, err
	}
	reg, err := a.registeredAt(time.Second)
	if err != nil {
		return r, err
	}
	if r.Sample.End.Before(reg) {
		return r, fmt.Errorf("the tool exited %s before the agent registered", reg.Sub(r.Sample.End))
	}
	r.Latency = r.Sample.End.Sub(reg)
	return r, nil
}

// traceResults are what strace saw of one run of each tool.
type traceResults struct {
	Firstrun, Seed traceCounts
}

// trace runs each tool once under strace, against an agent that registers after 1 s.
func (h *host) trace(ctx context.Context) (traceResults, error) {
	var t traceResults
	traced := func(name string, tool func(context.Context) *exec.Cmd, into *traceCounts) error {
		file := filepath.Join(h.traces, name+".strace")
		var program string // the tool's path, as its execve in the trace names it
		_, err := h.detect(ctx, time.Second, func(ctx context.Context) *exec.Cmd {
			cmd := tool(ctx)
			program = cmd.Path
			args := append(append([]string{"-o", file}, straceArgs...), cmd.Path)
			return command(ctx, cmd.Env, "strace", append(args, cmd.Args[1:]...)...)
		})
		if err != nil {
			return err
		}
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		*into, err = countTrace(f, "/"+filepath.Base(program))
		return err
	}
	root, err := h.firstrunRoot()
	if err != nil {
		return t, err
	}
	if err := traced("firstrun", func(ctx context.Context) *exec.Cmd { return h.firstrunCmd(ctx, root, "services") }, &t.Firstrun); err != nil {
		return t, err
	}
	sroot, err := h.seedRoot()
	if err != nil {
		return t, err
	}
	err = traced("seed", func(ctx context.Context) *exec.Cmd { return h.seedCmd(ctx, sroot, h.seed.Full) }, &t.Seed)
	return t, err
}

// goBenchmarks runs every Go benchmark once (go test's default 1 s each) and returns
// its output.
func goBenchmarks(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "./...")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go test -bench: %w\n%s", err, out)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "pkg: ") || strings.HasPrefix(l, "cpu: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n"), nil
}

// ms is d in milliseconds, for printing.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writeJSON writes v as indented JSON to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
