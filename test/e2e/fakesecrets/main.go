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
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/firstrun/firstrun/internal/secrets/secretstest"
	"github.com/firstrun/firstrun/test/e2e/standin"
)

// load reads the configuration file (standin.Load).
func load(path string) (secretstest.Config, error) { return standin.Load[secretstest.Config](path) }

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to listen on")
	logPath := flag.String("log", "/var/log/fakesecrets.jsonl", "file the requests are appended to")
	cfgPath := flag.String("config", "/etc/fakesecrets.json", "the parameters, secrets, keys and credentials (secretstest.Config as JSON)")
	flag.Parse()
	cfg, err := load(*cfgPath)
	if err == nil {
		s := secretstest.New(cfg)
		s.OnRequest = (&standin.Recorder[secretstest.Request]{Name: "fakesecrets", Path: *logPath}).Record
		fmt.Printf("fakesecrets listening on %s, %d parameters, %d secrets, logging to %s\n", *listen, len(cfg.Parameters), len(cfg.Secrets), *logPath)
		srv := &http.Server{Addr: *listen, Handler: s, ReadHeaderTimeout: 10 * time.Second}
		err = srv.ListenAndServe()
	}
	fmt.Fprintln(os.Stderr, "fakesecrets:", err)
	os.Exit(1)
}
