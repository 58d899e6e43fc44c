// Package runrecord holds the record of one firstrun run: when it started, on which
// instance, in which cluster and Auto Scaling group, each phase's outcome and duration,
// when the agent was seen registered and the exit code. The orchestration fills one
// Run; the metrics (internal/emf), the log summary, the marker and the signal are
// written from it.
package runrecord

import (
	"strconv"
	"time"
)

// Outcome is what became of a phase.
type Outcome string

// Outcomes.
const (
	OK      Outcome = "ok"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
)

// The phases of a run, in order (README, "Usage").
const (
	PhaseResolve  = "resolve"
	PhaseRender   = "render"
	PhaseApply    = "apply"
	PhaseServices = "services"
	PhaseHealth   = "health"
)

// PhaseNames lists the phases in the order a run goes through them. The metrics name a
// duration metric after each (internal/emf), so a phase added to the run belongs here.
var PhaseNames = []string{PhaseResolve, PhaseRender, PhaseApply, PhaseServices, PhaseHealth}

// Phase is one phase's result.
type Phase struct {
	// Name is one of PhaseNames.
	Name string `json:"name"`
	// Outcome is OK, Failed or Skipped.
	Outcome Outcome `json:"outcome"`
	// Duration is how long the phase took, zero when skipped.
	Duration time.Duration `json:"duration_ns"`
}

// Run is one run of firstrun. Strings hold validated values only (or nothing): they go
// into metric dimensions.
type Run struct {
	// Start is when the run began; End when it finished (the metrics' time stamp).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Version is firstrun's version.
	Version string `json:"version,omitempty"`
	// InstanceID is the EC2 instance id, "" when unknown.
	InstanceID string `json:"instance_id,omitempty"`
	// Cluster is ECS_CLUSTER, "" when not (yet) validated.
	Cluster string `json:"cluster,omitempty"`
	// AutoScalingGroup is AUTOSCALING_GROUP, "" when not given or not validated.
	AutoScalingGroup string `json:"autoscaling_group,omitempty"`
	// Stack is STACK_NAME, "" when not given or not validated.
	Stack string `json:"stack,omitempty"`
	// ExitCode is the run's exit code (README, "Exit codes").
	ExitCode int `json:"exit_code"`
	// Phases are the phases run, failed or skipped, in order.
	Phases []Phase `json:"phases"`
	// Registered is when health saw the agent registered to the cluster; zero when it
	// did not (failure, health skipped).
	Registered time.Time `json:"registered,omitzero"`
	// BootTime is when the kernel booted (/proc/stat btime), zero when unknown.
	BootTime time.Time `json:"boot_time,omitzero"`
	// Rerun is true when this run is not the boot's first join: the agent was already
	// registered when health first asked, or the last-run marker records success since
	// BootTime. Its boot-to-registration time was measured by an earlier run then, and
	// is not measured again (it would count the time between the runs).
	Rerun bool `json:"rerun,omitempty"`
}

// OK reports whether the run succeeded (exit code 0).
func (r Run) OK() bool { return r.ExitCode == ExitOK }

// Phase returns the phase named name, and false when the run has none.
func (r Run) Phase(name string) (Phase, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return Phase{}, false
}

// BootToRegistered returns the time from the kernel's boot to the agent's registration,
// and false when it is not this run's to measure: no registration seen, boot time
// unknown, a rerun, or a registration stamped before the boot (a wrong clock).
func (r Run) BootToRegistered() (time.Duration, bool) {
	if r.Registered.IsZero() || r.BootTime.IsZero() || r.Rerun || r.Registered.Before(r.BootTime) {
		return 0, false
	}
	return r.Registered.Sub(r.BootTime), true
}

// Exit codes, as the README's "Exit codes" table documents them.
const (
	ExitOK       = 0
	ExitInternal = 1
	ExitInput    = 2
	ExitUsage    = 3
	ExitFile     = 4
	ExitPlatform = 5
	ExitStopped  = 6
	ExitServices = 7
	ExitHealth   = 8
	ExitCheck    = 9
	ExitSignal   = 10
)

// exitClasses names each exit code for dashboards.
var exitClasses = map[int]string{
	ExitOK:       "ok",
	ExitInternal: "internal",
	ExitInput:    "input",
	ExitUsage:    "usage",
	ExitFile:     "file",
	ExitPlatform: "platform",
	ExitStopped:  "stopped",
	ExitServices: "services",
	ExitHealth:   "health",
	ExitCheck:    "check",
	ExitSignal:   "signal",
}

// ExitClass names an exit code as "CODE-NAME" (for example "8-health"), sortable and
// readable in a graph's legend; an unknown code is "CODE-unknown".
func ExitClass(code int) string {
	name, ok := exitClasses[code]
	if !ok {
		name = "unknown"
	}
	return strconv.Itoa(code) + "-" + name
}
