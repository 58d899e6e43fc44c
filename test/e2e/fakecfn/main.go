// Command fakecfn stands in for CloudFormation's Query API in the end-to-end sandbox:
// it answers SignalResource like the real service and appends each request it got,
// as one JSON object a line, to a file, for the tests to read. It checks what a real
// endpoint would refuse: the action and version, the four parameters, and an AWS
// Signature Version 4 Authorization header for the cloudformation service.
//
//	fakecfn -listen 127.0.0.1:8081 -log /var/log/fakecfn.jsonl
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sync"
)

// sigV4 is the shape of a SigV4 Authorization header for CloudFormation.
var sigV4 = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=[A-Z0-9]+/[0-9]{8}/[a-z0-9-]+/cloudformation/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$`)

// Request is one request as recorded.
type Request struct {
	Action            string `json:"action"`
	StackName         string `json:"stack_name"`
	LogicalResourceID string `json:"logical_resource_id"`
	UniqueID          string `json:"unique_id"`
	Status            string `json:"status"`
	SigV4             bool   `json:"sigv4"`
	Problem           string `json:"problem,omitempty"`
}

// check returns the request's record and what is wrong with it, "" for nothing.
func check(r *http.Request) Request {
	rec := Request{
		Action:            r.PostForm.Get("Action"),
		StackName:         r.PostForm.Get("StackName"),
		LogicalResourceID: r.PostForm.Get("LogicalResourceId"),
		UniqueID:          r.PostForm.Get("UniqueId"),
		Status:            r.PostForm.Get("Status"),
		SigV4:             sigV4.MatchString(r.Header.Get("Authorization")) && r.Header.Get("X-Amz-Date") != "",
	}
	switch {
	case r.Method != http.MethodPost:
		rec.Problem = "method " + r.Method
	case rec.Action != "SignalResource" || r.PostForm.Get("Version") != "2010-05-15":
		rec.Problem = fmt.Sprintf("action %q version %q", rec.Action, r.PostForm.Get("Version"))
	case !rec.SigV4:
		rec.Problem = "no SigV4 signature: " + r.Header.Get("Authorization")
	case rec.StackName == "" || rec.LogicalResourceID == "" || rec.UniqueID == "":
		rec.Problem = "missing parameter"
	case rec.Status != "SUCCESS" && rec.Status != "FAILURE":
		rec.Problem = "status " + rec.Status
	}
	return rec
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	logPath := flag.String("log", "/var/log/fakecfn.jsonl", "file the requests are appended to")
	flag.Parse()
	var mu sync.Mutex
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec := check(r)
		line, _ := json.Marshal(rec)
		mu.Lock()
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.Write(append(line, '\n'))
			f.Close()
		}
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		if rec.Problem != "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>%s</Message></Error><RequestId>fake</RequestId></ErrorResponse>`, rec.Problem)
			return
		}
		fmt.Fprint(w, `<SignalResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></SignalResourceResponse>`)
	})
	fmt.Printf("fakecfn listening on %s, logging to %s\n", *listen, *logPath)
	if err := http.ListenAndServe(*listen, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
