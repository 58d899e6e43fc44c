package cfnsignal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The static credentials every test signs with.
const (
	testAKID   = "AKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	testRegion = "eu-west-3"
)

// isolateAWS gives a Client the test's static credentials, from the environment, and
// none of the developer's AWS settings: never IMDS (which answers 403 on the
// development machine), never an endpoint or a CA bundle from the environment (nor
// ~/.aws, which New does not read anyway).
func isolateAWS(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":                   testAKID,
		"AWS_SECRET_ACCESS_KEY":               testSecret,
		"AWS_ACCESS_KEY":                      "",
		"AWS_SECRET_KEY":                      "",
		"AWS_SESSION_TOKEN":                   "",
		"AWS_ACCOUNT_ID":                      "",
		"AWS_EC2_METADATA_DISABLED":           "true",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT":   "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
		"AWS_CA_BUNDLE":                       "",
		"AWS_CONFIG_FILE":                     none,
		"AWS_SHARED_CREDENTIALS_FILE":         none,
		"AWS_PROFILE":                         "",
		"AWS_REGION":                          "",
		"AWS_DEFAULT_REGION":                  "",
		"AWS_ENDPOINT_URL":                    "",
		"AWS_ENDPOINT_URL_CLOUDFORMATION":     "",
		"AWS_MAX_ATTEMPTS":                    "",
		"AWS_RETRY_MODE":                      "",
		"AWS_NEW_RETRIES_2026":                "",
		"HTTP_PROXY":                          "",
		"HTTPS_PROXY":                         "",
		"http_proxy":                          "",
		"https_proxy":                         "",
	} {
		t.Setenv(k, v)
	}
}

// answer is how the fake answers one request.
type answer int

const (
	answerOK           answer = iota // 200 SignalResourceResponse
	answerThrottled                  // 400 Throttling, as CloudFormation throttles
	answerTooMany                    // a bare 429, as a proxy might
	answerServerError                // 500 InternalFailure
	answerNoStack                    // 400 ValidationError: the stack does not exist
	answerAccessDenied               // 403 AccessDenied
	answerSkewed                     // 403 SignatureDoesNotMatch, the server's clock an hour ahead
	answerHang                       // no answer until the client goes away
)

// serverSkew is how far ahead of the test's clock answerSkewed says the server's is.
const serverSkew = time.Hour

// received is what the fake saw of one request.
type received struct {
	host          string // the Host header
	sdkRequest    string // amz-sdk-request: "attempt=N; max=M"
	amzDate       string // X-Amz-Date, the signing time
	accessKeyID   string // the Authorization's Credential=, "" when not SigV4
	securityToken string // X-Amz-Security-Token, the session token
}

// testCreds are the credentials the fake expects unless told otherwise.
var testCreds = aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}

// fakeCFN is CloudFormation's Query API for SignalResource on loopback. It checks
// every request against want (form fields, SigV4 signature recomputed with the SDK's
// signer over what it received, with testCreds unless Expect says other credentials)
// and answers the nth request with answers[n-1], the
// last one repeating.
type fakeCFN struct {
	*httptest.Server
	t       *testing.T
	want    Signal
	answers []answer

	mu       sync.Mutex
	creds    aws.Credentials // what requests must be signed with
	requests []received
}

func newFakeCFN(t *testing.T, want Signal, answers ...answer) *fakeCFN {
	t.Helper()
	f := &fakeCFN{t: t, want: want, answers: answers, creds: testCreds}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// newFakeCFNTLS is newFakeCFN over HTTPS, with httptest's self-signed certificate; it
// does not log the handshakes of clients that refuse it.
func newFakeCFNTLS(t *testing.T, want Signal, answers ...answer) *fakeCFN {
	t.Helper()
	f := &fakeCFN{t: t, want: want, answers: answers, creds: testCreds}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// Expect makes the fake require creds' signature (and session token) from now on.
func (f *fakeCFN) Expect(creds aws.Credentials) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creds = creds
}

// Requests returns what the fake has received so far.
func (f *fakeCFN) Requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.requests...)
}

func (f *fakeCFN) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake CloudFormation: reading the body: %v", err)
	}
	akid := ""
	if m := authHeader.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		akid = m[1]
	}
	f.mu.Lock()
	f.requests = append(f.requests, received{host: r.Host, sdkRequest: r.Header.Get("Amz-Sdk-Request"),
		amzDate: r.Header.Get("X-Amz-Date"), accessKeyID: akid, securityToken: r.Header.Get("X-Amz-Security-Token")})
	n := len(f.requests)
	creds := f.creds
	f.mu.Unlock()
	for _, p := range f.check(r, body, creds) {
		f.t.Errorf("fake CloudFormation, request %d: %s", n, p)
	}

	a := f.answers[min(n, len(f.answers))-1]
	requestID := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("Content-Type", "text/xml")
	switch a {
	case answerOK:
		fmt.Fprintf(w, `<SignalResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <ResponseMetadata>
    <RequestId>%s</RequestId>
  </ResponseMetadata>
</SignalResourceResponse>
`, requestID)
	case answerThrottled:
		writeError(w, http.StatusBadRequest, "Throttling", "Rate exceeded", requestID)
	case answerTooMany:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintln(w, "Too Many Requests")
	case answerServerError:
		writeError(w, http.StatusInternalServerError, "InternalFailure", "We encountered an internal error. Please try again.", requestID)
	case answerNoStack:
		writeError(w, http.StatusBadRequest, "ValidationError", "Stack "+f.want.StackName+" does not exist", requestID)
	case answerAccessDenied:
		writeError(w, http.StatusForbidden, "AccessDenied",
			"User: arn:aws:sts::123456789012:assumed-role/ecs-instance/"+f.want.UniqueID+
				" is not authorized to perform: cloudformation:SignalResource", requestID)
	case answerSkewed:
		w.Header().Set("Date", time.Now().Add(serverSkew).UTC().Format(http.TimeFormat))
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch",
			"Signature expired: "+r.Header.Get("X-Amz-Date")+" is now earlier than ... (15 min)", requestID)
	case answerHang:
		<-r.Context().Done()
	}
}

// writeError answers as the Query API does when it refuses a request.
func writeError(w http.ResponseWriter, status int, code, message, requestID string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <Error>
    <Type>Sender</Type>
    <Code>%s</Code>
    <Message>%s</Message>
  </Error>
  <RequestId>%s</RequestId>
</ErrorResponse>
`, code, message, requestID)
}

// authHeader is the structure of a SigV4 Authorization header.
var authHeader = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// check returns what is wrong with a SignalResource request that creds should sign.
func (f *fakeCFN) check(r *http.Request, body []byte, creds aws.Credentials) []string {
	var problems []string
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		problems = append(problems, fmt.Sprintf("%s %s, want POST /", r.Method, r.URL.Path))
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		problems = append(problems, fmt.Sprintf("Content-Type %q, want a form", ct))
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		problems = append(problems, fmt.Sprintf("body %q: %v", body, err))
	}
	for k, want := range map[string]string{
		"Action": "SignalResource", "Version": "2010-05-15", "StackName": f.want.StackName,
		"LogicalResourceId": f.want.LogicalResourceID, "UniqueId": f.want.UniqueID, "Status": string(f.want.Status),
	} {
		if got := form[k]; len(got) != 1 || got[0] != want {
			problems = append(problems, fmt.Sprintf("form %s=%q, want %q", k, got, want))
		}
	}
	if len(form) != 6 {
		problems = append(problems, fmt.Sprintf("form has %d fields, want 6: %q", len(form), body))
	}

	date := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return append(problems, fmt.Sprintf("X-Amz-Date %q: %v", date, err))
	}
	auth := r.Header.Get("Authorization")
	m := authHeader.FindStringSubmatch(auth)
	if m == nil {
		return append(problems, fmt.Sprintf("Authorization %q is not SigV4", auth))
	}
	if m[1] != creds.AccessKeyID || m[2] != date[:8] || m[3] != testRegion || m[4] != "cloudformation" {
		problems = append(problems, fmt.Sprintf("credential scope %s/%s/%s/%s, want %s/%s/%s/cloudformation",
			m[1], m[2], m[3], m[4], creds.AccessKeyID, date[:8], testRegion))
	}
	signed := strings.Split(m[5], ";")
	if !contains(signed, "host") || !contains(signed, "x-amz-date") {
		problems = append(problems, fmt.Sprintf("SignedHeaders %s lack host or x-amz-date", m[5]))
	}
	if got := r.Header.Get("X-Amz-Security-Token"); got != creds.SessionToken {
		problems = append(problems, fmt.Sprintf("X-Amz-Security-Token %q, want %q", got, creds.SessionToken))
	} else if got != "" && !contains(signed, "x-amz-security-token") {
		problems = append(problems, fmt.Sprintf("SignedHeaders %s lack x-amz-security-token", m[5]))
	}
	if again := resign(r, body, signed, signedAt, creds); again != auth {
		problems = append(problems, fmt.Sprintf("signature does not verify:\n got  %s\n want %s", auth, again))
	}
	return problems
}

// resign signs a copy of the received request, made of its signed headers and its
// body, with the SDK's signer and creds, and returns its Authorization.
func resign(r *http.Request, body []byte, signed []string, at time.Time, creds aws.Credentials) string {
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	for _, h := range signed {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]),
		"cloudformation", testRegion, at); err != nil {
		return err.Error()
	}
	return req.Header.Get("Authorization")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// forwardProxy is an HTTP forward proxy that records the requests it gets and
// forwards all of them to target, whatever host they name.
type forwardProxy struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request // as received: absolute-form URL, Proxy-Authorization
}

func newForwardProxy(t *testing.T, target *url.URL) *forwardProxy {
	t.Helper()
	p := &forwardProxy{}
	forward := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the signed host
	}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Clone(context.Background()))
		p.mu.Unlock()
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request: "+r.RequestURI, http.StatusBadRequest)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// Requests returns what the proxy has received so far.
func (p *forwardProxy) Requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.requests...)
}
