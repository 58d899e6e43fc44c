package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readSink returns the sink's events.
func readSink(t *testing.T, path string) []event {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("sink line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func messages(es []event) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Message)
	}
	return strings.Join(out, "|")
}

// TestPlaceholders: ResolvePlaceholder with what IMDS gave, "i-UNKNOWN" without it; an
// empty stream is the logs section's, else the instance id.
func TestPlaceholders(t *testing.T) {
	md := metadata{InstanceID: "i-0abc", Region: "eu-west-1"}
	if got := md.target("/g/{aws_region}", "{instance_id}", ""); got != (target{"/g/eu-west-1", "i-0abc"}) {
		t.Errorf("target = %+v", got)
	}
	if got := md.target("g", "", ""); got.Stream != "i-0abc" {
		t.Errorf("empty stream: %+v", got)
	}
	if got := md.target("g", "", "{instance_id}-all"); got.Stream != "i-0abc-all" {
		t.Errorf("logs.log_stream_name: %+v", got)
	}
	if got := (metadata{}).target("g", "{instance_id}", ""); got.Stream != "i-UNKNOWN" {
		t.Errorf("no IMDS: %+v", got)
	}
}

// TestFetchMetadata: the identity document with an IMDSv2 token; nothing, and an
// error logged, without IMDS.
func TestFetchMetadata(t *testing.T) {
	const token = "tok"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			io.WriteString(w, token)
		case r.Header.Get("X-aws-ec2-metadata-token") != token:
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/latest/dynamic/instance-identity/document":
			io.WriteString(w, `{"instanceId":"i-0e2e","region":"eu-west-1","availabilityZone":"eu-west-1a"}`)
		case r.URL.Path == "/latest/meta-data/hostname":
			io.WriteString(w, "ip-10-0-0-1.eu-west-1.compute.internal")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	var out strings.Builder
	md := fetchMetadata(context.Background(), &out, srv.URL)
	if md.InstanceID != "i-0e2e" || md.Region != "eu-west-1" || md.Hostname != "ip-10-0-0-1.eu-west-1.compute.internal" {
		t.Errorf("metadata %+v\n%s", md, out.String())
	}

	srv.Close()
	out.Reset()
	if md := fetchMetadata(context.Background(), &out, srv.URL); md != (metadata{}) || !strings.Contains(out.String(), "E! [EC2] Fetch identity document from EC2 metadata fail") {
		t.Errorf("without IMDS: %+v\n%s", md, out.String())
	}
}

// TestSinkEMF: a file destination switches to EMF at its first EMF record and stays
// so; other destinations do not; journal events never do.
func TestSinkEMF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := newSink(path)
	if err != nil {
		t.Fatal(err)
	}
	metrics := target{"/s/metrics", "i-1"}
	logs := target{"/s/log", "i-1"}
	const record = `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"ExitCode":0}`
	steps := []struct {
		t    target
		msg  string
		want bool
	}{
		{metrics, "not yet", false},
		{metrics, `{"_aws":{"CloudWatchMetrics":[]}} trailing`, false}, // does not end with }
		{metrics, ` {"CloudWatchMetrics":1}`, false},                   // does not start with {
		{logs, `{"msg":"no metrics here"}`, false},
		{metrics, record, true},
		{metrics, "after the switch", true},
		{logs, `{"msg":"run"}`, false},
		{target{"/s/metrics", "i-2"}, "another stream", false},
	}
	for _, st := range steps {
		if err := s.file(st.t, "/f", st.msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.journal(metrics, []string{"ecs.service"}, record); err != nil {
		t.Fatal(err)
	}
	got := readSink(t, path)
	if len(got) != len(steps)+1 {
		t.Fatalf("%d events, want %d", len(got), len(steps)+1)
	}
	for i, st := range steps {
		if got[i].EMF != st.want || got[i].Message != st.msg || got[i].LogGroup != st.t.Group || got[i].LogStream != st.t.Stream || got[i].Source != "/f" {
			t.Errorf("event %d = %+v, want emf %v for %q", i, got[i], st.want, st.msg)
		}
	}
	if j := got[len(steps)]; j.EMF || j.Source != "journald:ecs.service" {
		t.Errorf("journal event %+v: want no EMF", j)
	}
}

// TestTailer: without state a file is read from its start; whole lines only, empty
// ones left out; the offset saved as the real state file; a restart resumes there;
// truncation starts over; a rotation reads the old file's rest, then the new file
// from its start; a glob follows the newest file.
func TestTailer(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	sinkPath := filepath.Join(dir, "events.jsonl")
	s, err := newSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "log", "firstrun.log")
	dest := target{"/g", "i-1"}
	newTailer := func(glob string) *tailer {
		return &tailer{src: fileSource{Glob: glob, Target: dest}, state: state, sink: s, log: io.Discard}
	}
	appendTo := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	expect := func(step, want string) {
		t.Helper()
		if got := messages(readSink(t, sinkPath)); got != want {
			t.Errorf("%s: sink %q, want %q", step, got, want)
		}
	}

	tl := newTailer(logPath)
	tl.poll() // no file yet
	appendTo(logPath, "one\n\ntwo\nthr")
	tl.poll()
	expect("first lines", "one|two")
	if data, _ := os.ReadFile(stateFile(state, logPath)); string(data) != "9\n"+logPath {
		t.Errorf("state file %q", data)
	}
	appendTo(logPath, "ee\n")
	tl.poll()
	expect("the rest of a line", "one|two|three")
	tl.close()

	// A restart: the state file's offset, nothing twice.
	appendTo(logPath, "four\n")
	tl = newTailer(logPath)
	tl.poll()
	expect("after a restart", "one|two|three|four")

	// Truncated: from the start.
	if err := os.WriteFile(logPath, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tl.poll()
	expect("truncated", "one|two|three|four|new")

	// Rotated as internal/logfile does: renamed to .1, a new file at the path.
	appendTo(logPath, "last of old\n")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(logPath, "first of new, longer than the old file was\n")
	tl.poll()
	tl.poll()
	expect("rotated", "one|two|three|four|new|last of old|first of new, longer than the old file was")
	tl.close()

	// A glob follows the newest match.
	os.Remove(sinkPath)
	dir2 := filepath.Join(dir, "ecs")
	appendTo(filepath.Join(dir2, "a.log"), "a\n")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir2, "a.log"), old, old)
	appendTo(filepath.Join(dir2, "b.log"), "b\n")
	appendTo(filepath.Join(dir2, "c.log.gz"), "compressed\n")
	tl = newTailer(filepath.Join(dir2, "*"))
	tl.poll()
	expect("glob", "b")
	tl.close()
}

// TestFollowUnits: the receiver's journalctl arguments, one event an entry, never EMF.
func TestFollowUnits(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '{\"MESSAGE\":\"%s\"}\\n' \"$*\"\necho '{\"MESSAGE\":\"x\",\"CloudWatchMetrics\":1}'\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctl
	journalctl = script
	defer func() { journalctl = old }()
	sinkPath := filepath.Join(dir, "events.jsonl")
	s, err := newSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	u := unitSource{Units: []string{"docker.service"}, Target: target{"/s/journal/docker.service", "i-1"}}
	go func() {
		defer close(done)
		followUnits(ctx, io.Discard, s, u)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(readSink(t, sinkPath)) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	got := readSink(t, sinkPath)
	if len(got) != 2 {
		t.Fatalf("events %+v", got)
	}
	if want := `{"MESSAGE":"--utc --output=json --follow --unit docker.service --priority info"}`; got[0].Message != want {
		t.Errorf("journalctl ran with %s, want %s", got[0].Message, want)
	}
	for _, e := range got {
		if e.EMF || e.Source != "journald:docker.service" || e.LogGroup != u.Target.Group || e.LogStream != "i-1" {
			t.Errorf("event %+v", e)
		}
	}
}
