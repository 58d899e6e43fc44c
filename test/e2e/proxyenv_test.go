package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/state"
	"github.com/firstrun/firstrun/internal/testenv"
)

// secretMarker starts the proxy password of TestProxyPasswordNotInUnitProperties: any
// text that shows the password, however encoded or escaped, shows this.
const secretMarker = "Zq7pw"

// asNobody runs a command in the sandbox as the unprivileged user nobody (no
// supplementary groups) and returns its exit status and output.
func (b *box) asNobody(args ...string) (int, string) {
	b.t.Helper()
	out, errOut, code, err := b.s.Exec(b.ctx(60*time.Second), nil,
		append([]string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}, args...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	return code, string(out) + string(errOut)
}

// unitObject is the D-Bus object path of a unit (systemd escapes "." as _2e).
func unitObject(unit string) string {
	return "/org/freedesktop/systemd1/unit/" + strings.ReplaceAll(unit, ".", "_2e")
}

// TestProxyPasswordNotInUnitProperties: with a proxy whose password holds % $ " ' and
// a backslash, dockerd and the agent get the proxy URL byte for byte, while an
// unprivileged user sees no password in any property of docker.service or ecs.service
// (systemctl show, busctl), in their unit files (systemctl cat), in the env files or in
// the processes' environments. Removing the proxy removes every file firstrun wrote
// for it, and the processes lose it.
func TestProxyPasswordNotInUnitProperties(t *testing.T) {
	b := boot(t)
	// The password is Zq7pw%$"'\, percent-encoded in PROXY_URL as a URL must be.
	const proxyURL = "http://e2e-user:" + secretMarker + "%25%24%22%27%5C@proxy.example:3128"
	b.envFile(testenv.WithEnv(baseEnv, "PROXY_URL="+proxyURL)...)
	b.mustRun()

	units := map[string]struct{ envFile, noProxy string }{
		"docker.service": {"/etc/firstrun/proxy/docker.env", "169.254.169.254,169.254.170.2"},
		"ecs.service":    {"/etc/firstrun/proxy/ecs.env", "169.254.169.254,169.254.170.2,/var/run/docker.sock"},
	}
	pids := map[string]string{}
	for unit, u := range units {
		// The process gets the URL as given: no % doubled, nothing unescaped.
		env := b.mainEnv(unit)
		for _, want := range []string{"HTTP_PROXY=" + proxyURL, "HTTPS_PROXY=" + proxyURL, "NO_PROXY=" + u.noProxy} {
			if !slices.Contains(env, want) {
				t.Errorf("%s's process lacks %s: %q", unit, want, env)
			}
		}
		pids[unit] = b.prop(unit, "MainPID")
	}
	// dockerd took it as its proxy (docker info masks the password).
	if got := b.sh("docker", "info", "--format", "{{.HTTPSProxy}}"); !strings.HasSuffix(got, "@proxy.example:3128") || strings.Contains(got, secretMarker) {
		t.Errorf("docker info shows HTTPS proxy %q, want the proxy with its password masked", got)
	}

	if code, id := b.asNobody("id", "-u"); code != 0 || strings.TrimSpace(id) != "65534" {
		t.Fatalf("setpriv did not run as nobody: exit %d, %q", code, id)
	}
	for unit, u := range units {
		// Every property of the unit, as systemctl and busctl show them to anyone.
		code, show := b.asNobody("systemctl", "show", unit)
		if code != 0 || !strings.Contains(show, "Id="+unit+"\n") {
			t.Fatalf("systemctl show %s as nobody: exit %d\n%s", unit, code, show)
		}
		if !strings.Contains(show, "EnvironmentFiles="+u.envFile+" (ignore_errors=yes)") {
			t.Errorf("systemctl show %s does not list the env file %s:\n%s", unit, u.envFile, grepLines(show, "Environment"))
		}
		obj := unitObject(unit)
		_, intro := b.asNobody("busctl", "introspect", "org.freedesktop.systemd1", obj, "org.freedesktop.systemd1.Service")
		if !strings.Contains(intro, ".EnvironmentFiles") || !strings.Contains(intro, u.envFile) {
			t.Errorf("busctl introspect %s does not show EnvironmentFiles with %s:\n%s", obj, u.envFile, grepLines(intro, "Environment"))
		}
		_, envProp := b.asNobody("busctl", "get-property", "org.freedesktop.systemd1", obj, "org.freedesktop.systemd1.Service", "Environment")
		_, filesProp := b.asNobody("busctl", "get-property", "org.freedesktop.systemd1", obj, "org.freedesktop.systemd1.Service", "EnvironmentFiles")
		// The unit's own EnvironmentFiles (/etc/default/docker, /etc/ecs/ecs.config) come
		// first; the drop-in's, which may be missing, last.
		if strings.TrimSpace(envProp) != "as 0" || !strings.HasSuffix(strings.TrimSpace(filesProp), ` "`+u.envFile+`" true`) {
			t.Errorf("%s over D-Bus: Environment %q, EnvironmentFiles %q; want none, and %s last", unit, envProp, filesProp, u.envFile)
		}
		_, cat := b.asNobody("systemctl", "cat", unit)
		if !strings.Contains(cat, "EnvironmentFile=-"+u.envFile) {
			t.Errorf("systemctl cat %s as nobody does not show the drop-in:\n%s", unit, cat)
		}
		for what, text := range map[string]string{"systemctl show": show, "busctl introspect": intro, "busctl get-property": envProp + filesProp, "systemctl cat": cat} {
			if strings.Contains(text, secretMarker) {
				t.Errorf("%s %s shows the proxy password to nobody:\n%s", what, unit, grepLines(text, secretMarker))
			}
		}
		// The env file and the process's environment are root's.
		if code, out := b.asNobody("cat", u.envFile); code == 0 || strings.Contains(out, secretMarker) {
			t.Errorf("nobody can read %s: exit %d\n%s", u.envFile, code, out)
		}
		if code, out := b.asNobody("cat", "/proc/"+pids[unit]+"/environ"); code == 0 || strings.Contains(out, secretMarker) {
			t.Errorf("nobody can read the environment of %s's process: exit %d", unit, code)
		}
		if mode := b.sh("stat", "-c", "%a %U", u.envFile); mode != "600 root" {
			t.Errorf("%s: mode and owner %s, want 600 root", u.envFile, mode)
		}
	}

	// Removing the proxy removes it all, and the restarted processes are without it.
	b.envFile(baseEnv...)
	r := b.mustRun()
	for _, p := range []string{
		"/etc/systemd/system/docker.service.d/http-proxy.conf", "/etc/systemd/system/ecs.service.d/http-proxy.conf",
		"/etc/firstrun/proxy/docker.env", "/etc/firstrun/proxy/ecs.env",
	} {
		if actions(r)[p] != "removed" {
			t.Errorf("%s: %q, want removed", p, actions(r)[p])
		}
		if code, _ := b.asNobody("test", "-e", p); code == 0 {
			t.Errorf("%s is still there", p)
		}
	}
	if left := b.sh("sh", "-c", "grep -rl "+secretMarker+" /etc || true"); left != "" {
		t.Errorf("files under /etc still hold the proxy password:\n%s", left)
	}
	for unit := range units {
		if env := b.mainEnv(unit); hasKey(env, "HTTP_PROXY") || hasKey(env, "HTTPS_PROXY") || hasKey(env, "NO_PROXY") {
			t.Errorf("%s's process still has proxy settings: %q", unit, env)
		}
		if b.prop(unit, "MainPID") == pids[unit] {
			t.Errorf("%s was not restarted when its proxy was removed", unit)
		}
		if _, show := b.asNobody("systemctl", "show", "--property", "EnvironmentFiles", "--property", "Environment", unit); strings.Contains(show, "/etc/firstrun/proxy") {
			t.Errorf("%s still names a proxy env file:\n%s", unit, show)
		}
	}
	if got := b.sh("docker", "info", "--format", "{{.HTTPProxy}}{{.HTTPSProxy}}"); got != "" {
		t.Errorf("docker still has the proxy %q", got)
	}
}

// TestUpgradeFromEnvironmentDropIns: an instance that an older firstrun configured, the
// proxy in Environment= lines of its drop-ins (shown to nobody by systemctl show),
// converges on the next run: the drop-ins rewritten, systemd reloaded, docker and ecs
// restarted with the proxy from the env files, and nobody sees the password any more.
func TestUpgradeFromEnvironmentDropIns(t *testing.T) {
	b := boot(t)
	const proxyURL = "http://e2e-user:" + secretMarker + "%25x@proxy.example:3128"
	b.envFile(testenv.WithEnv(baseEnv, "PROXY_URL="+proxyURL)...)
	b.mustRun()

	// What the older firstrun left: its drop-ins (0600, % doubled for the unit-file
	// parser), no env files, a state file that owns only the drop-ins; the units
	// running with those settings.
	old := func(noProxy string) []byte {
		p := strings.ReplaceAll(proxyURL, "%", "%%")
		return []byte("# Written by firstrun; changes here are overwritten on its next run.\n[Service]\n" +
			"Environment=\"HTTP_PROXY=" + p + "\"\nEnvironment=\"HTTPS_PROXY=" + p + "\"\nEnvironment=\"NO_PROXY=" + noProxy + "\"\n")
	}
	for path, content := range map[string][]byte{
		"/etc/systemd/system/docker.service.d/http-proxy.conf": old("169.254.169.254,169.254.170.2"),
		"/etc/systemd/system/ecs.service.d/http-proxy.conf":    old("169.254.169.254,169.254.170.2,/var/run/docker.sock"),
	} {
		if err := b.s.WriteFile(b.ctx(10*time.Second), path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b.sh("rm", "/etc/firstrun/proxy/docker.env", "/etc/firstrun/proxy/ecs.env")
	data, err := b.s.ReadFile(b.ctx(10*time.Second), "/var/lib/firstrun/state.json")
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	st.Files = slices.DeleteFunc(st.Files, func(p string) bool { return strings.HasPrefix(p, "/etc/firstrun/proxy/") })
	if err := b.s.WriteFile(b.ctx(10*time.Second), "/var/lib/firstrun/state.json", st.File().Content, 0o644); err != nil {
		t.Fatal(err)
	}
	b.sh("systemctl", "daemon-reload")
	b.sh("systemctl", "restart", "docker.service", "ecs.service")
	for _, unit := range []string{"docker.service", "ecs.service"} {
		if _, show := b.asNobody("systemctl", "show", "--property", "Environment", unit); !strings.Contains(show, secretMarker) {
			t.Fatalf("the older firstrun's drop-in of %s is not as it was: nobody does not see the password:\n%s", unit, show)
		}
		if !slices.Contains(b.mainEnv(unit), "HTTPS_PROXY="+proxyURL) {
			t.Fatalf("%s does not run with the older firstrun's proxy: %q", unit, b.mainEnv(unit))
		}
	}
	pids := map[string]string{"docker.service": b.prop("docker.service", "MainPID"), "ecs.service": b.prop("ecs.service", "MainPID")}

	r := b.mustRun()
	for p, want := range map[string]string{
		"/etc/systemd/system/docker.service.d/http-proxy.conf": "updated", "/etc/systemd/system/ecs.service.d/http-proxy.conf": "updated",
		"/etc/firstrun/proxy/docker.env": "created", "/etc/firstrun/proxy/ecs.env": "created",
	} {
		if got := actions(r)[p]; got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	if !strings.Contains(r.stderr, `"action":"reloaded"`) {
		t.Errorf("systemd was not reloaded after the drop-ins changed:\n%s", grepLines(r.stderr, `"action"`))
	}
	for unit, pid := range pids {
		if b.prop(unit, "MainPID") == pid {
			t.Errorf("%s was not restarted", unit)
		}
		if !slices.Contains(b.mainEnv(unit), "HTTPS_PROXY="+proxyURL) {
			t.Errorf("%s lost the proxy in the upgrade: %q", unit, b.mainEnv(unit))
		}
		if _, show := b.asNobody("systemctl", "show", unit); strings.Contains(show, secretMarker) {
			t.Errorf("after the upgrade, systemctl show %s shows nobody the password:\n%s", unit, grepLines(show, secretMarker))
		}
	}
	// --check still warns of the CloudWatch agent's own 0644 copy of the proxy
	// (env-config.json, which firstrun cannot change), and of nothing of firstrun's.
	c := b.firstrun("--check")
	exposure := grepLines(c.stdout, "proxy credentials")
	if c.code != 0 || !strings.Contains(exposure, "env-config.json (mode 0644)") || strings.Contains(exposure, "http-proxy.conf") ||
		strings.Contains(exposure, "/etc/firstrun/proxy") || strings.Contains(exposure, "rerun firstrun") {
		t.Errorf("--check after the upgrade: exit %d\n%s", c.code, c.stdout)
	}
}

// grepLines returns the lines of text that contain s, for short failure messages.
func grepLines(text, s string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
