// Command demo shows firstrun's main job on a booted sandbox instance (package
// sandbox): a Debian systemd container with the real dockerd, an ecs.service shaped
// like Amazon Linux's running a fake ECS agent, and a CloudWatch agent stand-in. It
// builds firstrun, boots the sandbox, runs firstrun with the example inputs, shows its
// log, `firstrun --check`, what docker and the agent got, and a rerun that changes
// nothing, then powers the sandbox off. `make demo` runs it; it needs root.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/firstrun/firstrun/internal/testenv"
	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

const firstrun = sandbox.BinMount + "/firstrun"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) {
	fmt.Printf("\n\033[1m== %s\033[0m\n", fmt.Sprintf(format, a...))
}

func demo(ctx context.Context) error {
	if err := sandbox.Requirements(); err != nil {
		return fmt.Errorf("the sandbox cannot run here: %w\n(make demo-root shows firstrun on a temporary root instead, without root)", err)
	}
	step("Build firstrun, the fake ECS agent and the CloudWatch agent stand-in")
	bin, err := os.MkdirTemp("", "firstrun-demo-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := sandbox.BuildBinaries(ctx, bin); err != nil {
		return err
	}
	step("Sandbox root filesystem (debootstrap, cached in %s; a few minutes the first time)", sandbox.DefaultCacheDir())
	t0 := time.Now()
	rootfs, err := sandbox.Rootfs(ctx, sandbox.DefaultCacheDir())
	if err != nil {
		return err
	}
	fmt.Printf("%s (%s)\n", rootfs, time.Since(t0).Round(time.Millisecond))

	step("Boot it with systemd-nspawn")
	t0 = time.Now()
	s, err := sandbox.Start(ctx, sandbox.Config{CacheDir: sandbox.DefaultCacheDir(), BinDir: bin})
	if err != nil {
		return err
	}
	defer func() {
		step("Power off; the sandbox's writes are thrown away")
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fmt.Printf("%s running in %s\n", s.Name(), time.Since(t0).Round(time.Millisecond))

	sh := func(cmd string) error {
		out, errOut, code, err := s.Exec(ctx, nil, "sh", "-c", cmd)
		if err != nil {
			return err
		}
		os.Stdout.Write(out)
		os.Stdout.Write(errOut)
		if code != 0 {
			fmt.Printf("(exit code %d)\n", code)
		}
		return nil
	}

	step("Before firstrun: like a freshly baked ECS AMI, nothing enabled, nothing configured")
	if err := sh("for u in docker ecs amazon-cloudwatch-agent; do printf '%-32s %s, %s\\n' $u.service $(systemctl is-enabled $u) $(systemctl is-active $u); done; ls -A /etc/ecs"); err != nil {
		return err
	}

	example := filepath.Join(testenv.RepoRoot(), "examples", "firstrun.env")
	env, err := os.ReadFile(example)
	if err != nil {
		return err
	}
	env = append(env, "# The sandbox has no instance metadata service.\nFIRSTRUN_IMDS=off\n"...)
	step("Inputs: /etc/firstrun/firstrun.env (%s)", strings.TrimPrefix(example, testenv.RepoRoot()+"/"))
	fmt.Print(string(env))
	if err := s.WriteFile(ctx, "/etc/firstrun/firstrun.env", env, 0o600); err != nil {
		return err
	}

	step("firstrun: configure, start the services, wait for the agent to join the cluster")
	t0 = time.Now()
	if err := sh(firstrun + " 2>&1"); err != nil {
		return err
	}
	fmt.Printf("(%s)\n", time.Since(t0).Round(time.Millisecond))

	step("firstrun --check: what an operator runs over SSH")
	if err := sh(firstrun + " --check"); err != nil {
		return err
	}

	step("What the services got")
	if err := sh(`docker info --format 'dockerd: HTTP proxy {{.HTTPProxy}}, no proxy {{.NoProxy}}'
tr '\0' '\n' < /proc/$(systemctl show -p MainPID --value ecs)/environ | grep -E '^(ECS_CLUSTER|HTTP_PROXY)=' | sed 's/^/ecs.service: /'
echo "agent: $(curl -sS --noproxy '*' http://127.0.0.1:51678/v1/metadata)"`); err != nil {
		return err
	}

	step("Run again: nothing written, nothing restarted")
	if err := sh(firstrun + ` 2>&1 | grep -E '"action"|registered|firstrun done'`); err != nil {
		return err
	}
	return nil
}
