package bake

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstrun/firstrun/internal/testenv"
)

// alECSUnit is the ecs-init package's ecs.service as Amazon Linux ships it
// (aws/amazon-ecs-agent packaging/amazon-linux-ami-integrated/ecs.service).
const alECSUnit = `[Unit]
Description=Amazon Elastic Container Service - container agent
Documentation=https://aws.amazon.com/documentation/ecs/
Requires=docker.service
After=docker.service
After=cloud-final.service

[Service]
Type=simple
Restart=on-failure
RestartPreventExitStatus=5
RestartSec=10s
EnvironmentFile=-/etc/ecs/ecs.config
ExecStart=/usr/libexec/amazon-ecs-init start

[Install]
WantedBy=multi-user.target
`

// TestECSUnit: ecs-unit.sh writes the package's unit without After=cloud-final.service
// to /etc/systemd/system, every other line kept; a second run changes nothing; a
// package unit without the line fails the build, writing nothing.
func TestECSUnit(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"usr/lib/systemd/system/ecs.service": alECSUnit})
	mustRun(t, "ecs-unit.sh", "ROOT="+root)
	got := readFile(t, root, "etc/systemd/system/ecs.service")
	body := got[strings.Index(got, "[Unit]"):]
	if want := strings.Replace(alECSUnit, "After=cloud-final.service\n", "", 1); body != want {
		t.Errorf("the image's ecs.service:\n%s\nwant the package's without After=cloud-final.service:\n%s", got, want)
	}
	if !strings.HasPrefix(got, "# Written by the image build (packer/scripts/ecs-unit.sh)") {
		t.Errorf("no header saying where it comes from:\n%s", got)
	}

	age(t, root)
	before := testenv.Snapshot(t, root)
	if r := mustRun(t, "ecs-unit.sh", "ROOT="+root); !strings.Contains(r.stdout, "already") {
		t.Errorf("second run: %s", r.stdout)
	}
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))

	changed := t.TempDir()
	writeFiles(t, changed, map[string]string{"usr/lib/systemd/system/ecs.service": strings.Replace(alECSUnit, "After=cloud-final.service\n", "", 1)})
	mustFail(t, "has no line After=cloud-final.service", "ecs-unit.sh", "ROOT="+changed)
	if _, err := os.Stat(filepath.Join(changed, "etc/systemd/system/ecs.service")); err == nil {
		t.Error("a unit was written all the same")
	}
	mustFail(t, "not found", "ecs-unit.sh", "ROOT="+t.TempDir())
}

// TestUserDataCheck: firstrun-user-data-check, firstrun-early.service's ExecCondition,
// lets firstrun join before user data (exit 0) unless a stored user-data script, runcmd
// or the image's own scripts name ECS's or firstrun's files, the agent or cfn-init, or
// cloud-config defers a write_files entry (exit 1, saying which).
func TestUserDataCheck(t *testing.T) {
	check := filepath.Join(testenv.RepoRoot(), "packer", "files", "firstrun-user-data-check")
	for _, c := range []struct {
		name  string
		files map[string]string
		early bool
	}{
		{"no user data", nil, true},
		{"cloud-config only", map[string]string{"instance/cloud-config.txt": "#cloud-config\nwrite_files:\n  - path: /etc/firstrun/firstrun.env\n    content: ECS_CLUSTER=x\n"}, true},
		{"a script of its own", map[string]string{"instance/scripts/part-001": "#!/bin/bash\nyum install -y specs\nsleep 60\n"}, true},
		{"README's shell user data", map[string]string{"instance/scripts/part-001": "#!/bin/bash\ncat > /etc/firstrun/firstrun.env <<'EOF'\nECS_CLUSTER=x\nEOF\nexec /usr/local/bin/firstrun --signal\n"}, false},
		{"the stock AMI's way", map[string]string{"instance/scripts/part-001": "#!/bin/bash\necho ECS_CLUSTER=x >> /etc/ecs/ecs.config\n"}, false},
		{"ecs.config in a variable", map[string]string{"instance/scripts/part-001": "#!/bin/bash\nf=/etc/ecs/ecs.config\n"}, false},
		{"cfn-init", map[string]string{"instance/scripts/part-001": "#!/bin/bash\n/opt/aws/bin/cfn-init -v --stack s --resource r\n"}, false},
		{"runcmd restarting the agent", map[string]string{"instance/scripts/runcmd": "#!/bin/sh\nsystemctl restart ecs\n"}, false},
		{"the image's per-boot script", map[string]string{"scripts/per-boot/10-agent.sh": "#!/bin/sh\necho ECS_ENABLE_TASK_IAM_ROLE=true >>/etc/ecs/ecs.config\n"}, false},
		{"a deferred write_files", map[string]string{"instance/cloud-config.txt": "#cloud-config\nwrite_files:\n  - path: /etc/x\n    defer: true\n"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, c.files)
			cmd := exec.Command("sh", check)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "FIRSTRUN_CLOUD_DIR=" + dir}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			early := err == nil
			if early != c.early {
				t.Errorf("joins before user data: %v, want %v (%v)\n%s", early, c.early, err, stderr.String())
			}
			if want := "joins after user data"; !early && !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), want)
			}
		})
	}
}
