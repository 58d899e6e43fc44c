// Package secretstest is a stand-in for the two AWS APIs that internal/secrets calls,
// SSM's GetParameter and Secrets Manager's GetSecretValue, to run the real client
// against in tests, the sandbox (test/e2e/fakesecrets) and wherever moto is missing.
//
// It follows the APIs' references, and fails where they fail:
//
//   - the AWS JSON 1.1 protocol both use (Smithy awsJson1_1): POST / with
//     Content-Type application/x-amz-json-1.1 and X-Amz-Target SERVICE.Operation
//     (AmazonSSM.GetParameter, secretsmanager.GetSecretValue); the answer is a JSON
//     body; an error is HTTP 400 (500 for a server fault) with the body
//     {"__type": CODE, "message": TEXT} and the X-Amzn-Errortype header;
//   - SSM API Reference, GetParameter: request {Name, WithDecryption}, Name a name or
//     ARN with an optional ":version" or ":label" selector, 1-2048 characters; answer
//     {Parameter: {ARN, DataType, LastModifiedDate, Name, Selector, Type, Value,
//     Version}}, a SecureString's Value encrypted unless WithDecryption; errors
//     ParameterNotFound, ParameterVersionNotFound, InvalidKeyId (the key is not usable),
//     InternalServerError, and the common AccessDeniedException and ThrottlingException
//     ("Rate exceeded"). A role without kms:Decrypt on a customer managed key gets
//     AccessDeniedException from KMS through SSM, its message ending "(Service:
//     AWSKMS; Status Code: 400; Error Code: AccessDeniedException; …)"; the AWS managed
//     key aws/ssm lets every principal of the account decrypt (Systems Manager User
//     Guide, "Restricting decryption of SecureString parameter values");
//   - Secrets Manager API Reference, GetSecretValue: request {SecretId, VersionId,
//     VersionStage}, SecretId a name or ARN, 1-2048 characters; answer {ARN, Name,
//     VersionId, SecretString or SecretBinary, VersionStages, CreatedDate}; errors
//     ResourceNotFoundException ("Secrets Manager can't find the specified secret."),
//     DecryptionFailure, InvalidRequestException (a secret scheduled for deletion),
//     InvalidParameterException, InternalServiceError, and the common
//     AccessDeniedException (for KMS: "Access to KMS is not allowed") and
//     ThrottlingException, all HTTP 400;
//   - SigV4 (see auth.go): each request is checked and, given credentials, its
//     signature recomputed; IAM is evaluated before the resource is looked up, so a
//     denied name is AccessDeniedException whether it exists or not.
//
// moto (python3 -m moto.server) answers the same requests; secrets' TestMoto
// compares the two where moto runs. moto has no IAM or throttling: access denied, KMS
// denial and throttling are the stand-in's alone. moto answers a missing secret with
// HTTP 404 where the reference says 400; the stand-in follows the reference.
package secretstest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Targets of the two operations (X-Amz-Target).
const (
	TargetGetParameter   = "AmazonSSM.GetParameter"
	TargetGetSecretValue = "secretsmanager.GetSecretValue"
)

// DefaultSSMKey is the AWS managed key of Parameter Store.
const DefaultSSMKey = "alias/aws/ssm"

// Param is a parameter kept by the stand-in.
type Param struct {
	// Value is the plain value.
	Value string `json:"value"`
	// Type is String, StringList or SecureString ("" is String).
	Type string `json:"type,omitempty"`
	// KeyID is a SecureString's KMS key: DefaultSSMKey when "", else a key of
	// Config.Keys.
	KeyID string `json:"key_id,omitempty"`
	// Version is the current version (1 when 0); Labels the labels on it.
	Version int64    `json:"version,omitempty"`
	Labels  []string `json:"labels,omitempty"`
}

// Secret is a secret kept by the stand-in.
type Secret struct {
	// String is SecretString; Binary, when set instead, SecretBinary.
	String *string `json:"string,omitempty"`
	Binary []byte  `json:"binary,omitempty"`
	// KeyID is a customer managed key of Config.Keys, "" for aws/secretsmanager.
	KeyID string `json:"key_id,omitempty"`
	// Deleted says the secret is scheduled for deletion.
	Deleted bool `json:"deleted,omitempty"`
}

// Key is a customer managed KMS key.
type Key struct {
	// Denied: the role has no kms:Decrypt on it.
	Denied bool `json:"denied,omitempty"`
	// Disabled: the key is disabled.
	Disabled bool `json:"disabled,omitempty"`
}

// Config is what the stand-in holds.
type Config struct {
	// Region is the region requests must be signed for ("" accepts any).
	Region string `json:"region,omitempty"`
	// Account is the account id in ARNs (123456789012 when "").
	Account string `json:"account,omitempty"`
	// Credentials are the access keys it accepts, checking each signature; none
	// accepts any SigV4-shaped signature.
	Credentials []aws.Credentials `json:"credentials,omitempty"`
	// Parameters by name ("/prod/proxy" or "plain").
	Parameters map[string]Param `json:"parameters,omitempty"`
	// Secrets by name.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// Keys are customer managed KMS keys by id.
	Keys map[string]Key `json:"keys,omitempty"`
	// Denied are the parameter and secret names the role may not read.
	Denied []string `json:"denied,omitempty"`
	// Role is the caller's role name in AccessDeniedException messages.
	Role string `json:"role,omitempty"`
}

// Fault is a transient failure to answer with instead of the state.
type Fault string

// Faults.
const (
	// FaultThrottle answers ThrottlingException "Rate exceeded".
	FaultThrottle Fault = "throttle"
	// FaultServerError answers HTTP 500 InternalServerError.
	FaultServerError Fault = "server-error"
	// FaultHang answers nothing until the client goes away.
	FaultHang Fault = "hang"
)

// Request is what the stand-in saw of one request and what it answered.
type Request struct {
	Target string `json:"target"`
	// Name is GetParameter's Name or GetSecretValue's SecretId.
	Name           string `json:"name"`
	WithDecryption bool   `json:"with_decryption,omitempty"`
	// SigV4 is whether it carried a SigV4 Authorization header; Verified whether its
	// signature was recomputed and matched (only with Config.Credentials).
	SigV4       bool   `json:"sigv4"`
	Verified    bool   `json:"verified"`
	AccessKeyID string `json:"-"`
	// Answer is the error code answered, or "OK".
	Answer        string `json:"answer"`
	AmzDate       string `json:"-"`
	SecurityToken string `json:"-"`
}

// Server is the stand-in, an http.Handler for both services' endpoints (the target
// says which). It is safe for concurrent use.
type Server struct {
	// OnRequest, when set before the first request, is called with each request's
	// record once it is answered.
	OnRequest func(Request)

	mu       sync.Mutex
	cfg      Config
	faults   []Fault
	requests []Request
	now      func() time.Time
}

// New returns a stand-in holding cfg.
func New(cfg Config) *Server {
	if cfg.Account == "" {
		cfg.Account = "123456789012"
	}
	if cfg.Role == "" {
		cfg.Role = "ecs-instance"
	}
	return &Server{cfg: cfg, now: time.Now}
}

// Script makes the next requests answer faults, one each, in order, before the state
// answers again.
func (s *Server) Script(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Requests returns what the stand-in has seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// apiError is an error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func fail(code, format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, a...)}
}

// maxBody bounds what is read of a request: both requests are a few hundred bytes.
const maxBody = 64 << 10

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	rec := Request{Target: r.Header.Get("X-Amz-Target")}
	var fault Fault
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	out, aerr := s.answer(r, body, &rec, fault)
	if fault == FaultHang {
		s.mu.Unlock()
		<-r.Context().Done()
		s.mu.Lock()
		rec.Answer = "(no answer)"
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		if s.OnRequest != nil {
			s.OnRequest(rec)
		}
		return
	}
	rec.Answer = "OK"
	if aerr != nil {
		rec.Answer = aerr.code
	}
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if s.OnRequest != nil {
		s.OnRequest(rec)
	}

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("%08x-0000-4000-8000-000000000000", len(rec.Name)))
	if aerr != nil {
		w.Header().Set("X-Amzn-Errortype", aerr.code)
		w.WriteHeader(aerr.status)
		json.NewEncoder(w).Encode(map[string]string{"__type": aerr.code, "message": aerr.message})
		return
	}
	json.NewEncoder(w).Encode(out)
}

// answer checks the request and answers it from the state or the fault. Call with
// s.mu held.
func (s *Server) answer(r *http.Request, body []byte, rec *Request, fault Fault) (any, *apiError) {
	var service string
	switch rec.Target {
	case TargetGetParameter:
		service = "ssm"
	case TargetGetSecretValue:
		service = "secretsmanager"
	default:
		return nil, fail("UnknownOperationException", "")
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, fail("UnknownOperationException", "")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		return nil, &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "Content-Type " + ct + " is not application/x-amz-json-1.1"}
	}
	if aerr := s.authenticate(r, body, service, rec); aerr != nil {
		return nil, aerr
	}
	switch fault {
	case FaultThrottle:
		return nil, fail("ThrottlingException", "Rate exceeded")
	case FaultServerError:
		code := "InternalServerError"
		if service == "secretsmanager" {
			code = "InternalServiceError"
		}
		return nil, &apiError{status: http.StatusInternalServerError, code: code, message: "An error occurred on the server side."}
	case FaultHang:
		return nil, nil
	}
	if service == "ssm" {
		return s.getParameter(body, rec)
	}
	return s.getSecretValue(body, rec)
}

func (s *Server) denied(name, action, arn string) *apiError {
	for _, d := range s.cfg.Denied {
		if d == name || d == arn {
			return fail("AccessDeniedException", "User: arn:aws:sts::%s:assumed-role/%s/i-0123456789abcdef0 is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
				s.cfg.Account, s.cfg.Role, action, arn, action)
		}
	}
	return nil
}

func (s *Server) region() string {
	if s.cfg.Region == "" {
		return "us-east-1"
	}
	return s.cfg.Region
}

func (s *Server) getParameter(body []byte, rec *Request) (any, *apiError) {
	var in struct {
		Name           *string
		WithDecryption *bool
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fail("SerializationException", "the body is not JSON")
	}
	if in.Name == nil || len(*in.Name) < 1 || len(*in.Name) > 2048 {
		return nil, fail("ValidationException", "1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length between 1 and 2048")
	}
	rec.Name, rec.WithDecryption = *in.Name, in.WithDecryption != nil && *in.WithDecryption
	name, selector := *in.Name, ""
	if strings.HasPrefix(name, "arn:") {
		// arn:aws:ssm:REGION:ACCOUNT:parameter/NAME[:selector]: the NAME of "/a/b" is "a/b".
		parts := strings.SplitN(name, ":", 7)
		if len(parts) < 6 || !strings.HasPrefix(parts[5], "parameter/") {
			return nil, fail("ValidationException", "Invalid parameter ARN")
		}
		name = strings.TrimPrefix(parts[5], "parameter")
		if len(parts) == 7 {
			selector = parts[6]
		}
		if _, ok := s.cfg.Parameters[name]; !ok {
			name = name[1:]
		}
	} else if i := strings.LastIndex(name, ":"); i >= 0 {
		name, selector = name[:i], name[i+1:]
	}
	arn := fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", s.region(), s.cfg.Account, strings.TrimPrefix(name, "/"))
	if aerr := s.denied(name, "ssm:GetParameter", arn); aerr != nil {
		return nil, aerr
	}
	p, ok := s.cfg.Parameters[name]
	if !ok {
		return nil, fail("ParameterNotFound", "Parameter %s not found.", *in.Name)
	}
	if p.Version == 0 {
		p.Version = 1
	}
	if selector != "" {
		if n, err := strconv.ParseInt(selector, 10, 64); err == nil {
			if n != p.Version {
				return nil, fail("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", n, name)
			}
		} else if !slices.Contains(p.Labels, selector) {
			return nil, fail("ParameterVersionNotFound", "Systems Manager could not find label %s of %s. Verify the label and try again.", selector, name)
		}
	}
	typ, value := p.Type, p.Value
	if typ == "" {
		typ = "String"
	}
	if typ == "SecureString" {
		key := p.KeyID
		if key == "" {
			key = DefaultSSMKey
		}
		if !rec.WithDecryption {
			value = base64.StdEncoding.EncodeToString([]byte("ciphertext under " + key))
		} else if k, custom := s.cfg.Keys[key]; custom {
			keyARN := fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.region(), s.cfg.Account, key)
			switch {
			case k.Denied:
				return nil, fail("AccessDeniedException", "User: arn:aws:sts::%s:assumed-role/%s/i-0123456789abcdef0 is not authorized to perform: kms:Decrypt on resource: %s because no identity-based policy allows the kms:Decrypt action (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException; Request ID: 00000000-0000-4000-8000-000000000000; Proxy: null)",
					s.cfg.Account, s.cfg.Role, keyARN)
			case k.Disabled:
				return nil, fail("InvalidKeyId", "%s is disabled. (Service: AWSKMS; Status Code: 400; Error Code: DisabledException)", keyARN)
			}
		} else if key != DefaultSSMKey {
			return nil, fail("InvalidKeyId", "Invalid keyId %s", key)
		}
	}
	out := map[string]any{
		"ARN": arn, "DataType": "text", "LastModifiedDate": float64(s.now().Unix()),
		"Name": name, "Type": typ, "Value": value, "Version": p.Version,
	}
	if selector != "" {
		out["Selector"] = ":" + selector
	}
	return map[string]any{"Parameter": out}, nil
}

func (s *Server) getSecretValue(body []byte, rec *Request) (any, *apiError) {
	var in struct {
		SecretID     *string `json:"SecretId"`
		VersionID    *string `json:"VersionId"`
		VersionStage *string `json:"VersionStage"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fail("SerializationException", "the body is not JSON")
	}
	if in.SecretID == nil || len(*in.SecretID) < 1 || len(*in.SecretID) > 2048 {
		return nil, fail("InvalidParameterException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	rec.Name = *in.SecretID
	name := *in.SecretID
	if strings.HasPrefix(name, "arn:") {
		// arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX
		parts := strings.SplitN(name, ":", 7)
		if len(parts) != 7 || parts[5] != "secret" {
			return nil, fail("InvalidParameterException", "Invalid ARN")
		}
		name = parts[6]
		if i := strings.LastIndex(name, "-"); i > 0 && len(name)-i == 7 {
			name = name[:i]
		}
	}
	arn := fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", s.region(), s.cfg.Account, name)
	if aerr := s.denied(name, "secretsmanager:GetSecretValue", arn); aerr != nil {
		return nil, aerr
	}
	sec, ok := s.cfg.Secrets[name]
	switch {
	case !ok:
		return nil, fail("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	case sec.Deleted:
		return nil, fail("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	case in.VersionStage != nil && *in.VersionStage != "AWSCURRENT" || in.VersionID != nil && *in.VersionID != versionID:
		return nil, fail("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", aws.ToString(in.VersionStage))
	}
	if k, custom := s.cfg.Keys[sec.KeyID]; custom && sec.KeyID != "" {
		switch {
		case k.Denied:
			return nil, fail("AccessDeniedException", "Access to KMS is not allowed")
		case k.Disabled:
			return nil, fail("DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key.")
		}
	}
	out := map[string]any{
		"ARN": arn, "Name": name, "VersionId": versionID, "VersionStages": []string{"AWSCURRENT"},
		"CreatedDate": float64(s.now().Unix()),
	}
	if sec.String != nil {
		out["SecretString"] = *sec.String
	} else {
		out["SecretBinary"] = base64.StdEncoding.EncodeToString(sec.Binary)
	}
	return out, nil
}

// versionID is every secret's one version.
const versionID = "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1"
