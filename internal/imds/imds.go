// Package imds discovers firstrun's inputs from the EC2 instance metadata service,
// IMDSv2 only: the region and the instance id from the instance identity document, and,
// when the instance exposes its tags in the metadata (InstanceMetadataTags=enabled),
// the CloudFormation stack and logical id, the Auto Scaling group and the ECS cluster
// from its tags.
//
// Discover drives a narrow API; Client is the real one, built on the AWS SDK's
// feature/ec2/imds client: one session token per Client (a PUT to /latest/api/token,
// reused by every later request), never a fallback to IMDSv1, never a proxy, a few
// quick retries, and every request counted. Discover asks only for what a run needs
// (at most one PUT, the identity document, the tag listing and the listed tags firstrun
// reads) within one overall deadline. When IMDS cannot be reached, Discover returns
// what it learned and an error wrapping ErrUnavailable: the caller carries on with the
// environment.
package imds

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Tag keys read from the instance's tags, under /latest/meta-data/tags/instance/.
// CloudFormation and Auto Scaling put the aws: ones on the instances they launch.
const (
	// TagStackName names the CloudFormation stack that launched the instance.
	TagStackName = "aws:cloudformation:stack-name"
	// TagLogicalID is the logical id of the stack's resource that launched it.
	TagLogicalID = "aws:cloudformation:logical-id"
	// TagAutoscalingGroup names the instance's Auto Scaling group.
	TagAutoscalingGroup = "aws:autoscaling:groupName"
	// DefaultClusterTag is the tag key whose value is ECS_CLUSTER when
	// FIRSTRUN_CLUSTER_TAG does not name another. No AWS service sets a cluster tag on
	// an instance, so the operator tags the instance (or the launch template) with it.
	// "ecs:cluster-name" is chosen because it reads as what it is, sits with the
	// service it configures, avoids the reserved aws: prefix, and, holding no space or
	// '/', is readable through the instance metadata.
	DefaultClusterTag = "ecs:cluster-name"
)

// DefaultTimeout bounds a whole Discover when the API sets no bound of its own.
const DefaultTimeout = 5 * time.Second

// ErrNotFound is what the API returns for a metadata path that does not exist (HTTP
// 404): the tag listing when the instance does not expose its tags, a tag that is gone.
var ErrNotFound = errors.New("not found in the instance metadata")

// ErrUnavailable is what Discover's error wraps when the instance metadata service
// could not be reached or kept failing.
var ErrUnavailable = errors.New("instance metadata service unavailable")

// Info is what IMDS said. Empty fields were not available.
type Info struct {
	// Region and InstanceID come from the instance identity document.
	Region, InstanceID string
	// StackName, LogicalID and AutoscalingGroup come from the TagStackName,
	// TagLogicalID and TagAutoscalingGroup tags; Cluster from the cluster tag.
	StackName, LogicalID, AutoscalingGroup, Cluster string
	// TagsExposed reports whether the instance exposes its tags in IMDS.
	TagsExposed bool
	// Requests counts the HTTP requests made, the token PUT and retries included (for
	// logs and tests); 0 when the API does not count them.
	Requests int
}

// API is the narrow interface to IMDS that Discover needs. *Client is the real one;
// tests use fakes.
//
// An API may also have the methods Timeout() time.Duration, Discover's overall bound
// (DefaultTimeout otherwise), and Requests() int, the HTTP requests made so far, of
// which Discover reports its share in Info.Requests. *Client has both.
type API interface {
	// GetIdentity reads the instance identity document: one GET gives both the
	// region and the instance id.
	GetIdentity(ctx context.Context) (region, instanceID string, err error)
	// GetTagKeys lists the instance's tag keys (GET /latest/meta-data/tags/instance);
	// an error wrapping ErrNotFound means the instance does not expose its tags.
	GetTagKeys(ctx context.Context) ([]string, error)
	// GetTag returns the value of the tag key; an error wrapping ErrNotFound when the
	// instance has no such tag.
	GetTag(ctx context.Context, key string) (string, error)
}

// Discover asks IMDS, through api, for the region and the instance id and, when the
// instance exposes its tags, for the tags firstrun uses: TagStackName, TagLogicalID,
// TagAutoscalingGroup and clusterTag, the tag key for ECS_CLUSTER (DefaultClusterTag
// when ""). Only the keys present in the tag listing are fetched. Everything runs
// under one deadline: api's Timeout() or DefaultTimeout, and ctx's.
//
// Tags not exposed (ErrNotFound on the listing) is normal: TagsExposed is false and
// the error nil; so is a listed tag that is gone when fetched. Any other failure stops
// the discovery: Discover returns what it learned so far and an error wrapping
// ErrUnavailable and the cause, and the caller carries on with the environment.
func Discover(ctx context.Context, api API, clusterTag string) (info Info, err error) {
	if clusterTag == "" {
		clusterTag = DefaultClusterTag
	}
	timeout := DefaultTimeout
	if b, ok := api.(interface{ Timeout() time.Duration }); ok && b.Timeout() > 0 {
		timeout = b.Timeout()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c, ok := api.(interface{ Requests() int }); ok {
		before := c.Requests()
		defer func() { info.Requests = c.Requests() - before }()
	}

	info.Region, info.InstanceID, err = api.GetIdentity(ctx)
	if err != nil {
		return info, unavailable(ctx, err)
	}

	keys, err := api.GetTagKeys(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		return info, nil
	case err != nil:
		return info, unavailable(ctx, err)
	}
	info.TagsExposed = true
	listed := make(map[string]bool, len(keys))
	for _, k := range keys {
		listed[k] = true
	}
	fetched := map[string]string{} // a cluster tag that is one of the others is read once
	for _, w := range []struct {
		key   string
		field *string
	}{
		{TagStackName, &info.StackName},
		{TagLogicalID, &info.LogicalID},
		{TagAutoscalingGroup, &info.AutoscalingGroup},
		{clusterTag, &info.Cluster},
	} {
		if v, ok := fetched[w.key]; ok {
			*w.field = v
			continue
		}
		if !listed[w.key] {
			continue
		}
		v, err := api.GetTag(ctx, w.key)
		switch {
		case errors.Is(err, ErrNotFound):
			v = ""
		case err != nil:
			return info, unavailable(ctx, err)
		}
		fetched[w.key] = v
		*w.field = v
	}
	return info, nil
}

// unavailable wraps err, the failure that stopped Discover, with ErrUnavailable, and
// with the context's error once the context has ended and err does not already wrap
// it (the SDK's errors for a failed token request do not unwrap).
func unavailable(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, cerr, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
