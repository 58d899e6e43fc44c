package platform

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/hostpath"
)

// os-release files as the distributions ship them.
const (
	al2023 = "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\nPLATFORM_ID=\"platform:al2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241212\"\n"
	al2    = "NAME=\"Amazon Linux\"\nVERSION=\"2\"\nID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\nPRETTY_NAME=\"Amazon Linux 2\"\n"
	al1    = "NAME=\"Amazon Linux AMI\"\nVERSION=\"2018.03\"\nID=\"amzn\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"2018.03\"\nPRETTY_NAME=\"Amazon Linux AMI 2018.03\"\n"
	debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
)

func TestCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		osRelease string
		supported bool
		pretty    string
	}{
		"Amazon Linux 2023": {al2023, true, "Amazon Linux 2023.6.20241212"},
		"Amazon Linux 2":    {al2, true, "Amazon Linux 2"},
		"Amazon Linux 1":    {al1, false, "Amazon Linux AMI 2018.03"},
		"Debian":            {debian, true, "Debian GNU/Linux 12 (bookworm)"},
	} {
		p := Parse([]byte(tc.osRelease))
		err := p.Check()
		if (err == nil) != tc.supported || p.String() != tc.pretty {
			t.Errorf("%s: %q, Check() = %v", name, p, err)
		}
		if err != nil && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "no systemd")) {
			t.Errorf("%s: error %v does not say why", name, err)
		}
	}
}

func TestDetect(t *testing.T) {
	root := t.TempDir()
	p, err := Detect(hostpath.Root(root))
	if err != nil || p != (Platform{}) || p.String() != "unknown (no /etc/os-release)" {
		t.Errorf("no os-release: %q %v", p, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, OSRelease), []byte(al2023), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = Detect(hostpath.Root(root))
	if err != nil || p.ID != "amzn" || p.VersionID != "2023" {
		t.Errorf("AL2023: %+v %v", p, err)
	}
}
