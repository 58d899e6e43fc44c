// Package cwagent tells what the installed CloudWatch agent can do, from its version
// file (hostpath.CloudWatchAgentVersion): whether it collects journald units, which
// agents from 1.300070.0 do (logs.logs_collected.journald.collect_list[], see
// aws/amazon-cloudwatch-agent translator/config/sampleSchema/validLogJournald.json).
package cwagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/firstrun/firstrun/internal/hostpath"
)

// Version is an agent version, MAJOR.MINOR.PATCH; what follows the patch number in
// the version file (a build such as "b1889", or "-dirty" from git describe) does not
// order releases and is kept in Raw only.
type Version struct {
	Major, Minor, Patch int
	// Raw is the version as the file gives it.
	Raw string
}

// String returns the version as the file gives it, else MAJOR.MINOR.PATCH.
func (v Version) String() string {
	if v.Raw != "" {
		return v.Raw
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less reports whether v is an older release than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// JournaldSince is the first agent release that collects journald units.
var JournaldSince = Version{Major: 1, Minor: 300070, Patch: 0}

// ParseVersion reads the version file's content: one line such as "1.300060.0",
// "1.300073.2b1889" or "v1.300070.0-3-gabc1234-dirty" (the agent's Makefile writes git
// describe without its "v"; cfg/agentinfo trims the white space around it). A file
// that says "Unknown" or anything else is an error.
func ParseVersion(data []byte) (Version, error) {
	raw := strings.TrimSpace(string(data))
	s := strings.TrimPrefix(raw, "v")
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", raw)
	}
	patch := parts[2]
	if i := strings.IndexFunc(patch, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		patch = patch[:i]
	}
	var nums [3]int
	for i, p := range []string{parts[0], parts[1], patch} {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || strings.HasPrefix(p, "+") {
			return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", raw)
		}
		nums[i] = n
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2], Raw: raw}, nil
}

// Journald decides, from the version file's content (or the error reading it),
// whether the agent collects journald units, with the reason to log either way.
func Journald(data []byte, readErr error) (bool, string) {
	if readErr != nil {
		if errors.Is(readErr, fs.ErrNotExist) {
			return false, "journald units not shipped: the CloudWatch agent has no version file (" + hostpath.CloudWatchAgentVersion + "), so it may be older than " + JournaldSince.String()
		}
		return false, fmt.Sprintf("journald units not shipped: the CloudWatch agent's version is unknown: %v", readErr)
	}
	v, err := ParseVersion(data)
	if err != nil {
		return false, fmt.Sprintf("journald units not shipped: the CloudWatch agent's version is unknown: %v", err)
	}
	if v.Less(JournaldSince) {
		return false, fmt.Sprintf("journald units not shipped: CloudWatch agent %s is older than %s", v, JournaldSince)
	}
	return true, fmt.Sprintf("journald units shipped: CloudWatch agent %s is %s or newer", v, JournaldSince)
}

// ProbeJournald reads the installed agent's version file under root and returns
// Journald's answer.
func ProbeJournald(root hostpath.Root) (bool, string) {
	data, err := os.ReadFile(root.Join(hostpath.CloudWatchAgentVersion))
	return Journald(data, err)
}

// FetchConfigDeleted explains a fragment firstrun wrote that is gone from
// amazon-cloudwatch-agent.d: the agent's `-a fetch-config` deletes every other file
// there (amazon-cloudwatch-agent-ctl), while `-a append-config` keeps them.
const FetchConfigDeleted = "missing: `amazon-cloudwatch-agent-ctl -a fetch-config` deletes the other files in amazon-cloudwatch-agent.d, firstrun's included; rerun firstrun, or use -a append-config"

// CommonConfigMissing explains a missing common-config.toml: the agent's start script
// passes it to the translator, which exits 1 without it (start-amazon-cloudwatch-agent,
// tool/translator), and firstrun writes it only for a proxy.
const CommonConfigMissing = "missing: the CloudWatch agent does not start without it, and firstrun writes it only with a proxy: restore the package's file, or create it empty"
