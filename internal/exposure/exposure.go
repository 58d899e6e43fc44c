// Package exposure finds secrets where they should not be, for --check's warnings:
// proxy credentials (a scheme://user:password@ URL) that every local user can read
// (Find), and secret settings or the values that references resolved to in such files
// or in the env file (FindSecrets). Proxy credentials are exposed two ways:
//
//   - a file readable by others (and every directory above it searchable). firstrun
//     writes its own files that hold the proxy 0600, but the CloudWatch agent's config
//     translator copies common-config.toml's [proxy] into env-config.json with mode
//     0644 at each start (aws/amazon-cloudwatch-agent translator/cmdutil
//     TranslateJsonMapToEnvConfigFile), which firstrun cannot change; and an operator
//     may chmod a file;
//   - a systemd unit drop-in, whatever its mode: every unit setting is a unit property
//     that systemd shows to every local user over D-Bus (systemd.exec(5), Environment=:
//     "exposed to unprivileged clients via D-Bus IPC"; `systemctl show docker`). firstrun
//     wrote its proxy as Environment= lines in its drop-ins before it used env files; a
//     drop-in still holding one is exposed until firstrun runs again.
package exposure

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/redact"
	"github.com/firstrun/firstrun/internal/secrets"
)

// Paths are the host paths that may hold the proxy URL: the files firstrun writes it
// into, its env file, and what the CloudWatch agent's translator derives from them.
var Paths = []string{
	hostpath.EnvFile,
	hostpath.ECSConfig,
	hostpath.ECSProxyEnv,
	hostpath.ECSProxyDropIn,
	hostpath.DockerProxyEnv,
	hostpath.DockerProxyDropIn,
	hostpath.CloudWatchCommonConfig,
	hostpath.CloudWatchEnvConfig,
	hostpath.AwslogsProxyConfig,
}

// unitSettings are the paths among Paths whose settings systemd shows as unit
// properties: a password there is exposed whatever the file's mode.
var unitSettings = []string{hostpath.ECSProxyDropIn, hostpath.DockerProxyDropIn}

// firstrunWrites are the paths among Paths that firstrun writes: a rerun rewrites them
// (0600, and no password in a drop-in).
var firstrunWrites = []string{
	hostpath.ECSConfig, hostpath.ECSProxyEnv, hostpath.ECSProxyDropIn, hostpath.DockerProxyEnv,
	hostpath.DockerProxyDropIn, hostpath.CloudWatchCommonConfig, hostpath.AwslogsProxyConfig,
}

// maxRead bounds what is read of a file: these are small configuration files.
const maxRead = 1 << 20

// Finding is a file holding a proxy credential that any local user can read.
type Finding struct {
	// Path is the host path.
	Path string
	// Mode is the file's permission bits.
	Mode fs.FileMode
	// UnitSetting says the file is a systemd drop-in: systemd shows its settings to
	// every local user, whatever Mode is.
	UnitSetting bool
}

func (f Finding) String() string {
	if f.UnitSetting {
		return fmt.Sprintf("%s (a unit setting: systemctl show shows it to every local user)", f.Path)
	}
	return fmt.Sprintf("%s (mode %04o)", f.Path, f.Mode)
}

// Find returns, among paths under root, the regular files that hold a URL with a
// password and that every local user can read: a systemd drop-in whatever its mode
// (its settings are unit properties); any other file when it is readable by others and
// each directory above it, up to the root, searchable by others. Missing files are
// skipped; a file that cannot be read is an error naming it (the others are still
// checked).
func Find(root hostpath.Root, paths []string) ([]Finding, error) {
	var out []Finding
	var errs []error
	for _, p := range paths {
		unit := slices.Contains(unitSettings, p)
		fi, data, err := readExposed(root, p, unit)
		if err != nil {
			errs = append(errs, err)
		}
		if fi != nil && redact.HasURLPassword(string(data)) {
			out = append(out, Finding{Path: p, Mode: fi.Mode().Perm(), UnitSetting: unit})
		}
	}
	return out, errors.Join(errs...)
}

// readExposed returns the head of the file at host path p under root, with its
// information, when it is a regular file that every local user can read (or any regular
// file, when always); nil information otherwise: missing, not regular, not readable by
// others, or an error (returned, naming the file).
func readExposed(root hostpath.Root, p string, always bool) (fs.FileInfo, []byte, error) {
	real := root.Join(p)
	fi, err := os.Lstat(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() || (!always && !worldReadable(string(root), real, fi.Mode())) {
		return nil, nil, nil
	}
	data, err := readHead(real)
	if err != nil {
		return nil, nil, err
	}
	return fi, data, nil
}

// worldReadable says others may read the file and search every directory above it
// within root.
func worldReadable(root, real string, mode fs.FileMode) bool {
	if mode.Perm()&0o004 == 0 {
		return false
	}
	root = filepath.Clean(root)
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if dir == root || dir == filepath.Dir(dir) {
			return true
		}
	}
}

func readHead(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRead))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return data, nil
}

// Report runs Find over Paths under root and says, for --check, whether a proxy
// password is exposed: ok is false when one is found or a file could not be read, and
// detail says where, and what can be done about each, or why it is unknown.
func Report(root hostpath.Root) (ok bool, detail string) {
	found, err := Find(root, Paths)
	detail = "in no file that every local user can read"
	if len(found) > 0 {
		names := make([]string, len(found))
		var own, envFile, agent bool
		for i, f := range found {
			names[i] = f.String()
			own = own || slices.Contains(firstrunWrites, f.Path)
			envFile = envFile || f.Path == hostpath.EnvFile
			agent = agent || f.Path == hostpath.CloudWatchEnvConfig
		}
		detail = "any local user can read the proxy password in " + strings.Join(names, ", ")
		if own {
			detail += "; rerun firstrun: it writes its own files 0600 and keeps the password out of unit settings"
		}
		if envFile {
			detail += "; chmod 600 " + hostpath.EnvFile
		}
		if agent {
			detail += "; firstrun cannot change what the CloudWatch agent writes: prefer a proxy that needs no password"
		}
	}
	if err != nil {
		if len(found) == 0 {
			detail = "unknown"
		}
		detail += "; could not read: " + err.Error()
	}
	return len(found) == 0 && err == nil, detail
}

// Owned are the host paths of firstrun's own files, besides those it renders (which the
// state file lists): none may ever hold a secret.
var Owned = []string{hostpath.StateFile, hostpath.LastRun, hostpath.FirstrunLog, hostpath.MetricsLog}

// secretSetting is a KEY=value setting whose name marks its value as secret (as
// redact.IsSecretKey), in env files, ecs.config and drop-ins alike.
var secretSetting = regexp.MustCompile(`(?m)^\s*"?(?:Environment=")?([A-Za-z0-9_]*(?:AUTH_DATA|PASSWORD|SECRET|TOKEN)[A-Za-z0-9_]*)=(.*)$`)

// SecretFinding is a secret where it should not be.
type SecretFinding struct {
	// Path is the file (a host path, or the env file as given).
	Path string
	// Mode is the file's permission bits.
	Mode fs.FileMode
	// What names the secret without showing it: the reference whose value it is, or
	// the setting that holds it.
	What string
	// EnvFile says the file is the env file, where a resolved value should never be.
	EnvFile bool
}

func (f SecretFinding) String() string {
	if f.EnvFile {
		return fmt.Sprintf("the env file %s holds %s in clear: keep only the reference there", f.Path, f.What)
	}
	if f.Path == hostpath.CloudWatchEnvConfig {
		return fmt.Sprintf("any local user can read %s in %s (mode %04o), written by the CloudWatch agent from common-config.toml's [proxy] at each start, which firstrun cannot change", f.What, f.Path, f.Mode)
	}
	return fmt.Sprintf("any local user can read %s in %s (mode %04o): chmod 600 it, or rerun firstrun if it wrote it", f.What, f.Path, f.Mode)
}

// FindSecrets returns the secrets found where they should not be: among paths under
// root, in the regular files every local user can read (as Find), the values of
// resolved references (resolved: reference → value) and secret settings
// (ECS_ENGINE_AUTH_DATA=…, *PASSWORD*=…, with a value that is neither empty, a
// reference nor redacted); and in envFile (a real path, whatever its mode) a resolved
// value, which the reference was meant to keep out of it. A file that cannot be read
// is an error naming it (the others are still checked).
func FindSecrets(root hostpath.Root, paths []string, envFile string, resolved map[string]string) ([]SecretFinding, error) {
	var out []SecretFinding
	var errs []error
	refs := make([]string, 0, len(resolved))
	for ref := range resolved {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[root.Join(p)] {
			continue
		}
		seen[root.Join(p)] = true
		fi, data, err := readExposed(root, p, false)
		if err != nil {
			errs = append(errs, err)
		}
		if fi == nil {
			continue
		}
		for _, ref := range refs {
			if v := resolved[ref]; len(v) >= redact.MinHidden && strings.Contains(string(data), v) {
				out = append(out, SecretFinding{Path: p, Mode: fi.Mode().Perm(), What: "the value of " + ref})
			}
		}
		for _, m := range secretSetting.FindAllStringSubmatch(string(data), -1) {
			v := strings.Trim(strings.TrimSpace(m[2]), `"'`)
			if _, isRef, _ := secrets.Parse(v); v != "" && v != redact.Mask && !isRef {
				out = append(out, SecretFinding{Path: p, Mode: fi.Mode().Perm(), What: "a value of " + m[1]})
				break
			}
		}
	}
	if envFile != "" && len(resolved) > 0 {
		fi, err := os.Stat(envFile)
		if err == nil {
			data, rerr := readHead(envFile)
			if rerr != nil {
				errs = append(errs, rerr)
			}
			for _, ref := range refs {
				if v := resolved[ref]; len(v) >= redact.MinHidden && strings.Contains(string(data), v) {
					out = append(out, SecretFinding{Path: envFile, Mode: fi.Mode().Perm(), What: "the value of " + ref, EnvFile: true})
				}
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// SecretsReport runs FindSecrets and says, for --check, whether a secret is where it
// should not be: ok is false when one is found or a file could not be read; detail
// says where (never the secret), or why it is unknown.
func SecretsReport(root hostpath.Root, paths []string, envFile string, resolved map[string]string) (ok bool, detail string) {
	found, err := FindSecrets(root, paths, envFile, resolved)
	detail = "none in a file every local user can read"
	if len(resolved) > 0 {
		detail += fmt.Sprintf(" nor in the env file (%d resolved from references)", len(resolved))
	}
	if len(found) > 0 {
		names := make([]string, len(found))
		for i, f := range found {
			names[i] = f.String()
		}
		detail = strings.Join(names, "; ")
	}
	if err != nil {
		if len(found) == 0 {
			detail = "unknown"
		}
		detail += "; could not read: " + err.Error()
	}
	return len(found) == 0 && err == nil, detail
}
