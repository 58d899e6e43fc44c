package secrets_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/firstrun/firstrun/internal/secrets"
	"github.com/firstrun/firstrun/internal/secrets/secretstest"
)

// moto is a moto server (python3 -m moto.server) on a loopback port, for the test.
type moto struct{ url string }

// startMoto starts moto in server mode on 127.0.0.1, or skips the test with one loud
// line where python3 has no moto. It skips under CI too: moto is installed in these
// machines' Python by hand and no package registry reachable here serves it, so
// .ci/run cannot provide it; the stand-in runs everywhere.
func startMoto(t *testing.T) *moto {
	t.Helper()
	if err := exec.Command("python3", "-c", "import moto.server, flask").Run(); err != nil {
		t.Skipf("SKIPPED: python3 with moto (and Flask) is not on this machine (%v): the stand-in is checked against moto only where moto is installed", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	m := &moto{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	// Bounded by count: 200 tries 50 ms apart, about 10 s (moto starts in 2-3 s here).
	for range 200 {
		select {
		case err := <-done:
			t.Fatalf("moto exited: %v\n%s", err, out.String())
		default:
		}
		if resp, err := http.Get(m.url + "/moto-api/"); err == nil {
			resp.Body.Close()
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("moto did not answer on %s\n%s", m.url, out.String())
	return nil
}

// call sends one signed JSON 1.1 request to service (ssm, secretsmanager, kms) and
// returns the status and the decoded body.
func call(t *testing.T, base, service, target string, in any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, base+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), testCreds, req, hex.EncodeToString(sum[:]), service, testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: not JSON (%v): %s", target, err, data)
	}
	return resp.StatusCode, out
}

// seedMoto stores the cases' parameters, key and secrets in moto, returning the
// customer key's id.
func seedMoto(t *testing.T, m *moto) string {
	_, key := call(t, m.url, "kms", "TrentService.CreateKey", map[string]any{"Description": "firstrun test"})
	keyID := key["KeyMetadata"].(map[string]any)["KeyId"].(string)
	for _, p := range []map[string]any{
		{"Name": "/prod/proxy", "Value": "http://u:p%40ss@proxy.internal:3128", "Type": "SecureString"},
		{"Name": "/prod/docker-auth", "Value": `{"https://index.docker.io/v1/":{"auth":"dTpw"}}`, "Type": "SecureString", "KeyId": keyID},
		{"Name": "/prod/plain", "Value": "not-secret", "Type": "String"},
	} {
		if st, out := call(t, m.url, "ssm", "AmazonSSM.PutParameter", p); st != 200 {
			t.Fatalf("PutParameter: %d %v", st, out)
		}
	}
	for _, s := range []map[string]any{
		{"Name": "prod/proxy", "SecretString": `{"url":"http://proxy.internal:3128","password":"s3cr3t-pw"}`},
		{"Name": "prod/cmk", "SecretString": "cmk-secret", "KmsKeyId": keyID},
	} {
		if st, out := call(t, m.url, "secretsmanager", "secretsmanager.CreateSecret", s); st != 200 {
			t.Fatalf("CreateSecret: %d %v", st, out)
		}
	}
	return keyID
}

// motoCases are what moto can express: values, JSON keys, customer keys, not found.
// Access denied, KMS denial and throttling it cannot (no IAM, no rate limits): those
// are the stand-in's alone (TestResolveAgainstStandIn, TestThrottledThenOK).
var motoCases = []struct{ ref, want, code string }{
	{ref: "ssm:/prod/proxy", want: "http://u:p%40ss@proxy.internal:3128"},
	{ref: "ssm:/prod/docker-auth", want: `{"https://index.docker.io/v1/":{"auth":"dTpw"}}`},
	{ref: "ssm:/prod/plain", want: "not-secret"},
	{ref: "ssm:/prod/nope", code: "ParameterNotFound"},
	{ref: "secretsmanager:prod/proxy#password", want: "s3cr3t-pw"},
	{ref: "secretsmanager:prod/proxy", want: `{"url":"http://proxy.internal:3128","password":"s3cr3t-pw"}`},
	{ref: "secretsmanager:prod/cmk", want: "cmk-secret"},
	{ref: "secretsmanager:prod/nope", code: "ResourceNotFoundException"},
}

// TestMoto starts one moto server for both checks (it takes seconds to start and to
// load each service): the real client against it, and the stand-in beside it.
func TestMoto(t *testing.T) {
	m := startMoto(t)
	isolate(t)
	keyID := seedMoto(t, m)
	t.Run("client", func(t *testing.T) { resolveAgainstMoto(t, m) })
	t.Run("stand-in matches", func(t *testing.T) { standInMatchesMoto(t, m, keyID) })
}

// resolveAgainstMoto runs the real client against moto in server mode: SecureString
// with and without a customer key, a String, a Secrets Manager JSON key, the whole
// secret, not found.
func resolveAgainstMoto(t *testing.T, m *moto) {
	c, err := secrets.NewClient(secrets.Options{
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return testCreds, nil }),
		Endpoints:   map[secrets.Service]string{secrets.SSM: m.url, secrets.SecretsManager: m.url},
		BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range motoCases {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res := secrets.Resolve(ctx, c, testRegion, []secrets.Ref{mustParse(t, tc.ref)})[0]
		cancel()
		var e *secrets.Error
		switch {
		case tc.code == "" && (res.Err != nil || res.Value != tc.want):
			t.Errorf("%s: got %q, %v; want %q", tc.ref, res.Value, res.Err, tc.want)
		case tc.code != "" && (!errors.As(res.Err, &e) || e.Code != tc.code || e.Kind != secrets.KindNotFound):
			t.Errorf("%s: got %q, %v; want %s", tc.ref, res.Value, res.Err, tc.code)
		}
	}
}

// standInMatchesMoto sends the same signed requests to moto and to the stand-in,
// seeded alike, and compares the answers: the status class, the error's __type, and
// for a success the value and the members of the answer the client reads. (moto
// answers a missing secret 404 where the API reference, and the stand-in, say 400:
// only the class is compared.)
func standInMatchesMoto(t *testing.T, m *moto, keyID string) {
	stand := secretstest.New(secretstest.Config{
		Region: testRegion,
		Parameters: map[string]secretstest.Param{
			"/prod/proxy":       {Value: "http://u:p%40ss@proxy.internal:3128", Type: "SecureString"},
			"/prod/docker-auth": {Value: `{"https://index.docker.io/v1/":{"auth":"dTpw"}}`, Type: "SecureString", KeyID: keyID},
			"/prod/plain":       {Value: "not-secret", Type: "String"},
		},
		Secrets: map[string]secretstest.Secret{
			"prod/proxy": {String: str(`{"url":"http://proxy.internal:3128","password":"s3cr3t-pw"}`)},
			"prod/cmk":   {String: str("cmk-secret"), KeyID: keyID},
		},
		Keys: map[string]secretstest.Key{keyID: {}},
	})
	srv := httptest.NewServer(stand)
	defer srv.Close()

	type req struct {
		service, target string
		in              map[string]any
	}
	var reqs []req
	for _, name := range []string{"/prod/proxy", "/prod/docker-auth", "/prod/plain", "/prod/nope", "/prod/plain:1", "/prod/plain:7"} {
		reqs = append(reqs, req{"ssm", secretstest.TargetGetParameter, map[string]any{"Name": name, "WithDecryption": true}})
	}
	for _, id := range []string{"prod/proxy", "prod/cmk", "prod/nope"} {
		reqs = append(reqs, req{"secretsmanager", secretstest.TargetGetSecretValue, map[string]any{"SecretId": id}})
	}
	// The members the client reads, and those both must answer.
	members := map[string][]string{
		secretstest.TargetGetParameter:   {"Name", "Type", "Value", "Version", "ARN"},
		secretstest.TargetGetSecretValue: {"ARN", "Name", "SecretString", "VersionId", "VersionStages"},
	}
	for _, r := range reqs {
		mst, mout := call(t, m.url, r.service, r.target, r.in)
		sst, sout := call(t, srv.URL, r.service, r.target, r.in)
		what := fmt.Sprintf("%s %v", r.target, r.in)
		if (mst == 200) != (sst == 200) || (mst >= 500) != (sst >= 500) {
			t.Errorf("%s: moto %d %v, stand-in %d %v", what, mst, mout, sst, sout)
			continue
		}
		if mst != 200 {
			if mout["__type"] != sout["__type"] {
				t.Errorf("%s: moto %v, stand-in %v", what, mout["__type"], sout["__type"])
			}
			continue
		}
		mo, so := mout, sout
		if r.target == secretstest.TargetGetParameter {
			mo, _ = mout["Parameter"].(map[string]any)
			so, _ = sout["Parameter"].(map[string]any)
		}
		for _, k := range members[r.target] {
			if _, ok := mo[k]; !ok {
				t.Errorf("%s: moto's answer lacks %s: %v", what, k, mout)
			}
			if _, ok := so[k]; !ok {
				t.Errorf("%s: the stand-in's answer lacks %s: %v", what, k, sout)
			}
		}
		for _, k := range []string{"Value", "Type", "Name", "SecretString"} {
			if fmt.Sprint(mo[k]) != fmt.Sprint(so[k]) {
				t.Errorf("%s: %s: moto %v, stand-in %v", what, k, mo[k], so[k])
			}
		}
		if r.target == secretstest.TargetGetSecretValue && fmt.Sprint(mo["VersionStages"]) != fmt.Sprint(so["VersionStages"]) {
			t.Errorf("%s: VersionStages: moto %v, stand-in %v", what, mo["VersionStages"], so["VersionStages"])
		}
		if arn, _ := so["ARN"].(string); !strings.HasPrefix(arn, "arn:aws:") {
			t.Errorf("%s: stand-in ARN %q", what, arn)
		}
	}
}
