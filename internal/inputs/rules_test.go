package inputs

import (
	"strings"
	"testing"
)

// TestLengthLimits: each rule's length limit holds at its bound and one past it, for
// names and for the cluster name inside an ARN.
func TestLengthLimits(t *testing.T) {
	arn := func(name string) string { return "arn:aws:ecs:us-east-1:123456789012:cluster/" + name }
	for _, tc := range []struct {
		name string
		ok   func(string) bool
		long func(n int) string
		max  int
	}{
		{"cluster name", clusterName.MatchString, func(n int) string { return strings.Repeat("c", n) }, 255},
		{"cluster ARN", isClusterARN, func(n int) string { return arn(strings.Repeat("c", n)) }, 255},
		{"stack name", stackName.MatchString, func(n int) string { return "s" + strings.Repeat("a", n-1) }, 128},
		{"log group name", logGroupName.MatchString, func(n int) string { return strings.Repeat("/", n) }, 512},
		{"logical id", logicalID.MatchString, func(n int) string { return strings.Repeat("L", n) }, 255},
		{"metadata tag key", metadataTagKey.MatchString, func(n int) string { return strings.Repeat("k", n) }, 128},
	} {
		if !tc.ok(tc.long(tc.max)) {
			t.Errorf("%s of %d characters refused, want accepted", tc.name, tc.max)
		}
		if tc.ok(tc.long(tc.max + 1)) {
			t.Errorf("%s of %d characters accepted, want refused", tc.name, tc.max+1)
		}
		if tc.ok(tc.long(1) + "\n") {
			t.Errorf("%s with a newline accepted", tc.name)
		}
	}
	if isClusterARN(arn("")) || isClusterARN("arn:aws:ecs:us-east-1:123456789012:cluster/a b") {
		t.Error("a cluster ARN with an empty or invalid name accepted")
	}
}
