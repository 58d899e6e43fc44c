package logsources

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// logGroupName is CloudWatch Logs' CreateLogGroup rule.
var logGroupName = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)

// TestGroupNamesFitCloudWatchLogs pins the invariant validation relies on: with
// STACK_NAME at CloudFormation's 128 characters and AUTOSCALING_GROUP at Auto
// Scaling's 255, both of allowed characters, every group name fits CloudWatch Logs.
func TestGroupNamesFitCloudWatchLogs(t *testing.T) {
	stack, asg := "S"+strings.Repeat("s", 127), strings.Repeat("a", 254)+"#"
	for _, list := range [][]Source{CloudWatch, Awslogs, Firstrun} {
		for _, s := range list {
			name := GroupName(stack, asg, s.Suffix)
			if !logGroupName.MatchString(name) {
				t.Errorf("%s: group name of %d characters breaks CloudWatch Logs' rule", s.File, len(name))
			}
		}
	}
	for _, u := range Journald {
		if name := GroupName(stack, asg, u.Suffix); !logGroupName.MatchString(name) {
			t.Errorf("%s: group name of %d characters breaks CloudWatch Logs' rule", u.Name, len(name))
		}
	}
}

func TestLists(t *testing.T) {
	if got := GroupName("microtrader", "asg-1", "/var/log/ecs/ecs-agent"); got != "/microtrader/ec2/asg-1/var/log/ecs/ecs-agent" {
		t.Errorf("GroupName = %s", got)
	}
	seen := map[string]bool{}
	for _, s := range CloudWatch {
		if strings.HasPrefix(s.File, "/var/log/messages") || strings.HasPrefix(s.File, "/var/log/dmesg") {
			t.Errorf("CloudWatch (AL2023) lists %s, which AL2023 does not write", s.File)
		}
		if seen[s.Suffix] {
			t.Errorf("CloudWatch lists group %s twice", s.Suffix)
		}
		seen[s.Suffix] = true
		if (s.TimestampFormat == "") != (s.Timezone == "") {
			t.Errorf("%s: timestamp format %q with time zone %q", s.File, s.TimestampFormat, s.Timezone)
		}
	}
	if len(Awslogs) != 6 {
		t.Errorf("awslogs lists %d files, the chapter six", len(Awslogs))
	}
	// firstrun's own files go to the CloudWatch agent, each to a group of its own (the
	// loop above rejects a shared group; the metrics group must hold nothing but EMF
	// records).
	for _, f := range Firstrun {
		if !slices.Contains(CloudWatch, f) {
			t.Errorf("CloudWatch does not ship %s", f.File)
		}
	}
	for _, u := range Journald {
		if !strings.HasSuffix(u.Name, ".service") || seen[u.Suffix] {
			t.Errorf("journald unit %+v", u)
		}
		seen[u.Suffix] = true
	}
}
