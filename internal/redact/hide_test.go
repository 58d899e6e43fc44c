package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestHide: a registered value is hidden as written, quoted by %q and in JSON, in
// Text, Value and through Writer; a short one is not registered.
func TestHide(t *testing.T) {
	secret := `s3cr3t "from" \ssm`
	Hide(secret, "abc")
	for _, s := range []string{
		"ECS_FOO=" + secret,
		fmt.Sprintf("bad value %q", secret),
		mustJSON(t, map[string]string{"msg": "x " + secret}),
		mustJSON(t, map[string]string{"error": fmt.Sprintf("got %q", secret)}),
	} {
		if got := Text(s); strings.Contains(got, "s3cr3t") || !strings.Contains(got, Mask) {
			t.Errorf("Text(%q) = %q", s, got)
		}
	}
	if got := Value("ECS_FOO", secret); got != Mask {
		t.Errorf("Value = %q", got)
	}
	if got := Text("abc abcd"); got != "abc abcd" {
		t.Errorf("a value under %d characters was hidden: %q", MinHidden, got)
	}
	var b bytes.Buffer
	w := Writer(&b)
	line := mustJSON(t, map[string]string{"value": secret}) + "\n"
	if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if strings.Contains(b.String(), "s3cr3t") || !json.Valid(bytes.TrimSpace(b.Bytes())) {
		t.Errorf("Writer wrote %q", b.String())
	}
}

// TestHideKey: a registered key's settings are hidden whatever their value, short
// ones included.
func TestHideKey(t *testing.T) {
	HideKey("ECS_HIDDEN_SETTING")
	for _, s := range []string{"ECS_HIDDEN_SETTING=ab\nECS_OTHER=1\n", `Environment="ECS_HIDDEN_SETTING=ab"`, "set ECS_HIDDEN_SETTING=ab now"} {
		got := Text(s)
		if strings.Contains(got, "=ab") || !strings.Contains(got, "ECS_HIDDEN_SETTING="+Mask) {
			t.Errorf("Text(%q) = %q", s, got)
		}
	}
	if got := Text("ECS_OTHER=ab"); got != "ECS_OTHER=ab" {
		t.Errorf("another key hidden: %q", got)
	}
	if got := Value("ECS_HIDDEN_SETTING", "ab"); got != Mask {
		t.Errorf("Value = %q", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
