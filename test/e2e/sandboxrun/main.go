// Command sandboxrun boots one end-to-end sandbox (see package sandbox), runs a
// command in it, prints its output, and powers it off; with -wait it keeps the sandbox
// up until Ctrl-C and prints how to enter it. For debugging, as root:
//
//	go run ./test/e2e/sandboxrun -- systemctl list-unit-files --state=disabled
//	go run ./test/e2e/sandboxrun -wait
//
// Its exit status is the command's, or 1 when the sandbox could not run it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

func main() {
	cache := flag.String("cache", sandbox.DefaultCacheDir(), "rootfs cache directory")
	bin := flag.String("bin", "", "directory bound at /opt/sandbox/bin (default: build the binaries into a temporary one)")
	console := flag.Bool("console", false, "show the container's console output on stderr")
	wait := flag.Bool("wait", false, "after the command, keep the sandbox up until Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: sandboxrun [flags] [-- command args...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	os.Exit(run(*cache, *bin, *console, *wait, flag.Args()))
}

func run(cache, bin string, console, wait bool, command []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sandbox.Requirements(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if bin == "" {
		dir, err := os.MkdirTemp("", "sandboxrun-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := sandbox.BuildBinaries(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bin = dir
	}
	cfg := sandbox.Config{CacheDir: cache, BinDir: bin}
	if console {
		cfg.Stdout, cfg.Stderr = os.Stderr, os.Stderr
	}
	start := time.Now()
	s, err := sandbox.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fmt.Fprintf(os.Stderr, "sandboxrun: %s booted in %s\n", s.Name(), time.Since(start).Round(time.Millisecond))

	code := 0
	if len(command) > 0 {
		stdout, stderr, exit, err := s.Exec(ctx, os.Stdin, command...)
		os.Stdout.Write(stdout)
		os.Stderr.Write(stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		code = exit
	}
	if wait {
		fmt.Fprintf(os.Stderr, "sandboxrun: up; enter with\n  nsenter -t %d -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=%s bash\nCtrl-C stops it.\n",
			s.PID1(), os.Getenv("TERM"))
		<-ctx.Done()
	}
	return code
}
