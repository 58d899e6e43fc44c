package health

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Request lines as the real agent logs them at debug, one per request to its
// introspection (and task metadata) server: ecs-agent/tmds/logging/logging_handler.go
// logs "Handling http request" with the fields method and from; the structured logger
// writes the fields after msg in map order (package ecs-agent/logger,
// messageTextFormatter), and the logfmt or JSON formatter puts level and time first
// (ecs-agent/logger/log.go).
var (
	pollLogfmt   = `level=debug time=2026-11-28T10:00:00Z logger=structured msg="Handling http request" method="GET" from="127.0.0.1:41234"`
	pollLogfmt2  = `level=debug time=2026-11-28T10:00:00Z logger=structured msg="Handling http request" from="127.0.0.1:41236" method="GET"`
	pollIPv6     = `level=debug time=2026-11-28T10:00:00Z logger=structured msg="Handling http request" method="GET" from="[::1]:41238"`
	pollJSON     = `{"level":"debug","time":"2026-11-28T10:00:00Z","logger":"structured","msg":"Handling http request","from":"127.0.0.1:41240","method":"GET"}`
	taskRequest  = `level=debug time=2026-11-28T10:00:00Z logger=structured msg="Handling http request" method="GET" from="172.17.0.2:53312"`
	postRequest  = `level=debug time=2026-11-28T10:00:00Z logger=structured msg="Handling http request" method="PUT" from="127.0.0.1:41242"`
	infoRequest  = `level=info time=2026-11-28T10:00:00Z logger=structured msg="Handling http request" method="GET" from="127.0.0.1:41244"`
	registration = `level=info time=2026-11-28T10:00:00Z logger=structured msg="Registered container instance with cluster!"`
	mismatch     = `level=critical time=2026-11-28T10:00:00Z logger=structured msg="Error restoring cluster" previousCluster="default" configuredCluster="prod" error="Data mismatch; saved cluster 'default' does not match configured cluster 'prod'. Perhaps you want to delete the configured checkpoint file?"`
	quotedPoll   = `level=info time=2026-11-28T10:00:00Z msg="a line quoting msg=\"Handling http request\" from=\"127.0.0.1:1\"" module=agent.go`
)

func TestIsIntrospectionPoll(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{pollLogfmt, true}, {pollLogfmt2, true}, {pollIPv6, true}, {pollJSON, true},
		{taskRequest, false}, {postRequest, false}, {infoRequest, false},
		{registration, false}, {mismatch, false}, {quotedPoll, false},
		{"", false}, {"{", false}, {`level=debug msg="Handling http request" method="GET" from="127.0.0.1`, false},
	} {
		if got := isIntrospectionPoll(tc.line); got != tc.want {
			t.Errorf("isIntrospectionPoll(%s) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestTailAgentLogLeavesOutPolls(t *testing.T) {
	var b strings.Builder
	b.WriteString(registration + "\n" + mismatch + "\n")
	// 40 polls a second for a minute, 2 400 lines (about 300 KB), more than Tail's window.
	for i := range 2400 {
		if i%2 == 0 {
			fmt.Fprintln(&b, pollLogfmt)
		} else {
			fmt.Fprintln(&b, pollJSON)
		}
		if i == 1200 {
			fmt.Fprintln(&b, taskRequest)
		}
	}
	path := writeFile(t, b.String())
	got, err := TailAgentLog(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{registration, mismatch, taskRequest}; !reflect.DeepEqual(got, want) {
		t.Errorf("TailAgentLog = %q\nwant %q", got, want)
	}
	// Tail itself keeps every line.
	if plain, _ := Tail(path, 2); !reflect.DeepEqual(plain, []string{pollLogfmt, pollJSON}) {
		t.Errorf("Tail = %q, want the last two lines as they are", plain)
	}
}

func TestTailAgentLogBounded(t *testing.T) {
	// Only polls for more than the most TailAgentLog reads: nothing but what is past it.
	var b strings.Builder
	b.WriteString("old line\n")
	for b.Len() < agentLogWindow+1000 {
		fmt.Fprintln(&b, pollLogfmt)
	}
	got, err := TailAgentLog(writeFile(t, b.String()), 5)
	if err != nil || len(got) != 0 {
		t.Errorf("TailAgentLog = %q, %v; want no line: the old line is beyond %d bytes", got, err, agentLogWindow)
	}
}
