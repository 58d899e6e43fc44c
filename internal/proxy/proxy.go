// Package proxy renders the HTTP proxy settings of docker, the ECS agent and the log
// agent, following the AWS ECS developer guide ("HTTP proxy configuration for Linux
// container instances"), which applies the same systemd drop-ins on Amazon Linux 2023.
// With no proxy it renders nothing, so a rerun without PROXY_URL removes what an
// earlier run wrote.
package proxy

import (
	"fmt"
	"strings"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
)

// Mode of every proxy file: a proxy URL may carry user:password.
const Mode = 0o600

// Endpoints that must never go through the proxy: the instance metadata service, the
// ECS task metadata and credentials endpoint (the awslogs log driver and task roles
// need it: amazon-ecs-agent issue 805), and, for the agent, the docker socket.
const (
	imds         = "169.254.169.254"
	taskMetadata = "169.254.170.2"
	dockerSocket = "/var/run/docker.sock"
)

// noProxy joins the base entries and the user's extras, without repeats.
func noProxy(cfg inputs.Config, base ...string) string {
	seen := map[string]bool{}
	var out []string
	for _, e := range append(base, cfg.NoProxy...) {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return strings.Join(out, ",")
}

// AgentNoProxy is the ECS agent's NO_PROXY.
func AgentNoProxy(cfg inputs.Config) string { return noProxy(cfg, imds, taskMetadata, dockerSocket) }

// DockerNoProxy is dockerd's (and the log agent's) NO_PROXY.
func DockerNoProxy(cfg inputs.Config) string { return noProxy(cfg, imds, taskMetadata) }

// AgentKeys are the keys of AgentSettings, in order: ecs.config manages them on every
// run, so that a rerun without a proxy removes them.
var AgentKeys = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// AgentSettings are the proxy lines of ecs.config, none without a proxy.
func AgentSettings(cfg inputs.Config) []inputs.Setting {
	if cfg.Proxy == nil {
		return nil
	}
	p := cfg.ProxyString()
	values := []string{p, p, AgentNoProxy(cfg)}
	settings := make([]inputs.Setting, len(AgentKeys))
	for i, k := range AgentKeys {
		settings[i] = inputs.Setting{Key: k, Value: values[i]}
	}
	return settings
}

// Render returns the proxy files firstrun owns whole: drop-ins for ecs.service and
// docker.service, and awslogs' proxy.conf. None without a proxy. The CloudWatch agent's
// proxy goes into its common-config.toml, which firstrun shares with the package and
// the operator (internal/commonconfig).
//
// docker gets a drop-in rather than lines in /etc/sysconfig/docker (the chapter's way):
// the drop-in is what AWS documents for systemd hosts, works whether or not the
// distribution's docker.service reads /etc/sysconfig/docker, and is a file firstrun
// owns whole, so removing it is exact.
func Render(cfg inputs.Config) []files.File {
	if cfg.Proxy == nil {
		return nil
	}
	p := cfg.ProxyString()
	out := []files.File{
		{Path: hostpath.ECSProxyDropIn, Mode: Mode, Content: dropIn(
			"HTTP_PROXY="+p, "HTTPS_PROXY="+p, "NO_PROXY="+AgentNoProxy(cfg))},
		{Path: hostpath.DockerProxyDropIn, Mode: Mode, Content: dropIn(
			"HTTP_PROXY="+p, "HTTPS_PROXY="+p, "NO_PROXY="+DockerNoProxy(cfg))},
	}
	if cfg.LogAgent == inputs.LogAgentAwslogs {
		out = append(out, files.File{Path: hostpath.AwslogsProxyConfig, Mode: Mode, Content: []byte(
			"HTTP_PROXY=" + p + "\nHTTPS_PROXY=" + p + "\nNO_PROXY=" + DockerNoProxy(cfg) + "\n")})
	}
	return out
}

// header starts every file firstrun owns whole.
const header = "# Written by firstrun; changes here are overwritten on its next run.\n"

// dropIn renders a [Service] drop-in with one Environment= line an assignment.
func dropIn(assignments ...string) []byte {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("[Service]\n")
	for _, a := range assignments {
		fmt.Fprintf(&b, "Environment=%s\n", SystemdQuote(a))
	}
	return []byte(b.String())
}

// SystemdQuote quotes a value for a unit file setting: in double quotes, with
// backslash and double quote escaped, and % doubled so that systemd does not read a
// percent-encoded password (p%40ss) as a specifier.
func SystemdQuote(s string) string {
	return `"` + systemdEscaper.Replace(s) + `"`
}

// systemdEscaper is built once: a Replacer costs about 6 KB to build, and each render
// quotes six values (BenchmarkRenderDiff).
var systemdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`)
