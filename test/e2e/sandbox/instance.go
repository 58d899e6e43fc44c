package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
	"github.com/firstrun/firstrun/test/imdsmock"
)

// Instance says how to boot a sandbox the way an EC2 instance boots: systemd starts
// cloud-init (the real Debian package) with a NoCloud seed holding the user data,
// the instance metadata service answers at 169.254.169.254 (AWS's mock, in the
// sandbox's own network namespace), and CloudFormation's endpoint is a stand-in.
// Nothing is run by hand: what happens is what the image's units and the user data do.
type Instance struct {
	// Stock boots the stock ECS-optimized AMI's shape (docker and ecs enabled at boot,
	// no firstrun: mkrootfs.sh's stock-KEY) instead of firstrun's image.
	Stock bool
	// UserData is the instance's user data, as EC2 would hand it to cloud-init; ""
	// is none.
	UserData string
	// InstanceID is the meta-data's instance-id (NoCloud) and the IMDS mock's
	// (DefaultInstanceID when "").
	InstanceID string
	// IMDS is what answers at 169.254.169.254: the mock with this configuration
	// (its Port and Hostname are set here), or nothing at all when nil.
	IMDS *imdsmock.Config
	// IMDSSilent replaces IMDS with a listener that accepts connections and never
	// answers: an instance metadata service that hangs.
	IMDSSilent bool
	// Stacks are the CloudFormation stand-in's stacks (none: no stand-in runs).
	Stacks []cfnsignaltest.Stack
	// AgentEnv are lines of /etc/fakeagent.env, the fake agent's knobs.
	AgentEnv []string
	// Cmdline are more arguments for the container's PID 1, its kernel command line
	// (systemd.wants=UNIT, systemd.mask=UNIT, ...).
	Cmdline []string
}

// DefaultInstanceID is an Instance's id when it names none.
const DefaultInstanceID = "i-0b007000000000001"

// Where an instance boot's files appear in the sandbox.
const (
	bootMount = "/opt/sandbox/boot"             // imds.sh, the mock's and fakecfn's configuration
	seedMount = "/var/lib/cloud/seed/nocloud"   // NoCloud's seed directory: meta-data, user-data
	agentEnv  = "/etc/fakeagent.env"            // read by ecs.service
	cfnLog    = "/var/log/fakecfn.jsonl"        // the stand-in's record of each request
	imdsAddr  = "169.254.169.254"               // sandbox-imds.service adds it to lo
	mockJSON  = bootMount + "/imds-mock.json"   // the mock's configuration
	mockBin   = BinMount + "/ec2-metadata-mock" // built by BuildBinaries
	// silentPy is the hanging IMDS: connections are accepted (the kernel completes
	// them into the backlog) and never answered.
	silentPy = "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" +
		"s.bind(('169.254.169.254', 80))\ns.listen(64)\nwhile True:\n    time.sleep(3600)\n"
)

// StockRootfs returns the stock AMI's root file system built beside the image's
// rootfs (mkrootfs.sh).
func StockRootfs(rootfs string) string {
	return filepath.Join(filepath.Dir(rootfs), "stock-"+strings.TrimPrefix(filepath.Base(rootfs), "rootfs-"))
}

// files writes the boot's files into dir: dir itself is bound at /opt/sandbox/boot,
// dir/seed at NoCloud's seed directory, dir/fakeagent.env (when any) at
// /etc/fakeagent.env. It returns systemd-nspawn's options for them.
func (in *Instance) files(dir string) ([]string, error) {
	id := in.InstanceID
	if id == "" {
		id = DefaultInstanceID
	}
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		return nil, err
	}
	write := func(path, data string, mode os.FileMode) error {
		return os.WriteFile(path, []byte(data), mode)
	}
	// NoCloud's meta-data (cloud-init docs, "NoCloud": instance-id and local-hostname).
	if err := write(filepath.Join(seed, "meta-data"), "instance-id: "+id+"\nlocal-hostname: "+id+"\n", 0o644); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(seed, "user-data"), in.UserData, 0o644); err != nil {
		return nil, err
	}
	switch {
	case in.IMDSSilent:
		if err := write(filepath.Join(dir, "silent.py"), silentPy, 0o644); err != nil {
			return nil, err
		}
		if err := write(filepath.Join(dir, "imds.sh"), "exec python3 "+bootMount+"/silent.py\n", 0o755); err != nil {
			return nil, err
		}
	case in.IMDS != nil:
		cfg := *in.IMDS
		cfg.Hostname, cfg.Port = imdsAddr, 80
		if cfg.InstanceID == "" {
			cfg.InstanceID = id
		}
		data, err := cfg.JSON()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "imds-mock.json"), data, 0o644); err != nil {
			return nil, err
		}
		if err := write(filepath.Join(dir, "imds.sh"), "exec "+mockBin+" -c "+mockJSON+"\n", 0o755); err != nil {
			return nil, err
		}
	}
	if len(in.Stacks) > 0 {
		region := "us-east-1"
		if in.IMDS != nil && in.IMDS.Region != "" {
			region = in.IMDS.Region
		}
		data, err := json.Marshal(cfnsignaltest.Config{Region: region, Stacks: in.Stacks})
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "fakecfn.json"), data, 0o644); err != nil {
			return nil, err
		}
	}
	opts := []string{"--bind-ro=" + dir + ":" + bootMount, "--bind-ro=" + seed + ":" + seedMount}
	if len(in.AgentEnv) > 0 {
		if err := write(filepath.Join(dir, "fakeagent.env"), strings.Join(in.AgentEnv, "\n")+"\n", 0o644); err != nil {
			return nil, err
		}
		opts = append(opts, "--bind-ro="+filepath.Join(dir, "fakeagent.env")+":"+agentEnv)
	}
	return opts, nil
}

// cmdline is what follows systemd-nspawn's options: PID 1's arguments, which systemd
// and cloud-init read as the kernel command line in a container (cloud-init's
// generator and ds-identify read /proc/1/cmdline there).
func (in *Instance) cmdline() []string {
	return append([]string{"cloud-init=enabled"}, in.Cmdline...)
}

// Started returns the host's time just before systemd-nspawn was started: the
// instance's power-on, on the same clock as the container's (no time namespace).
func (s *Sandbox) Started() time.Time { return s.started }

// WaitSystem waits, bounded by ctx, until systemd has run every job of the boot
// (systemctl is-system-running --wait) and returns the system's state: "running",
// or "degraded" when a unit failed.
func (s *Sandbox) WaitSystem(ctx context.Context) (string, error) {
	for {
		out, _, _, err := s.Exec(ctx, nil, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(string(out))
		if err != nil {
			return state, fmt.Errorf("sandbox %s: waiting for the boot to end: %w", s.name, err)
		}
		// --wait returns "starting" while the manager is not up yet.
		if state != "starting" && state != "initializing" && state != "" {
			return state, nil
		}
		if err := s.pause(ctx, 100*time.Millisecond); err != nil {
			return state, fmt.Errorf("sandbox %s: waiting for the boot to end: %w", s.name, err)
		}
	}
}

// WaitRegistered waits, bounded by ctx, until the agent has registered to cluster,
// watching from outside the boot, and returns when it registered: the journal's
// timestamp of its "Registration completed successfully" line, on the host's clock. It
// reads the journal every 100 ms and asks the agent's introspection endpoint only once
// that line is there: a connection to the agent's port before the agent listens could
// connect to itself and hold the port (see internal/health, noSelfConnect).
func (s *Sandbox) WaitRegistered(ctx context.Context, cluster string) (time.Time, error) {
	last := ""
	for {
		out, _, _, err := s.Exec(ctx, nil, "journalctl", "-u", "ecs.service", "-o", "short-unix", "--no-pager", "-g", "Registration completed successfully")
		if err != nil {
			return time.Time{}, fmt.Errorf("sandbox %s: waiting for registration to %s (last answer %q): %w", s.name, cluster, last, err)
		}
		if at, ok := firstStamp(out); ok {
			md, _, code, err := s.Exec(ctx, nil, "curl", "-sS", "--max-time", "2", "--noproxy", "*", "http://127.0.0.1:51678/v1/metadata")
			if err != nil {
				return time.Time{}, fmt.Errorf("sandbox %s: asking the agent: %w", s.name, err)
			}
			if code == 0 {
				last = string(md)
				var m struct {
					Cluster              string
					ContainerInstanceArn *string
				}
				if json.Unmarshal(md, &m) == nil && m.Cluster == cluster && m.ContainerInstanceArn != nil {
					return at, nil
				}
			}
		}
		if err := s.pause(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, fmt.Errorf("sandbox %s: waiting for registration to %s (last answer %q): %w", s.name, cluster, last, err)
		}
	}
}

// firstStamp reads the time of the first "short-unix" journal line (seconds.micros).
func firstStamp(out []byte) (time.Time, bool) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		return time.UnixMicro(int64(sec * 1e6)), true
	}
	return time.Time{}, false
}

// BootReport is how a boot ended, read once its jobs are done.
type BootReport struct {
	// State is systemctl is-system-running's answer.
	State string
	// Failed lists the failed units; Jobs the jobs still queued.
	Failed, Jobs []string
	// Results has each named unit's ActiveState/Result, e.g. "active/success".
	Results map[string]string
	// Signals are the requests CloudFormation's stand-in received, one JSON line each.
	Signals []string
}

// Report reads how the boot ended: the system state, failed units and queued jobs, the
// named units' states, and the CloudFormation stand-in's requests.
func (s *Sandbox) Report(ctx context.Context, units ...string) (BootReport, error) {
	var r BootReport
	out, _, _, err := s.Exec(ctx, nil, "systemctl", "is-system-running")
	if err != nil {
		return r, err
	}
	r.State = strings.TrimSpace(string(out))
	lines := func(args ...string) ([]string, error) {
		out, err := s.Run(ctx, args...)
		var l []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				l = append(l, line)
			}
		}
		return l, err
	}
	if r.Failed, err = lines("systemctl", "list-units", "--failed", "--plain", "--no-legend"); err != nil {
		return r, err
	}
	if r.Jobs, err = lines("systemctl", "list-jobs", "--no-legend"); err != nil {
		return r, err
	}
	r.Results = map[string]string{}
	for _, u := range units {
		out, err := s.Run(ctx, "systemctl", "show", "--property=ActiveState,Result", u)
		if err != nil {
			return r, err
		}
		p := props(out)
		r.Results[u] = p["ActiveState"] + "/" + p["Result"]
	}
	data, err := s.ReadFile(ctx, cfnLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" {
			r.Signals = append(r.Signals, l)
		}
	}
	return r, nil
}

// props reads systemctl show's KEY=value lines.
func props(out []byte) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// UnitState returns a unit's ActiveState/Result/ExecMainStatus, e.g. "failed/exit-code/2".
func (s *Sandbox) UnitState(ctx context.Context, unit string) (string, error) {
	out, err := s.Run(ctx, "systemctl", "show", "--property=ActiveState,Result,ExecMainStatus", unit)
	if err != nil {
		return "", err
	}
	p := props(out)
	return p["ActiveState"] + "/" + p["Result"] + "/" + p["ExecMainStatus"], nil
}

// Timestamps returns, for each unit, when its start job began (InactiveExitTimestamp)
// and when it became active (ActiveEnterTimestamp), zero when that did not happen;
// systemd's clock is the host's.
func (s *Sandbox) Timestamps(ctx context.Context, units ...string) (map[string][2]time.Time, error) {
	m := map[string][2]time.Time{}
	for _, u := range units {
		out, err := s.Run(ctx, "systemctl", "show", "--timestamp=us+utc", "--property=InactiveExitTimestamp,ActiveEnterTimestamp", u)
		if err != nil {
			return nil, err
		}
		p := props(out)
		var ts [2]time.Time
		for i, k := range []string{"InactiveExitTimestamp", "ActiveEnterTimestamp"} {
			if t, err := time.Parse("Mon 2006-01-02 15:04:05.000000 MST", p[k]); err == nil {
				ts[i] = t
			}
		}
		m[u] = ts
	}
	return m, nil
}
