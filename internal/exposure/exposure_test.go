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

const cred = "http://bob:p%40ss@proxy.internal:3128"

// openDirs makes the directories above the given host paths searchable by others
// (t.TempDir is 0700), up to the root.
func openDirs(t *testing.T, root string, paths ...string) {
	t.Helper()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	// What the CloudWatch agent's translator writes: 0644.
	testenv.WriteFile(t, root, hostpath.CloudWatchEnvConfig, "{\n\t\"HTTPS_PROXY\": \""+cred+"\"\n}", 0o644)
	// firstrun's own files: 0600.
	testenv.WriteFile(t, root, hostpath.CloudWatchCommonConfig, "[proxy]\nhttp_proxy = \""+cred+"\"\n", 0o600)
	testenv.WriteFile(t, root, hostpath.DockerProxyEnv, "HTTP_PROXY="+cred+"\n", 0o600)
	// Readable, but no password: ecs.config, and a drop-in that names its env file.
	testenv.WriteFile(t, root, hostpath.ECSConfig, "HTTP_PROXY=http://proxy.internal:3128\n", 0o644)
	testenv.WriteFile(t, root, hostpath.DockerProxyDropIn, "[Service]\nEnvironmentFile=-"+hostpath.DockerProxyEnv+"\n", 0o644)
	// Readable with a password, but in a directory others cannot search.
	testenv.WriteFile(t, root, hostpath.AwslogsProxyConfig, "HTTP_PROXY="+cred+"\n", 0o644)
	openDirs(t, root, hostpath.CloudWatchEnvConfig, hostpath.ECSConfig, hostpath.DockerProxyEnv, hostpath.DockerProxyDropIn, hostpath.AwslogsProxyConfig)
	if err := os.Chmod(filepath.Join(root, hostpath.AwslogsDir), 0o750); err != nil {
		t.Fatal(err)
	}
	got, err := exposure.Find(hostpath.Root(root), exposure.Paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != hostpath.CloudWatchEnvConfig || got[0].Mode != 0o644 || got[0].UnitSetting {
		t.Fatalf("Find = %v, want only env-config.json (mode 0644)", got)
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

// TestFindUnitSettings: a drop-in that sets the proxy with Environment=, as firstrun
// wrote before it used env files, exposes the password over D-Bus however closed the
// file and its directories are; a world-readable proxy env file exposes it too.
func TestFindUnitSettings(t *testing.T) {
	root := t.TempDir() // 0700: nothing is readable by others through it
	testenv.WriteFile(t, root, hostpath.ECSProxyDropIn, "[Service]\nEnvironment=\"HTTP_PROXY="+strings.ReplaceAll(cred, "%", "%%")+"\"\n", 0o600)
	testenv.WriteFile(t, root, hostpath.DockerProxyDropIn, "[Service]\nEnvironmentFile=-"+hostpath.DockerProxyEnv+"\n", 0o644)
	got, err := exposure.Find(hostpath.Root(root), exposure.Paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != hostpath.ECSProxyDropIn || !got[0].UnitSetting {
		t.Fatalf("Find = %v, want only the ECS drop-in, as a unit setting", got)
	}
	if s := got[0].String(); !strings.Contains(s, "systemctl show") || strings.Contains(s, "mode") {
		t.Errorf("String() = %q, want it to say that systemctl show shows it", s)
	}

	testenv.WriteFile(t, root, hostpath.ECSProxyEnv, "HTTP_PROXY="+cred+"\n", 0o644) // chmod'ed by hand
	openDirs(t, root, hostpath.ECSProxyEnv)
	got, err = exposure.Find(hostpath.Root(root), []string{hostpath.ECSProxyEnv})
	if err != nil || len(got) != 1 || got[0].Mode != 0o644 || got[0].UnitSetting {
		t.Errorf("Find = %v, %v; want the env file, mode 0644", got, err)
	}
}

// TestReport: the detail names each exposed file and says what helps: a rerun for
// firstrun's own files, nothing firstrun can do for the CloudWatch agent's copy.
func TestReport(t *testing.T) {
	root := t.TempDir()
	if ok, detail := exposure.Report(hostpath.Root(root)); !ok || detail != "in no file that every local user can read" {
		t.Errorf("Report on an empty root = %v, %q", ok, detail)
	}
	testenv.WriteFile(t, root, hostpath.DockerProxyDropIn, "[Service]\nEnvironment=\"HTTPS_PROXY="+cred+"\"\n", 0o600)
	ok, detail := exposure.Report(hostpath.Root(root))
	if ok || !strings.Contains(detail, hostpath.DockerProxyDropIn+" (a unit setting") || !strings.Contains(detail, "rerun firstrun") ||
		strings.Contains(detail, "CloudWatch agent") || strings.Contains(detail, "p%40ss") {
		t.Errorf("Report with an old drop-in = %v, %q", ok, detail)
	}
	testenv.WriteFile(t, root, hostpath.CloudWatchEnvConfig, "{\"HTTPS_PROXY\": \""+cred+"\"}", 0o644)
	openDirs(t, root, hostpath.CloudWatchEnvConfig)
	_, detail = exposure.Report(hostpath.Root(root))
	if !strings.Contains(detail, "env-config.json (mode 0644)") || !strings.Contains(detail, "firstrun cannot change what the CloudWatch agent writes") {
		t.Errorf("Report with env-config.json = %q", detail)
	}
}
