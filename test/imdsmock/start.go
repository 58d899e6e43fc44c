package imdsmock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// readyTimeout bounds the wait for a started mock to answer; it starts in
// milliseconds.
const readyTimeout = 15 * time.Second

// startAttempts is how many free ports Start tries: another process may take the port
// between its choice and the mock's listen.
const startAttempts = 3

// Start runs the mock serving c for the test, on a free loopback port (c.Port and
// c.Hostname are ignored), behind a reverse proxy that records requests. It builds the
// mock once per process, waits until it answers, and stops both when the test ends.
//
// endpoint is the proxy's base URL, "http://127.0.0.1:PORT", to give the code under
// test; requests returns "METHOD PATH" for every request the proxy has seen, in order.
// The mock's log is shown when the test fails. A missing go command or a failed build
// skips the test loudly (fails it under CI), see testenv.Need.
func Start(t testing.TB, c Config) (endpoint string, requests func() []string) {
	t.Helper()
	_, err := exec.LookPath("go")
	testenv.Need(t, err == nil, "the go command, to build amazon-ec2-metadata-mock")
	bin, err := binary()
	testenv.Need(t, err == nil, fmt.Sprintf("amazon-ec2-metadata-mock built from tools/ (needs the Go module proxy the first time): %v", err))

	dir := t.TempDir()
	var mock string
	for attempt := 1; mock == ""; attempt++ {
		mock, err = run(t, bin, dir, c)
		if err != nil && attempt == startAttempts {
			t.Fatalf("starting the IMDS mock: %v", err)
		}
	}

	target, err := url.Parse(mock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	toMock := &http.Transport{Proxy: nil}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: toMock,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		toMock.CloseIdleConnections()
	})
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// run starts the mock on a free port with c's configuration and waits until it
// answers. It returns the mock's base URL; "" and an error when the mock exited or did
// not answer in time.
func run(t testing.TB, bin, dir string, c Config) (string, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c.Hostname, c.Port = DefaultHostname, port
	cfg, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, fmt.Sprintf("aemm-config-%d.json", port))
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, fmt.Sprintf("mock-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cmd := exec.Command(bin, "-c", cfgPath)
	cmd.Dir = dir
	cmd.Env = mockEnv(dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the IMDS mock: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed at cleanup: its status says nothing
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			showLog(t, logPath)
		}
	})

	base := fmt.Sprintf("http://%s:%d", DefaultHostname, port)
	if err := waitReady(base, exited); err != nil {
		showLog(t, logPath)
		return "", err
	}
	return base, nil
}

// mockEnv is the mock's environment: this process's without the mock's own AEMM_
// variables, which would override its configuration file, and with HOME in the test's
// directory, where the mock looks for a default configuration file.
func mockEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AEMM_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+dir)
}

// waitReady asks the mock for a session token until it gives one, it exits, or
// readyTimeout passes.
func waitReady(base string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/latest/api/token", nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("the mock exited before answering (its log is above)")
		case <-ctx.Done():
			return fmt.Errorf("the mock did not answer at %s within %v", base, readyTimeout)
		case <-tick.C:
		}
	}
}

// freePort returns a loopback TCP port nothing listens on, for now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", DefaultHostname+":0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// showLog logs the end of the mock's log.
func showLog(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("IMDS mock log: %v", err)
		return
	}
	if len(data) > 8<<10 {
		data = data[len(data)-8<<10:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	t.Logf("IMDS mock log (%s), end:\n%s", path, data)
}
