// Package ecsconfig renders /etc/ecs/ecs.config, the ECS agent's settings, merged
// into what is on disk so that lines the user wrote survive.
//
// ecs-init reads the file itself (ecs-init/docker/docker.go getEnvVars: split on
// newlines, trim, SplitN on the first '='; no quotes, no comments) and systemd reads it
// as ecs.service's EnvironmentFile=, so firstrun writes plain KEY=value lines, one
// setting a line, no quotes, no export.
package ecsconfig

import (
	"bytes"
	"sort"
	"strings"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/proxy"
)

// Mode is ecs.config's mode: it may carry ECS_ENGINE_AUTH_DATA and proxy credentials.
const Mode = 0o600

// fixedKeys are managed on every run: a rerun without a proxy removes the proxy keys.
var fixedKeys = append([]string{"ECS_CLUSTER"}, proxy.AgentKeys...)

// Settings returns the settings firstrun wants in ecs.config, in file order:
// ECS_CLUSTER, the other ECS_* inputs by key, then the proxy settings.
func Settings(cfg inputs.Config) []inputs.Setting {
	s := []inputs.Setting{{Key: "ECS_CLUSTER", Value: cfg.Cluster}}
	s = append(s, cfg.ECSSettings...)
	return append(s, proxy.AgentSettings(cfg)...)
}

// Render returns ecs.config as a merged file, and the keys firstrun owns in it now.
// previouslyOwned are the keys an earlier run wrote (from the state file): they are
// managed too, so an ECS_* input that is no longer given is removed.
func Render(cfg inputs.Config, previouslyOwned []string) (files.File, []string) {
	settings := Settings(cfg)
	managed := map[string]bool{}
	for _, k := range fixedKeys {
		managed[k] = true
	}
	for _, k := range previouslyOwned {
		managed[k] = true
	}
	owned := make([]string, 0, len(settings))
	for _, s := range settings {
		managed[s.Key] = true
		owned = append(owned, s.Key)
	}
	sort.Strings(owned)
	return files.File{
		Path: hostpath.ECSConfig,
		Mode: Mode,
		Merge: func(existing []byte) ([]byte, error) {
			return Merge(existing, settings, managed), nil
		},
	}, owned
}

// Key returns the key of an ecs.config line, white space around it trimmed (as
// systemd reads it: a hand-written "ECS_CLUSTER = x" is the same setting), or "" for a
// line without '='.
func Key(line string) string {
	k, _, ok := strings.Cut(line, "=")
	if !ok {
		return ""
	}
	return strings.TrimSpace(k)
}

// Merge writes settings into existing: a managed key's first line is replaced in
// place by its wanted value, its other lines (duplicates, as the seed's >> left) are
// dropped, and so are the lines of managed keys with no wanted value; every other line
// stays as it was, where it was. Wanted keys not yet in the file are appended in order.
// The result ends with a newline; Merge(Merge(x)) == Merge(x).
func Merge(existing []byte, settings []inputs.Setting, managed map[string]bool) []byte {
	want := make(map[string]string, len(settings))
	for _, s := range settings {
		if _, dup := want[s.Key]; !dup { // the first of repeated keys wins, as when appending
			want[s.Key] = s.Value
		}
	}
	var out bytes.Buffer
	done := map[string]bool{}
	if len(existing) > 0 {
		text := strings.TrimSuffix(string(existing), "\n")
		for _, line := range strings.Split(text, "\n") {
			k := Key(line)
			if k == "" || !managed[k] {
				out.WriteString(line)
				out.WriteByte('\n')
				continue
			}
			v, wanted := want[k]
			if !wanted || done[k] {
				continue
			}
			done[k] = true
			out.WriteString(k + "=" + v + "\n")
		}
	}
	for _, s := range settings {
		if !done[s.Key] {
			done[s.Key] = true
			out.WriteString(s.Key + "=" + s.Value + "\n")
		}
	}
	return out.Bytes()
}
