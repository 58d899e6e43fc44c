// Package health waits for the ECS agent to register the instance to its cluster.
//
// The agent answers GET http://127.0.0.1:51678/v1/metadata (its introspection API,
// amazon-ecs-agent ecs-agent/introspection/v1/response.go) only once registration has
// succeeded; before that the port refuses connections. The instance is registered when
// the answer is HTTP 200 with a non-null, non-empty ContainerInstanceArn and a Cluster
// that is the configured one (a cluster's name and its ARN name the same cluster).
//
// Client makes one bounded request; Wait polls a Getter until the agent is registered,
// the context ends, the timeout passes or the answer is final (another cluster for
// WrongClusterGrace, or a 200 that is not the agent's metadata); Tail and TailAgentLog
// read the end of a log file for a diagnosis.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// Metadata is the agent's /v1/metadata answer.
type Metadata struct {
	// Cluster is the cluster the agent registered to, as configured (name or ARN).
	Cluster string `json:"Cluster"`
	// ContainerInstanceArn is null until the agent has registered.
	ContainerInstanceArn *string `json:"ContainerInstanceArn"`
	// Version is the agent's version line.
	Version string `json:"Version"`
}

// Status is the outcome of one request to the agent.
type Status struct {
	// HTTPStatus is the answer's status code, 0 when there was no HTTP answer.
	HTTPStatus int
	// Metadata is the decoded answer, nil unless a 200 with valid JSON.
	Metadata *Metadata
	// Err says what went wrong: a connection error, a status other than 200, or a
	// body that is not valid JSON. It is nil on a 200 with valid JSON, even when the
	// agent is not registered yet.
	Err error
}

// Registered reports whether the agent answered 200 with a container instance ARN,
// whatever its cluster.
func (s Status) Registered() bool {
	return s.HTTPStatus == 200 && s.Metadata != nil &&
		s.Metadata.ContainerInstanceArn != nil && *s.Metadata.ContainerInstanceArn != ""
}

// RegisteredTo reports whether the agent is registered to cluster (a name or an ARN).
func (s Status) RegisteredTo(cluster string) bool {
	return s.Registered() && SameCluster(cluster, s.Metadata.Cluster)
}

// WrongCluster returns the cluster the agent reports when it is registered to a
// different one than want, else "".
func (s Status) WrongCluster(want string) string {
	if !s.Registered() || SameCluster(want, s.Metadata.Cluster) {
		return ""
	}
	return s.Metadata.Cluster
}

// String describes the status in one short line, for logs and diagnoses.
func (s Status) String() string {
	switch {
	case s.HTTPStatus == 0:
		return describeRequestError(s.Err)
	case s.HTTPStatus != 200:
		return fmt.Sprintf("HTTP %d", s.HTTPStatus)
	case s.Metadata == nil:
		var nm *notMetadataError
		if errors.As(s.Err, &nm) {
			return nm.Error()
		}
		var be *bodyError
		if errors.As(s.Err, &be) {
			return be.Error()
		}
		if s.Err != nil {
			return s.Err.Error()
		}
		return "HTTP 200 without metadata"
	case s.Metadata.ContainerInstanceArn == nil:
		return "answering but not registered (ContainerInstanceArn is null)"
	case *s.Metadata.ContainerInstanceArn == "":
		return "answering but not registered (ContainerInstanceArn is empty)"
	}
	return fmt.Sprintf("registered to %s as %s", s.Metadata.Cluster, *s.Metadata.ContainerInstanceArn)
}

// Same reports whether two statuses say the same thing, that is have the same String;
// a caller logs a status only when it is not the Same as the previous one.
func (s Status) Same(o Status) bool { return s.String() == o.String() }

// describeRequestError shortens the error of a request that got no HTTP answer:
// `Get "http://127.0.0.1:51678/v1/metadata": dial tcp 127.0.0.1:51678: connect:
// connection refused` becomes "connection refused".
func describeRequestError(err error) string {
	switch {
	case err == nil:
		return "no answer"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer in time"
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without an answer"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) && urlErr.Err != nil {
		return urlErr.Err.Error()
	}
	return err.Error()
}

// bodyError is what is wrong with the body of a 200 answer, in the words String uses;
// the Client wraps it with the endpoint.
type bodyError struct {
	what string // "bad JSON", "body too large"
	err  error  // may be nil
}

func (e *bodyError) Error() string {
	if e.err == nil {
		return e.what
	}
	return e.what + ": " + e.err.Error()
}

func (e *bodyError) Unwrap() error { return e.err }

// SameCluster reports whether want and got name the same cluster. A cluster ARN,
// arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME in any partition, is the same
// cluster as NAME; two ARNs, and two names, compare exactly (names are
// case-sensitive). An empty string names no cluster and matches nothing.
func SameCluster(want, got string) bool {
	if want == "" || got == "" {
		return false
	}
	if want == got {
		return true
	}
	wantName, wantIsARN := clusterARNName(want)
	gotName, gotIsARN := clusterARNName(got)
	if wantIsARN == gotIsARN {
		return false // two ARNs or two names, and not equal
	}
	return wantName == gotName
}

// clusterARNName returns the NAME of arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME and
// true, or s itself and false when s is not an ECS cluster ARN. Cluster names cannot
// hold ':', so no name is mistaken for an ARN.
func clusterARNName(s string) (string, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "ecs" ||
		parts[3] == "" || parts[4] == "" {
		return s, false
	}
	name, ok := strings.CutPrefix(parts[5], "cluster/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return s, false
	}
	return name, true
}
