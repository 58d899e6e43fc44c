package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/health"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/services"
)

// diagnosisTimeout bounds the systemd questions asked for a diagnosis after a failure.
const diagnosisTimeout = 5 * time.Second

// agentLogLines is how many of the agent's last log lines a diagnosis shows.
const agentLogLines = 15

// systemd returns the systemd connection, connecting on first use.
func (j *job) systemd(ctx context.Context) (services.Systemd, error) {
	if j.sd != nil {
		return j.sd, nil
	}
	sd, err := j.deps.connect(ctx)
	if err != nil {
		return nil, err
	}
	j.sd = sd
	return sd, nil
}

// close releases what the run holds.
func (j *job) close() {
	if j.sd != nil {
		j.sd.Close()
		j.sd = nil
	}
}

// units returns the units firstrun manages for cfg, in the order they start, each with
// the files that configure it. changed holds the host paths this run changed.
// docker comes first and is waited for; ecs.service is started without waiting on its
// job (it is ordered After=cloud-final.service, so a blocking start from user data
// deadlocks: aws/amazon-ecs-agent issues 1707 and 4818); the log agent comes last, so
// that its failure never keeps the instance out of the cluster.
func units(root hostpath.Root, cfg inputs.Config, changed map[string]bool) []services.Unit {
	unit := func(name string, wait bool, settings ...string) services.Unit {
		u := services.Unit{Name: name, Wait: wait}
		for _, p := range settings {
			u.Settings = append(u.Settings, root.Join(p))
			u.Changed = u.Changed || changed[p]
		}
		return u
	}
	out := []services.Unit{
		unit(services.Docker, true, hostpath.DockerProxyDropIn),
		unit(services.ECS, false, hostpath.ECSConfig, hostpath.ECSProxyDropIn),
	}
	switch cfg.LogAgent {
	case inputs.LogAgentCloudWatch:
		out = append(out, unit(services.CloudWatchAgent, true, hostpath.CloudWatchAgentConfig, hostpath.CloudWatchCommonConfig))
	case inputs.LogAgentAwslogs:
		out = append(out, unit(services.Awslogs, true, hostpath.AwslogsConfig, hostpath.AwslogsCLIConfig, hostpath.AwslogsProxyConfig))
	}
	return out
}

// changedPaths returns the host paths the apply phase created, updated or removed.
func changedPaths(changes []files.Change) map[string]bool {
	m := map[string]bool{}
	for _, c := range changes {
		if c.Action != files.Unchanged {
			m[c.Path] = true
		}
	}
	return m
}

// services reloads systemd when a drop-in changed, then enables and starts docker, ecs
// and the log agent, restarting those whose settings changed.
func (j *job) services(ctx context.Context, log *zap.Logger) error {
	sd, err := j.systemd(ctx)
	if err != nil {
		return withCode(exitServices, fmt.Errorf("systemd: %w", err))
	}
	changed := changedPaths(j.changes)
	reload := changed[hostpath.DockerProxyDropIn] || changed[hostpath.ECSProxyDropIn]
	err = services.Converge(ctx, sd, log, reload, j.cfg.ServiceTimeout, units(j.root, j.cfg, changed)...)
	if err != nil {
		return withCode(exitServices, err)
	}
	j.blockedBy = blockingUnit(ctx, sd, log)
	return nil
}

// healthUnit is the transient unit that waits for registration in firstrun's stead
// when firstrun's own unit holds ecs.service back.
const healthUnit = "firstrun-health.service"

// blockingUnit returns the unit firstrun runs in when ecs.service's start waits for it:
// the unit is starting (firstrun runs in its start job, as user data runs in
// cloud-final.service's) and ecs.service is ordered after it (After=cloud-final.service).
// Waiting there for the agent would deadlock until the timeout: the agent starts only
// once firstrun's unit has finished. It returns "" when nothing holds ecs back, or
// when systemd cannot say (then health waits, bounded as ever).
func blockingUnit(ctx context.Context, sd services.Systemd, log *zap.Logger) string {
	own, err := sd.OwnUnit(ctx)
	if err != nil {
		log.Debug("own unit unknown", zap.Error(err))
		return ""
	}
	ecs, err := sd.State(ctx, services.ECS)
	if err != nil || !slices.Contains(ecs.After, own) {
		return ""
	}
	st, err := sd.State(ctx, own)
	if err != nil || st.ActiveState != "activating" {
		return ""
	}
	return own
}

// health waits until the agent has registered to the configured cluster, logging each
// change of what it answers; on timeout it returns a diagnosis.
func (j *job) health(ctx context.Context, log *zap.Logger) error {
	if j.blockedBy != "" {
		return j.handOff(ctx, log)
	}
	cluster := j.cfg.Cluster
	agent := j.deps.newAgent(j.cfg.AgentURL)
	log.Info("waiting for the ECS agent to register", zap.String("cluster", cluster), zap.String("endpoint", j.cfg.AgentURL), zap.Duration("timeout", j.cfg.HealthTimeout))
	st, err := health.Wait(ctx, agent, cluster, j.cfg.HealthTimeout, j.deps.interval, func(s health.Status) {
		if other := s.WrongCluster(cluster); other != "" {
			log.Warn("the agent is registered to another cluster", zap.String("agent_cluster", other), zap.String("want", cluster), zap.String("hint", "was ECS_CLUSTER picked up? an agent pinned by an old /var/lib/ecs/data checkpoint keeps its cluster"))
			return
		}
		log.Info("agent", zap.String("status", s.String()))
	})
	if err == nil {
		m := st.Metadata
		log.Info("registered", zap.String("cluster", m.Cluster), zap.String("container_instance_arn", *m.ContainerInstanceArn), zap.String("agent_version", m.Version))
		return nil
	}
	if !errors.Is(err, health.ErrTimeout) {
		return err
	}
	d := j.diagnose(ctx, err)
	log.Error("diagnosis", zap.String("problem", err.Error()), zap.Strings("units", d.units), zap.Strings("agent_log", d.agentLog))
	return withCode(exitHealth, d)
}

// handOff starts firstrun-health.service, a transient unit that runs firstrun again
// with the same inputs to wait for registration (and record the outcome), and returns
// at once, so that the unit firstrun runs in can finish and let ecs.service start.
func (j *job) handOff(ctx context.Context, log *zap.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return withCode(exitServices, fmt.Errorf("handing the wait over: finding firstrun's own path: %w", err))
	}
	argv := []string{exe, "--skip", "apply,services", "--log-format", j.opts.logFormat}
	if j.opts.envFile != "" {
		argv = append(argv, "--env-file", j.opts.envFile)
	}
	if j.opts.signal {
		argv = append(argv, "--signal")
	}
	if err := j.sd.StartTransient(ctx, healthUnit, argv, inputs.Inputs(j.env)); err != nil {
		return withCode(exitServices, fmt.Errorf("handing the wait over to %s: %w", healthUnit, err))
	}
	log.Warn("not waiting here for the agent to register: ecs.service starts only after this unit finishes; "+healthUnit+" waits instead",
		zap.String("unit", j.blockedBy), zap.String("follow", "journalctl -u "+healthUnit), zap.String("check", "firstrun --check"))
	j.handedOff = true
	return nil
}

// diagnosis explains a registration timeout: what the agent last said, the units'
// states and the agent's last log lines.
type diagnosis struct {
	err      error
	units    []string
	agentLog []string
}

func (d *diagnosis) Unwrap() error { return d.err }

func (d *diagnosis) Error() string {
	var b strings.Builder
	b.WriteString(d.err.Error())
	for _, u := range d.units {
		b.WriteString("\n  " + u)
	}
	if len(d.agentLog) > 0 {
		fmt.Fprintf(&b, "\n  last lines of %s:", hostpath.ECSAgentLog)
		for _, l := range d.agentLog {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}

// diagnose gathers, best effort and bounded, what explains err.
func (j *job) diagnose(ctx context.Context, err error) *diagnosis {
	d := &diagnosis{err: err}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), diagnosisTimeout)
	defer cancel()
	for _, name := range []string{services.Docker, services.ECS} {
		d.units = append(d.units, j.unitLine(ctx, name))
	}
	lines, terr := health.Tail(j.root.Join(hostpath.ECSAgentLog), agentLogLines)
	if terr != nil {
		d.units = append(d.units, "agent log: "+terr.Error())
	}
	d.agentLog = lines
	return d
}

// unitLine says one unit's state, or why it is unknown.
func (j *job) unitLine(ctx context.Context, name string) string {
	if !j.deps.live {
		return name + ": not asked (--root is not /)"
	}
	sd, err := j.systemd(ctx)
	if err != nil {
		return name + ": unknown (systemd: " + err.Error() + ")"
	}
	st, err := sd.State(ctx, name)
	if err != nil {
		return name + ": unknown (" + err.Error() + ")"
	}
	return name + ": " + st.String()
}

// logLastRun logs the outcome of the previous run, from the marker.
func (j *job) logLastRun(log *zap.Logger) {
	prev, ok, err := lastrun.Read(j.root)
	switch {
	case err != nil:
		log.Warn("last run", zap.Error(err))
	case !ok:
		log.Info("first run on this instance")
	default:
		log.Info("rerun: converging", zap.String("last_run", prev.String()))
		if id := lastrun.InstanceID(j.root); id != "" && prev.InstanceID != "" && id != prev.InstanceID {
			log.Warn("the last-run marker is another instance's: was it baked into the image?", zap.String("marker_instance", prev.InstanceID), zap.String("instance", id))
		}
	}
}

// recordOutcome writes the run-once marker when the run got as far as applying files
// (invalid input and dry runs write nothing) and the outcome differs from the marker's.
func (j *job) recordOutcome(log *zap.Logger, failedPhase string, code int) {
	if !j.reached || j.opts.dryRun {
		return
	}
	now := lastrun.Record{InstanceID: lastrun.InstanceID(j.root), Result: lastrun.OK, ExitCode: code, Phase: failedPhase, Version: version, Time: j.deps.now().UTC().Truncate(time.Second)}
	if code != exitOK {
		now.Result = lastrun.Failed
	}
	prev, ok, err := lastrun.Read(j.root)
	if err != nil {
		log.Warn("last run", zap.Error(err))
	}
	rec, write := lastrun.Next(prev, ok, now)
	if !write {
		return
	}
	w := j.writer
	if w == nil { // apply was skipped
		w = j.deps.newWriter(j.root)
	}
	c, err := w.Plan([]files.File{rec.File()}, nil)
	if err == nil {
		err = w.Apply(c)
	}
	if err != nil {
		log.Warn("could not record the outcome", zap.String("path", hostpath.LastRun), zap.Error(err))
	}
}
