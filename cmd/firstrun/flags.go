package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/runner"
	"github.com/firstrun/firstrun/internal/runrecord"
)

// options are the command line flags: a run's options, and whether to check instead.
type options struct {
	runner.Options
	check bool // --check: report, change nothing
}

const usageText = `Usage: firstrun [flags]
       firstrun --check [--output table|json]

Makes this ECS container instance a member of its cluster: writes /etc/ecs/ecs.config,
the proxy settings of docker, the ECS agent and the log agent, and the log agent's
configuration, changing only what differs; starts docker, ecs and the log agent through
systemd (restarting those whose settings changed); and waits, bounded, until the agent
has registered to the cluster. Inputs come from the environment and the env file; the
environment wins. --check changes nothing and reports what does not hold.

Flags:
`

// parseFlags returns the options, or the exit code when the run ends here (help,
// version, usage error).
func parseFlags(args []string, stdout, stderr io.Writer) (options, int, bool) {
	o := options{Options: runner.Options{Version: version}}
	var showVersion bool
	fsFlags := flag.NewFlagSet("firstrun", flag.ContinueOnError)
	fsFlags.SetOutput(io.Discard)
	fsFlags.StringVar(&o.Root, "root", "/", "filesystem root `DIR` to configure (tests and image builds use another)")
	fsFlags.StringVar(&o.EnvFile, "env-file", "", "env `FILE` of KEY=value lines (default "+hostpath.EnvFile+" under --root, if it exists)")
	fsFlags.BoolVar(&o.DryRun, "dry-run", false, "print a unified diff of what would change, and change nothing")
	fsFlags.StringVar(&o.LogFormat, "log-format", logging.Console, "log `FORMAT` on stderr: console or json")
	var skip string
	fsFlags.StringVar(&skip, "skip", "", "comma-separated `PHASES` not to run: "+strings.Join(runner.Skippable, ", ")+" (image builds skip services,health)")
	fsFlags.BoolVar(&o.check, "check", false, "check the files, the units and the agent's registration, print a report and change nothing; exit 0 when all hold")
	fsFlags.StringVar(&o.Output, "output", "table", "--check's report `FORMAT`: table or json")
	fsFlags.BoolVar(&o.Signal, "signal", false, "tell CloudFormation SUCCESS once the agent has joined, FAILURE on any failure (as FIRSTRUN_SIGNAL=true)")
	fsFlags.BoolVar(&showVersion, "version", false, "print the version and exit")
	usage := func(w io.Writer) {
		fmt.Fprint(w, usageText)
		fsFlags.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  %s\n      %s", strings.TrimSpace("--"+f.Name+" "+name), usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
		fmt.Fprint(w, "\nInputs (environment or env file):\n")
		if err := inputs.Usage(w); err != nil {
			fmt.Fprintf(w, "  (cannot list inputs: %v)\n", err)
		}
		fmt.Fprint(w, "  ECS_*\n      Any other ECS agent setting, written to ecs.config as given.\n")
		fmt.Fprint(w, "\nExit codes: 0 done, 1 internal error, 2 invalid input (no configuration written), 3 usage error,\n"+
			"4 files could not be read or written, 5 unsupported platform (Amazon Linux 1), 6 stopped by a signal,\n"+
			"7 a service could not be started (or no systemd), 8 the agent did not register in time,\n"+
			"9 --check found a problem, 10 the run succeeded but the CloudFormation signal failed.\n")
	}
	err := fsFlags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return o, runrecord.ExitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "firstrun: %v\nRun 'firstrun --help' for usage.\n", err)
		return o, runrecord.ExitUsage, true
	case fsFlags.NArg() > 0:
		fmt.Fprintf(stderr, "firstrun: unexpected argument %q: firstrun takes flags only\nRun 'firstrun --help' for usage.\n", fsFlags.Arg(0))
		return o, runrecord.ExitUsage, true
	case showVersion:
		fmt.Fprintf(stdout, "firstrun %s\n", version)
		return o, runrecord.ExitOK, true
	case o.LogFormat != logging.Console && o.LogFormat != logging.JSON:
		fmt.Fprintf(stderr, "firstrun: --log-format %q: want console or json\n", o.LogFormat)
		return o, runrecord.ExitUsage, true
	case o.Root == "":
		fmt.Fprintf(stderr, "firstrun: --root must not be empty\n")
		return o, runrecord.ExitUsage, true
	case o.Output != "table" && o.Output != "json":
		fmt.Fprintf(stderr, "firstrun: --output %q: want table or json\n", o.Output)
		return o, runrecord.ExitUsage, true
	case o.check && o.DryRun:
		fmt.Fprintf(stderr, "firstrun: --check and --dry-run: give one (--check already changes nothing)\n")
		return o, runrecord.ExitUsage, true
	}
	o.Skip = map[string]bool{}
	for _, p := range strings.Split(skip, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case !slices.Contains(runner.Skippable, p):
			fmt.Fprintf(stderr, "firstrun: --skip %q: %q is not a phase that can be skipped (%s)\n", skip, p, strings.Join(runner.Skippable, ", "))
			return o, runrecord.ExitUsage, true
		default:
			o.Skip[p] = true
		}
	}
	return o, runrecord.ExitOK, false
}
