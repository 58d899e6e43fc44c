package cfnsignal

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// What a Client reads of the environment, by the names the SDK's config package gives
// them (config/env_config.go in github.com/aws/aws-sdk-go-v2/config v1.33.15).
const (
	envAccessKeyID     = "AWS_ACCESS_KEY_ID"
	envAccessKey       = "AWS_ACCESS_KEY" // read when AWS_ACCESS_KEY_ID is empty
	envSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	envSecretKey       = "AWS_SECRET_KEY" // read when AWS_SECRET_ACCESS_KEY is empty
	envSessionToken    = "AWS_SESSION_TOKEN"
	envAccountID       = "AWS_ACCOUNT_ID"

	envEndpointCFN     = "AWS_ENDPOINT_URL_CLOUDFORMATION"
	envEndpoint        = "AWS_ENDPOINT_URL"
	envIgnoreEndpoints = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"

	envCABundle = "AWS_CA_BUNDLE"
)

// envCredentialsSource is the Source of environment credentials, the name the SDK's
// config package gives them (config.CredentialsSourceName).
const envCredentialsSource = "EnvConfigCredentials"

// firstEnv returns the value of the first of keys that is set and not empty, and its
// name: an empty variable counts as unset, as in the SDK's setStringFromEnvVal.
func firstEnv(keys ...string) (value, name string) {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v, k
		}
	}
	return "", ""
}

// environmentCredentials returns the static credentials the environment holds, read
// as config.NewEnvConfig reads them: the key id from AWS_ACCESS_KEY_ID, else
// AWS_ACCESS_KEY; the secret from AWS_SECRET_ACCESS_KEY, else AWS_SECRET_KEY; and, when
// both are there, AWS_SESSION_TOKEN and AWS_ACCOUNT_ID. ok is false unless both the key
// id and the secret are set.
//
// Half a pair (a key id without a secret, or a secret without a key id) is not an
// error: the SDK's default chain ignores it and goes on to the next source
// (config/resolve_credentials.go, resolveCredentialChain: envConfig.Credentials.HasKeys),
// and so does New, so that the same environment gives the same identity to firstrun as
// to the AWS CLI and the ECS agent on the instance. partial then names what is there
// and what is missing, for the error New's credentials give when the instance role
// fails too.
func environmentCredentials() (creds aws.Credentials, ok bool, partial string) {
	id, idName := firstEnv(envAccessKeyID, envAccessKey)
	secret, secretName := firstEnv(envSecretAccessKey, envSecretKey)
	switch {
	case id != "" && secret != "":
		return aws.Credentials{
			AccessKeyID:     id,
			SecretAccessKey: secret,
			SessionToken:    os.Getenv(envSessionToken),
			AccountID:       os.Getenv(envAccountID),
			Source:          envCredentialsSource,
		}, true, ""
	case id != "":
		return aws.Credentials{}, false, fmt.Sprintf("%s is set but neither %s nor %s: environment credentials ignored",
			idName, envSecretAccessKey, envSecretKey)
	case secret != "":
		return aws.Credentials{}, false, fmt.Sprintf("%s is set but neither %s nor %s: environment credentials ignored",
			secretName, envAccessKeyID, envAccessKey)
	}
	return aws.Credentials{}, false, ""
}

// credentialsProvider returns where a Client's requests get their credentials: the
// environment's, read once now, when it holds a key id and a secret (they win over the
// instance role, as in the SDK's default chain); else the instance role's, through
// o.IMDS, or when nil an IMDS client of its own on httpClient (so that the Proxy
// function keeps IMDS direct). Either is wrapped in a cache, as config does
// (config/resolve_credentials.go, wrapWithCredentialsCache).
func credentialsProvider(o Options, httpClient *awshttp.BuildableClient) aws.CredentialsProvider {
	if o.Credentials != nil {
		return o.Credentials
	}
	creds, ok, partial := environmentCredentials()
	if ok {
		return aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}))
	}
	client := o.IMDS
	if client == nil {
		// imds.New reads AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED
		// (feature/ec2/imds/api_client.go), as did the client config built with
		// imds.NewFromConfig. IMDSv2 only, as internal/imds: never an unauthenticated
		// IMDSv1 GET.
		client = sdkimds.New(sdkimds.Options{HTTPClient: httpClient, EnableFallback: aws.FalseTernary})
	}
	return aws.NewCredentialsCache(instanceRole{
		Provider: ec2rolecreds.New(func(ro *ec2rolecreds.Options) { ro.Client = client }),
		partial:  partial,
	})
}

// CredentialsProvider returns the credentials New gives a Client whose Options.IMDS is
// imdsClient (see New): the environment's, else the instance role's through
// imdsClient. The run's other AWS clients (internal/secrets) sign with it too, so that
// one identity, and one fetch of the role's credentials, serves the whole run.
func CredentialsProvider(imdsClient *sdkimds.Client) aws.CredentialsProvider {
	return credentialsProvider(Options{IMDS: imdsClient}, awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
	}))
}

// instanceRole is the SDK's instance-role provider, whose errors also say why the
// environment's credentials were not used when they were only half there. Embedding
// keeps the provider's HandleFailToRefresh and AdjustExpiresBy, which the credentials
// cache uses to carry on with credentials IMDS can no longer refresh.
type instanceRole struct {
	*ec2rolecreds.Provider
	partial string // environmentCredentials' partial
}

func (p instanceRole) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := p.Provider.Retrieve(ctx)
	if err != nil && p.partial != "" {
		err = fmt.Errorf("%s; instance role: %w", p.partial, err)
	}
	return creds, err
}

// endpoint returns the CloudFormation endpoint to use instead of the SDK's regional
// one, "" for none: Options.Endpoint when set; else, unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true, AWS_ENDPOINT_URL_CLOUDFORMATION, else
// AWS_ENDPOINT_URL. This is the order the SDK gives them when config loads the
// environment (config/env_config.go GetServiceBaseEndpoint, config/resolve.go
// resolveBaseEndpoint, and resolveBaseEndpoint in the cloudformation package's
// endpoints.go), empty variables counting as unset; the shared config file's
// endpoint_url and services sections are not read.
func endpoint(o Options) (string, error) {
	if o.Endpoint != "" {
		return o.Endpoint, nil // checked by withDefaults
	}
	switch v := os.Getenv(envIgnoreEndpoints); {
	case strings.EqualFold(v, "true"):
		return "", nil
	case v != "" && !strings.EqualFold(v, "false"):
		// config.NewEnvConfig's setBoolPtrFromEnvVal refuses it too.
		return "", fmt.Errorf("%s=%q is neither true nor false", envIgnoreEndpoints, v)
	}
	v, name := firstEnv(envEndpointCFN, envEndpoint)
	if v == "" {
		return "", nil
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s=%q is not an http:// or https:// URL with a host", name, v)
	}
	return v, nil
}

// withCABundle returns httpClient trusting only the certificates of the PEM file
// AWS_CA_BUNDLE names, when set, as config does (config/resolve.go,
// resolveCustomCABundle: the bundle replaces the system's roots); for a TLS-inspecting
// proxy. Unlike config, a file that cannot be read or holds no certificate is an error
// now rather than a failed handshake later.
func withCABundle(httpClient *awshttp.BuildableClient) (*awshttp.BuildableClient, error) {
	path := os.Getenv(envCABundle)
	if path == "" {
		return httpClient, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envCABundle, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s=%s: no PEM certificate in the file", envCABundle, path)
	}
	return httpClient.WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.RootCAs = pool
	}), nil
}
