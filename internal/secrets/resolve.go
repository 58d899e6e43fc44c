package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// Parameter is what GetParameter answered of a parameter.
type Parameter struct {
	// Value is the parameter's value, decrypted.
	Value string
	// Type is String, StringList or SecureString.
	Type string
}

// Secret is what GetSecretValue answered of a secret's current version.
type Secret struct {
	// String is SecretString; nil when the secret holds only SecretBinary.
	String *string
}

// Getter reads parameters and secrets: Client in production, secretstest's stand-in
// or a fake in tests. region is the region to ask; name and secretID are as a Ref's ID.
// Errors are the API's (a smithy.APIError when the service answered).
type Getter interface {
	GetParameter(ctx context.Context, region, name string) (Parameter, error)
	GetSecretValue(ctx context.Context, region, secretID string) (Secret, error)
}

// Extract returns the value of key in doc, a JSON object: a string as it is, any other
// JSON value (a number, true or false, an object, an array) as its compact JSON text.
// Its errors never quote doc.
func Extract(doc, key string) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &obj); err != nil || obj == nil {
		return "", errors.New("does not hold a JSON object, so it has no key " + quoteKey(key))
	}
	raw, ok := obj[key]
	switch {
	case !ok:
		return "", errors.New("has no key " + quoteKey(key) + " (keys are case-sensitive)")
	case bytes.Equal(raw, []byte("null")):
		return "", errors.New("has key " + quoteKey(key) + " set to null")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", errors.New("has key " + quoteKey(key) + " whose value is not JSON")
	}
	return b.String(), nil
}

func quoteKey(k string) string { return fmt.Sprintf("%q", k) }

// Kind is what went wrong with a reference, for messages and tests.
type Kind string

// Kinds of failure.
const (
	// KindNotFound: no such parameter, version or secret (or one scheduled for deletion).
	KindNotFound Kind = "not found"
	// KindAccessDenied: the role may not read it.
	KindAccessDenied Kind = "access denied"
	// KindKMS: the value could not be decrypted with its KMS key.
	KindKMS Kind = "cannot decrypt it (KMS)"
	// KindThrottled: throttled until the time budget ran out.
	KindThrottled Kind = "throttled"
	// KindUnavailable: the service could not be reached or failed, within the budget.
	KindUnavailable Kind = "unavailable"
	// KindCredentials: no credentials to sign with.
	KindCredentials Kind = "no credentials"
	// KindValue: it was read, but holds no usable value (binary, not JSON, no such key).
	KindValue Kind = "unusable value"
	// KindRefused: any other refusal of the API.
	KindRefused Kind = "refused"
)

// Error is a reference that could not be resolved: which one, what went wrong, and the
// API's error code and message when it answered. It never holds a secret value.
type Error struct {
	Ref    Ref
	Region string
	Kind   Kind
	// Code is the API's error code, such as ParameterNotFound; "" when it did not answer.
	Code string
	// Hint says what to do.
	Hint string
	Err  error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Ref.Text, e.Kind)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Result is one reference resolved, or why not.
type Result struct {
	Ref Ref
	// Value is the resolved value, "" on failure.
	Value string
	// Type is the parameter's type (String, StringList, SecureString) or SecretString.
	Type string
	// Err is an *Error, nil on success.
	Err error
}

// Resolve resolves refs with g, asking each distinct parameter or secret once: an ARN
// in its own region, a name in region. Results are in the order of refs. ctx bounds
// the whole: Client retries throttling and transient failures until it ends.
func Resolve(ctx context.Context, g Getter, region string, refs []Ref) []Result {
	type fetched struct {
		doc, typ string
		err      error
	}
	cache := map[string]fetched{}
	out := make([]Result, len(refs))
	for i, ref := range refs {
		reg := ref.Region
		if reg == "" {
			reg = region
		}
		id := string(ref.Service) + "\x00" + reg + "\x00" + ref.ID
		f, done := cache[id]
		if !done {
			f.doc, f.typ, f.err = fetch(ctx, g, reg, ref)
			cache[id] = f
		}
		out[i] = Result{Ref: ref, Type: f.typ}
		switch {
		case f.err != nil:
			out[i].Err = describe(ref, reg, f.err)
		case ref.Key != "":
			v, err := Extract(f.doc, ref.Key)
			if err != nil {
				out[i].Err = &Error{Ref: ref, Region: reg, Kind: KindValue, Err: fmt.Errorf("the %s %w", ref.Service.what(), err)}
				continue
			}
			out[i].Value = v
		default:
			out[i].Value = f.doc
		}
	}
	return out
}

// errBinary is a secret that holds only SecretBinary.
var errBinary = errors.New("the secret holds only SecretBinary: firstrun reads SecretString")

// errNoRegion is a reference by name with no region to ask.
var errNoRegion = errors.New("no region to ask: set AWS_REGION (or let firstrun read it from the instance metadata), or name it by ARN")

func fetch(ctx context.Context, g Getter, region string, ref Ref) (doc, typ string, err error) {
	if region == "" {
		return "", "", errNoRegion
	}
	switch ref.Service {
	case SSM:
		p, err := g.GetParameter(ctx, region, ref.ID)
		return p.Value, p.Type, err
	default:
		s, err := g.GetSecretValue(ctx, region, ref.ID)
		if err == nil && s.String == nil {
			err = errBinary
		}
		if err != nil {
			return "", "", err
		}
		return *s.String, "SecretString", nil
	}
}

// describe turns a Getter's error into an *Error: the kind, the API's code and a hint
// naming the permission or the fix. The error codes are the APIs' (see secretstest for
// where each comes from): SSM GetParameter answers ParameterNotFound,
// ParameterVersionNotFound, InvalidKeyId, AccessDeniedException (from KMS too, its
// message then naming AWSKMS or kms:Decrypt) and ThrottlingException; Secrets Manager
// GetSecretValue ResourceNotFoundException, AccessDeniedException ("Access to KMS is
// not allowed" for the key), DecryptionFailure, InvalidRequestException (a secret
// scheduled for deletion), InvalidParameterException and ThrottlingException.
func describe(ref Ref, region string, err error) error {
	e := &Error{Ref: ref, Region: region, Err: err}
	var fe *fetchError
	if errors.As(err, &fe) {
		e.Err = fe.err
	}
	var api smithy.APIError
	var credErr *credentialsError
	switch {
	case errors.Is(err, errNoRegion):
		e.Kind = KindUnavailable
	case errors.Is(err, errBinary):
		e.Kind = KindValue
	case errors.As(err, &credErr):
		e.Kind = KindCredentials
		e.Hint = "the instance needs an instance profile whose role may read it (see the README's IAM statements)"
	case errors.As(err, &api):
		e.Code = api.ErrorCode()
		e.Err = fmt.Errorf("%s: %s", e.Code, api.ErrorMessage())
		e.Kind, e.Hint = classify(ref, region, api)
		if fe != nil && fe.exhausted && e.Kind == KindThrottled {
			e.Hint = "throttled on every attempt until the time budget (FIRSTRUN_SECRETS_TIMEOUT) ran out: rerun firstrun, or raise the budget or the service's throughput"
		}
	case fe != nil && fe.exhausted:
		e.Kind = KindUnavailable
		e.Hint = fmt.Sprintf("no answer within the time budget (FIRSTRUN_SECRETS_TIMEOUT); firstrun never reaches %s through the proxy: the instance needs a route to it (a VPC endpoint for %s, or a NAT gateway)", ref.Service.Name(), endpointName(ref.Service, region))
	default:
		e.Kind = KindUnavailable
		e.Hint = fmt.Sprintf("firstrun never reaches %s through the proxy: the instance needs a route to %s (a VPC endpoint, or a NAT gateway)", ref.Service.Name(), endpointName(ref.Service, region))
	}
	return e
}

// classify names the kind of an API error and what to do about it.
func classify(ref Ref, region string, api smithy.APIError) (Kind, string) {
	code, msg := api.ErrorCode(), api.ErrorMessage()
	kmsMessage := strings.Contains(msg, "KMS") || strings.Contains(msg, "kms:") || strings.Contains(msg, "ciphertext")
	switch code {
	case "ParameterNotFound", "ParameterVersionNotFound":
		return KindNotFound, fmt.Sprintf("no such parameter in %s (names are case-sensitive; a parameter shared by another account is named by its full ARN)", region)
	case "ResourceNotFoundException":
		return KindNotFound, fmt.Sprintf("no such secret in %s (names are case-sensitive)", region)
	case "InvalidKeyId", "DecryptionFailure", "KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException":
		return KindKMS, "the instance role needs kms:Decrypt on the KMS key that encrypts it, and the key must be enabled"
	case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation":
		if kmsMessage {
			return KindKMS, "the instance role needs kms:Decrypt on the customer managed KMS key that encrypts it"
		}
		if ref.Service == SSM {
			return KindAccessDenied, "the instance role needs ssm:GetParameter on the parameter"
		}
		return KindAccessDenied, "the instance role needs secretsmanager:GetSecretValue on the secret"
	case "InvalidRequestException":
		return KindRefused, "the secret cannot be read in its state (scheduled for deletion? restore it)"
	case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded":
		return KindThrottled, "rerun firstrun, or raise the time budget (FIRSTRUN_SECRETS_TIMEOUT)"
	case "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException", "IncompleteSignature":
		return KindCredentials, "the credentials were refused (is the instance's clock right?)"
	}
	if kmsMessage {
		return KindKMS, "the instance role needs kms:Decrypt on the KMS key that encrypts it"
	}
	return KindRefused, ""
}

// fetchError is a Client's failure: the last error and whether the time budget ended
// the retries.
type fetchError struct {
	err       error
	exhausted bool
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// credentialsError is a failure to get credentials to sign with.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }
