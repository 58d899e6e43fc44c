package state

import (
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/files"
)

func TestRoundTripAndNormalise(t *testing.T) {
	s := New([]string{"/b", "/a", "/b"}, []string{"NO_PROXY", "ECS_CLUSTER"})
	f := s.File()
	if f.Path != "/var/lib/firstrun/state.json" || f.Mode != 0o644 {
		t.Errorf("file %s %04o", f.Path, f.Mode)
	}
	got, err := Parse(f.Content)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) || strings.Join(got.Files, ",") != "/a,/b" || strings.Join(got.ECSConfigKeys, ",") != "ECS_CLUSTER,NO_PROXY" {
		t.Errorf("round trip: %+v", got)
	}
	if string(New([]string{"/a", "/b"}, []string{"ECS_CLUSTER", "NO_PROXY"}).File().Content) != string(f.Content) {
		t.Error("the same ownership renders different bytes")
	}
}

func TestParse(t *testing.T) {
	if s, err := Parse(nil); err != nil || len(s.Files) != 0 {
		t.Errorf("empty: %+v %v", s, err)
	}
	for name, data := range map[string]string{
		"not JSON":      "{",
		"unknown field": `{"version":1,"files":[],"ecs_config_keys":[],"extra":1}`,
		"other version": `{"version":2,"files":[],"ecs_config_keys":[]}`,
	} {
		if _, err := Parse([]byte(data)); err == nil || !strings.Contains(err.Error(), "state.json") {
			t.Errorf("%s: err = %v, want one naming state.json", name, err)
		}
	}
}

func TestUnionStaleOwned(t *testing.T) {
	prev := New([]string{"/proxy", "/agent"}, []string{"HTTP_PROXY"})
	want := []files.File{
		{Path: "/agent", Content: []byte("x")},
		{Path: "/etc/ecs/ecs.config", Merge: func(b []byte) ([]byte, error) { return b, nil }},
	}
	if got := prev.Stale(want); strings.Join(got, ",") != "/proxy" {
		t.Errorf("Stale = %v", got)
	}
	owned := Owned(want, []string{"ECS_CLUSTER"})
	if strings.Join(owned.Files, ",") != "/agent" {
		t.Errorf("Owned files = %v: a shared (merged) file is never owned", owned.Files)
	}
	u := Union(prev, owned)
	if strings.Join(u.Files, ",") != "/agent,/proxy" || strings.Join(u.ECSConfigKeys, ",") != "ECS_CLUSTER,HTTP_PROXY" {
		t.Errorf("Union = %+v", u)
	}
}

// TestCommonConfigKeys: the keys firstrun wrote into common-config.toml are kept,
// joined by Union and compared by Equal; without any, the state file reads and writes
// as before they existed.
func TestCommonConfigKeys(t *testing.T) {
	plain := New([]string{"/a"}, []string{"ECS_CLUSTER"})
	if strings.Contains(string(plain.File().Content), "common_config") {
		t.Errorf("state without common-config keys mentions them:\n%s", plain.File().Content)
	}
	keys := plain.WithCommonConfigKeys([]string{"proxy.no_proxy", "proxy.http_proxy", "proxy.http_proxy"})
	if plain.Equal(keys) {
		t.Error("Equal ignores common-config keys")
	}
	back, err := Parse(keys.File().Content)
	if err != nil || !back.Equal(keys) || strings.Join(back.CommonConfigKeys, ",") != "proxy.http_proxy,proxy.no_proxy" {
		t.Errorf("Parse(File()) = %+v, %v; want %+v", back, err, keys)
	}
	if u := Union(plain, keys); !u.Equal(keys) {
		t.Errorf("Union = %+v, want %+v", u, keys)
	}
	if u := Union(keys, plain).WithCommonConfigKeys(nil); !u.Equal(plain) {
		t.Errorf("dropping the keys: %+v, want %+v", u, plain)
	}
}
