// Command fakecfn stands in for CloudFormation's Query API in the end-to-end sandbox:
// it serves the stand-in of internal/cfnsignal/cfnsignaltest (stacks and resources
// with their states, SignalResource answered as CloudFormation answers it, SigV4
// checked, an account-wide rate when configured) and appends each request it got,
// with its answer, as one JSON object a line, to a file, for the tests to read.
//
//	fakecfn -listen 127.0.0.1:8081 -log /var/log/fakecfn.jsonl -config /etc/fakecfn.json
//
// The configuration is cfnsignaltest.Config in JSON, for example
//
//	{"region": "eu-west-1", "stacks": [{"name": "e2e-stack", "status": "CREATE_IN_PROGRESS",
//	  "resources": [{"logical_id": "ECSAutoScalingGroup", "status": "CREATE_IN_PROGRESS", "count": 1}]}]}
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
)

// load reads a configuration file; unknown fields are an error, so that a typo does
// not silently leave a stack out.
func load(path string) (cfnsignaltest.Config, error) {
	var cfg cfnsignaltest.Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// recorder appends each request's record to a file, one JSON object a line.
type recorder struct {
	mu   sync.Mutex
	path string
}

func (r *recorder) record(req cfnsignaltest.Request) {
	line, _ := json.Marshal(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakecfn: recording a request:", err)
	}
}

// newHandler returns the stand-in for cfg, recording to logPath.
func newHandler(cfg cfnsignaltest.Config, logPath string) (*cfnsignaltest.Server, error) {
	s, err := cfnsignaltest.New(cfg)
	if err != nil {
		return nil, err
	}
	s.OnRequest = (&recorder{path: logPath}).record
	return s, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	logPath := flag.String("log", "/var/log/fakecfn.jsonl", "file the requests are appended to")
	cfgPath := flag.String("config", "/etc/fakecfn.json", "the stacks and the account's settings (cfnsignaltest.Config as JSON)")
	flag.Parse()
	cfg, err := load(*cfgPath)
	if err == nil {
		var h http.Handler
		h, err = newHandler(cfg, *logPath)
		if err == nil {
			fmt.Printf("fakecfn listening on %s, %d stacks, logging to %s\n", *listen, len(cfg.Stacks), *logPath)
			srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
			err = srv.ListenAndServe()
		}
	}
	fmt.Fprintln(os.Stderr, "fakecfn:", err)
	os.Exit(1)
}
