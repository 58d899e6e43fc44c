package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, JSON)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("phase done", zap.String("phase", "apply"))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "phase done" || m["phase"] != "apply" || m["level"] != "info" {
		t.Errorf("JSON line %q: %v", buf.String(), err)
	}
	buf.Reset()
	log, err = New(&buf, Console)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "INFO\tshown") {
		t.Errorf("console output %q", out)
	}
	if _, err := New(&buf, "xml"); err == nil {
		t.Error("format xml accepted")
	}
}
