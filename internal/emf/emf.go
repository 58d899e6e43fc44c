// Package emf renders a run's metrics as one CloudWatch embedded metric format (EMF)
// record: a JSON object on one line whose _aws member tells CloudWatch Logs which
// members are metrics and which are their dimensions ("Specification: Embedded metric
// format", Amazon CloudWatch User Guide). firstrun appends the record to
// /var/log/firstrun/metrics.log, which the log agent ships; the CloudWatch agent sends
// a log destination as EMF once an event starts with "{", ends with "}" and contains
// "CloudWatchMetrics" (aws/amazon-cloudwatch-agent,
// plugins/outputs/cloudwatchlogs/cloudwatchlogs.go, cwDest.Publish), and CloudWatch Logs
// extracts EMF from PutLogEvents with or without that header ("Using the PutLogEvents
// API to send manually-created embedded metric format logs"), so awslogs on Amazon
// Linux 2 works too. No other setup and no IAM beyond CloudWatchAgentServerPolicy.
//
// Metric cost stays flat with the fleet's size: dimensions are the cluster and the
// Auto Scaling group (and, for failures, the exit class), never the instance; the
// instance id is a plain property, for CloudWatch Logs Insights.
package emf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/logfile"
	"github.com/firstrun/firstrun/internal/runrecord"
)

// Namespace is the CloudWatch namespace of firstrun's metrics.
const Namespace = "firstrun"

// Dimension keys (root members of the record, strings).
const (
	DimCluster          = "Cluster"
	DimAutoScalingGroup = "AutoScalingGroup"
	// DimExitClass is runrecord.ExitClass of the exit code ("8-health"): failures by
	// exit code. (ExitCode itself is a metric, so it cannot also be a dimension: a
	// dimension's member is a string, a metric's a number.)
	DimExitClass = "ExitClass"
)

// Metric names (root members of the record, numbers).
const (
	// BootToRegistered is the time from the kernel's boot to the agent's registration,
	// the join time; only on the run that saw the boot's first join.
	BootToRegistered = "BootToRegistered"
	// ExitCode is the run's exit code.
	ExitCode = "ExitCode"
	// Success is 1 for a run that exited 0, else 0; Failure the other way round.
	Success = "Success"
	Failure = "Failure"
)

// PhaseMetric names the duration metric of a phase: "Phase" and the phase's name with
// a capital ("PhaseHealth"). A metric a phase, rather than one metric with a Phase
// dimension, because a record holds one value a dimension and a run has five phases:
// one record a run, and five metrics a dimension set either way.
func PhaseMetric(phase string) string {
	if phase == "" {
		return "Phase"
	}
	return "Phase" + strings.ToUpper(phase[:1]) + phase[1:]
}

// Metric is one metric the records can hold.
type Metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// Metrics lists every metric a record can hold, with its unit: what a dashboard may
// graph.
func Metrics() []Metric {
	m := []Metric{{BootToRegistered, "Milliseconds"}}
	for _, p := range runrecord.PhaseNames {
		m = append(m, Metric{PhaseMetric(p), "Milliseconds"})
	}
	return append(m, Metric{ExitCode, "None"}, Metric{Success, "Count"}, Metric{Failure, "Count"})
}

// fleetDimensions are the dimension sets of every metric: per Auto Scaling group
// within its cluster, and per cluster.
var fleetDimensions = [][]string{{DimCluster, DimAutoScalingGroup}, {DimCluster}}

// failureDimensions is the extra dimension set of Failure: per exit class in a cluster.
var failureDimensions = [][]string{{DimCluster, DimExitClass}}

// DimensionSets returns the dimension sets a record gives metric, nil for a metric it
// never holds.
func DimensionSets(metric string) [][]string {
	for _, m := range Metrics() {
		if m.Name == metric {
			sets := append([][]string(nil), fleetDimensions...)
			if metric == Failure {
				sets = append(sets, failureDimensions...)
			}
			return sets
		}
	}
	return nil
}

// Unknown stands in for a dimension value the run does not know (a run that stopped
// before validation has no cluster yet): CloudWatch refuses an empty one.
const Unknown = "unknown"

// dimensionValue makes s a valid dimension value: CloudWatch's Dimension.Value is 1 to
// 1024 ASCII characters with at least one that is not white space (CloudWatch API
// Reference, Dimension). Validated inputs always are; this keeps anything else from
// costing the whole record.
func dimensionValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1024]
	}
	if strings.TrimSpace(s) == "" {
		return Unknown
	}
	return s
}

type directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []Metric   `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

// phase is a phase as the record's Phases property shows it.
type phase struct {
	Name       string            `json:"name"`
	Outcome    runrecord.Outcome `json:"outcome"`
	DurationMS float64           `json:"duration_ms"`
}

// ms returns d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// Record renders run as one EMF record: a JSON object on one line, ending with a
// newline. Its time stamp is run.End (run.Start when End is unset). Phases the run
// skipped get no duration metric (a zero would pull the percentiles down); every phase
// is in the Phases property.
func Record(run runrecord.Run) []byte {
	at := run.End
	if at.IsZero() {
		at = run.Start
	}
	root := map[string]any{
		DimCluster:          dimensionValue(run.Cluster),
		DimAutoScalingGroup: dimensionValue(run.AutoScalingGroup),
		DimExitClass:        runrecord.ExitClass(run.ExitCode),
		"InstanceId":        run.InstanceID,
		"Stack":             run.Stack,
		"Version":           run.Version,
		"Rerun":             run.Rerun,
		"Start":             run.Start.UTC().Format(time.RFC3339Nano),
		ExitCode:            run.ExitCode,
	}
	var metrics []Metric
	if d, ok := run.BootToRegistered(); ok {
		root[BootToRegistered] = ms(d)
		metrics = append(metrics, Metric{BootToRegistered, "Milliseconds"})
	}
	phases := []phase{}
	for _, p := range run.Phases {
		phases = append(phases, phase{p.Name, p.Outcome, ms(p.Duration)})
	}
	root["Phases"] = phases
	for _, name := range runrecord.PhaseNames {
		if p, ok := run.Phase(name); ok && p.Outcome != runrecord.Skipped {
			root[PhaseMetric(name)] = ms(p.Duration)
			metrics = append(metrics, Metric{PhaseMetric(name), "Milliseconds"})
		}
	}
	success := 0
	if run.OK() {
		success = 1
	}
	root[Success], root[Failure] = success, 1-success
	metrics = append(metrics, Metric{ExitCode, "None"}, Metric{Success, "Count"}, Metric{Failure, "Count"})
	directives := []directive{{Namespace, fleetDimensions, metrics}}
	if !run.OK() {
		directives = append(directives, directive{Namespace, failureDimensions, []Metric{{Failure, "Count"}}})
	}
	root["_aws"] = metadata{Timestamp: at.UnixMilli(), CloudWatchMetrics: directives}
	out, err := json.Marshal(root)
	if err != nil {
		panic(fmt.Sprintf("emf: marshalling strings and numbers: %v", err)) // cannot happen
	}
	return append(out, '\n')
}

// Append appends run's record to the metrics file under root (hostpath.MetricsLog,
// bounded by internal/logfile) in one write.
func Append(root hostpath.Root, run runrecord.Run) error {
	if err := logfile.Append(root.Join(hostpath.MetricsLog), logfile.MaxSize, logfile.Mode, Record(run)); err != nil {
		return fmt.Errorf("writing the run's metrics: %w", err)
	}
	return nil
}

// BootTime returns when the kernel booted, from /proc/stat under root.
func BootTime(root hostpath.Root) (time.Time, error) {
	data, err := os.ReadFile(root.Join(hostpath.ProcStat))
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the boot time: %w", err)
	}
	t, err := ParseBootTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", root.Join(hostpath.ProcStat), err)
	}
	return t, nil
}

// ParseBootTime returns the boot time in /proc/stat's content: the line "btime N",
// N the boot time in seconds since the epoch (proc(5)).
func ParseBootTime(data []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20) // the cpu and intr lines are long
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "btime" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("btime %q is not a positive number of seconds", f[1])
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("no btime line")
}
