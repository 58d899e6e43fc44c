package secrets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"
	"github.com/firstrun/firstrun/internal/backoff"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds the resolution of every reference of a run, retries
	// included (FIRSTRUN_SECRETS_TIMEOUT). SSM's GetParameter allows 40 requests a
	// second to an account by default (Parameter Store's standard throughput), so a
	// thousand instances booting together need about 25 s to be let through; a minute
	// leaves room for two references each.
	DefaultTimeout = time.Minute
	// DefaultBaseBackoff is the base of the full-jitter backoff: the wait after
	// attempt n is random in [0, min(DefaultMaxBackoff, DefaultBaseBackoff·2^n)).
	DefaultBaseBackoff = 500 * time.Millisecond
	// DefaultMaxBackoff caps the wait between two attempts.
	DefaultMaxBackoff = 10 * time.Second
	// AttemptTimeout bounds the wait for one answer's headers, so that a hung
	// connection is retried rather than spending the whole budget.
	AttemptTimeout = 10 * time.Second
	// dialTimeout bounds a connection's setup.
	dialTimeout = 5 * time.Second
)

// Endpoint variables, as the SDK names them (AWS_ENDPOINT_URL_<service id>, the
// service id upper-cased with spaces as underscores), read by Client as cfnsignal reads
// AWS_ENDPOINT_URL_CLOUDFORMATION.
const (
	envEndpointSSM     = "AWS_ENDPOINT_URL_SSM"
	envEndpointSM      = "AWS_ENDPOINT_URL_SECRETS_MANAGER"
	envEndpoint        = "AWS_ENDPOINT_URL"
	envIgnoreEndpoints = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
)

// Options configure a Client.
type Options struct {
	// Credentials sign every request: the run's (cfnsignal.CredentialsProvider: the
	// environment's, else the instance role's through the run's one IMDS client).
	// Required.
	Credentials aws.CredentialsProvider
	// Endpoints replace a service's endpoint (tests); else AWS_ENDPOINT_URL_SSM or
	// AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL, else the region's.
	Endpoints map[Service]string
	// BaseBackoff and MaxBackoff shape the full-jitter backoff; 0: the defaults.
	BaseBackoff, MaxBackoff time.Duration
	// HTTPClient, when set, replaces the transport (tests wrap it); it must not use a
	// proxy. Nil: a client of Client's own, never through a proxy.
	HTTPClient aws.HTTPClient
}

// Client is the real Getter: the AWS SDK v2's SSM and Secrets Manager clients, one a
// service and region, made on first use. Every request is SigV4-signed with
// Options.Credentials, goes direct (never through a proxy: it may be resolving the
// proxy's own URL), and is retried, on throttling, 5xx answers and connection errors,
// with full-jitter backoff for as long as the caller's context allows; there is no
// count of attempts, the context's deadline is the bound.
type Client struct {
	o       Options
	http    aws.HTTPClient
	retryer aws.Retryer

	mu sync.Mutex
	// Method values, not the SDK clients: a *ssm.Client reachable through an
	// interface would let the linker keep its 150 operations while anything calls
	// reflect's method lookup by name (see cfnsignal.Client).
	getParameter map[string]func(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	getSecret    map[string]func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// NewClient returns a Client; it makes no request.
func NewClient(o Options) (*Client, error) {
	if o.Credentials == nil {
		return nil, errors.New("secrets client: no credentials provider")
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	for svc, e := range o.Endpoints {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("secrets client: %s endpoint %q is not an http:// or https:// URL with a host", svc, e)
		}
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.Proxy = nil // never a proxy: PROXY_URL may be what is being resolved
			tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
			tr.ResponseHeaderTimeout = AttemptTimeout
		})
	}
	retryer := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = math.MaxInt32 // the context's deadline bounds the retries
		so.MaxBackoff = o.MaxBackoff
		so.Backoff = backoff.FullJitter{Base: o.BaseBackoff, Cap: o.MaxBackoff}
		so.RateLimiter = ratelimit.None // no client-side retry quota: the deadline alone
	})
	return &Client{
		o: o, http: hc, retryer: retryer,
		getParameter: map[string]func(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error){},
		getSecret:    map[string]func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error){},
	}, nil
}

// config is the SDK configuration for region, without the endpoint.
func (c *Client) config(region string) aws.Config {
	return aws.Config{Region: region, HTTPClient: c.http, Credentials: c.o.Credentials, Retryer: func() aws.Retryer { return c.retryer }}
}

// GetParameter reads a parameter, decrypted (WithDecryption: true).
func (c *Client) GetParameter(ctx context.Context, region, name string) (Parameter, error) {
	if err := c.credentials(ctx); err != nil {
		return Parameter{}, err
	}
	c.mu.Lock()
	get, ok := c.getParameter[region]
	if !ok {
		base, err := endpoint(c.o.Endpoints[SSM], envEndpointSSM)
		if err != nil {
			c.mu.Unlock()
			return Parameter{}, err
		}
		get = ssm.NewFromConfig(c.config(region), func(so *ssm.Options) {
			if base != "" {
				so.BaseEndpoint = aws.String(base)
			}
		}).GetParameter
		c.getParameter[region] = get
	}
	c.mu.Unlock()
	var t tracker
	out, err := get(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)}, func(so *ssm.Options) {
		so.APIOptions = append(so.APIOptions, t.track)
	})
	if err != nil {
		return Parameter{}, t.fail(ctx, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return Parameter{}, errors.New("GetParameter answered no Parameter.Value")
	}
	return Parameter{Value: *out.Parameter.Value, Type: string(out.Parameter.Type)}, nil
}

// GetSecretValue reads the secret's current version (AWSCURRENT).
func (c *Client) GetSecretValue(ctx context.Context, region, secretID string) (Secret, error) {
	if err := c.credentials(ctx); err != nil {
		return Secret{}, err
	}
	c.mu.Lock()
	get, ok := c.getSecret[region]
	if !ok {
		base, err := endpoint(c.o.Endpoints[SecretsManager], envEndpointSM)
		if err != nil {
			c.mu.Unlock()
			return Secret{}, err
		}
		get = secretsmanager.NewFromConfig(c.config(region), func(so *secretsmanager.Options) {
			if base != "" {
				so.BaseEndpoint = aws.String(base)
			}
		}).GetSecretValue
		c.getSecret[region] = get
	}
	c.mu.Unlock()
	var t tracker
	out, err := get(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)}, func(so *secretsmanager.Options) {
		so.APIOptions = append(so.APIOptions, t.track)
	})
	if err != nil {
		return Secret{}, t.fail(ctx, err)
	}
	return Secret{String: out.SecretString}, nil
}

// credentials fetches the credentials once up front, so that having none is told
// apart from the service's refusals.
func (c *Client) credentials(ctx context.Context) error {
	if _, err := c.o.Credentials.Retrieve(ctx); err != nil {
		return &credentialsError{err: err}
	}
	return nil
}

// tracker keeps the last attempt's error of an operation's retry loop, so that a
// failure ended by the deadline still says what the service last answered.
type tracker struct{ last error }

func (t *tracker) track(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("secretsLastAttempt",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
			middleware.FinalizeOutput, middleware.Metadata, error,
		) {
			out, md, err := next.HandleFinalize(ctx, in)
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.last = err
			}
			return out, md, err
		}), "Retry", middleware.After)
}

// fail returns the operation's failure: the last answer when the deadline ended the
// retries.
func (t *tracker) fail(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if t.last != nil {
		err = t.last
	}
	return &fetchError{err: err, exhausted: true}
}

// endpoint returns the endpoint to use instead of the region's, "" for none: given
// when set; else, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true, the service's
// variable, else AWS_ENDPOINT_URL (the SDK's order, as cfnsignal's endpoint).
func endpoint(given, serviceEnv string) (string, error) {
	if given != "" {
		return given, nil
	}
	switch v := os.Getenv(envIgnoreEndpoints); {
	case strings.EqualFold(v, "true"):
		return "", nil
	case v != "" && !strings.EqualFold(v, "false"):
		return "", fmt.Errorf("%s=%q is neither true nor false", envIgnoreEndpoints, v)
	}
	for _, name := range []string{serviceEnv, envEndpoint} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%s=%q is not an http:// or https:// URL with a host", name, v)
		}
		return v, nil
	}
	return "", nil
}

// endpointName is the service's regional host name, for messages.
func endpointName(s Service, region string) string {
	if region == "" {
		region = "REGION"
	}
	host := "ssm." + region + ".amazonaws.com"
	if s == SecretsManager {
		host = "secretsmanager." + region + ".amazonaws.com"
	}
	if strings.HasPrefix(region, "cn-") {
		host += ".cn"
	}
	return host
}
