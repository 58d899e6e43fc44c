// Package logsources lists the log files firstrun ships to CloudWatch Logs on each
// platform, and composes their log group names. Validation and the log agent
// renderers share it.
package logsources

import "github.com/firstrun/firstrun/internal/hostpath"

// Source is one log file and the log group it goes to.
type Source struct {
	// File is the path (a glob for rotated files) the agent reads.
	File string
	// Suffix follows /STACK/ec2/ASG in the log group name.
	Suffix string
	// TimestampFormat is the strftime-style format of the line's time stamp, "" to let
	// the agent use the time it read the line.
	TimestampFormat string
	// Timezone is UTC or Local, "" with no TimestampFormat.
	Timezone string
}

// ecsFormat is the time stamp of ecs-init, the ECS agent and its audit log (UTC).
const ecsFormat = "%Y-%m-%dT%H:%M:%SZ"

// ecs are the ECS logs, on every platform. Group names are the chapter's, audit's
// ".log" suffix included, so that existing dashboards and IAM policies still match.
var ecs = []Source{
	{File: "/var/log/ecs/ecs-init.log*", Suffix: "/var/log/ecs/ecs-init", TimestampFormat: ecsFormat, Timezone: "UTC"},
	{File: "/var/log/ecs/ecs-agent.log*", Suffix: "/var/log/ecs/ecs-agent", TimestampFormat: ecsFormat, Timezone: "UTC"},
	{File: "/var/log/ecs/audit.log*", Suffix: "/var/log/ecs/audit.log", TimestampFormat: ecsFormat, Timezone: "UTC"},
}

// Firstrun are firstrun's own files, on every platform: its log (JSON lines) and its
// metrics (one CloudWatch embedded metric format record a line, which the metrics log
// group must hold alone: the CloudWatch agent sends a whole destination as EMF once it
// has seen one such record). No time stamp format: the agent stamps a line when it reads
// it, seconds after firstrun wrote it.
var Firstrun = []Source{
	{File: hostpath.FirstrunLog, Suffix: "/var/log/firstrun/firstrun"},
	{File: hostpath.MetricsLog, Suffix: "/var/log/firstrun/metrics"},
}

// CloudWatch are the files the CloudWatch agent ships on Amazon Linux 2023. AL2023
// has no rsyslog, so no /var/log/messages, and docker and the kernel log to the
// journal only (see Journald); cloud-init still writes its logs, which are where a
// failed boot is explained.
var CloudWatch = append(append(append([]Source(nil), ecs...),
	Source{File: "/var/log/cloud-init.log", Suffix: "/var/log/cloud-init"},
	Source{File: "/var/log/cloud-init-output.log", Suffix: "/var/log/cloud-init-output"},
), Firstrun...)

// Unit is a systemd unit whose journal the CloudWatch agent ships, and the log group
// it goes to.
type Unit struct {
	// Name is the unit's full name.
	Name string
	// Suffix follows /STACK/ec2/ASG in the log group name.
	Suffix string
}

// Journald are the units whose journal the CloudWatch agent ships when it can
// (1.300070.0 and later, internal/cwagent): on AL2023 docker logs only there, the ECS
// agent's ecs-init writes its unit's start and stop there, and firstrun's own units'
// logs (which firstrun.log repeats, but with systemd's word on how they ended):
// firstrun-early.service joins while user data runs, firstrun.service after it.
var Journald = []Unit{
	{Name: "docker.service", Suffix: "/journal/docker.service"},
	{Name: "ecs.service", Suffix: "/journal/ecs.service"},
	{Name: "firstrun.service", Suffix: "/journal/firstrun.service"},
	{Name: "firstrun-early.service", Suffix: "/journal/firstrun-early.service"},
}

// Awslogs are the chapter's six files, for the awslogs agent on Amazon Linux 2.
var Awslogs = append([]Source{
	{File: "/var/log/dmesg", Suffix: "/var/log/dmesg"},
	{File: "/var/log/messages", Suffix: "/var/log/messages", TimestampFormat: "%b %d %H:%M:%S"},
	{File: "/var/log/docker", Suffix: "/var/log/docker", TimestampFormat: "%Y-%m-%dT%H:%M:%S.%f"},
}, ecs...)

// GroupName composes a log group name as the chapter does:
// /${STACK_NAME}/ec2/${AUTOSCALING_GROUP}<suffix>. The leading "/" matches the
// chapter's IAM policy, log-group:/${AWS::StackName}*.
func GroupName(stack, asg, suffix string) string {
	return "/" + stack + "/ec2/" + asg + suffix
}
