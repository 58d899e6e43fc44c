// Package sigv4test checks AWS Signature Version 4 on the requests that the stand-ins
// of AWS APIs receive (cfnsignaltest for CloudFormation, secretstest for SSM and
// Secrets Manager): it parses the Authorization header (AWS General Reference,
// "Elements of an AWS API request signature"), finds the credentials it names and
// verifies the signature by signing the request again with the SDK's signer. Each
// stand-in maps a refusal to its own API's error codes.
package sigv4test

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

// authHeader is the structure of a SigV4 Authorization header.
var authHeader = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// Auth is a parsed SigV4 Authorization header.
type Auth struct {
	// Header is the header as received.
	Header string
	// AccessKeyID, Date (YYYYMMDD), Region and Service are the credential scope's.
	AccessKeyID, Date, Region, Service string
	// SignedHeaders are the lower-case names of the headers signed.
	SignedHeaders []string
}

// Parse parses an Authorization header, nil when it is not a SigV4 one.
func Parse(h string) *Auth {
	m := authHeader.FindStringSubmatch(h)
	if m == nil {
		return nil
	}
	return &Auth{Header: h, AccessKeyID: m[1], Date: m[2], Region: m[3], Service: m[4], SignedHeaders: strings.Split(m[5], ";")}
}

// Signs reports whether every named header (lower case) is among the signed ones.
func (a *Auth) Signs(headers ...string) bool {
	for _, h := range headers {
		if !slices.Contains(a.SignedHeaders, h) {
			return false
		}
	}
	return true
}

// Credentials returns the credentials among known whose access key the header names,
// and false when there are none or when the session token sent (X-Amz-Security-Token)
// is not theirs, or is theirs but not signed: what AWS answers "The security token
// included in the request is invalid."
func (a *Auth) Credentials(known []aws.Credentials, token string) (aws.Credentials, bool) {
	i := slices.IndexFunc(known, func(c aws.Credentials) bool { return c.AccessKeyID == a.AccessKeyID })
	if i < 0 {
		return aws.Credentials{}, false
	}
	c := known[i]
	if token != c.SessionToken || (c.SessionToken != "" && !a.Signs("x-amz-security-token")) {
		return aws.Credentials{}, false
	}
	return c, true
}

// Verify signs a copy of r, made of its signed headers and body, at the time of
// amzDate (its X-Amz-Date, YYYYMMDD'T'HHMMSS'Z') with creds, and reports whether the
// signature is the one received. A date that does not parse is an error.
func (a *Auth) Verify(r *http.Request, body []byte, amzDate string, creds aws.Credentials) (bool, error) {
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for _, h := range a.SignedHeaders {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), a.Service, a.Region, at); err != nil {
		return false, err
	}
	return req.Header.Get("Authorization") == a.Header, nil
}
