package inputs_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firstrun/firstrun/internal/inputs"
)

func TestParseEnvFile(t *testing.T) {
	data := "# firstrun settings\n" +
		"\n" +
		"; an ini-style comment\n" +
		"   # an indented comment\n" +
		"ECS_CLUSTER=microtrader-cluster\n" +
		"  STACK_NAME = microtrader  \n" +
		"\tPROXY_URL=\"http://proxy.internal:3128\"\n" +
		"AUTOSCALING_GROUP='microtrader-asg'\n" +
		"ECS_ENGINE_AUTH_DATA={\"user\":\"a=b\"}\n" +
		"ECS_LOGLEVEL=\"debug'\n" +
		"ECS_RESERVED_MEMORY=\"\"256\"\"\n" +
		"FIRSTRUN_NO_PROXY=\"\"\n" +
		"AWS_REGION=us-east-1\r\n" +
		"ECS_INSTANCE_ATTRIBUTES={\"a\": \"b c\"}"
	want := map[string]string{
		"ECS_CLUSTER":             "microtrader-cluster",
		"STACK_NAME":              "microtrader",                // white space around key and value trimmed
		"PROXY_URL":               "http://proxy.internal:3128", // double quotes stripped
		"AUTOSCALING_GROUP":       "microtrader-asg",            // single quotes stripped
		"ECS_ENGINE_AUTH_DATA":    `{"user":"a=b"}`,             // split at the first '='; inner quotes kept
		"ECS_LOGLEVEL":            `"debug'`,                    // quotes that do not match are kept
		"ECS_RESERVED_MEMORY":     `"256"`,                      // one pair removed, not more
		"FIRSTRUN_NO_PROXY":       "",
		"AWS_REGION":              "us-east-1", // CRLF line end
		"ECS_INSTANCE_ATTRIBUTES": `{"a": "b c"}`,
	}
	got, problems := inputs.ParseEnvFile("firstrun.env", []byte(data))
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseEnvFile =\n%q\nwant\n%q", got, want)
	}
}

func TestParseEnvFileEmpty(t *testing.T) {
	for _, data := range []string{"", "\n\n", "# only a comment\n; and another\n"} {
		got, problems := inputs.ParseEnvFile("f.env", []byte(data))
		if len(got) != 0 || len(problems) != 0 {
			t.Errorf("ParseEnvFile(%q) = %v, %v; want nothing", data, got, problems)
		}
	}
}

func TestParseEnvFileErrors(t *testing.T) {
	data := "# comment\n" + // 1
		"ECS_CLUSTER=prod\n" + // 2
		"export STACK_NAME=x\n" + // 3
		"PROXY_URL\n" + // 4
		"\n" + // 5
		"1BAD=x\n" + // 6
		"BAD-KEY=x\n" + // 7
		"=value\n" + // 8
		"ECS_CLUSTER=other\n" + // 9
		"AUTOSCALING_GROUP=asg\n" // 10
	values, problems := inputs.ParseEnvFile("/etc/firstrun/firstrun.env", []byte(data))
	want := []struct{ where, msg string }{
		{"/etc/firstrun/firstrun.env:3", "must not start with 'export'"},
		{"/etc/firstrun/firstrun.env:4", "is not a KEY=value line"},
		{"/etc/firstrun/firstrun.env:6", `"1BAD" is not a variable name`},
		{"/etc/firstrun/firstrun.env:7", `"BAD-KEY" is not a variable name`},
		{"/etc/firstrun/firstrun.env:8", `"" is not a variable name`},
		{"/etc/firstrun/firstrun.env:9", "sets ECS_CLUSTER a second time"},
	}
	if len(problems) != len(want) {
		t.Fatalf("%d problems, want %d: %v", len(problems), len(want), problems)
	}
	for i, w := range want {
		if problems[i].Var != w.where || !strings.Contains(problems[i].Msg, w.msg) {
			t.Errorf("problem %d = %q, want %s with %q", i, problems[i], w.where, w.msg)
		}
	}
	// The good lines are read, and the first of two settings is kept.
	wantValues := map[string]string{"ECS_CLUSTER": "prod", "AUTOSCALING_GROUP": "asg"}
	if !reflect.DeepEqual(values, wantValues) {
		t.Errorf("values = %q, want %q", values, wantValues)
	}
}

func TestParseEnvFileLineTooLong(t *testing.T) {
	data := "ECS_CLUSTER=prod\nECS_INSTANCE_ATTRIBUTES=" + strings.Repeat("x", 2<<20) + "\n"
	_, problems := inputs.ParseEnvFile("big.env", []byte(data))
	if len(problems) != 1 || problems[0].Var != "big.env" || !strings.Contains(problems[0].Msg, "cannot be read") {
		t.Errorf("problems = %v, want one for big.env that says it cannot be read", problems)
	}
}

func TestResolve(t *testing.T) {
	file := "ECS_CLUSTER=from-file\n" +
		"STACK_NAME=file-stack\n" +
		"PROXY_URL=http://file-proxy:3128\n" +
		"AUTOSCALING_GROUP=\n" +
		"AWS_REGION=eu-west-1\n" +
		"AWS_ACCESS_KEY_ID=AKIAEXAMPLE\n" +
		"AWS_PROFILE=ops\n" +
		"ECS_LOGLEVEL=debug\n"
	env := []string{
		"ECS_CLUSTER=from-env",
		"PROXY_URL=", // empty: not given, so the file's value stays
		"HOME=/root", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
		"NOT_AN_ASSIGNMENT",
		"FIRSTRUN_NO_PROXY=.internal",
		"ECS_ENABLE_TASK_IAM_ROLE=true",
	}
	raw, problems := inputs.Resolve(env, "/etc/firstrun/firstrun.env", []byte(file))
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	wantValues := map[string]string{
		"ECS_CLUSTER":              "from-env", // the environment wins
		"STACK_NAME":               "file-stack",
		"PROXY_URL":                "http://file-proxy:3128",
		"AWS_REGION":               "eu-west-1", // an AWS_* key of Spec is read from the file
		"ECS_LOGLEVEL":             "debug",
		"FIRSTRUN_NO_PROXY":        ".internal",
		"ECS_ENABLE_TASK_IAM_ROLE": "true",
	}
	if !reflect.DeepEqual(raw.Values, wantValues) {
		t.Errorf("Values =\n%q\nwant\n%q", raw.Values, wantValues)
	}
	wantSources := map[string]inputs.Source{
		"ECS_CLUSTER":              inputs.FromEnvironment,
		"STACK_NAME":               inputs.FromEnvFile,
		"PROXY_URL":                inputs.FromEnvFile,
		"AWS_REGION":               inputs.FromEnvFile,
		"ECS_LOGLEVEL":             inputs.FromEnvFile,
		"FIRSTRUN_NO_PROXY":        inputs.FromEnvironment,
		"ECS_ENABLE_TASK_IAM_ROLE": inputs.FromEnvironment,
	}
	withDefaults(wantSources)
	if !reflect.DeepEqual(raw.Sources, wantSources) {
		t.Errorf("Sources =\n%q\nwant\n%q", raw.Sources, wantSources)
	}
}

func TestResolveProblems(t *testing.T) {
	file := "PROXYURL=http://proxy:3128\nexport ECS_CLUSTER=prod\nstack_name=x\nAWS_SECRET_ACCESS_KEY=ignored\n"
	_, problems := inputs.Resolve(nil, "site.env", []byte(file))
	var got []string
	for _, p := range problems {
		got = append(got, p.Var)
	}
	want := []string{"site.env:2", "PROXYURL", "stack_name"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems name %q, want %q: %v", got, want, problems)
	}
	if !strings.Contains(problems[1].Msg, "is not a firstrun input (set in site.env)") {
		t.Errorf("unknown key problem = %q, want it to name the file", problems[1])
	}
}

func TestResolveWithoutFile(t *testing.T) {
	raw, problems := inputs.Resolve([]string{"ECS_CLUSTER=prod"}, "/etc/firstrun/firstrun.env", nil)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if want := map[string]string{"ECS_CLUSTER": "prod"}; !reflect.DeepEqual(raw.Values, want) {
		t.Errorf("Values = %q, want %q", raw.Values, want)
	}
}

// validate resolves env (no env file) and validates it, failing the test on a problem.
func validate(t *testing.T, probe inputs.Probe, env ...string) inputs.Config {
	t.Helper()
	raw, problems := inputs.Resolve(env, "", nil)
	if len(problems) > 0 {
		t.Fatalf("Resolve(%q): %v", env, problems)
	}
	cfg, err := inputs.Validate(raw, probe)
	if err != nil {
		t.Fatalf("Validate(%q): %v", env, err)
	}
	return cfg
}

func TestValidateCluster(t *testing.T) {
	for _, c := range []string{
		"microtrader-cluster",
		"Prod_Cluster-2",
		"x",
		strings.Repeat("c", 255),
		"arn:aws:ecs:us-east-1:123456789012:cluster/microtrader",
		"arn:aws-cn:ecs:cn-north-1:123456789012:cluster/prod",
		"arn:aws-us-gov:ecs:us-gov-west-1:123456789012:cluster/prod_1",
	} {
		if got := validate(t, inputs.Probe{}, "ECS_CLUSTER="+c).Cluster; got != c {
			t.Errorf("Cluster = %q, want %q", got, c)
		}
	}
}

func TestValidateProxy(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"proxy.internal:3128", "http://proxy.internal:3128"}, // bare host:port gets http://
		{"bob:p%40ss@proxy.internal:3128", "http://bob:p%40ss@proxy.internal:3128"},
		{"http://proxy.internal:3128", "http://proxy.internal:3128"},
		{"https://proxy.internal:8443", "https://proxy.internal:8443"}, // https kept
		{"HTTP://Proxy.Internal:3128", "http://Proxy.Internal:3128"},
		{"http://proxy.internal:3128/", "http://proxy.internal:3128"}, // trailing slash dropped
		{"[::1]:3128", "http://[::1]:3128"},                           // IPv6
		{"http://[fd00:ec2::254]:80", "http://[fd00:ec2::254]:80"},
		{"10.0.0.5:8080", "http://10.0.0.5:8080"},
		{"http://proxy:1", "http://proxy:1"},
		{"http://proxy:65535", "http://proxy:65535"},
	} {
		cfg := validate(t, inputs.Probe{}, "ECS_CLUSTER=prod", "PROXY_URL="+tc.in)
		if got := cfg.ProxyString(); got != tc.want {
			t.Errorf("PROXY_URL=%s: proxy %q, want %q", tc.in, got, tc.want)
		}
	}
	if cfg := validate(t, inputs.Probe{}, "ECS_CLUSTER=prod"); cfg.Proxy != nil || cfg.ProxyString() != "" {
		t.Errorf("no PROXY_URL: proxy %q, want none", cfg.ProxyString())
	}
}

func TestValidateLogAgent(t *testing.T) {
	logInputs := []string{"ECS_CLUSTER=prod", "STACK_NAME=microtrader", "AUTOSCALING_GROUP=asg", "AWS_REGION=us-east-1"}
	for _, tc := range []struct {
		name  string
		agent string // FIRSTRUN_LOG_AGENT, "" for not given
		probe inputs.Probe
		want  inputs.LogAgent
	}{
		{"auto with CloudWatch agent", "", inputs.Probe{CloudWatchAgent: true}, inputs.LogAgentCloudWatch},
		{"auto with both agents", "auto", inputs.Probe{CloudWatchAgent: true, Awslogs: true}, inputs.LogAgentCloudWatch},
		{"auto with awslogs only", "", inputs.Probe{Awslogs: true}, inputs.LogAgentAwslogs},
		{"auto with no agent", "auto", inputs.Probe{}, inputs.LogAgentNone},
		{"none wins over the probe", "none", inputs.Probe{CloudWatchAgent: true}, inputs.LogAgentNone},
		{"cloudwatch without the probe", "cloudwatch", inputs.Probe{}, inputs.LogAgentCloudWatch},
		{"awslogs", "awslogs", inputs.Probe{CloudWatchAgent: true}, inputs.LogAgentAwslogs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := logInputs
			if tc.agent != "" {
				env = append(append([]string(nil), logInputs...), "FIRSTRUN_LOG_AGENT="+tc.agent)
			}
			if got := validate(t, tc.probe, env...).LogAgent; got != tc.want {
				t.Errorf("LogAgent = %q, want %q", got, tc.want)
			}
		})
	}
	// With no log agent, the log group inputs are not required.
	if cfg := validate(t, inputs.Probe{CloudWatchAgent: true}, "ECS_CLUSTER=prod", "FIRSTRUN_LOG_AGENT=none"); cfg.StackName != "" || cfg.AutoscalingGroup != "" {
		t.Errorf("log agent none: StackName %q, AutoscalingGroup %q, want empty", cfg.StackName, cfg.AutoscalingGroup)
	}
}

func TestValidateLogGroupInputs(t *testing.T) {
	stack, asg := "s"+strings.Repeat("a", 127), strings.Repeat("g", 255) // the longest allowed
	cfg := validate(t, inputs.Probe{CloudWatchAgent: true}, "ECS_CLUSTER=prod", "STACK_NAME="+stack, "AUTOSCALING_GROUP="+asg)
	if cfg.StackName != stack || cfg.AutoscalingGroup != asg {
		t.Errorf("StackName %q, AutoscalingGroup %q, want %q, %q", cfg.StackName, cfg.AutoscalingGroup, stack, asg)
	}
	cfg = validate(t, inputs.Probe{CloudWatchAgent: true}, "ECS_CLUSTER=prod", "STACK_NAME=microtrader", "AUTOSCALING_GROUP=microtrader-ApplicationAutoscalingGroup-1X2Y.v#2_a")
	if cfg.AutoscalingGroup != "microtrader-ApplicationAutoscalingGroup-1X2Y.v#2_a" {
		t.Errorf("AutoscalingGroup = %q", cfg.AutoscalingGroup)
	}
}

func TestValidateRegion(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"AWS_REGION=us-east-1"}, "us-east-1"},
		{[]string{"AWS_DEFAULT_REGION=eu-west-1"}, "eu-west-1"},
		{[]string{"AWS_REGION=ap-southeast-2", "AWS_DEFAULT_REGION=ap-southeast-2"}, "ap-southeast-2"},
		{[]string{"AWS_REGION=us-gov-west-1"}, "us-gov-west-1"},
		{nil, ""},
	} {
		if got := validate(t, inputs.Probe{}, append([]string{"ECS_CLUSTER=prod"}, tc.env...)...).Region; got != tc.want {
			t.Errorf("%q: Region = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestValidateECSSettings(t *testing.T) {
	cfg := validate(t, inputs.Probe{},
		"ECS_RESERVED_MEMORY=256",
		"ECS_CLUSTER=prod",
		`ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]`,
		"ECS_ENABLE_TASK_IAM_ROLE=true",
		"ECS_ENGINE_AUTH_DATA={\"https://index.docker.io/v1/\":{\"username\":\"bob\",\"password\":\"p w\"}}",
	)
	want := []inputs.Setting{
		{Key: "ECS_AVAILABLE_LOGGING_DRIVERS", Value: `["json-file","awslogs"]`},
		{Key: "ECS_ENABLE_TASK_IAM_ROLE", Value: "true"},
		{Key: "ECS_ENGINE_AUTH_DATA", Value: "{\"https://index.docker.io/v1/\":{\"username\":\"bob\",\"password\":\"p w\"}}"},
		{Key: "ECS_RESERVED_MEMORY", Value: "256"},
	}
	if !reflect.DeepEqual(cfg.ECSSettings, want) {
		t.Errorf("ECSSettings =\n%q\nwant (sorted, without ECS_CLUSTER)\n%q", cfg.ECSSettings, want)
	}
}

func TestValidateNoProxy(t *testing.T) {
	cfg := validate(t, inputs.Probe{}, "ECS_CLUSTER=prod", "FIRSTRUN_NO_PROXY= 10.0.0.0/8 , .internal,,localhost,[fd00::1],*.svc ")
	want := []string{"10.0.0.0/8", ".internal", "localhost", "[fd00::1]", "*.svc"}
	if !reflect.DeepEqual(cfg.NoProxy, want) {
		t.Errorf("NoProxy = %q, want %q", cfg.NoProxy, want)
	}
}

func TestValidateKeepsSources(t *testing.T) {
	raw, _ := inputs.Resolve([]string{"ECS_CLUSTER=prod"}, "f.env", []byte("STACK_NAME=s\nAUTOSCALING_GROUP=a\n"))
	cfg, err := inputs.Validate(raw, inputs.Probe{CloudWatchAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]inputs.Source{
		"ECS_CLUSTER":       inputs.FromEnvironment,
		"STACK_NAME":        inputs.FromEnvFile,
		"AUTOSCALING_GROUP": inputs.FromEnvFile,
	}
	withDefaults(want)
	if !reflect.DeepEqual(cfg.Sources, want) {
		t.Errorf("Sources = %q, want %q", cfg.Sources, want)
	}
}

// TestValidateRejectsControlCharacters: a control character in any value could inject
// a line into ecs.config or a unit file; every variable is checked, before its own rule.
func TestValidateRejectsControlCharacters(t *testing.T) {
	valid := map[string]string{
		"ECS_CLUSTER": "prod", "PROXY_URL": "http://proxy:3128", "STACK_NAME": "s", "AUTOSCALING_GROUP": "a",
		"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "FIRSTRUN_LOG_AGENT": "none",
		"FIRSTRUN_NO_PROXY": ".internal", "ECS_LOGLEVEL": "debug", "ECS_ENGINE_AUTH_DATA": "{}",
	}
	for key := range valid {
		for _, c := range []string{"\n", "\r", "\t", "\x00", "\x7f", "\u0085"} {
			raw := inputs.Raw{Values: map[string]string{}}
			for k, v := range valid {
				raw.Values[k] = v
			}
			raw.Values[key] += c + "X=1"
			_, err := inputs.Validate(raw, inputs.Probe{})
			var report inputs.Report
			if !errors.As(err, &report) {
				t.Fatalf("%s with %q: err = %v, want a Report", key, c, err)
			}
			var own []inputs.Problem
			for _, p := range report {
				if p.Var == key {
					own = append(own, p)
				}
			}
			if len(own) != 1 || !strings.Contains(own[0].Msg, "must not contain control characters") {
				t.Errorf("%s with %q: problems %q, want exactly one for %s, about control characters", key, c, report, key)
			}
		}
	}
}

// TestBadRegionIsNotAlsoADisagreement: a malformed AWS_REGION is one problem; it must
// not also be blamed on a correct AWS_DEFAULT_REGION.
func TestBadRegionIsNotAlsoADisagreement(t *testing.T) {
	raw := inputs.Raw{Values: map[string]string{"ECS_CLUSTER": "prod", "AWS_REGION": "us-east-1\nX=1", "AWS_DEFAULT_REGION": "us-east-1"}}
	_, err := inputs.Validate(raw, inputs.Probe{})
	var report inputs.Report
	if !errors.As(err, &report) || len(report) != 1 || report[0].Var != "AWS_REGION" {
		t.Errorf("problems = %v, want one, for AWS_REGION", err)
	}
}

// TestValidateReport: every problem at once, sorted by variable, and no Config.
func TestValidateReport(t *testing.T) {
	raw, _ := inputs.Resolve([]string{
		"PROXY_URL=ftp://proxy:21", "STACK_NAME=1st", "AWS_REGION=Mars", "ECS_lower=x", "FIRSTRUN_LOG_AGENT=syslog",
	}, "", nil)
	cfg, err := inputs.Validate(raw, inputs.Probe{})
	var report inputs.Report
	if !errors.As(err, &report) {
		t.Fatalf("error %v (%T) is not a Report", err, err)
	}
	var vars []string
	for _, p := range report {
		vars = append(vars, p.Var)
		if !strings.Contains(err.Error(), p.String()) {
			t.Errorf("Error() does not list %q:\n%s", p, err)
		}
	}
	want := []string{"AWS_REGION", "ECS_CLUSTER", "ECS_lower", "FIRSTRUN_LOG_AGENT", "PROXY_URL", "STACK_NAME"}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("problems name %q, want %q", vars, want)
	}
	if !reflect.DeepEqual(cfg, inputs.Config{}) {
		t.Errorf("Config = %+v, want the zero Config with an error", cfg)
	}
}

// TestValidateIgnoresProcessEnvironment: decoding goes through the process environment
// (envconfig reads only that); the values there must neither leak into the result nor
// be lost.
func TestValidateIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("ECS_CLUSTER", "from-the-process")
	t.Setenv("FIRSTRUN_LOG_AGENT", "none")
	t.Setenv("STACK_NAME", "") // restored after the test
	os.Unsetenv("STACK_NAME")
	raw, _ := inputs.Resolve([]string{"STACK_NAME=given"}, "", nil)
	_, err := inputs.Validate(raw, inputs.Probe{CloudWatchAgent: true})
	var report inputs.Report
	if !errors.As(err, &report) || !strings.Contains(err.Error(), "ECS_CLUSTER: is required") || !strings.Contains(err.Error(), "AUTOSCALING_GROUP: is required with the cloudwatch log agent") {
		t.Errorf("Validate read the process environment: err = %v", err)
	}
	if got := os.Getenv("ECS_CLUSTER"); got != "from-the-process" {
		t.Errorf("ECS_CLUSTER in the process environment = %q after Validate, want it restored", got)
	}
	if got := os.Getenv("FIRSTRUN_LOG_AGENT"); got != "none" {
		t.Errorf("FIRSTRUN_LOG_AGENT in the process environment = %q after Validate, want it restored", got)
	}
	if v, ok := os.LookupEnv("STACK_NAME"); ok {
		t.Errorf("STACK_NAME = %q left in the process environment", v)
	}
}

// TestStackAndGroupProblemsReportedTogether: AUTOSCALING_GROUP's characters are
// checked whether or not STACK_NAME is valid, so one run reports both.
func TestStackAndGroupProblemsReportedTogether(t *testing.T) {
	_, err := inputs.Validate(inputs.Raw{Values: map[string]string{
		"ECS_CLUSTER": "c", "STACK_NAME": "1stack", "AUTOSCALING_GROUP": "a b", "FIRSTRUN_LOG_AGENT": "none",
	}}, inputs.Probe{})
	var r inputs.Report
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a Report", err)
	}
	vars := map[string]bool{}
	for _, p := range r {
		vars[p.Var] = true
	}
	if !vars["STACK_NAME"] || !vars["AUTOSCALING_GROUP"] || len(r) != 2 {
		t.Errorf("problems = %v, want STACK_NAME and AUTOSCALING_GROUP", r.Lines())
	}
}

// TestParseEnvFileHidesPastedPassword: a malformed line may be a pasted proxy URL; the
// problem names the line and never shows its password.
func TestParseEnvFileHidesPastedPassword(t *testing.T) {
	_, problems := inputs.ParseEnvFile("f.env", []byte("http://bob:hunter2@proxy:3128/?x=1\n"))
	if len(problems) != 1 || problems[0].Var != "f.env:1" {
		t.Fatalf("problems = %v", problems)
	}
	if strings.Contains(problems[0].Msg, "hunter2") || !strings.Contains(problems[0].Msg, "not a variable name") {
		t.Errorf("problem %q", problems[0].Msg)
	}
}

func TestInputsKeepsWhatFirstrunAndTheSDKRead(t *testing.T) {
	env := []string{"PATH=/bin", "ECS_CLUSTER=c", "HOME=/root", "PROXY_URL=p:1", "ECS_LOGLEVEL=debug",
		"FIRSTRUN_HEALTH_TIMEOUT=1m", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338", "LANG=C", "malformed"}
	want := []string{"ECS_CLUSTER=c", "PROXY_URL=p:1", "ECS_LOGLEVEL=debug", "FIRSTRUN_HEALTH_TIMEOUT=1m", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338"}
	if got := inputs.Inputs(env); !reflect.DeepEqual(got, want) {
		t.Errorf("Inputs =\n %q\nwant\n %q", got, want)
	}
}

// withDefaults adds to sources every input that has a default and is not in it, as
// coming from the default.
func withDefaults(sources map[string]inputs.Source) {
	for _, k := range []string{"FIRSTRUN_LOG_AGENT", "FIRSTRUN_HEALTH_TIMEOUT", "FIRSTRUN_SERVICE_TIMEOUT", "FIRSTRUN_SIGNAL_TIMEOUT",
		"FIRSTRUN_AGENT_URL", "FIRSTRUN_SIGNAL", "FIRSTRUN_IMDS", "FIRSTRUN_CLUSTER_TAG", "FIRSTRUN_SECRETS_TIMEOUT"} {
		if _, ok := sources[k]; !ok {
			sources[k] = inputs.FromDefault
		}
	}
}

func TestDiscoveredNeverWinsOverGivenValues(t *testing.T) {
	raw, problems := inputs.Resolve([]string{"ECS_CLUSTER=from-env"}, "f.env", []byte("STACK_NAME=from-file\n"))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	raw.Discovered(map[string]string{"ECS_CLUSTER": "from-tag", "STACK_NAME": "from-tag", "AUTOSCALING_GROUP": "asg-from-tag", "AWS_REGION": "", "LOGICAL_RESOURCE_ID": "ECSAutoScalingGroup"})
	want := map[string]string{"ECS_CLUSTER": "from-env", "STACK_NAME": "from-file", "AUTOSCALING_GROUP": "asg-from-tag", "LOGICAL_RESOURCE_ID": "ECSAutoScalingGroup"}
	for k, v := range want {
		if raw.Values[k] != v {
			t.Errorf("%s = %q, want %q", k, raw.Values[k], v)
		}
	}
	if raw.Sources["AUTOSCALING_GROUP"] != inputs.FromIMDS || raw.Sources["ECS_CLUSTER"] != inputs.FromEnvironment {
		t.Errorf("sources %q", raw.Sources)
	}
	if _, ok := raw.Values["AWS_REGION"]; ok {
		t.Error("an empty discovered value was added")
	}
}

func TestSignalTargetIsReadEvenWhenOtherInputsAreInvalid(t *testing.T) {
	raw, _ := inputs.Resolve([]string{"FIRSTRUN_SIGNAL=true", "PROXY_URL=proxy.internal:3128", "STACK_NAME=prod", "LOGICAL_RESOURCE_ID=ECSAutoScalingGroup", "AWS_DEFAULT_REGION=eu-west-1", "ECS_CLUSTER=bad cluster"}, "", nil)
	if _, err := inputs.Validate(raw, inputs.Probe{}); err == nil {
		t.Fatal("an invalid ECS_CLUSTER was accepted")
	}
	on, target := inputs.Signal(raw)
	want := inputs.SignalTarget{StackName: "prod", LogicalID: "ECSAutoScalingGroup", Region: "eu-west-1", Timeout: 5 * time.Minute}
	if target.Proxy == nil || target.Proxy.String() != "http://proxy.internal:3128" {
		t.Errorf("proxy %v, want http://proxy.internal:3128", target.Proxy)
	}
	target.Proxy = nil
	if !on || target != want {
		t.Errorf("Signal = %v, %+v; want true, %+v", on, target, want)
	}
}

func TestDiscoveredRegionNeverContradictsAWSDefaultRegion(t *testing.T) {
	raw, _ := inputs.Resolve([]string{"AWS_DEFAULT_REGION=us-east-1"}, "", nil)
	raw.Discovered(map[string]string{"AWS_REGION": "eu-west-1"})
	if v, ok := raw.Values["AWS_REGION"]; ok {
		t.Errorf("AWS_REGION = %q discovered beside AWS_DEFAULT_REGION: they would disagree", v)
	}
	raw, _ = inputs.Resolve(nil, "", nil)
	raw.Discovered(map[string]string{"AWS_REGION": "eu-west-1"})
	if raw.Values["AWS_REGION"] != "eu-west-1" || raw.Sources["AWS_REGION"] != inputs.FromIMDS {
		t.Errorf("with no region given, AWS_REGION = %q from %q, want eu-west-1 from the instance metadata", raw.Values["AWS_REGION"], raw.Sources["AWS_REGION"])
	}
}

// The signal's time budget: FIRSTRUN_SIGNAL_TIMEOUT, read leniently for the signal (an
// invalid one leaves the client's default, 0 here) and reported by Validate.
func TestSignalTimeout(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		valid bool
	}{
		{"", 5 * time.Minute, true}, {"90s", 90 * time.Second, true}, {"12h", 12 * time.Hour, true},
		{"0", 0, false}, {"-1m", 0, false}, {"13h", 0, false}, {"soon", 0, false},
	} {
		env := []string{"ECS_CLUSTER=c", "FIRSTRUN_LOG_AGENT=none", "FIRSTRUN_SIGNAL=true", "STACK_NAME=prod",
			"LOGICAL_RESOURCE_ID=ECSAutoScalingGroup", "AWS_REGION=eu-west-1"}
		if tc.value != "" {
			env = append(env, "FIRSTRUN_SIGNAL_TIMEOUT="+tc.value)
		}
		raw, _ := inputs.Resolve(env, "", nil)
		if _, target := inputs.Signal(raw); target.Timeout != tc.want {
			t.Errorf("FIRSTRUN_SIGNAL_TIMEOUT=%q: Timeout %v, want %v", tc.value, target.Timeout, tc.want)
		}
		_, err := inputs.Validate(raw, inputs.Probe{})
		if (err == nil) != tc.valid || (err != nil && !strings.Contains(err.Error(), "FIRSTRUN_SIGNAL_TIMEOUT")) {
			t.Errorf("FIRSTRUN_SIGNAL_TIMEOUT=%q: Validate: %v, want valid %v", tc.value, err, tc.valid)
		}
	}
}
