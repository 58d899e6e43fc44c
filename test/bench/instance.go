package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/firstrun/firstrun/internal/cfnsignal/cfnsignaltest"
	"github.com/firstrun/firstrun/test/e2e/sandbox"
	"github.com/firstrun/firstrun/test/imdsmock"
)

// fullRun is a full firstrun run on a booted sandbox instance, as on EC2: inputs
// discovered from AWS's IMDS mock (tags and identity document), the files written,
// docker, ecs and the CloudWatch agent started over systemd's D-Bus, the fake agent
// waited for, and SUCCESS signalled to the CloudFormation stand-in with the instance
// role's credentials from the mock.
type fullRun struct {
	Sample sample
	// TokenPUTs and GETs are the requests the IMDS mock received during the run.
	TokenPUTs, GETs int
	// Trace is what strace saw in a second run, on a second instance.
	Trace traceCounts
}

// The sandbox's stand-ins for AWS.
const (
	mockPort = 1338
	cfnAddr  = "127.0.0.1:8081"
)

// measureFullRun boots an instance, runs firstrun once to measure it and count the
// IMDS requests, then boots another to run it under strace.
// The trace is kept in traceDir.
func measureFullRun(ctx context.Context, binDir, traceDir string) (fullRun, error) {
	var fr fullRun
	plain, err := onInstance(ctx, binDir, "")
	if err != nil {
		return fr, err
	}
	traced, err := onInstance(ctx, binDir, filepath.Join(traceDir, "full-run.strace"))
	if err != nil {
		return fr, err
	}
	plain.Trace = traced.Trace
	return plain, nil
}

// onInstance boots an instance with the AWS stand-ins and runs firstrun there once,
// under strace writing to traceFile when it is not "".
func onInstance(ctx context.Context, binDir, traceFile string) (fr fullRun, err error) {
	trace := traceFile != ""
	s, err := sandbox.Start(ctx, sandbox.Config{CacheDir: sandbox.DefaultCacheDir(), BinDir: binDir})
	if err != nil {
		return fr, err
	}
	defer func() {
		if stopErr := s.Stop(); err == nil {
			err = stopErr
		}
	}()
	mock := imdsmock.Config{Region: "eu-west-1", InstanceID: "i-0bench00000000001", Port: mockPort, Hostname: "127.0.0.1",
		Tags: map[string]string{
			"aws:cloudformation:stack-name": "bench-stack",
			"aws:cloudformation:logical-id": "ECSAutoScalingGroup",
			"aws:autoscaling:groupName":     "bench-stack-ECSAutoScalingGroup-1A2B",
			"ecs:cluster-name":              "bench-cluster",
		}}
	cfg, err := mock.JSON()
	if err != nil {
		return fr, err
	}
	if err := s.WriteFile(ctx, "/etc/imds-mock.json", cfg, 0o644); err != nil {
		return fr, err
	}
	// The stack whose CreationPolicy waits for this instance's signal.
	cfnCfg, err := json.Marshal(cfnsignaltest.Config{Region: "eu-west-1",
		Stacks: []cfnsignaltest.Stack{cfnsignaltest.Waiting("bench-stack", "ECSAutoScalingGroup", 1)}})
	if err != nil {
		return fr, err
	}
	if err := s.WriteFile(ctx, "/etc/fakecfn.json", cfnCfg, 0o644); err != nil {
		return fr, err
	}
	setup := []string{
		fmt.Sprintf("systemd-run -q --unit=imds-mock --setenv=HOME=/root %s/ec2-metadata-mock -c /etc/imds-mock.json", sandbox.BinMount),
		fmt.Sprintf("systemd-run -q --unit=fakecfn %s/fakecfn -listen %s -log /var/log/fakecfn.jsonl -config /etc/fakecfn.json", sandbox.BinMount, cfnAddr),
		// Ready when both listen: a bare TCP connect, which neither counts as a request.
		fmt.Sprintf(`for i in $(seq 100); do (: </dev/tcp/127.0.0.1/%d) 2>/dev/null && (: </dev/tcp/%s) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`,
			mockPort, strings.Replace(cfnAddr, ":", "/", 1)),
	}
	for _, sh := range setup {
		if out, err := s.Run(ctx, "bash", "-c", sh); err != nil {
			return fr, fmt.Errorf("instance setup: %w\n%s", err, out)
		}
	}
	before, err := mockRequests(ctx, s)
	if err != nil {
		return fr, err
	}
	// nsenter into the instance, as sandbox.Exec does, but run here so that wait4's
	// accounting of firstrun (nsenter's child, reaped by it) reaches this process.
	args := []string{"nsenter", "-t", strconv.Itoa(s.PID1()), "-a", "--", "env", "-i",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		fmt.Sprintf("AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d", mockPort),
		"AWS_ENDPOINT_URL_CLOUDFORMATION=http://" + cfnAddr,
		"FIRSTRUN_HEALTH_TIMEOUT=60s",
		sandbox.BinMount + "/firstrun", "--signal", "--log-format", "json"}
	if trace {
		args = append(append([]string{"strace", "-o", traceFile}, straceArgs...), args...)
	}
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := command(runCtx, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, args[0], args[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	fr.Sample, err = measure(cmd)
	if err != nil {
		return fr, err
	}
	if fr.Sample.Exit != 0 {
		return fr, fmt.Errorf("full run on the instance: exit %d\n%s", fr.Sample.Exit, out.String())
	}
	signals, err := s.Run(ctx, "cat", "/var/log/fakecfn.jsonl")
	if err != nil || !strings.Contains(string(signals), `"status":"SUCCESS","sigv4":true,"answer":"OK"`) {
		return fr, fmt.Errorf("full run on the instance: CloudFormation got no SUCCESS (%v): %s", err, signals)
	}
	if trace {
		f, err := os.Open(traceFile)
		if err != nil {
			return fr, err
		}
		defer f.Close()
		fr.Trace, err = countTrace(f, "/firstrun")
		return fr, err
	}
	after, err := settledRequests(ctx, s)
	if err != nil {
		return fr, err
	}
	fr.TokenPUTs, fr.GETs = after.puts-before.puts, after.gets-before.gets
	return fr, nil
}

// The mock (v1.12.0) logs every request it serves: token requests as "GenerateToken
// Received request: &{PUT ...", metadata requests as "ValidateToken Received request:
// &{GET ..." except for the tag listing, which its catch-all handler logs as
// "Received request to CatchAllHandler:".
var (
	mockTokenLine = regexp.MustCompile(`GenerateToken Received request: &\{PUT `)
	mockGetLine   = regexp.MustCompile(`(ValidateToken Received request: &\{GET |Received request to CatchAllHandler:)`)
)

type requestCount struct{ puts, gets int }

// mockRequests counts the requests in the mock's journal so far.
func mockRequests(ctx context.Context, s *sandbox.Sandbox) (requestCount, error) {
	out, err := s.Run(ctx, "journalctl", "-u", "imds-mock", "--no-pager", "-o", "cat")
	if err != nil {
		return requestCount{}, fmt.Errorf("the IMDS mock's journal: %w", err)
	}
	return requestCount{
		puts: len(mockTokenLine.FindAllIndex(out, -1)),
		gets: len(mockGetLine.FindAllIndex(out, -1)),
	}, nil
}

// settledRequests counts the mock's requests once its journal has caught up: the
// same count twice, 300 ms apart (at most 5 s).
func settledRequests(ctx context.Context, s *sandbox.Sandbox) (requestCount, error) {
	last, err := mockRequests(ctx, s)
	for i := 0; i < 16 && err == nil; i++ {
		time.Sleep(300 * time.Millisecond)
		var now requestCount
		if now, err = mockRequests(ctx, s); err == nil && now == last {
			return now, nil
		}
		last = now
	}
	return last, err
}
