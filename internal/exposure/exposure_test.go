package exposure_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/exposure"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/testenv"
)

func TestFind(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	const cred = "http://bob:p%40ss@proxy.internal:3128"
	// What the CloudWatch agent's translator writes: 0644.
	testenv.WriteFile(t, root, hostpath.CloudWatchEnvConfig, "{\n\t\"HTTPS_PROXY\": \""+cred+"\"\n}", 0o644)
	// firstrun's own files: 0600.
	testenv.WriteFile(t, root, hostpath.CloudWatchCommonConfig, "[proxy]\nhttp_proxy = \""+cred+"\"\n", 0o600)
	// Readable, but no password.
	testenv.WriteFile(t, root, hostpath.ECSConfig, "HTTP_PROXY=http://proxy.internal:3128\n", 0o644)
	// Readable with a password, but in a directory others cannot search.
	testenv.WriteFile(t, root, hostpath.DockerProxyDropIn, "Environment=\"HTTP_PROXY="+cred+"\"\n", 0o644)
	if err := os.Chmod(filepath.Join(root, filepath.Dir(hostpath.DockerProxyDropIn)), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/opt", "/opt/aws", "/opt/aws/amazon-cloudwatch-agent", "/opt/aws/amazon-cloudwatch-agent/etc", "/etc", "/etc/ecs"} {
		if err := os.Chmod(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := exposure.Find(hostpath.Root(root), exposure.Paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != hostpath.CloudWatchEnvConfig || got[0].Mode != 0o644 {
		t.Errorf("Find = %v, want only env-config.json (mode 0644)", got)
	}
	if s := got[0].String(); !strings.Contains(s, "env-config.json") || !strings.Contains(s, "0644") {
		t.Errorf("String() = %q", s)
	}
	// Once the directory above is closed to others, nothing is exposed.
	if err := os.Chmod(filepath.Join(root, "/opt/aws/amazon-cloudwatch-agent/etc"), 0o750); err != nil {
		t.Fatal(err)
	}
	if got, err := exposure.Find(hostpath.Root(root), exposure.Paths); err != nil || len(got) != 0 {
		t.Errorf("Find = %v, %v; want nothing once etc/ is 0750", got, err)
	}
}
