package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// within returns a context for one test step.
func within(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run runs a command that must succeed in s and returns its trimmed stdout.
func run(t *testing.T, ctx context.Context, s *Sandbox, args ...string) string {
	t.Helper()
	out, err := s.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// agentMetadata polls the fake agent's introspection endpoint in s until it answers
// or ctx ends.
func agentMetadata(t *testing.T, ctx context.Context, s *Sandbox) map[string]any {
	t.Helper()
	for {
		out, _, code, err := s.Exec(ctx, nil, "curl", "-sS", "--max-time", "2", "--noproxy", "*",
			"http://127.0.0.1:51678/v1/metadata")
		if err != nil {
			t.Fatalf("agent never answered: %v", err)
		}
		if code == 0 {
			var md map[string]any
			if err := json.Unmarshal(out, &md); err != nil {
				t.Fatalf("metadata %q: %v", out, err)
			}
			return md
		}
		select {
		case <-ctx.Done():
			t.Fatalf("agent never answered: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestBootState(t *testing.T) {
	t.Parallel()
	s := Boot(t)
	ctx := within(t, 20*time.Second)

	if state := run(t, ctx, s, "systemctl", "is-system-running"); state != "running" && state != "degraded" {
		t.Errorf("system state %q", state)
	}
	// Baked like the AMI: nothing of ECS enabled or started, nothing configured.
	for _, unit := range []string{"docker.service", "docker.socket", "containerd.service", "ecs.service", "amazon-cloudwatch-agent.service"} {
		out, _, _, err := s.Exec(ctx, nil, "systemctl", "is-enabled", unit)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "disabled" {
			t.Errorf("%s is %q before firstrun, want disabled", unit, got)
		}
		out, _, _, _ = s.Exec(ctx, nil, "systemctl", "is-active", unit)
		if got := strings.TrimSpace(string(out)); got != "inactive" {
			t.Errorf("%s is %q before firstrun, want inactive", unit, got)
		}
	}
	if ls := run(t, ctx, s, "ls", "-A", "/etc/ecs", "/var/lib/ecs/data"); strings.TrimSpace(strings.ReplaceAll(ls, "/etc/ecs:", "")) != "/var/lib/ecs/data:" {
		t.Errorf("/etc/ecs or /var/lib/ecs/data not empty:\n%s", ls)
	}
	for _, bin := range []string{"fakeagent", "fakecwagent", "firstrun"} {
		run(t, ctx, s, "test", "-x", BinMount+"/"+bin)
	}
	if v := run(t, ctx, s, "cat", "/opt/aws/amazon-cloudwatch-agent/bin/CWAGENT_VERSION"); v != CloudWatchAgentVersion {
		t.Errorf("the CloudWatch agent's version file says %q, want %q", v, CloudWatchAgentVersion)
	}
	if _, _, code, _ := s.Exec(ctx, nil, "touch", BinMount+"/x"); code == 0 {
		t.Errorf("%s is writable", BinMount)
	}
	// Only PATH: the host's environment does not leak in.
	if env := run(t, ctx, s, "env"); env != containerPath {
		t.Errorf("environment in the sandbox:\n%s\nwant only %s", env, containerPath)
	}
	// Files round-trip through the overlay.
	if err := s.WriteFile(ctx, "/etc/ecs/ecs.config", []byte("ECS_CLUSTER=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadFile(ctx, "/etc/ecs/ecs.config"); err != nil || string(got) != "ECS_CLUSTER=x\n" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if mode := run(t, ctx, s, "stat", "-c", "%a", "/etc/ecs/ecs.config"); mode != "600" {
		t.Errorf("mode %s, want 600", mode)
	}
	if _, err := os.Stat(s.Rootfs() + "/etc/ecs/ecs.config"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the write reached the cached rootfs: %v", err)
	}
	if _, err := s.ReadFile(ctx, "/etc/ecs/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, _, code, err := s.Exec(ctx, nil, "sh", "-c", "exit 7"); code != 7 || err != nil {
		t.Errorf("exit status %d, %v; want 7, nil", code, err)
	}
	// A command cut short by its context leaves nothing running inside.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, _, err := s.Exec(short, nil, "sleep", "300"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec past its deadline: %v", err)
	}
	if _, _, code, _ := s.Exec(ctx, nil, "pgrep", "-x", "sleep"); code != 1 {
		t.Errorf("sleep still runs in the sandbox after its Exec was cancelled (pgrep exit %d)", code)
	}
}

var arnRE = regexp.MustCompile(`^arn:aws:ecs:us-east-1:123456789012:container-instance/smoke/[0-9a-f]{32}$`)

func TestDockerAndAgent(t *testing.T) {
	t.Parallel()
	s := Boot(t)
	ctx := within(t, 60*time.Second)

	if err := s.WriteFile(ctx, "/etc/ecs/ecs.config", []byte("ECS_CLUSTER=smoke\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, ctx, s, "systemctl", "enable", "--now", "docker")
	t.Logf("docker enabled and started in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	run(t, ctx, s, "systemctl", "start", "ecs")
	md := agentMetadata(t, ctx, s)
	t.Logf("agent registered %s after its start", time.Since(start).Round(time.Millisecond))
	if md["Cluster"] != "smoke" {
		t.Errorf("Cluster = %v, want smoke", md["Cluster"])
	}
	if arn, _ := md["ContainerInstanceArn"].(string); !arnRE.MatchString(arn) {
		t.Errorf("ContainerInstanceArn = %v", md["ContainerInstanceArn"])
	}
	if log, err := s.ReadFile(ctx, "/var/log/ecs/ecs-agent.log"); err != nil || !strings.Contains(string(log), `cluster="smoke"`) {
		t.Errorf("agent log: %v\n%s", err, log)
	}

	// A proxy drop-in reaches dockerd (docker info shows it) and, through PartOf, the
	// restart takes the agent along.
	dropIn := "[Service]\nEnvironment=\"HTTP_PROXY=http://proxy.example:3128\"\n"
	if err := s.WriteFile(ctx, "/etc/systemd/system/docker.service.d/http-proxy.conf", []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, s, "systemctl", "daemon-reload")
	run(t, ctx, s, "systemctl", "restart", "docker")
	if info := run(t, ctx, s, "docker", "info"); !strings.Contains(info, "HTTP Proxy: http://proxy.example:3128") {
		t.Errorf("docker info does not show the proxy:\n%s", info)
	}
	if state := run(t, ctx, s, "systemctl", "is-active", "ecs"); state != "active" {
		t.Errorf("ecs is %s after the docker restart", state)
	}

	// ecs.service hands the agent ecs.config and the test knobs of /etc/fakeagent.env;
	// the agent logs the proxy without its credentials.
	config := "ECS_CLUSTER=smoke\nHTTP_PROXY=user:secret@proxy.example:3128\n"
	if err := s.WriteFile(ctx, "/etc/ecs/ecs.config", []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	knobs := "FAKEAGENT_REGISTER_DELAY=100ms\n"
	if err := s.WriteFile(ctx, "/etc/fakeagent.env", []byte(knobs), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, s, "systemctl", "restart", "ecs")
	if md2 := agentMetadata(t, ctx, s); md2["Cluster"] != "smoke" || md2["ContainerInstanceArn"] != md["ContainerInstanceArn"] {
		t.Errorf("after a restart: %v, want the same container instance in smoke (the checkpoint): %v", md2, md)
	}
	// A checkpoint of another cluster pins the agent: it exits 5, and ecs.service
	// (RestartPreventExitStatus=5) stays failed.
	if err := s.WriteFile(ctx, "/etc/ecs/ecs.config", []byte("ECS_CLUSTER=other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, "systemctl", "restart", "ecs"); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, s, "sh", "-c", "for i in $(seq 100); do systemctl is-failed -q ecs && exit 0; sleep 0.1; done; exit 1")
	if got := run(t, ctx, s, "systemctl", "show", "-P", "ExecMainStatus", "ecs"); got != "5" {
		t.Errorf("ecs.service's agent exit status %s, want 5", got)
	}
	if err := s.WriteFile(ctx, "/etc/ecs/ecs.config", []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, s, "systemctl", "restart", "ecs")
	agentMetadata(t, ctx, s)
	journal := run(t, ctx, s, "journalctl", "-b", "-u", "ecs", "--no-pager", "-o", "cat")
	if !strings.Contains(journal, `HTTP_PROXY="user:REDACTED@proxy.example:3128"`) || strings.Contains(journal, "secret") {
		t.Errorf("agent journal does not show the redacted proxy:\n%s", journal)
	}
}

func TestCloudWatchAgentStandIn(t *testing.T) {
	t.Parallel()
	s := Boot(t)
	ctx := within(t, 20*time.Second)

	cfg := `{"logs":{"logs_collected":{"files":{"collect_list":[{"file_path":"/var/log/ecs/ecs-agent.log","log_group_name":"/s/ec2/g/var/log/ecs/ecs-agent.log","log_stream_name":"{instance_id}"}]}}}}`
	if err := s.WriteFile(ctx, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/firstrun.json", []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, s, "systemctl", "start", "amazon-cloudwatch-agent")
	if state := run(t, ctx, s, "systemctl", "is-active", "amazon-cloudwatch-agent"); state != "active" {
		t.Errorf("amazon-cloudwatch-agent is %s", state)
	}
	for {
		journal := run(t, ctx, s, "journalctl", "-b", "-u", "amazon-cloudwatch-agent", "--no-pager", "-o", "cat")
		if strings.Contains(journal, "collect /var/log/ecs/ecs-agent.log") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the agent did not log its configuration:\n%s", journal)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// namespaceOf returns the identity of a process's namespace of kind (net, pid...).
func namespaceOf(t *testing.T, pid, kind string) string {
	t.Helper()
	ns, err := os.Readlink("/proc/" + pid + "/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestTwoAtOnceAndStop(t *testing.T) {
	t.Parallel()
	box := [2]*Sandbox{Boot(t), Boot(t)}
	ctx := within(t, 20*time.Second)
	if box[0].Name() == box[1].Name() {
		t.Fatalf("both sandboxes are named %s", box[0].Name())
	}
	// Separate overlays, host names and network namespaces.
	if err := box[0].WriteFile(ctx, "/etc/ecs/ecs.config", []byte("ECS_CLUSTER=zero\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := box[1].ReadFile(ctx, "/etc/ecs/ecs.config"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a write in one sandbox shows in the other: %v", err)
	}
	nets := map[string]string{namespaceOf(t, "self", "net"): "the host"}
	for _, s := range box {
		if h := run(t, ctx, s, "hostname"); h != s.Name() {
			t.Errorf("hostname %q, want %q", h, s.Name())
		}
		net := namespaceOf(t, strconv.Itoa(s.PID1()), "net")
		if other, ok := nets[net]; ok {
			t.Errorf("%s shares its network namespace with %s", s.Name(), other)
		}
		nets[net] = s.Name()
	}

	// Stop ends the Execs in flight first, leaves no process behind, nor cgroup, and
	// is idempotent.
	inFlight := make(chan error, 1)
	go func() {
		_, _, _, err := box[0].Exec(context.Background(), nil, "sleep", "300")
		inFlight <- err
	}()
	time.Sleep(200 * time.Millisecond)
	for _, s := range box {
		nspawn, pidNS := s.cmd.Process.Pid, namespaceOf(t, strconv.Itoa(s.PID1()), "pid")
		start := time.Now()
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s stopped in %s", s.Name(), time.Since(start).Round(time.Millisecond))
		if err := s.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(nspawn)); err == nil {
			t.Errorf("systemd-nspawn (pid %d) still runs after Stop", nspawn)
		}
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			if ns, err := os.Readlink("/proc/" + p.Name() + "/ns/pid"); err == nil && ns == pidNS {
				t.Errorf("process %s of %s still runs after Stop", p.Name(), s.Name())
			}
		}
		for _, d := range s.cgroups {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup %s still exists after Stop", d)
			}
		}
		if _, _, _, err := s.Exec(ctx, nil, "true"); err == nil {
			t.Error("Exec after Stop: no error")
		}
	}
	if err := <-inFlight; !errors.Is(err, errStopping) {
		t.Errorf("Exec in flight during Stop: %v, want %v", err, errStopping)
	}
}

// TestStartFailureLeavesNothing runs alone (not parallel): it counts processes.
func TestStartFailureLeavesNothing(t *testing.T) {
	req := Requirements()
	testenv.Need(t, req == nil, fmt.Sprintf("end-to-end sandbox (%v)", req))
	cache, binDir, err := prepare()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Config{CacheDir: cache, BinDir: "/nonexistent"}); err == nil ||
		!strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Start with a missing BinDir: %v", err)
	}

	// A deadline that ends the boot half way: Start kills what it started.
	before := countNspawn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	s, err := Start(ctx, Config{CacheDir: cache, BinDir: binDir})
	if err == nil {
		s.Stop()
		t.Skip("booted within 400 ms: cannot interrupt the boot here")
	}
	t.Logf("Start: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "console output") {
		t.Errorf("error does not say why nor show the console: %v", err)
	}
	if after := countNspawn(t); after > before {
		t.Errorf("%d systemd-nspawn processes before Start, %d after it failed", before, after)
	}
}

// countNspawn counts this process's systemd-nspawn children.
func countNspawn(t *testing.T) int {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		status, err := os.ReadFile("/proc/" + p.Name() + "/status")
		if err == nil && strings.Contains(string(status), "Name:\tsystemd-nspawn\n") &&
			strings.Contains(string(status), "\nPPid:\t"+self+"\n") {
			n++
		}
	}
	return n
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	for _, w := range []string{"abc", "defgh", "ijklmnop", "q"} {
		if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := tl.String(); got != "jklmnopq" {
		t.Errorf("tail = %q, want the last 8 bytes jklmnopq", got)
	}
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("lastLines = %q", got)
	}
	if got := lastLines("a", 5); got != "a" {
		t.Errorf("lastLines = %q", got)
	}
}

func TestCgroupDirs(t *testing.T) {
	dirs, err := cgroupDirs("fr-e2e-probe")
	if err != nil {
		t.Skipf("no cgroup hierarchy here: %v", err)
	}
	for _, d := range dirs {
		if !strings.HasPrefix(d, "/sys/fs/cgroup/") || !strings.HasSuffix(d, "/fr-e2e-probe") {
			t.Errorf("cgroup dir %q", d)
		}
	}
}
