package imdsmock

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Defaults of Config, the mock's own.
const (
	DefaultRegion     = "us-east-1"
	DefaultInstanceID = "i-1234567890abcdef0"
	DefaultHostname   = "127.0.0.1"
)

// tagPrefix is where IMDS serves the instance's tags.
const tagPrefix = "/latest/meta-data/tags/instance/"

// tagSlots are the mock's metadata path slots that carry tags, in the order they are
// used. The mock (v1.12.0, pkg/config/types.go) serves a fixed set of metadata keys,
// each a path under metadata.paths and a value under metadata.values with the same
// name; only two are meant for tags (tags-instance-name and tags-instance-test), so
// further tags take over slots of plain-text metadata that firstrun never reads: the
// slot's path becomes the tag's path, and the metadata it stood for is no longer
// served.
var tagSlots = []string{
	"tags-instance-name", "tags-instance-test",
	"ami-manifest-path", "kernel-id", "ramdisk-id", "product-codes",
	"placement-group-name", "placement-host-id", "reservation-id", "services-domain",
}

// MaxTags is the most tags a Config can hold: one per path slot.
var MaxTags = len(tagSlots)

// Config is what the mock serves.
type Config struct {
	// Region goes into both placement/region and the instance identity document
	// (DefaultRegion when "").
	Region string
	// InstanceID goes into both meta-data/instance-id and the identity document
	// (DefaultInstanceID when "").
	InstanceID string
	// Tags are the instance's tags, served under /latest/meta-data/tags/instance/.
	// nil means the instance does not expose its tags: the listing and every tag path
	// answer 404, as IMDS does without InstanceMetadataTags=enabled. The mock cannot
	// list an empty tag directory, so an empty map is the same as nil. Keys must be
	// readable through IMDS: no '/', no white space, not "." or "..".
	Tags map[string]string
	// Port is the port the mock listens on (Start chooses a free one).
	Port int
	// Hostname is the address the mock listens on (DefaultHostname when "").
	Hostname string
}

// JSON returns c in the mock's configuration file format (its -c file): IMDSv2
// required (every GET needs a session token, else 401), the server's hostname and
// port, the region both in placement-region and in the identity document, the instance
// id both in the metadata and in the identity document, and each tag in a tag path
// slot. The two slots meant for tags get the path "" when unused: the mock then does
// not serve them, so with no tags the listing answers 404 too. Tags are placed in key
// order, so the same Config gives the same bytes.
func (c Config) JSON() ([]byte, error) {
	if c.Port <= 0 || c.Port > 65535 {
		return nil, fmt.Errorf("mock config: port %d is not a TCP port", c.Port)
	}
	if len(c.Tags) > len(tagSlots) {
		return nil, fmt.Errorf("mock config: %d tags, the mock has path slots for %d", len(c.Tags), len(tagSlots))
	}
	region, id, host := or(c.Region, DefaultRegion), or(c.InstanceID, DefaultInstanceID), or(c.Hostname, DefaultHostname)

	paths := map[string]string{"tags-instance-name": "", "tags-instance-test": ""}
	values := map[string]string{
		"instance-id":                 id,
		"placement-region":            region,
		"placement-availability-zone": region + "a",
	}
	for i, key := range slices.Sorted(maps.Keys(c.Tags)) {
		if key == "" || key == "." || key == ".." || strings.ContainsAny(key, "/{} \t\r\n?#%") {
			return nil, fmt.Errorf("mock config: tag key %q cannot be served as a metadata path", key)
		}
		paths[tagSlots[i]] = tagPrefix + key
		values[tagSlots[i]] = c.Tags[key]
	}
	cfg := map[string]any{
		"imdsv2": true,
		"server": map[string]string{"hostname": host, "port": strconv.Itoa(c.Port)},
		"metadata": map[string]any{
			"paths":  paths,
			"values": values,
		},
		"dynamic": map[string]any{
			"values": map[string]any{
				"instance-identity-document": map[string]string{
					"region":           region,
					"instanceId":       id,
					"availabilityZone": region + "a",
				},
			},
		},
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("mock config: %w", err)
	}
	return append(out, '\n'), nil
}

// or returns s, or def when s is "".
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
