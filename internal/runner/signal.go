package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/cfnsignal"
	"github.com/firstrun/firstrun/internal/imds"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/lastrun"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/runrecord"
)

// signalOnInterrupt bounds the FAILURE signal sent after SIGTERM or SIGINT: systemd
// kills a unit 90 s after its stop signal by default.
const signalOnInterrupt = 20 * time.Second

// discover asks the instance metadata for what the environment and the env file did
// not give, unless FIRSTRUN_IMDS=off or AWS_EC2_METADATA_DISABLED=true. IMDS being
// unreachable is logged and the run carries on: validation then names what is
// missing. It returns the instance id the metadata gave, "" when not asked or
// unanswered.
func (r *Runner) discover(ctx context.Context, log *zap.Logger, raw inputs.Raw) string {
	switch {
	case !r.deps.Live:
		log.Info("instance metadata: not asked (--root is not /: the metadata here is not the root's)")
		return ""
	case raw.Values["FIRSTRUN_IMDS"] == "off":
		log.Info("instance metadata: not asked (FIRSTRUN_IMDS=off)")
		return ""
	case envValue(r.env, "AWS_EC2_METADATA_DISABLED") == "true":
		log.Info("instance metadata: not asked (AWS_EC2_METADATA_DISABLED=true)")
		return ""
	}
	tag := raw.Values["FIRSTRUN_CLUSTER_TAG"]
	if tag == "" {
		tag = imds.DefaultClusterTag
	}
	t0 := time.Now()
	info, err := r.deps.Discover(ctx, tag)
	fields := []zap.Field{zap.Duration("duration", time.Since(t0)), zap.Int("requests", info.Requests),
		zap.String("instance_id", info.InstanceID), zap.String("region", info.Region), zap.Bool("tags_exposed", info.TagsExposed)}
	if err != nil {
		log.Warn("instance metadata unavailable: carrying on with the environment and the env file", append(fields, zap.Error(err))...)
	} else {
		log.Info("instance metadata", fields...)
	}
	raw.Discovered(map[string]string{
		"ECS_CLUSTER":         info.Cluster,
		"STACK_NAME":          info.StackName,
		"AUTOSCALING_GROUP":   info.AutoscalingGroup,
		"LOGICAL_RESOURCE_ID": info.LogicalID,
		"AWS_REGION":          info.Region,
	})
	return info.InstanceID
}

// envValue returns KEY's value in env, "" when absent.
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if len(env[i]) > len(key) && env[i][:len(key)+1] == key+"=" {
			return env[i][len(key)+1:]
		}
	}
	return ""
}

// instance returns the instance id: from IMDS, or else from cloud-init's record.
func (r *Runner) instance(res resolved) string {
	if res.instanceID != "" {
		return res.instanceID
	}
	return lastrun.InstanceID(r.root)
}

// signal tells CloudFormation how the run ended, when asked to (--signal or
// FIRSTRUN_SIGNAL=true): SUCCESS when code is 0, FAILURE with runErr's reason
// otherwise. It returns the exit code to leave with: a failed signal turns success into
// runrecord.ExitSignal, and never replaces the code of the run's own failure; a signal that
// nobody awaits (cfnsignal.ErrNotAwaited: the stack's policy is over, or the stack is
// gone) is logged at info and changes nothing.
func (r *Runner) signal(ctx context.Context, log *zap.Logger, code int, runErr error, out *results) int {
	sig := out.res.sig
	if !sig.read {
		if r.opts.Signal {
			log.Error("cannot signal CloudFormation: the inputs could not be read", zap.Error(runErr))
		}
		return code
	}
	on, target := sig.on, sig.target
	log = log.With(zap.String("phase", "signal"))
	switch {
	case !on:
		return code
	case r.opts.DryRun:
		log.Info("phase skipped", zap.String("reason", "--dry-run"))
		return code
	case !r.deps.Live:
		log.Info("phase skipped", zap.String("reason", "--root is not /"))
		return code
	case out.hl.handedOff:
		log.Info("phase skipped", zap.String("reason", healthUnit+" signals once the agent has joined"))
		return code
	}
	s := cfnsignal.Signal{StackName: target.StackName, LogicalResourceID: target.LogicalID, UniqueID: r.instance(out.res), Status: cfnsignal.Success}
	if code != runrecord.ExitOK {
		s.Status = cfnsignal.Failure
		if runErr != nil {
			s.Reason = redact.Text(runErr.Error())
		}
	}
	sctx := ctx
	if ctx.Err() != nil { // stopped by a signal: still tell CloudFormation, briefly
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), signalOnInterrupt)
		defer cancel()
	}
	t0 := time.Now()
	err := r.sendSignal(sctx, target, s)
	fields := []zap.Field{zap.String("status", string(s.Status)), zap.String("stack", s.StackName), zap.String("logical_id", s.LogicalResourceID),
		zap.String("unique_id", s.UniqueID), zap.Duration("duration", time.Since(t0))}
	if s.Reason != "" {
		fields = append(fields, zap.String("reason", s.Reason))
	}
	if errors.Is(err, cfnsignal.ErrNotAwaited) { // a scale-out, a replacement: no policy waits
		log.Info("no signal awaited: "+cfnsignal.Message(err), fields...)
		return code
	}
	if err != nil {
		log.Error("CloudFormation signal failed", append(fields, zap.Error(err))...)
		if code == runrecord.ExitOK {
			if r.opts.LogFormat == logging.Console {
				fmt.Fprintf(r.stderr, "\nfirstrun: the CloudFormation signal failed: %v\n", err)
			}
			return runrecord.ExitSignal
		}
		return code
	}
	log.Info("CloudFormation signalled", fields...)
	return code
}

// sendSignal checks the signal's target and sends it.
func (r *Runner) sendSignal(ctx context.Context, target inputs.SignalTarget, s cfnsignal.Signal) error {
	var missing []string
	for _, m := range []struct{ name, value string }{
		{"STACK_NAME", s.StackName}, {"LOGICAL_RESOURCE_ID", s.LogicalResourceID},
		{"the instance id (IMDS or cloud-init)", s.UniqueID}, {"AWS_REGION", target.Region},
	} {
		if m.value == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cannot signal without %v", missing)
	}
	sig, err := r.deps.Signaler(ctx, target)
	if err != nil {
		return err
	}
	return sig.Send(ctx, s)
}

// realSignaler is the production CloudFormation client; it signs with creds, the run's
// (cfnsignal.CredentialsProvider): its instance-role credentials come through imdsClient (credentials in the environment, when there are, win: see
// cfnsignal.New, which also reads the endpoint override AWS_ENDPOINT_URL_CLOUDFORMATION).
func realSignaler(ctx context.Context, t inputs.SignalTarget, imdsClient *imds.Client, creds aws.CredentialsProvider) (cfnsignal.Signaler, error) {
	c, err := cfnsignal.New(ctx, cfnsignal.Options{Region: t.Region, Proxy: t.Proxy, Timeout: t.Timeout, IMDS: imdsClient.SDK(), Credentials: creds})
	if err != nil {
		return nil, fmt.Errorf("CloudFormation client: %w", err)
	}
	return c, nil
}
