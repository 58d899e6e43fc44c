package inputs

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/kelseyhightower/envconfig"
)

// Spec declares every named input firstrun reads, with its default and description. It
// is the single source for decoding (envconfig) and for the reference that --help
// prints. Values stay strings here: Validate parses them, so that every problem is
// reported at once instead of the first decode error.
type Spec struct {
	Cluster          string `envconfig:"ECS_CLUSTER" desc:"ECS cluster to join: a name (1-255 letters, digits, - and _) or a cluster ARN. Required."`
	ProxyURL         string `envconfig:"PROXY_URL" desc:"HTTP proxy for docker, the ECS agent and the log agent: http(s)://[user:password@]host:port, or host:port. Empty: no proxy. Or a reference to where it is kept: ssm:NAME or secretsmanager:SECRET_ID[#KEY] (as any ECS_* setting but ECS_CLUSTER)."`
	StackName        string `envconfig:"STACK_NAME" desc:"CloudFormation stack name; first part of the log group names. Required unless the log agent is none."`
	AutoscalingGroup string `envconfig:"AUTOSCALING_GROUP" desc:"Auto Scaling group name; second part of the log group names. Required unless the log agent is none."`
	Region           string `envconfig:"AWS_REGION" desc:"AWS region (wins over AWS_DEFAULT_REGION). Required for the awslogs agent."`
	DefaultRegion    string `envconfig:"AWS_DEFAULT_REGION" desc:"AWS region, as the chapter's script named it."`
	LogAgent         string `envconfig:"FIRSTRUN_LOG_AGENT" default:"auto" desc:"Log agent to configure: auto (cloudwatch if installed, else awslogs if installed, else none), cloudwatch, awslogs or none."`
	NoProxy          string `envconfig:"FIRSTRUN_NO_PROXY" desc:"Extra comma-separated NO_PROXY entries (hosts, domains, IPs, CIDRs), added to the ones the platform needs."`
	HealthTimeout    string `envconfig:"FIRSTRUN_HEALTH_TIMEOUT" default:"10m" desc:"How long to wait for the ECS agent to register to the cluster (Go duration: 90s, 10m; at most 12h)."`
	ServiceTimeout   string `envconfig:"FIRSTRUN_SERVICE_TIMEOUT" default:"2m" desc:"How long to wait for docker and the log agent to become active, each (Go duration; at most 12h)."`
	SignalTimeout    string `envconfig:"FIRSTRUN_SIGNAL_TIMEOUT" default:"5m" desc:"How long the CloudFormation signal may take, retries on throttling included (Go duration; at most 12h). 5m: make storm delivered 1000 signals sent at once, throttled at 10 requests/s, in about 2 minutes. Keep FIRSTRUN_HEALTH_TIMEOUT + this below the CreationPolicy's Timeout."`
	LogicalID        string `envconfig:"LOGICAL_RESOURCE_ID" desc:"CloudFormation logical id of the resource whose CreationPolicy waits for the signal (the Auto Scaling group, say). From the aws:cloudformation:logical-id tag when not given."`
	Signal           string `envconfig:"FIRSTRUN_SIGNAL" default:"false" desc:"true: tell CloudFormation SUCCESS once the agent has joined, FAILURE on any failure (as --signal). Needs STACK_NAME, LOGICAL_RESOURCE_ID, the region and the instance id."`
	IMDS             string `envconfig:"FIRSTRUN_IMDS" default:"on" desc:"on: discover the region, the instance id and the instance's tags from IMDSv2 (the environment and the env file win); off: never ask the instance metadata service."`
	ClusterTag       string `envconfig:"FIRSTRUN_CLUSTER_TAG" default:"ecs:cluster-name" desc:"Instance tag whose value is ECS_CLUSTER when ECS_CLUSTER is not given (instance metadata tags must be enabled)."`
	SecretsTimeout   string `envconfig:"FIRSTRUN_SECRETS_TIMEOUT" default:"1m" desc:"How long resolving the references to SSM Parameter Store and Secrets Manager may take, all together, retries on throttling included (Go duration; at most 12h)."`
	AgentURL         string `envconfig:"FIRSTRUN_AGENT_URL" default:"http://127.0.0.1:51678/v1/metadata" desc:"The ECS agent's metadata endpoint polled for registration (http, path /v1/metadata, supplied when the URL has none); never reached through the proxy."`
}

// specKeys and specDefaults are read once from Spec's tags.
var specKeys, specDefaults = specTags()

func specTags() ([]string, map[string]string) {
	t := reflect.TypeOf(Spec{})
	keys := make([]string, 0, t.NumField())
	defaults := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		key := t.Field(i).Tag.Get("envconfig")
		keys = append(keys, key)
		if v, ok := t.Field(i).Tag.Lookup("default"); ok {
			defaults[key] = v
		}
	}
	return keys, defaults
}

// isSpecKey reports whether key is one of Spec's variables.
func isSpecKey(key string) bool { return slices.Contains(specKeys, key) }

// firstrunKeys lists Spec's FIRSTRUN_ variables, for messages.
func firstrunKeys() string {
	var out []string
	for _, k := range specKeys {
		if strings.HasPrefix(k, "FIRSTRUN_") {
			out = append(out, k)
		}
	}
	return strings.Join(out, ", ")
}

// envMu serialises decode: envconfig reads only the process environment (its lookup is
// os.LookupEnv and cannot be injected), so decode puts the resolved values of Spec's own
// keys there for the call and restores them afterwards. No other code reads these keys.
var envMu sync.Mutex

// decode fills a Spec from resolved values with envconfig (defaults included).
func decode(values map[string]string) (Spec, error) {
	envMu.Lock()
	defer envMu.Unlock()
	type saved struct {
		v  string
		ok bool
	}
	old := map[string]saved{}
	for _, k := range specKeys {
		v, ok := os.LookupEnv(k)
		old[k] = saved{v, ok}
		if nv, given := values[k]; given && nv != "" {
			os.Setenv(k, nv)
		} else {
			os.Unsetenv(k)
		}
	}
	defer func() {
		for k, s := range old {
			if s.ok {
				os.Setenv(k, s.v)
			} else {
				os.Unsetenv(k)
			}
		}
	}()
	var s Spec
	if err := envconfig.Process("", &s); err != nil {
		return Spec{}, fmt.Errorf("decoding inputs: %w", err)
	}
	return s, nil
}

// Usage writes the reference of every input: name, default and description, from
// Spec's tags. It formats them itself: envconfig.Usagef renders with text/template,
// whose method lookup by name makes the linker keep every exported method of every
// type that may be reached through an interface (1.8 MB of the binary).
func Usage(w io.Writer) error {
	t := reflect.TypeOf(Spec{})
	var b strings.Builder
	for i := range t.NumField() {
		f := t.Field(i)
		b.WriteString("  " + f.Tag.Get("envconfig"))
		if d := f.Tag.Get("default"); d != "" {
			b.WriteString(" (default " + d + ")")
		}
		b.WriteString("\n      " + f.Tag.Get("desc") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
