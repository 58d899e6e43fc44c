// Package bake tests the image build's provisioning scripts (packer/scripts): each runs
// where it can be faithful. cleanup.sh runs in a booted sandbox instance (systemd,
// docker, an ecs.service shaped like Amazon Linux's), where it has services to stop,
// and on a scratch root as in a chroot (systemctl --root); time.sh and cloudinit.sh run with bash on a scratch root (ROOT), which is all they
// touch; storage.sh formats and mounts a real loop device, with its fstab and mount
// point under a scratch root. Tests skip loudly where the machine lacks something
// (root, loop devices, mkfs.xfs, cloud-init's Python module, the sandbox) and fail
// under CI=true instead.
package bake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

// --- time.sh --------------------------------------------------------------------------

// tssLine is the AWS docs' chrony line for the Amazon Time Sync Service.
const tssLine = "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4"

// al2023ChronyConf is /etc/chrony.conf as AL2023 has it (its directives as
// amazonlinux/amazon-linux-2023 issue 219 lists them): the sources live in
// /etc/chrony.d.
const al2023ChronyConf = `# Use public servers from the pool.ntp.org project.
# Please consider joining the pool (https://www.pool.ntp.org/join.html).
sourcedir /run/chrony-dhcp
sourcedir /etc/chrony.d

# Record the rate at which the system clock gains/losses time.
driftfile /var/lib/chrony/drift

# Allow the system clock to be stepped in the first three updates
# if its offset is larger than 1 second.
makestep 1.0 3

# Enable kernel synchronization of the real-time clock (RTC).
rtcsync

keyfile /etc/chrony.keys
ntsdumpdir /var/lib/chrony
logdir /var/log/chrony
log measurements statistics tracking

# Load additional configuration from /etc/chrony.d
confdir /etc/chrony.d
`

// al2023NTPPool is AL2023's /etc/chrony.d/ntp-pool.sources.
const al2023NTPPool = `# Use public servers from the pool.ntp.org project.
# Please consider joining the pool (https://www.pool.ntp.org/join.html).
pool 0.amazon.pool.ntp.org iburst maxsources 1
pool 1.amazon.pool.ntp.org iburst maxsources 1
pool 2.amazon.pool.ntp.org iburst maxsources 2
`

// zoneinfo is a small zoneinfo tree: zone files start with the TZif magic.
func zoneinfo() map[string]string {
	tz := "TZif2\x00\x00\x00 (a compiled zone, shortened)"
	return map[string]string{
		"usr/share/zoneinfo/UTC":           tz + " UTC",
		"usr/share/zoneinfo/US/Eastern":    tz + " US/Eastern",
		"usr/share/zoneinfo/Europe/Berlin": tz + " Europe/Berlin",
		"usr/share/zoneinfo/zone.tab":      "# tzdb timezone descriptions\nUS\t+404251-0740023\tAmerica/New_York\n",
	}
}

// timeRoot makes a scratch root with the zoneinfo tree, /etc/localtime linked to UTC
// and the given files.
func timeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, zoneinfo())
	writeFiles(t, root, files)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/share/zoneinfo/UTC", filepath.Join(root, "etc", "localtime")); err != nil {
		t.Fatal(err)
	}
	return root
}

// localtime returns where /etc/localtime under root points.
func localtime(t *testing.T, root string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(root, "etc", "localtime"))
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// TestTime runs time.sh on scratch roots: the time zone link, the chrony source added
// only where missing (AL2023 has it already), nothing changed by a second run or by a
// bad TIMEZONE.
func TestTime(t *testing.T) {
	t.Parallel()
	linkLocal := tssLine + "\n"
	cases := []struct {
		name    string
		files   map[string]string
		tz      string   // TIMEZONE, "" for unset
		link    string   // /etc/localtime's target after the run
		changed []string // what the first run changes
		want    map[string]string
	}{{
		// AL2023: chrony.d/link-local.sources has the line already.
		name: "al2023",
		files: map[string]string{
			"etc/chrony.conf":                     al2023ChronyConf,
			"etc/chrony.d/link-local.sources":     linkLocal,
			"etc/chrony.d/ntp-pool.sources":       al2023NTPPool,
			"etc/chrony.d/README":                 "Files found under the /etc/chrony.d directory...\n",
			"etc/sysconfig/network":               "NETWORKING=yes\n",
			"usr/share/zoneinfo/America/New_York": "TZif2 New York",
		},
		tz:      "US/Eastern",
		link:    "../usr/share/zoneinfo/US/Eastern",
		changed: []string{"etc/localtime"},
	}, {
		// AL2022 as in issue 219: chrony.conf reads chrony.d, which lacks the service.
		name: "sourcedir without the service",
		files: map[string]string{
			"etc/chrony.conf":               al2023ChronyConf,
			"etc/chrony.d/ntp-pool.sources": al2023NTPPool,
		},
		tz:      "Europe/Berlin",
		link:    "../usr/share/zoneinfo/Europe/Berlin",
		changed: []string{"etc/chrony.d/amazon-time-sync.sources (created)", "etc/localtime"},
		want: map[string]string{
			"etc/chrony.d/amazon-time-sync.sources": "# Amazon Time Sync Service, link-local (written by the image build: time.sh)\n" + tssLine + "\n",
		},
	}, {
		// One chrony.conf, the chapter's line commented out (and without the polls):
		// the line goes before the first pool line, every other line stays.
		name: "single chrony.conf",
		files: map[string]string{
			"etc/chrony.conf": "# Use public servers from the pool.ntp.org project.\n" +
				"#server 169.254.169.123 prefer iburst\n" +
				"pool 2.amazon.pool.ntp.org iburst\n" +
				"driftfile /var/lib/chrony/drift\n" +
				"makestep 1.0 3\n" +
				"rtcsync\n",
		},
		tz:      "", // the default: UTC, as the link already says
		link:    "../usr/share/zoneinfo/UTC",
		changed: []string{"etc/chrony.conf"},
		want: map[string]string{
			"etc/chrony.conf": "# Use public servers from the pool.ntp.org project.\n" +
				"#server 169.254.169.123 prefer iburst\n" +
				tssLine + "\n" +
				"pool 2.amazon.pool.ntp.org iburst\n" +
				"driftfile /var/lib/chrony/drift\n" +
				"makestep 1.0 3\n" +
				"rtcsync\n",
		},
	}, {
		// No server or pool line at all: appended.
		name:    "no sources",
		files:   map[string]string{"etc/chrony.conf": "driftfile /var/lib/chrony/drift\nrtcsync\n"},
		tz:      "UTC",
		link:    "../usr/share/zoneinfo/UTC",
		changed: []string{"etc/chrony.conf"},
		want:    map[string]string{"etc/chrony.conf": "driftfile /var/lib/chrony/drift\nrtcsync\n" + tssLine + "\n"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := timeRoot(t, c.files)
			env := []string{"ROOT=" + root}
			if c.tz != "" {
				env = append(env, "TIMEZONE="+c.tz)
			}
			age(t, root)
			before := testenv.Snapshot(t, root)
			mustRun(t, "time.sh", env...)
			after := testenv.Snapshot(t, root)
			sameList(t, "changed by the first run", changed(before, after), c.changed)
			if got := localtime(t, root); got != c.link {
				t.Errorf("/etc/localtime -> %q, want %q", got, c.link)
			}
			for p, want := range c.want {
				if got := readFile(t, root, p); got != want {
					t.Errorf("%s:\ngot  %q\nwant %q", p, got, want)
				}
			}

			age(t, root)
			before = testenv.Snapshot(t, root)
			r := mustRun(t, "time.sh", env...)
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
			if !strings.Contains(r.stdout, "chrony already uses the Amazon Time Sync Service") {
				t.Errorf("second run does not say the source is there:\n%s", r.stdout)
			}
		})
	}
}

// TestTimeRefuses: a TIMEZONE that is not a zone, or no chrony.conf, fails before
// anything is changed (the time zone link included).
func TestTimeRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ tz, err string }{
		{"Mars/Olympus_Mons", "no such zone"},
		{"zone.tab", "is not a zone file"},
		{"US", "no such zone"}, // a directory
		{"../../../etc/passwd", "is not a zone name"},
		{"/usr/share/zoneinfo/UTC", "is not a zone name"},
		{"US/Eastern;rm -rf /", "is not a zone name"},
	} {
		t.Run(c.tz, func(t *testing.T) {
			t.Parallel()
			root := timeRoot(t, map[string]string{"etc/chrony.conf": "pool 2.amazon.pool.ntp.org iburst\n"})
			age(t, root)
			before := testenv.Snapshot(t, root)
			mustFail(t, c.err, "time.sh", "ROOT="+root, "TIMEZONE="+c.tz)
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
	t.Run("no chrony.conf", func(t *testing.T) {
		t.Parallel()
		root := timeRoot(t, nil)
		age(t, root)
		before := testenv.Snapshot(t, root)
		mustFail(t, "chrony is not installed", "time.sh", "ROOT="+root, "TIMEZONE=US/Eastern")
		testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
	})
}

// --- cloudinit.sh -----------------------------------------------------------------------

// dropIn is what cloudinit.sh writes to /etc/cloud/cloud.cfg.d/99-firstrun.cfg.
const dropIn = `#cloud-config
# Written by the image build (packer/scripts/cloudinit.sh). No repository refresh and
# no package upgrade at boot: AL2023 stays on the release its AMI is locked to, and
# cloud-init runs before user data could set an HTTP proxy.
repo_update: false
repo_upgrade: none
`

const dropInPath = "etc/cloud/cloud.cfg.d/99-firstrun.cfg"

// cloudCfg is an Amazon Linux cloud.cfg; keys is spliced in among its other lines.
func cloudCfg(keys string) string {
	return `# WARNING: Modifications to this file may be overridden by files in
# /etc/cloud/cloud.cfg.d

users:
 - default

disable_root: true
ssh_pwauth:   false

mount_default_fields: [~, ~, 'auto', 'defaults,nofail', '0', '2']
resize_rootfs: noblock
resize_rootfs_tmp: /dev
ssh_deletekeys:   true
ssh_genkeytypes:  ['ed25519', 'ecdsa']
syslog_fix_perms: ~

datasource_list: [ Ec2, None ]
` + keys + `
cloud_init_modules:
 - migrator
 - bootcmd
 - write-files
 - growpart
 - resizefs
 - set-hostname
 - update-hostname
 - update-etc-hosts
 - rsyslog
 - users-groups
 - ssh

cloud_config_modules:
 - locale
 - set-passwords
 - yum-add-repo
 - package-update-upgrade-install
 - timezone
 - disable-ec2-metadata
 - runcmd

system_info:
  # This will affect which distro class gets used
  distro: amazon
  distro_short: amzn
  default_user:
    name: ec2-user
    lock_passwd: true
    gecos: EC2 Default User
    groups: [ wheel, adm, systemd-journal ]
    sudo: [ "ALL=(ALL) NOPASSWD:ALL" ]
    shell: /bin/bash
`
}

// ecsDropIn is the ECS-optimized AMI's cloud.cfg.d/90_ecs.cfg (aws/amazon-ecs-ami
// files/90_ecs.cfg.amzn2).
const ecsDropIn = "#cloud-config\nrepo_upgrade: none\n\nsystem_info:\n  default_user:\n    groups: [ \"wheel\", \"docker\" ]\n\n"

// cloudInitCases are the cloud-init configurations cloudinit.sh is run on.
var cloudInitCases = []struct {
	name  string
	files map[string]string
}{
	{"both keys set otherwise", map[string]string{
		"etc/cloud/cloud.cfg": cloudCfg("repo_upgrade: security\nrepo_upgrade_exclude:\n - kernel*\n - nvidia*\nrepo_update: true\n"),
	}},
	{"both keys and the ECS AMI's drop-in", map[string]string{
		"etc/cloud/cloud.cfg":                  cloudCfg("repo_update: true\nrepo_upgrade: all\n"),
		"etc/cloud/cloud.cfg.d/05_logging.cfg": "_log:\n - &log_base |\n   [loggers]\n   keys=root\n",
		"etc/cloud/cloud.cfg.d/90_ecs.cfg":     ecsDropIn,
	}},
	{"keys missing", map[string]string{
		"etc/cloud/cloud.cfg": cloudCfg(""),
	}},
	{"keys commented out", map[string]string{
		"etc/cloud/cloud.cfg": cloudCfg("# repo_upgrade: security\n#repo_update: true\n"),
	}},
	{"an old drop-in of ours", map[string]string{
		"etc/cloud/cloud.cfg": cloudCfg("repo_upgrade: security\n"),
		dropInPath:            "repo_upgrade: security\n",
	}},
}

// TestCloudInit runs cloudinit.sh on scratch roots: it writes its drop-in with exactly
// the two keys, touches nothing else (cloud.cfg stays byte for byte, mtime too), and a
// second run changes nothing at all.
func TestCloudInit(t *testing.T) {
	t.Parallel()
	for _, c := range cloudInitCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, c.files)
			age(t, root)
			before := testenv.Snapshot(t, root)
			mustRun(t, "cloudinit.sh", "ROOT="+root)
			after := testenv.Snapshot(t, root)
			want := []string{dropInPath + " (created)"}
			if _, ok := c.files[dropInPath]; ok {
				want = []string{dropInPath}
			}
			if _, ok := before[filepath.Dir(dropInPath)]; !ok {
				want = append([]string{filepath.Dir(dropInPath) + " (created)"}, want...)
			}
			sameList(t, "changed by the first run", changed(before, after), want)
			if got := readFile(t, root, dropInPath); got != dropIn {
				t.Errorf("%s:\ngot  %q\nwant %q", dropInPath, got, dropIn)
			}
			if fi, err := os.Stat(filepath.Join(root, dropInPath)); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: %v, mode %v, want 0644", dropInPath, err, fi.Mode())
			}

			age(t, root)
			before = testenv.Snapshot(t, root)
			r := mustRun(t, "cloudinit.sh", "ROOT="+root)
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
			if !strings.Contains(r.stdout, "already sets") {
				t.Errorf("second run does not say the drop-in is there:\n%s", r.stdout)
			}
		})
	}
}

// TestCloudInitEffective asks cloud-init itself (its Python module, as Debian packages
// it: the same read_conf_with_confd that AL2023's cloud-init merges /etc/cloud with)
// what the merged configuration says after cloudinit.sh: the drop-in wins over
// cloud.cfg and over the ECS AMI's 90_ecs.cfg.
func TestCloudInitEffective(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3"
	err := exec.Command(python, "-c", "import cloudinit.util").Run()
	testenv.Need(t, err == nil, "cloud-init's Python module for "+python+" (Debian: cloud-init)")
	merged := func(t *testing.T, root string) map[string]any {
		t.Helper()
		out, err := exec.Command(python, "-c", `
import json, sys
from cloudinit import util
cfg = util.read_conf_with_confd(sys.argv[1])
print(json.dumps({k: cfg.get(k) for k in ("repo_update", "repo_upgrade", "ssh_pwauth")}))
`, filepath.Join(root, "etc/cloud/cloud.cfg")).Output()
		if err != nil {
			t.Fatalf("cloud-init: %v", err)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("cloud-init said %q: %v", out, err)
		}
		return got
	}
	for _, c := range cloudInitCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, c.files)
			t.Logf("before: %v", merged(t, root))
			mustRun(t, "cloudinit.sh", "ROOT="+root)
			got := merged(t, root)
			want := map[string]any{"repo_update": false, "repo_upgrade": "none", "ssh_pwauth": false}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("merged configuration %v, want %v", got, want)
			}
		})
	}
}

// TestCloudInitRefuses: no cloud.cfg (no cloud-init), or a drop-in read after ours that
// sets a key, fails before anything is written.
func TestCloudInitRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, err string
		files     map[string]string
	}{
		{"no cloud.cfg", "cloud-init is not installed", map[string]string{"etc/hostname": "bake\n"}},
		{"later drop-in wins", "sets repo_upgrade", map[string]string{
			"etc/cloud/cloud.cfg":                  cloudCfg(""),
			"etc/cloud/cloud.cfg.d/99_zz-site.cfg": "repo_upgrade: all\n",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, c.files)
			age(t, root)
			before := testenv.Snapshot(t, root)
			mustFail(t, c.err, "cloudinit.sh", "ROOT="+root)
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
		})
	}
}

// --- storage.sh -------------------------------------------------------------------------

// loopDevice attaches a new sparse image file of size bytes to a loop device and
// returns the device; it is detached when the test ends. It skips (fails under CI)
// where loop devices cannot be used.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	needRoot(t)
	need(t, "mount", "losetup")
	img := filepath.Join(t.TempDir(), "volume.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	testenv.Need(t, err == nil, fmt.Sprintf("a loop device (losetup --find --show: %v: %s)", err, bytes.TrimSpace(out)))
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// unmountAtEnd unmounts whatever is mounted at dir when the test ends (before its
// temporary directories go).
func unmountAtEnd(t *testing.T, dir string) {
	t.Cleanup(func() {
		for mounted(dir) != "" {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", dir, err, out)
				return
			}
		}
	})
}

// mounted returns the source mounted at dir, "" if none; the topmost if several.
func mounted(dir string) string {
	out, _ := exec.Command("findmnt", "-rn", "-M", dir, "-o", "SOURCE").Output() // exit 1: none
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// mountCount returns how many file systems are mounted at dir.
func mountCount(dir string) int {
	out, _ := exec.Command("findmnt", "-rn", "-M", dir, "-o", "SOURCE").Output() // exit 1: none
	return len(strings.Fields(string(out)))
}

// probe returns blkid's low-level view of a device: TYPE, LABEL, UUID...
func probe(t *testing.T, dev string) map[string]string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "export", dev).Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 2) { // 2: nothing found
		t.Fatalf("blkid %s: %v", dev, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// uniqueLabel returns a label no other test's volume has (mount finds volumes by label).
func uniqueLabel(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "bk" + hex.EncodeToString(b) // 10 characters: xfs allows 12
}

// amiFstab is AL2023's /etc/fstab, without a newline at its end.
const amiFstab = "#\nUUID=8a3e9a4b-1bde-4b66-8ba4-6d1a0b3b4c11     /           xfs    defaults,noatime  1   1\n" +
	"UUID=4C6E-29A6        /boot/efi       vfat    defaults,noatime,uid=0,gid=0,umask=0077,shortname=winnt,x-systemd.automount 0 2"

// TestStorage formats and mounts a real block device (a loop device) with storage.sh,
// named through a symlink as udev's /dev/xvdcz -> /dev/nvme1n1 on Nitro instances:
// mkfs once with the label, one fstab line by label with nofail, the mount (with what
// was at the mount point moved onto the volume); a second run neither reformats (same
// UUID) nor touches fstab (same bytes, same mtime) nor mounts again; after an unmount
// a third run mounts it from fstab.
func TestStorage(t *testing.T) {
	t.Parallel()
	for _, fs := range []struct {
		fstype, pkg string
		size        int64
		pass        string
	}{
		{"xfs", "xfsprogs", 320 << 20, "0"}, // mkfs.xfs wants 300 MiB at least; the file is sparse
		{"ext4", "e2fsprogs", 64 << 20, "2"},
	} {
		t.Run(fs.fstype, func(t *testing.T) {
			t.Parallel()
			needRoot(t)
			need(t, "util-linux, mount, "+fs.pkg, "blkid", "findmnt", "mount", "umount", "mkfs."+fs.fstype)
			kernelFS, _ := os.ReadFile("/proc/filesystems")
			testenv.Need(t, strings.Contains(string(kernelFS), "\t"+fs.fstype+"\n"), fs.fstype+" in the kernel (/proc/filesystems)")
			dev := loopDevice(t, fs.size)
			label := uniqueLabel(t)

			root := t.TempDir()
			target := filepath.Join(root, "var/lib/docker")
			unmountAtEnd(t, target)
			writeFiles(t, root, map[string]string{
				"etc/fstab":                           amiFstab,
				"var/lib/docker/image/preloaded.json": `{"ecs-agent": "loaded before the volume"}`,
			})
			link := filepath.Join(t.TempDir(), "xvdcz")
			if err := os.Symlink(dev, link); err != nil {
				t.Fatal(err)
			}
			env := []string{"ROOT=" + root, "DOCKER_VOLUME_LABEL=" + label, "DOCKER_VOLUME_FSTYPE=" + fs.fstype}

			// First run, through the udev-style symlink.
			r := mustRun(t, "storage.sh", append(env, "DOCKER_VOLUME_DEVICE="+link)...)
			if !strings.Contains(r.stdout, link+" is "+dev) {
				t.Errorf("the symlink was not resolved to %s:\n%s", dev, r.stdout)
			}
			p := probe(t, dev)
			if p["TYPE"] != fs.fstype || p["LABEL"] != label || p["UUID"] == "" {
				t.Fatalf("%s after the first run: %v, want TYPE=%s LABEL=%s and a UUID", dev, p, fs.fstype, label)
			}
			uuid := p["UUID"]
			line := fmt.Sprintf("LABEL=%s\t/var/lib/docker\t%s\tdefaults,noatime,nofail,x-systemd.device-timeout=30s,x-systemd.before=docker.service\t0\t%s\n", label, fs.fstype, fs.pass)
			wantFstab := amiFstab + "\n" + line
			if got := readFile(t, root, "etc/fstab"); got != wantFstab {
				t.Errorf("fstab:\ngot  %q\nwant %q", got, wantFstab)
			}
			if got := mounted(target); got != dev {
				t.Fatalf("mounted at %s: %q, want %s", target, got, dev)
			}
			// The content that was at the mount point is on the volume now.
			out, err := exec.Command("findmnt", "-rn", "-o", "SOURCE", "-T", filepath.Join(target, "image/preloaded.json")).Output()
			if err != nil || strings.TrimSpace(string(out)) != dev {
				t.Errorf("image/preloaded.json is on %q (%v), want %s", out, err, dev)
			}
			if got := readFile(t, root, "var/lib/docker/image/preloaded.json"); !strings.Contains(got, "loaded before the volume") {
				t.Errorf("image/preloaded.json on the volume: %q", got)
			}

			// Second run, the device named directly: nothing changes.
			fstab := filepath.Join(root, "etc/fstab")
			if err := os.Chtimes(fstab, oldTime, oldTime); err != nil {
				t.Fatal(err)
			}
			r = mustRun(t, "storage.sh", append(env, "DOCKER_VOLUME_DEVICE="+dev)...)
			if got := probe(t, dev)["UUID"]; got != uuid {
				t.Errorf("reformatted: UUID %s, was %s", got, uuid)
			}
			if strings.Contains(r.stdout, "formatting "+dev) {
				t.Errorf("second run formatted:\n%s", r.stdout)
			}
			if got := readFile(t, root, "etc/fstab"); got != wantFstab {
				t.Errorf("fstab after the second run:\ngot  %q\nwant %q", got, wantFstab)
			}
			if fi, err := os.Stat(fstab); err != nil || !fi.ModTime().Equal(oldTime) {
				t.Errorf("fstab rewritten by the second run (mtime %v, %v)", fi.ModTime(), err)
			}
			if n := mountCount(target); n != 1 {
				t.Errorf("%d mounts at %s after the second run, want 1", n, target)
			}

			// Unmounted (a reboot without the mount, say): the moved content is not left
			// behind on the root file system, and a third run mounts it from fstab.
			if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v: %s", err, out)
			}
			if entries, err := os.ReadDir(target); err != nil || len(entries) != 0 {
				t.Errorf("under the mount point on the root file system: %v (%v), want nothing", entries, err)
			}
			mustRun(t, "storage.sh", append(env, "DOCKER_VOLUME_DEVICE="+link)...)
			if got := mounted(target); got != dev {
				t.Errorf("third run: mounted at %s: %q, want %s", target, got, dev)
			}
			if got := probe(t, dev)["UUID"]; got != uuid {
				t.Errorf("third run reformatted: UUID %s, was %s", got, uuid)
			}
			if got := readFile(t, root, "etc/fstab"); got != wantFstab {
				t.Errorf("fstab after the third run:\ngot  %q\nwant %q", got, wantFstab)
			}
			if got := readFile(t, root, "var/lib/docker/image/preloaded.json"); !strings.Contains(got, "loaded before the volume") {
				t.Errorf("image/preloaded.json after the third run: %q", got)
			}
		})
	}
}

// TestStorageRefuses: storage.sh never formats a device that holds a file system it did
// not make (another label, another type), and fails on a missing device, before
// touching fstab or mounting anything.
func TestStorageRefuses(t *testing.T) {
	t.Parallel()
	needRoot(t)
	need(t, "util-linux, mount, e2fsprogs", "blkid", "findmnt", "mount", "mkfs.ext4", "mkfs.ext3")
	dev := loopDevice(t, 16<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "other", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	uuid := probe(t, dev)["UUID"]
	for _, c := range []struct {
		name, err string
		env       []string
	}{
		{"another label", "labelled 'other', not", []string{"DOCKER_VOLUME_DEVICE=" + dev, "DOCKER_VOLUME_FSTYPE=ext4"}},
		{"another type", "already holds a ext4 file system", []string{"DOCKER_VOLUME_DEVICE=" + dev, "DOCKER_VOLUME_FSTYPE=ext3", "DOCKER_VOLUME_LABEL=other"}},
		{"missing device", "does not exist", []string{"DOCKER_VOLUME_DEVICE=/dev/xvdcz-bake-missing", "DOCKER_VOLUME_FSTYPE=ext4"}},
		{"label with a space", "only letters", []string{"DOCKER_VOLUME_DEVICE=" + dev, "DOCKER_VOLUME_LABEL=docker data"}},
		{"relative mount point", "an absolute path", []string{"DOCKER_VOLUME_DEVICE=" + dev, "DOCKER_VOLUME_MOUNTPOINT=var/lib/docker"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"etc/fstab": amiFstab + "\n"})
			target := filepath.Join(root, "var/lib/docker")
			unmountAtEnd(t, target)
			age(t, root)
			before := testenv.Snapshot(t, root)
			mustFail(t, c.err, "storage.sh", append([]string{"ROOT=" + root, "DOCKER_VOLUME_LABEL=" + uniqueLabel(t)}, c.env...)...)
			testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
			if got := probe(t, dev); got["UUID"] != uuid || got["LABEL"] != "other" || got["TYPE"] != "ext4" {
				t.Errorf("%s was changed: %v", dev, got)
			}
			if got := mounted(target); got != "" {
				t.Errorf("%s mounted at %s", got, target)
			}
		})
	}
}

// --- cleanup.sh -------------------------------------------------------------------------

// TestCleanup runs cleanup.sh in a booted sandbox where the build left docker and the
// ECS agent enabled and running, an agent checkpoint, firstrun's state and the
// instance's traces: afterwards the units are disabled and inactive, the checkpoint
// directory is empty, and the state, config, logs and traces are gone while what must
// stay stays; a second run succeeds and changes nothing more.
func TestCleanup(t *testing.T) {
	t.Parallel()
	s := sandbox.Boot(t)
	step := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	sh := func(args ...string) string {
		t.Helper()
		out, err := s.Run(step(2*time.Minute), args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(path, content string) {
		t.Helper()
		if err := s.WriteFile(step(10*time.Second), path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(path string) bool {
		_, _, code, err := s.Exec(step(10*time.Second), nil, "test", "-e", path)
		if err != nil {
			t.Fatal(err)
		}
		return code == 0
	}
	units := []string{"ecs.service", "docker.service", "docker.socket", "containerd.service"}
	state := func(unit string) string {
		t.Helper()
		// is-enabled and is-active exit non-zero for disabled and inactive: read stdout.
		en, _, _, err := s.Exec(step(10*time.Second), nil, "systemctl", "is-enabled", unit)
		if err != nil {
			t.Fatal(err)
		}
		ac, _, _, err := s.Exec(step(10*time.Second), nil, "systemctl", "is-active", unit)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(en)) + "/" + strings.TrimSpace(string(ac))
	}

	// The build instance: the agent configured and running (with docker), as after a
	// Packer build that started them.
	write("/etc/ecs/ecs.config", "ECS_CLUSTER=bake\n")
	sh("systemctl", "enable", "--now", "containerd.service", "docker.socket", "docker.service", "ecs.service")
	ctx := step(2 * time.Minute)
	for {
		all := true
		for _, u := range units {
			if st := state(u); st != "enabled/active" {
				all = false
			}
		}
		if all {
			break
		}
		select {
		case <-ctx.Done():
			for _, u := range units {
				t.Logf("%s: %s", u, state(u))
			}
			t.Fatal("docker and ecs never became enabled and active")
		case <-time.After(100 * time.Millisecond):
		}
	}

	// What the build left behind, and what must stay.
	gone := map[string]string{
		"/var/lib/ecs/data/agent.db":                      "checkpoint: cluster bake",
		"/var/lib/ecs/data/ecs_agent_data.json":           `{"Data":{"Cluster":"bake"}}`,
		"/var/lib/firstrun/state.json":                    `{"files":[]}`,
		"/var/lib/firstrun/last-run":                      "2026-11-22T00:00:00Z\n",
		"/var/log/ecs/ecs-agent.log":                      "level=info msg=\"Registered\"\n",
		"/var/log/ecs/ecs-init.log":                       "level=info msg=\"pre-start\"\n",
		"/var/log/cloud-init.log":                         "Cloud-init v. 22.2.2 running 'init'\n",
		"/var/log/cloud-init-output.log":                  "Cloud-init v. 22.2.2 finished\n",
		"/var/lib/cloud/instances/i-0bake/boot-finished":  "1\n",
		"/var/lib/cloud/data/instance-id":                 "i-0bake\n",
		"/var/lib/cloud/sem/config_scripts_per_once.once": "",
		"/root/.bash_history":                             "sudo systemctl status ecs\n",
		"/home/ec2-user/.bash_history":                    "ls\n",
		"/home/ec2-user/.ssh/authorized_keys":             "ssh-ed25519 AAAAC3Nza packer_temporary_key\n",
		"/etc/ssh/ssh_host_ed25519_key":                   "-----BEGIN OPENSSH PRIVATE KEY-----\n",
		"/etc/ssh/ssh_host_ed25519_key.pub":               "ssh-ed25519 AAAAC3Nza root@build\n",
	}
	stay := map[string]string{
		"/var/lib/cloud/scripts/per-boot/keep.sh": "#!/bin/sh\n",
		"/var/lib/cloud/seed/nocloud/meta-data":   "instance-id: seed\n",
		"/etc/ecs/ecs.config.d/keep":              "not ours\n",
		"/etc/ssh/sshd_config":                    "PasswordAuthentication no\n",
		"/home/ec2-user/.bashrc":                  "# .bashrc\n",
	}
	for p, c := range gone {
		write(p, c)
	}
	for p, c := range stay {
		write(p, c)
	}
	sh("ln", "-s", "/var/lib/cloud/instances/i-0bake", "/var/lib/cloud/instance")
	if id := sh("cat", "/etc/machine-id"); id == "" {
		t.Fatal("the sandbox has no machine ID to empty")
	}

	if err := s.WriteFile(step(10*time.Second), "/tmp/bake/cleanup.sh", readScript(t, "cleanup.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	cleanup := func() string {
		t.Helper()
		out, errOut, code, err := s.Exec(step(3*time.Minute), nil, "bash", "/tmp/bake/cleanup.sh")
		t.Logf("cleanup.sh: exit %d\n%s%s", code, out, errOut)
		if err != nil || code != 0 {
			t.Fatalf("cleanup.sh: exit %d, %v", code, err)
		}
		return string(out)
	}
	cleanup()

	// ecs stopped and disabled; docker left as the ECS AMI has it, enabled (and running
	// here: the build instance is shut down before its snapshot).
	wantState := func(u string) string {
		if u == "ecs.service" {
			return "disabled/inactive"
		}
		return "enabled/active"
	}
	for _, u := range units {
		if st := state(u); st != wantState(u) {
			t.Errorf("%s: %s, want %s", u, st, wantState(u))
		}
	}
	if out := sh("find", "/var/lib/ecs/data", "-mindepth", "1"); out != "" {
		t.Errorf("/var/lib/ecs/data still holds:\n%s", out)
	}
	if !exists("/var/lib/ecs/data") || !exists("/etc/ecs") {
		t.Error("/var/lib/ecs/data or /etc/ecs was removed, want it kept")
	}
	for _, p := range []string{"/etc/ecs/ecs.config", "/var/lib/firstrun", "/var/lib/cloud/instances",
		"/var/lib/cloud/instance", "/var/lib/cloud/data", "/var/lib/cloud/sem"} {
		if exists(p) {
			t.Errorf("%s is still there", p)
		}
	}
	for p := range gone {
		if exists(p) {
			t.Errorf("%s is still there", p)
		}
	}
	for p, c := range stay {
		if got, err := s.ReadFile(step(10*time.Second), p); err != nil || string(got) != c {
			t.Errorf("%s: %q, %v; want it kept as %q", p, got, err, c)
		}
	}
	if id := sh("stat", "-c", "%s", "/etc/machine-id"); id != "0" {
		t.Errorf("/etc/machine-id is %s bytes, want empty", id)
	}

	// A second run: the same states, not one path under the directories it works on
	// created, removed or modified.
	listing := func() string {
		return sh("find", "/etc", "/var/lib/ecs", "/var/lib/cloud", "/var/log/ecs", "/root", "/home",
			"-xdev", "-printf", "%p %y %m %s %T@ %l\n")
	}
	before := listing()
	out := cleanup()
	if after := listing(); after != before {
		t.Errorf("the second run changed files:\n%s", lineDiff(before, after))
	}
	for _, verb := range []string{"stopping", "disabling", "removing", "emptying", "creating"} {
		if strings.Contains(out, verb) {
			t.Errorf("the second run did something (%q):\n%s", verb, out)
		}
	}
	for _, u := range units {
		if st := state(u); st != wantState(u) {
			t.Errorf("after the second run %s: %s, want %s", u, st, wantState(u))
		}
	}
}

// TestCleanupRoot runs cleanup.sh on a scratch root (ROOT), as in a chroot: units are
// disabled with systemctl --root (their wants symlinks go), nothing is stopped, and the
// same state is removed; a second run changes nothing.
func TestCleanupRoot(t *testing.T) {
	t.Parallel()
	need(t, "systemd", "systemctl")
	root := t.TempDir()
	unit := func(desc, wantedBy string) string {
		return "[Unit]\nDescription=" + desc + "\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=" + wantedBy + "\n"
	}
	writeFiles(t, root, map[string]string{
		"usr/lib/systemd/system/ecs.service":                              unit("ECS agent", "multi-user.target"),
		"usr/lib/systemd/system/docker.service":                           unit("Docker", "multi-user.target"),
		"usr/lib/systemd/system/containerd.service":                       unit("containerd", "multi-user.target"),
		"usr/lib/systemd/system/docker.socket":                            "[Socket]\nListenStream=/run/docker.sock\n[Install]\nWantedBy=sockets.target\n",
		"usr/lib/systemd/system/chronyd.service":                          unit("chrony", "multi-user.target"),
		"etc/ecs/ecs.config":                                              "ECS_CLUSTER=bake\n",
		"var/lib/ecs/data/agent.db":                                       "checkpoint",
		"var/lib/firstrun/last-run":                                       "2026-11-22T00:00:00Z\n",
		"var/log/ecs/ecs-agent.log":                                       "registered\n",
		"var/log/firstrun/firstrun.log":                                   "{\"msg\":\"firstrun done\"}\n",
		"var/log/firstrun/metrics.log":                                    "{\"_aws\":{\"CloudWatchMetrics\":[]}}\n",
		"var/log/cloud-init.log":                                          "init\n",
		"var/log/journal/0123456789abcdef0123456789abcdef/system.journal": "LPKSHHRH",
		"var/lib/cloud/instances/i-0bake/boot-finished":                   "1\n",
		"var/lib/cloud/scripts/per-boot/keep.sh":                          "#!/bin/sh\n",
		"root/.bash_history":                                              "history\n",
		"home/ec2-user/.ssh/authorized_keys":                              "ssh-ed25519 AAAA packer\n",
		"etc/ssh/ssh_host_ecdsa_key":                                      "key",
		"etc/ssh/ssh_host_ecdsa_key.pub":                                  "key.pub",
		"etc/ssh/sshd_config":                                             "PasswordAuthentication no\n",
		"etc/machine-id":                                                  "0123456789abcdef0123456789abcdef\n",
	})
	if err := os.Symlink("instances/i-0bake", filepath.Join(root, "var/lib/cloud/instance")); err != nil {
		t.Fatal(err)
	}
	systemctl := func(args ...string) string {
		t.Helper()
		out, _ := exec.Command("systemctl", append([]string{"--root=" + root}, args...)...).Output() // is-enabled exits 1 when disabled
		return strings.TrimSpace(string(out))
	}
	systemctl("enable", "ecs.service", "docker.service", "docker.socket", "containerd.service", "chronyd.service")
	units := []string{"ecs.service", "docker.service", "docker.socket", "containerd.service"}
	for _, u := range units {
		if got := systemctl("is-enabled", u); got != "enabled" {
			t.Fatalf("setup: %s is %q", u, got)
		}
	}

	mustRun(t, "cleanup.sh", "ROOT="+root)
	for _, u := range units {
		want := "enabled" // docker, its socket and containerd: as on the ECS AMI
		if u == "ecs.service" {
			want = "disabled"
		}
		if got := systemctl("is-enabled", u); got != want {
			t.Errorf("%s is %q, want %s", u, got, want)
		}
	}
	if got := systemctl("is-enabled", "chronyd.service"); got != "enabled" {
		t.Errorf("chronyd.service is %q, want it left enabled", got)
	}
	wants, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*.wants/*"))
	var wantLinks []string
	for _, l := range []string{"multi-user.target.wants/chronyd.service", "multi-user.target.wants/containerd.service",
		"multi-user.target.wants/docker.service", "sockets.target.wants/docker.socket"} {
		wantLinks = append(wantLinks, filepath.Join(root, "etc/systemd/system", l))
	}
	sameList(t, "wants symlinks left", wants, wantLinks)
	// firstrun's own log and metrics of the build: a record shipped from every instance
	// started from the image would count the build's run once an instance.
	for _, p := range []string{"etc/ecs/ecs.config", "var/lib/ecs/data/agent.db", "var/lib/firstrun", "var/log/ecs/ecs-agent.log",
		"var/log/firstrun", "var/log/cloud-init.log", "var/log/journal/0123456789abcdef0123456789abcdef", "var/lib/cloud/instances",
		"var/lib/cloud/instance", "root/.bash_history", "home/ec2-user/.ssh/authorized_keys",
		"etc/ssh/ssh_host_ecdsa_key", "etc/ssh/ssh_host_ecdsa_key.pub"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	for _, p := range []string{"var/lib/ecs/data", "var/log/ecs", "var/log/journal", "etc/ssh/sshd_config", "var/lib/cloud/scripts/per-boot/keep.sh"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v, want it kept", p, err)
		}
	}
	if got := readFile(t, root, "etc/machine-id"); got != "" {
		t.Errorf("etc/machine-id: %q, want empty", got)
	}

	age(t, root)
	before := testenv.Snapshot(t, root)
	mustRun(t, "cleanup.sh", "ROOT="+root)
	testenv.SameSnapshot(t, before, testenv.Snapshot(t, root))
}

// lineDiff lists the lines only in a and only in b.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for l := range ina {
		if !inb[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range inb {
		if !ina[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
