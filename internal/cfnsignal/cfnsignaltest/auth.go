package cfnsignaltest

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

// authHeader is the structure of a SigV4 Authorization header (AWS General Reference,
// "Elements of an AWS API request signature").
var authHeader = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// sigv4Auth is a parsed SigV4 Authorization header.
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

// authenticate refuses what CloudFormation's front end refuses before looking at the
// action: no signature, a signature for another service or region, an unknown access
// key, a session token that does not match, a signature that does not verify. Call
// with s.mu held.
func (s *Server) authenticate(r *http.Request, body []byte, auth *sigv4Auth, rec Request) (answer, bool) {
	switch {
	case r.Header.Get("Authorization") == "":
		return fail(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"), true
	case auth == nil || rec.AmzDate == "":
		return fail(http.StatusBadRequest, "IncompleteSignature", "Authorization header requires a SigV4 Credential, SignedHeaders and Signature, and X-Amz-Date"), true
	case auth.service != "cloudformation":
		return fail(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'cloudformation'."), true
	case s.cfg.Region != "" && auth.region != s.cfg.Region:
		return fail(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to a valid region, not '%s'.", auth.region), true
	case !strings.HasPrefix(rec.AmzDate, auth.date) || !slices.Contains(auth.signedHeaders, "host") || !slices.Contains(auth.signedHeaders, "x-amz-date"):
		return fail(http.StatusBadRequest, "IncompleteSignature", "the credential scope's date or the signed headers do not cover host and x-amz-date"), true
	}
	if len(s.cfg.Credentials) == 0 {
		return answer{}, false
	}
	i := slices.IndexFunc(s.cfg.Credentials, func(c aws.Credentials) bool { return c.AccessKeyID == auth.accessKeyID })
	if i < 0 {
		return fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."), true
	}
	creds := s.cfg.Credentials[i]
	if rec.SecurityToken != creds.SessionToken || (creds.SessionToken != "" && !slices.Contains(auth.signedHeaders, "x-amz-security-token")) {
		return fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."), true
	}
	at, err := time.Parse("20060102T150405Z", rec.AmzDate)
	if err != nil {
		return fail(http.StatusBadRequest, "IncompleteSignature", "X-Amz-Date %q is not a date", rec.AmzDate), true
	}
	if again := resign(r, body, auth, at, creds); again != auth.header {
		return fail(http.StatusForbidden, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."), true
	}
	return answer{}, false
}

// resign signs a copy of the received request, made of its signed headers and its
// body, with the SDK's signer and creds, and returns its Authorization header.
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

// tokenBucket is the account-wide request rate: burst tokens at most, rate added a
// second; each request answered from the state takes one.
type tokenBucket struct {
	rate   float64 // 0: unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take takes a token at now, if there is one.
func (b *tokenBucket) take(now time.Time) bool {
	if b.rate == 0 {
		return true
	}
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
