package main

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := url.Values{"Action": {"SignalResource"}, "Version": {"2010-05-15"}, "StackName": {"s"}, "LogicalResourceId": {"ASG"}, "UniqueId": {"i-1"}, "Status": {"SUCCESS"}}
	auth := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/cloudformation/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, auth, problem string
		form                url.Values
	}{
		{"good", auth, "", good},
		{"unsigned", "", "no SigV4 signature", good},
		{"signed for another service", strings.Replace(auth, "/cloudformation/", "/sts/", 1), "no SigV4 signature", good},
		{"other action", auth, "action", url.Values{"Action": {"DescribeStacks"}, "Version": {"2010-05-15"}}},
		{"bad status", auth, "status", func() url.Values {
			v := url.Values{}
			for k, x := range good {
				v[k] = x
			}
			v.Set("Status", "MAYBE")
			return v
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("X-Amz-Date", "20261122T000000Z")
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			rec := check(r)
			if (tc.problem == "") != (rec.Problem == "") || !strings.Contains(rec.Problem, tc.problem) {
				t.Errorf("problem %q, want one containing %q", rec.Problem, tc.problem)
			}
		})
	}
}
