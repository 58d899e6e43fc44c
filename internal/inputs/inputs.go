// Package inputs resolves and validates everything firstrun is told: the process
// environment and the optional env file (the environment wins), decoded through Spec,
// checked all at once into a Report before anything is written.
package inputs

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Source says where a value came from.
type Source string

// Sources of values.
const (
	FromEnvironment Source = "environment"
	FromEnvFile     Source = "env file"
	FromDefault     Source = "default"
	// FromIMDS is the instance metadata service: the identity document or a tag.
	FromIMDS Source = "instance metadata"
)

// LogAgent is the log agent firstrun configures.
type LogAgent string

// Log agents.
const (
	LogAgentAuto       LogAgent = "auto"
	LogAgentCloudWatch LogAgent = "cloudwatch"
	LogAgentAwslogs    LogAgent = "awslogs"
	LogAgentNone       LogAgent = "none"
)

// Setting is one KEY=value for the ECS agent.
type Setting struct {
	Key, Value string
}

// Raw is what was given, before validation: every relevant value with its source.
type Raw struct {
	Values  map[string]string
	Sources map[string]Source
	// Refs holds, for each value resolved from a reference (see References and
	// Resolved), the reference as given: messages and logs show it, never the value.
	Refs map[string]string
}

// Resolved replaces key's reference with the value it resolved to, remembering the
// reference for messages and logs. r must come from Resolve (its maps are shared by
// every copy of it).
func (r Raw) Resolved(key, ref, value string) {
	r.Refs[key] = ref
	r.Values[key] = value
}

// Probe is what firstrun found on the host that decides defaults (read by the caller,
// so that Validate stays pure).
type Probe struct {
	// CloudWatchAgent is true when the unified CloudWatch agent is installed.
	CloudWatchAgent bool
	// Awslogs is true when the legacy awslogs agent is installed.
	Awslogs bool
}

// Config is the validated input of every renderer.
type Config struct {
	// Cluster is ECS_CLUSTER: a cluster name or ARN.
	Cluster string
	// Proxy is the normalised PROXY_URL (scheme://[userinfo@]host:port), nil for none.
	Proxy *url.URL
	// StackName and AutoscalingGroup compose the log group names.
	StackName, AutoscalingGroup string
	// Region is AWS_REGION or AWS_DEFAULT_REGION, possibly empty.
	Region string
	// LogAgent is the agent to configure, "auto" resolved.
	LogAgent LogAgent
	// NoProxy holds the extra NO_PROXY entries of FIRSTRUN_NO_PROXY.
	NoProxy []string
	// ECSSettings holds the other ECS_* variables given, sorted by key.
	ECSSettings []Setting
	// HealthTimeout bounds the wait for the ECS agent to register.
	HealthTimeout time.Duration
	// ServiceTimeout bounds the wait for docker and the log agent to become active.
	ServiceTimeout time.Duration
	// AgentURL is the ECS agent's /v1/metadata endpoint.
	AgentURL string
	// Sources says where each given value came from.
	Sources map[string]Source
}

// ProxyString returns the proxy URL, or "" when there is none. User and password are
// percent-encoded in full (all but letters, digits and - . _ ~): the same credentials
// to the proxy, and inert in every file the URL goes into, whether a shell sources it
// ($, ', &), systemd reads it as an EnvironmentFile= or TOML quotes it. % is an
// ordinary byte to each of them (the proxy is in no unit-file setting, whose parser
// would expand % specifiers).
func (c Config) ProxyString() string {
	if c.Proxy == nil {
		return ""
	}
	userinfo := ""
	if u := c.Proxy.User; u != nil {
		userinfo = strictEscape(u.Username())
		if p, ok := u.Password(); ok {
			userinfo += ":" + strictEscape(p)
		}
		userinfo += "@"
	}
	return c.Proxy.Scheme + "://" + userinfo + c.Proxy.Host
}

// strictEscape percent-encodes every byte but RFC 3986's unreserved characters.
func strictEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// relevant reports whether a process environment variable is an input of firstrun.
func relevant(key string) bool {
	return isSpecKey(key) || strings.HasPrefix(key, "ECS_") || strings.HasPrefix(key, "FIRSTRUN_")
}

// Discovered adds values found in the instance metadata (IMDS) for the inputs that
// neither the environment nor the env file gave: those two always win. A discovered
// AWS_REGION stands in only when AWS_DEFAULT_REGION is not given either, since the two
// may not disagree.
func (r Raw) Discovered(values map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if k == "AWS_REGION" && r.Values["AWS_DEFAULT_REGION"] != "" {
			continue
		}
		if v := values[k]; v != "" && r.Values[k] == "" {
			r.Values[k] = v
			r.Sources[k] = FromIMDS
		}
	}
}

// Inputs returns the entries of env (KEY=value) that firstrun reads as inputs, and the
// AWS_* ones the AWS SDK reads, in order: what a second firstrun process must be given
// to see the same inputs.
func Inputs(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if ok && (relevant(k) || strings.HasPrefix(k, "AWS_")) {
			out = append(out, kv)
		}
	}
	return out
}

// Resolve merges the env file's values (file names the file in problems; data may be
// nil when there is none) under the process environment env (KEY=value strings): the
// environment wins. An empty value counts as not given. Keys in the env file that
// firstrun does not know are problems (a typo there would otherwise go unnoticed),
// except AWS_* variables, which belong to the AWS SDK.
func Resolve(env []string, file string, data []byte) (Raw, []Problem) {
	raw := Raw{Values: map[string]string{}, Sources: map[string]Source{}, Refs: map[string]string{}}
	var problems []Problem
	if data != nil {
		values, ps := ParseEnvFile(file, data)
		problems = append(problems, ps...)
		keys := slices.Sorted(maps.Keys(values))
		for _, k := range keys {
			switch {
			case relevant(k):
			case strings.HasPrefix(k, "AWS_"):
				continue
			default:
				problems = append(problems, Problem{Var: k, Msg: "is not a firstrun input (set in " + file + "); see firstrun --help"})
				continue
			}
			if values[k] != "" {
				raw.Values[k] = values[k]
				raw.Sources[k] = FromEnvFile
			}
		}
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !relevant(k) || v == "" {
			continue
		}
		raw.Values[k] = v
		raw.Sources[k] = FromEnvironment
	}
	for k := range specDefaults {
		if _, given := raw.Values[k]; !given {
			raw.Sources[k] = FromDefault
		}
	}
	return raw, problems
}
