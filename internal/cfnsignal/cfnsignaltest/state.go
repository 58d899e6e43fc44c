// Package cfnsignaltest is the one stand-in for CloudFormation's SignalResource, used
// by internal/cfnsignal's unit tests, by the sandbox's fakecfn (test/e2e/fakecfn) and
// by the boot storm (test/storm). It keeps stacks and resources with their states and
// answers as CloudFormation does, which these sources describe:
//
//   - the CloudFormation API Reference, SignalResource (the action's four parameters,
//     Status SUCCESS or FAILURE, UniqueId 1-64 characters, "A failure signal causes
//     CloudFormation to immediately fail the stack creation or update") and Common
//     Errors (codes and HTTP statuses; Throttling is HTTP 400);
//   - the User Guide, CreationPolicy attribute (ResourceSignal Count: "The number of
//     success signals CloudFormation must receive before it sets the resource status
//     as CREATE_COMPLETE"; one signal per UniqueId) and UpdatePolicy
//     (WaitOnResourceSignals);
//   - the answers seen from the real service: "ValidationError: Stack arn:aws:
//     cloudformation:us-east-1:…:stack/NAME/… is in CREATE_COMPLETE state and cannot
//     be signaled" (aws-cloudformation/aws-cloudformation-templates issues #34 and
//     #126, cfn-signal run after the stack completed or on a replacement instance),
//     "Stack with id NAME does not exist" (CloudFormation's ValidationError for a stack
//     it does not know, as in convox/rack#2572 and cloudquery/cq-provider-aws#824),
//     "Resource NAME does not exist for stack STACK" (its ValidationError for an
//     unknown logical id, jpsim/AWSPics#14), "Rate exceeded" with code Throttling, and
//     AccessDenied (HTTP 403) "User: … is not authorized to perform:
//     cloudformation:SignalResource on resource: …". The resource-level "Resource NAME
//     is in CREATE_COMPLETE state and cannot be signaled" follows the stack-level
//     wording (aws/aws-parallelcluster#1356 reports it for a completed resource).
//
// Errors are Query API error documents, ErrorResponse/Error/{Type,Code,Message} and
// RequestId, as the SDK's awsquery deserializer reads them.
package cfnsignaltest

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Stack statuses the stand-in uses (DescribeStacks' StackStatus values).
const (
	CreateInProgress         = "CREATE_IN_PROGRESS"
	CreateComplete           = "CREATE_COMPLETE"
	CreateFailed             = "CREATE_FAILED"
	RollbackComplete         = "ROLLBACK_COMPLETE"
	UpdateInProgress         = "UPDATE_IN_PROGRESS"
	UpdateComplete           = "UPDATE_COMPLETE"
	UpdateFailed             = "UPDATE_FAILED"
	UpdateRollbackComplete   = "UPDATE_ROLLBACK_COMPLETE"
	DeleteComplete           = "DELETE_COMPLETE"
	inProgressSuffix         = "_IN_PROGRESS"
	defaultAccount           = "123456789012"
	defaultRegion            = "us-east-1"
	defaultStackUUIDTemplate = "00000000-0000-4000-8000-%012d"
)

// Config is what the stand-in starts with. Its JSON form is fakecfn's -config file.
type Config struct {
	// Region and Account make up the stacks' ARNs; Region, when set, is also the
	// region a request must be signed for. Defaults: us-east-1, 123456789012.
	Region  string `json:"region,omitempty"`
	Account string `json:"account,omitempty"`
	// Stacks are the stacks that exist.
	Stacks []Stack `json:"stacks"`
	// Rate and Burst throttle the whole account (a token bucket: Burst requests at
	// once, then Rate a second); a request over the rate is answered Throttling.
	// Rate 0: no throttling.
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
	// Deny lists the UniqueIds (instance ids) whose credentials lack
	// cloudformation:SignalResource; "*" denies every request.
	Deny []string `json:"deny,omitempty"`
	// Credentials, when not empty, are the only access keys known: a request signed
	// with another is refused (InvalidClientTokenId), and the signature of one signed
	// with a known key is checked. Empty: any well-formed SigV4 signature passes.
	Credentials []aws.Credentials `json:"credentials,omitempty"`
	// Script answers the nth request with Script[n-1] before anything else is looked
	// at, for the transient failures no state explains; FaultNone (or a request past
	// its end) is answered from the state.
	Script []Fault `json:"script,omitempty"`
}

// Stack is a stack and the resources that may be signalled.
type Stack struct {
	// Name is the stack's name; ID its ARN, made up from Name when empty.
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
	// Status is the stack's status, such as CREATE_IN_PROGRESS or CREATE_COMPLETE.
	// DELETE_COMPLETE: the stack is found by its ARN only.
	Status    string     `json:"status"`
	Resources []Resource `json:"resources"`
}

// Resource is a stack resource.
type Resource struct {
	LogicalID string `json:"logical_id"`
	// Status is the resource's status: CREATE_IN_PROGRESS (or UPDATE_IN_PROGRESS)
	// while its policy waits.
	Status string `json:"status"`
	// Count is the number of SUCCESS signals its CreationPolicy (or UpdatePolicy with
	// WaitOnResourceSignals) waits for; 0: no policy waits for signals.
	Count int `json:"count,omitempty"`
	// Signals are the UniqueIds counted so far, each once, with their status.
	Signals map[string]string `json:"signals,omitempty"`
}

// Waiting says whether a policy waits for a signal to r.
func (r Resource) Waiting() bool {
	return r.Count > 0 && strings.HasSuffix(r.Status, inProgressSuffix)
}

// Successes counts r's SUCCESS signals.
func (r Resource) Successes() int {
	n := 0
	for _, s := range r.Signals {
		if s == "SUCCESS" {
			n++
		}
	}
	return n
}

// Waiting returns a Stack named name, being created, whose resource logicalID waits
// for count signals: the state of a stack whose Auto Scaling group has a
// CreationPolicy.
func Waiting(name, logicalID string, count int) Stack {
	return Stack{Name: name, Status: CreateInProgress, Resources: []Resource{
		{LogicalID: logicalID, Status: CreateInProgress, Count: count},
	}}
}

// Complete returns a Stack named name whose creation is over, with the resource
// logicalID in it: what a scale-out or a replacement instance finds.
func Complete(name, logicalID string) Stack {
	return Stack{Name: name, Status: CreateComplete, Resources: []Resource{
		{LogicalID: logicalID, Status: CreateComplete},
	}}
}

// withDefaults fills in the account, the region and the stacks' ARNs, and copies
// the stacks so that the stand-in never changes the caller's Config.
func (c Config) withDefaults() (Config, error) {
	if c.Account == "" {
		c.Account = defaultAccount
	}
	region := c.Region
	if region == "" {
		region = defaultRegion
	}
	if c.Rate < 0 || c.Burst < 0 {
		return c, fmt.Errorf("rate %v and burst %d must not be negative", c.Rate, c.Burst)
	}
	if c.Rate > 0 && c.Burst == 0 {
		c.Burst = 1
	}
	stacks := make([]Stack, len(c.Stacks))
	for i, s := range c.Stacks {
		if s.Name == "" || s.Status == "" {
			return c, fmt.Errorf("stack %d: name and status are required", i+1)
		}
		if s.ID == "" {
			s.ID = fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/"+defaultStackUUIDTemplate, region, c.Account, s.Name, i+1)
		}
		res := make([]Resource, len(s.Resources))
		for j, r := range s.Resources {
			if r.LogicalID == "" || r.Status == "" {
				return c, fmt.Errorf("stack %s, resource %d: logical_id and status are required", s.Name, j+1)
			}
			sig := make(map[string]string, len(r.Signals))
			for k, v := range r.Signals {
				sig[k] = v
			}
			r.Signals = sig
			res[j] = r
		}
		s.Resources = res
		stacks[i] = s
	}
	c.Stacks = stacks
	return c, nil
}

// completed is the status a resource or a stack takes when its wait succeeds, from
// the one it had while in progress.
func completed(status string) string {
	return strings.TrimSuffix(status, inProgressSuffix) + "_COMPLETE"
}

// failed is the status a resource takes on a FAILURE signal.
func failed(status string) string {
	return strings.TrimSuffix(status, inProgressSuffix) + "_FAILED"
}

// rolledBack is the status a stack ends in after a FAILURE signal: CloudFormation
// rolls it back (ROLLBACK_COMPLETE after a failed creation, UPDATE_ROLLBACK_COMPLETE
// after a failed update). The stand-in skips the *_IN_PROGRESS steps between.
func rolledBack(status string) string {
	if strings.HasPrefix(status, "UPDATE") {
		return UpdateRollbackComplete
	}
	return RollbackComplete
}
