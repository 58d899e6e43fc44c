package imds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

const (
	docPath     = "/latest/dynamic/instance-identity/document"
	listingPath = "/latest/meta-data/tags/instance"
	tagPath     = listingPath + "/"
)

// seen is one request a fakeIMDS received.
type seen struct {
	Method, Path, Token string // Token: the X-aws-ec2-metadata-token header
}

func (s seen) String() string { return fmt.Sprintf("%s %s [%s]", s.Method, s.Path, s.Token) }

// fakeIMDS is a loopback IMDSv2: PUT /latest/api/token hands out token-1, token-2, …
// (with the TTL header the SDK requires); a GET with a token it gave gets the path's
// content from paths, 404 when absent; a GET without a valid token gets 401. Before
// that, override may answer a request itself (the n-th, from 1) and return true.
type fakeIMDS struct {
	srv      *httptest.Server
	paths    map[string]string
	override func(w http.ResponseWriter, r *http.Request, n int) bool

	mu     sync.Mutex
	log    []seen
	tokens int
}

// document is an instance identity document.
func document(region, id string) string {
	return fmt.Sprintf(`{"accountId":"123456789012","region":%q,"instanceId":%q,"instanceType":"m7g.large"}`, region, id)
}

// taggedPaths are the paths of an instance in eu-west-1 with tags (nil: not exposed).
func taggedPaths(tags map[string]string) map[string]string {
	p := map[string]string{docPath: document("eu-west-1", "i-0abc")}
	if tags != nil {
		var keys []string
		for k, v := range tags {
			keys = append(keys, k)
			p[tagPath+k] = v
		}
		p[listingPath] = strings.Join(keys, "\n")
	}
	return p
}

func newFakeIMDS(t *testing.T, paths map[string]string, override func(w http.ResponseWriter, r *http.Request, n int) bool) *fakeIMDS {
	t.Helper()
	f := &fakeIMDS{paths: paths, override: override}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIMDS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.log = append(f.log, seen{r.Method, r.URL.Path, r.Header.Get("X-aws-ec2-metadata-token")})
	n := len(f.log)
	f.mu.Unlock()
	if f.override != nil && f.override(w, r, n) {
		return
	}
	switch {
	case r.URL.Path == "/latest/api/token" && r.Method == http.MethodPut:
		ttl := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
		if _, err := strconv.Atoi(ttl); err != nil {
			http.Error(w, "missing TTL", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.tokens++
		tok := fmt.Sprintf("token-%d", f.tokens)
		f.mu.Unlock()
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", ttl)
		fmt.Fprint(w, tok)
	case r.Method != http.MethodGet:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case !f.validToken(r.Header.Get("X-aws-ec2-metadata-token")):
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	default:
		body, ok := f.paths[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}
}

func (f *fakeIMDS) validToken(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := strconv.Atoi(strings.TrimPrefix(tok, "token-"))
	return strings.HasPrefix(tok, "token-") && err == nil && n >= 1 && n <= f.tokens
}

// requests returns what the server received, in order.
func (f *fakeIMDS) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.log...)
}

// client returns a Client of the server with quick retries.
func (f *fakeIMDS) client() *Client {
	return NewClient(Options{Endpoint: f.srv.URL, MaxBackoff: 10 * time.Millisecond})
}

// put and get are the requests expected from a Client.
func put() seen                   { return seen{"PUT", "/latest/api/token", ""} }
func get(path, token string) seen { return seen{"GET", path, token} }

// tagGets are the GETs of the four tags firstrun reads, in Discover's order.
func tagGets(token string) []seen {
	return []seen{get(tagPath+TagStackName, token), get(tagPath+TagLogicalID, token),
		get(tagPath+TagAutoscalingGroup, token), get(tagPath+DefaultClusterTag, token)}
}

func TestClientDiscover(t *testing.T) {
	f := newFakeIMDS(t, taggedPaths(allTags), nil)
	c := f.client()
	got, err := Discover(context.Background(), c, "")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Region: "eu-west-1", InstanceID: "i-0abc", StackName: "stack", LogicalID: "Instances",
		AutoscalingGroup: "asg", Cluster: "prod", TagsExposed: true, Requests: 7}
	if got != want {
		t.Errorf("Discover =\n%+v\nwant\n%+v", got, want)
	}
	wantLog := append([]seen{put(), get(docPath, "token-1"), get(listingPath, "token-1")}, tagGets("token-1")...)
	if log := f.requests(); !reflect.DeepEqual(log, wantLog) {
		t.Errorf("requests =\n%v\nwant one PUT, then every GET with its token:\n%v", log, wantLog)
	}

	// The token is the Client's: a second discovery with it makes no PUT.
	again, err := Discover(context.Background(), c, "")
	if err != nil {
		t.Fatal(err)
	}
	if again.Requests != 6 || c.Requests() != 13 {
		t.Errorf("second discovery: Requests = %d, Client.Requests() = %d; want 6 and 13", again.Requests, c.Requests())
	}
	for _, r := range f.requests()[7:] {
		if r.Method != "GET" || r.Token != "token-1" {
			t.Errorf("second discovery made %v, want only GETs with token-1", r)
		}
	}
}

func TestClientTokenRequest(t *testing.T) {
	var ttl, method string
	f := newFakeIMDS(t, taggedPaths(nil), func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			ttl, method = r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"), r.Method
		}
		return false
	})
	if _, _, err := f.client().GetIdentity(context.Background()); err != nil {
		t.Fatal(err)
	}
	if method != http.MethodPut || ttl != "300" {
		t.Errorf("first request: %s with TTL %q, want PUT with the SDK's 300 s", method, ttl)
	}
}

func TestClientTagsNotExposed(t *testing.T) {
	f := newFakeIMDS(t, taggedPaths(nil), nil)
	got, err := Discover(context.Background(), f.client(), "")
	if err != nil {
		t.Fatalf("tags not exposed is normal, got %v", err)
	}
	want := Info{Region: "eu-west-1", InstanceID: "i-0abc", Requests: 3}
	if got != want {
		t.Errorf("Discover = %+v, want %+v", got, want)
	}
}

// status answers the requests for path with the given statuses, in turn, then lets
// the server answer normally.
func status(path string, codes ...int) func(w http.ResponseWriter, r *http.Request, n int) bool {
	var i atomic.Int32
	return func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path != path {
			return false
		}
		k := int(i.Add(1)) - 1
		if k >= len(codes) {
			return false
		}
		http.Error(w, http.StatusText(codes[k]), codes[k])
		return true
	}
}

func TestClientStatuses(t *testing.T) {
	doc := get(docPath, "token-1")
	tests := []struct {
		name     string
		override func(w http.ResponseWriter, r *http.Request, n int) bool
		wantLog  []seen
		wantErr  string // "" for success
	}{
		{"500 then success: retried with the same token", status(docPath, 500),
			[]seen{put(), doc, doc}, ""},
		{"503 twice then success", status(docPath, 503, 503),
			[]seen{put(), doc, doc, doc}, ""},
		{"500 on every attempt: 3 attempts", status(docPath, 500, 500, 500),
			[]seen{put(), doc, doc, doc}, "500"},
		{"401: a new token and a retry", status(docPath, 401),
			[]seen{put(), doc, put(), get(docPath, "token-2")}, ""},
		{"401 on every attempt", status(docPath, 401, 401, 401),
			[]seen{put(), doc, put(), get(docPath, "token-2"), put(), get(docPath, "token-3")}, "401"},
		{"token PUT 500 then success", status("/latest/api/token", 500),
			[]seen{put(), put(), get(docPath, "token-1")}, ""},
		{"token PUT 500 on every attempt: no GET", status("/latest/api/token", 500, 500, 500),
			[]seen{put(), put(), put()}, "500"},
		{"400: not retried", status(docPath, 400),
			[]seen{put(), doc}, "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIMDS(t, taggedPaths(nil), tt.override)
			c := f.client()
			region, id, err := c.GetIdentity(context.Background())
			if log := f.requests(); !reflect.DeepEqual(log, tt.wantLog) {
				t.Errorf("requests =\n%v\nwant\n%v", log, tt.wantLog)
			}
			if c.Requests() != len(tt.wantLog) {
				t.Errorf("Requests() = %d, want %d", c.Requests(), len(tt.wantLog))
			}
			if tt.wantErr == "" {
				if err != nil || region != "eu-west-1" || id != "i-0abc" {
					t.Errorf("GetIdentity = %q, %q, %v; want eu-west-1, i-0abc", region, id, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "reading the instance identity document") {
				t.Errorf("error = %v, want one about the identity document naming HTTP %s", err, tt.wantErr)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("error = %v wraps ErrNotFound", err)
			}
		})
	}
}

func TestClientBackoffIsOptions(t *testing.T) {
	// The SDK's IMDS client would otherwise wait 1 s before every retry, whatever the
	// retryer: with MaxBackoff 10ms, two retries come well within half a second.
	fail := status(docPath, 500, 500)
	var mu sync.Mutex
	var at []time.Time
	f := newFakeIMDS(t, taggedPaths(nil), func(w http.ResponseWriter, r *http.Request, n int) bool {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return fail(w, r, n)
	})
	if _, _, err := f.client().GetIdentity(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(at) != 4 {
		t.Fatalf("%d requests, want a PUT and 3 GETs", len(at))
	}
	if d := at[3].Sub(at[1]); d > 500*time.Millisecond {
		t.Errorf("two retries took %v with MaxBackoff 10ms, want well under 500ms", d)
	}
}

func TestClientNeverFallsBackToV1(t *testing.T) {
	for _, code := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			// An IMDSv1-only endpoint: the PUT fails, a GET without a token would answer.
			f := newFakeIMDS(t, taggedPaths(allTags), func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.Method == http.MethodPut {
					http.Error(w, http.StatusText(code), code)
				} else {
					fmt.Fprint(w, document("eu-west-1", "i-0abc"))
				}
				return true
			})
			got, err := Discover(context.Background(), f.client(), "")
			for _, r := range f.requests() {
				if r.Method == http.MethodGet && r.Token == "" {
					t.Errorf("%v: a GET without a token, IMDSv1", r)
				}
			}
			if log := f.requests(); !reflect.DeepEqual(log, []seen{put()}) {
				t.Errorf("requests = %v, want the one PUT, not retried", log)
			}
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
				t.Errorf("error = %v, want ErrUnavailable and not ErrNotFound", err)
			}
			if err != nil && (!strings.Contains(err.Error(), "never falls back to IMDSv1") || !strings.Contains(err.Error(), strconv.Itoa(code))) {
				t.Errorf("error = %q, want it to name HTTP %d and say there is no IMDSv1 fallback", err, code)
			}
			if got != (Info{Requests: 1}) {
				t.Errorf("Discover = %+v, want nothing learned", got)
			}
		})
	}
}

func TestClientHangs(t *testing.T) {
	for _, path := range []string{"/latest/api/token", docPath, listingPath} {
		t.Run(path, func(t *testing.T) {
			release := make(chan struct{})
			f := newFakeIMDS(t, taggedPaths(allTags), func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.URL.Path != path {
					return false
				}
				select { // hang until the client gives up
				case <-r.Context().Done():
				case <-release:
				}
				return true
			})
			t.Cleanup(func() { close(release) }) // before the server closes
			c := NewClient(Options{Endpoint: f.srv.URL, Timeout: 300 * time.Millisecond})
			start := time.Now()
			_, err := Discover(context.Background(), c, "")
			elapsed := time.Since(start)
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("error = %v, want ErrUnavailable", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error = %v, want it to wrap context.DeadlineExceeded", err)
			}
			if elapsed > 5*time.Second {
				t.Errorf("Discover took %v with a 300ms timeout", elapsed)
			}
		})
	}
}

func TestClientGetTag(t *testing.T) {
	f := newFakeIMDS(t, map[string]string{
		tagPath + "ecs:cluster-name": "prod",
		tagPath + "spaced":           " value with spaces \n",
		tagPath + "big":              strings.Repeat("x", maxBody+1),
	}, nil)
	c := f.client()
	tests := []struct {
		key      string
		want     string
		wantErr  string
		notFound bool
	}{
		{"ecs:cluster-name", "prod", "", false},
		{"spaced", " value with spaces \n", "", false},
		{"absent", "", "reading tag absent", true},
		{"big", "", "answer larger than", false},
		{"a/b", "", "cannot be read", false},
		{"..", "", "cannot be read", false},
		{"", "", "cannot be read", false},
		{"with space", "", "cannot be read", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			before := len(f.requests())
			got, err := c.GetTag(context.Background(), tt.key)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("GetTag(%q) = %q, %v; want %q, error %q", tt.key, got, err, tt.want, tt.wantErr)
			}
			if errors.Is(err, ErrNotFound) != tt.notFound {
				t.Errorf("GetTag(%q) error %v: wraps ErrNotFound %v, want %v", tt.key, err, errors.Is(err, ErrNotFound), tt.notFound)
			}
			if tt.wantErr == "cannot be read" && len(f.requests()) != before {
				t.Errorf("GetTag(%q) made a request", tt.key)
			}
		})
	}
}

func TestClientGetTagKeys(t *testing.T) {
	tests := []struct {
		name    string
		listing string
		want    []string
	}{
		{"one a line", "a\nb:c\nd", []string{"a", "b:c", "d"}},
		{"trailing newline", "a\nb\n", []string{"a", "b"}},
		{"CRLF and blank lines", "a\r\n\r\nb\r\n", []string{"a", "b"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIMDS(t, map[string]string{listingPath: tt.listing}, nil)
			got, err := f.client().GetTagKeys(context.Background())
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GetTagKeys = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestClientEndpointFromEnvironment(t *testing.T) {
	f := newFakeIMDS(t, taggedPaths(nil), nil)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f.srv.URL)
	region, id, err := NewClient(Options{}).GetIdentity(context.Background())
	if err != nil || region != "eu-west-1" || id != "i-0abc" {
		t.Errorf("GetIdentity = %q, %q, %v; want the server at AWS_EC2_METADATA_SERVICE_ENDPOINT to answer", region, id, err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("the server saw %d requests, want 2", n)
	}
}

func TestClientOptionsDefaults(t *testing.T) {
	c := NewClient(Options{})
	if c.Timeout() != DefaultTimeout || c.Requests() != 0 {
		t.Errorf("Timeout() = %v, Requests() = %d; want %v and 0", c.Timeout(), c.Requests(), DefaultTimeout)
	}
	if c := NewClient(Options{Timeout: time.Second}); c.Timeout() != time.Second {
		t.Errorf("Timeout() = %v, want 1s", c.Timeout())
	}
}

// transport returns the Client's *http.Transport, under the counting one.
func transport(t *testing.T, c *Client) *http.Transport {
	t.Helper()
	ct, ok := c.http.Transport.(*countingTransport)
	if !ok {
		t.Fatalf("Transport is %T, want *countingTransport", c.http.Transport)
	}
	tr, ok := ct.next.(*http.Transport)
	if !ok {
		t.Fatalf("the counted Transport is %T, want *http.Transport", ct.next)
	}
	return tr
}

func TestClientTransportHasNoProxy(t *testing.T) {
	if transport(t, NewClient(Options{})).Proxy != nil {
		t.Error("Transport.Proxy is set, want nil: IMDS must never be reached through a proxy")
	}
}

func TestClientIgnoresProxyEnvironment(t *testing.T) {
	// Go reads the proxy environment once per process: the check runs in a fresh one.
	if !testenv.InFreshProcess(t) {
		return
	}

	const endpoint = "http://imds.firstrun.invalid"
	hits := testenv.ProxyTrap(t, endpoint+"/latest/meta-data/")

	c := NewClient(Options{Endpoint: endpoint, Timeout: 5 * time.Second, MaxBackoff: 10 * time.Millisecond})
	_, err := Discover(context.Background(), c, "")
	if n := hits(); n != 0 {
		t.Errorf("proxy saw %d requests from the Client, want none", n)
	}
	if !errors.Is(err, ErrUnavailable) || c.Requests() == 0 {
		t.Errorf("Discover: %v after %d requests, want ErrUnavailable from an unresolvable host", err, c.Requests())
	}
}
