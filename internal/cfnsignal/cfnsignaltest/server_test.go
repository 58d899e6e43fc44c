package cfnsignaltest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var creds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}

// reply is an answer as a client reads it.
type reply struct {
	status        int
	code, message string
	requestID     string
}

// signal sends one SignalResource signed with c (unsigned when c is nil) to s.
func signal(t *testing.T, s *Server, c *aws.Credentials, region string, form url.Values) reply {
	t.Helper()
	body := form.Encode()
	r := httptest.NewRequest(http.MethodPost, "http://cloudformation."+region+".amazonaws.com/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), *c, r, hex.EncodeToString(sum[:]), "cloudformation", region, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	raw, _ := io.ReadAll(w.Result().Body)
	rep := reply{status: w.Code}
	if w.Code == http.StatusOK {
		if !strings.Contains(string(raw), "<SignalResourceResponse") {
			t.Errorf("200 without a SignalResourceResponse: %s", raw)
		}
		return rep
	}
	if w.Header().Get("Content-Type") == "text/plain" {
		return rep
	}
	var doc errorDocument
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("answer %d is not an ErrorResponse: %v\n%s", w.Code, err, raw)
	}
	if doc.Error.Type == "" || doc.RequestID == "" || doc.XMLNS != xmlns {
		t.Errorf("ErrorResponse without Type, RequestId or namespace: %s", raw)
	}
	rep.code, rep.message, rep.requestID = doc.Error.Code, doc.Error.Message, doc.RequestID
	return rep
}

func form(stack, logicalID, uniqueID, status string) url.Values {
	return url.Values{"Action": {"SignalResource"}, "Version": {"2010-05-15"}, "StackName": {stack},
		"LogicalResourceId": {logicalID}, "UniqueId": {uniqueID}, "Status": {status}}
}

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expect checks an answer's status, code and message (a prefix).
func expect(t *testing.T, what string, got reply, status int, code, message string) {
	t.Helper()
	if got.status != status || got.code != code || !strings.HasPrefix(got.message, message) {
		t.Errorf("%s: %d %s %q, want %d %s %q", what, got.status, got.code, got.message, status, code, message)
	}
}

// A CreationPolicy with Count 2: counted once per UniqueId, complete at the second
// SUCCESS, and from then on the stack takes no signal.
func TestCreationPolicyCounts(t *testing.T) {
	s := newServer(t, Config{Stacks: []Stack{Waiting("prod", "ASG", 2)}})
	expect(t, "first", signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-1", "SUCCESS")), 200, "", "")
	expect(t, "same instance again", signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-1", "SUCCESS")), 200, "", "")
	st, _ := s.Stack("prod")
	if st.Status != CreateInProgress || st.Resources[0].Successes() != 1 {
		t.Fatalf("after one instance signalled twice: %+v, want still waiting with 1 signal", st)
	}
	expect(t, "second instance", signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-2", "SUCCESS")), 200, "", "")
	st, _ = s.Stack("prod")
	if st.Status != CreateComplete || st.Resources[0].Status != CreateComplete {
		t.Fatalf("after Count signals: %+v, want CREATE_COMPLETE", st)
	}
	got := signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-3", "SUCCESS"))
	expect(t, "after completion", got, 400, "ValidationError", "Stack "+st.ID+" is in CREATE_COMPLETE state and cannot be signaled")
	// By its ARN too.
	got = signal(t, s, &creds, "us-east-1", form(st.ID, "ASG", "i-3", "SUCCESS"))
	expect(t, "by ARN after completion", got, 400, "ValidationError", "Stack "+st.ID+" is in CREATE_COMPLETE state")
}

func TestFailureRollsBack(t *testing.T) {
	s := newServer(t, Config{Stacks: []Stack{Waiting("prod", "ASG", 3)}})
	expect(t, "failure", signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-1", "FAILURE")), 200, "", "")
	st, _ := s.Stack("prod")
	if st.Status != RollbackComplete || st.Resources[0].Status != CreateFailed {
		t.Fatalf("after a FAILURE: %+v", st)
	}
	expect(t, "after the rollback", signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-2", "SUCCESS")),
		400, "ValidationError", "Stack "+st.ID+" is in ROLLBACK_COMPLETE state and cannot be signaled")
}

func TestRefusals(t *testing.T) {
	updating := Stack{Name: "upd", Status: UpdateInProgress, Resources: []Resource{
		{LogicalID: "ASG", Status: UpdateComplete}, {LogicalID: "Svc", Status: UpdateInProgress, Count: 1},
	}}
	deleted := Stack{Name: "gone", ID: "arn:aws:cloudformation:us-east-1:123456789012:stack/gone/1", Status: DeleteComplete}
	s := newServer(t, Config{Region: "us-east-1", Stacks: []Stack{Complete("done", "ASG"), updating, deleted, Waiting("prod", "ASG", 5)},
		Deny: []string{"i-denied"}, Credentials: []aws.Credentials{creds}})
	other := aws.Credentials{AccessKeyID: "AKIDOTHER", SecretAccessKey: "x"}
	wrongSecret := aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: "not it"}
	for _, tc := range []struct {
		name          string
		creds         *aws.Credentials
		region        string
		form          url.Values
		status        int
		code, message string
	}{
		{"no such stack", &creds, "us-east-1", form("nope", "ASG", "i-1", "SUCCESS"), 400, "ValidationError", "Stack with id nope does not exist"},
		{"deleted stack by name", &creds, "us-east-1", form("gone", "ASG", "i-1", "SUCCESS"), 400, "ValidationError", "Stack with id gone does not exist"},
		{"deleted stack by ARN", &creds, "us-east-1", form(deleted.ID, "ASG", "i-1", "SUCCESS"), 400, "ValidationError", "Stack " + deleted.ID + " is in DELETE_COMPLETE state and cannot be signaled"},
		{"resource not waiting", &creds, "us-east-1", form("upd", "ASG", "i-1", "SUCCESS"), 400, "ValidationError", "Resource ASG is in UPDATE_COMPLETE state and cannot be signaled"},
		{"unknown resource", &creds, "us-east-1", form("prod", "Nope", "i-1", "SUCCESS"), 400, "ValidationError", "Resource Nope does not exist for stack prod"},
		{"denied", &creds, "us-east-1", form("prod", "ASG", "i-denied", "SUCCESS"), 403, "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/ecs-instance-role/i-denied is not authorized to perform: cloudformation:SignalResource on resource: arn:aws:cloudformation:us-east-1:123456789012:stack/prod/"},
		{"bad status", &creds, "us-east-1", form("prod", "ASG", "i-1", "MAYBE"), 400, "ValidationError", "1 validation error detected: Value 'MAYBE' at 'status'"},
		{"no unique id", &creds, "us-east-1", form("prod", "ASG", "", "SUCCESS"), 400, "ValidationError", "1 validation error detected: Value null at 'uniqueId'"},
		{"other action", &creds, "us-east-1", url.Values{"Action": {"DescribeStacks"}, "Version": {"2010-05-15"}}, 400, "InvalidAction", "Could not find operation DescribeStacks"},
		{"unsigned", nil, "us-east-1", form("prod", "ASG", "i-1", "SUCCESS"), 403, "MissingAuthenticationToken", ""},
		{"unknown key", &other, "us-east-1", form("prod", "ASG", "i-1", "SUCCESS"), 403, "InvalidClientTokenId", ""},
		{"wrong secret", &wrongSecret, "us-east-1", form("prod", "ASG", "i-1", "SUCCESS"), 403, "SignatureDoesNotMatch", "The request signature we calculated"},
		{"other region", &creds, "eu-west-1", form("prod", "ASG", "i-1", "SUCCESS"), 403, "SignatureDoesNotMatch", "Credential should be scoped to a valid region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, tc.name, signal(t, s, tc.creds, tc.region, tc.form), tc.status, tc.code, tc.message)
		})
	}
	if st, _ := s.Stack("prod"); len(st.Resources[0].Signals) != 0 {
		t.Errorf("refused requests were counted: %+v", st.Resources[0].Signals)
	}
	if n := len(s.Requests()); n != 13 {
		t.Errorf("%d requests recorded, want 13", n)
	}
}

// The account-wide rate: Burst requests pass at once, the next is throttled; with no
// time passing (a rate of one request an hour) nothing refills.
func TestThrottling(t *testing.T) {
	s := newServer(t, Config{Stacks: []Stack{Waiting("prod", "ASG", 10)}, Rate: 1.0 / 3600, Burst: 2})
	for i, want := range []string{"", "", "Throttling", "Throttling"} {
		got := signal(t, s, &creds, "us-east-1", form("prod", "ASG", "i-"+string(rune('a'+i)), "SUCCESS"))
		if want == "" {
			expect(t, "within the burst", got, 200, "", "")
		} else {
			expect(t, "over the rate", got, 400, want, "Rate exceeded")
		}
	}
	if st, _ := s.Stack("prod"); st.Resources[0].Successes() != 2 {
		t.Errorf("throttled signals were counted: %+v", st.Resources[0].Signals)
	}
}

func TestTokenBucketRefills(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newTokenBucket(10, 2, t0)
	got := []bool{b.take(t0), b.take(t0), b.take(t0), b.take(t0.Add(50 * time.Millisecond)), b.take(t0.Add(100 * time.Millisecond)),
		b.take(t0.Add(time.Hour)), b.take(t0.Add(time.Hour)), b.take(t0.Add(time.Hour))}
	want := []bool{true, true, false, false, true, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("takes %v, want %v", got, want)
		}
	}
	unlimited := newTokenBucket(0, 0, t0)
	for range 1000 {
		if !unlimited.take(t0) {
			t.Fatal("rate 0 throttled")
		}
	}
}

func TestScript(t *testing.T) {
	s := newServer(t, Config{Stacks: []Stack{Waiting("prod", "ASG", 10)},
		Script: []Fault{FaultThrottle, FaultServerError, FaultNone, FaultTooMany, FaultSkew}})
	f := form("prod", "ASG", "i-1", "SUCCESS")
	expect(t, "1", signal(t, s, &creds, "us-east-1", f), 400, "Throttling", "Rate exceeded")
	expect(t, "2", signal(t, s, &creds, "us-east-1", f), 500, "InternalFailure", "")
	expect(t, "3", signal(t, s, &creds, "us-east-1", f), 200, "", "")
	if got := signal(t, s, &creds, "us-east-1", f); got.status != 429 {
		t.Errorf("4: %d, want a bare 429", got.status)
	}
	expect(t, "5", signal(t, s, &creds, "us-east-1", f), 403, "SignatureDoesNotMatch", "Signature expired")
	expect(t, "6", signal(t, s, &creds, "us-east-1", f), 200, "", "")
	var answers []string
	for _, r := range s.Requests() {
		answers = append(answers, r.Answer)
	}
	if got := strings.Join(answers, ","); got != "Throttling,InternalFailure,OK,HTTP 429,SignatureDoesNotMatch,OK" {
		t.Errorf("recorded answers %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Stacks: []Stack{{Name: "x"}}},
		{Stacks: []Stack{{Name: "x", Status: CreateInProgress, Resources: []Resource{{LogicalID: "A"}}}}},
		{Rate: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
