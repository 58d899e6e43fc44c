package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultEndpoint is the ECS agent's introspection metadata endpoint.
const DefaultEndpoint = "http://127.0.0.1:51678/v1/metadata"

// RequestTimeout bounds one request to the agent, which answers on loopback at once
// when it answers at all.
const RequestTimeout = 2 * time.Second

// maxBody is the most of an answer's body the Client reads; the agent's answer is a
// few hundred bytes.
const maxBody = 1 << 20

// Getter makes one request to the agent. *Client is the real one; tests use fakes.
type Getter interface {
	Get(ctx context.Context) Status
}

// GetterFunc adapts a function to a Getter.
type GetterFunc func(ctx context.Context) Status

// Get calls f.
func (f GetterFunc) Get(ctx context.Context) Status { return f(ctx) }

// Client asks one endpoint. It never uses a proxy: the agent is local, and Go's
// http.ProxyFromEnvironment would otherwise send the request through HTTP_PROXY.
type Client struct {
	endpoint string
	http     *http.Client
	timeout  time.Duration // one request's deadline; RequestTimeout but in tests
}

// NewClient returns a Client for endpoint, usually DefaultEndpoint.
func NewClient(endpoint string) *Client {
	transport := &http.Transport{
		Proxy:               nil, // never a proxy, whatever the environment says
		DialContext:         noSelfConnect((&net.Dialer{Timeout: RequestTimeout}).DialContext),
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     10 * time.Second,
	}
	return &Client{
		endpoint: endpoint,
		http:     &http.Client{Transport: transport},
		timeout:  RequestTimeout,
	}
}

// dialFunc is net.Dialer's DialContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// noSelfConnect wraps dial so that a TCP connection to itself is never kept. The
// agent's port, 51678, lies in Linux's ephemeral range (32768–60999): while nothing
// listens there, a connect to 127.0.0.1:51678 whose source port happens to be 51678
// succeeds, connected to itself (TCP simultaneous open), and once closed it lingers in
// TIME_WAIT for a minute, during which the agent cannot bind its port ("bind: address
// already in use") and exits, and ecs.service restarts it every 10 s until the minute
// is over. Polling every 25 ms walks through the source ports, and the boot benchmark
// caught it (a registration 67 s late in 1 of 35 boots). Such a connection is reset at
// once (SO_LINGER 0: no TIME_WAIT) and reported as what it means: nobody listens.
func noSelfConnect(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil || conn.LocalAddr().String() != conn.RemoteAddr().String() {
			return conn, err
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		_ = conn.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: conn.RemoteAddr(), Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
}

// Endpoint returns the URL the Client asks.
func (c *Client) Endpoint() string { return c.endpoint }

// Get makes one GET request, bounded by RequestTimeout and by ctx, and reads at most
// 1 MiB of the answer.
func (c *Client) Get(ctx context.Context) Status {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint, nil)
	if err != nil {
		return Status{Err: fmt.Errorf("agent metadata request: %w", err)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Status{Err: err} // a *url.Error naming the method and the endpoint
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	st := Status{HTTPStatus: resp.StatusCode}
	switch {
	case resp.StatusCode != http.StatusOK:
		st.Err = fmt.Errorf("GET %s: %s%s", c.endpoint, resp.Status, snippet(body))
	case err != nil:
		st.Err = fmt.Errorf("GET %s: reading the answer: %w", c.endpoint, err)
	case len(body) > maxBody:
		st.Err = fmt.Errorf("GET %s: %w", c.endpoint,
			&bodyError{what: fmt.Sprintf("body larger than %d bytes", maxBody)})
	case len(strings.TrimSpace(string(body))) == 0:
		st.Err = fmt.Errorf("GET %s: %w", c.endpoint, &bodyError{what: "bad JSON: empty body"})
	default:
		var md Metadata
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &md); err != nil {
			st.Err = fmt.Errorf("GET %s: %w", c.endpoint, &bodyError{what: "bad JSON", err: err})
		} else if _ = json.Unmarshal(body, &fields); fields["Cluster"] == nil {
			// The agent's metadata always has "Cluster"; its GET / has AvailableCommands.
			st.Err = fmt.Errorf("GET %s: %w", c.endpoint, &notMetadataError{body: strings.TrimPrefix(snippet(body), ": ")})
		} else {
			st.Metadata = &md
		}
	}
	return st
}

// snippet returns the start of a non-200 answer's body for its error, or "".
func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	if s == "" {
		return ""
	}
	return ": " + s
}
