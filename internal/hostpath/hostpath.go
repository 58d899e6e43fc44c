// Package hostpath names every host path firstrun reads or writes, in one place, and
// joins them under the filesystem root given with --root.
//
// Renderers speak in host paths ("/etc/ecs/ecs.config"); only the file writer and the
// probes that look at the host turn them into real paths with Root.Join, so the same
// code runs against "/" in production and against t.TempDir() in tests (the idea of
// coreos/ignition's --root and util.JoinPath).
package hostpath

import "path/filepath"

// Host paths, absolute, as they are on the instance.
const (
	// EnvFile is firstrun's own optional env file (KEY=value lines).
	EnvFile = "/etc/firstrun/firstrun.env"
	// StateFile records which files and ecs.config keys firstrun owns, so that a rerun
	// can remove what an input no longer asks for.
	StateFile = "/var/lib/firstrun/state.json"
	// LastRun is the run-once marker: the outcome of firstrun's last run.
	LastRun = "/var/lib/firstrun/last-run.json"
	// HealthEnv holds, root-only, the inputs from firstrun's environment for
	// firstrun-health.service, the unit the wait for registration is handed to: read as
	// its EnvironmentFile=, so that no input (a proxy password) becomes a unit property.
	// Under /run: it lasts one boot.
	HealthEnv = "/run/firstrun/health.env"
	// CloudInitInstanceID is where cloud-init records the instance id it booted as.
	CloudInitInstanceID = "/var/lib/cloud/data/instance-id"
	// ECSAgentLog is the ECS agent's log; its last lines go into a health diagnosis.
	ECSAgentLog = "/var/log/ecs/ecs-agent.log"
	// FirstrunLog is firstrun's own log, JSON lines, shipped by the log agent.
	FirstrunLog = "/var/log/firstrun/firstrun.log"
	// MetricsLog holds one CloudWatch embedded metric format record a run, shipped by
	// the log agent (internal/emf).
	MetricsLog = "/var/log/firstrun/metrics.log"
	// ProcStat is the kernel's statistics; its btime line is the boot time.
	ProcStat = "/proc/stat"

	// ECSConfig is read by ecs-init and, as an EnvironmentFile, by ecs.service.
	ECSConfig = "/etc/ecs/ecs.config"
	// ECSProxyDropIn names ECSProxyEnv as an EnvironmentFile= of ecs.service (ecs-init).
	ECSProxyDropIn = "/etc/systemd/system/ecs.service.d/http-proxy.conf"
	// DockerProxyDropIn names DockerProxyEnv as an EnvironmentFile= of docker.service
	// (dockerd).
	DockerProxyDropIn = "/etc/systemd/system/docker.service.d/http-proxy.conf"
	// ProxyEnvDir holds firstrun's root-only env files with the proxy of docker and
	// the ECS agent: systemd reads them when it starts the unit's processes and shows
	// only their paths as unit properties, never their content.
	ProxyEnvDir = "/etc/firstrun/proxy"
	// ECSProxyEnv is ecs.service's proxy env file (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
	ECSProxyEnv = ProxyEnvDir + "/ecs.env"
	// DockerProxyEnv is docker.service's proxy env file.
	DockerProxyEnv = ProxyEnvDir + "/docker.env"

	// CloudWatchAgentDir is where the unified CloudWatch agent package installs.
	CloudWatchAgentDir = "/opt/aws/amazon-cloudwatch-agent"
	// CloudWatchAgentBinary tells that the CloudWatch agent is installed.
	CloudWatchAgentBinary = CloudWatchAgentDir + "/bin/amazon-cloudwatch-agent"
	// CloudWatchAgentVersion holds the installed agent's version, one line such as
	// 1.300060.0b1234 (aws/amazon-cloudwatch-agent: the Makefile's create-version-file
	// writes it, cfg/agentinfo reads it next to the binary).
	CloudWatchAgentVersion = CloudWatchAgentDir + "/bin/CWAGENT_VERSION"
	// CloudWatchAgentConfig is firstrun's own file in the agent's JSON directory: the
	// agent's start script translates amazon-cloudwatch-agent.json and every file in
	// amazon-cloudwatch-agent.d/ (aws/amazon-cloudwatch-agent,
	// cmd/start-amazon-cloudwatch-agent: --input-dir), so no fetch-config is needed.
	CloudWatchAgentConfig = CloudWatchAgentDir + "/etc/amazon-cloudwatch-agent.d/firstrun.json"
	// CloudWatchCommonConfig carries the agent's [proxy] table.
	CloudWatchCommonConfig = CloudWatchAgentDir + "/etc/common-config.toml"
	// CloudWatchEnvConfig is written by the agent's config translator at each start,
	// mode 0644, with the proxy of common-config.toml (cmd/config-translator and
	// tool/translator: envConfigFileName beside the TOML; translator/cmdutil
	// TranslateJsonMapToEnvConfigFile). firstrun only reads it, in --check.
	CloudWatchEnvConfig = CloudWatchAgentDir + "/etc/env-config.json"

	// AwslogsDir holds the legacy awslogs agent's configuration (Amazon Linux 2).
	AwslogsDir = "/etc/awslogs"
	// AwslogsConfig lists the files awslogs ships.
	AwslogsConfig = AwslogsDir + "/awslogs.conf"
	// AwslogsCLIConfig sets the region awslogs sends to.
	AwslogsCLIConfig = AwslogsDir + "/awscli.conf"
	// AwslogsProxyConfig carries awslogs' proxy environment.
	AwslogsProxyConfig = AwslogsDir + "/proxy.conf"
)

// Root is the filesystem root firstrun works under ("/" on an instance).
type Root string

// Join returns the real path of the host path p under the root.
func (r Root) Join(p string) string {
	return filepath.Join(string(r), p)
}
