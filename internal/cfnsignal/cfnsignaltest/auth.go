package cfnsignaltest

import (
	"net/http"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/sigv4test"
)

// authenticate refuses what CloudFormation's front end refuses before looking at the
// action: no signature, a signature for another service or region, an unknown access
// key, a session token that does not match, a signature that does not verify. Call
// with s.mu held.
func (s *Server) authenticate(r *http.Request, body []byte, auth *sigv4test.Auth, rec Request) (answer, bool) {
	switch {
	case r.Header.Get("Authorization") == "":
		return fail(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"), true
	case auth == nil || rec.AmzDate == "":
		return fail(http.StatusBadRequest, "IncompleteSignature", "Authorization header requires a SigV4 Credential, SignedHeaders and Signature, and X-Amz-Date"), true
	case auth.Service != "cloudformation":
		return fail(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'cloudformation'."), true
	case s.cfg.Region != "" && auth.Region != s.cfg.Region:
		return fail(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to a valid region, not '%s'.", auth.Region), true
	case !strings.HasPrefix(rec.AmzDate, auth.Date) || !auth.Signs("host", "x-amz-date"):
		return fail(http.StatusBadRequest, "IncompleteSignature", "the credential scope's date or the signed headers do not cover host and x-amz-date"), true
	}
	if len(s.cfg.Credentials) == 0 {
		return answer{}, false
	}
	creds, ok := auth.Credentials(s.cfg.Credentials, rec.SecurityToken)
	if !ok {
		return fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."), true
	}
	same, err := auth.Verify(r, body, rec.AmzDate, creds)
	if err != nil {
		return fail(http.StatusBadRequest, "IncompleteSignature", "X-Amz-Date %q is not a date", rec.AmzDate), true
	}
	if !same {
		return fail(http.StatusForbidden, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."), true
	}
	return answer{}, false
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
