package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/testenv"
)

// TestMakeBuildIsStatic runs the Makefile's build, as a platform team would, and
// checks that the binary is statically linked and carries the stamped version.
func TestMakeBuildIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	_, err := exec.LookPath("make")
	testenv.Need(t, err == nil, "make")
	out := filepath.Join(t.TempDir(), "firstrun")
	cmd := exec.Command("make", "-s", "build", "OUT="+out, "VERSION=v9.8.7-test")
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries: %v", libs)
	}
	v, err := exec.Command(out, "--version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "firstrun v9.8.7-test" {
		t.Errorf("--version = %q, %v", v, err)
	}
	fi, _ := os.Stat(out)
	t.Logf("binary size: %d bytes", fi.Size())
}
