package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
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
		RegisterDelay: time.Second,
		Listen:        "127.0.0.1:51678",
		DockerSocket:  "/var/run/docker.sock",
		DockerTimeout: 30 * time.Second,
		LogFile:       "/var/log/ecs/ecs-agent.log",
	}
	if k != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", k, want)
	}
}

func TestParseKnobsSet(t *testing.T) {
	k, err := parseKnobs(env(map[string]string{
		"ECS_CLUSTER":              "prod",
		"FAKEAGENT_PINNED_CLUSTER": "old",
		"FAKEAGENT_REGISTER_DELAY": "250ms",
		"FAKEAGENT_LISTEN":         "127.0.0.1:0",
		"FAKEAGENT_NEVER_REGISTER": "true",
		"HTTP_PROXY":               "http://u:p@proxy:3128",
		"NO_PROXY":                 "169.254.169.254",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if k.Cluster != "prod" || k.reportedCluster() != "old" || k.RegisterDelay != 250*time.Millisecond ||
		k.Listen != "127.0.0.1:0" || !k.NeverRegister || k.HTTPProxy != "http://u:p@proxy:3128" {
		t.Errorf("got %+v", k)
	}
}

func TestParseKnobsInvalidReportsAll(t *testing.T) {
	_, err := parseKnobs(env(map[string]string{
		"FAKEAGENT_REGISTER_DELAY": "soon",
		"FAKEAGENT_DOCKER_TIMEOUT": "-1s",
		"FAKEAGENT_NEVER_REGISTER": "maybe",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"FAKEAGENT_REGISTER_DELAY", "FAKEAGENT_DOCKER_TIMEOUT", "FAKEAGENT_NEVER_REGISTER"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

var arnRE = regexp.MustCompile(`^arn:aws:ecs:us-east-1:123456789012:container-instance/([A-Za-z0-9_-]+)/[0-9a-f]{32}$`)

func TestContainerInstanceARN(t *testing.T) {
	for cluster, name := range map[string]string{
		"smoke":   "smoke",
		"default": "default",
		"arn:aws:ecs:eu-west-1:111122223333:cluster/prod_1": "prod_1",
	} {
		arn := containerInstanceARN(cluster, newID())
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
	want := `{"Cluster":"smoke","ContainerInstanceArn":"arn:x","Version":"Amazon ECS Agent - v1.0.0 (fakeagent)"}`
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
	}), out)
	if code != 1 || !strings.Contains(out.String(), "Unable to reach docker") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}
