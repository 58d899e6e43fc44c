package inputs

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/secrets"
)

// MayReference reports whether key's value may be a reference to a secret: PROXY_URL
// and the ECS agent's settings, but ECS_CLUSTER, which names the cluster in every log
// line, metric and --check report and so cannot be kept secret.
func MayReference(key string) bool {
	return key == "PROXY_URL" || strings.HasPrefix(key, "ECS_") && key != "ECS_CLUSTER"
}

// Reference is an input whose value names a secret.
type Reference struct {
	Key string
	Ref secrets.Ref
}

// References returns the inputs whose values are references (secrets.Parse), sorted by
// key, and a problem for each value meant as a reference that is not a valid one, or
// that stands where no reference may (MayReference). Those inputs are removed from raw:
// their problem is reported, and no rule of the input is checked against the
// reference's text.
func References(raw Raw) ([]Reference, []Problem) {
	var refs []Reference
	var problems []Problem
	for _, k := range slices.Sorted(maps.Keys(raw.Values)) {
		ref, isRef, err := secrets.Parse(raw.Values[k])
		switch {
		case !isRef:
			continue
		case err != nil:
			problems = append(problems, Problem{Var: k, Msg: "is not a valid reference: " + redact.Value(k, err.Error()) +
				" (references: ssm:NAME or secretsmanager:SECRET_ID, optionally #KEY)"})
		case !MayReference(k):
			what := "only PROXY_URL and ECS_* settings may name a secret"
			if k == "ECS_CLUSTER" {
				what = "the cluster is no secret (it names the cluster in every log line, metric and report): give its name or ARN"
			}
			problems = append(problems, Problem{Var: k, Msg: "cannot be a reference (" + ref.Text + "): " + what})
		default:
			refs = append(refs, Reference{Key: k, Ref: ref})
			continue
		}
		delete(raw.Values, k)
	}
	return refs, problems
}

// Region returns the region given or discovered (AWS_REGION, else AWS_DEFAULT_REGION)
// when it is a region code, "" otherwise: read before validation, for the references.
func Region(raw Raw) string {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if r := raw.Values[k]; r != "" {
			if region.MatchString(r) {
				return r
			}
			return ""
		}
	}
	return ""
}

// SecretsTimeout returns FIRSTRUN_SECRETS_TIMEOUT, read before validation (which
// reports a bad value): its default when it is not valid.
func SecretsTimeout(raw Raw) time.Duration {
	s := raw.Values["FIRSTRUN_SECRETS_TIMEOUT"]
	if s == "" {
		s = specDefaults["FIRSTRUN_SECRETS_TIMEOUT"]
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > maxTimeout {
		d, _ = time.ParseDuration(specDefaults["FIRSTRUN_SECRETS_TIMEOUT"])
	}
	return d
}
