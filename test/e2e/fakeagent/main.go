// Command fakeagent stands in for the Amazon ECS container agent inside the end-to-end
// sandbox. It behaves, as seen from firstrun, like the real agent started by ecs-init:
//
//   - it takes ECS_CLUSTER (empty means "default") and the proxy settings from its
//     environment, which systemd fills from /etc/ecs/ecs.config;
//   - it logs lines shaped like the agent's (level=info time=... msg="...") to stdout
//     and to /var/log/ecs/ecs-agent.log, proxy URLs redacted of credentials;
//   - it waits, bounded, until docker answers GET /_ping on /var/run/docker.sock, and
//     exits 1 if it never does;
//   - after a registration delay it serves the introspection API, GET /v1/metadata on
//     127.0.0.1:51678; before that the port refuses connections, as the agent's does.
//
// Test knobs, from the environment (ecs.service also reads /etc/fakeagent.env):
//
//	FAKEAGENT_REGISTER_DELAY   Go duration before "registering" (default 1s)
//	FAKEAGENT_LISTEN           introspection address (default 127.0.0.1:51678)
//	FAKEAGENT_PINNED_CLUSTER   report this cluster instead of ECS_CLUSTER, as an agent
//	                           whose checkpoint pins another cluster would
//	FAKEAGENT_NEVER_REGISTER   true: never serve the introspection API
//	FAKEAGENT_DOCKER_SOCKET    docker's socket (default /var/run/docker.sock)
//	FAKEAGENT_DOCKER_TIMEOUT   how long to wait for docker (default 30s)
//	FAKEAGENT_LOG_FILE         log file (default /var/log/ecs/ecs-agent.log)
//
// It exits 0 on SIGTERM or SIGINT, 1 on a failure, 2 on an invalid knob.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/internal/redact"
)

// version is what /v1/metadata reports in its Version field.
const version = "Amazon ECS Agent - v1.0.0 (fakeagent)"

// knobs is the agent's configuration, read from its environment.
type knobs struct {
	Cluster       string        // ECS_CLUSTER, "default" when empty
	PinnedCluster string        // FAKEAGENT_PINNED_CLUSTER
	RegisterDelay time.Duration // FAKEAGENT_REGISTER_DELAY
	Listen        string        // FAKEAGENT_LISTEN
	NeverRegister bool          // FAKEAGENT_NEVER_REGISTER
	DockerSocket  string        // FAKEAGENT_DOCKER_SOCKET
	DockerTimeout time.Duration // FAKEAGENT_DOCKER_TIMEOUT
	LogFile       string        // FAKEAGENT_LOG_FILE
	HTTPProxy     string        // HTTP_PROXY, as given
	NoProxy       string        // NO_PROXY, as given
}

// parseKnobs reads the knobs from getenv, with their defaults, and reports every
// invalid one at once.
func parseKnobs(getenv func(string) string) (knobs, error) {
	k := knobs{
		Cluster:       getenv("ECS_CLUSTER"),
		PinnedCluster: getenv("FAKEAGENT_PINNED_CLUSTER"),
		RegisterDelay: time.Second,
		Listen:        "127.0.0.1:51678",
		DockerSocket:  "/var/run/docker.sock",
		DockerTimeout: 30 * time.Second,
		LogFile:       "/var/log/ecs/ecs-agent.log",
		HTTPProxy:     getenv("HTTP_PROXY"),
		NoProxy:       getenv("NO_PROXY"),
	}
	if k.Cluster == "" {
		k.Cluster = "default"
	}
	var errs []error
	duration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a non-negative Go duration such as 1s", name, v))
				return
			}
			*dst = d
		}
	}
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	duration("FAKEAGENT_REGISTER_DELAY", &k.RegisterDelay)
	duration("FAKEAGENT_DOCKER_TIMEOUT", &k.DockerTimeout)
	str("FAKEAGENT_LISTEN", &k.Listen)
	str("FAKEAGENT_DOCKER_SOCKET", &k.DockerSocket)
	str("FAKEAGENT_LOG_FILE", &k.LogFile)
	if v := getenv("FAKEAGENT_NEVER_REGISTER"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FAKEAGENT_NEVER_REGISTER=%q: want true or false", v))
		}
		k.NeverRegister = b
	}
	return k, errors.Join(errs...)
}

// reportedCluster is the cluster the agent registers to and reports.
func (k knobs) reportedCluster() string {
	if k.PinnedCluster != "" {
		return k.PinnedCluster
	}
	return k.Cluster
}

// metadata is the introspection API's GET /v1/metadata answer
// (amazon-ecs-agent ecs-agent/introspection/v1/response.go).
type metadata struct {
	Cluster              string  `json:"Cluster"`
	ContainerInstanceArn *string `json:"ContainerInstanceArn"`
	Version              string  `json:"Version"`
}

// metadataJSON renders the /v1/metadata answer for a registered agent.
func metadataJSON(cluster, arn string) []byte {
	b, err := json.Marshal(metadata{Cluster: cluster, ContainerInstanceArn: &arn, Version: version})
	if err != nil { // cannot happen: strings only
		panic(err)
	}
	return b
}

// containerInstanceARN returns the container instance ARN for cluster, a name or a
// cluster ARN, and a 32-hex-digit id.
func containerInstanceARN(cluster, id string) string {
	name := cluster
	if i := strings.Index(cluster, ":cluster/"); strings.HasPrefix(cluster, "arn:") && i >= 0 {
		name = cluster[i+len(":cluster/"):]
	}
	return "arn:aws:ecs:us-east-1:123456789012:container-instance/" + name + "/" + id
}

// newID returns 32 random hex digits, as in a container instance ARN.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// logger writes agent-style lines to each of its writers.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

// log writes one line: level=LEVEL time=RFC3339 msg="MSG" key="value"...
func (l *logger) log(level, msg string, kv ...string) {
	var b strings.Builder
	fmt.Fprintf(&b, "level=%s time=%s msg=%q", level, time.Now().UTC().Format(time.RFC3339), msg)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %s=%q", kv[i], kv[i+1])
	}
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, b.String())
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Getenv, os.Stdout))
}

// run is the agent; it returns the exit code.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) int {
	k, err := parseKnobs(getenv)
	if err != nil {
		fmt.Fprintf(stdout, "level=error msg=%q\n", "invalid knobs: "+err.Error())
		return 2
	}
	lg := &logger{w: stdout}
	if err := os.MkdirAll(filepath.Dir(k.LogFile), 0o755); err == nil {
		if f, err := os.OpenFile(k.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			defer f.Close()
			lg.w = io.MultiWriter(stdout, f)
		}
	}
	lg.log("info", "Starting Amazon ECS Agent", "version", version, "cluster", k.Cluster)
	lg.log("info", "Proxy settings",
		"HTTP_PROXY", setOrNot(redact.Value("HTTP_PROXY", k.HTTPProxy)), "NO_PROXY", setOrNot(k.NoProxy))

	if err := waitDocker(ctx, k.DockerSocket, k.DockerTimeout); err != nil {
		if ctx.Err() != nil {
			lg.log("info", "Stopping: signal received while waiting for docker")
			return 0
		}
		lg.log("critical", "Unable to reach docker", "error", err.Error())
		return 1
	}
	lg.log("info", "Docker is reachable", "socket", k.DockerSocket)

	if k.NeverRegister {
		lg.log("warn", "Registration disabled by FAKEAGENT_NEVER_REGISTER; not serving introspection")
		<-ctx.Done()
		lg.log("info", "Stopping: signal received")
		return 0
	}
	lg.log("info", "Registering container instance", "cluster", k.reportedCluster(), "delay", k.RegisterDelay.String())
	select {
	case <-ctx.Done():
		lg.log("info", "Stopping: signal received before registration")
		return 0
	case <-time.After(k.RegisterDelay):
	}
	arn := containerInstanceARN(k.reportedCluster(), newID())
	body := metadataJSON(k.reportedCluster(), arn)
	ln, err := net.Listen("tcp", k.Listen)
	if err != nil {
		lg.log("critical", "Unable to start introspection server", "error", err.Error())
		return 1
	}
	lg.log("info", "Registration completed successfully", "containerInstanceArn", arn, "cluster", k.reportedCluster())
	lg.log("info", "Introspection server listening", "address", ln.Addr().String())
	if err := serve(ctx, ln, body); err != nil {
		lg.log("critical", "Introspection server failed", "error", err.Error())
		return 1
	}
	lg.log("info", "Stopping: signal received")
	return 0
}

// setOrNot returns v, or "(not set)" when v is empty.
func setOrNot(v string) string {
	if v == "" {
		return "(not set)"
	}
	return v
}

// waitDocker polls GET /_ping on docker's socket until it answers 200 OK, the timeout
// passes or ctx ends.
func waitDocker(ctx context.Context, socket string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, // docker's socket is never reached through a proxy
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
		if err != nil {
			return fmt.Errorf("docker ping request: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /_ping on %s: HTTP %d", socket, resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker did not answer within %s: %w", timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// serve answers the introspection API on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, body []byte) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/metadata", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		return nil
	}
}
