package testenv

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/firstrun/firstrun/internal/files"
)

// update rewrites golden files: go test ./internal/... -update.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// Golden compares got with testdata/NAME.golden of the calling package, or rewrites
// that file under -update; a difference is shown as a unified diff.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		msg := udiff.Unified(path, "got", string(want), string(got))
		if bytes.ContainsAny(want, "\r\t") || bytes.ContainsAny(got, "\r\t") {
			msg += fmt.Sprintf("quoted:\nwant %q\ngot  %q\n", want, got) // invisible differences
		}
		t.Errorf("output differs from %s (run go test -update if the change is intended):\n%s", path, msg)
	}
}

// Dump renders files as text for a golden file: each under a header naming its path
// and mode, in the order given; "(no files)" when there are none.
func Dump(fl []files.File) []byte {
	if len(fl) == 0 {
		return []byte("(no files)\n")
	}
	var b bytes.Buffer
	for _, f := range fl {
		fmt.Fprintf(&b, "-- %s (mode %#o) --\n", f.Path, f.Mode.Perm())
		b.Write(f.Content)
	}
	return b.Bytes()
}
