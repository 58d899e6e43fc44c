package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The seed script's landmarks: its sections start with these comment lines.
const (
	seedStartServices = "# Start services"
	seedHealthCheck   = "# Health check"
)

// seedScript is the seed script's path in the shared directory beside the repository.
const seedScript = "reference/seed-firstrun.sh"

// seedRootVar is the variable the rewritten seed script takes its root from.
const seedRootVar = "SEED_ROOT"

// seed is the seed script (shared/reference/seed-firstrun.sh) made runnable on this
// host: its /etc paths moved under $SEED_ROOT, and sudo, service, chkconfig and start
// stubbed on its PATH. Nothing else in it is changed: it still polls
// http://localhost:51678/v1/metadata with curl | jq every 5 s.
type seed struct {
	// Full is the whole script; Config is the script up to "# Start services": from
	// start to all files written.
	Full, Config string
	// Stubs is the directory of the stubbed commands, first on the script's PATH.
	Stubs string
}

// stubs are the commands the seed runs as root or against Amazon Linux 1's init:
// sudo runs its command (the benchmark already runs as the user it needs), and the
// service commands do nothing, as firstrun's services phase is skipped.
var stubs = map[string]string{
	"sudo":      "#!/bin/sh\nexec \"$@\"\n",
	"service":   "#!/bin/sh\nexit 0\n",
	"chkconfig": "#!/bin/sh\nexit 0\n",
	"start":     "#!/bin/sh\nexit 0\n",
}

// prepareSeed writes the runnable seed into dir from the script at src.
func prepareSeed(src, dir string) (seed, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return seed{}, fmt.Errorf("seed script: %w", err)
	}
	full, config, err := rewriteSeed(string(data))
	if err != nil {
		return seed{}, fmt.Errorf("seed script %s: %w", src, err)
	}
	s := seed{
		Full:   filepath.Join(dir, "seed-firstrun.sh"),
		Config: filepath.Join(dir, "seed-config.sh"),
		Stubs:  filepath.Join(dir, "stubs"),
	}
	if err := os.MkdirAll(s.Stubs, 0o755); err != nil {
		return seed{}, err
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(s.Stubs, name), []byte(body), 0o755); err != nil {
			return seed{}, err
		}
	}
	if err := os.WriteFile(s.Full, []byte(full), 0o755); err != nil {
		return seed{}, err
	}
	if err := os.WriteFile(s.Config, []byte(config), 0o755); err != nil {
		return seed{}, err
	}
	return s, nil
}

// rewriteSeed returns the script with every /etc path under $SEED_ROOT, whole and cut
// before "# Start services". It fails when the script no longer has the shape this
// relies on.
func rewriteSeed(script string) (full, config string, err error) {
	if !strings.Contains(script, "/etc/") {
		return "", "", errors.New("writes no /etc path: not the seed script?")
	}
	full = strings.ReplaceAll(script, "/etc/", "${"+seedRootVar+"}/etc/")
	i := strings.Index(full, "\n"+seedStartServices+"\n")
	if i < 0 || !strings.Contains(full, "\n"+seedHealthCheck+"\n") {
		return "", "", fmt.Errorf("has no %q or %q section", seedStartServices, seedHealthCheck)
	}
	return full, full[:i+1], nil
}

// seedDirs are the directories the seed writes into; it creates none itself, as on
// Amazon Linux 1 they came with the packages.
var seedDirs = []string{"etc/ecs", "etc/sysconfig", "etc/awslogs"}

// seedRoot makes root ready for the seed.
func seedRoot(root string) error {
	for _, d := range seedDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// env is the seed's environment for root: the inputs, its root, and PATH with the
// stubs first.
func (s seed) env(root string, in []string) []string {
	return append([]string{seedRootVar + "=" + root, "PATH=" + s.Stubs + ":/usr/bin:/bin"}, in...)
}
