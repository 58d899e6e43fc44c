// Package awslogs renders the log agent's configuration: the unified CloudWatch
// agent's JSON on Amazon Linux 2023, or the legacy awslogs agent's INI files (the
// chapter's) on Amazon Linux 2. Log groups are /${STACK_NAME}/ec2/${AUTOSCALING_GROUP}
// followed by the file's path, streams are named after the instance id.
package awslogs

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/logsources"
)

// Mode of the log agent's files: they hold no secret.
const Mode = 0o644

// instanceID is the agents' own placeholder for the instance id, filled in at run time.
const instanceID = "{instance_id}"

// Options are what the installed agent can do, found on the host (not an input).
type Options struct {
	// Journald is true when the CloudWatch agent collects journald units
	// (cwagent.ProbeJournald): the journal of logsources.Journald is shipped too.
	Journald bool
}

// Render returns the files of the configured log agent, none for "none", for an agent
// that does not collect journald units.
func Render(cfg inputs.Config) []files.File {
	return RenderWith(cfg, Options{})
}

// RenderWith returns the files of the configured log agent, none for "none".
func RenderWith(cfg inputs.Config, opts Options) []files.File {
	switch cfg.LogAgent {
	case inputs.LogAgentCloudWatch:
		return []files.File{{Path: hostpath.CloudWatchAgentConfig, Mode: Mode, Content: CloudWatchConfig(cfg, opts)}}
	case inputs.LogAgentAwslogs:
		return []files.File{
			{Path: hostpath.AwslogsCLIConfig, Mode: Mode, Content: AwscliConfig(cfg)},
			{Path: hostpath.AwslogsConfig, Mode: Mode, Content: AwslogsConfig(cfg)},
		}
	}
	return nil
}

type cwConfig struct {
	Logs cwLogs `json:"logs"`
}

type cwLogs struct {
	LogsCollected cwCollected `json:"logs_collected"`
}

type cwCollected struct {
	Files    cwFiles     `json:"files"`
	Journald *cwJournald `json:"journald,omitempty"`
}

type cwJournald struct {
	CollectList []cwUnit `json:"collect_list"`
}

// cwUnit is one journald collect_list entry (aws/amazon-cloudwatch-agent,
// translator/config/sampleSchema/validLogJournald.json).
type cwUnit struct {
	Units         []string `json:"units"`
	LogGroupName  string   `json:"log_group_name"`
	LogStreamName string   `json:"log_stream_name"`
}

type cwFiles struct {
	CollectList []cwFile `json:"collect_list"`
}

type cwFile struct {
	FilePath        string `json:"file_path"`
	LogGroupName    string `json:"log_group_name"`
	LogStreamName   string `json:"log_stream_name"`
	TimestampFormat string `json:"timestamp_format,omitempty"`
	Timezone        string `json:"timezone,omitempty"`
}

// CloudWatchConfig renders the CloudWatch agent's JSON: logs.logs_collected.files, and
// with opts.Journald logs.logs_collected.journald, a unit a log group. It holds only
// the logs section, so it merges with other files an image may put in
// amazon-cloudwatch-agent.d (metrics, say).
func CloudWatchConfig(cfg inputs.Config, opts Options) []byte {
	var c cwConfig
	for _, s := range logsources.CloudWatch {
		c.Logs.LogsCollected.Files.CollectList = append(c.Logs.LogsCollected.Files.CollectList, cwFile{
			FilePath:        s.File,
			LogGroupName:    logsources.GroupName(cfg.StackName, cfg.AutoscalingGroup, s.Suffix),
			LogStreamName:   instanceID,
			TimestampFormat: s.TimestampFormat,
			Timezone:        s.Timezone,
		})
	}
	if opts.Journald {
		j := &cwJournald{}
		for _, u := range logsources.Journald {
			j.CollectList = append(j.CollectList, cwUnit{
				Units:         []string{u.Name},
				LogGroupName:  logsources.GroupName(cfg.StackName, cfg.AutoscalingGroup, u.Suffix),
				LogStreamName: instanceID,
			})
		}
		c.Logs.LogsCollected.Journald = j
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("awslogs: marshalling a fixed structure: %v", err)) // cannot happen: plain strings
	}
	return append(out, '\n')
}

// AwscliConfig renders /etc/awslogs/awscli.conf: the cwlogs plugin and the region.
func AwscliConfig(cfg inputs.Config) []byte {
	return []byte("[plugins]\ncwlogs = cwlogs\n[default]\nregion = " + cfg.Region + "\n")
}

// AwslogsConfig renders /etc/awslogs/awslogs.conf with the chapter's six log files,
// then firstrun's own.
func AwslogsConfig(cfg inputs.Config) []byte {
	var b strings.Builder
	b.WriteString("[general]\nstate_file = /var/lib/awslogs/agent-state\n")
	for _, s := range append(append([]logsources.Source(nil), logsources.Awslogs...), logsources.Firstrun...) {
		// The section is the file without the rotation glob, as in the chapter.
		fmt.Fprintf(&b, "\n[%s]\n", strings.TrimSuffix(s.File, "*"))
		fmt.Fprintf(&b, "file = %s\n", s.File)
		fmt.Fprintf(&b, "log_group_name = %s\n", logsources.GroupName(cfg.StackName, cfg.AutoscalingGroup, s.Suffix))
		fmt.Fprintf(&b, "log_stream_name = %s\n", instanceID)
		if s.TimestampFormat != "" {
			fmt.Fprintf(&b, "datetime_format = %s\n", s.TimestampFormat)
		}
		if s.Timezone == "UTC" {
			b.WriteString("time_zone = UTC\n")
		}
	}
	return []byte(b.String())
}
