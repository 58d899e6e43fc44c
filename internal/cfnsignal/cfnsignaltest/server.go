package cfnsignaltest

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/firstrun/firstrun/internal/sigv4test"
)

// Fault is a transient failure a Script makes the stand-in answer with.
type Fault string

// The faults a Script may hold.
const (
	// FaultNone answers from the state.
	FaultNone Fault = ""
	// FaultThrottle answers 400 Throttling "Rate exceeded", as the account's rate
	// limit does.
	FaultThrottle Fault = "throttle"
	// FaultServerError answers 500 InternalFailure.
	FaultServerError Fault = "server-error"
	// FaultTooMany answers a bare 429, as a proxy might.
	FaultTooMany Fault = "too-many"
	// FaultSkew answers 403 SignatureDoesNotMatch "Signature expired" with a Date
	// header ClockSkew ahead of the caller's clock, as when the instance's clock is
	// wrong at first boot.
	FaultSkew Fault = "skew"
	// FaultHang answers nothing until the client goes away.
	FaultHang Fault = "hang"
)

// ClockSkew is how far ahead of the request's signing time FaultSkew says the
// server's clock is.
const ClockSkew = time.Hour

// Request is what the stand-in saw of one request and how it answered.
type Request struct {
	Action            string `json:"action"`
	StackName         string `json:"stack_name"`
	LogicalResourceID string `json:"logical_resource_id"`
	UniqueID          string `json:"unique_id"`
	Status            string `json:"status"`
	// SigV4 is whether the Authorization header is a SigV4 one for cloudformation.
	SigV4 bool `json:"sigv4"`
	// Answer is the error code answered, "OK", "HTTP 429" for a bare status or
	// "(no answer)".
	Answer string `json:"answer"`
	// Message is the error message answered, "" for OK.
	Message string `json:"message,omitempty"`

	// What the client's retries and signing can be checked with.
	Host          string `json:"-"` // the Host header
	SDKRequest    string `json:"-"` // amz-sdk-request: "attempt=N; max=M"
	AmzDate       string `json:"-"` // X-Amz-Date, the signing time
	AccessKeyID   string `json:"-"` // the Authorization's Credential=, "" when not SigV4
	SecurityToken string `json:"-"` // X-Amz-Security-Token
}

// Server is the stand-in, an http.Handler for CloudFormation's Query API endpoint.
// It is safe for concurrent use.
type Server struct {
	// OnRequest, when set before the first request, is called with each request's
	// record once it is answered (a FaultHang one when the client has gone).
	OnRequest func(Request)

	mu          sync.Mutex
	cfg         Config
	bucket      tokenBucket
	requests    []Request
	inFlight    int
	maxInFlight int
}

// New returns a stand-in holding cfg's stacks.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("cfnsignaltest: %w", err)
	}
	return &Server{cfg: cfg, bucket: newTokenBucket(cfg.Rate, cfg.Burst, time.Now())}, nil
}

// Requests returns the records of the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// MaxInFlight returns the most requests the stand-in was handling at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Stack returns the stack named name (or with that ARN) as it is now.
func (s *Server) Stack(name string) (Stack, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.find(name, true)
	if st == nil {
		return Stack{}, false
	}
	c := *st
	c.Resources = slices.Clone(st.Resources)
	for i, r := range c.Resources {
		sig := make(map[string]string, len(r.Signals))
		for k, v := range r.Signals {
			sig[k] = v
		}
		c.Resources[i].Signals = sig
	}
	return c, true
}

// find returns the stack named name, or whose ARN is name. A deleted stack is found by
// its ARN only, as CloudFormation finds it (by name it no longer exists). Call with
// s.mu held.
func (s *Server) find(name string, byNameToo bool) *Stack {
	for i := range s.cfg.Stacks {
		st := &s.cfg.Stacks[i]
		if st.ID == name || (byNameToo && st.Name == name && st.Status != DeleteComplete) {
			return st
		}
	}
	return nil
}

// answer is what ServeHTTP answers.
type answer struct {
	status  int    // HTTP status
	code    string // error code; "" for success
	message string
	header  http.Header
	hang    bool
	raw     string // a body that is not an error document (a proxy's 429)
}

func ok() answer { return answer{status: http.StatusOK} }

func fail(status int, code, format string, a ...any) answer {
	return answer{status: status, code: code, message: fmt.Sprintf(format, a...)}
}

// ServeHTTP answers one Query API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	form, perr := url.ParseQuery(string(body))
	if err != nil || perr != nil {
		form = url.Values{}
	}
	rec := Request{
		Action: form.Get("Action"), StackName: form.Get("StackName"), LogicalResourceID: form.Get("LogicalResourceId"),
		UniqueID: form.Get("UniqueId"), Status: form.Get("Status"),
		Host: r.Host, SDKRequest: r.Header.Get("Amz-Sdk-Request"), AmzDate: r.Header.Get("X-Amz-Date"),
		SecurityToken: r.Header.Get("X-Amz-Security-Token"),
	}
	auth := sigv4test.Parse(r.Header.Get("Authorization"))
	rec.SigV4 = auth != nil && auth.Service == "cloudformation" && rec.AmzDate != ""
	if auth != nil {
		rec.AccessKeyID = auth.AccessKeyID
	}

	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	n := len(s.requests) + 1
	s.requests = append(s.requests, Request{}) // its place; filled in below
	var a answer
	switch {
	case n <= len(s.cfg.Script) && s.cfg.Script[n-1] != FaultNone:
		a = scripted(s.cfg.Script[n-1], rec)
	case err != nil || perr != nil:
		a = fail(http.StatusBadRequest, "MalformedQueryString", "the body is not a form: %v", errorsJoin(err, perr))
	default:
		a = s.answer(r, body, form, auth, rec)
	}
	s.mu.Unlock()

	if a.hang {
		<-r.Context().Done()
	}
	requestID := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	rec.Answer, rec.Message = "OK", a.message
	if a.code != "" {
		rec.Answer = a.code
	}
	if a.raw != "" {
		rec.Answer = fmt.Sprintf("HTTP %d", a.status)
	}
	if a.hang {
		rec.Answer = "(no answer)"
	}
	s.mu.Lock()
	s.requests[n-1] = rec
	s.inFlight--
	s.mu.Unlock()
	if s.OnRequest != nil {
		s.OnRequest(rec)
	}
	if a.hang {
		return
	}
	write(w, a, requestID)
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// scripted answers with a fault.
func scripted(f Fault, rec Request) answer {
	switch f {
	case FaultThrottle:
		return fail(http.StatusBadRequest, "Throttling", "Rate exceeded")
	case FaultServerError:
		return fail(http.StatusInternalServerError, "InternalFailure", "We encountered an internal error. Please try again.")
	case FaultTooMany:
		return answer{status: http.StatusTooManyRequests, raw: "Too Many Requests\n"}
	case FaultSkew:
		signed, err := time.Parse("20060102T150405Z", rec.AmzDate)
		if err != nil {
			signed = time.Now()
		}
		a := fail(http.StatusForbidden, "SignatureDoesNotMatch",
			"Signature expired: %s is now earlier than %s (%s - 15 min.)", rec.AmzDate,
			signed.Add(ClockSkew-15*time.Minute).UTC().Format("20060102T150405Z"), signed.Add(ClockSkew).UTC().Format("20060102T150405Z"))
		a.header = http.Header{"Date": {signed.Add(ClockSkew).UTC().Format(http.TimeFormat)}}
		return a
	case FaultHang:
		return answer{hang: true}
	}
	return fail(http.StatusInternalServerError, "InternalFailure", "cfnsignaltest: unknown fault %q", f)
}

// uniqueIDPattern: SignalResource's UniqueId, 1 to 64 characters.
const uniqueIDMax = 64

// stackNamePattern is SignalResource's StackName pattern (API Reference).
var stackNamePattern = regexp.MustCompile(`^(?:[a-zA-Z][-a-zA-Z0-9]*|arn:\b(?:aws|aws-us-gov|aws-cn)\b:[-a-zA-Z0-9:/._+]*)$`)

// answer decides the answer to a well-formed form from the state. Call with s.mu held.
func (s *Server) answer(r *http.Request, body []byte, form url.Values, auth *sigv4test.Auth, rec Request) answer {
	if r.Method != http.MethodPost {
		return fail(http.StatusBadRequest, "InvalidAction", "%s is not supported: the Query API takes a POST form here", r.Method)
	}
	switch {
	case rec.Action == "":
		return fail(http.StatusBadRequest, "MissingAction", "Missing Action")
	case rec.Action != "SignalResource":
		return fail(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", rec.Action, form.Get("Version"))
	case form.Get("Version") != "2010-05-15":
		return fail(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", rec.Action, form.Get("Version"))
	}
	if a, bad := s.authenticate(r, body, auth, rec); bad {
		return a
	}
	if msg := validate(rec); msg != "" {
		return fail(http.StatusBadRequest, "ValidationError", "%s", msg)
	}
	if !s.bucket.take(time.Now()) {
		return fail(http.StatusBadRequest, "Throttling", "Rate exceeded")
	}
	st := s.find(rec.StackName, true)
	if s.denied(rec.UniqueID) {
		arn := fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/*", s.region(), s.cfg.Account, rec.StackName)
		if st != nil {
			arn = st.ID
		}
		return fail(http.StatusForbidden, "AccessDenied",
			"User: arn:aws:sts::%s:assumed-role/ecs-instance-role/%s is not authorized to perform: cloudformation:SignalResource on resource: %s because no identity-based policy allows the cloudformation:SignalResource action",
			s.cfg.Account, rec.UniqueID, arn)
	}
	if st == nil {
		return fail(http.StatusBadRequest, "ValidationError", "Stack with id %s does not exist", rec.StackName)
	}
	if !strings.HasSuffix(st.Status, inProgressSuffix) {
		return fail(http.StatusBadRequest, "ValidationError", "Stack %s is in %s state and cannot be signaled", st.ID, st.Status)
	}
	i := slices.IndexFunc(st.Resources, func(x Resource) bool { return x.LogicalID == rec.LogicalResourceID })
	if i < 0 {
		return fail(http.StatusBadRequest, "ValidationError", "Resource %s does not exist for stack %s", rec.LogicalResourceID, st.Name)
	}
	res := &st.Resources[i]
	if !res.Waiting() {
		return fail(http.StatusBadRequest, "ValidationError", "Resource %s is in %s state and cannot be signaled", res.LogicalID, res.Status)
	}
	if _, seen := res.Signals[rec.UniqueID]; !seen { // one signal a UniqueId
		res.Signals[rec.UniqueID] = rec.Status
	}
	switch {
	case rec.Status == "FAILURE":
		res.Status = failed(res.Status)
		st.Status = rolledBack(st.Status)
	case res.Successes() >= res.Count:
		res.Status = completed(res.Status)
		if !slices.ContainsFunc(st.Resources, func(x Resource) bool { return strings.HasSuffix(x.Status, inProgressSuffix) }) {
			st.Status = completed(st.Status)
		}
	}
	return ok()
}

// validate checks the four parameters as the API's constraints say, in its style.
func validate(rec Request) string {
	var problems []string
	for _, p := range []struct{ name, value string }{
		{"stackName", rec.StackName}, {"logicalResourceId", rec.LogicalResourceID}, {"uniqueId", rec.UniqueID}, {"status", rec.Status},
	} {
		if p.value == "" {
			problems = append(problems, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", p.name))
		}
	}
	if rec.StackName != "" && !stackNamePattern.MatchString(rec.StackName) {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", rec.StackName, stackNamePattern))
	}
	if len(rec.UniqueID) > uniqueIDMax {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'uniqueId' failed to satisfy constraint: Member must have length less than or equal to %d", rec.UniqueID, uniqueIDMax))
	}
	if rec.Status != "" && rec.Status != "SUCCESS" && rec.Status != "FAILURE" {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [SUCCESS, FAILURE]", rec.Status))
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("%d validation error%s detected: %s", len(problems), map[bool]string{true: "s"}[len(problems) > 1], strings.Join(problems, "; "))
}

func (s *Server) region() string {
	if s.cfg.Region == "" {
		return defaultRegion
	}
	return s.cfg.Region
}

func (s *Server) denied(uniqueID string) bool {
	return slices.Contains(s.cfg.Deny, "*") || slices.Contains(s.cfg.Deny, uniqueID)
}

// errorDocument is the Query API's error answer.
type errorDocument struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

const xmlns = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

func write(w http.ResponseWriter, a answer, requestID string) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Amzn-Requestid", requestID)
	if a.raw != "" {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(a.status)
		io.WriteString(w, a.raw)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(a.status)
	if a.code == "" {
		fmt.Fprintf(w, "<SignalResourceResponse xmlns=%q>\n  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n</SignalResourceResponse>\n", xmlns, requestID)
		return
	}
	doc := errorDocument{XMLNS: xmlns, RequestID: requestID}
	doc.Error.Type = "Sender"
	if a.status >= 500 {
		doc.Error.Type = "Receiver"
	}
	doc.Error.Code, doc.Error.Message = a.code, a.message
	out, _ := xml.MarshalIndent(doc, "", "  ")
	w.Write(append(out, '\n'))
}

// SetCredentials replaces Config.Credentials: requests must be signed with one of
// creds from now on (none: any well-formed signature passes).
func (s *Server) SetCredentials(creds ...aws.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Credentials = slices.Clone(creds)
}
