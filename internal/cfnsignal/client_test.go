package cfnsignal

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/firstrun/firstrun/internal/backoff"
)

var testSignal = Signal{
	StackName:         "ecs-cluster-stack",
	LogicalResourceID: "ECSAutoScalingGroup",
	UniqueID:          "i-0123456789abcdef0",
	Status:            Success,
	Reason:            "never sent",
}

// newTestClient returns a Client of the fake with a small backoff.
func newTestClient(t *testing.T, o Options) *Client {
	t.Helper()
	o.Region = testRegion
	if o.MaxBackoff == 0 {
		o.MaxBackoff = time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second // only a hang would reach it
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// kinds are the sentinel errors a Send error may wrap.
var kinds = []error{ErrInvalid, ErrNotAwaited, ErrPermanent, ErrRetriesExhausted, ErrTimeout}

// checkKind fails t unless err wraps want and no other kind (want nil: none).
func checkKind(t *testing.T, err, want error) {
	t.Helper()
	for _, k := range kinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(err, %q) = %v, want %v; err: %v", k, got, !got, err)
		}
	}
}

func TestSend(t *testing.T) {
	cases := []struct {
		name        string
		status      Status
		maxAttempts int
		answers     []answer
		wantErr     error  // the kind; nil with wantCode "" for success
		wantCode    string // the API error's code
	}{
		{name: "success", answers: []answer{answerOK}},
		{name: "failure status", status: Failure, answers: []answer{answerOK}},
		{name: "throttled twice then success", answers: []answer{answerThrottled, answerThrottled, answerOK}},
		{name: "server error then success", answers: []answer{answerServerError, answerOK}},
		{name: "bare 429 then success", answers: []answer{answerTooMany, answerOK}},
		{name: "clock skew then success", answers: []answer{answerSkewed, answerOK}},
		{name: "stack does not exist", answers: []answer{answerNoStack},
			wantErr: ErrNotAwaited, wantCode: "ValidationError"},
		{name: "stack complete", answers: []answer{answerComplete},
			wantErr: ErrNotAwaited, wantCode: "ValidationError"},
		{name: "throttled then stack complete", answers: []answer{answerThrottled, answerComplete},
			wantErr: ErrNotAwaited, wantCode: "ValidationError"},
		{name: "resource not in the stack", answers: []answer{answerNoResource},
			wantErr: ErrPermanent, wantCode: "ValidationError"},
		{name: "access denied", answers: []answer{answerAccessDenied},
			wantErr: ErrPermanent, wantCode: "AccessDenied"},
		{name: "throttled then access denied", answers: []answer{answerThrottled, answerAccessDenied},
			wantErr: ErrPermanent, wantCode: "AccessDenied"},
		{name: "throttled until retries run out", maxAttempts: 3, answers: []answer{answerThrottled},
			wantErr: ErrRetriesExhausted, wantCode: "Throttling"},
		{name: "server errors until retries run out", maxAttempts: 4, answers: []answer{answerServerError},
			wantErr: ErrRetriesExhausted, wantCode: "InternalFailure"},
		{name: "no count by default: ten throttled attempts then success", answers: []answer{
			answerThrottled, answerThrottled, answerThrottled, answerThrottled, answerThrottled,
			answerThrottled, answerThrottled, answerThrottled, answerThrottled, answerOK}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			s := testSignal
			if tc.status != "" {
				s.Status = tc.status
			}
			fake := newFakeCFN(t, s, tc.answers...)
			c := newTestClient(t, Options{Endpoint: fake.URL, MaxAttempts: tc.maxAttempts})

			err := c.Send(context.Background(), s)

			maxAttempts := tc.maxAttempts
			if maxAttempts == 0 {
				maxAttempts = unboundedAttempts
			}
			wantRequests := min(len(tc.answers), maxAttempts)
			if tc.wantErr == ErrRetriesExhausted {
				wantRequests = maxAttempts
			}
			reqs := fake.Requests()
			if len(reqs) != wantRequests {
				t.Errorf("%d requests, want %d", len(reqs), wantRequests)
			}
			for i, r := range reqs {
				// "; ttl=..." follows once the SDK has measured the server's clock.
				want := fmt.Sprintf("attempt=%d; max=%d", i+1, maxAttempts)
				if r.SDKRequest != want && !strings.HasPrefix(r.SDKRequest, want+"; ") {
					t.Errorf("request %d: amz-sdk-request %q, want %q", i+1, r.SDKRequest, want)
				}
			}

			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			checkKind(t, err, tc.wantErr)
			if got := Attempts(err); got != wantRequests {
				t.Errorf("Attempts = %d, want %d", got, wantRequests)
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
				t.Errorf("API error %v, want code %s", apiErr, tc.wantCode)
			}
			for _, part := range []string{"CloudFormation signal SUCCESS", testSignal.StackName,
				testSignal.LogicalResourceID, testSignal.UniqueID, "not sent", tc.wantErr.Error(), tc.wantCode} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if strings.Contains(err.Error(), testSignal.Reason) {
				t.Errorf("error %q carries the Reason", err)
			}
		})
	}
}

// Each refusal says what it means: nobody waits for the signal (a stack or resource
// whose policy no longer waits, a stack that does not exist), or what to fix.
func TestSendRefusalsSay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  answer
		kind    error
		message *regexp.Regexp // CloudFormation's, as Message returns it
		says    string         // what the error says beyond it
	}{
		{"stack complete", answerComplete, ErrNotAwaited,
			regexp.MustCompile(`^Stack arn:aws:cloudformation:eu-west-3:\d{12}:stack/ecs-cluster-stack/[-0-9a-f]+ is in CREATE_COMPLETE state and cannot be signaled$`),
			"nobody waits for this signal"},
		{"resource complete", answerResourceDone, ErrNotAwaited,
			regexp.MustCompile(`^Resource ECSAutoScalingGroup is in UPDATE_COMPLETE state and cannot be signaled$`),
			"nobody waits for this signal"},
		{"stack does not exist", answerNoStack, ErrNotAwaited,
			regexp.MustCompile(`^Stack with id ecs-cluster-stack does not exist$`),
			"nobody waits for this signal"},
		{"resource not in the stack", answerNoResource, ErrPermanent,
			regexp.MustCompile(`^Resource ECSAutoScalingGroup does not exist for stack ecs-cluster-stack$`),
			`resource "ECSAutoScalingGroup" is not in stack "ecs-cluster-stack": a wrong logical id`},
		{"access denied", answerAccessDenied, ErrPermanent,
			regexp.MustCompile(`^User: arn:aws:sts::\d{12}:assumed-role/.* is not authorized to perform: cloudformation:SignalResource`),
			"the instance role lacks cloudformation:SignalResource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			fake := newFakeCFN(t, testSignal, tc.answer)
			c := newTestClient(t, Options{Endpoint: fake.URL})
			err := c.Send(context.Background(), testSignal)
			checkKind(t, err, tc.kind)
			if !tc.message.MatchString(Message(err)) {
				t.Errorf("Message = %q, want %s", Message(err), tc.message)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "after 1 attempt (") {
				t.Errorf("Send: %v, want an error saying %q after 1 attempt", err, tc.says)
			}
			if n := len(fake.Requests()); n != 1 {
				t.Errorf("%d requests, want 1: a refusal is never retried", n)
			}
		})
	}
}

func TestMessageOfOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("other"), context.Canceled} {
		if m := Message(err); m != "" {
			t.Errorf("Message(%v) = %q, want none", err, m)
		}
	}
}

func TestSendHangIsBoundedByTimeout(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerHang)
	c := newTestClient(t, Options{Endpoint: fake.URL, Timeout: 300 * time.Millisecond})

	start := time.Now()
	err := c.Send(context.Background(), testSignal)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Send took %v with a 300ms Timeout", took)
	}
	checkKind(t, err, ErrTimeout)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded: %v", err)
	}
	if n := len(fake.Requests()); n != 1 || Attempts(err) != 1 {
		t.Errorf("%d requests, Attempts %d; want 1 and 1", n, Attempts(err))
	}
}

func TestSendCallerDeadline(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerHang)
	c := newTestClient(t, Options{Endpoint: fake.URL}) // Timeout 30s
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Send(ctx, testSignal)
	checkKind(t, err, ErrTimeout)
}

func TestSendCancelled(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerOK)
	c := newTestClient(t, Options{Endpoint: fake.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := c.Send(ctx, testSignal)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send: %v, want context.Canceled", err)
	}
	checkKind(t, err, nil)
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests after cancellation", n)
	}
}

func TestSendInvalidSignalMakesNoRequest(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerOK)
	c := newTestClient(t, Options{Endpoint: fake.URL})
	bad := testSignal
	bad.UniqueID = ""
	err := c.Send(context.Background(), bad)
	checkKind(t, err, ErrInvalid)
	if !strings.Contains(err.Error(), "UniqueID is empty") || Attempts(err) != 0 {
		t.Errorf("Send: %v (Attempts %d), want UniqueID named and no attempt", err, Attempts(err))
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests for an invalid signal", n)
	}
}

func TestSendThroughProxy(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerThrottled, answerOK)
	target, _ := url.Parse(fake.URL)
	proxy := newForwardProxy(t, target)
	proxyURL, _ := url.Parse(proxy.URL)
	proxyURL.User = url.UserPassword("squid", "s3cret")
	// Only the proxy can reach this host: it resolves nowhere.
	const endpoint = "http://cloudformation." + testRegion + ".test.invalid"
	c := newTestClient(t, Options{Endpoint: endpoint, Proxy: proxyURL})

	if err := c.Send(context.Background(), testSignal); err != nil {
		t.Fatalf("Send through the proxy: %v", err)
	}
	preqs := proxy.Requests()
	if len(preqs) != 2 {
		t.Fatalf("the proxy got %d requests, want 2 (throttled, then success)", len(preqs))
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("squid:s3cret"))
	for i, r := range preqs {
		if r.Method != http.MethodPost || r.RequestURI != endpoint+"/" {
			t.Errorf("proxy request %d: %s %s, want POST %s/ in absolute form", i+1, r.Method, r.RequestURI, endpoint)
		}
		if got := r.Header.Get("Proxy-Authorization"); got != wantAuth {
			t.Errorf("proxy request %d: Proxy-Authorization %q, want %q", i+1, got, wantAuth)
		}
	}
	for i, r := range fake.Requests() {
		if want := strings.TrimPrefix(endpoint, "http://"); r.Host != want {
			t.Errorf("CloudFormation request %d: Host %q, want %q", i+1, r.Host, want)
		}
	}
}

// The transport the SDK uses is the one with the proxy function.
func TestClientTransportProxy(t *testing.T) {
	isolateAWS(t)
	proxy, _ := url.Parse("http://proxy.example:3128")
	cfn, _ := http.NewRequest(http.MethodPost, "https://cloudformation.us-east-1.amazonaws.com/", nil)
	imds, _ := http.NewRequest(http.MethodGet, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", nil)
	for _, tc := range []struct {
		name    string
		proxy   *url.URL
		req     *http.Request
		wantVia *url.URL
	}{
		{"proxy, CloudFormation", proxy, cfn, proxy},
		{"proxy, IMDS", proxy, imds, nil},
		{"no proxy, CloudFormation", nil, cfn, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HTTPS_PROXY", "http://from-the-environment.example:8080")
			c := newTestClient(t, Options{Proxy: tc.proxy})
			got, err := c.http.GetTransport().Proxy(tc.req)
			if err != nil || got != tc.wantVia {
				t.Errorf("Proxy(%s) = %v, %v; want %v", tc.req.URL, got, err, tc.wantVia)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	isolateAWS(t)
	cases := []struct {
		name string
		o    Options
		want []string // what the error names; none: valid
	}{
		{"minimal", Options{Region: "us-east-1"}, nil},
		{"all set", Options{Region: "us-east-1", Proxy: &url.URL{Scheme: "http", Host: "proxy:3128"},
			Endpoint: "https://cloudformation.us-east-1.amazonaws.com", MaxAttempts: 2, MaxBackoff: time.Second, Timeout: time.Minute}, nil},
		{"no region", Options{}, []string{"Region is empty"}},
		{"negative", Options{Region: "us-east-1", MaxAttempts: -1, MaxBackoff: -1, Timeout: -1},
			[]string{"MaxAttempts is negative", "MaxBackoff is negative", "Timeout is negative"}},
		{"proxy without scheme", Options{Region: "us-east-1", Proxy: &url.URL{Path: "proxy:3128"}}, []string{"Proxy"}},
		{"proxy password hidden", Options{Region: "us-east-1",
			Proxy: &url.URL{Scheme: "socks5", Host: "p:1080", User: url.UserPassword("u", "hunter2")}}, []string{"Proxy", "u:xxxxx@"}},
		{"endpoint without scheme", Options{Region: "us-east-1", Endpoint: "cloudformation.example"}, []string{"Endpoint"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(context.Background(), tc.o)
			if len(tc.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %+v", tc.o)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the proxy password", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	o, err := Options{Region: "us-east-1"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxAttempts != unboundedAttempts || o.BaseBackoff != time.Second || o.MaxBackoff != 20*time.Second || o.Timeout != DefaultTimeout {
		t.Errorf("defaults %d, %v, %v, %v; want no count, 1s, 20s, %v", o.MaxAttempts, o.BaseBackoff, o.MaxBackoff, o.Timeout, DefaultTimeout)
	}
}

// AWS_MAX_ATTEMPTS and AWS_RETRY_MODE configure the SDK's own retryer: they change
// neither MaxAttempts nor the backoff of a Client.
func TestSendIgnoresRetryEnvironment(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("AWS_RETRY_MODE", "adaptive")
	fake := newFakeCFN(t, testSignal, answerThrottled, answerOK)
	c := newTestClient(t, Options{Endpoint: fake.URL, MaxAttempts: 3})
	if err := c.Send(context.Background(), testSignal); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// At first boot the clock may be wrong until chrony has synchronised it: the SDK
// retries a SignatureDoesNotMatch whose answer's Date is minutes away, signing the
// retry with the server's time.
func TestSendCorrectsClockSkew(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerSkewed, answerOK)
	c := newTestClient(t, Options{Endpoint: fake.URL})
	if err := c.Send(context.Background(), testSignal); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	first, err1 := time.Parse("20060102T150405Z", reqs[0].AmzDate)
	second, err2 := time.Parse("20060102T150405Z", reqs[1].AmzDate)
	if err1 != nil || err2 != nil {
		t.Fatalf("X-Amz-Date: %v, %v", err1, err2)
	}
	if ahead := second.Sub(first); ahead < serverSkew-5*time.Minute {
		t.Errorf("the retry was signed %v after the first request, want about %v", ahead, serverSkew)
	}
}

// What the retryer does with each kind of answer, as the SDK shapes its errors.
func TestRetryerClassification(t *testing.T) {
	isolateAWS(t)
	c := newTestClient(t, Options{})
	answer := func(status int, code string) error {
		return &awshttp.ResponseError{RequestID: "r", ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
		}}
	}
	cases := []struct {
		status    int
		code      string
		retryable bool
	}{
		{400, "Throttling", true},
		{400, "ThrottlingException", true},
		{400, "RequestLimitExceeded", true},
		{429, "UnknownError", true},
		{500, "InternalFailure", true},
		{502, "UnknownError", true},
		{503, "ServiceUnavailable", true},
		{504, "UnknownError", true},
		{501, "UnknownError", false},
		{400, "ValidationError", false},
		{403, "AccessDenied", false},
		{403, "InvalidClientTokenId", false},
		{403, "SignatureDoesNotMatch", false}, // unless the Date shows clock skew
		{400, "ExpiredToken", false},
	}
	for _, tc := range cases {
		if got := c.retryer.IsErrorRetryable(answer(tc.status, tc.code)); got != tc.retryable {
			t.Errorf("HTTP %d %s: retryable %v, want %v", tc.status, tc.code, got, tc.retryable)
		}
	}
}

func TestBackoffIsCapped(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "Throttling"}
	for _, mode := range []string{"", "true"} {
		t.Run("AWS_NEW_RETRIES_2026="+mode, func(t *testing.T) {
			isolateAWS(t)
			t.Setenv("AWS_NEW_RETRIES_2026", mode)
			c := newTestClient(t, Options{MaxBackoff: 3 * time.Second})
			for attempt := 1; attempt <= 10; attempt++ {
				for range 20 {
					d, err := c.retryer.RetryDelay(attempt, throttled)
					if err != nil || d < 0 || d > 3*time.Second {
						t.Fatalf("attempt %d: delay %v, %v; want within [0, 3s]", attempt, d, err)
					}
				}
			}
		})
	}
}

// The wait after attempt n is uniform in [0, min(cap, base·2^n)): the ceiling doubles
// from 2·base, stops at the cap, never overflows, and the wait goes down to zero.
func TestFullJitter(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0.5, time.Second}, {2, 0.5, 2 * time.Second}, {4, 0.5, 8 * time.Second},
		{5, 0.5, 10 * time.Second}, {6, 0.5, 10 * time.Second}, {100, 0.5, 10 * time.Second},
		{3, 0, 0}, {4, 0.999, 15984 * time.Millisecond}, {30, 0.999, 19980 * time.Millisecond},
	} {
		j := backoff.FullJitter{Base: time.Second, Cap: 20 * time.Second, Rand: func() float64 { return tc.r }}
		if got, err := j.BackoffDelay(tc.attempt, nil); err != nil || got != tc.want {
			t.Errorf("attempt %d, random %v: %v, %v; want %v", tc.attempt, tc.r, got, err, tc.want)
		}
	}
}

// With no count of attempts, the time budget ends the retries, and the error says
// what the last answer was.
func TestSendRetriesUntilTheBudget(t *testing.T) {
	isolateAWS(t)
	fake := newFakeCFN(t, testSignal, answerThrottled)
	c := newTestClient(t, Options{Endpoint: fake.URL, BaseBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Timeout: 300 * time.Millisecond})
	err := c.Send(context.Background(), testSignal)
	checkKind(t, err, ErrTimeout)
	if n := len(fake.Requests()); n < 2 || Attempts(err) != n {
		t.Errorf("%d requests, Attempts %d: want several, the same", n, Attempts(err))
	}
	if !strings.Contains(err.Error(), "Throttling") {
		t.Errorf("error %q does not say the last answer", err)
	}
}
