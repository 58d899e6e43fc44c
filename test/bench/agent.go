package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// agentAddr is where the test agent serves its introspection API: the real agent's
// port, the one the seed script polls.
const agentAddr = "127.0.0.1:51678"

// agentURL is its /v1/metadata endpoint, given to firstrun as FIRSTRUN_AGENT_URL.
const agentURL = "http://" + agentAddr + "/v1/metadata"

// registeredLine is what fakeagent logs once its introspection port listens: from then
// on /v1/metadata answers registered.
const registeredLine = "Introspection server listening"

// dockerPing serves GET /_ping on a unix socket in dir, standing in for dockerd so
// that fakeagent, which waits for docker before registering, starts at once on the
// host. It returns the socket's path and a function that stops it.
func dockerPing(dir string) (string, func(), error) {
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return "", nil, fmt.Errorf("docker ping stand-in: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/_ping" {
				http.NotFound(w, r)
				return
			}
			_, _ = io.WriteString(w, "OK")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	return sock, func() { _ = srv.Close() }, nil
}

// agent is a running fakeagent (test/e2e/fakeagent), the test agent both tools poll.
type agent struct {
	cmd        *exec.Cmd
	registered chan time.Time // receives the moment registeredLine was read
	exited     chan struct{}
	mu         sync.Mutex
	out        strings.Builder // its log, for errors
}

// startAgent starts fakeagent for cluster; it registers (starts listening on
// agentAddr) delay after it starts. The moment of registration is taken when its
// "listening" log line is read, on this process's clock, as the tools' exits are.
func startAgent(bin, dockerSock, dir, cluster string, delay time.Duration) (*agent, error) {
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"ECS_CLUSTER=" + cluster,
		"FAKEAGENT_REGISTER_DELAY=" + delay.String(),
		"FAKEAGENT_LISTEN=" + agentAddr,
		"FAKEAGENT_DOCKER_SOCKET=" + dockerSock,
		"FAKEAGENT_LOG_FILE=" + filepath.Join(dir, "ecs-agent.log"),
		"ECS_CHECKPOINT=false", // a fresh agent each run, and nothing written under /var/lib/ecs
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("test agent: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("test agent: %w", err)
	}
	a := &agent{cmd: cmd, registered: make(chan time.Time, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, registeredLine) {
				a.registered <- time.Now()
			}
			a.mu.Lock()
			a.out.WriteString(line + "\n")
			a.mu.Unlock()
		}
		_ = cmd.Wait()
		close(a.exited)
	}()
	return a, nil
}

// registeredAt returns when the agent registered; an error when it has not by the
// time the tool exited (it is given grace to be read) or when it exited instead.
func (a *agent) registeredAt(grace time.Duration) (time.Time, error) {
	select {
	case t := <-a.registered:
		return t, nil
	case <-a.exited:
		return time.Time{}, fmt.Errorf("test agent exited before registering:\n%s", a.log())
	case <-time.After(grace):
		return time.Time{}, fmt.Errorf("test agent has not registered:\n%s", a.log())
	}
}

// stop ends the agent (SIGTERM, then SIGKILL after 5 s) and waits for it, so that the
// next run finds its port free.
func (a *agent) stop() error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		return nil
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
		return errors.New("test agent ignored SIGTERM for 5 s")
	}
}

func (a *agent) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

// waitPortFree waits, bounded by ctx, until nothing listens on agentAddr: a tool that
// found an agent left from an earlier run would report a registration that never
// happened in this one.
func waitPortFree(ctx context.Context) error {
	for {
		c, err := net.DialTimeout("tcp", agentAddr, time.Second)
		if err != nil {
			return nil
		}
		_ = c.Close()
		select {
		case <-ctx.Done():
			return fmt.Errorf("something else listens on %s (an ECS agent?): the benchmark needs the port", agentAddr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
