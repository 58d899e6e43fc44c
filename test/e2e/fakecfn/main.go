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
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
	"github.com/firstrun/firstrun/test/e2e/standin"
)

// load reads the configuration file (standin.Load).
func load(path string) (cfnsignaltest.Config, error) { return standin.Load[cfnsignaltest.Config](path) }

// newHandler returns the stand-in for cfg, recording to logPath.
func newHandler(cfg cfnsignaltest.Config, logPath string) (*cfnsignaltest.Server, error) {
	s, err := cfnsignaltest.New(cfg)
	if err != nil {
		return nil, err
	}
	s.OnRequest = (&standin.Recorder[cfnsignaltest.Request]{Name: "fakecfn", Path: logPath}).Record
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
