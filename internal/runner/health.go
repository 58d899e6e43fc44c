package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/health"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/proxy"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/services"
)

// diagnosisTimeout bounds the systemd questions asked for a diagnosis after a failure.
const diagnosisTimeout = 5 * time.Second

// agentLogLines is how many of the agent's last log lines a diagnosis shows.
const agentLogLines = 15

// healthResult is what health saw.
type healthResult struct {
	// registered is when the agent was first seen registered to the cluster; zero
	// when it was not (or the wait was handed over).
	registered time.Time
	// already says the agent was registered at the first answer: this run did not see
	// the join happen.
	already bool
	// handedOff says the wait was handed to healthUnit.
	handedOff bool
}

// health waits until the agent has registered to the configured cluster, logging each
// change of what it answers; on timeout, or once the agent's answer is final (another
// cluster, or not the agent's metadata), it returns a diagnosis. When blockedBy names
// firstrun's own unit, which ecs.service's start waits for, it hands the wait over.
func (r *Runner) health(ctx context.Context, log *zap.Logger, res resolved, blockedBy string) (healthResult, error) {
	if blockedBy != "" {
		return healthResult{handedOff: true}, r.handOff(ctx, log, blockedBy)
	}
	cluster := res.cfg.Cluster
	agent := r.deps.NewAgent(res.cfg.AgentURL)
	log.Info("waiting for the ECS agent to register", zap.String("cluster", cluster), zap.String("endpoint", res.cfg.AgentURL), zap.Duration("timeout", res.cfg.HealthTimeout))
	var hr healthResult
	first := true
	st, err := health.Wait(ctx, agent, cluster, res.cfg.HealthTimeout, r.deps.Interval, func(s health.Status) {
		if first {
			first, hr.already = false, s.RegisteredTo(cluster)
		}
		if other := s.WrongCluster(cluster); other != "" {
			log.Warn("the agent is registered to another cluster", zap.String("agent_cluster", other), zap.String("want", cluster), zap.String("hint", "was ECS_CLUSTER picked up? an agent pinned by an old /var/lib/ecs/data checkpoint keeps its cluster"), zap.Duration("fail_after", health.WrongClusterGrace))
			return
		}
		log.Info("agent", zap.String("status", s.String()))
	})
	if err == nil {
		hr.registered = r.deps.Now()
		m := st.Metadata
		log.Info("registered", zap.String("cluster", m.Cluster), zap.String("container_instance_arn", *m.ContainerInstanceArn), zap.String("agent_version", m.Version))
		return hr, nil
	}
	if !errors.Is(err, health.ErrNotRegistered) {
		return hr, err
	}
	d := r.diagnose(ctx, err)
	log.Error("diagnosis", zap.String("problem", err.Error()), zap.Strings("units", d.units), zap.Strings("agent_log", d.agentLog))
	return hr, withCode(runrecord.ExitHealth, d)
}

// handOff starts firstrun-health.service, a transient unit that runs firstrun again
// with the same inputs to wait for registration (and record the outcome), and returns
// at once, so that blockedBy, the unit firstrun runs in, can finish and let
// ecs.service start.
func (r *Runner) handOff(ctx context.Context, log *zap.Logger, blockedBy string) error {
	exe, err := os.Executable()
	if err != nil {
		return withCode(runrecord.ExitServices, fmt.Errorf("handing the wait over: finding firstrun's own path: %w", err))
	}
	argv := []string{exe, "--skip", "apply,services", "--log-format", r.opts.LogFormat}
	if r.opts.EnvFile != "" {
		argv = append(argv, "--env-file", r.opts.EnvFile)
	}
	if r.opts.Signal {
		argv = append(argv, "--signal")
	}
	if err := r.writeHealthEnv(); err != nil {
		return withCode(runrecord.ExitFile, fmt.Errorf("handing the wait over: %w", err))
	}
	if err := r.sd.StartTransient(ctx, healthUnit, argv, hostpath.HealthEnv); err != nil {
		return withCode(runrecord.ExitServices, fmt.Errorf("handing the wait over to %s: %w", healthUnit, err))
	}
	log.Warn("not waiting here for the agent to register: ecs.service starts only after this unit finishes; "+healthUnit+" waits instead",
		zap.String("unit", blockedBy), zap.String("follow", "journalctl -u "+healthUnit), zap.String("check", "firstrun --check"))
	return nil
}

// writeHealthEnv writes the inputs of firstrun's environment, root-only, to the env
// file of the unit the wait is handed to (hostpath.HealthEnv), each value as systemd's
// env-file parser reads it back.
func (r *Runner) writeHealthEnv() error {
	var b strings.Builder
	b.WriteString("# Written by firstrun for " + healthUnit + ": the inputs of its environment.\n")
	for _, kv := range inputs.Inputs(r.env) {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString(k + "=" + proxy.EnvFileValue(v) + "\n")
	}
	w := r.deps.NewWriter(r.root)
	c, err := w.Plan([]files.File{{Path: hostpath.HealthEnv, Mode: 0o600, Content: []byte(b.String())}}, nil)
	if err == nil {
		err = w.Apply(c)
	}
	return err
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
func (r *Runner) diagnose(ctx context.Context, err error) *diagnosis {
	d := &diagnosis{err: err}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), diagnosisTimeout)
	defer cancel()
	for _, name := range []string{services.Docker, services.ECS} {
		d.units = append(d.units, r.unitLine(ctx, name))
	}
	lines, terr := health.TailAgentLog(r.root.Join(hostpath.ECSAgentLog), agentLogLines)
	if terr != nil {
		d.units = append(d.units, "agent log: "+terr.Error())
	}
	d.agentLog = lines
	return d
}

// unitLine says one unit's state, or why it is unknown.
func (r *Runner) unitLine(ctx context.Context, name string) string {
	if !r.deps.Live {
		return name + ": not asked (--root is not /)"
	}
	sd, err := r.systemd(ctx)
	if err != nil {
		return name + ": unknown (systemd: " + err.Error() + ")"
	}
	st, err := sd.State(ctx, name)
	if err != nil {
		return name + ": unknown (" + err.Error() + ")"
	}
	return name + ": " + st.String()
}
