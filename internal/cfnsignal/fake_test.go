package cfnsignal

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
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
	answerOK           answer = iota // 200: the stack's CreationPolicy waits
	answerThrottled                  // 400 Throttling, as CloudFormation throttles
	answerTooMany                    // a bare 429, as a proxy might
	answerServerError                // 500 InternalFailure
	answerNoStack                    // 400 ValidationError: the stack does not exist
	answerAccessDenied               // 403 AccessDenied
	answerSkewed                     // 403 SignatureDoesNotMatch, the server's clock an hour ahead
	answerHang                       // no answer until the client goes away
	answerComplete                   // 400 ValidationError: the stack is in CREATE_COMPLETE state
	answerNoResource                 // 400 ValidationError: no such resource in the stack
	answerResourceDone               // 400 ValidationError: the stack updates, the resource is in UPDATE_COMPLETE state
)

// serverSkew is how far ahead of the test's clock answerSkewed says the server's is.
const serverSkew = cfnsignaltest.ClockSkew

// faults are the answers the stand-in gives from its Script; the others come from
// the state of its stacks.
var faults = map[answer]cfnsignaltest.Fault{
	answerThrottled: cfnsignaltest.FaultThrottle, answerTooMany: cfnsignaltest.FaultTooMany,
	answerServerError: cfnsignaltest.FaultServerError, answerSkewed: cfnsignaltest.FaultSkew, answerHang: cfnsignaltest.FaultHang,
}

// testCreds are the credentials the fake expects unless told otherwise.
var testCreds = aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}

// fakeCFN is CloudFormation on loopback: the stand-in of package cfnsignaltest
// (stacks with their states, SigV4 signatures checked against testCreds unless Expect
// says other credentials, the region testRegion) behind an httptest server, checking
// that every request carries want's fields.
type fakeCFN struct {
	*httptest.Server
	cfn *cfnsignaltest.Server
}

// newFakeCFN answers the nth request with answers[n-1], the last one repeating: every
// answer but the last must be a transient fault (throttling, 5xx, 429, skew, hang),
// from the stand-in's Script; the last one, when it is not a fault, is the state of the
// stack that answers every request after the script: its CreationPolicy waits
// (answerOK), it is complete, it does not exist, the resource is not in it, or the
// instance's role is denied.
func newFakeCFN(t *testing.T, want Signal, answers ...answer) *fakeCFN {
	t.Helper()
	f := &fakeCFN{cfn: newStandIn(t, want, answers)}
	f.Server = httptest.NewServer(f.cfn)
	t.Cleanup(f.Close)
	return f
}

// newFakeCFNTLS is newFakeCFN over HTTPS, with httptest's self-signed certificate; it
// does not log the handshakes of clients that refuse it.
func newFakeCFNTLS(t *testing.T, want Signal, answers ...answer) *fakeCFN {
	t.Helper()
	f := &fakeCFN{cfn: newStandIn(t, want, answers)}
	f.Server = httptest.NewUnstartedServer(f.cfn)
	f.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// scriptLength is how many times a last answer that is a fault repeats: more than
// any test makes requests.
const scriptLength = 64

// newStandIn returns the stand-in that answers as answers say.
func newStandIn(t *testing.T, want Signal, answers []answer) *cfnsignaltest.Server {
	t.Helper()
	if len(answers) == 0 {
		t.Fatal("newFakeCFN: no answer given")
	}
	cfg := cfnsignaltest.Config{Region: testRegion, Credentials: []aws.Credentials{testCreds},
		// Count above any number of requests a test makes: the policy keeps waiting.
		Stacks: []cfnsignaltest.Stack{cfnsignaltest.Waiting(want.StackName, want.LogicalResourceID, scriptLength)}}
	last := answers[len(answers)-1]
	for i, a := range answers {
		f, isFault := faults[a]
		switch {
		case isFault && i == len(answers)-1:
			for range scriptLength - i {
				cfg.Script = append(cfg.Script, f)
			}
		case isFault:
			cfg.Script = append(cfg.Script, f)
		case i < len(answers)-1:
			t.Fatalf("newFakeCFN: answer %d of %d is not a fault: only the last may be the state's", i+1, len(answers))
		}
	}
	switch last {
	case answerNoStack:
		cfg.Stacks = nil
	case answerAccessDenied:
		cfg.Deny = []string{want.UniqueID}
	case answerComplete:
		cfg.Stacks = []cfnsignaltest.Stack{cfnsignaltest.Complete(want.StackName, want.LogicalResourceID)}
	case answerResourceDone:
		cfg.Stacks = []cfnsignaltest.Stack{{Name: want.StackName, Status: cfnsignaltest.UpdateInProgress, Resources: []cfnsignaltest.Resource{
			{LogicalID: want.LogicalResourceID, Status: cfnsignaltest.UpdateComplete},
			{LogicalID: "Service", Status: cfnsignaltest.UpdateInProgress},
		}}}
	case answerNoResource:
		cfg.Stacks = []cfnsignaltest.Stack{cfnsignaltest.Waiting(want.StackName, "SomeOtherResource", 1)}
	}
	s, err := cfnsignaltest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.OnRequest = func(r cfnsignaltest.Request) {
		for _, f := range []struct{ name, got, want string }{
			{"Action", r.Action, "SignalResource"}, {"StackName", r.StackName, want.StackName},
			{"LogicalResourceId", r.LogicalResourceID, want.LogicalResourceID},
			{"UniqueId", r.UniqueID, want.UniqueID}, {"Status", r.Status, string(want.Status)},
		} {
			if f.got != f.want {
				t.Errorf("fake CloudFormation: %s=%q, want %q", f.name, f.got, f.want)
			}
		}
		if r.Answer == "SignatureDoesNotMatch" && !strings.HasPrefix(r.Message, "Signature expired") ||
			r.Answer == "InvalidClientTokenId" || r.Answer == "IncompleteSignature" || r.Answer == "MissingAuthenticationToken" {
			t.Errorf("fake CloudFormation refused the signature: %s: %s", r.Answer, r.Message)
		}
	}
	return s
}

// Expect makes the fake require creds' signature (and session token) from now on.
func (f *fakeCFN) Expect(creds aws.Credentials) { f.cfn.SetCredentials(creds) }

// Requests returns what the fake has received so far.
func (f *fakeCFN) Requests() []cfnsignaltest.Request { return f.cfn.Requests() }

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
