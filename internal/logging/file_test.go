package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/redact"
)

// TestWithFile: the log goes to stderr as before and, as JSON lines, to firstrun's own
// file under the root, with the same (redacted) values; a second run appends.
func TestWithFile(t *testing.T) {
	root := hostpath.Root(t.TempDir())
	for run := 1; run <= 2; run++ {
		var stderr bytes.Buffer
		log, err := New(&stderr, Console)
		if err != nil {
			t.Fatal(err)
		}
		log, f, err := WithFile(log, root)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("input", zap.String("PROXY_URL", redact.Value("PROXY_URL", "http://user:hunter2@proxy:3128")), zap.Int("run", run))
		log.Debug("not at info")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr.String(), "INFO\tinput") {
			t.Errorf("stderr: %q", stderr.String())
		}
	}
	data, err := os.ReadFile(root.Join(hostpath.FirstrunLog))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("hunter2")) {
		t.Errorf("the password is in the file:\n%s", data)
	}
	var runs []float64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", sc.Text(), err)
		}
		if m["msg"] != "input" || m["level"] != "info" || m["time"] == nil {
			t.Errorf("line %q", sc.Text())
		}
		runs = append(runs, m["run"].(float64))
	}
	if len(runs) != 2 || runs[0] != 1 || runs[1] != 2 {
		t.Errorf("runs in the file: %v, want [1 2]", runs)
	}
	if st, err := os.Stat(root.Join(hostpath.FirstrunLog)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
}

// TestWithFileError: when the file cannot be opened the logger is returned unchanged
// with the error, for the caller to log and carry on.
func TestWithFileError(t *testing.T) {
	root := hostpath.Root(t.TempDir())
	if err := os.MkdirAll(root.Join(hostpath.FirstrunLog), 0o755); err != nil { // a directory where the file goes
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	log, _ := New(&stderr, JSON)
	got, f, err := WithFile(log, root)
	if err == nil || f != nil || got != log {
		t.Fatalf("WithFile = %v, %v, %v", got, f, err)
	}
	if !strings.Contains(err.Error(), "firstrun.log") {
		t.Errorf("error does not name the file: %v", err)
	}
}
