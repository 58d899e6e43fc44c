package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Defaults of Options.
const (
	// DefaultMaxAttempts is how many times one request is tried, the first included.
	DefaultMaxAttempts = 3
	// DefaultMaxBackoff caps the wait between two attempts.
	DefaultMaxBackoff = 250 * time.Millisecond
)

// The HTTP transport's bounds for one attempt. IMDS is a link-local service that
// answers in milliseconds; an attempt that waits longer is better given up and retried
// (a PUT response dropped for want of hops, say), within Discover's deadline.
const (
	dialTimeout           = time.Second
	responseHeaderTimeout = time.Second
)

// maxBody is the most of an answer's body the Client reads; tag values are at most
// 256 characters, the listing is one line per tag (at most 50).
const maxBody = 64 << 10

// tokenPath is where IMDSv2 hands out session tokens.
const tokenPath = "/latest/api/token"

// Options configure a Client. The zero value is the production configuration.
type Options struct {
	// Endpoint is IMDS's base URL, such as "http://127.0.0.1:1338". "" is the SDK's
	// default: AWS_EC2_METADATA_SERVICE_ENDPOINT when set, else http://169.254.169.254.
	Endpoint string
	// Timeout is the overall deadline of a Discover with this Client (DefaultTimeout
	// when <= 0).
	Timeout time.Duration
	// MaxAttempts is how many times each request is tried (DefaultMaxAttempts when
	// <= 0); the token PUT has its own attempts.
	MaxAttempts int
	// MaxBackoff caps the wait between attempts (DefaultMaxBackoff when <= 0). The
	// SDK's standard backoff waits up to 2^attempt seconds, jittered, capped at
	// MaxBackoff: below 1 s, every wait is MaxBackoff.
	MaxBackoff time.Duration
}

// Client is the real API: the AWS SDK's IMDS client, IMDSv2 only.
//
// It fetches one session token (PUT /latest/api/token) on its first request and sends
// it with every later one until it expires (the SDK asks for 5 minutes): the SDK's
// token provider caches it in the Client, so a run should make one Client and keep it. A 401 answer makes the SDK drop
// the token, fetch a new one and retry. When no token can be had (an IMDSv1-only
// endpoint answers the PUT 403, 404 or 405), requests fail: there is never a fallback
// to unauthenticated IMDSv1 GETs. It never uses a proxy, whatever HTTP_PROXY says, and
// counts every HTTP request it makes.
type Client struct {
	sdk      *sdkimds.Client
	http     *http.Client
	requests *countingTransport
	timeout  time.Duration
}

// SDK returns the AWS SDK client underneath, for the SDK's instance-role credentials
// provider: sharing it, the credentials reuse this client's session token, so that a
// run asks IMDS for one token in all.
func (c *Client) SDK() *sdkimds.Client { return c.sdk }

// NewClient returns a Client configured by opts.
func NewClient(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	counting := &countingTransport{next: &http.Transport{
		Proxy:                 nil, // IMDS is link-local: never a proxy, whatever the environment says
		DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
		ResponseHeaderTimeout: responseHeaderTimeout,
		MaxIdleConns:          2,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       10 * time.Second,
	}}
	hc := &http.Client{Transport: counting}
	sdk := sdkimds.New(sdkimds.Options{
		Endpoint:       opts.Endpoint,
		HTTPClient:     hc,
		EnableFallback: aws.FalseTernary, // IMDSv2 only, never v1
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = opts.MaxAttempts
			o.MaxBackoff = opts.MaxBackoff
			o.RateLimiter = ratelimit.None // a few requests per run: no retry quota
		}),
		// Else New replaces the retryer's backoff with one whose every wait is 1 s.
		DisableDefaultMaxBackoff: true,
	})
	return &Client{sdk: sdk, http: hc, requests: counting, timeout: opts.Timeout}
}

// Timeout returns the overall deadline of a Discover with this Client.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Requests returns the HTTP requests the Client has made so far, token PUTs and
// retries included, whether or not they got an answer.
func (c *Client) Requests() int { return int(c.requests.n.Load()) }

// GetIdentity reads the instance identity document for the region and the instance id.
func (c *Client) GetIdentity(ctx context.Context) (region, instanceID string, err error) {
	ctx, tr := withTrace(ctx)
	out, err := c.sdk.GetInstanceIdentityDocument(ctx, nil)
	if err != nil {
		return "", "", describe("reading the instance identity document", err, tr)
	}
	return out.Region, out.InstanceID, nil
}

// GetTagKeys lists the instance's tag keys, one a line in the answer; ErrNotFound when
// the instance does not expose its tags.
func (c *Client) GetTagKeys(ctx context.Context) ([]string, error) {
	body, err := c.get(ctx, "tags/instance", "listing the instance's tags")
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, line := range strings.Split(body, "\n") {
		if k := strings.TrimSpace(line); k != "" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// GetTag returns the value of the instance's tag key, as is; ErrNotFound when there is
// no such tag. A key that cannot be a metadata path segment is an error, not a request.
func (c *Client) GetTag(ctx context.Context, key string) (string, error) {
	if key == "" || key == "." || key == ".." || strings.ContainsAny(key, "/ \t\r\n?#%") {
		return "", fmt.Errorf("tag %q cannot be read from the instance metadata", key)
	}
	return c.get(ctx, "tags/instance/"+key, fmt.Sprintf("reading tag %s", key))
}

// get reads the metadata path under /latest/meta-data/.
func (c *Client) get(ctx context.Context, path, what string) (string, error) {
	ctx, tr := withTrace(ctx)
	out, err := c.sdk.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: path})
	if err != nil {
		return "", describe(what, err, tr)
	}
	defer out.Content.Close()
	body, err := io.ReadAll(io.LimitReader(out.Content, maxBody+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: reading the answer: %w", what, err)
	case len(body) > maxBody:
		return "", fmt.Errorf("%s: answer larger than %d bytes", what, maxBody)
	}
	return string(body), nil
}

// describe wraps an SDK error with what was being done. When the call's last request
// was a token PUT that failed, the error says so (and a 404 to it is not ErrNotFound):
// the SDK's own error for it does not unwrap to the HTTP answer. A 404 answer to the
// GET itself wraps ErrNotFound.
func describe(what string, err error, tr *trace) error {
	last := tr.get()
	if last.tokenPUT && last.status != 0 && last.status != http.StatusOK {
		switch last.status {
		case http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			return fmt.Errorf("%s: the IMDSv2 session token was refused (HTTP %d; firstrun never falls back to IMDSv1): %w",
				what, last.status, err)
		}
		return fmt.Errorf("%s: getting an IMDSv2 session token: HTTP %d: %w", what, last.status, err)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("%s: %w (HTTP 404)", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// trace records the last HTTP request of one Client call, for describe. It travels in
// the call's context down to the transport, so concurrent calls keep theirs apart.
type trace struct {
	mu   sync.Mutex
	last traced
}

// traced is one request: whether it was a token PUT and its answer's status (0: none).
type traced struct {
	tokenPUT bool
	status   int
}

type traceKey struct{}

// withTrace returns ctx with a new trace, and the trace.
func withTrace(ctx context.Context) (context.Context, *trace) {
	tr := &trace{}
	return context.WithValue(ctx, traceKey{}, tr), tr
}

func (tr *trace) set(t traced) {
	tr.mu.Lock()
	tr.last = t
	tr.mu.Unlock()
}

func (tr *trace) get() traced {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.last
}

// countingTransport counts the requests that go through it, and records each in its
// context's trace, if any.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

// RoundTrip counts the request and passes it on.
func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	resp, err := t.next.RoundTrip(req)
	if tr, ok := req.Context().Value(traceKey{}).(*trace); ok {
		rec := traced{tokenPUT: req.Method == http.MethodPut && req.URL.Path == tokenPath}
		if err == nil {
			rec.status = resp.StatusCode
		}
		tr.set(rec)
	}
	return resp, err
}
