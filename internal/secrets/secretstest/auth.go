package secretstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// authHeader is a SigV4 Authorization header (AWS General Reference, "Elements of an
// AWS API request signature"); as cfnsignaltest's.
var authHeader = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

type sigv4Auth struct {
	header                             string
	accessKeyID, date, region, service string
	signedHeaders                      []string
}

func parseAuth(h string) *sigv4Auth {
	m := authHeader.FindStringSubmatch(h)
	if m == nil {
		return nil
	}
	return &sigv4Auth{header: h, accessKeyID: m[1], date: m[2], region: m[3], service: m[4], signedHeaders: strings.Split(m[5], ";")}
}

// authenticate refuses what the JSON-protocol front end of SSM and Secrets Manager
// refuses before the operation: no signature (MissingAuthenticationTokenException), a
// malformed one (IncompleteSignatureException), one scoped to another service or region
// or that does not verify (InvalidSignatureException), an unknown access key or a
// session token that does not match it (UnrecognizedClientException, "The security
// token included in the request is invalid."). All HTTP 400, as these services answer
// them. Call with s.mu held.
func (s *Server) authenticate(r *http.Request, body []byte, service string, rec *Request) *apiError {
	auth := parseAuth(r.Header.Get("Authorization"))
	rec.AmzDate = r.Header.Get("X-Amz-Date")
	rec.SecurityToken = r.Header.Get("X-Amz-Security-Token")
	switch {
	case r.Header.Get("Authorization") == "":
		return fail("MissingAuthenticationTokenException", "Missing Authentication Token")
	case auth == nil || rec.AmzDate == "":
		return fail("IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and an X-Amz-Date")
	}
	rec.SigV4 = true
	rec.AccessKeyID = auth.accessKeyID
	switch {
	case auth.service != service:
		return fail("InvalidSignatureException", "Credential should be scoped to correct service: '%s'.", service)
	case s.cfg.Region != "" && auth.region != s.cfg.Region:
		return fail("InvalidSignatureException", "Credential should be scoped to a valid region, not '%s'.", auth.region)
	case !strings.HasPrefix(rec.AmzDate, auth.date) || !slices.Contains(auth.signedHeaders, "host") || !slices.Contains(auth.signedHeaders, "x-amz-date") || !slices.Contains(auth.signedHeaders, "x-amz-target"):
		return fail("IncompleteSignatureException", "the credential scope's date or the signed headers do not cover host, x-amz-date and x-amz-target")
	}
	if len(s.cfg.Credentials) == 0 {
		return nil
	}
	i := slices.IndexFunc(s.cfg.Credentials, func(c aws.Credentials) bool { return c.AccessKeyID == auth.accessKeyID })
	if i < 0 {
		return fail("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	creds := s.cfg.Credentials[i]
	if rec.SecurityToken != creds.SessionToken || (creds.SessionToken != "" && !slices.Contains(auth.signedHeaders, "x-amz-security-token")) {
		return fail("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	at, err := time.Parse("20060102T150405Z", rec.AmzDate)
	if err != nil {
		return fail("IncompleteSignatureException", "X-Amz-Date %q is not a date", rec.AmzDate)
	}
	if again := resign(r, body, auth, at, creds); again != auth.header {
		return fail("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	rec.Verified = true
	return nil
}

// resign signs a copy of the received request, made of its signed headers and body,
// with the SDK's signer and creds, and returns its Authorization header.
func resign(r *http.Request, body []byte, auth *sigv4Auth, at time.Time, creds aws.Credentials) string {
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	for _, h := range auth.signedHeaders {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]),
		auth.service, auth.region, at); err != nil {
		return err.Error()
	}
	return req.Header.Get("Authorization")
}
