package health

import (
	"errors"
	"fmt"
	"time"
)

// WrongClusterGrace is how long Wait lets the agent answer with another cluster before
// it fails. Such an answer is final (the agent keeps the cluster it registered to until
// it is restarted, and a restarted agent whose checkpoint in /var/lib/ecs/data names
// another cluster exits at once: aws/amazon-ecs-agent agent/app/agent.go,
// setClusterInConfig), except while a restart is in flight: when firstrun has just
// rewritten ecs.config it restarts ecs.service without waiting for the job, and the old
// agent answers until ecs-init's ExecStop has stopped its container, which gives it 10 s
// after SIGTERM before killing it (ecs-init/docker/docker.go, StopAgent:
// stopContainerTimeoutSeconds). 30 s is three times that, for a busy docker; a
// restarted agent refuses connections until it registered again, which starts the
// grace anew.
const WrongClusterGrace = 30 * time.Second

// ErrNotRegistered is what every error of Wait that says the agent did not register
// unwraps to: a *TimeoutError, a *WrongClusterError, a *NotMetadataError.
var ErrNotRegistered = errors.New("the ECS agent did not register")

// ErrWrongCluster is what a *WrongClusterError unwraps to.
var ErrWrongCluster = errors.New("the ECS agent is registered to another cluster")

// ErrNotMetadata says a 200 answer was not the agent's metadata: its JSON has no
// "Cluster" field. The agent's introspection server answers GET / (and any path it
// does not know) with 200 and {"AvailableCommands":[...]} (aws/amazon-ecs-agent
// ecs-agent/introspection/server.go), and its /v1/metadata always has "Cluster", even
// in an error answer (ecs-agent/introspection/v1/handlers/handlers.go,
// AgentMetadataHandler; ecs-agent/introspection/v1/response.go).
var ErrNotMetadata = errors.New("not the agent's metadata endpoint")

// notMetadataError is the Client's error for a 200 answer that is not metadata.
type notMetadataError struct {
	body string // the start of the answer
}

func (e *notMetadataError) Error() string {
	return `HTTP 200 without the agent's metadata (no "Cluster"): not the agent's metadata endpoint; it answered ` + e.body
}

func (e *notMetadataError) Unwrap() error { return ErrNotMetadata }

// NotMetadata reports whether the answer was a 200 that is not the agent's metadata:
// the endpoint polled is not /v1/metadata of an ECS agent.
func (s Status) NotMetadata() bool { return errors.Is(s.Err, ErrNotMetadata) }

// NotMetadataError says the endpoint answered 200 with something else than the
// agent's metadata. Wait returns it at once: the same URL will not answer differently.
type NotMetadataError struct {
	Last Status
}

// Error says what was answered and where the metadata is.
func (e *NotMetadataError) Error() string {
	return fmt.Sprintf("waiting for the ECS agent: %v: FIRSTRUN_AGENT_URL must name the agent's metadata endpoint, path /v1/metadata", e.Last.Err)
}

// Unwrap returns ErrNotMetadata and ErrNotRegistered.
func (e *NotMetadataError) Unwrap() []error { return []error{ErrNotMetadata, ErrNotRegistered} }

// WrongClusterError says the agent answered, for For without a break, that it is
// registered to Other instead of Cluster.
type WrongClusterError struct {
	Cluster string
	Other   string
	For     time.Duration
	Last    Status
}

// Error names both clusters and says why waiting longer would not help.
func (e *WrongClusterError) Error() string {
	return fmt.Sprintf("the ECS agent is registered to cluster %q, not %q, and stayed so for %v: an agent keeps its cluster until it is restarted: was ECS_CLUSTER picked up?",
		e.Other, e.Cluster, e.For)
}

// Unwrap returns ErrWrongCluster and ErrNotRegistered.
func (e *WrongClusterError) Unwrap() []error { return []error{ErrWrongCluster, ErrNotRegistered} }

// wrongClusterWatch tells when the agent has answered with the same wrong cluster for
// the grace without a break.
type wrongClusterWatch struct {
	cluster string
	grace   time.Duration
	other   string    // the wrong cluster of the current stretch, "" when none
	since   time.Time // when the current stretch began
}

// see takes one status seen at now and returns an error once the stretch has lasted
// the grace.
func (w *wrongClusterWatch) see(st Status, now time.Time) error {
	other := st.WrongCluster(w.cluster)
	switch {
	case other == "":
		w.other = ""
	case other != w.other:
		w.other, w.since = other, now
	case now.Sub(w.since) >= w.grace:
		return &WrongClusterError{Cluster: w.cluster, Other: other, For: w.grace, Last: st}
	}
	return nil
}
