package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

const (
	testCluster = "prod"
	testARN     = "arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/0123456789abcdef"
)

func strp(s string) *string { return &s }

// registered is the status of an agent registered to cluster.
func registered(cluster string) Status {
	return Status{HTTPStatus: 200, Metadata: &Metadata{Cluster: cluster, ContainerInstanceArn: strp(testARN), Version: "v1"}}
}

func refused() Status {
	return Status{Err: &url.Error{Op: "Get", URL: DefaultEndpoint, Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED),
	}}}
}

// newTestClient returns a Client for url whose requests give up after timeout.
func newTestClient(url string, timeout time.Duration) *Client {
	c := NewClient(url)
	c.timeout = timeout
	return c
}

// serve starts a loopback server answering every request with h.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// closedPortURL returns the metadata URL on a loopback port nothing listens on.
func closedPortURL(t *testing.T) (string, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr, "http://" + addr + "/v1/metadata"
}

func TestClientGet(t *testing.T) {
	metadataJSON := `{"Cluster":"prod","ContainerInstanceArn":"` + testARN + `","Version":"Amazon ECS Agent - v1.89.0 (abc)"}`
	tests := []struct {
		name           string
		status         int
		body           string
		wantString     string // String(), or its prefix when it ends with "*"
		wantErr        bool
		wantMetadata   bool
		wantRegistered bool
	}{
		{"registered", 200, metadataJSON, "registered to prod as " + testARN, false, true, true},
		{"null ARN", 200, `{"Cluster":"prod","ContainerInstanceArn":null,"Version":"v1"}`,
			"answering but not registered (ContainerInstanceArn is null)", false, true, false},
		{"missing ARN", 200, `{"Cluster":"prod","Version":"v1"}`,
			"answering but not registered (ContainerInstanceArn is null)", false, true, false},
		{"empty ARN", 200, `{"Cluster":"prod","ContainerInstanceArn":"","Version":"v1"}`,
			"answering but not registered (ContainerInstanceArn is empty)", false, true, false},
		{"500", 500, "internal error\n", "HTTP 500", true, false, false},
		{"503 with JSON", 503, metadataJSON, "HTTP 503", true, false, false},
		{"404", 404, "", "HTTP 404", true, false, false},
		{"bad JSON", 200, `{"Cluster":`, "bad JSON: *", true, false, false},
		{"not JSON", 200, "<html>hello</html>", "bad JSON: *", true, false, false},
		{"wrong type", 200, `{"Cluster":42}`, "bad JSON: *", true, false, false},
		{"empty body", 200, "", "bad JSON: empty body", true, false, false},
		{"blank body", 200, " \n", "bad JSON: empty body", true, false, false},
		{"huge body", 200, metadataJSON + strings.Repeat(" ", 2<<20), "body larger than 1048576 bytes", true, false, false},
		{"just under 1 MiB", 200, metadataJSON + strings.Repeat(" ", 1<<20-len(metadataJSON)),
			"registered to prod as " + testARN, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath, gotMethod string
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotMethod = r.URL.Path, r.Method
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			endpoint := srv.URL + "/v1/metadata"
			st := NewClient(endpoint).Get(context.Background())

			if gotPath != "/v1/metadata" || gotMethod != http.MethodGet {
				t.Errorf("request = %s %s, want GET /v1/metadata", gotMethod, gotPath)
			}
			if st.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", st.HTTPStatus, tt.status)
			}
			if prefix, ok := strings.CutSuffix(tt.wantString, "*"); ok {
				if !strings.HasPrefix(st.String(), prefix) {
					t.Errorf("String() = %q, want prefix %q", st.String(), prefix)
				}
			} else if st.String() != tt.wantString {
				t.Errorf("String() = %q, want %q", st.String(), tt.wantString)
			}
			if (st.Err != nil) != tt.wantErr {
				t.Errorf("Err = %v, want error: %v", st.Err, tt.wantErr)
			}
			if st.Err != nil && !strings.Contains(st.Err.Error(), endpoint) {
				t.Errorf("Err = %q, want it to name the endpoint %s", st.Err, endpoint)
			}
			if (st.Metadata != nil) != tt.wantMetadata {
				t.Errorf("Metadata = %+v, want metadata: %v", st.Metadata, tt.wantMetadata)
			}
			if st.Registered() != tt.wantRegistered || st.RegisteredTo(testCluster) != tt.wantRegistered {
				t.Errorf("Registered() = %v, RegisteredTo(%q) = %v, want %v",
					st.Registered(), testCluster, st.RegisteredTo(testCluster), tt.wantRegistered)
			}
		})
	}
}

func TestClientGetMetadataFields(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"Cluster":"arn:aws:ecs:eu-west-1:123456789012:cluster/prod","ContainerInstanceArn":"`+testARN+`","Version":"v1.89.0","Extra":true}`)
	})
	st := NewClient(srv.URL).Get(context.Background())
	want := &Metadata{Cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", ContainerInstanceArn: strp(testARN), Version: "v1.89.0"}
	if !reflect.DeepEqual(st.Metadata, want) {
		t.Errorf("Metadata = %+v, want %+v", st.Metadata, want)
	}
	if !st.RegisteredTo("prod") || st.RegisteredTo("staging") {
		t.Errorf("RegisteredTo(prod) = %v, RegisteredTo(staging) = %v, want true, false",
			st.RegisteredTo("prod"), st.RegisteredTo("staging"))
	}
}

func TestClientGetNonOKErrorQuotesBody(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "agent is starting", http.StatusServiceUnavailable)
	})
	st := NewClient(srv.URL).Get(context.Background())
	if st.String() != "HTTP 503" {
		t.Errorf("String() = %q, want %q", st.String(), "HTTP 503")
	}
	if st.Err == nil || !strings.Contains(st.Err.Error(), "503 Service Unavailable: agent is starting") {
		t.Errorf("Err = %v, want it to give the status and the body", st.Err)
	}
}

// hangingServer answers nothing until the request is given up or the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func TestClientGetHangingBoundedByRequestTimeout(t *testing.T) {
	srv := hangingServer(t)
	start := time.Now()
	st := newTestClient(srv.URL, 100*time.Millisecond).Get(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Get took %v, want it bounded by its 100ms request timeout", took)
	}
	if st.HTTPStatus != 0 || !errors.Is(st.Err, context.DeadlineExceeded) {
		t.Errorf("Get = %+v, want no HTTP status and context.DeadlineExceeded", st)
	}
	if st.String() != "no answer in time" {
		t.Errorf("String() = %q, want %q", st.String(), "no answer in time")
	}
}

func TestClientGetHangingBoundedByContext(t *testing.T) {
	srv := hangingServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	st := NewClient(srv.URL).Get(ctx) // RequestTimeout is 2 s: ctx ends first
	if took := time.Since(start); took >= RequestTimeout {
		t.Errorf("Get took %v, want it bounded by the 100ms context", took)
	}
	if !errors.Is(st.Err, context.DeadlineExceeded) {
		t.Errorf("Err = %v, want context.DeadlineExceeded", st.Err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	st = NewClient(srv.URL).Get(ctx)
	if !errors.Is(st.Err, context.Canceled) || st.String() != "request cancelled" {
		t.Errorf("Get after cancel = %q (%v), want %q and context.Canceled", st, st.Err, "request cancelled")
	}
}

func TestClientGetConnectionRefused(t *testing.T) {
	_, endpoint := closedPortURL(t)
	st := NewClient(endpoint).Get(context.Background())
	if st.HTTPStatus != 0 || st.Metadata != nil {
		t.Errorf("Get = %+v, want no HTTP answer", st)
	}
	if !errors.Is(st.Err, syscall.ECONNREFUSED) {
		t.Errorf("Err = %v, want ECONNREFUSED", st.Err)
	}
	if st.String() != "connection refused" {
		t.Errorf("String() = %q, want %q", st.String(), "connection refused")
	}
}

func TestClientTransportHasNoProxy(t *testing.T) {
	tr, ok := NewClient(DefaultEndpoint).http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T, want *http.Transport", NewClient(DefaultEndpoint).http.Transport)
	}
	if tr.Proxy != nil {
		t.Error("Transport.Proxy is set, want nil: the agent is local and must never be reached through a proxy")
	}
}

func TestClientIgnoresProxyEnvironment(t *testing.T) {
	// Go reads the proxy environment once per process: the check runs in a fresh one.
	if !testenv.InFreshProcess(t) {
		return
	}

	const endpoint = "http://firstrun-agent.invalid:51678/v1/metadata"
	hits := testenv.ProxyTrap(t, endpoint)

	st := newTestClient(endpoint, 5*time.Second).Get(context.Background())
	if n := hits(); n != 0 {
		t.Errorf("proxy saw %d requests from the Client, want none", n)
	}
	if st.HTTPStatus != 0 || st.Err == nil {
		t.Errorf("Get = %+v (%s), want no HTTP answer from an unresolvable host", st, st)
	}
}

func TestStatusString(t *testing.T) {
	dnsErr := &url.Error{Op: "Get", URL: "http://agent.invalid/", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "agent.invalid", IsNotFound: true},
	}}
	tests := []struct {
		name string
		st   Status
		want string
	}{
		{"zero", Status{}, "no answer"},
		{"refused", refused(), "connection refused"},
		{"reset", Status{Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}, "connection reset"},
		{"deadline", Status{Err: fmt.Errorf("get: %w", context.DeadlineExceeded)}, "no answer in time"},
		{"dns", Status{Err: dnsErr}, "lookup agent.invalid: no such host"},
		{"other", Status{Err: errors.New("something odd")}, "something odd"},
		{"HTTP 502", Status{HTTPStatus: 502, Err: errors.New("GET x: 502 Bad Gateway")}, "HTTP 502"},
		{"200 without metadata", Status{HTTPStatus: 200}, "HTTP 200 without metadata"},
		{"bad JSON", Status{HTTPStatus: 200, Err: fmt.Errorf("GET x: %w", &bodyError{what: "bad JSON", err: errors.New("unexpected end of JSON input")})},
			"bad JSON: unexpected end of JSON input"},
		{"null ARN", Status{HTTPStatus: 200, Metadata: &Metadata{Cluster: "prod"}},
			"answering but not registered (ContainerInstanceArn is null)"},
		{"registered", registered("prod"), "registered to prod as " + testARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.st.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusSame(t *testing.T) {
	a := Status{Err: fmt.Errorf("attempt 1: %w", syscall.ECONNREFUSED)}
	b := Status{Err: fmt.Errorf("attempt 2: %w", syscall.ECONNREFUSED)}
	if !a.Same(b) {
		t.Errorf("%q and %q are not Same, want Same: both refused", a.Err, b.Err)
	}
	if a.Same(registered("prod")) {
		t.Error("refused is Same as registered, want not")
	}
	if registered("prod").Same(registered("staging")) {
		t.Error("registered to prod is Same as registered to staging, want not")
	}
}

func TestStatusWrongCluster(t *testing.T) {
	tests := []struct {
		name string
		st   Status
		want string
	}{
		{"right cluster", registered("prod"), ""},
		{"right cluster by ARN", registered("arn:aws:ecs:eu-west-1:123456789012:cluster/prod"), ""},
		{"other cluster", registered("default"), "default"},
		{"not registered", Status{HTTPStatus: 200, Metadata: &Metadata{Cluster: "default"}}, ""},
		{"no answer", refused(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.st.WrongCluster("prod"); got != tt.want {
				t.Errorf("WrongCluster(prod) = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSameCluster(t *testing.T) {
	const (
		prodARN  = "arn:aws:ecs:eu-west-1:123456789012:cluster/prod"
		otherARN = "arn:aws:ecs:eu-west-1:210987654321:cluster/prod"
	)
	tests := []struct {
		want, got string
		same      bool
	}{
		{"prod", "prod", true},
		{"prod", "staging", false},
		{"prod", "Prod", false},
		{"prod", prodARN, true},
		{prodARN, "prod", true},
		{"staging", prodARN, false},
		{prodARN, "staging", false},
		{prodARN, prodARN, true},
		{prodARN, otherARN, false},
		{prodARN, "arn:aws:ecs:us-east-1:123456789012:cluster/prod", false},
		{"prod", "arn:aws-cn:ecs:cn-north-1:123456789012:cluster/prod", true},
		{"arn:aws-us-gov:ecs:us-gov-west-1:123456789012:cluster/prod", "prod", true},
		{"prod", "arn:aws-iso-b:ecs:us-isob-east-1:123456789012:cluster/prod", true},
		{"prod", "arn:aws:ecs:eu-west-1:123456789012:container-instance/prod", false},
		{"prod", "arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/0123", false},
		{"prod", "arn:aws:ecs:eu-west-1:123456789012:service/prod", false},
		{"prod", "arn:aws:eks:eu-west-1:123456789012:cluster/prod", false},
		{"prod", "arn::ecs:eu-west-1:123456789012:cluster/prod", false},
		{"prod", "arn:aws:ecs:eu-west-1:123456789012:cluster/", false},
		{"prod", "cluster/prod", false},
		{"", "", false},
		{"", "prod", false},
		{"prod", "", false},
		{"", "arn:aws:ecs:eu-west-1:123456789012:cluster/", false},
	}
	for _, tt := range tests {
		if got := SameCluster(tt.want, tt.got); got != tt.same {
			t.Errorf("SameCluster(%q, %q) = %v, want %v", tt.want, tt.got, got, tt.same)
		}
	}
}

func TestTimeoutErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		last Status
		want string
	}{
		{"refused", refused(),
			`the ECS agent did not register to cluster "prod" within 10m0s: last: connection refused`},
		{"not registered", Status{HTTPStatus: 200, Metadata: &Metadata{Cluster: "prod"}},
			`the ECS agent did not register to cluster "prod" within 10m0s: last: answering but not registered (ContainerInstanceArn is null)`},
		{"wrong cluster", registered("default"),
			`the ECS agent did not register to cluster "prod" within 10m0s: the agent is registered to cluster "default", not "prod": was ECS_CLUSTER picked up?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = &TimeoutError{Cluster: "prod", Timeout: 10 * time.Minute, Last: tt.last}
			if err.Error() != tt.want {
				t.Errorf("Error() = %q\nwant       %q", err.Error(), tt.want)
			}
			if !errors.Is(err, ErrTimeout) {
				t.Error("errors.Is(err, ErrTimeout) = false, want true")
			}
		})
	}
}

// fakeGetter answers with get and counts the calls.
type fakeGetter struct {
	calls int
	get   func(ctx context.Context, call int) Status
}

func (f *fakeGetter) Get(ctx context.Context) Status {
	f.calls++
	return f.get(ctx, f.calls)
}

// sequence answers with statuses in turn, then with the last one for ever.
func sequence(statuses ...Status) *fakeGetter {
	return &fakeGetter{get: func(_ context.Context, call int) Status {
		return statuses[min(call, len(statuses))-1]
	}}
}

// recorder collects what onChange is called with.
type recorder struct{ seen []string }

func (r *recorder) onChange(s Status) { r.seen = append(r.seen, s.String()) }

func TestWaitRegistersAfterPolls(t *testing.T) {
	notRegistered := Status{HTTPStatus: 200, Metadata: &Metadata{Cluster: "prod"}}
	g := sequence(refused(), refused(), refused(),
		Status{HTTPStatus: 503, Err: errors.New("503")}, Status{HTTPStatus: 503, Err: errors.New("503 again")},
		notRegistered, notRegistered, registered("prod"))
	var rec recorder
	st, err := Wait(context.Background(), g, "prod", 5*time.Second, time.Millisecond, rec.onChange)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !st.RegisteredTo("prod") {
		t.Errorf("Wait returned %q, want registered to prod", st)
	}
	if g.calls != 8 {
		t.Errorf("Get called %d times, want 8: Wait must stop at the first registered status", g.calls)
	}
	want := []string{"connection refused", "HTTP 503", "answering but not registered (ContainerInstanceArn is null)",
		"registered to prod as " + testARN}
	if !reflect.DeepEqual(rec.seen, want) {
		t.Errorf("onChange saw\n%q\nwant once per change\n%q", rec.seen, want)
	}
}

func TestWaitRegisteredAtOnce(t *testing.T) {
	g := sequence(registered("arn:aws:ecs:eu-west-1:123456789012:cluster/prod"))
	st, err := Wait(context.Background(), g, "prod", time.Second, 0, nil)
	if err != nil || !st.Registered() || g.calls != 1 {
		t.Errorf("Wait = %q, %v after %d calls, want registered after 1", st, err, g.calls)
	}
}

func TestWaitWrongClusterTimesOut(t *testing.T) {
	g := sequence(refused(), registered("default"))
	var rec recorder
	start := time.Now()
	st, err := Wait(context.Background(), g, "prod", 100*time.Millisecond, 5*time.Millisecond, rec.onChange)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Wait took %v with a 100ms timeout", took)
	}
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Wait error = %v (%T), want a *TimeoutError", err, err)
	}
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait error %v: want ErrTimeout only", err)
	}
	for _, s := range []string{`"prod"`, `"default"`, "ECS_CLUSTER", "100ms"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Wait error %q does not contain %s", err, s)
		}
	}
	if te.Cluster != "prod" || te.Timeout != 100*time.Millisecond || te.Last.WrongCluster("prod") != "default" {
		t.Errorf("TimeoutError = %+v, want cluster prod, 100ms, last registered to default", te)
	}
	if st.WrongCluster("prod") != "default" {
		t.Errorf("Wait returned %q, want the last status, registered to default", st)
	}
	want := []string{"connection refused", "registered to default as " + testARN}
	if !reflect.DeepEqual(rec.seen, want) {
		t.Errorf("onChange saw %q, want %q", rec.seen, want)
	}
	if g.calls < 3 {
		t.Errorf("Get called %d times in 100ms every 5ms, want it to keep polling", g.calls)
	}
}

func TestWaitTimeout(t *testing.T) {
	g := sequence(refused())
	var rec recorder
	start := time.Now()
	st, err := Wait(context.Background(), g, "prod", 100*time.Millisecond, 10*time.Millisecond, rec.onChange)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Wait took %v with a 100ms timeout", took)
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait error = %v, want ErrTimeout", err)
	}
	if !strings.HasSuffix(err.Error(), "within 100ms: last: connection refused") {
		t.Errorf("Wait error = %q, want it to end with the timeout and the last status", err)
	}
	if st.String() != "connection refused" {
		t.Errorf("Wait returned %q, want the last status", st)
	}
	if len(rec.seen) != 1 {
		t.Errorf("onChange called %d times (%q), want once: the status never changed", len(rec.seen), rec.seen)
	}
}

func TestWaitBoundsHangingRequests(t *testing.T) {
	// The first request is refused; the next ones hang until their context ends.
	g := &fakeGetter{get: func(ctx context.Context, call int) Status {
		if call == 1 {
			return refused()
		}
		<-ctx.Done()
		return Status{Err: fmt.Errorf("get: %w", ctx.Err())}
	}}
	var rec recorder
	start := time.Now()
	st, err := Wait(context.Background(), g, "prod", 100*time.Millisecond, 10*time.Millisecond, rec.onChange)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Wait took %v with a 100ms timeout and a hanging request", took)
	}
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Wait error = %v, want a *TimeoutError", err)
	}
	// The request cut short by the end of the wait says nothing about the agent.
	if st.String() != "connection refused" || te.Last.String() != "connection refused" {
		t.Errorf("last status = %q, want %q, the last one not cut short by the wait", st, "connection refused")
	}
	if !reflect.DeepEqual(rec.seen, []string{"connection refused"}) {
		t.Errorf("onChange saw %q, want only connection refused", rec.seen)
	}
}

func TestWaitFirstRequestHangs(t *testing.T) {
	g := &fakeGetter{get: func(ctx context.Context, call int) Status {
		<-ctx.Done()
		return Status{Err: fmt.Errorf("get: %w", ctx.Err())}
	}}
	_, err := Wait(context.Background(), g, "prod", 50*time.Millisecond, 0, nil)
	if !errors.Is(err, ErrTimeout) || !strings.HasSuffix(err.Error(), "last: no answer in time") {
		t.Errorf("Wait error = %v, want a timeout whose last status is no answer in time", err)
	}
}

func TestWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &fakeGetter{get: func(_ context.Context, call int) Status {
		if call == 3 {
			cancel()
		}
		return refused()
	}}
	start := time.Now()
	st, err := Wait(ctx, g, "prod", time.Minute, time.Millisecond, nil)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Wait took %v after its context was cancelled", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Wait error = %v, want context.Canceled", err)
	}
	var te *TimeoutError
	if errors.Is(err, ErrTimeout) || errors.As(err, &te) {
		t.Errorf("Wait error = %v, want it not to be a timeout", err)
	}
	if st.String() != "connection refused" || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Wait = %q, %v, want the last status, also in the error", st, err)
	}
	if g.calls != 3 {
		t.Errorf("Get called %d times, want 3: none after the cancel", g.calls)
	}
}

func TestWaitCancelledWithCause(t *testing.T) {
	sigterm := errors.New("terminated signal received")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { cancel(sigterm) })
	_, err := Wait(ctx, sequence(refused()), "prod", time.Minute, 5*time.Millisecond, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, sigterm) || errors.Is(err, ErrTimeout) {
		t.Errorf("Wait error = %v, want context.Canceled and its cause, not ErrTimeout", err)
	}
}

func TestWaitParentDeadlineIsNotATimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := Wait(ctx, sequence(refused()), "prod", time.Minute, 5*time.Millisecond, nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Errorf("Wait error = %v, want ctx's context.DeadlineExceeded, not ErrTimeout", err)
	}
}

func TestWaitRejectsNonPositiveTimeout(t *testing.T) {
	g := sequence(registered("prod"))
	for _, timeout := range []time.Duration{0, -time.Second} {
		if _, err := Wait(context.Background(), g, "prod", timeout, 0, nil); err == nil || errors.Is(err, ErrTimeout) {
			t.Errorf("Wait with timeout %v: error = %v, want an invalid-timeout error", timeout, err)
		}
	}
	if g.calls != 0 {
		t.Errorf("Get called %d times, want none", g.calls)
	}
}

func TestWaitNoticesAgentStartingToAnswer(t *testing.T) {
	addr, endpoint := closedPortURL(t)
	var (
		switched atomic.Int64 // UnixNano when the server started listening
		rec      = make(chan string, 100)
		done     = make(chan struct{})
		st       Status
		err      error
	)
	go func() {
		defer close(done)
		st, err = Wait(context.Background(), NewClient(endpoint), "prod", 30*time.Second, DefaultInterval,
			func(s Status) { rec <- s.String() })
	}()

	time.Sleep(300 * time.Millisecond) // the agent is not up yet: connections are refused
	l, lerr := net.Listen("tcp", addr)
	if lerr != nil {
		t.Fatalf("listen again on %s: %v", addr, lerr)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"Cluster":"prod","ContainerInstanceArn":"`+testARN+`","Version":"v1"}`)
	}))
	srv.Listener.Close()
	srv.Listener = l
	switched.Store(time.Now().UnixNano())
	srv.Start()
	defer srv.Close()

	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return within 10s of the agent answering")
	}
	noticed := time.Since(time.Unix(0, switched.Load()))
	if err != nil || !st.RegisteredTo("prod") {
		t.Fatalf("Wait = %q, %v, want registered to prod", st, err)
	}
	if noticed > time.Second {
		t.Errorf("Wait noticed the registration %v after the agent answered, want well under 1s", noticed)
	}
	close(rec)
	var seen []string
	for s := range rec {
		seen = append(seen, s)
	}
	want := []string{"connection refused", "registered to prod as " + testARN}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("onChange saw %q, want %q", seen, want)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ecs-agent.log")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTail(t *testing.T) {
	tests := []struct {
		name    string
		content string
		n       int
		want    []string
	}{
		{"shorter than n", "a\nb\n", 5, []string{"a", "b"}},
		{"exactly n", "a\nb\nc\n", 3, []string{"a", "b", "c"}},
		{"longer than n", "a\nb\nc\nd\n", 2, []string{"c", "d"}},
		{"no trailing newline", "a\nb\nc", 2, []string{"b", "c"}},
		{"CRLF", "a\r\nb\r\nc\r\n", 2, []string{"b", "c"}},
		{"CRLF without trailing newline", "a\r\nb\r\nc", 5, []string{"a", "b", "c"}},
		{"empty lines kept", "a\n\nb\n", 5, []string{"a", "", "b"}},
		{"empty file", "", 5, nil},
		{"n zero", "a\n", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Tail(writeFile(t, tt.content), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Tail(%q, %d) = %q, want %q", tt.content, tt.n, got, tt.want)
			}
		})
	}
}

func TestTailMissingFile(t *testing.T) {
	got, err := Tail(filepath.Join(t.TempDir(), "no-such.log"), 10)
	if got != nil || err != nil {
		t.Errorf("Tail of a missing file = %q, %v, want nil, nil", got, err)
	}
}

func TestTailOtherErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	_, err := Tail(dir, 10)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Tail of a directory: error = %v, want one naming %s", err, dir)
	}
}

func TestTailLongerThanWindow(t *testing.T) {
	var b strings.Builder
	const lines = 20000 // "line 00000\n" is 11 bytes: 220 KB
	for i := range lines {
		fmt.Fprintf(&b, "line %05d\n", i)
	}
	path := writeFile(t, b.String())

	got, err := Tail(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"line 19997", "line 19998", "line 19999"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tail(3) = %q, want %q", got, want)
	}

	all, err := Tail(path, lines)
	if err != nil {
		t.Fatal(err)
	}
	if maxLines := tailWindow / 11; len(all) > maxLines || len(all) < maxLines-1 {
		t.Errorf("Tail(all) gave %d lines, want the %d whole lines of the last 64 KiB", len(all), maxLines)
	}
	for i, l := range all {
		if want := fmt.Sprintf("line %05d", lines-len(all)+i); l != want {
			t.Fatalf("line %d = %q, want %q: no line cut by the window", i, l, want)
		}
	}
}

func TestTailOneLineLongerThanWindow(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	got, err := Tail(writeFile(t, long+"\n"), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != long[len(long)-tailWindow+1:] {
		t.Errorf("Tail of one 100 KiB line gave %d lines, want its last 64 KiB as one line", len(got))
	}
}
