package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- { // 20 ms … 1 ms, unsorted
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := summarize(ds)
	want := summary{N: 20, Min: time.Millisecond, P50: 10 * time.Millisecond, P95: 19 * time.Millisecond,
		Max: 20 * time.Millisecond}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
	if ds[0] != 20*time.Millisecond {
		t.Error("summarize sorted its argument in place")
	}
	if got := summarize([]time.Duration{7}); got.P50 != 7 || got.P95 != 7 || got.Max != 7 {
		t.Errorf("one sample: %+v", got)
	}
	if got := summarize(nil); got.N != 0 {
		t.Errorf("no samples: %+v", got)
	}
}

// TestDelays: one delay in each equal slice of the range, in an order that depends on
// the seed only.
func TestDelays(t *testing.T) {
	lo, hi := 100*time.Millisecond, 4900*time.Millisecond
	d := delays(20, lo, hi, 1)
	if !slices.Equal(d, delays(20, lo, hi, 1)) {
		t.Error("the same seed gave other delays")
	}
	if slices.Equal(d, delays(20, lo, hi, 2)) {
		t.Error("another seed gave the same delays")
	}
	if slices.IsSorted(d) {
		t.Error("delays are in increasing order, want them shuffled")
	}
	sorted := slices.Sorted(slices.Values(d))
	slice := (hi - lo) / 20
	for i, x := range sorted {
		if x < lo+time.Duration(i)*slice || x >= lo+time.Duration(i+1)*slice {
			t.Errorf("delay %d = %s, not in its slice [%s, %s)", i, x, lo+time.Duration(i)*slice, lo+time.Duration(i+1)*slice)
		}
	}
}

func TestCountTrace(t *testing.T) {
	// A shell (100) runs the tool (101), which starts a thread (102) and, from that
	// thread, a child (103) that runs a program; the child forks a grandchild (104,
	// 2 in its PID namespace) that fails to run one.
	// Process 200 is not the tool's and is not counted.
	trace := `100 execve("/usr/bin/sh", ["sh"], 0x7ffd /* 3 vars */) = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101
101 execve("/opt/bin/firstrun", ["firstrun"], 0x7ffd /* 3 vars */) = 0
101 clone(child_stack=0xc000, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_SYSVSEM|CLONE_THREAD|CLONE_SETTLS, tls=0xc0 <unfinished ...>
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 200
101 <... clone resumed>) = 102
102 fsync(3)                           = 0
102 clone3({flags=CLONE_VM|CLONE_VFORK|CLONE_CLEAR_SIGHAND, exit_signal=SIGCHLD, stack=0xc0, stack_size=0x9000}, 88) = 103
103 execve("/usr/bin/true", ["true"], 0xc0 /* 1 var */) = 0
103 vfork( <unfinished ...>
104 execve("/usr/bin/missing", ["missing"], 0xc0 /* 1 var */ <unfinished ...>
103 <... vfork resumed>)               = 2 /* 104 in strace's PID NS */
104 <... execve resumed>)              = -1 ENOENT (No such file or directory)
101 fdatasync(4)                       = 0
101 fsync(9)                           = -1 EINVAL (Invalid argument)
200 clone(child_stack=NULL, flags=SIGCHLD) = 201
200 execve("/usr/bin/other", ["other"], 0x7ffd /* 3 vars */) = 0
200 fsync(3)                           = 0
`
	got, err := countTrace(strings.NewReader(trace), "/firstrun")
	if err != nil {
		t.Fatal(err)
	}
	want := traceCounts{Processes: 2, Execs: 1, Threads: 1, Syncs: 2}
	if got != want {
		t.Errorf("countTrace = %+v, want %+v", got, want)
	}
	if _, err := countTrace(strings.NewReader(trace), "/seed"); err == nil {
		t.Error("a trace without the tool: no error")
	}
}

func TestRewriteSeed(t *testing.T) {
	full, config, err := rewriteSeed(readSeed(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"full": full, "config": config} {
		if n := strings.Count(s, "/etc/") - strings.Count(s, "${SEED_ROOT}/etc/"); n != 0 {
			t.Errorf("%s script: %d /etc paths left outside ${SEED_ROOT}", name, n)
		}
	}
	if strings.Contains(config, "service docker start") || strings.Contains(config, "curl") || !strings.Contains(config, "awslogs.conf") {
		t.Errorf("the configuration part is not the script up to its services:\n%s", config)
	}
	if !strings.Contains(full, "sleep 5") || !strings.Contains(full, "http://localhost:51678/v1/metadata") {
		t.Error("the full script lost its health loop")
	}
	if _, _, err := rewriteSeed("#!/bin/sh\necho hello\n"); err == nil {
		t.Error("a script that is not the seed: no error")
	}
}

// TestSeedRunsUnderItsRoot: the runnable seed writes its files under the root and
// nowhere else, exits 0 once the agent answers for its cluster, and what it writes is
// the seed's own.
func TestSeedRunsUnderItsRoot(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		testenv.Need(t, err == nil, tool+" (the seed script runs it)")
	}
	s, err := prepareSeed(seedPath(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", agentAddr)
	if err != nil {
		t.Fatalf("the seed polls %s, which is taken: %v", agentAddr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"Cluster":"bench-cluster","ContainerInstanceArn":"arn:x","Version":"test"}`))
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	for _, script := range []string{s.Config, s.Full} {
		root := t.TempDir()
		if err := seedRoot(root); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := command(ctx, s.env(root, inputs), "bash", script).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(script), err, out)
		}
		if script == s.Full && !strings.Contains(string(out), "ECS agent successfully joined to bench-cluster") {
			t.Errorf("the full seed did not report the join:\n%s", out)
		}
		got := testenv.Snapshot(t, root)
		var paths []string
		for p, fi := range got {
			if fi.Mode.IsRegular() {
				paths = append(paths, p)
			}
		}
		slices.Sort(paths)
		want := []string{"etc/awslogs/awscli.conf", "etc/awslogs/awslogs.conf", "etc/awslogs/proxy.conf", "etc/ecs/ecs.config", "etc/sysconfig/docker"}
		if !slices.Equal(paths, want) {
			t.Errorf("%s wrote %v, want %v", filepath.Base(script), paths, want)
		}
		if ecs := got["etc/ecs/ecs.config"].Content; !strings.HasPrefix(ecs, "ECS_CLUSTER=bench-cluster\nHTTPS_PROXY=http://proxy.internal:3128\n") {
			t.Errorf("ecs.config:\n%s", ecs)
		}
	}
}

func seedPath(t *testing.T) string {
	t.Helper()
	return testenv.NeedShared(t, seedScript)
}

func readSeed(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(seedPath(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCountRealTrace: the parser reads this machine's strace: a shell that runs two
// programs, each in a child, spawns two processes and runs two programs, also in a
// PID namespace of its own, as firstrun runs in the sandbox instance.
func TestCountRealTrace(t *testing.T) {
	_, err := exec.LookPath("strace")
	testenv.Need(t, err == nil, "strace (the benchmark counts processes with it)")
	sh := []string{"/bin/sh", "-c", "/bin/true; /bin/true; exit 0"}
	for _, c := range []struct {
		name string
		cmd  []string
	}{
		{"here", sh},
		{"in a PID namespace", append([]string{"unshare", "--pid", "--fork", "--"}, sh...)},
	} {
		if c.name != "here" && os.Geteuid() != 0 {
			testenv.Need(t, false, "root, to trace a shell in a PID namespace of its own")
		}
		file := filepath.Join(t.TempDir(), "trace")
		args := append(append([]string{"-o", file}, straceArgs...), c.cmd...)
		if out, err := exec.Command("strace", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: strace: %v\n%s", c.name, err, out)
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := countTrace(f, "/sh")
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.Processes != 2 || got.Execs != 2 || got.Threads != 0 {
			t.Errorf("%s: countTrace = %+v, want 2 processes, 2 programs, no thread", c.name, got)
		}
	}
}

func TestOwnTime(t *testing.T) {
	log := `{"level":"info","msg":"phase done","phase":"apply","duration":"2.5ms"}
{"level":"info","msg":"firstrun done","duration":"3.25ms"}
`
	if d, err := ownTime(log); err != nil || d != 3250*time.Microsecond {
		t.Errorf("ownTime = %s, %v; want 3.25ms", d, err)
	}
	if _, err := ownTime(`{"msg":"firstrun failed","duration":"1ms"}`); err == nil {
		t.Error("a log without \"firstrun done\": no error")
	}
}

// TestReport: a bench run's results (testdata/results.json, from make bench) render to
// the report it printed; -update rewrites it after an intended change.
func TestReport(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	testenv.Golden(t, "report", []byte(r.report()))
}
