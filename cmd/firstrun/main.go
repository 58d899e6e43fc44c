// Command firstrun turns a freshly booted Amazon ECS container instance into a member
// of its cluster: it resolves its inputs, renders the ECS agent, proxy and log agent
// configuration, and writes what differs, atomically. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/firstrun/firstrun/internal/logging"
	"github.com/firstrun/firstrun/internal/runner"
	"github.com/firstrun/firstrun/internal/runrecord"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the exit: it parses args, runs firstrun (or its check) and
// returns the exit code. env holds KEY=value strings, as os.Environ returns them.
func run(args, env []string, stdout, stderr io.Writer) int {
	opts, code, done := parseFlags(args, stdout, stderr)
	if done {
		return code
	}
	log, err := logging.New(stderr, opts.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "firstrun: %v\n", err)
		return runrecord.ExitUsage
	}
	defer log.Sync() //nolint:errcheck // stderr cannot be synced on every system

	// SIGTERM or SIGINT stops the run between phases; a phase under way finishes (every
	// file write is atomic) or, when it waits, returns at once through the context.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	r := runner.New(opts.Options, env, stdout, stderr, runner.RealDeps(opts.Root))
	defer r.Close()
	if opts.check {
		return r.Check(ctx, log)
	}
	return r.Run(ctx, log)
}
