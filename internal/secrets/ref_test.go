package secrets

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Ref // Text filled in from in
		isRef   bool
		wantErr string
	}{
		// Plain values are no references.
		{in: "proxy.internal:3128"},
		{in: "http://ssm:3128"},
		{in: `{"https://index.docker.io/v1/":{"auth":"x"}}`},
		{in: "true"},
		{in: "arn:aws:ecs:us-east-1:123456789012:cluster/c"},
		// References.
		{in: "ssm:/prod/ecs/docker-auth", isRef: true, want: Ref{Service: SSM, ID: "/prod/ecs/docker-auth"}},
		{in: "ssm:plain-name", isRef: true, want: Ref{Service: SSM, ID: "plain-name"}},
		{in: "ssm:/prod/proxy:3", isRef: true, want: Ref{Service: SSM, ID: "/prod/proxy:3"}},
		{in: "ssm:/prod/proxy:live", isRef: true, want: Ref{Service: SSM, ID: "/prod/proxy:live"}},
		{in: "ssm:/prod/docker#auth", isRef: true, want: Ref{Service: SSM, ID: "/prod/docker", Key: "auth"}},
		{in: "ssm:/aws/reference/secretsmanager/prod/proxy", isRef: true, want: Ref{Service: SSM, ID: "/aws/reference/secretsmanager/prod/proxy"}},
		{in: "ssm:arn:aws:ssm:eu-west-1:123456789012:parameter/prod/proxy", isRef: true,
			want: Ref{Service: SSM, ID: "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/proxy", Region: "eu-west-1"}},
		{in: "secretsmanager:prod/proxy", isRef: true, want: Ref{Service: SecretsManager, ID: "prod/proxy"}},
		{in: "secretsmanager:prod/proxy#password", isRef: true, want: Ref{Service: SecretsManager, ID: "prod/proxy", Key: "password"}},
		{in: "secretsmanager:prod/proxy#a key#with hash", isRef: true, want: Ref{Service: SecretsManager, ID: "prod/proxy", Key: "a key#with hash"}},
		{in: "secretsmanager:arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:prod/proxy-AbCdEf#url", isRef: true,
			want: Ref{Service: SecretsManager, ID: "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:prod/proxy-AbCdEf", Key: "url", Region: "cn-north-1"}},
		// Meant as references, but malformed.
		{in: "ssm:", isRef: true, wantErr: "names no parameter"},
		{in: "secretsmanager:#password", isRef: true, wantErr: "names no secret"},
		{in: "secretsmanager:prod/proxy#", isRef: true, wantErr: "names no JSON key"},
		{in: "ssm:/prod/with space", isRef: true, wantErr: "white space"},
		{in: "ssm:/prod/ecs$x", isRef: true, wantErr: "is not a parameter name"},
		{in: "ssm:arn:aws:ssm:eu-west-1:1234:parameter/x", isRef: true, wantErr: "is not a parameter name"},
		{in: "secretsmanager:prod/proxy?x", isRef: true, wantErr: "is not a secret name"},
		{in: "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:parameter/x", isRef: true, wantErr: "is not a secret name"},
		{in: "ssm:/" + strings.Repeat("a", 2048), isRef: true, wantErr: "at most 2048"},
		{in: "SSM:/prod/x", isRef: true, wantErr: "in lower case"},
		{in: "SecretsManager:prod/x", isRef: true, wantErr: "in lower case"},
		{in: "secretmanager:prod/x", isRef: true, wantErr: "which is no reference"},
		{in: "ssm-secure:/prod/x", isRef: true, wantErr: "which is no reference"},
		{in: "{{resolve:secretsmanager:prod/proxy:SecretString:password}}", isRef: true, wantErr: "CloudFormation dynamic reference"},
		{in: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/proxy-AbCdEf", isRef: true, wantErr: "write secretsmanager:arn:aws:secretsmanager:"},
		{in: "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/proxy", isRef: true, wantErr: "write ssm:arn:aws:ssm:"},
	} {
		got, isRef, err := Parse(tc.in)
		if isRef != tc.isRef {
			t.Errorf("Parse(%q): is a reference %v, want %v", tc.in, isRef, tc.isRef)
			continue
		}
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q): error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case isRef:
			tc.want.Text = tc.in
			if got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		}
	}
}

func TestExtract(t *testing.T) {
	doc := `{"password":"p@ss:w\"rd","port":3128,"on":true,"auth":{"https://index.docker.io/v1/":{"auth":"eA=="}},"none":null,"list":[1, 2]}`
	for _, tc := range []struct{ key, want, wantErr string }{
		{key: "password", want: `p@ss:w"rd`},
		{key: "port", want: "3128"},
		{key: "on", want: "true"},
		{key: "auth", want: `{"https://index.docker.io/v1/":{"auth":"eA=="}}`},
		{key: "list", want: "[1,2]"},
		{key: "Password", wantErr: `has no key "Password" (keys are case-sensitive)`},
		{key: "none", wantErr: "set to null"},
	} {
		got, err := Extract(doc, tc.key)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Extract(%q): %q, %v; want an error saying %q", tc.key, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("Extract(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
	for _, notObject := range []string{"p@ssword", `["a"]`, `"s"`, "null", ""} {
		_, err := Extract(notObject, "k")
		if err == nil || !strings.Contains(err.Error(), "does not hold a JSON object") {
			t.Errorf("Extract(%q): %v, want 'does not hold a JSON object'", notObject, err)
		}
		if err != nil && notObject != "" && strings.Contains(err.Error(), notObject) {
			t.Errorf("Extract's error quotes the document: %v", err)
		}
	}
}
