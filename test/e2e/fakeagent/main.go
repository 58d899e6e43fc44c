// Command fakeagent stands in for the Amazon ECS container agent inside the end-to-end
// sandbox. It behaves, as seen from firstrun, like the real agent (v1.105.1) started by
// ecs-init; the files of aws/amazon-ecs-agent it follows are named where it copies them:
//
//   - it takes ECS_CLUSTER (empty means "default"), ECS_LOGLEVEL,
//     ECS_LOGLEVEL_ON_INSTANCE, ECS_CHECKPOINT and the proxy settings from its
//     environment, which systemd fills from /etc/ecs/ecs.config;
//   - it logs lines in the agent's logfmt (level=info time=... logger=structured
//     msg="..." key="value") to stdout at ECS_LOGLEVEL and to
//     /var/log/ecs/ecs-agent.log at ECS_LOGLEVEL_ON_INSTANCE (default ECS_LOGLEVEL),
//     proxy URLs redacted of credentials; at debug, one "Handling http request" line per
//     request to its introspection server, as the real one;
//   - it waits, bounded, until docker answers GET /_ping on /var/run/docker.sock, and
//     exits 1 if it never does;
//   - with checkpointing (ECS_CHECKPOINT, default true) it restores its cluster from
//     its data directory, and exits 5 (terminal: ecs.service does not restart it) when
//     the saved cluster is not the configured one, as the real one does;
//   - after a registration delay it serves the introspection API on 127.0.0.1:51678:
//     GET / lists the paths, GET /v1/metadata has Cluster exactly as configured,
//     ContainerInstanceArn and Version. Before registration the port refuses
//     connections: the real agent starts that server only once registered.
//
// Test knobs, from the environment (ecs.service also reads /etc/fakeagent.env):
//
//	FAKEAGENT_REGISTER_DELAY   Go duration before "registering" (default 1s)
//	FAKEAGENT_LISTEN           introspection address (default 127.0.0.1:51678)
//	FAKEAGENT_NEVER_REGISTER   true: never register, never serve the introspection API
//	FAKEAGENT_DOCKER_SOCKET    docker's socket (default /var/run/docker.sock)
//	FAKEAGENT_DOCKER_TIMEOUT   how long to wait for docker (default 30s)
//	FAKEAGENT_LOG_FILE         log file (default /var/log/ecs/ecs-agent.log)
//	FAKEAGENT_DATA_DIR         checkpoint directory (default /var/lib/ecs/data)
//
// An agent pinned to another cluster is made by writing its checkpoint,
// FAKEAGENT_DATA_DIR/fakeagent-checkpoint.json, {"Cluster":"other"}; the real agent
// keeps its checkpoint in agent.db in the same directory.
//
// It exits 0 on SIGTERM or SIGINT, 1 on a failure, 2 on an invalid knob, 5 on a
// terminal failure (the saved cluster is not the configured one).
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

// version is what /v1/metadata reports in its Version field, the real agent's
// agent/version String(): "Amazon ECS Agent - vVERSION (COMMIT)", the commit starred
// when the build tree was dirty.
const version = "Amazon ECS Agent - v1.105.1 (*a8b3e7d3)"

// Exit codes of the real agent (agent/app/exitcodes): 5 is terminal, and ecs.service
// (RestartPreventExitStatus=5) does not restart it.
const (
	exitError    = 1
	exitTerminal = 5
)

// checkpointFile is the fake's checkpoint in the data directory.
const checkpointFile = "fakeagent-checkpoint.json"

// knobs is the agent's configuration, read from its environment.
type knobs struct {
	Cluster       string        // ECS_CLUSTER, "default" when empty
	LogLevel      level         // ECS_LOGLEVEL, for stdout
	FileLogLevel  level         // ECS_LOGLEVEL_ON_INSTANCE, else ECS_LOGLEVEL, for the log file
	Checkpoint    bool          // ECS_CHECKPOINT, default true
	RegisterDelay time.Duration // FAKEAGENT_REGISTER_DELAY
	Listen        string        // FAKEAGENT_LISTEN
	NeverRegister bool          // FAKEAGENT_NEVER_REGISTER
	DockerSocket  string        // FAKEAGENT_DOCKER_SOCKET
	DockerTimeout time.Duration // FAKEAGENT_DOCKER_TIMEOUT
	LogFile       string        // FAKEAGENT_LOG_FILE
	DataDir       string        // FAKEAGENT_DATA_DIR
	HTTPProxy     string        // HTTP_PROXY, as given
	NoProxy       string        // NO_PROXY, as given
}

// parseKnobs reads the knobs from getenv, with their defaults, and reports every
// invalid one at once. The agent's own variables are read as the agent reads them: an
// unknown log level is ignored (ecs-agent/logger/log.go, SetLevel), and so is an
// ECS_CHECKPOINT that is not a boolean.
func parseKnobs(getenv func(string) string) (knobs, error) {
	k := knobs{
		Cluster:       getenv("ECS_CLUSTER"),
		LogLevel:      levelInfo,
		Checkpoint:    true,
		RegisterDelay: time.Second,
		Listen:        "127.0.0.1:51678",
		DockerSocket:  "/var/run/docker.sock",
		DockerTimeout: 30 * time.Second,
		LogFile:       "/var/log/ecs/ecs-agent.log",
		DataDir:       "/var/lib/ecs/data",
		HTTPProxy:     getenv("HTTP_PROXY"),
		NoProxy:       getenv("NO_PROXY"),
	}
	if k.Cluster == "" {
		k.Cluster = "default"
	}
	if l, ok := parseLevel(getenv("ECS_LOGLEVEL")); ok {
		k.LogLevel = l
	}
	k.FileLogLevel = k.LogLevel
	if l, ok := parseLevel(getenv("ECS_LOGLEVEL_ON_INSTANCE")); ok {
		k.FileLogLevel = l
	}
	if b, err := strconv.ParseBool(getenv("ECS_CHECKPOINT")); err == nil {
		k.Checkpoint = b
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
	str("FAKEAGENT_DATA_DIR", &k.DataDir)
	if v := getenv("FAKEAGENT_NEVER_REGISTER"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FAKEAGENT_NEVER_REGISTER=%q: want true or false", v))
		}
		k.NeverRegister = b
	}
	if getenv("FAKEAGENT_PINNED_CLUSTER") != "" {
		errs = append(errs, errors.New("FAKEAGENT_PINNED_CLUSTER is gone: the real agent never answers with a pinned cluster, it exits 5; write a checkpoint instead"))
	}
	return k, errors.Join(errs...)
}

// level is a log level, ordered as seelog's.
type level int

const (
	levelDebug level = iota
	levelInfo
	levelWarn
	levelError
	levelCritical
	levelOff
)

// String is the level as the agent writes it after level=.
func (l level) String() string {
	return [...]string{"debug", "info", "warn", "error", "critical", "off"}[l]
}

// parseLevel reads ECS_LOGLEVEL's values (ecs-agent/logger/log.go, SetLevel: debug,
// info, warn, error, crit, none; any case).
func parseLevel(s string) (level, bool) {
	l, ok := map[string]level{"debug": levelDebug, "info": levelInfo, "warn": levelWarn,
		"error": levelError, "crit": levelCritical, "none": levelOff}[strings.ToLower(s)]
	return l, ok
}

// metadata is the introspection API's GET /v1/metadata answer
// (ecs-agent/introspection/v1/response.go, AgentMetadataResponse).
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

// rootJSON is the answer to GET / (and to any path the server does not know): the
// paths it serves, without the pprof ones, which ECS_ENABLE_RUNTIME_STATS adds
// (ecs-agent/introspection/server.go, setup).
const rootJSON = `{"AvailableCommands":["/v1/metadata","/v1/tasks","/license"]}`

// containerInstanceARN returns the container instance ARN for cluster, a name or a
// cluster ARN (whose partition, region and account it takes), and a 32-hex-digit id.
func containerInstanceARN(cluster, id string) string {
	prefix, name := "arn:aws:ecs:us-east-1:123456789012", cluster
	if i := strings.Index(cluster, ":cluster/"); strings.HasPrefix(cluster, "arn:") && i >= 0 {
		prefix, name = cluster[:i], cluster[i+len(":cluster/"):]
	}
	return prefix + ":container-instance/" + name + "/" + id
}

// newID returns 32 random hex digits, as in a container instance ARN.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// logger writes agent-style lines to stdout and to the log file, each at its level.
type logger struct {
	mu        sync.Mutex
	out, file io.Writer // file may be nil
	outLevel  level
	fileLevel level
}

// log writes one line in the agent's logfmt with its structured logger:
// level=LEVEL time=RFC3339 logger=structured msg="MSG" key="value"...
// (ecs-agent/logger/log.go, logfmtFormatter; the structured logger's
// messageTextFormatter in the same package).
func (l *logger) log(lv level, msg string, kv ...string) {
	var b strings.Builder
	fmt.Fprintf(&b, "level=%s time=%s logger=structured msg=%q", lv, time.Now().UTC().Format(time.RFC3339), msg)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %s=%q", kv[i], kv[i+1])
	}
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if lv >= l.outLevel {
		_, _ = io.WriteString(l.out, b.String())
	}
	if l.file != nil && lv >= l.fileLevel {
		_, _ = io.WriteString(l.file, b.String())
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Getenv, os.Stdout))
}

// checkpoint is what the fake saves once registered.
type checkpoint struct {
	Cluster              string `json:"Cluster"`
	ContainerInstanceArn string `json:"ContainerInstanceArn,omitempty"`
}

// readCheckpoint returns the saved checkpoint, ok false when there is none.
func readCheckpoint(dir string) (checkpoint, bool, error) {
	var c checkpoint
	data, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, false, fmt.Errorf("%s: %w", checkpointFile, err)
	}
	return c, true, nil
}

// saveCheckpoint writes the checkpoint.
func saveCheckpoint(dir string, c checkpoint) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, checkpointFile), data, 0o600)
}

// run is the agent; it returns the exit code.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) int {
	k, err := parseKnobs(getenv)
	if err != nil {
		fmt.Fprintf(stdout, "level=error msg=%q\n", "invalid knobs: "+err.Error())
		return 2
	}
	lg := &logger{out: stdout, outLevel: k.LogLevel, fileLevel: k.FileLogLevel}
	if err := os.MkdirAll(filepath.Dir(k.LogFile), 0o755); err == nil {
		if f, err := os.OpenFile(k.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			defer f.Close()
			lg.file = f
		}
	}
	lg.log(levelInfo, "Starting Amazon ECS Agent", "version", version, "cluster", k.Cluster)
	lg.log(levelInfo, "Proxy settings",
		"HTTP_PROXY", setOrNot(redact.Value("HTTP_PROXY", k.HTTPProxy)), "NO_PROXY", setOrNot(k.NoProxy))

	if err := waitDocker(ctx, k.DockerSocket, k.DockerTimeout); err != nil {
		if ctx.Err() != nil {
			lg.log(levelInfo, "Stopping: signal received while waiting for docker")
			return 0
		}
		lg.log(levelCritical, "Unable to reach docker", "error", err.Error())
		return exitError
	}
	lg.log(levelInfo, "Docker is reachable", "socket", k.DockerSocket)

	// agent/app/agent.go, newTaskEngine and setClusterInConfig: a saved cluster other
	// than the configured one is terminal.
	arn := ""
	if k.Checkpoint {
		saved, ok, err := readCheckpoint(k.DataDir)
		switch {
		case err != nil:
			lg.log(levelCritical, "Error loading previously saved state", "error", err.Error())
			return exitError
		case ok && saved.Cluster != "" && saved.Cluster != k.Cluster:
			lg.log(levelCritical, "Error restoring cluster", "previousCluster", saved.Cluster, "configuredCluster", k.Cluster,
				"error", fmt.Sprintf("Data mismatch; saved cluster '%s' does not match configured cluster '%s'. Perhaps you want to delete the configured checkpoint file?", saved.Cluster, k.Cluster))
			return exitTerminal
		case ok && saved.Cluster != "":
			lg.log(levelInfo, "Cluster was successfully restored", "cluster", saved.Cluster)
			arn = saved.ContainerInstanceArn
		}
	} else {
		lg.log(levelInfo, "Checkpointing not enabled; a new container instance will be created each time the agent is run")
	}

	if k.NeverRegister {
		lg.log(levelWarn, "Registration disabled by FAKEAGENT_NEVER_REGISTER; not serving introspection")
		<-ctx.Done()
		lg.log(levelInfo, "Stopping: signal received")
		return 0
	}
	lg.log(levelInfo, "Registering Instance with ECS", "cluster", k.Cluster, "delay", k.RegisterDelay.String())
	select {
	case <-ctx.Done():
		lg.log(levelInfo, "Stopping: signal received before registration")
		return 0
	case <-time.After(k.RegisterDelay):
	}
	if arn == "" {
		arn = containerInstanceARN(k.Cluster, newID())
	}
	if k.Checkpoint {
		if err := saveCheckpoint(k.DataDir, checkpoint{Cluster: k.Cluster, ContainerInstanceArn: arn}); err != nil {
			lg.log(levelCritical, "Unable to save the checkpoint", "error", err.Error())
			return exitError
		}
	}
	ln, err := net.Listen("tcp", k.Listen)
	if err != nil {
		lg.log(levelCritical, "Unable to start introspection server", "error", err.Error())
		return exitError
	}
	lg.log(levelInfo, "Registration completed successfully", "containerInstanceArn", arn, "cluster", k.Cluster)
	lg.log(levelInfo, "Introspection server listening", "address", ln.Addr().String())
	if err := serve(ctx, ln, metadataJSON(k.Cluster, arn), lg); err != nil {
		lg.log(levelCritical, "Introspection server failed", "error", err.Error())
		return exitError
	}
	lg.log(levelInfo, "Stopping: signal received")
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

// handler is the introspection server's: every method on every path, as the real
// server's ServeMux (ecs-agent/introspection/server.go, setup): "/" and anything it
// does not know lists the paths, /v1/metadata is the metadata, /v1/tasks the tasks
// (none here), /license the license text; each request first logged at debug
// (ecs-agent/tmds/logging/logging_handler.go: "Handling http request" with method and
// from, the remote address).
func handler(metadataBody []byte, lg *logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, rootJSON) // the real one sets no Content-Type here
	})
	writeJSON := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
	mux.HandleFunc("/v1/metadata", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, string(metadataBody)) })
	mux.HandleFunc("/v1/tasks", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, `{"Tasks":[]}`) })
	mux.HandleFunc("/license", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Amazon Elastic Container Service Container Agent (fakeagent stand-in)\n")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lg.log(levelDebug, "Handling http request", "method", r.Method, "from", r.RemoteAddr)
		mux.ServeHTTP(w, r)
	})
}

// serve answers the introspection API on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, metadataBody []byte, lg *logger) error {
	srv := &http.Server{Handler: handler(metadataBody, lg), ReadHeaderTimeout: 5 * time.Second}
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
