// Package readme checks the README the way a new user reads it: the commands it shows
// exist and run as written, and its reference tables name what firstrun really takes.
package readme

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shBlocks returns the README's ```sh blocks, each with its first line's text.
func shBlocks(readme string) []string {
	re := regexp.MustCompile("(?s)```sh\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(readme, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestMakeTargetsExist: every `make TARGET` the README names is a target of the
// Makefile, and every target the Makefile lists in `make help` is in the README.
func TestMakeTargetsExist(t *testing.T) {
	readme, makefile := read(t, "README.md"), read(t, "Makefile")
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z0-9-]+):.*## `).FindAllStringSubmatch(makefile, -1) {
		targets[m[1]] = true
	}
	if len(targets) < 5 {
		t.Fatalf("found %d documented targets in the Makefile, parser broken?", len(targets))
	}
	// `make X` in inline code, and make X at the start of a command in a ```sh block.
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`make ([a-z][a-z0-9-]*)").FindAllStringSubmatch(readme, -1) {
		named[m[1]] = true
	}
	for _, b := range shBlocks(readme) {
		for _, m := range regexp.MustCompile(`(?m)(?:^|\s)make ([a-z][a-z0-9-]*)`).FindAllStringSubmatch(b, -1) {
			named[m[1]] = true
		}
	}
	for target := range named {
		if !targets[target] {
			t.Errorf("README names `make %s`, which the Makefile has no documented target for", target)
		}
	}
	for target := range targets {
		if !named[target] {
			t.Errorf("make %s is in `make help` but not in the README", target)
		}
	}
}

// TestScratchRootExampleRuns runs the README's "see what firstrun would do" block as
// written, with bash from the repository's top directory: it builds firstrun and
// prints a dry run's diff for the example inputs.
func TestScratchRootExampleRuns(t *testing.T) {
	_, err := exec.LookPath("bash")
	testenv.Need(t, err == nil, "bash")
	var block string
	for _, b := range shBlocks(read(t, "README.md")) {
		if strings.Contains(b, "--dry-run") && strings.HasPrefix(b, "make build\n") {
			block = b
		}
	}
	if block == "" {
		t.Fatal("README has no ```sh block starting with make build and running --dry-run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = testenv.RepoRoot()
	// A user's environment: no AWS settings of this machine's, no instance metadata.
	cmd.Env = testenv.WithEnv(os.Environ(), "-AWS_REGION", "-AWS_DEFAULT_REGION", "-ECS_CLUSTER", "-PROXY_URL")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's example failed: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"+ECS_CLUSTER=my-cluster", "+HTTP_PROXY=http://proxy.internal:3128", "/my-stack/ec2/my-asg/"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the example's dry run does not show %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "dry run: nothing written") {
		t.Errorf("the example's log does not say nothing was written:\n%s", stderr.String())
	}
}

// TestInputsTableMatchesHelp: the configuration reference names exactly the inputs
// that `firstrun --help` lists.
func TestInputsTableMatchesHelp(t *testing.T) {
	readme := read(t, "README.md")
	start := strings.Index(readme, "## Configuration reference")
	if start < 0 {
		t.Fatal("README has no Configuration reference")
	}
	section := readme[start:]
	if end := strings.Index(section[1:], "\n## "); end > 0 {
		section = section[:end]
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)`(?:, `([A-Z][A-Z0-9_]*)`)? \\|").FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
		if m[2] != "" {
			documented = append(documented, m[2])
		}
	}
	help := helpText(t)
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^  ([A-Z][A-Z0-9_]+)(?: \(default .*\))?$`).FindAllStringSubmatch(help, -1) {
		listed = append(listed, m[1])
	}
	if len(listed) < 5 {
		t.Fatalf("--help lists %d inputs, parser broken?\n%s", len(listed), help)
	}
	for _, k := range listed {
		if !slices.Contains(documented, k) {
			t.Errorf("--help lists %s, the README's configuration reference does not", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(listed, k) {
			t.Errorf("the README's configuration reference documents %s, --help does not list it", k)
		}
	}
}

// TestUsageFlagsMatchHelp: every flag in the README's usage table is one firstrun
// takes, and every flag firstrun takes is in the table.
func TestUsageFlagsMatchHelp(t *testing.T) {
	readme := read(t, "README.md")
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z-]+)[^`]*`(?:, `--([a-z-]+)`)? \\|").FindAllStringSubmatch(readme, -1) {
		documented = append(documented, m[1])
		if m[2] != "" {
			documented = append(documented, m[2])
		}
	}
	help := helpText(t)
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		flags = append(flags, m[1])
	}
	for _, f := range flags {
		if f != "help" && !slices.Contains(documented, f) {
			t.Errorf("firstrun takes --%s; the README's usage table does not document it", f)
		}
	}
	for _, f := range documented {
		if f != "help" && !slices.Contains(flags, f) {
			t.Errorf("the README documents --%s; firstrun --help has no such flag", f)
		}
	}
}

// helpText runs `go run ./cmd/firstrun --help`.
func helpText(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/firstrun", "--help")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("firstrun --help: %v\n%s", err, out)
	}
	return string(out)
}
