// Package state keeps what firstrun owns on the host: the files it wrote whole, the
// keys it wrote into ecs.config and the keys it wrote into the CloudWatch agent's
// common-config.toml. A rerun removes what an input no longer asks for, and
// never touches what firstrun did not write.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
)

// version is the state file's format.
const version = 1

// State is what firstrun owns.
type State struct {
	Version int `json:"version"`
	// Files are host paths firstrun owns whole.
	Files []string `json:"files"`
	// ECSConfigKeys are the keys firstrun wrote into ecs.config.
	ECSConfigKeys []string `json:"ecs_config_keys"`
	// CommonConfigKeys are the keys firstrun wrote into the CloudWatch agent's
	// common-config.toml, as TABLE.KEY; absent from the file when none, so that a state
	// file without them reads and writes as before.
	CommonConfigKeys []string `json:"common_config_keys,omitempty"`
}

// New returns a normalised State (sorted, without repeats).
func New(files, keys []string) State {
	return State{Version: version, Files: set(files), ECSConfigKeys: set(keys)}
}

func set(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return slices.Compact(out)
}

// Parse reads a state file; empty data is the empty state.
func Parse(data []byte) (State, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return New(nil, nil), nil
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("parsing %s: %w", hostpath.StateFile, err)
	}
	if s.Version != version {
		return State{}, fmt.Errorf("parsing %s: version %d, this firstrun reads version %d", hostpath.StateFile, s.Version, version)
	}
	return New(s.Files, s.ECSConfigKeys).WithCommonConfigKeys(s.CommonConfigKeys), nil
}

// WithCommonConfigKeys returns s owning keys of common-config.toml (and no others).
func (s State) WithCommonConfigKeys(keys []string) State {
	s.CommonConfigKeys = set(keys)
	if len(s.CommonConfigKeys) == 0 {
		s.CommonConfigKeys = nil
	}
	return s
}

// Union returns what either state owns: written before anything else, it keeps a
// crash between two writes from leaving a file firstrun wrote but does not know of.
func Union(a, b State) State {
	return New(append(append([]string{}, a.Files...), b.Files...), append(append([]string{}, a.ECSConfigKeys...), b.ECSConfigKeys...)).
		WithCommonConfigKeys(append(append([]string{}, a.CommonConfigKeys...), b.CommonConfigKeys...))
}

// Equal reports whether two states own the same.
func (s State) Equal(o State) bool {
	return slices.Equal(s.Files, o.Files) && slices.Equal(s.ECSConfigKeys, o.ECSConfigKeys) &&
		slices.Equal(s.CommonConfigKeys, o.CommonConfigKeys)
}

// Stale returns the files s owns that want does not list.
func (s State) Stale(want []files.File) []string {
	wanted := map[string]bool{}
	for _, f := range want {
		wanted[f.Path] = true
	}
	var out []string
	for _, p := range s.Files {
		if !wanted[p] {
			out = append(out, p)
		}
	}
	return out
}

// File renders the state file.
func (s State) File() files.File {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("state: marshalling a fixed structure: %v", err)) // cannot happen
	}
	return files.File{Path: hostpath.StateFile, Mode: 0o644, Content: append(data, '\n')}
}

// Owned returns the State for the files firstrun wants now: those it owns whole, not
// the shared ones, and the ecs.config keys it wrote.
func Owned(want []files.File, ecsKeys []string) State {
	var paths []string
	for _, f := range want {
		if !f.Shared() {
			paths = append(paths, f.Path)
		}
	}
	return New(paths, ecsKeys)
}

// Read returns the state file under root: an empty State when there is none, an error
// naming the file when it cannot be read or parsed.
func Read(root hostpath.Root) (State, error) {
	p := root.Join(hostpath.StateFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return New(nil, nil), nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading state: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return State{}, fmt.Errorf("%w (remove %s to start afresh)", err, p)
	}
	return s, nil
}
