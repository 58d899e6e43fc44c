package inputs

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
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

// Rules, with their sources. A length limit is a bounded rule's max, never a counted
// repetition such as {1,255}: Go's regexp compiles one into that many copies of its
// operand, and compiling these rules at start-up took 3.5 ms and 12,000 allocations
// of a 7 ms process start (GODEBUG=inittrace=1, before this was changed).
var (
	// CreateCluster: "Up to 255 letters (uppercase and lowercase), numbers, underscores,
	// and hyphens are allowed."
	clusterName = bounded{regexp.MustCompile(`^[A-Za-z0-9_-]+$`), 255}
	clusterARN  = regexp.MustCompile(`^arn:aws[a-z-]*:ecs:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:cluster/([A-Za-z0-9_-]+)$`)
	// CreateStack: "can contain only alphanumeric characters (case sensitive) and
	// hyphens. It must start with an alphabetical character and can't be longer than
	// 128 characters."
	stackName = bounded{regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`), 128}
	// CloudWatch Logs CreateLogGroup: 1-512 characters of a-z, A-Z, 0-9, '_', '-',
	// '/', '.' and '#' (pattern [\.\-_/#A-Za-z0-9]+); AUTOSCALING_GROUP goes into it.
	logGroupName = bounded{regexp.MustCompile(`^[.\-_/#A-Za-z0-9]+$`), 512}
	region       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	ecsKey       = regexp.MustCompile(`^ECS_[A-Z0-9_]+$`)
	noProxyEntry = regexp.MustCompile(`^[A-Za-z0-9.\-_:/*\[\]]+$`)
	// CloudFormation logical ids: "The logical ID must be alphanumeric (A-Za-z0-9) and
	// unique within the template."
	logicalID      = bounded{regexp.MustCompile(`^[A-Za-z0-9]+$`), 255}
	metadataTagKey = bounded{regexp.MustCompile(`^[A-Za-z0-9+\-=.,_:@]+$`), 128}
	hostName       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// bounded is a pattern and a length limit.
type bounded struct {
	re  *regexp.Regexp
	max int
}

// MatchString says s matches the pattern within the limit.
func (b bounded) MatchString(s string) bool { return len(s) <= b.max && b.re.MatchString(s) }

// isClusterARN says s is a cluster ARN whose name is a valid cluster name.
func isClusterARN(s string) bool {
	m := clusterARN.FindStringSubmatch(s)
	return m != nil && clusterName.MatchString(m[len(m)-1])
}

// asgNameMax is CreateAutoScalingGroup's limit for AutoScalingGroupName.
const asgNameMax = 255

// maxTimeout caps the waits: CloudFormation's CreationPolicy waits at most 12 hours for
// a signal (AWS::CloudFormation CreationPolicy, ResourceSignal Timeout), so a longer
// wait could never be reported.
const maxTimeout = 12 * time.Hour

// Validate checks raw inputs and returns the Config, or every problem at once.
func Validate(raw Raw, probe Probe) (Config, error) {
	v := newValidator(raw)
	spec, err := decode(raw.Values)
	if err != nil {
		v.add("inputs", "%v", err)
	}
	cfg := Config{
		Sources:     raw.Sources,
		Cluster:     v.cluster(spec.Cluster),
		Proxy:       v.proxy(spec.ProxyURL),
		NoProxy:     v.noProxy(spec.NoProxy),
		Region:      v.region(spec.Region, spec.DefaultRegion),
		LogAgent:    v.logAgent(spec.LogAgent, probe),
		ECSSettings: v.ecsSettings(),

		HealthTimeout:  v.timeout("FIRSTRUN_HEALTH_TIMEOUT", spec.HealthTimeout),
		ServiceTimeout: v.timeout("FIRSTRUN_SERVICE_TIMEOUT", spec.ServiceTimeout),
		AgentURL:       v.agentURL(spec.AgentURL),
	}
	v.timeout("FIRSTRUN_SECRETS_TIMEOUT", spec.SecretsTimeout) // read by SecretsTimeout, before validation
	// Discovery and the signal read these before validation (Signal, and the run's
	// discover): here they are only checked, so that a bad value is reported.
	v.onOff("FIRSTRUN_IMDS", spec.IMDS)
	v.tagKey("FIRSTRUN_CLUSTER_TAG", spec.ClusterTag)
	v.signal(spec)
	cfg.StackName, cfg.AutoscalingGroup = v.logGroupParts(spec.StackName, spec.AutoscalingGroup, cfg.LogAgent)
	if cfg.LogAgent == LogAgentAwslogs && spec.Region == "" && spec.DefaultRegion == "" && v.ok("AWS_REGION") && v.ok("AWS_DEFAULT_REGION") {
		v.add("AWS_REGION", "is required with the awslogs agent (or AWS_DEFAULT_REGION): it goes into awscli.conf")
	}
	if len(v.report) > 0 {
		sort.SliceStable(v.report, func(i, j int) bool { return v.report[i].Var < v.report[j].Var })
		return Config{}, v.report
	}
	return cfg, nil
}

// validator collects problems. Each method checks one input and returns its value,
// or the zero value when it is invalid or absent.
type validator struct {
	raw    Raw
	bad    map[string]bool // values already reported as unusable
	report Report
}

// newValidator makes the checks that hold for every value: valid UTF-8 and no control
// character, newline included (a newline would inject a line into ecs.config or a
// unit file), and no unknown FIRSTRUN_ variable.
func newValidator(raw Raw) *validator {
	v := &validator{raw: raw, bad: map[string]bool{}}
	for _, k := range slices.Sorted(maps.Keys(raw.Values)) {
		val := raw.Values[k]
		switch {
		case !utf8.ValidString(val):
			v.add(k, "is not valid UTF-8 (got %s)", v.shown(k))
			v.bad[k] = true
		case strings.ContainsFunc(val, unicode.IsControl):
			i := strings.IndexFunc(val, unicode.IsControl)
			v.add(k, "must not contain control characters such as newline, carriage return, tab or NUL (found %U at byte %d of %s)", []rune(val[i:])[0], i, v.shown(k))
			v.bad[k] = true
		}
		if strings.HasPrefix(k, "FIRSTRUN_") && !isSpecKey(k) {
			v.add(k, "is not a firstrun setting (known: %s)", firstrunKeys())
		}
	}
	return v
}

func (v *validator) add(key, format string, a ...any) {
	v.report = append(v.report, Problem{Var: key, Msg: fmt.Sprintf(format, a...)})
}

// shown quotes a value for a message, secrets redacted; a value resolved from a
// reference is never shown, its reference is.
func (v *validator) shown(key string) string {
	if ref, ok := v.raw.Refs[key]; ok {
		return "the value of " + strconv.Quote(ref)
	}
	return strconv.Quote(redact.Value(key, v.raw.Values[key]))
}

// ok reports whether key's value has not been found unusable already.
func (v *validator) ok(key string) bool { return !v.bad[key] }

func (v *validator) cluster(c string) string {
	switch {
	case !v.ok("ECS_CLUSTER"):
	case c == "":
		v.add("ECS_CLUSTER", "is required: the name or ARN of the cluster to join")
	case clusterName.MatchString(c) || isClusterARN(c):
		return c
	default:
		v.add("ECS_CLUSTER", "must be 1-255 letters, digits, hyphens and underscores, or a cluster ARN arn:aws:ecs:REGION:ACCOUNT:cluster/NAME (got %s)", v.shown("ECS_CLUSTER"))
	}
	return ""
}

func (v *validator) proxy(p string) *url.URL {
	if p == "" || !v.ok("PROXY_URL") {
		return nil
	}
	u, msg := parseProxy(p)
	if msg != "" {
		v.add("PROXY_URL", "%s (got %s)", msg, v.shown("PROXY_URL"))
	}
	return u
}

func (v *validator) noProxy(np string) []string {
	if !v.ok("FIRSTRUN_NO_PROXY") {
		return nil
	}
	var out []string
	for _, e := range strings.Split(np, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case !noProxyEntry.MatchString(e):
			v.add("FIRSTRUN_NO_PROXY", "entry %q must be a host, domain, IP address, CIDR or path (letters, digits and . - _ : / * [ ] only)", e)
		default:
			out = append(out, e)
		}
	}
	return out
}

// region returns AWS_REGION, or else AWS_DEFAULT_REGION; the two may not disagree.
func (v *validator) region(reg, defaultReg string) string {
	key := "AWS_REGION"
	if reg == "" {
		reg, key = defaultReg, "AWS_DEFAULT_REGION"
	} else if defaultReg != "" && defaultReg != reg && v.ok("AWS_DEFAULT_REGION") && v.ok("AWS_REGION") {
		v.add("AWS_DEFAULT_REGION", "disagrees with AWS_REGION (%s vs %s): give one, or the same in both", v.shown("AWS_DEFAULT_REGION"), v.shown("AWS_REGION"))
	}
	switch {
	case reg == "" || !v.ok(key):
	case region.MatchString(reg):
		return reg
	default:
		v.add(key, "must be a region code such as us-east-1 (got %s)", v.shown(key))
	}
	return ""
}

// logAgent resolves FIRSTRUN_LOG_AGENT, auto by what is installed.
func (v *validator) logAgent(agent string, probe Probe) LogAgent {
	switch LogAgent(agent) {
	case LogAgentAuto:
		switch {
		case probe.CloudWatchAgent:
			return LogAgentCloudWatch
		case probe.Awslogs:
			return LogAgentAwslogs
		}
		return LogAgentNone
	case LogAgentCloudWatch, LogAgentAwslogs, LogAgentNone:
		return LogAgent(agent)
	}
	if v.ok("FIRSTRUN_LOG_AGENT") {
		v.add("FIRSTRUN_LOG_AGENT", "must be one of auto, cloudwatch, awslogs, none (got %s)", v.shown("FIRSTRUN_LOG_AGENT"))
	}
	return ""
}

// logGroupParts checks STACK_NAME and AUTOSCALING_GROUP, each on its own, so that one
// run reports both. They are required with a log agent. Within their own limits they
// always compose log group names within CloudWatch Logs' 512 characters (logsources'
// TestGroupNamesFitCloudWatchLogs).
func (v *validator) logGroupParts(stack, asg string, agent LogAgent) (string, string) {
	need := agent == LogAgentCloudWatch || agent == LogAgentAwslogs
	return v.stackName(stack, need, agent), v.asgName(asg, need, agent)
}

// required reports a log group part missing for the log agent.
func (v *validator) required(key string, agent LogAgent) {
	v.add(key, "is required with the %s log agent: it composes the log group names (or set FIRSTRUN_LOG_AGENT=none)", agent)
}

func (v *validator) stackName(stack string, need bool, agent LogAgent) string {
	switch {
	case stack == "" && need:
		v.required("STACK_NAME", agent)
	case stack == "" || !v.ok("STACK_NAME"):
	case !stackName.MatchString(stack):
		v.add("STACK_NAME", "must start with a letter and hold only letters, digits and hyphens, at most 128 characters (CloudFormation's rule) (got %s)", v.shown("STACK_NAME"))
	default:
		return stack
	}
	return ""
}

func (v *validator) asgName(asg string, need bool, agent LogAgent) string {
	switch n := utf8.RuneCountInString(asg); {
	case asg == "" && need:
		v.required("AUTOSCALING_GROUP", agent)
	case asg == "" || !v.ok("AUTOSCALING_GROUP"):
	case n > asgNameMax:
		v.add("AUTOSCALING_GROUP", "must be at most %d characters (got %d)", asgNameMax, n)
	case !logGroupName.MatchString(asg):
		v.add("AUTOSCALING_GROUP", "goes into log group names and breaks CloudWatch Logs' rule: only letters, digits and _ - / . # (got %s)", v.shown("AUTOSCALING_GROUP"))
	default:
		return asg
	}
	return ""
}

// ecsSettings returns the other ECS_* variables, passed to the agent as given.
//
// ecs.config is read twice, and a value must mean the same to both readers: ecs-init
// reads it raw for the agent's container (aws/amazon-ecs-agent ecs-init/docker/docker.go
// getEnvVars: split at the first '=', the line trimmed, nothing unescaped), and
// systemd reads it as ecs.service's EnvironmentFile= (systemd src/basic/env-file.c
// parse_env_file_internal: a quote where the value starts opens a quoted value, a
// backslash escapes the next character and is dropped, a backslash before the end of
// the line joins the next line, white space around the value is trimmed). They agree
// byte for byte exactly when the value has no surrounding white space, does not start
// with a quote and holds no backslash.
func (v *validator) ecsSettings() []Setting {
	var out []Setting
	for _, k := range slices.Sorted(maps.Keys(v.raw.Values)) {
		if !strings.HasPrefix(k, "ECS_") || k == "ECS_CLUSTER" || !v.ok(k) {
			continue
		}
		val := v.raw.Values[k]
		switch {
		case !ecsKey.MatchString(k):
			v.add(k, "is not an ECS agent setting name (ECS_ followed by upper-case letters, digits and _)")
		case strings.TrimSpace(val) != val:
			v.add(k, "must not start or end with white space: ecs-init trims it (got %s)", v.shown(k))
		case len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0]:
			v.add(k, "must not be quoted: ecs-init reads quotes literally while systemd strips them (got %s)", v.shown(k))
		case val != "" && (val[0] == '"' || val[0] == '\''):
			v.add(k, "must not start with a quote: ecs-init reads it literally while systemd, reading ecs.config as ecs.service's EnvironmentFile=, takes it as the start of a quoted value (got %s)", v.shown(k))
		case strings.HasSuffix(val, `\`):
			v.add(k, "must not end with a backslash: systemd, reading ecs.config as ecs.service's EnvironmentFile=, joins the next line to it and that setting is lost, while ecs-init reads it as written (got %s)", v.shown(k))
		case strings.Contains(val, `\`):
			v.add(k, "must not contain a backslash: ecs-init passes it to the agent as written, while systemd, reading ecs.config as ecs.service's EnvironmentFile=, drops it (\\\\ becomes \\, \\x becomes x) (got %s)", v.shown(k))
		default:
			out = append(out, Setting{Key: k, Value: val})
		}
	}
	return out
}

// SignalTarget is what the CloudFormation signal needs from the inputs.
type SignalTarget struct {
	StackName, LogicalID, Region string
	// Proxy is PROXY_URL when it is valid: the signal goes through it.
	Proxy *url.URL
	// Timeout is FIRSTRUN_SIGNAL_TIMEOUT, the signal's time budget; 0 when it is
	// invalid (Validate reports it): the client's default then.
	Timeout time.Duration
}

// Signal reads the inputs the CloudFormation signal needs, each checked on its own and
// leniently, so that a run whose other inputs are invalid can still tell
// CloudFormation FAILURE: whether the signal is asked for (FIRSTRUN_SIGNAL, the
// default false when unreadable) and whatever of the target is valid.
func Signal(raw Raw) (bool, SignalTarget) {
	v := newValidator(raw)
	spec, _ := decode(raw.Values)
	on, t := v.signal(spec)
	t.Proxy = v.proxy(spec.ProxyURL)
	return on, t
}

// signal checks FIRSTRUN_SIGNAL and, when it is on, that the target is complete.
func (v *validator) signal(spec Spec) (bool, SignalTarget) {
	on := false
	if v.ok("FIRSTRUN_SIGNAL") {
		b, err := strconv.ParseBool(spec.Signal)
		if err != nil {
			v.add("FIRSTRUN_SIGNAL", "must be true or false (got %s)", v.shown("FIRSTRUN_SIGNAL"))
		}
		on = b
	}
	t := SignalTarget{LogicalID: v.logicalID(spec.LogicalID), Timeout: v.timeout("FIRSTRUN_SIGNAL_TIMEOUT", spec.SignalTimeout)}
	if v.ok("STACK_NAME") && stackName.MatchString(spec.StackName) {
		t.StackName = spec.StackName
	}
	t.Region = spec.Region
	if t.Region == "" {
		t.Region = spec.DefaultRegion
	}
	if !region.MatchString(t.Region) || !v.ok("AWS_REGION") || !v.ok("AWS_DEFAULT_REGION") {
		t.Region = ""
	}
	if on {
		need := func(key, value, what string) {
			if value == "" && v.raw.Values[key] == "" {
				v.add(key, "is required with FIRSTRUN_SIGNAL=true (or --signal): %s (or from the instance's tags, with instance metadata tags on)", what)
			}
		}
		need("STACK_NAME", t.StackName, "the stack to signal")
		need("LOGICAL_RESOURCE_ID", t.LogicalID, "the resource whose CreationPolicy waits")
		if t.Region == "" && spec.Region == "" && spec.DefaultRegion == "" {
			v.add("AWS_REGION", "is required with FIRSTRUN_SIGNAL=true (or --signal): the region of CloudFormation's endpoint (or from the instance identity document)")
		}
	}
	return on, t
}

// logicalID checks LOGICAL_RESOURCE_ID: CloudFormation's rule, letters and digits.
func (v *validator) logicalID(id string) string {
	switch {
	case id == "" || !v.ok("LOGICAL_RESOURCE_ID"):
	case logicalID.MatchString(id):
		return id
	default:
		v.add("LOGICAL_RESOURCE_ID", "must be 1-255 letters and digits, as CloudFormation logical ids are (got %s)", v.shown("LOGICAL_RESOURCE_ID"))
	}
	return ""
}

// onOff reads an on/off switch.
func (v *validator) onOff(key, s string) bool {
	switch {
	case !v.ok(key):
	case s == "on":
		return true
	case s != "off":
		v.add(key, "must be on or off (got %s)", v.shown(key))
	}
	return false
}

// tagKey checks a tag key that is read through the instance metadata, where keys may
// not hold spaces or '/' and may not be ".", ".." or "_index" (EC2 User Guide, "Work
// with instance tags in instance metadata").
func (v *validator) tagKey(key, s string) string {
	switch {
	case !v.ok(key):
	case !metadataTagKey.MatchString(s) || s == "." || s == ".." || s == "_index":
		v.add(key, "must be a tag key readable in the instance metadata: 1-128 of letters, digits and + - = . , _ : @ (got %s)", v.shown(key))
	default:
		return s
	}
	return ""
}

// timeout parses a wait's bound: a Go duration above zero and at most maxTimeout.
func (v *validator) timeout(key, s string) time.Duration {
	if !v.ok(key) {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		v.add(key, "must be a duration such as 90s or 10m (got %s)", v.shown(key))
	case d <= 0:
		v.add(key, "must be above zero: every wait is bounded (got %s)", v.shown(key))
	case d > maxTimeout:
		v.add(key, "must be at most %s (got %s)", maxTimeout, v.shown(key))
	default:
		return d
	}
	return 0
}

// agentMetadataPath is the path of the agent's metadata endpoint: its introspection
// server answers GET / (and any unknown path) with 200 and the list of its paths,
// {"AvailableCommands":["/v1/metadata","/v1/tasks","/license"]}, not with its
// metadata (aws/amazon-ecs-agent ecs-agent/introspection/server.go, setup;
// ecs-agent/introspection/v1/handlers/handlers.go, V1AgentMetadataPath).
const agentMetadataPath = "/v1/metadata"

// agentURL checks the agent's metadata endpoint: plain http (the introspection server
// has no TLS), a host, the path /v1/metadata (supplied when the path is empty or "/"),
// no credentials, query or fragment. It returns the URL to poll.
func (v *validator) agentURL(s string) string {
	const key = "FIRSTRUN_AGENT_URL"
	if !v.ok(key) {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || strings.ContainsFunc(s, unicode.IsSpace):
		v.add(key, "is not a valid URL (got %s)", v.shown(key))
	case u.Scheme != "http":
		v.add(key, "must use the http scheme, as in http://127.0.0.1:51678/v1/metadata: the agent's introspection server speaks plain HTTP (got %s)", v.shown(key))
	case u.Host == "" || u.Opaque != "":
		v.add(key, "must name a host, as in http://127.0.0.1:51678/v1/metadata (got %s)", v.shown(key))
	case u.User != nil:
		v.add(key, "must not carry credentials: the agent's endpoint takes none")
	case u.RawQuery != "" || u.ForceQuery:
		v.add(key, "must not have a query (got %s)", v.shown(key))
	case u.Fragment != "" || strings.Contains(s, "#"):
		v.add(key, "must not have a fragment (got %s)", v.shown(key))
	case u.Path != "" && u.Path != "/" && u.Path != agentMetadataPath:
		v.add(key, "must be the agent's metadata endpoint, path %s (got %s): other paths of the agent do not say whether it registered", agentMetadataPath, v.shown(key))
	default:
		u.Path, u.RawPath = agentMetadataPath, ""
		return u.String()
	}
	return ""
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
