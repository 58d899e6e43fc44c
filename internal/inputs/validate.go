package inputs

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/firstrun/firstrun/internal/redact"
)

// Problem is one thing wrong with the inputs: the variable (or FILE:LINE) and what is
// wrong, the offending value already quoted and redacted in Msg.
type Problem struct {
	Var string
	Msg string
}

func (p Problem) String() string { return p.Var + ": " + p.Msg }

// Report is every problem found; as an error it lists them one a line.
type Report []Problem

func (r Report) Error() string {
	return "invalid input, nothing was written:\n  " + strings.Join(r.Lines(), "\n  ")
}

// Lines returns one line a problem.
func (r Report) Lines() []string {
	lines := make([]string, len(r))
	for i, p := range r {
		lines[i] = p.String()
	}
	return lines
}

// Rules, with their sources.
var (
	// CreateCluster: "Up to 255 letters (uppercase and lowercase), numbers, underscores,
	// and hyphens are allowed."
	clusterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	clusterARN  = regexp.MustCompile(`^arn:aws[a-z-]*:ecs:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:cluster/[A-Za-z0-9_-]{1,255}$`)
	// CreateStack: "can contain only alphanumeric characters (case sensitive) and
	// hyphens. It must start with an alphabetical character and can't be longer than
	// 128 characters."
	stackName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	// CloudWatch Logs CreateLogGroup: 1-512 characters of a-z, A-Z, 0-9, '_', '-',
	// '/', '.' and '#' (pattern [\.\-_/#A-Za-z0-9]+); AUTOSCALING_GROUP goes into it.
	logGroupName = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)
	region       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	ecsKey       = regexp.MustCompile(`^ECS_[A-Z0-9_]+$`)
	noProxyEntry = regexp.MustCompile(`^[A-Za-z0-9.\-_:/*\[\]]+$`)
	hostName     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// asgNameMax is CreateAutoScalingGroup's limit for AutoScalingGroupName.
const asgNameMax = 255

// Validate checks raw inputs and returns the Config, or every problem at once.
func Validate(raw Raw, probe Probe) (Config, error) {
	var r Report
	add := func(v, format string, a ...any) { r = append(r, Problem{Var: v, Msg: fmt.Sprintf(format, a...)}) }
	shown := func(k string) string { return strconv.Quote(redact.Value(k, raw.Values[k])) }

	// No control character, newline included, and valid UTF-8, in any value: a
	// newline would inject a line into ecs.config or a unit file.
	bad := map[string]bool{}
	for _, k := range sortedKeys(raw.Values) {
		v := raw.Values[k]
		if !utf8.ValidString(v) {
			add(k, "is not valid UTF-8 (got %s)", shown(k))
			bad[k] = true
			continue
		}
		if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
			add(k, "must not contain control characters such as newline, carriage return, tab or NUL (found %U at byte %d of %s)", []rune(v[i:])[0], i, shown(k))
			bad[k] = true
		}
	}
	for k := range raw.Values {
		if strings.HasPrefix(k, "FIRSTRUN_") && !isSpecKey(k) {
			add(k, "is not a firstrun setting (known: FIRSTRUN_LOG_AGENT, FIRSTRUN_NO_PROXY)")
		}
	}

	spec, err := decode(raw.Values)
	if err != nil {
		add("inputs", "%v", err)
	}
	cfg := Config{Sources: raw.Sources}
	ok := func(k string) bool { return !bad[k] }

	// ECS_CLUSTER
	switch c := spec.Cluster; {
	case !ok("ECS_CLUSTER"):
	case c == "":
		add("ECS_CLUSTER", "is required: the name or ARN of the cluster to join")
	case clusterName.MatchString(c) || clusterARN.MatchString(c):
		cfg.Cluster = c
	default:
		add("ECS_CLUSTER", "must be 1-255 letters, digits, hyphens and underscores, or a cluster ARN arn:aws:ecs:REGION:ACCOUNT:cluster/NAME (got %s)", shown("ECS_CLUSTER"))
	}

	// PROXY_URL
	if p := spec.ProxyURL; p != "" && ok("PROXY_URL") {
		u, msg := parseProxy(p)
		if msg != "" {
			add("PROXY_URL", "%s (got %s)", msg, shown("PROXY_URL"))
		} else {
			cfg.Proxy = u
		}
	}

	// FIRSTRUN_NO_PROXY
	if np := spec.NoProxy; np != "" && ok("FIRSTRUN_NO_PROXY") {
		for _, e := range strings.Split(np, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			if !noProxyEntry.MatchString(e) {
				add("FIRSTRUN_NO_PROXY", "entry %q must be a host, domain, IP address, CIDR or path (letters, digits and . - _ : / * [ ] only)", e)
				continue
			}
			cfg.NoProxy = append(cfg.NoProxy, e)
		}
	}

	// Region
	reg, regKey := spec.Region, "AWS_REGION"
	if reg == "" {
		reg, regKey = spec.DefaultRegion, "AWS_DEFAULT_REGION"
	} else if spec.DefaultRegion != "" && spec.DefaultRegion != reg && ok("AWS_DEFAULT_REGION") && ok("AWS_REGION") {
		add("AWS_DEFAULT_REGION", "disagrees with AWS_REGION (%s vs %s): give one, or the same in both", shown("AWS_DEFAULT_REGION"), shown("AWS_REGION"))
	}
	if reg != "" && ok(regKey) {
		if region.MatchString(reg) {
			cfg.Region = reg
		} else {
			add(regKey, "must be a region code such as us-east-1 (got %s)", shown(regKey))
		}
	}

	// Log agent
	switch LogAgent(spec.LogAgent) {
	case LogAgentAuto:
		switch {
		case probe.CloudWatchAgent:
			cfg.LogAgent = LogAgentCloudWatch
		case probe.Awslogs:
			cfg.LogAgent = LogAgentAwslogs
		default:
			cfg.LogAgent = LogAgentNone
		}
	case LogAgentCloudWatch, LogAgentAwslogs, LogAgentNone:
		cfg.LogAgent = LogAgent(spec.LogAgent)
	default:
		if ok("FIRSTRUN_LOG_AGENT") {
			add("FIRSTRUN_LOG_AGENT", "must be one of auto, cloudwatch, awslogs, none (got %s)", shown("FIRSTRUN_LOG_AGENT"))
		}
	}

	// STACK_NAME, AUTOSCALING_GROUP: required for a log agent, and must compose valid
	// log group names.
	needLogs := cfg.LogAgent == LogAgentCloudWatch || cfg.LogAgent == LogAgentAwslogs
	stackOK, asgOK := false, false
	if s := spec.StackName; s != "" && ok("STACK_NAME") {
		if stackName.MatchString(s) {
			stackOK = true
		} else {
			add("STACK_NAME", "must start with a letter and hold only letters, digits and hyphens, at most 128 characters (CloudFormation's rule) (got %s)", shown("STACK_NAME"))
		}
	} else if s == "" && needLogs {
		add("STACK_NAME", "is required with the %s log agent: it composes the log group names (or set FIRSTRUN_LOG_AGENT=none)", cfg.LogAgent)
	}
	if a := spec.AutoscalingGroup; a != "" && ok("AUTOSCALING_GROUP") {
		switch {
		case utf8.RuneCountInString(a) > asgNameMax:
			add("AUTOSCALING_GROUP", "must be at most %d characters (got %d)", asgNameMax, utf8.RuneCountInString(a))
		case !logGroupName.MatchString(a):
			add("AUTOSCALING_GROUP", "goes into log group names and breaks CloudWatch Logs' rule: only letters, digits and _ - / . # (got %s)", shown("AUTOSCALING_GROUP"))
		default:
			asgOK = true
		}
	} else if a == "" && needLogs {
		add("AUTOSCALING_GROUP", "is required with the %s log agent: it composes the log group names (or set FIRSTRUN_LOG_AGENT=none)", cfg.LogAgent)
	}
	// With both within their limits, every composed log group name is within CloudWatch
	// Logs' 512 characters (logsources' TestGroupNamesFitCloudWatchLogs).
	if stackOK {
		cfg.StackName = spec.StackName
	}
	if asgOK {
		cfg.AutoscalingGroup = spec.AutoscalingGroup
	}
	if cfg.LogAgent == LogAgentAwslogs && cfg.Region == "" && ok("AWS_REGION") && ok("AWS_DEFAULT_REGION") && spec.Region == "" && spec.DefaultRegion == "" {
		add("AWS_REGION", "is required with the awslogs agent (or AWS_DEFAULT_REGION): it goes into awscli.conf")
	}

	// Other ECS_* settings, passed to the agent as given.
	for _, k := range sortedKeys(raw.Values) {
		if !strings.HasPrefix(k, "ECS_") || k == "ECS_CLUSTER" || !ok(k) {
			continue
		}
		v := raw.Values[k]
		switch {
		case !ecsKey.MatchString(k):
			add(k, "is not an ECS agent setting name (ECS_ followed by upper-case letters, digits and _)")
		case strings.TrimSpace(v) != v:
			add(k, "must not start or end with white space: ecs-init trims it (got %s)", shown(k))
		case len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]:
			add(k, "must not be quoted: ecs-init reads quotes literally while systemd strips them (got %s)", shown(k))
		default:
			cfg.ECSSettings = append(cfg.ECSSettings, Setting{Key: k, Value: v})
		}
	}

	if len(r) > 0 {
		sort.SliceStable(r, func(i, j int) bool { return r[i].Var < r[j].Var })
		return Config{}, r
	}
	return cfg, nil
}

// parseProxy normalises a proxy URL; a bare host:port gets http://. It returns a
// message naming the rule broken, or "".
func parseProxy(s string) (*url.URL, string) {
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return nil, "must not contain white space"
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the input, password included: say it in our words.
		return nil, "is not a valid URL: http(s)://[user:password@]host:port, with reserved characters in user and password percent-encoded"
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must use the http or https scheme"
	case u.Opaque != "" || u.Host == "":
		return nil, "must name a host: http(s)://[user:password@]host:port"
	case u.Path != "" && u.Path != "/":
		return nil, "must not have a path"
	case u.RawQuery != "" || u.ForceQuery:
		return nil, "must not have a query"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, "must not have a fragment"
	}
	host, port := u.Hostname(), u.Port()
	if net.ParseIP(host) == nil && (!hostName.MatchString(host) || len(host) > 253) {
		return nil, "must name a valid host name or IP address"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, "must give a port from 1 to 65535 (host:port)"
	}
	u.Path = ""
	u.RawPath = ""
	return u, ""
}
