package cfnsignal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/firstrun/firstrun/internal/backoff"
)

// Defaults for the zero values of Options.
const (
	// DefaultBaseBackoff is the base of the full-jitter backoff: the wait after
	// attempt n is random in [0, min(MaxBackoff, DefaultBaseBackoff·2^n)).
	DefaultBaseBackoff = time.Second
	// DefaultMaxBackoff caps the wait between two attempts, as the SDK's standard
	// retryer caps it.
	DefaultMaxBackoff = 20 * time.Second
	// DefaultTimeout bounds a whole Send, waits included: the signal's time budget.
	// make storm (test/storm) measured it: 1000 instances signalling at once to one
	// account throttled at 10 requests/s (burst 20), each retrying with this
	// backoff, were all delivered in 1m46s to 1m49s over four runs, the rate
	// allowing no less than 98 s (README, "Boot storm"); 5 minutes leaves room for
	// twice the group or a busier account. FIRSTRUN_SIGNAL_TIMEOUT sets it.
	DefaultTimeout = 5 * time.Minute
)

// unboundedAttempts stands for "no count": with MaxAttempts 0, a Send retries until
// its Timeout, however many attempts that takes.
const unboundedAttempts = math.MaxInt32

// AttemptTimeout bounds the wait for one answer's headers, so that a request lost
// in a proxy or a hung connection is retried rather than spending all of Timeout.
const AttemptTimeout = 30 * time.Second

// Options configure a Client.
type Options struct {
	// Region is the stack's region, such as us-east-1. Required.
	Region string
	// Proxy, when set, carries every request to CloudFormation (HTTPS through
	// CONNECT); requests to the instance itself (IMDS for the instance role's
	// credentials, loopback) never use it. Nil: direct, whatever HTTP_PROXY says.
	Proxy *url.URL
	// Endpoint replaces CloudFormation's endpoint, such as http://127.0.0.1:8080 in
	// tests. Empty: AWS_ENDPOINT_URL_CLOUDFORMATION, else AWS_ENDPOINT_URL, else the
	// region's (see New).
	Endpoint string
	// MaxAttempts is how many requests a Send makes at most; 0: as many as Timeout
	// allows.
	MaxAttempts int
	// BaseBackoff is the full-jitter backoff's base; 0 means DefaultBaseBackoff.
	BaseBackoff time.Duration
	// MaxBackoff caps the wait between two attempts; 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Timeout bounds a whole Send; 0 means DefaultTimeout.
	Timeout time.Duration
	// IMDS, when set, is the instance metadata client the instance-role credentials
	// are fetched with (the caller's, so that its session token is reused); nil: New
	// makes its own, IMDSv2 only, on the Client's HTTP transport (so never through
	// Proxy).
	IMDS *sdkimds.Client
	// Credentials, when set, sign every request instead of those New would find
	// (CredentialsProvider's, shared with the run's other AWS clients).
	Credentials aws.CredentialsProvider
}

// withDefaults returns o with its zero values replaced by the defaults, or an error
// naming each invalid field.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Region == "" {
		errs = append(errs, errors.New("Region is empty"))
	}
	if o.Proxy != nil && ((o.Proxy.Scheme != "http" && o.Proxy.Scheme != "https") || o.Proxy.Host == "") {
		errs = append(errs, fmt.Errorf("Proxy %q is not an http:// or https:// URL with a host", o.Proxy.Redacted()))
	}
	if o.Endpoint != "" {
		if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("Endpoint %q is not an http:// or https:// URL with a host", o.Endpoint))
		}
	}
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"MaxAttempts", o.MaxAttempts < 0}, {"BaseBackoff", o.BaseBackoff < 0}, {"MaxBackoff", o.MaxBackoff < 0},
		{"Timeout", o.Timeout < 0},
	} {
		if f.neg {
			errs = append(errs, fmt.Errorf("%s is negative", f.name))
		}
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = unboundedAttempts
	}
	if o.BaseBackoff == 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return o, errors.Join(errs...)
}

// Client sends signals to CloudFormation.
type Client struct {
	// signalResource is the SDK client's SignalResource method, the only one used.
	// Holding the method value rather than the *cloudformation.Client keeps the SDK
	// client's type out of the types reachable from an interface (a *Client is a
	// Signaler). While anything in the binary calls reflect's method lookup by name
	// (text/template did, for envconfig's usage text, until inputs.Usage formatted it
	// itself), the linker keeps every exported method of such types, and
	// *cloudformation.Client has 91, its operations, with their serializers,
	// deserializers and validators: 3.7 MB of the release binary then (make build:
	// 14,151,842 bytes with the field, 10,469,538 with the method value).
	signalResource func(context.Context, *cloudformation.SignalResourceInput, ...func(*cloudformation.Options)) (
		*cloudformation.SignalResourceOutput, error)
	retryer aws.Retryer
	timeout time.Duration
	http    *awshttp.BuildableClient // what every request goes through, IMDS's included
}

// New returns a Client; it makes no request. Its requests are signed with SigV4 by
// the SDK's signer, with credentials from the first of:
//
//   - the environment: AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY) and AWS_SECRET_ACCESS_KEY
//     (or AWS_SECRET_KEY), with AWS_SESSION_TOKEN when set, read once here; for tests
//     and unusual setups. They win over the instance role, as in the SDK's default
//     chain. Half a pair is ignored, as the SDK ignores it, and named in the error
//     should the instance role fail too;
//   - the instance role, through IMDS (Options.IMDS, else a client of New's own that
//     honours AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED): at first
//     boot on an ECS container instance, the source.
//
// That is all of the SDK's default chain (config.LoadDefaultConfig) that matters on
// a container instance. The shared files (~/.aws/config, ~/.aws/credentials, profiles),
// SSO and login sessions, web identity tokens, credential processes, ECS task
// (container) credentials and STS role assumption are not read: leaving the config
// package and what it links (the sts, sso, ssooidc and signin clients, its INI parser,
// the other providers) out of the binary makes it 2.9 MB smaller (make build with Go
// 1.26 and config v1.33.15: 13,414,562 bytes with LoadDefaultConfig, 10,469,538
// without).
//
// The endpoint is Options.Endpoint, else AWS_ENDPOINT_URL_CLOUDFORMATION, else
// AWS_ENDPOINT_URL (neither with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else the
// region's. AWS_CA_BUNDLE, when set, names the only certificates trusted. The
// region is Options.Region alone, and the retries are Options' alone:
// AWS_REGION, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE and the SDK's other settings are not
// read.
func New(ctx context.Context, o Options) (*Client, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("CloudFormation signal options: %w", err)
	}
	// The SDK's IMDS client clones this one too, keeping the Proxy function.
	httpClient, err := withCABundle(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = proxyFunc(o.Proxy)
		tr.ResponseHeaderTimeout = AttemptTimeout
	}))
	if err != nil {
		return nil, fmt.Errorf("CloudFormation signal: %w", err)
	}
	base, err := endpoint(o)
	if err != nil {
		return nil, fmt.Errorf("CloudFormation endpoint: %w", err)
	}
	cfg := aws.Config{
		Region:      o.Region,
		HTTPClient:  httpClient,
		Credentials: credentialsProvider(o, httpClient),
	}
	if base != "" {
		cfg.BaseEndpoint = aws.String(base)
	}
	retryer := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.MaxAttempts
		so.MaxBackoff = o.MaxBackoff
		so.Backoff = backoff.FullJitter{Base: o.BaseBackoff, Cap: o.MaxBackoff}
		// The client-side retry quota (500 tokens, 5 a retry) would end a Send's
		// retries after about 100 throttled attempts, whatever time is left: Timeout
		// alone bounds them.
		so.RateLimiter = ratelimit.None
		// CloudFormation throttles with HTTP 400 and code Throttling, which the
		// standard retryer retries; a bare 429 (from a proxy, say) it does not.
		so.Retryables = append(so.Retryables, retry.RetryableHTTPStatusCode{
			Codes: map[int]struct{}{http.StatusTooManyRequests: {}},
		})
	})
	// The signer is the SDK's SigV4 one, which cloudformation.New sets up. cfg's
	// RetryMaxAttempts and RetryMode are zero, config having read no AWS_MAX_ATTEMPTS
	// nor AWS_RETRY_MODE: retryer alone decides.
	api := cloudformation.NewFromConfig(cfg, func(co *cloudformation.Options) {
		co.Retryer = retryer
	})
	return &Client{signalResource: api.SignalResource, retryer: retryer, timeout: o.Timeout, http: httpClient}, nil
}

// Send validates s and sends it, retrying as Options say, within Options.Timeout and
// ctx. A failure's error says which signal was not sent and why, wraps one of
// ErrInvalid, ErrPermanent, ErrRetriesExhausted and ErrTimeout (none when ctx was
// cancelled) and the SDK's error (a smithy.APIError when CloudFormation answered);
// Attempts(err) tells how many requests were made.
func (c *Client) Send(ctx context.Context, s Signal) error {
	if err := s.Validate(); err != nil {
		return &sendError{signal: s, err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	attempts, last := 0, error(nil)
	_, err := c.signalResource(ctx, &cloudformation.SignalResourceInput{
		StackName:         aws.String(s.StackName),
		LogicalResourceId: aws.String(s.LogicalResourceID),
		UniqueId:          aws.String(s.UniqueID),
		Status:            types.ResourceSignalStatus(s.Status),
	}, func(co *cloudformation.Options) {
		co.APIOptions = append(co.APIOptions, countAttempts(&attempts, &last))
	})
	if err != nil {
		kind, hint := classify(ctx, c.retryer, err)
		se := &sendError{signal: s, attempts: attempts, kind: kind, hint: hint, err: err}
		if last != nil && kind == ErrTimeout && !errors.Is(last, context.DeadlineExceeded) {
			se.last = last // the answer before the time ran out, which err no longer says
		}
		return se
	}
	return nil
}

// countAttempts adds to *n once per attempt of the operation's retry loop, whether
// or not the attempt gets as far as sending its request, and keeps in *last the error
// of the last attempt that failed.
func countAttempts(n *int, last *error) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("cfnsignalCountAttempts",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
				middleware.FinalizeOutput, middleware.Metadata, error,
			) {
				*n++
				out, md, err := next.HandleFinalize(ctx, in)
				if err != nil {
					*last = err
				}
				return out, md, err
			}), "Retry", middleware.After)
	}
}
