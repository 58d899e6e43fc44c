// Package platform tells which operating system firstrun is configuring, from
// /etc/os-release (os-release(5)), and refuses the ones it does not target.
package platform

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/firstrun/firstrun/internal/hostpath"
)

// OSRelease is where the distribution names itself.
const OSRelease = "/etc/os-release"

// Platform is what os-release says; empty fields when the file is absent (a scratch
// root, a test).
type Platform struct {
	ID, VersionID, PrettyName string
}

// String names the platform for logs.
func (p Platform) String() string {
	switch {
	case p.PrettyName != "":
		return p.PrettyName
	case p.ID != "":
		return strings.TrimSpace(p.ID + " " + p.VersionID)
	}
	return "unknown (no " + OSRelease + ")"
}

// Parse reads os-release content: KEY=value lines, values optionally quoted.
func Parse(data []byte) Platform {
	var p Platform
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			p.ID = v
		case "VERSION_ID":
			p.VersionID = v
		case "PRETTY_NAME":
			p.PrettyName = v
		}
	}
	return p
}

// ErrUnsupported is returned for a platform firstrun does not target.
var ErrUnsupported = errors.New("unsupported platform")

// Check refuses Amazon Linux 1 (the "Amazon Linux AMI", VERSION_ID 2017.09, 2018.03):
// it runs upstart and SysV init, not systemd, so the drop-ins firstrun writes would
// never be read. Every other platform is accepted; Amazon Linux 2023 is the target.
func (p Platform) Check() error {
	if p.ID == "amzn" && strings.HasPrefix(p.VersionID, "20") && strings.Contains(p.VersionID, ".") {
		return fmt.Errorf("%w: %s is Amazon Linux 1, which has no systemd (upstart and SysV init): firstrun targets the Amazon Linux 2023 ECS-optimized AMI (Amazon Linux 2 too)", ErrUnsupported, p)
	}
	return nil
}

// Detect reads os-release under root; a missing file is an unknown platform, not an
// error.
func Detect(root hostpath.Root) (Platform, error) {
	data, err := os.ReadFile(root.Join(OSRelease))
	if errors.Is(err, fs.ErrNotExist) {
		return Platform{}, nil
	}
	if err != nil {
		return Platform{}, fmt.Errorf("reading %s: %w", OSRelease, err)
	}
	return Parse(data), nil
}
