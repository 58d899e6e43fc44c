package secretstest

import (
	"net/http"
	"strings"

	"github.com/firstrun/firstrun/internal/sigv4test"
)

// authenticate refuses what the JSON-protocol front end of SSM and Secrets Manager
// refuses before the operation: no signature (MissingAuthenticationTokenException), a
// malformed one (IncompleteSignatureException), one scoped to another service or region
// or that does not verify (InvalidSignatureException), an unknown access key or a
// session token that does not match it (UnrecognizedClientException, "The security
// token included in the request is invalid."). All HTTP 400, as these services answer
// them. Call with s.mu held.
func (s *Server) authenticate(r *http.Request, body []byte, service string, rec *Request) *apiError {
	auth := sigv4test.Parse(r.Header.Get("Authorization"))
	rec.AmzDate = r.Header.Get("X-Amz-Date")
	rec.SecurityToken = r.Header.Get("X-Amz-Security-Token")
	switch {
	case r.Header.Get("Authorization") == "":
		return fail("MissingAuthenticationTokenException", "Missing Authentication Token")
	case auth == nil || rec.AmzDate == "":
		return fail("IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and an X-Amz-Date")
	}
	rec.SigV4 = true
	rec.AccessKeyID = auth.AccessKeyID
	switch {
	case auth.Service != service:
		return fail("InvalidSignatureException", "Credential should be scoped to correct service: '%s'.", service)
	case s.cfg.Region != "" && auth.Region != s.cfg.Region:
		return fail("InvalidSignatureException", "Credential should be scoped to a valid region, not '%s'.", auth.Region)
	case !strings.HasPrefix(rec.AmzDate, auth.Date) || !auth.Signs("host", "x-amz-date", "x-amz-target"):
		return fail("IncompleteSignatureException", "the credential scope's date or the signed headers do not cover host, x-amz-date and x-amz-target")
	}
	if len(s.cfg.Credentials) == 0 {
		return nil
	}
	creds, ok := auth.Credentials(s.cfg.Credentials, rec.SecurityToken)
	if !ok {
		return fail("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	same, err := auth.Verify(r, body, rec.AmzDate, creds)
	if err != nil {
		return fail("IncompleteSignatureException", "X-Amz-Date %q is not a date", rec.AmzDate)
	}
	if !same {
		return fail("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	rec.Verified = true
	return nil
}
