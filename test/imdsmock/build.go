// Package imdsmock builds and runs AWS's amazon-ec2-metadata-mock for firstrun's
// tests.
//
// The mock is a tool of the separate module in tools/ (go get -tool
// github.com/aws/amazon-ec2-metadata-mock/cmd@v1.12.0, the only version the Go module
// proxy serves), so the main module does not depend on it. Build compiles it, static;
// Start runs it behind a small reverse proxy that records every request, on loopback,
// for one test. Building needs the go command and, the first time, the Go module proxy.
package imdsmock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// ToolPackage is the mock's main package, a tool of the tools module.
const ToolPackage = "github.com/aws/amazon-ec2-metadata-mock/cmd"

// buildTimeout bounds one build: a cold one downloads the mock's modules.
const buildTimeout = 10 * time.Minute

// ToolsDir returns the directory of the tools module, found from this source file.
func ToolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "tools"))
}

// Build compiles the mock from the tools module into the executable out: static
// (CGO_ENABLED=0, so it runs in a Debian container too), -trimpath.
func Build(ctx context.Context, out string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building the IMDS mock: %w", err)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("building the IMDS mock: %w", err)
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", abs, ToolPackage)
	cmd.Dir = ToolsDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the IMDS mock (go build %s in %s): %w\n%s", ToolPackage, cmd.Dir, err, output)
	}
	return nil
}

// built is the process's one build of the mock.
var built struct {
	once sync.Once
	path string
	err  error
}

// binary builds the mock once per process, into a directory of the temporary
// directory named for the tools module's go.mod and go.sum and the toolchain, and
// returns its path. The build goes to a temporary name and is renamed into place, so
// test processes running at once never see half a binary.
func binary() (string, error) {
	built.once.Do(func() {
		built.path, built.err = build()
	})
	return built.path, built.err
}

func build() (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(ToolsDir(), name))
		if err != nil {
			return "", fmt.Errorf("building the IMDS mock: %w", err)
		}
		h.Write(data)
	}
	fmt.Fprintf(h, "%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("firstrun-imdsmock-%d-%s", os.Getuid(), hex.EncodeToString(h.Sum(nil))[:12]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("building the IMDS mock: %w", err)
	}
	out := filepath.Join(dir, "ec2-metadata-mock")
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if err := Build(ctx, tmp); err != nil {
		return "", errors.Join(err, removeIfExists(tmp))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("building the IMDS mock: %w", errors.Join(err, removeIfExists(tmp)))
	}
	return out, nil
}

// removeIfExists removes path; a missing file is no error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
