package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseKnobsDefaults(t *testing.T) {
	k, err := parseKnobs(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := knobs{
		Cluster:       "default",
		LogLevel:      levelInfo,
		FileLogLevel:  levelInfo,
		Checkpoint:    true,
		RegisterDelay: time.Second,
		Listen:        "127.0.0.1:51678",
		DockerSocket:  "/var/run/docker.sock",
		DockerTimeout: 30 * time.Second,
		LogFile:       "/var/log/ecs/ecs-agent.log",
		DataDir:       "/var/lib/ecs/data",
	}
	if k != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", k, want)
	}
}

func TestParseKnobsSet(t *testing.T) {
	k, err := parseKnobs(env(map[string]string{
		"ECS_CLUSTER":              "prod",
		"ECS_LOGLEVEL":             "DEBUG",
		"ECS_LOGLEVEL_ON_INSTANCE": "warn",
		"ECS_CHECKPOINT":           "false",
		"FAKEAGENT_REGISTER_DELAY": "250ms",
		"FAKEAGENT_LISTEN":         "127.0.0.1:0",
		"FAKEAGENT_NEVER_REGISTER": "true",
		"FAKEAGENT_DATA_DIR":       "/tmp/data",
		"HTTP_PROXY":               "http://u:p@proxy:3128",
		"NO_PROXY":                 "169.254.169.254",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if k.Cluster != "prod" || k.LogLevel != levelDebug || k.FileLogLevel != levelWarn || k.Checkpoint ||
		k.RegisterDelay != 250*time.Millisecond || k.Listen != "127.0.0.1:0" || !k.NeverRegister ||
		k.DataDir != "/tmp/data" || k.HTTPProxy != "http://u:p@proxy:3128" {
		t.Errorf("got %+v", k)
	}
	// The agent ignores a level it does not know, and the file follows ECS_LOGLEVEL.
	k, _ = parseKnobs(env(map[string]string{"ECS_LOGLEVEL": "debug", "ECS_LOGLEVEL_ON_INSTANCE": "loud", "ECS_CHECKPOINT": "maybe"}))
	if k.LogLevel != levelDebug || k.FileLogLevel != levelDebug || !k.Checkpoint {
		t.Errorf("got %+v", k)
	}
}

func TestParseKnobsInvalidReportsAll(t *testing.T) {
	_, err := parseKnobs(env(map[string]string{
		"FAKEAGENT_REGISTER_DELAY": "soon",
		"FAKEAGENT_DOCKER_TIMEOUT": "-1s",
		"FAKEAGENT_NEVER_REGISTER": "maybe",
		"FAKEAGENT_PINNED_CLUSTER": "old",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"FAKEAGENT_REGISTER_DELAY", "FAKEAGENT_DOCKER_TIMEOUT", "FAKEAGENT_NEVER_REGISTER", "FAKEAGENT_PINNED_CLUSTER"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

var arnRE = regexp.MustCompile(`^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:container-instance/([A-Za-z0-9_-]+)/[0-9a-f]{32}$`)

func TestContainerInstanceARN(t *testing.T) {
	for cluster, name := range map[string]string{
		"smoke":   "smoke",
		"default": "default",
		"arn:aws:ecs:eu-west-1:111122223333:cluster/prod_1": "prod_1",
	} {
		arn := containerInstanceARN(cluster, newID())
		if strings.HasPrefix(cluster, "arn:") && !strings.HasPrefix(arn, "arn:aws:ecs:eu-west-1:111122223333:container-instance/") {
			t.Errorf("cluster %q: ARN %q, want the cluster's region and account", cluster, arn)
		}
		m := arnRE.FindStringSubmatch(arn)
		if m == nil || m[1] != name {
			t.Errorf("cluster %q: ARN %q, want one for cluster name %q", cluster, arn, name)
		}
	}
	if newID() == newID() {
		t.Error("newID repeats")
	}
}

func TestMetadataJSON(t *testing.T) {
	got := string(metadataJSON("smoke", "arn:x"))
	want := `{"Cluster":"smoke","ContainerInstanceArn":"arn:x","Version":"Amazon ECS Agent - v1.105.1 (*a8b3e7d3)"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for the agent goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeDocker serves GET /_ping on a unix socket in a temporary directory.
func fakeDocker(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			_, _ = w.Write([]byte("OK"))
			return
		}
		http.NotFound(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

var listenRE = regexp.MustCompile(`msg="Introspection server listening" address="([^"]+)"`)

func TestRunRegistersAndStops(t *testing.T) {
	dir := t.TempDir()
	knobs := map[string]string{
		"ECS_CLUSTER":              "smoke",
		"HTTP_PROXY":               "http://user:secret@proxy:3128",
		"FAKEAGENT_LISTEN":         "127.0.0.1:0",
		"FAKEAGENT_REGISTER_DELAY": "10ms",
		"FAKEAGENT_DOCKER_SOCKET":  fakeDocker(t),
		"FAKEAGENT_LOG_FILE":       filepath.Join(dir, "log", "ecs-agent.log"),
		"FAKEAGENT_DATA_DIR":       filepath.Join(dir, "data"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, env(knobs), out) }()

	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("agent never listened; output:\n%s", out)
	}
	resp, err := http.Get("http://" + addr + "/v1/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md metadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md.Cluster != "smoke" || md.ContainerInstanceArn == nil || !arnRE.MatchString(*md.ContainerInstanceArn) {
		t.Errorf("metadata %+v", md)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d on cancel, want 0", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not stop")
	}
	if s := out.String(); strings.Contains(s, "secret") || !strings.Contains(s, `HTTP_PROXY="http://user:REDACTED@proxy:3128"`) ||
		!strings.Contains(s, `cluster="smoke"`) {
		t.Errorf("log lines:\n%s", s)
	}
}

func TestRunFailsWithoutDocker(t *testing.T) {
	out := &syncBuffer{}
	code := run(context.Background(), env(map[string]string{
		"FAKEAGENT_DOCKER_SOCKET":  filepath.Join(t.TempDir(), "missing.sock"),
		"FAKEAGENT_DOCKER_TIMEOUT": "300ms",
		"FAKEAGENT_LOG_FILE":       filepath.Join(t.TempDir(), "ecs-agent.log"),
		"FAKEAGENT_DATA_DIR":       filepath.Join(t.TempDir(), "data"),
	}), out)
	if code != 1 || !strings.Contains(out.String(), "Unable to reach docker") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// startAgent runs the agent with knobs until the test ends and returns its output and
// the address its introspection server listens on.
func startAgent(t *testing.T, knobs map[string]string) (*syncBuffer, string, chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, env(knobs), out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-code:
		case <-time.After(5 * time.Second):
			t.Error("agent did not stop")
		}
	})
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(out.String()); m != nil {
			return out, m[1], code
		}
	}
	t.Fatalf("agent never listened; output:\n%s", out)
	return nil, "", nil
}

// testKnobs are knobs for an agent in t's temporary directory.
func testKnobs(t *testing.T, extra ...string) map[string]string {
	dir := t.TempDir()
	k := map[string]string{
		"ECS_CLUSTER":              "smoke",
		"FAKEAGENT_LISTEN":         "127.0.0.1:0",
		"FAKEAGENT_REGISTER_DELAY": "10ms",
		"FAKEAGENT_DOCKER_SOCKET":  fakeDocker(t),
		"FAKEAGENT_LOG_FILE":       filepath.Join(dir, "ecs-agent.log"),
		"FAKEAGENT_DATA_DIR":       filepath.Join(dir, "data"),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		k[extra[i]] = extra[i+1]
	}
	return k
}

func get(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b.String()
}

// TestIntrospectionShapes: the answers of the real introspection server
// (ecs-agent/introspection/server.go): GET / and unknown paths list the paths, any
// method is answered, /v1/metadata has the cluster as configured (an ARN stays one).
func TestIntrospectionShapes(t *testing.T) {
	clusterARN := "arn:aws:ecs:eu-west-1:111122223333:cluster/prod"
	_, addr, _ := startAgent(t, testKnobs(t, "ECS_CLUSTER", clusterARN))
	base := "http://" + addr
	for _, path := range []string{"/", "/v2/metadata", "/v1/metadata/"} {
		if code, _, body := get(t, http.MethodGet, base+path); code != 200 || body != rootJSON {
			t.Errorf("GET %s = %d %s, want 200 %s", path, code, body, rootJSON)
		}
	}
	code, ctype, body := get(t, http.MethodPost, base+"/v1/metadata")
	var md metadata
	if err := json.Unmarshal([]byte(body), &md); err != nil || code != 200 || ctype != "application/json" {
		t.Fatalf("POST /v1/metadata = %d %s %s (%v)", code, ctype, body, err)
	}
	if md.Cluster != clusterARN || md.ContainerInstanceArn == nil || md.Version != "Amazon ECS Agent - v1.105.1 (*a8b3e7d3)" ||
		!strings.HasPrefix(*md.ContainerInstanceArn, "arn:aws:ecs:eu-west-1:111122223333:container-instance/prod/") {
		t.Errorf("metadata %s", body)
	}
	if code, _, body := get(t, http.MethodGet, base+"/v1/tasks"); code != 200 || body != `{"Tasks":[]}` {
		t.Errorf("GET /v1/tasks = %d %s", code, body)
	}
}

var requestLineRE = regexp.MustCompile(`^level=debug time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ logger=structured msg="Handling http request" method="GET" from="127\.0\.0\.1:\d+"$`)

// TestDebugLogsEachRequest: at ECS_LOGLEVEL=debug a line per request, in the log file
// and on stdout; at the default level none.
func TestDebugLogsEachRequest(t *testing.T) {
	for _, tc := range []struct {
		level     string
		onInst    string
		wantOut   int
		wantFile  int
		wantOther bool
	}{
		{"debug", "", 2, 2, true},
		{"", "", 0, 0, true},
		{"info", "debug", 0, 2, true},
	} {
		k := testKnobs(t, "ECS_LOGLEVEL", tc.level, "ECS_LOGLEVEL_ON_INSTANCE", tc.onInst)
		out, addr, _ := startAgent(t, k)
		get(t, http.MethodGet, "http://"+addr+"/")
		get(t, http.MethodGet, "http://"+addr+"/v1/metadata")
		file, err := os.ReadFile(k["FAKEAGENT_LOG_FILE"])
		if err != nil {
			t.Fatal(err)
		}
		count := func(s string) int {
			n := 0
			for _, l := range strings.Split(s, "\n") {
				if strings.Contains(l, "Handling http request") {
					n++
					if !requestLineRE.MatchString(l) {
						t.Errorf("request line %q not in the agent's format", l)
					}
				}
			}
			return n
		}
		if got := count(out.String()); got != tc.wantOut {
			t.Errorf("ECS_LOGLEVEL=%q: %d request lines on stdout, want %d", tc.level, got, tc.wantOut)
		}
		if got := count(string(file)); got != tc.wantFile {
			t.Errorf("ECS_LOGLEVEL=%q ECS_LOGLEVEL_ON_INSTANCE=%q: %d request lines in the log file, want %d", tc.level, tc.onInst, got, tc.wantFile)
		}
		if !strings.Contains(string(file), `msg="Registration completed successfully"`) {
			t.Errorf("log file lacks the info lines:\n%s", file)
		}
	}
}

// TestRefusesBeforeRegistration: the introspection server starts only once registered
// (agent/app/agent.go, doStart: registerContainerInstance, then startAsyncRoutines).
func TestRefusesBeforeRegistration(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, env(testKnobs(t, "FAKEAGENT_LISTEN", addr, "FAKEAGENT_REGISTER_DELAY", "1h")), out)
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "Registering Instance with ECS"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("agent never began registering:\n%s", out)
		}
	}
	if c, err := net.Dial("tcp", addr); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial %s before registration: %v, want connection refused", addr, err)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("exit %d on cancel before registration, want 0", c)
	}
}

// TestCheckpointPinsCluster: a saved cluster other than the configured one is
// terminal, exit 5, as agent/app/agent.go setClusterInConfig; the same cluster
// restores the container instance.
func TestCheckpointPinsCluster(t *testing.T) {
	k := testKnobs(t, "ECS_CLUSTER", "first")
	_, addr, _ := startAgent(t, k)
	_, _, body := get(t, http.MethodGet, "http://"+addr+"/v1/metadata")
	var first metadata
	if err := json.Unmarshal([]byte(body), &first); err != nil || first.ContainerInstanceArn == nil {
		t.Fatalf("metadata %s: %v", body, err)
	}

	pinned := testKnobs(t, "ECS_CLUSTER", "second")
	pinned["FAKEAGENT_DATA_DIR"] = k["FAKEAGENT_DATA_DIR"]
	out := &syncBuffer{}
	if code := run(context.Background(), env(pinned), out); code != 5 {
		t.Errorf("exit %d with a checkpoint of another cluster, want 5", code)
	}
	want := `level=critical time=`
	wantErr := `error="Data mismatch; saved cluster 'first' does not match configured cluster 'second'. Perhaps you want to delete the configured checkpoint file?"`
	if s := out.String(); !strings.Contains(s, want) || !strings.Contains(s, `msg="Error restoring cluster"`) || !strings.Contains(s, wantErr) {
		t.Errorf("output lacks the critical line:\n%s", s)
	}

	again := testKnobs(t, "ECS_CLUSTER", "first")
	again["FAKEAGENT_DATA_DIR"] = k["FAKEAGENT_DATA_DIR"]
	_, addr, _ = startAgent(t, again)
	_, _, body = get(t, http.MethodGet, "http://"+addr+"/v1/metadata")
	var restored metadata
	if err := json.Unmarshal([]byte(body), &restored); err != nil || restored.ContainerInstanceArn == nil ||
		*restored.ContainerInstanceArn != *first.ContainerInstanceArn {
		t.Errorf("restored metadata %s, want the container instance %s", body, *first.ContainerInstanceArn)
	}

	// Without checkpointing nothing pins.
	free := testKnobs(t, "ECS_CLUSTER", "second", "ECS_CHECKPOINT", "false")
	free["FAKEAGENT_DATA_DIR"] = k["FAKEAGENT_DATA_DIR"]
	startAgent(t, free)
}
