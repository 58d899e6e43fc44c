package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/secrets"
)

// resolveSecrets replaces every input that is a reference (ssm:…, secretsmanager:…)
// with the value it names, within FIRSTRUN_SECRETS_TIMEOUT, and returns a problem for
// each that is malformed or could not be resolved, naming the reference and the API's
// error; those inputs are left out of raw. Every resolved value is registered with
// redact, so that neither logs, diffs nor reports show it, and logged by its reference.
//
// It also returns what each reference resolved to, for --check's search of them.
func (r *Runner) resolveSecrets(ctx context.Context, log *zap.Logger, raw inputs.Raw) (map[string]string, []inputs.Problem) {
	refs, problems := inputs.References(raw)
	if len(refs) == 0 {
		return nil, problems
	}
	fail := func(k string, msg string) {
		problems = append(problems, inputs.Problem{Var: k, Msg: msg})
		delete(raw.Values, k)
	}
	if r.deps.Secrets == nil {
		for _, ref := range refs {
			fail(ref.Key, ref.Ref.Text+": references cannot be resolved here")
		}
		return nil, problems
	}
	getter, err := r.deps.Secrets()
	if err != nil {
		for _, ref := range refs {
			fail(ref.Key, fmt.Sprintf("%s: %v", ref.Ref.Text, err))
		}
		return nil, problems
	}
	timeout := inputs.SecretsTimeout(raw)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	list := make([]secrets.Ref, len(refs))
	for i, ref := range refs {
		list[i] = ref.Ref
	}
	t0 := time.Now()
	results := secrets.Resolve(rctx, getter, inputs.Region(raw), list)
	took := time.Since(t0)
	values := map[string]string{}
	for i, res := range results {
		k := refs[i].Key
		if res.Err != nil {
			if ctx.Err() != nil {
				// Stopped by a signal: the run's own error says so.
				fail(k, fmt.Sprintf("%s: not resolved: %v", res.Ref.Text, ctx.Err()))
				continue
			}
			fail(k, res.Err.Error())
			continue
		}
		redact.Hide(res.Value)
		redact.HideKey(k)
		raw.Resolved(k, res.Ref.Text, res.Value)
		values[res.Ref.Text] = res.Value
		log.Info("secret resolved", zap.String("name", k), zap.String("reference", res.Ref.Text),
			zap.String("type", res.Type), zap.Duration("duration", took))
	}
	return values, problems
}

// hideProxy registers the forms the proxy URL is written in, when it came from a
// reference: normalised and percent-encoded (ProxyString), and with % doubled for
// systemd's drop-ins.
func hideProxy(raw inputs.Raw, cfg inputs.Config) {
	if _, ok := raw.Refs["PROXY_URL"]; !ok || cfg.Proxy == nil {
		return
	}
	p := cfg.ProxyString()
	redact.Hide(p, strings.ReplaceAll(p, "%", "%%"), cfg.Proxy.Host)
}
