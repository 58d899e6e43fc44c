package runner

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/runrecord"
	"github.com/firstrun/firstrun/internal/services"
)

// units returns the units firstrun manages for cfg, in the order they start, each with
// the files that configure it (a unit's drop-ins and the files its processes read). changed holds the host paths this run changed.
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
	// Each proxy env file is read by systemd when it starts the unit's process: a
	// changed one restarts its unit, and needs no daemon-reload (its drop-in does).
	out := []services.Unit{
		unit(services.Docker, true, hostpath.DockerProxyDropIn, hostpath.DockerProxyEnv),
		unit(services.ECS, false, hostpath.ECSConfig, hostpath.ECSProxyDropIn, hostpath.ECSProxyEnv),
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
// and the log agent, restarting those whose settings changed. It returns firstrun's
// own unit when ecs.service's start waits for it (blockingUnit), else "".
func (r *Runner) services(ctx context.Context, log *zap.Logger, cfg inputs.Config, changes []files.Change) (string, error) {
	sd, err := r.systemd(ctx)
	if err != nil {
		return "", withCode(runrecord.ExitServices, fmt.Errorf("systemd: %w", err))
	}
	changed := changedPaths(changes)
	reload := changed[hostpath.DockerProxyDropIn] || changed[hostpath.ECSProxyDropIn]
	err = services.Converge(ctx, sd, log, reload, cfg.ServiceTimeout, units(r.root, cfg, changed)...)
	if err != nil {
		return "", withCode(runrecord.ExitServices, err)
	}
	return blockingUnit(ctx, sd, log), nil
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
