package imdsmock

import (
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

// mockConfig is the part of the mock's configuration file that Config writes.
type mockConfig struct {
	Imdsv2 bool `json:"imdsv2"`
	Server struct {
		Hostname string `json:"hostname"`
		Port     string `json:"port"`
	} `json:"server"`
	Metadata struct {
		Paths  map[string]string `json:"paths"`
		Values map[string]string `json:"values"`
	} `json:"metadata"`
	Dynamic struct {
		Values struct {
			Document map[string]string `json:"instance-identity-document"`
		} `json:"values"`
	} `json:"dynamic"`
}

func TestConfigJSON(t *testing.T) {
	tests := []struct {
		name       string
		c          Config
		wantRegion string
		wantID     string
		wantHost   string
		wantTags   map[string]string // tag path → value, from the slots
	}{
		{"defaults, no tags", Config{Port: 1338}, DefaultRegion, DefaultInstanceID, DefaultHostname, map[string]string{}},
		{"empty tags are no tags", Config{Port: 1338, Tags: map[string]string{}}, DefaultRegion, DefaultInstanceID, DefaultHostname, map[string]string{}},
		{"four tags", Config{Region: "eu-west-1", InstanceID: "i-0abc", Port: 40000, Hostname: "0.0.0.0", Tags: map[string]string{
			"aws:cloudformation:stack-name": "stack", "aws:cloudformation:logical-id": "Instances",
			"aws:autoscaling:groupName": "asg", "ecs:cluster-name": "prod",
		}}, "eu-west-1", "i-0abc", "0.0.0.0", map[string]string{
			tagPrefix + "aws:cloudformation:stack-name": "stack", tagPrefix + "aws:cloudformation:logical-id": "Instances",
			tagPrefix + "aws:autoscaling:groupName": "asg", tagPrefix + "ecs:cluster-name": "prod",
		}},
		{"empty value", Config{Port: 1, Tags: map[string]string{"Name": ""}}, DefaultRegion, DefaultInstanceID, DefaultHostname,
			map[string]string{tagPrefix + "Name": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.c.JSON()
			if err != nil {
				t.Fatal(err)
			}
			var got mockConfig
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, data)
			}
			if !got.Imdsv2 {
				t.Error("imdsv2 is not true: the mock would answer GETs without a token")
			}
			if got.Server.Hostname != tt.wantHost || got.Server.Port != strconv.Itoa(tt.c.Port) {
				t.Errorf("server = %+v, want %s:%d", got.Server, tt.wantHost, tt.c.Port)
			}
			md, doc := got.Metadata.Values, got.Dynamic.Values.Document
			if md["placement-region"] != tt.wantRegion || doc["region"] != tt.wantRegion {
				t.Errorf("placement-region %q, document region %q, want %q in both", md["placement-region"], doc["region"], tt.wantRegion)
			}
			if md["instance-id"] != tt.wantID || doc["instanceId"] != tt.wantID {
				t.Errorf("instance-id %q, document instanceId %q, want %q in both", md["instance-id"], doc["instanceId"], tt.wantID)
			}
			tags := map[string]string{}
			for slot, path := range got.Metadata.Paths {
				if strings.HasPrefix(path, tagPrefix) {
					tags[path] = md[slot]
				}
			}
			if !reflect.DeepEqual(tags, tt.wantTags) {
				t.Errorf("tags served = %v, want %v", tags, tt.wantTags)
			}
			for _, slot := range tagSlots[:2] {
				if p, ok := got.Metadata.Paths[slot]; !ok || (p != "" && !strings.HasPrefix(p, tagPrefix)) {
					t.Errorf("path of %s = %q (set: %v), want a tag or \"\" so the mock's default tags are not served", slot, p, ok)
				}
			}
			again, err := tt.c.JSON()
			if err != nil || string(again) != string(data) {
				t.Errorf("a second JSON() differs: %v\n%s\n%s", err, data, again)
			}
		})
	}
}

func TestConfigJSONErrors(t *testing.T) {
	tooMany := map[string]string{}
	for i := 0; i <= MaxTags; i++ {
		tooMany[string(rune('a'+i))] = "v"
	}
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no port", Config{}, "port 0"},
		{"port too large", Config{Port: 70000}, "port 70000"},
		{"too many tags", Config{Port: 1, Tags: tooMany}, "path slots"},
		{"slash in key", Config{Port: 1, Tags: map[string]string{"a/b": "v"}}, `"a/b"`},
		{"space in key", Config{Port: 1, Tags: map[string]string{"a b": "v"}}, `"a b"`},
		{"empty key", Config{Port: 1, Tags: map[string]string{"": "v"}}, `""`},
		{"dot dot", Config{Port: 1, Tags: map[string]string{"..": "v"}}, `".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.JSON()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("JSON() error = %v, want one containing %s", err, tt.want)
			}
		})
	}
}

func TestBuildIsStatic(t *testing.T) {
	_, err := binary() // warm the shared build, so that the build timed below is warm
	testenv.Need(t, err == nil, "amazon-ec2-metadata-mock built from tools/ (needs the Go module proxy the first time)")

	out := filepath.Join(t.TempDir(), "mock")
	start := time.Now()
	if err := Build(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	t.Logf("warm build: %v", time.Since(start).Round(time.Millisecond))

	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the mock is not an ELF executable: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the mock has a program interpreter: it is dynamically linked, want CGO_ENABLED=0 static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the mock needs shared libraries %v (%v), want none", libs, err)
	}
}

// get makes one request to the endpoint, with the token when not "".
func get(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPut {
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	}
	if token != "" {
		req.Header.Set("X-aws-ec2-metadata-token", token)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestStartServesConfig(t *testing.T) {
	endpoint, requests := Start(t, Config{Region: "eu-west-1", InstanceID: "i-0abc", Tags: map[string]string{
		"ecs:cluster-name": "prod", "aws:cloudformation:stack-name": "stack", "Name": "web",
	}})
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Errorf("endpoint = %q, want http://127.0.0.1:PORT", endpoint)
	}

	if code, _ := get(t, http.MethodGet, endpoint+"/latest/meta-data/instance-id", ""); code != http.StatusUnauthorized {
		t.Errorf("GET without a token: HTTP %d, want 401 (IMDSv2 required)", code)
	}
	code, token := get(t, http.MethodPut, endpoint+"/latest/api/token", "")
	if code != http.StatusOK || token == "" {
		t.Fatalf("PUT token: HTTP %d %q", code, token)
	}
	tests := []struct {
		path     string
		wantCode int
		want     string // body, or a substring of it for the document
	}{
		{"/latest/meta-data/instance-id", 200, "i-0abc"},
		{"/latest/meta-data/placement/region", 200, "eu-west-1"},
		{"/latest/dynamic/instance-identity/document", 200, `"region": "eu-west-1"`},
		{"/latest/dynamic/instance-identity/document", 200, `"instanceId": "i-0abc"`},
		{"/latest/meta-data/tags/instance", 200, "Name\naws:cloudformation:stack-name\necs:cluster-name"},
		{"/latest/meta-data/tags/instance/ecs:cluster-name", 200, "prod"},
		{"/latest/meta-data/tags/instance/aws:cloudformation:stack-name", 200, "stack"},
		{"/latest/meta-data/tags/instance/Name", 200, "web"},
		{"/latest/meta-data/tags/instance/Test", 404, ""},
		{"/latest/meta-data/tags/instance/aws:autoscaling:groupName", 404, ""},
	}
	for _, tt := range tests {
		code, body := get(t, http.MethodGet, endpoint+tt.path, token)
		if code != tt.wantCode || (tt.wantCode == 200 && !strings.Contains(body, tt.want)) {
			t.Errorf("GET %s: HTTP %d %q, want HTTP %d %q", tt.path, code, body, tt.wantCode, tt.want)
		}
	}

	want := []string{"GET /latest/meta-data/instance-id", "PUT /latest/api/token"}
	for _, tt := range tests {
		want = append(want, "GET "+tt.path)
	}
	if got := requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests() =\n%q\nwant\n%q", got, want)
	}
}

func TestStartWithoutTags(t *testing.T) {
	endpoint, requests := Start(t, Config{})
	_, token := get(t, http.MethodPut, endpoint+"/latest/api/token", "")
	for _, path := range []string{
		"/latest/meta-data/tags/instance", "/latest/meta-data/tags/instance/",
		"/latest/meta-data/tags/instance/Name", "/latest/meta-data/tags/instance/Test",
	} {
		if code, body := get(t, http.MethodGet, endpoint+path, token); code != http.StatusNotFound {
			t.Errorf("GET %s: HTTP %d %q, want 404: tags not exposed", path, code, body)
		}
	}
	if code, body := get(t, http.MethodGet, endpoint+"/latest/meta-data/instance-id", token); code != 200 || body != DefaultInstanceID {
		t.Errorf("GET instance-id: HTTP %d %q, want the default %s", code, body, DefaultInstanceID)
	}
	if n := len(requests()); n != 6 {
		t.Errorf("requests() has %d requests, want 6: %q", n, requests())
	}
}

func TestStartServesAsManyTagsAsSlots(t *testing.T) {
	tags := map[string]string{}
	for i := range MaxTags {
		tags["key-"+strconv.Itoa(i)] = "value-" + strconv.Itoa(i)
	}
	endpoint, _ := Start(t, Config{Tags: tags})
	_, token := get(t, http.MethodPut, endpoint+"/latest/api/token", "")
	_, listing := get(t, http.MethodGet, endpoint+"/latest/meta-data/tags/instance", token)
	if n := len(strings.Split(listing, "\n")); n != MaxTags {
		t.Errorf("the listing has %d keys, want %d:\n%s", n, MaxTags, listing)
	}
	for k, v := range tags {
		if code, body := get(t, http.MethodGet, endpoint+tagPrefix+k, token); code != 200 || body != v {
			t.Errorf("GET tag %s: HTTP %d %q, want %q", k, code, body, v)
		}
	}
}
