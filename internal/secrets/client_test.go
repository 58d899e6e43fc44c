package secrets_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/firstrun/firstrun/internal/secrets"
	"github.com/firstrun/firstrun/internal/secrets/secretstest"
)

// The credentials the tests sign with, the stand-in's instance role.
var testCreds = aws.Credentials{AccessKeyID: "ASIAEXAMPLEROLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "role-session-token"}

const testRegion = "eu-west-3"

// isolate keeps the developer's AWS endpoint settings out of the client.
func isolate(t *testing.T) {
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "HTTP_PROXY", "HTTPS_PROXY"} {
		t.Setenv(k, "")
	}
}

func str(s string) *string { return &s }

// standIn is the stand-in holding the cases' parameters and secrets.
func standIn(t *testing.T) (*secretstest.Server, *secrets.Client) {
	t.Helper()
	isolate(t)
	s := secretstest.New(secretstest.Config{
		Region:      testRegion,
		Credentials: []aws.Credentials{testCreds},
		Parameters: map[string]secretstest.Param{
			"/prod/proxy":        {Value: "http://u:p%40ss@proxy.internal:3128", Type: "SecureString"},
			"/prod/docker-auth":  {Value: `{"https://index.docker.io/v1/":{"auth":"dTpw"}}`, Type: "SecureString", KeyID: "cmk-1"},
			"/prod/denied-key":   {Value: "never shown", Type: "SecureString", KeyID: "cmk-denied"},
			"/prod/disabled-key": {Value: "never shown", Type: "SecureString", KeyID: "cmk-disabled"},
			"/prod/plain":        {Value: "not-secret", Version: 3, Labels: []string{"live"}},
			"/prod/denied":       {Value: "never shown", Type: "SecureString"},
		},
		Secrets: map[string]secretstest.Secret{
			"prod/proxy":   {String: str(`{"url":"http://proxy.internal:3128","password":"s3cr3t-pw"}`)},
			"prod/cmk":     {String: str("cmk-secret"), KeyID: "cmk-1"},
			"prod/nokms":   {String: str("never shown"), KeyID: "cmk-denied"},
			"prod/badkey":  {String: str("never shown"), KeyID: "cmk-disabled"},
			"prod/binary":  {Binary: []byte{1, 2, 3}},
			"prod/deleted": {String: str("gone"), Deleted: true},
			"prod/denied":  {String: str("never shown")},
		},
		Keys:   map[string]secretstest.Key{"cmk-1": {}, "cmk-denied": {Denied: true}, "cmk-disabled": {Disabled: true}},
		Denied: []string{"/prod/denied", "/prod/denied-missing", "prod/denied"},
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := secrets.NewClient(secrets.Options{
		Credentials: aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return testCreds, nil })),
		Endpoints:   map[secrets.Service]string{secrets.SSM: srv.URL, secrets.SecretsManager: srv.URL},
		BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func mustParse(t *testing.T, s string) secrets.Ref {
	t.Helper()
	ref, ok, err := secrets.Parse(s)
	if !ok || err != nil {
		t.Fatalf("Parse(%q): %v, %v", s, ok, err)
	}
	return ref
}

// TestResolveAgainstStandIn runs the real client against the stand-in: each case's
// value or error, the error naming the reference and the API's code.
func TestResolveAgainstStandIn(t *testing.T) {
	for _, tc := range []struct {
		name, ref    string
		want, typ    string
		kind         secrets.Kind
		code, inText string
	}{
		{name: "SecureString under aws/ssm", ref: "ssm:/prod/proxy", want: "http://u:p%40ss@proxy.internal:3128", typ: "SecureString"},
		{name: "SecureString under a customer key", ref: "ssm:/prod/docker-auth", want: `{"https://index.docker.io/v1/":{"auth":"dTpw"}}`, typ: "SecureString"},
		{name: "parameter JSON key", ref: "ssm:/prod/docker-auth#https://index.docker.io/v1/", want: `{"auth":"dTpw"}`},
		{name: "String by version", ref: "ssm:/prod/plain:3", want: "not-secret", typ: "String"},
		{name: "String by label", ref: "ssm:/prod/plain:live", want: "not-secret"},
		{name: "parameter by ARN", ref: "ssm:arn:aws:ssm:eu-west-3:123456789012:parameter/prod/proxy", want: "http://u:p%40ss@proxy.internal:3128"},
		{name: "secret JSON key", ref: "secretsmanager:prod/proxy#password", want: "s3cr3t-pw", typ: "SecretString"},
		{name: "whole secret", ref: "secretsmanager:prod/proxy", want: `{"url":"http://proxy.internal:3128","password":"s3cr3t-pw"}`},
		{name: "secret under a customer key", ref: "secretsmanager:prod/cmk", want: "cmk-secret"},
		{name: "secret by ARN", ref: "secretsmanager:arn:aws:secretsmanager:eu-west-3:123456789012:secret:prod/proxy-AbCdEf#url", want: "http://proxy.internal:3128"},

		{name: "parameter not found", ref: "ssm:/prod/nope", kind: secrets.KindNotFound, code: "ParameterNotFound", inText: "no such parameter in eu-west-3"},
		{name: "parameter version not found", ref: "ssm:/prod/plain:4", kind: secrets.KindNotFound, code: "ParameterVersionNotFound"},
		{name: "secret not found", ref: "secretsmanager:prod/nope", kind: secrets.KindNotFound, code: "ResourceNotFoundException", inText: "can't find the specified secret"},
		{name: "parameter access denied", ref: "ssm:/prod/denied", kind: secrets.KindAccessDenied, code: "AccessDeniedException", inText: "needs ssm:GetParameter"},
		{name: "parameter access denied though missing", ref: "ssm:/prod/denied-missing", kind: secrets.KindAccessDenied, code: "AccessDeniedException"},
		{name: "secret access denied", ref: "secretsmanager:prod/denied#x", kind: secrets.KindAccessDenied, code: "AccessDeniedException", inText: "needs secretsmanager:GetSecretValue"},
		{name: "parameter KMS denied", ref: "ssm:/prod/denied-key", kind: secrets.KindKMS, code: "AccessDeniedException", inText: "needs kms:Decrypt"},
		{name: "parameter KMS key disabled", ref: "ssm:/prod/disabled-key", kind: secrets.KindKMS, code: "InvalidKeyId"},
		{name: "secret KMS denied", ref: "secretsmanager:prod/nokms", kind: secrets.KindKMS, code: "AccessDeniedException", inText: "Access to KMS is not allowed"},
		{name: "secret KMS key disabled", ref: "secretsmanager:prod/badkey", kind: secrets.KindKMS, code: "DecryptionFailure"},
		{name: "secret scheduled for deletion", ref: "secretsmanager:prod/deleted", kind: secrets.KindRefused, code: "InvalidRequestException", inText: "marked for deletion"},
		{name: "binary secret", ref: "secretsmanager:prod/binary", kind: secrets.KindValue, inText: "SecretBinary"},
		{name: "missing JSON key", ref: "secretsmanager:prod/proxy#user", kind: secrets.KindValue, inText: `no key "user"`},
		{name: "JSON key of a non-JSON value", ref: "secretsmanager:prod/cmk#x", kind: secrets.KindValue, inText: "does not hold a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := standIn(t)
			res := secrets.Resolve(context.Background(), c, testRegion, []secrets.Ref{mustParse(t, tc.ref)})[0]
			if tc.kind == "" {
				if res.Err != nil || res.Value != tc.want {
					t.Fatalf("got %q, %v; want %q", res.Value, res.Err, tc.want)
				}
				if tc.typ != "" && res.Type != tc.typ {
					t.Errorf("type %q, want %q", res.Type, tc.typ)
				}
				return
			}
			var e *secrets.Error
			if !errors.As(res.Err, &e) {
				t.Fatalf("got %q, %v; want a *secrets.Error", res.Value, res.Err)
			}
			if e.Kind != tc.kind || e.Code != tc.code {
				t.Errorf("kind %q code %q, want %q %q: %v", e.Kind, e.Code, tc.kind, tc.code, e)
			}
			msg := res.Err.Error()
			if !strings.HasPrefix(msg, tc.ref+": ") || !strings.Contains(msg, tc.inText) {
				t.Errorf("message %q: want it to start with the reference and say %q", msg, tc.inText)
			}
			if strings.Contains(msg, "never shown") || res.Value != "" {
				t.Errorf("a failure shows a value: %q, %q", msg, res.Value)
			}
		})
	}
}

// TestResolveSignsForEachService checks the requests: SigV4 for the service named by
// the target, with the instance role's session token, verified by the stand-in; a
// parameter asked WithDecryption.
func TestResolveSignsForEachService(t *testing.T) {
	s, c := standIn(t)
	res := secrets.Resolve(context.Background(), c, testRegion, []secrets.Ref{
		mustParse(t, "ssm:/prod/proxy"), mustParse(t, "secretsmanager:prod/proxy#password"),
	})
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if !r.Verified || r.Answer != "OK" || r.AccessKeyID != testCreds.AccessKeyID || r.SecurityToken != testCreds.SessionToken {
			t.Errorf("request %+v: want a verified SigV4 signature with the role's session token", r)
		}
	}
	if reqs[0].Target != secretstest.TargetGetParameter || !reqs[0].WithDecryption {
		t.Errorf("first request %+v: want GetParameter WithDecryption", reqs[0])
	}
}

// TestResolveAsksEachSecretOnce: two keys of one secret, one request.
func TestResolveAsksEachSecretOnce(t *testing.T) {
	s, c := standIn(t)
	res := secrets.Resolve(context.Background(), c, testRegion, []secrets.Ref{
		mustParse(t, "secretsmanager:prod/proxy#url"), mustParse(t, "secretsmanager:prod/proxy#password"),
	})
	if res[0].Value != "http://proxy.internal:3128" || res[1].Value != "s3cr3t-pw" {
		t.Errorf("got %+v", res)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestThrottledThenOK: throttling is retried, and the value comes back.
func TestThrottledThenOK(t *testing.T) {
	for _, ref := range []string{"ssm:/prod/proxy", "secretsmanager:prod/proxy#password"} {
		s, c := standIn(t)
		s.Script(secretstest.FaultThrottle, secretstest.FaultThrottle, secretstest.FaultServerError, secretstest.FaultThrottle)
		res := secrets.Resolve(context.Background(), c, testRegion, []secrets.Ref{mustParse(t, ref)})[0]
		if res.Err != nil || res.Value == "" {
			t.Fatalf("%s: %v", ref, res.Err)
		}
		var answers []string
		for _, r := range s.Requests() {
			answers = append(answers, r.Answer)
		}
		if got := strings.Join(answers, " "); got != "ThrottlingException ThrottlingException InternalServerError ThrottlingException OK" &&
			got != "ThrottlingException ThrottlingException InternalServiceError ThrottlingException OK" {
			t.Errorf("%s: answers %s", ref, got)
		}
	}
}

// TestThrottledUntilTheDeadline: throttled on every attempt, the resolution ends with
// the deadline and says it was throttled, naming the last answer.
func TestThrottledUntilTheDeadline(t *testing.T) {
	s, c := standIn(t)
	faults := make([]secretstest.Fault, 100000)
	for i := range faults {
		faults[i] = secretstest.FaultThrottle
	}
	s.Script(faults...)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := secrets.Resolve(ctx, c, testRegion, []secrets.Ref{mustParse(t, "ssm:/prod/proxy")})[0]
	var e *secrets.Error
	if !errors.As(res.Err, &e) || e.Kind != secrets.KindThrottled || e.Code != "ThrottlingException" || !strings.Contains(e.Error(), "FIRSTRUN_SECRETS_TIMEOUT") {
		t.Fatalf("got %v, want throttled until the budget ran out", res.Err)
	}
	if len(s.Requests()) < 2 {
		t.Errorf("%d requests: want retries", len(s.Requests()))
	}
}

// TestHangIsBounded: a service that never answers ends with the context, unavailable.
func TestHangIsBounded(t *testing.T) {
	s, c := standIn(t)
	s.Script(secretstest.FaultHang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := secrets.Resolve(ctx, c, testRegion, []secrets.Ref{mustParse(t, "secretsmanager:prod/proxy")})[0]
	var e *secrets.Error
	if !errors.As(res.Err, &e) || e.Kind != secrets.KindUnavailable || !strings.Contains(e.Error(), "never reaches Secrets Manager through the proxy") {
		t.Fatalf("got %v, want unavailable within the budget", res.Err)
	}
}

// TestWrongCredentialsAreRefused: a signature the stand-in cannot verify.
func TestWrongCredentialsAreRefused(t *testing.T) {
	_, good := standIn(t)
	_ = good
	isolate(t)
	s := secretstest.New(secretstest.Config{Region: testRegion, Credentials: []aws.Credentials{{AccessKeyID: "AKIDOTHER", SecretAccessKey: "x"}}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, err := secrets.NewClient(secrets.Options{
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return testCreds, nil }),
		Endpoints:   map[secrets.Service]string{secrets.SSM: srv.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := secrets.Resolve(context.Background(), c, testRegion, []secrets.Ref{mustParse(t, "ssm:/prod/proxy")})[0]
	var e *secrets.Error
	if !errors.As(res.Err, &e) || e.Kind != secrets.KindCredentials || e.Code != "UnrecognizedClientException" {
		t.Fatalf("got %v, want the credentials refused", res.Err)
	}
}

// TestNoCredentials: no credentials at all is said as such, without a request.
func TestNoCredentials(t *testing.T) {
	isolate(t)
	c, err := secrets.NewClient(secrets.Options{
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no EC2 IMDS role found")
		}),
		Endpoints: map[secrets.Service]string{secrets.SSM: "http://127.0.0.1:9"},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := secrets.Resolve(context.Background(), c, testRegion, []secrets.Ref{mustParse(t, "ssm:/prod/proxy")})[0]
	var e *secrets.Error
	if !errors.As(res.Err, &e) || e.Kind != secrets.KindCredentials || !strings.Contains(e.Error(), "no EC2 IMDS role found") {
		t.Fatalf("got %v", res.Err)
	}
}

// TestNoRegion: a name with no region to ask fails without a request; an ARN brings
// its own region.
func TestNoRegion(t *testing.T) {
	s, c := standIn(t)
	res := secrets.Resolve(context.Background(), c, "", []secrets.Ref{
		mustParse(t, "ssm:/prod/proxy"),
		mustParse(t, "ssm:arn:aws:ssm:eu-west-3:123456789012:parameter/prod/proxy"),
	})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "no region to ask") {
		t.Errorf("by name: %v", res[0].Err)
	}
	if res[1].Err != nil {
		t.Errorf("by ARN: %v", res[1].Err)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
