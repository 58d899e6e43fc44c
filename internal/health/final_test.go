package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rootAnswer is what the real agent answers to GET / on its introspection port
// (aws/amazon-ecs-agent ecs-agent/introspection/server.go, setup: the "/" handler).
const rootAnswer = `{"AvailableCommands":["/v1/metadata","/v1/tasks","/license"]}`

func TestClientGetNotMetadata(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"the agent's root", rootAnswer},
		{"another JSON object", `{"status":"ok"}`},
		{"JSON null", "null"},
		{"an empty object", "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tc.body) })
			st := NewClient(srv.URL + "/v1/metadata").Get(context.Background())
			if !st.NotMetadata() || st.Metadata != nil || st.Registered() {
				t.Fatalf("status %q (NotMetadata %v, Metadata %+v), want a 200 that is not the agent's metadata", st, st.NotMetadata(), st.Metadata)
			}
			if !errors.Is(st.Err, ErrNotMetadata) || !strings.Contains(st.Err.Error(), srv.URL+"/v1/metadata") {
				t.Errorf("Err = %v, want ErrNotMetadata naming the endpoint", st.Err)
			}
			want := `HTTP 200 without the agent's metadata (no "Cluster"): not the agent's metadata endpoint; it answered ` + tc.body
			if st.String() != want {
				t.Errorf("String() = %q\nwant       %q", st.String(), want)
			}
		})
	}
	// A metadata answer with its fields empty or null is the agent's, not registered.
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"Cluster":"","ContainerInstanceArn":null,"Version":""}`)
	})
	if st := NewClient(srv.URL).Get(context.Background()); st.NotMetadata() || st.Metadata == nil {
		t.Errorf("empty metadata fields: status %q, want the agent's metadata", st)
	}
}

func TestWaitFailsFastOnNotMetadata(t *testing.T) {
	notMD := Status{HTTPStatus: 200, Err: fmt.Errorf("GET http://127.0.0.1:51678/: %w", &notMetadataError{body: rootAnswer})}
	g := sequence(refused(), notMD, registered("prod"))
	var rec recorder
	st, err := Wait(context.Background(), g, "prod", time.Hour, time.Millisecond, rec.onChange)
	if !errors.Is(err, ErrNotMetadata) || !errors.Is(err, ErrNotRegistered) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait error = %v, want ErrNotMetadata and ErrNotRegistered, not a timeout", err)
	}
	if g.calls != 2 || !st.NotMetadata() {
		t.Errorf("Wait = %q after %d calls, want to stop at the first answer that is not metadata", st, g.calls)
	}
	for _, s := range []string{"not the agent's metadata endpoint", "FIRSTRUN_AGENT_URL", "/v1/metadata", "AvailableCommands"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Wait error %q does not say %q", err, s)
		}
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestWaitWrongClusterFailsAfterGrace(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	const grace = 30 * time.Second
	// Each poll is 10 s later on the fake clock: refused, then "default" for ever.
	g := &fakeGetter{get: func(_ context.Context, call int) Status {
		clock.t = clock.t.Add(10 * time.Second)
		if call == 1 {
			return refused()
		}
		return registered("default")
	}}
	var rec recorder
	st, err := wait(context.Background(), g, "prod", time.Hour, time.Millisecond, grace, clock.now, rec.onChange)
	var we *WrongClusterError
	if !errors.As(err, &we) || !errors.Is(err, ErrWrongCluster) || !errors.Is(err, ErrNotRegistered) || errors.Is(err, ErrTimeout) {
		t.Fatalf("wait error = %v (%T), want a *WrongClusterError, not a timeout", err, err)
	}
	// Seen at polls 2, 3, 4 and 5: 30 s after the first sight, at poll 5.
	if g.calls != 5 {
		t.Errorf("Get called %d times, want 5: fail once the wrong cluster was seen for the grace", g.calls)
	}
	if we.Cluster != "prod" || we.Other != "default" || we.For != grace || st.WrongCluster("prod") != "default" {
		t.Errorf("error %+v, status %q", we, st)
	}
	want := `the ECS agent is registered to cluster "default", not "prod", and stayed so for 30s: ` +
		`an agent keeps its cluster until it is restarted: was ECS_CLUSTER picked up?`
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant       %q", err.Error(), want)
	}
}

func TestWaitWrongClusterGraceRestartsWhenTheAgentRestarts(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	// The old agent answers "default" for 20 s, is restarted (refused for a while), and
	// the new one registers to prod: the two stretches of "default" are not added up.
	seq := []Status{registered("default"), registered("default"), registered("default"),
		refused(), registered("default"), registered("default"), registered("prod")}
	g := &fakeGetter{get: func(_ context.Context, call int) Status {
		if call > 1 {
			clock.t = clock.t.Add(10 * time.Second)
		}
		return seq[min(call, len(seq))-1]
	}}
	st, err := wait(context.Background(), g, "prod", time.Hour, time.Millisecond, 30*time.Second, clock.now, nil)
	if err != nil || !st.RegisteredTo("prod") {
		t.Fatalf("wait = %q, %v, want registered to prod: no stretch of the wrong cluster lasted 30 s", st, err)
	}
	// Another wrong cluster is a new answer, too.
	clock = &fakeClock{t: time.Unix(1_700_000_000, 0)}
	seq = []Status{registered("a"), registered("a"), registered("a"), registered("b"), registered("b"), registered("b"), registered("prod")}
	g.calls = 0
	if st, err := wait(context.Background(), g, "prod", time.Hour, time.Millisecond, 30*time.Second, clock.now, nil); err != nil || !st.RegisteredTo("prod") {
		t.Fatalf("wait = %q, %v, want registered to prod", st, err)
	}
}

func TestWaitWrongClusterTimeoutBeforeGrace(t *testing.T) {
	// A timeout shorter than the grace still ends the wait, with a timeout naming both.
	_, err := wait(context.Background(), sequence(registered("default")), "prod", 50*time.Millisecond, time.Millisecond, time.Hour, time.Now, nil)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrNotRegistered) || errors.Is(err, ErrWrongCluster) ||
		!strings.Contains(err.Error(), `registered to cluster "default", not "prod"`) {
		t.Errorf("wait error = %v, want a timeout naming both clusters", err)
	}
}
