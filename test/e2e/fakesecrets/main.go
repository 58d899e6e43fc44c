// Command fakesecrets stands in for SSM Parameter Store and Secrets Manager in the
// end-to-end sandbox: it serves the stand-in of internal/secrets/secretstest (GetParameter
// and GetSecretValue over the JSON 1.1 protocol, the APIs' errors, SigV4 checked against
// the configured credentials) and appends each request it got, with its answer, as one
// JSON object a line, to a file, for the tests to read. Requests carry names, never
// values.
//
//	fakesecrets -listen 127.0.0.1:8082 -log /var/log/fakesecrets.jsonl -config /etc/fakesecrets.json
//
// The configuration is secretstest.Config in JSON, for example
//
//	{"region": "eu-west-1", "parameters": {"/e2e/docker-auth": {"value": "{…}", "type": "SecureString"}},
//	 "secrets": {"e2e/proxy": {"string": "{\"url\": \"http://…\"}"}}, "denied": ["/e2e/denied"]}
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

	"github.com/firstrun/firstrun/internal/secrets/secretstest"
)

func load(path string) (secretstest.Config, error) {
	var cfg secretstest.Config
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

func (r *recorder) record(req secretstest.Request) {
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
		fmt.Fprintln(os.Stderr, "fakesecrets: recording a request:", err)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to listen on")
	logPath := flag.String("log", "/var/log/fakesecrets.jsonl", "file the requests are appended to")
	cfgPath := flag.String("config", "/etc/fakesecrets.json", "the parameters, secrets, keys and credentials (secretstest.Config as JSON)")
	flag.Parse()
	cfg, err := load(*cfgPath)
	if err == nil {
		s := secretstest.New(cfg)
		s.OnRequest = (&recorder{path: *logPath}).record
		fmt.Printf("fakesecrets listening on %s, %d parameters, %d secrets, logging to %s\n", *listen, len(cfg.Parameters), len(cfg.Secrets), *logPath)
		srv := &http.Server{Addr: *listen, Handler: s, ReadHeaderTimeout: 10 * time.Second}
		err = srv.ListenAndServe()
	}
	fmt.Fprintln(os.Stderr, "fakesecrets:", err)
	os.Exit(1)
}
