package runner

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/services"
	"github.com/firstrun/firstrun/internal/services/servicestest"
	"github.com/firstrun/firstrun/internal/state"
	"github.com/firstrun/firstrun/internal/testenv"
)

// settled replaces h's systemd with a fresh recording in which docker, ecs and the
// CloudWatch agent are active, enabled, and started after every file was written.
func (h *liveHost) settled() {
	h.sd = servicestest.NewFake()
	for _, u := range []string{services.Docker, services.ECS, services.CloudWatchAgent} {
		h.sd.Set(services.UnitState{Name: u, LoadState: "loaded", ActiveState: "active", SubState: "running", UnitFileState: "enabled", ActiveSince: time.Now().Add(time.Minute)})
	}
}

// oldDropIn is what firstrun wrote before the proxy moved to env files: the settings as
// Environment= lines, which systemd shows to every local user, in a 0600 drop-in.
func oldDropIn(noProxy string) string {
	const p = "http://bob:p%%40ss@proxy.internal:3128"
	return "# Written by firstrun; changes here are overwritten on its next run.\n[Service]\n" +
		"Environment=\"HTTP_PROXY=" + p + "\"\nEnvironment=\"HTTPS_PROXY=" + p + "\"\nEnvironment=\"NO_PROXY=" + noProxy + "\"\n"
}

// TestUpgradeFromEnvironmentDropIns: an instance that an older firstrun configured (the
// proxy in Environment= lines of 0600 drop-ins, the state owning only those) converges
// on the next run: the drop-ins are rewritten without the password and 0644, the env
// files created, systemd reloaded, docker and ecs restarted to read them. --check warns
// of the old drop-ins before the run and not after.
func TestUpgradeFromEnvironmentDropIns(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("first run: exit %d\n%s", r.Code, r.Stderr)
	}
	// Make the root what the older firstrun left.
	testenv.WriteFile(t, h.root, hostpath.ECSProxyDropIn, oldDropIn("169.254.169.254,169.254.170.2,/var/run/docker.sock"), 0o600)
	testenv.WriteFile(t, h.root, hostpath.DockerProxyDropIn, oldDropIn("169.254.169.254,169.254.170.2"), 0o600)
	for _, p := range []string{hostpath.ECSProxyEnv, hostpath.DockerProxyEnv} {
		if err := os.Remove(filepath.Join(h.root, p)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := state.Read(hostpath.Root(h.root))
	if err != nil {
		t.Fatal(err)
	}
	st.Files = slices.DeleteFunc(st.Files, func(p string) bool { return strings.HasPrefix(p, hostpath.ProxyEnvDir+"/") })
	testenv.WriteFile(t, h.root, hostpath.StateFile, string(st.File().Content), 0o644)

	h.settled()
	c := h.check(t, fastEnv, "table")
	if !strings.Contains(c.Stdout, hostpath.DockerProxyDropIn+" (a unit setting: systemctl show shows it to every local user)") ||
		!strings.Contains(c.Stdout, "rerun firstrun") || strings.Contains(c.Stdout, "p%40ss") {
		t.Errorf("--check before the upgrade does not warn of the old drop-ins:\n%s", c.Stdout)
	}

	r := h.run(t, fastEnv)
	if r.Code != runrecord.ExitOK {
		t.Fatalf("upgrade run: exit %d\n%s", r.Code, r.Stderr)
	}
	for p, want := range map[string]string{
		hostpath.ECSProxyDropIn: "updated", hostpath.DockerProxyDropIn: "updated",
		hostpath.ECSProxyEnv: "created", hostpath.DockerProxyEnv: "created",
	} {
		if got := r.Actions()[p]; got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	for p, mode := range map[string]os.FileMode{hostpath.ECSProxyDropIn: 0o644, hostpath.DockerProxyDropIn: 0o644, hostpath.ECSProxyEnv: 0o600, hostpath.DockerProxyEnv: 0o600} {
		if fi, err := os.Stat(filepath.Join(h.root, p)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %04o", p, fi, err, mode)
		}
	}
	want := []string{"reload", "restart docker.service", "restart ecs.service"}
	if got := unitCalls(h.sd); !slices.Equal(got, want) {
		t.Errorf("systemd calls:\n got %q\nwant %q", got, want)
	}
	if c := h.check(t, fastEnv, "table"); !strings.Contains(c.Stdout, "in no file that every local user can read") {
		t.Errorf("--check after the upgrade:\n%s", c.Stdout)
	}
	owned, err := state.Read(hostpath.Root(h.root))
	if err != nil || !slices.Contains(owned.Files, hostpath.DockerProxyEnv) || !slices.Contains(owned.Files, hostpath.ECSProxyEnv) {
		t.Errorf("state after the upgrade owns %v (%v), want the env files too", owned.Files, err)
	}
}

// TestProxyChangedRestartsWithoutReload: a new proxy changes only the env files (and
// ecs.config, common-config.toml), not the drop-ins: docker and ecs are restarted to
// read them, with no daemon-reload, since systemd reads an EnvironmentFile= when it
// starts the process.
func TestProxyChangedRestartsWithoutReload(t *testing.T) {
	h := newLiveHost(t)
	if r := h.run(t, fastEnv); r.Code != runrecord.ExitOK {
		t.Fatalf("first run: exit %d\n%s", r.Code, r.Stderr)
	}
	h.settled()
	r := h.run(t, testenv.WithEnv(fastEnv, "PROXY_URL=http://proxy2.internal:8080"))
	if r.Code != runrecord.ExitOK {
		t.Fatalf("rerun: exit %d\n%s", r.Code, r.Stderr)
	}
	for p, want := range map[string]string{
		hostpath.ECSProxyDropIn: "unchanged", hostpath.DockerProxyDropIn: "unchanged",
		hostpath.ECSProxyEnv: "updated", hostpath.DockerProxyEnv: "updated",
	} {
		if got := r.Actions()[p]; got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	want := []string{"restart docker.service", "restart ecs.service", "restart amazon-cloudwatch-agent.service"}
	if got := unitCalls(h.sd); !slices.Equal(got, want) {
		t.Errorf("systemd calls:\n got %q\nwant %q", got, want)
	}
}

// TestUnitsListProxyEnvFiles: each unit's settings include its proxy env file, so that
// a run stopped after writing it and before the restart converges on the next run.
func TestUnitsListProxyEnvFiles(t *testing.T) {
	root := hostpath.Root(t.TempDir())
	changed := map[string]bool{hostpath.DockerProxyEnv: true}
	us := units(root, inputs.Config{LogAgent: inputs.LogAgentCloudWatch}, changed)
	for _, tt := range []struct {
		unit    string
		env     string
		changed bool
	}{{services.Docker, hostpath.DockerProxyEnv, true}, {services.ECS, hostpath.ECSProxyEnv, false}} {
		i := slices.IndexFunc(us, func(u services.Unit) bool { return u.Name == tt.unit })
		if i < 0 {
			t.Fatalf("no unit %s in %v", tt.unit, us)
		}
		if !slices.Contains(us[i].Settings, root.Join(tt.env)) || us[i].Changed != tt.changed {
			t.Errorf("%s: settings %q changed %v, want %s among them, changed %v", tt.unit, us[i].Settings, us[i].Changed, tt.env, tt.changed)
		}
	}
}
