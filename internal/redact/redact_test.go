package redact

import (
	"strconv"
	"strings"
	"testing"
)

func TestTextHidesSecrets(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"proxy URL in a setting",
			"HTTP_PROXY=http://bob:hunter2@proxy.internal:3128",
			"HTTP_PROXY=http://bob:REDACTED@proxy.internal:3128"},
		{"https URL with escaped password",
			"HTTPS_PROXY=https://bob:p%40ss@proxy.internal:3128",
			"HTTPS_PROXY=https://bob:REDACTED@proxy.internal:3128"},
		{"systemd drop-in",
			"[Service]\nEnvironment=\"HTTP_PROXY=http://bob:hunter2@proxy:3128\"\nEnvironment=\"NO_PROXY=169.254.169.254\"\n",
			"[Service]\nEnvironment=\"HTTP_PROXY=http://bob:REDACTED@proxy:3128\"\nEnvironment=\"NO_PROXY=169.254.169.254\"\n"},
		{"two URLs on a line",
			"from http://a:hunter2@p1:3128 to https://b:s3cret@p2:8443",
			"from http://a:REDACTED@p1:3128 to https://b:REDACTED@p2:8443"},
		{"URL in an error message",
			`parse "http://bob:hunter2@proxy:3128": invalid port`,
			`parse "http://bob:REDACTED@proxy:3128": invalid port`},
		{"auth data line of ecs.config",
			"ECS_CLUSTER=prod\nECS_ENGINE_AUTH_DATA={\"https://index.docker.io/v1/\":{\"username\":\"bob\",\"password\":\"hunter2\"}}\nECS_LOGLEVEL=debug\n",
			"ECS_CLUSTER=prod\nECS_ENGINE_AUTH_DATA=REDACTED\nECS_LOGLEVEL=debug\n"},
		{"auth data with spaces on its line",
			"ECS_ENGINE_AUTH_DATA={\"a\": {\"password\": \"hunter 2\"}}",
			"ECS_ENGINE_AUTH_DATA=REDACTED"},
		{"quoted systemd assignment with escapes",
			`Environment="ECS_ENGINE_AUTH_DATA={\"a\":\"hunter2\"}" "OTHER=1"`,
			`Environment="ECS_ENGINE_AUTH_DATA=REDACTED" "OTHER=1"`},
		{"password setting",
			"DB_PASSWORD=hunter2",
			"DB_PASSWORD=REDACTED"},
		{"secret and token settings in text",
			"keys AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI and AWS_SESSION_TOKEN=FwoGZX end",
			"keys AWS_SECRET_ACCESS_KEY=REDACTED and AWS_SESSION_TOKEN=REDACTED end"},
		{"indented line",
			"  ECS_ENGINE_AUTH_TYPE=dockercfg\n  ECS_ENGINE_AUTH_DATA={\"x\":1}\n",
			"  ECS_ENGINE_AUTH_TYPE=dockercfg\n  ECS_ENGINE_AUTH_DATA=REDACTED\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(tc.in); got != tc.want {
				t.Errorf("Text(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			for _, secret := range []string{"hunter2", "hunter 2", "s3cret", "p%40ss", "wJalrXUtnFEMI", "FwoGZX"} {
				if strings.Contains(Text(tc.in), secret) {
					t.Errorf("Text(%q) shows %q", tc.in, secret)
				}
			}
		})
	}
}

func TestTextLeavesOtherTextAlone(t *testing.T) {
	for _, s := range []string{
		"",
		"ECS_CLUSTER=prod\nECS_LOGLEVEL=debug\nECS_ENABLE_TASK_IAM_ROLE=true\n",
		"HTTP_PROXY=http://proxy.internal:3128\nNO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n",
		"HTTP_PROXY=http://bob@proxy.internal:3128", // a user without a password
		"[::1]:3128 and http://[fd00:ec2::254]:80/latest/api/token",
		"mail bob@example.com or see https://docs.aws.amazon.com/AmazonECS/latest/developerguide/http_proxy_config.html",
		"git@github.com:aws/amazon-ecs-agent.git",
		"ECS_CLUSTER=TOKEN-SERVICE-prod", // a secret word in a value, not in the key
		"ECS_ENGINE_AUTH_TYPE=dockercfg",
		"/var/log/ecs/ecs-agent.log: 2026-11-22T03:41:35Z [INFO] Registered",
		"ünïcödé line: naïve café",
	} {
		if got := Text(s); got != s {
			t.Errorf("Text(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestValue(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		// Secret keys: the whole value, whatever it is.
		{"ECS_ENGINE_AUTH_DATA", `{"https://index.docker.io/v1/":{"username":"bob","password":"hunter2"}}`, Mask},
		{"ECS_ENGINE_AUTH_DATA", "hunter2\nECS_CLUSTER=evil", Mask},
		{"DB_PASSWORD", "hunter2", Mask},
		{"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI", Mask},
		{"AWS_SESSION_TOKEN", "FwoGZX", Mask},
		{"github_token", "ghp_x", Mask},
		// URL passwords, with or without a scheme.
		{"PROXY_URL", "http://bob:hunter2@proxy.internal:3128", "http://bob:REDACTED@proxy.internal:3128"},
		{"PROXY_URL", "https://bob:p%40ss@proxy.internal:8443", "https://bob:REDACTED@proxy.internal:8443"},
		{"PROXY_URL", "bob:hunter2@proxy.internal:3128", "bob:REDACTED@proxy.internal:3128"},
		{"PROXY_URL", "bob:hunter2@proxy.internal:3128/path", "bob:REDACTED@proxy.internal:3128/path"},
		{"PROXY_URL", "ftp://bob:hunter2@proxy.internal:21", "ftp://bob:REDACTED@proxy.internal:21"},
		// Nothing secret: unchanged.
		{"PROXY_URL", "http://proxy.internal:3128", "http://proxy.internal:3128"},
		{"PROXY_URL", "proxy.internal:3128", "proxy.internal:3128"},
		{"PROXY_URL", "[::1]:3128", "[::1]:3128"},
		{"PROXY_URL", "http://bob@proxy.internal:3128", "http://bob@proxy.internal:3128"},
		{"ECS_CLUSTER", "arn:aws:ecs:us-east-1:123456789012:cluster/prod", "arn:aws:ecs:us-east-1:123456789012:cluster/prod"},
		{"ECS_CLUSTER", "prod cluster\n", "prod cluster\n"},
		{"STACK_NAME", "microtrader", "microtrader"},
		{"ECS_ENGINE_AUTH_TYPE", "dockercfg", "dockercfg"},
		{"FIRSTRUN_NO_PROXY", "10.0.0.0/8,.internal", "10.0.0.0/8,.internal"},
	} {
		if got := Value(tc.key, tc.value); got != tc.want {
			t.Errorf("Value(%s, %q) = %q, want %q", tc.key, tc.value, got, tc.want)
		}
	}
}

func TestIsSecretKey(t *testing.T) {
	for key, want := range map[string]bool{
		"ECS_ENGINE_AUTH_DATA":  true,
		"ECS_ENGINE_AUTH_TYPE":  false,
		"PROXY_PASSWORD":        true,
		"AWS_SECRET_ACCESS_KEY": true,
		"AWS_SESSION_TOKEN":     true,
		"ecs_engine_auth_data":  true,
		"PROXY_URL":             false,
		"ECS_CLUSTER":           false,
		"STACK_NAME":            false,
	} {
		if got := IsSecretKey(key); got != want {
			t.Errorf("IsSecretKey(%s) = %v, want %v", key, got, want)
		}
	}
}

// TestPasswordsWithSpecialCharacters: a proxy password may hold any character (the
// ones a URL reserves percent-encoded, or not, when the user got it wrong); no part of
// it may be shown.
func TestPasswordsWithSpecialCharacters(t *testing.T) {
	for _, v := range []string{
		"http://bob:hun@ter2@proxy:3128",
		"http://bob:hun ter2@proxy:3128",
		"http://bob:hun\"ter2@proxy:3128",
		"http://bob:hun'ter2@proxy:3128",
		"http://bob:hunter2\n@proxy:3128",
		"bob:hun ter2@proxy:3128",
		"bob:hun'ter2@proxy:3128",
	} {
		shown := []string{Value("PROXY_URL", v)}
		if strings.Contains(v, "://") && !strings.Contains(v, "\n") { // Text is for scheme URLs in lines of text
			shown = append(shown, Text(v), Text("parse "+strconv.Quote(v)+": invalid userinfo"))
		}
		for _, got := range shown {
			if strings.Contains(got, "ter2") {
				t.Errorf("%q redacted as %q: shows part of the password", v, got)
			}
		}
	}
}

func TestHasURLPassword(t *testing.T) {
	for s, want := range map[string]bool{
		`{"HTTPS_PROXY": "http://bob:p%40ss@proxy:3128"}`: true,
		"http_proxy = \"https://u:x@p:1\"\n":              true,
		"HTTP_PROXY=http://bob@proxy:3128":                false, // a user name alone
		"HTTP_PROXY=http://proxy:3128":                    false,
		"bob:secret@proxy:3128":                           false, // no scheme: not a URL
		"":                                                false,
	} {
		if got := HasURLPassword(s); got != want {
			t.Errorf("HasURLPassword(%q) = %v, want %v", s, got, want)
		}
	}
}
