package cfnsignal

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// The instance role the fake IMDS hands out.
const (
	testRole      = "ecs-instance-role"
	testIMDSToken = "AQAEAfakeIMDSv2sessiontoken=="
)

var roleCreds = aws.Credentials{
	AccessKeyID:     "ASIAROLEEXAMPLE00001",
	SecretAccessKey: "role/Secret/bPxRfiCYEXAMPLEKEY0000001",
	SessionToken:    "IQoJb3JpZ2luX2VjEFAKEROLESESSIONTOKEN",
}

// fakeIMDS is IMDSv2 as the instance role's credentials need it: a session token
// (PUT /latest/api/token), the role's name, its credentials. Every GET must carry
// the token.
type fakeIMDS struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "METHOD path"
}

func newFakeIMDS(t *testing.T) *fakeIMDS {
	t.Helper()
	f := &fakeIMDS{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		const credsPath = "/latest/meta-data/iam/security-credentials/"
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			ttl := r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
			if ttl == "" {
				http.Error(w, "missing TTL", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
			fmt.Fprint(w, testIMDSToken)
		case r.Method != http.MethodGet:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") != testIMDSToken:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case r.URL.Path == credsPath:
			fmt.Fprintln(w, testRole)
		case r.URL.Path == credsPath+testRole:
			json.NewEncoder(w).Encode(map[string]string{
				"Code": "Success", "LastUpdated": time.Now().UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
				"AccessKeyId": roleCreds.AccessKeyID, "SecretAccessKey": roleCreds.SecretAccessKey,
				"Token": roleCreds.SessionToken, "Expiration": time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// Requests returns what the fake has received so far.
func (f *fakeIMDS) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// roleRequests are the requests that fetch the instance role's credentials once.
var roleRequests = []string{
	"PUT /latest/api/token",
	"GET /latest/meta-data/iam/security-credentials/",
	"GET /latest/meta-data/iam/security-credentials/" + testRole,
}

// The environment's credentials win over the instance role; without a key id and a
// secret in the environment, the instance role's are used, fetched once per Client.
func TestSendCredentials(t *testing.T) {
	withToken := testCreds
	withToken.SessionToken = "FwoGZXIvYXdzEnvSessionToken"
	cases := []struct {
		name       string
		env        map[string]string
		sharedIMDS bool // Options.IMDS set; else New's own client, at AWS_EC2_METADATA_SERVICE_ENDPOINT
		want       aws.Credentials
	}{
		{name: "environment", env: map[string]string{"AWS_ACCESS_KEY_ID": testAKID, "AWS_SECRET_ACCESS_KEY": testSecret},
			sharedIMDS: true, want: testCreds},
		{name: "environment, own IMDS client", env: map[string]string{"AWS_ACCESS_KEY_ID": testAKID, "AWS_SECRET_ACCESS_KEY": testSecret},
			want: testCreds},
		{name: "environment with a session token", env: map[string]string{"AWS_ACCESS_KEY_ID": testAKID,
			"AWS_SECRET_ACCESS_KEY": testSecret, "AWS_SESSION_TOKEN": withToken.SessionToken}, want: withToken},
		{name: "environment, old names", env: map[string]string{"AWS_ACCESS_KEY": testAKID, "AWS_SECRET_KEY": testSecret},
			want: testCreds},
		{name: "instance role", sharedIMDS: true, want: roleCreds},
		{name: "instance role, own IMDS client", want: roleCreds},
		{name: "key id without secret: instance role", env: map[string]string{"AWS_ACCESS_KEY_ID": testAKID},
			sharedIMDS: true, want: roleCreds},
		{name: "secret without key id: instance role", env: map[string]string{"AWS_SECRET_KEY": testSecret},
			want: roleCreds},
		{name: "session token alone: instance role", env: map[string]string{"AWS_SESSION_TOKEN": "orphan"},
			want: roleCreds},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			imds := instanceWithRole(t) // reachable either way: only the environment decides
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fake := newFakeCFN(t, testSignal, answerOK)
			fake.Expect(tc.want)
			o := Options{Endpoint: fake.URL}
			if tc.sharedIMDS {
				o.IMDS = sdkimds.New(sdkimds.Options{Endpoint: imds.URL})
			}
			c := newTestClient(t, o)
			for i := range 2 {
				if err := c.Send(context.Background(), testSignal); err != nil {
					t.Fatalf("Send %d: %v", i+1, err)
				}
			}
			for i, r := range fake.Requests() {
				if r.AccessKeyID != tc.want.AccessKeyID || r.SecurityToken != tc.want.SessionToken {
					t.Errorf("request %d signed by %q with token %q, want %q and %q",
						i+1, r.AccessKeyID, r.SecurityToken, tc.want.AccessKeyID, tc.want.SessionToken)
				}
			}
			wantIMDS := roleRequests // once for both Sends: the credentials are cached
			if tc.want != roleCreds {
				wantIMDS = nil
			}
			if got := imds.Requests(); strings.Join(got, "\n") != strings.Join(wantIMDS, "\n") {
				t.Errorf("IMDS got %q, want %q", got, wantIMDS)
			}
		})
	}
}

// instanceWithRole isolates the test from the machine's AWS settings (isolateAWS) and
// makes it an instance with a role: a fake IMDS, reachable, and no credentials in the
// environment.
func instanceWithRole(t *testing.T) *fakeIMDS {
	t.Helper()
	isolateAWS(t)
	imds := newFakeIMDS(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	return imds
}

// The usual setup behind a proxy: CloudFormation through it, the instance role's
// credentials from IMDS direct, with New's own IMDS client.
func TestSendInstanceRoleThroughProxy(t *testing.T) {
	imds := instanceWithRole(t)
	fake := newFakeCFN(t, testSignal, answerOK)
	fake.Expect(roleCreds)
	target, _ := url.Parse(fake.URL)
	proxy := newForwardProxy(t, target)
	proxyURL, _ := url.Parse(proxy.URL)
	const endpoint = "http://cloudformation." + testRegion + ".test.invalid"
	c := newTestClient(t, Options{Endpoint: endpoint, Proxy: proxyURL})
	if err := c.Send(context.Background(), testSignal); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for i, r := range proxy.Requests() {
		if r.RequestURI != endpoint+"/" {
			t.Errorf("proxy request %d: %s, want only CloudFormation's", i+1, r.RequestURI)
		}
	}
	if n := len(proxy.Requests()); n != 1 {
		t.Errorf("the proxy got %d requests, want 1", n)
	}
	if got := imds.Requests(); len(got) != len(roleRequests) {
		t.Errorf("IMDS got %q, want %q", got, roleRequests)
	}
}

// Half a pair of environment credentials falls through to the instance role, as in
// the SDK's default chain; when the instance role fails too, the error says what the
// environment lacked, and no request reaches CloudFormation.
func TestSendPartialEnvironmentCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // what the error says of the environment; "" nothing
	}{
		{"key id without secret", map[string]string{"AWS_ACCESS_KEY_ID": testAKID},
			"AWS_ACCESS_KEY_ID is set but neither AWS_SECRET_ACCESS_KEY nor AWS_SECRET_KEY"},
		{"old key id name without secret", map[string]string{"AWS_ACCESS_KEY": testAKID},
			"AWS_ACCESS_KEY is set but neither AWS_SECRET_ACCESS_KEY nor AWS_SECRET_KEY"},
		{"secret without key id", map[string]string{"AWS_SECRET_ACCESS_KEY": testSecret},
			"AWS_SECRET_ACCESS_KEY is set but neither AWS_ACCESS_KEY_ID nor AWS_ACCESS_KEY"},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t) // AWS_EC2_METADATA_DISABLED=true: the instance role fails
			t.Setenv("AWS_ACCESS_KEY_ID", "")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fake := newFakeCFN(t, testSignal, answerOK)
			c := newTestClient(t, Options{Endpoint: fake.URL})
			err := c.Send(context.Background(), testSignal)
			if err == nil {
				t.Fatal("Send succeeded without credentials")
			}
			checkKind(t, err, ErrPermanent)
			if !strings.Contains(err.Error(), "EC2 IMDS") {
				t.Errorf("error %q does not say the instance role failed", err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.want == "" && strings.Contains(err.Error(), "environment credentials") {
				t.Errorf("error %q speaks of the environment", err)
			}
			if n := len(fake.Requests()); n != 0 {
				t.Errorf("%d requests reached CloudFormation", n)
			}
		})
	}
}

func TestEnvironmentCredentials(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    aws.Credentials // Source aside; zero: none
		partial string
	}{
		{"none", nil, aws.Credentials{}, ""},
		{"pair", map[string]string{"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"},
			aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S"}, ""},
		{"pair with token and account", map[string]string{"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S",
			"AWS_SESSION_TOKEN": "T", "AWS_ACCOUNT_ID": "123456789012"},
			aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S", SessionToken: "T", AccountID: "123456789012"}, ""},
		{"new names win", map[string]string{"AWS_ACCESS_KEY_ID": "A", "AWS_ACCESS_KEY": "old-a",
			"AWS_SECRET_ACCESS_KEY": "S", "AWS_SECRET_KEY": "old-s"}, aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S"}, ""},
		{"old names", map[string]string{"AWS_ACCESS_KEY": "A", "AWS_SECRET_KEY": "S"},
			aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S"}, ""},
		{"mixed names", map[string]string{"AWS_ACCESS_KEY": "A", "AWS_SECRET_ACCESS_KEY": "S"},
			aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S"}, ""},
		{"key id alone", map[string]string{"AWS_ACCESS_KEY_ID": "A", "AWS_SESSION_TOKEN": "T"}, aws.Credentials{},
			"AWS_ACCESS_KEY_ID is set but neither AWS_SECRET_ACCESS_KEY nor AWS_SECRET_KEY: environment credentials ignored"},
		{"secret alone", map[string]string{"AWS_SECRET_KEY": "S"}, aws.Credentials{},
			"AWS_SECRET_KEY is set but neither AWS_ACCESS_KEY_ID nor AWS_ACCESS_KEY: environment credentials ignored"},
		{"empty is unset", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_ACCESS_KEY": "A", "AWS_SECRET_ACCESS_KEY": "S"},
			aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
				"AWS_SESSION_TOKEN", "AWS_ACCOUNT_ID"} {
				t.Setenv(k, tc.env[k])
			}
			got, ok, partial := environmentCredentials()
			if ok != (tc.want != aws.Credentials{}) || partial != tc.partial {
				t.Errorf("ok %v, partial %q; want %v, %q", ok, partial, !ok, tc.partial)
			}
			if ok && got.Source != envCredentialsSource {
				t.Errorf("Source %q, want %q", got.Source, envCredentialsSource)
			}
			got.Source = ""
			if got != tc.want {
				t.Errorf("credentials %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Where the requests go: Options.Endpoint, else AWS_ENDPOINT_URL_CLOUDFORMATION, else
// AWS_ENDPOINT_URL.
func TestSendEndpoint(t *testing.T) {
	const right, wrong = "RIGHT", "WRONG" // replaced by the fakes' URLs
	cases := []struct {
		name    string
		options string // Options.Endpoint
		env     map[string]string
	}{
		{name: "AWS_ENDPOINT_URL_CLOUDFORMATION", env: map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": right}},
		{name: "AWS_ENDPOINT_URL", env: map[string]string{"AWS_ENDPOINT_URL": right}},
		{name: "the service's wins", env: map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": right, "AWS_ENDPOINT_URL": wrong}},
		{name: "an empty variable is unset", env: map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": "", "AWS_ENDPOINT_URL": right}},
		{name: "Options win", options: right, env: map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": wrong, "AWS_ENDPOINT_URL": wrong}},
		{name: "Options win over the ignore flag", options: right,
			env: map[string]string{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": wrong}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			good := newFakeCFN(t, testSignal, answerOK)
			bad := newFakeCFN(t, testSignal, answerOK)
			url := func(v string) string {
				return strings.NewReplacer(right, good.URL, wrong, bad.URL).Replace(v)
			}
			for k, v := range tc.env {
				t.Setenv(k, url(v))
			}
			c := newTestClient(t, Options{Endpoint: url(tc.options)})
			if err := c.Send(context.Background(), testSignal); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if n, m := len(good.Requests()), len(bad.Requests()); n != 1 || m != 0 {
				t.Errorf("%d requests at the right endpoint, %d at the wrong one; want 1 and 0", n, m)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options string
		env     map[string]string
		want    string
		wantErr string // what the error names
	}{
		{name: "none", want: ""},
		{name: "ignored", env: map[string]string{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "TRUE",
			"AWS_ENDPOINT_URL_CLOUDFORMATION": "http://a.example", "AWS_ENDPOINT_URL": "http://b.example"}, want: ""},
		{name: "not ignored", env: map[string]string{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
			"AWS_ENDPOINT_URL": "https://b.example:8443"}, want: "https://b.example:8443"},
		{name: "bad ignore flag", env: map[string]string{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "yes"},
			wantErr: `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="yes"`},
		{name: "not a URL", env: map[string]string{"AWS_ENDPOINT_URL": "cloudformation.example"},
			wantErr: `AWS_ENDPOINT_URL="cloudformation.example" is not an http:// or https:// URL`},
		{name: "not http", env: map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": "ftp://cfn.example"},
			wantErr: `AWS_ENDPOINT_URL_CLOUDFORMATION="ftp://cfn.example"`},
		{name: "Options not checked again", options: "http://o.example", env: map[string]string{"AWS_ENDPOINT_URL": "bad"},
			want: "http://o.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := endpoint(Options{Endpoint: tc.options})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("endpoint = %q, %v; want an error with %s", got, err, tc.wantErr)
				}
				_, err := New(context.Background(), Options{Region: testRegion, Endpoint: tc.options})
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("New: %v, want an error with %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("endpoint = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// AWS_CA_BUNDLE names the certificates an HTTPS endpoint is checked against, such as
// a TLS-inspecting proxy's.
func TestSendCABundle(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFNTLS(t, testSignal, answerOK)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fake.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	c := newTestClient(t, Options{Endpoint: fake.URL, MaxAttempts: 1})
	if err := c.Send(context.Background(), testSignal); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Send without the bundle: %v, want a certificate error", err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	c = newTestClient(t, Options{Endpoint: fake.URL})
	if err := c.Send(context.Background(), testSignal); err != nil {
		t.Errorf("Send with the bundle: %v", err)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("%d requests answered, want 1", n)
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.pem"): "no such file",
		notPEM:                            "no PEM certificate",
	} {
		t.Setenv("AWS_CA_BUNDLE", path)
		_, err := New(context.Background(), Options{Region: testRegion})
		if err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") || !strings.Contains(err.Error(), want) {
			t.Errorf("New with AWS_CA_BUNDLE=%s: %v, want an error saying %q", path, err, want)
		}
	}
}
