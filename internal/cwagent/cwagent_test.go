package cwagent_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/cwagent"
	"github.com/firstrun/firstrun/internal/hostpath"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in                  string
		major, minor, patch int
	}{
		{"1.300060.0\n", 1, 300060, 0},
		{"1.300073.2b1889", 1, 300073, 2},                   // the published CWAGENT_VERSION
		{"  1.300070.0-3-gabc1234-dirty\r\n", 1, 300070, 0}, // git describe, untagged build
		{"v1.300070.1", 1, 300070, 1},
		{"1.300070.0-nightly-build", 1, 300070, 0},
	}
	for _, tt := range tests {
		v, err := cwagent.ParseVersion([]byte(tt.in))
		if err != nil || v.Major != tt.major || v.Minor != tt.minor || v.Patch != tt.patch {
			t.Errorf("ParseVersion(%q) = %+v, %v", tt.in, v, err)
		}
		if v.String() != strings.TrimSpace(tt.in) {
			t.Errorf("String() = %q", v.String())
		}
	}
	for _, bad := range []string{"", "Unknown", "1.300070", "1.x.0", "1.300070.b2", "-1.2.3", "+1.2.3", "1..0"} {
		if v, err := cwagent.ParseVersion([]byte(bad)); err == nil {
			t.Errorf("ParseVersion(%q) = %+v, want an error", bad, v)
		}
	}
}

func TestLess(t *testing.T) {
	order := []string{"0.999999.9", "1.247360.0", "1.300060.0", "1.300069.9", "1.300070.0", "1.300070.1", "1.300100.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, _ := cwagent.ParseVersion([]byte(order[i]))
			b, _ := cwagent.ParseVersion([]byte(order[j]))
			if got := a.Less(b); got != (i < j) {
				t.Errorf("%s < %s = %v", a, b, got)
			}
		}
	}
}

func TestJournald(t *testing.T) {
	tests := []struct {
		data   string
		err    error
		ok     bool
		reason string
	}{
		{"1.300060.0\n", nil, false, "journald units not shipped: CloudWatch agent 1.300060.0 is older than 1.300070.0"},
		{"1.300070.0\n", nil, true, "journald units shipped: CloudWatch agent 1.300070.0 is 1.300070.0 or newer"},
		{"1.300073.2b1889\n", nil, true, "journald units shipped: CloudWatch agent 1.300073.2b1889 is 1.300070.0 or newer"},
		{"Unknown", nil, false, `journald units not shipped: the CloudWatch agent's version is unknown: version "Unknown" is not MAJOR.MINOR.PATCH`},
		{"", os.ErrNotExist, false, "journald units not shipped: the CloudWatch agent has no version file (/opt/aws/amazon-cloudwatch-agent/bin/CWAGENT_VERSION), so it may be older than 1.300070.0"},
		{"", errors.New("permission denied"), false, "journald units not shipped: the CloudWatch agent's version is unknown: permission denied"},
	}
	for _, tt := range tests {
		ok, reason := cwagent.Journald([]byte(tt.data), tt.err)
		if ok != tt.ok || reason != tt.reason {
			t.Errorf("Journald(%q, %v) = %v, %q; want %v, %q", tt.data, tt.err, ok, reason, tt.ok, tt.reason)
		}
	}
}

func TestProbeJournald(t *testing.T) {
	root := hostpath.Root(t.TempDir())
	if ok, reason := cwagent.ProbeJournald(root); ok || !strings.Contains(reason, "no version file") {
		t.Errorf("no agent: %v, %q", ok, reason)
	}
	path := root.Join(hostpath.CloudWatchAgentVersion)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		version string
		ok      bool
	}{{"1.300060.0\n", false}, {"1.300070.0\n", true}} {
		if err := os.WriteFile(path, []byte(tc.version), 0o644); err != nil {
			t.Fatal(err)
		}
		if ok, reason := cwagent.ProbeJournald(root); ok != tc.ok {
			t.Errorf("agent %s: %v, %q", tc.version, ok, reason)
		}
	}
}
