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

// Mode of every proxy file that holds the proxy URL: it may carry user:password.
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

// Render returns the proxy files firstrun owns whole, none without a proxy: for each
// of ecs.service and docker.service a root-only env file with HTTP_PROXY, HTTPS_PROXY
// and NO_PROXY, and a drop-in that names it as an EnvironmentFile=; and awslogs'
// proxy.conf. The CloudWatch agent's proxy goes into its common-config.toml, which
// firstrun shares with the package and the operator (internal/commonconfig).
//
// The proxy URL may carry a password, and systemd shows every unit setting to every
// local user: systemd.exec(5), Environment=: "Environment variables set for a unit are
// exposed to unprivileged clients via D-Bus IPC" (`systemctl show docker -p
// Environment`). An EnvironmentFile= is read by systemd when it starts the unit's
// processes (src/core/execute.c, exec_context_load_environment), and the unit's
// EnvironmentFiles property holds only each file's path and whether it may be missing
// (src/core/dbus-execute.c, property_get_environment_files: "a(sb)"). So the drop-ins
// hold no secret and are 0644, like any unit file; the env files are 0600, root's.
//
// Each env file is its unit's, and both are firstrun's own: rather than docker's
// daemon.json "proxies" (docker 23 and later; an older dockerd refuses to start with a
// key it does not know, and daemon.json is shared with the image and the operator), and
// rather than ecs.config, which holds the operator's lines too. docker gets a drop-in
// rather than lines in /etc/sysconfig/docker (the chapter's way): the drop-in is what
// AWS documents for systemd hosts, works whether or not the distribution's
// docker.service reads /etc/sysconfig/docker, and is a file firstrun owns whole, so
// removing it is exact.
func Render(cfg inputs.Config) []files.File {
	if cfg.Proxy == nil {
		return nil
	}
	p := cfg.ProxyString()
	out := []files.File{
		{Path: hostpath.ECSProxyEnv, Mode: Mode, Content: envFile(
			"HTTP_PROXY", p, "HTTPS_PROXY", p, "NO_PROXY", AgentNoProxy(cfg))},
		{Path: hostpath.ECSProxyDropIn, Mode: DropInMode, Content: dropIn(hostpath.ECSProxyEnv)},
		{Path: hostpath.DockerProxyEnv, Mode: Mode, Content: envFile(
			"HTTP_PROXY", p, "HTTPS_PROXY", p, "NO_PROXY", DockerNoProxy(cfg))},
		{Path: hostpath.DockerProxyDropIn, Mode: DropInMode, Content: dropIn(hostpath.DockerProxyEnv)},
	}
	if cfg.LogAgent == inputs.LogAgentAwslogs {
		out = append(out, files.File{Path: hostpath.AwslogsProxyConfig, Mode: Mode, Content: []byte(
			"HTTP_PROXY=" + p + "\nHTTPS_PROXY=" + p + "\nNO_PROXY=" + DockerNoProxy(cfg) + "\n")})
	}
	return out
}

// DropInMode is the drop-ins' mode: they name the env file and hold no secret, and
// systemd shows their settings to every local user anyway.
const DropInMode = 0o644

// header starts every file firstrun owns whole.
const header = "# Written by firstrun; changes here are overwritten on its next run.\n"

// dropIn renders a [Service] drop-in that reads the env file at path. The "-" lets the
// unit start without the file: firstrun writes the env file before the drop-in and
// removes both with the proxy, and a run stopped between the two must not keep docker
// from starting at the next boot (whose run of firstrun then converges).
func dropIn(path string) []byte {
	return []byte(header + "# The proxy settings are in " + path + ", readable by root only.\n" +
		"[Service]\nEnvironmentFile=-" + path + "\n")
}

// envFile renders KEY=value lines (pairs of key and value) for systemd's
// EnvironmentFile=, each value as EnvFileValue writes it.
func envFile(kv ...string) []byte {
	var b strings.Builder
	b.WriteString(header)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", kv[i], EnvFileValue(kv[i+1]))
	}
	return []byte(b.String())
}

// EnvFileValue writes a value so that systemd's env-file parser reads it back as it is
// (systemd src/basic/env-file.c, parse_env_file_internal; not the unit-file parser, so
// no % specifiers and no $ expansion). A value with none of the bytes that parser
// treats specially unquoted (white space trimmed or ending the value, a backslash
// escaping or joining lines, a quote opening a quoted value) is written as it is: every
// proxy URL firstrun accepts is such a value (its credentials percent-encoded in full,
// % included, which is an ordinary byte here). Any other value is single-quoted, where
// every byte is literal up to the next single quote, and a single quote in it is
// written as '"'"' (the quoted parts of one value join, as in a shell).
func EnvFileValue(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\r\\'\"") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
