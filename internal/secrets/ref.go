// Package secrets resolves references to secrets kept in AWS: an input such as
// PROXY_URL or ECS_ENGINE_AUTH_DATA may name, instead of holding its value, an SSM
// Parameter Store parameter (ssm:NAME, decrypted when it is a SecureString) or a
// Secrets Manager secret (secretsmanager:SECRET_ID), optionally a key of the JSON
// object either holds (#KEY). See the README, "Secrets from SSM Parameter Store and
// Secrets Manager".
//
// The core is pure: Parse reads a reference, Extract picks a JSON key. The side effects
// sit behind Getter, whose real implementation is Client (the AWS SDK v2's SSM and
// Secrets Manager clients, signed with the instance role, never through a proxy, every
// wait bounded); Resolve ties the two together and names, on failure, the reference
// and the API's error.
package secrets

import (
	"fmt"
	"regexp"
	"strings"
)

// Service is where a reference points.
type Service string

// Services.
const (
	// SSM is AWS Systems Manager Parameter Store (GetParameter, WithDecryption).
	SSM Service = "ssm"
	// SecretsManager is AWS Secrets Manager (GetSecretValue, AWSCURRENT).
	SecretsManager Service = "secretsmanager"
)

// Name is how the service is named in messages.
func (s Service) Name() string {
	if s == SSM {
		return "SSM Parameter Store"
	}
	return "Secrets Manager"
}

// Ref is a parsed reference.
type Ref struct {
	// Text is the reference as given, such as "secretsmanager:prod/proxy#password". It
	// is no secret: logs show it in place of the value it names.
	Text string
	// Service is where the secret lives.
	Service Service
	// ID is the parameter's name (with an optional :version or :label selector) or ARN,
	// or the secret's name or ARN.
	ID string
	// Key is the JSON key whose value is wanted, "" for the whole value.
	Key string
	// Region is the region an ARN names, "" for a name (the run's region then).
	Region string
}

func (r Ref) String() string { return r.Text }

// Prefixes of references.
const (
	SSMPrefix            = "ssm:"
	SecretsManagerPrefix = "secretsmanager:"
)

// Rules, from the services' API references:
//
//   - SSM GetParameter, Name: "The name or Amazon Resource Name (ARN) of the parameter",
//     1-2048 characters; "name:label" or "name:version" selects a label or version.
//     Parameter names hold "a-zA-Z0-9_.-" and "/" for hierarchies (User Guide, "Creating
//     Parameter Store parameters"); /aws/reference/secretsmanager/SECRET reads a Secrets
//     Manager secret through Parameter Store, so a secret name's characters (+ = @) are
//     let through too.
//   - Secrets Manager GetSecretValue, SecretId: "The ARN or name of the secret", 1-2048
//     characters; secret names hold "alphanumeric characters and the characters
//     /_+=.@-" (CreateSecret, Name), so '#' can never be part of one.
var (
	ssmName    = regexp.MustCompile(`^[A-Za-z0-9_.\-/+=@]+(:[A-Za-z0-9_.\-]+)?$`)
	ssmARN     = regexp.MustCompile(`^arn:aws[a-z-]*:ssm:([a-z]{2}(-[a-z]+)+-[0-9]{1,2}):[0-9]{12}:parameter/[A-Za-z0-9_.\-/+=@]+(:[A-Za-z0-9_.\-]+)?$`)
	secretName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)
	secretARN  = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:([a-z]{2}(-[a-z]+)+-[0-9]{1,2}):[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$`)
	// anyARN is an ARN of either service given without a prefix.
	anyARN = regexp.MustCompile(`^arn:aws[a-z-]*:(ssm|secretsmanager):`)
)

// maxID is GetParameter's and GetSecretValue's longest name or ARN.
const maxID = 2048

// nearMisses are prefixes that look meant as a reference but are not one: the value
// would otherwise be written as it is, a reference where a secret belongs.
var nearMisses = []string{"ssm-secure", "ssm-parameter", "parameter", "parameterstore", "secretmanager", "secrets-manager", "secrets_manager", "secret", "secrets", "sm", "asm"}

// Parse reads s as a reference. ok is false when s is not meant as one (a plain value);
// err, with ok true, says why a value meant as a reference is not a valid one, without
// repeating anything but the reference itself.
//
// The syntax is ssm:NAME or secretsmanager:SECRET_ID, each optionally followed by #KEY
// to pick the value of a key of the JSON object the parameter or secret holds. A value
// is meant as a reference when it starts with one of the two prefixes, with either in
// another case, with a near miss of them (secretmanager:, ssm-secure:, …), with a
// CloudFormation dynamic reference ({{resolve:…}}) or is an ARN of either service:
// all of these are refused rather than written in clear where a secret was meant.
func Parse(s string) (ref Ref, ok bool, err error) {
	scheme, rest, hasColon := strings.Cut(s, ":")
	switch {
	case strings.HasPrefix(s, "{{resolve:"):
		return Ref{}, true, fmt.Errorf("is a CloudFormation dynamic reference, which only CloudFormation resolves (and then in clear, in user data): name the secret as ssm:NAME or secretsmanager:SECRET_ID instead")
	case anyARN.MatchString(s):
		svc := strings.Split(s, ":")[2]
		return Ref{}, true, fmt.Errorf("is an ARN without a prefix: write %s:%s to read it", svc, s)
	case !hasColon:
		return Ref{}, false, nil
	case scheme == string(SSM) || scheme == string(SecretsManager):
	case strings.EqualFold(scheme, string(SSM)) || strings.EqualFold(scheme, string(SecretsManager)):
		return Ref{}, true, fmt.Errorf("starts with %q: references start with %s or %s, in lower case", scheme+":", SSMPrefix, SecretsManagerPrefix)
	default:
		for _, m := range nearMisses {
			if strings.EqualFold(scheme, m) {
				return Ref{}, true, fmt.Errorf("starts with %q, which is no reference: write %sNAME for a Parameter Store parameter or %sSECRET_ID for a Secrets Manager secret", scheme+":", SSMPrefix, SecretsManagerPrefix)
			}
		}
		return Ref{}, false, nil
	}
	ref = Ref{Text: s, Service: Service(scheme)}
	id, key, hasKey := strings.Cut(rest, "#")
	ref.ID, ref.Key = id, key
	switch {
	case id == "":
		return Ref{}, true, fmt.Errorf("names no %s: %sNAME", ref.Service.what(), scheme+":")
	case hasKey && key == "":
		return Ref{}, true, fmt.Errorf("ends with '#' but names no JSON key: %s:%s#KEY, or no '#' for the whole value", scheme, id)
	case strings.TrimSpace(s) != s || strings.ContainsAny(id, " \t"):
		return Ref{}, true, fmt.Errorf("holds white space, which no %s may", ref.Service.what())
	case len(id) > maxID:
		return Ref{}, true, fmt.Errorf("names a %s of %d characters: at most %d", ref.Service.what(), len(id), maxID)
	}
	switch ref.Service {
	case SSM:
		if m := ssmARN.FindStringSubmatch(id); m != nil {
			ref.Region = m[1]
		} else if strings.HasPrefix(id, "arn:") || !ssmName.MatchString(id) {
			return Ref{}, true, fmt.Errorf("is not a parameter name (letters, digits and _ . - / + = @, with an optional :VERSION or :LABEL) or parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)")
		}
	case SecretsManager:
		if m := secretARN.FindStringSubmatch(id); m != nil {
			ref.Region = m[1]
		} else if strings.HasPrefix(id, "arn:") || !secretName.MatchString(id) {
			return Ref{}, true, fmt.Errorf("is not a secret name (letters, digits and / _ + = . @ -) or secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX)")
		}
	}
	return ref, true, nil
}

// what names what a reference of the service points to.
func (s Service) what() string {
	if s == SSM {
		return "parameter"
	}
	return "secret"
}
