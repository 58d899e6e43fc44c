package main

// What the running agent does with its log sources, instead of PutLogEvents: one JSON
// line per event appended to a sink file, with the log group and stream the real agent
// would put it to, where it came from, and whether the real agent would send it as EMF.
// It follows aws/amazon-cloudwatch-agent:
//
//   - plugins/inputs/logfile/logfile.go FindLogSrc: each files entry tails the most
//     recently modified file its file_path (a glob) matches, compressed files and
//     directories left out, looking again for new files as it runs; with a state
//     file (file_state_folder, named after the path with "/", " " and ":" as "_") it
//     resumes at the offset saved there, and without one it starts at the file's
//     beginning: translator/translate/logs/logs_collected/files/collect_list/
//     ruleFromBeginning.go sets from_beginning to true by default;
//   - plugins/inputs/logfile/tailersrc.go: one event a line, a line without its
//     newline waiting for the rest, empty lines not published; the offset saved as
//     "OFFSET\nFILENAME" (saveState); the tail reopens a truncated file at its start;
//   - plugins/outputs/cloudwatchlogs/cloudwatchlogs.go cwDest.Publish: a destination
//     (log group and stream) switches to EMF, for the rest of the agent's life, once
//     an event starts with "{", ends with "}" and contains "\"CloudWatchMetrics\"";
//     from then on every PutLogEvents of it carries x-amzn-logs-format: json/emf. The
//     sink's "emf" is that switch's state when the event is published;
//   - journald (translator/translate/otel/pipeline/journald/translator.go, receiver/
//     journald/translator.go, exporter/journald/translator.go): each collect_list
//     entry is an OpenTelemetry journald receiver with its units and priority "info",
//     and an awscloudwatchlogs exporter to its log group and stream. The receiver
//     (opentelemetry-collector-contrib pkg/stanza/operator/input/journald/
//     config_linux.go) runs `journalctl --utc --output=json --follow --unit U…
//     --priority info`, start_at "end" (no --no-tail: journalctl's last 10 entries,
//     then new ones), and the event's body is the whole entry; that exporter has no
//     cwDest, so no EMF switch.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// target is a CloudWatch Logs destination (cloudwatchlogs.Target).
type target struct {
	Group, Stream string
}

// metadata is what the translator learns from IMDS (ec2util); empty fields were not
// learned.
type metadata struct {
	InstanceID, Region, Hostname, PrivateIP, AccountID string
}

// Placeholders and their values when unknown (placeholderUtil.go).
const (
	unknownInstanceID = "i-UNKNOWN"
	unknownIPAddress  = "UNKNOWN-IP"
	unknownAwsRegion  = "UNKNOWN-REGION"
	unknownAccountID  = "UNKNOWN-ACCOUNT"
)

// placeholders returns GetMetadataInfo's map.
func (md metadata) placeholders() map[string]string {
	local, err := os.Hostname()
	if err != nil {
		local = "UNKNOWN-HOST"
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	return map[string]string{
		"{instance_id}":    or(md.InstanceID, unknownInstanceID),
		"{hostname}":       or(md.Hostname, local),
		"{local_hostname}": local,
		"{ip_address}":     or(md.PrivateIP, localIP()),
		"{aws_region}":     or(md.Region, unknownAwsRegion),
		"{account_id}":     or(md.AccountID, unknownAccountID),
	}
}

// localIP is getIpAddress: the first IPv4 address not on loopback.
func localIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return unknownIPAddress
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return unknownIPAddress
}

// resolve is ResolvePlaceholder: "" is "{instance_id}".
func (md metadata) resolve(s string) string {
	if s == "" {
		s = "{instance_id}"
	}
	for k, v := range md.placeholders() {
		s = strings.ReplaceAll(s, k, v)
	}
	return strings.ReplaceAll(s, "{date}", time.Now().Format("2006-01-02"))
}

// target resolves an entry's names; stream "" falls back to logs.log_stream_name, then
// to the instance id.
func (md metadata) target(group, stream, defaultStream string) target {
	if stream == "" {
		stream = defaultStream
	}
	return target{Group: md.resolve(group), Stream: md.resolve(stream)}
}

// imdsEndpoint is the SDK's: AWS_EC2_METADATA_SERVICE_ENDPOINT, else the link-local
// address.
func imdsEndpoint() string {
	if e := os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"); e != "" {
		return strings.TrimRight(e, "/")
	}
	return "http://169.254.169.254"
}

// fetchMetadata asks IMDS for the hostname and the instance identity document, with an
// IMDSv2 token and else without, as ec2util does; what fails stays empty, logged as
// the real agent logs it.
func fetchMetadata(ctx context.Context, w io.Writer, endpoint string) metadata {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	token := ""
	if req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint+"/latest/api/token", nil); err == nil {
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				token = string(body)
			}
		}
	}
	get := func(path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+path, nil)
		if err != nil {
			return "", err
		}
		if token != "" {
			req.Header.Set("X-aws-ec2-metadata-token", token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", path, resp.Status)
		}
		return string(body), nil
	}
	var md metadata
	if h, err := get("/latest/meta-data/hostname"); err == nil {
		md.Hostname = h
	} else {
		logf(w, "E", "[EC2] Fetch hostname from EC2 metadata fail: %v", err)
	}
	doc, err := get("/latest/dynamic/instance-identity/document")
	if err != nil {
		logf(w, "E", "[EC2] Fetch identity document from EC2 metadata fail: %v", err)
		return md
	}
	var d struct {
		InstanceID string `json:"instanceId"`
		Region     string `json:"region"`
		PrivateIP  string `json:"privateIp"`
		AccountID  string `json:"accountId"`
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		logf(w, "E", "[EC2] Fetch identity document from EC2 metadata fail: %v", err)
		return md
	}
	md.InstanceID, md.Region, md.PrivateIP, md.AccountID = d.InstanceID, d.Region, d.PrivateIP, d.AccountID
	return md
}

// event is one line of the sink.
type event struct {
	Time      string `json:"time"`
	LogGroup  string `json:"log_group"`
	LogStream string `json:"log_stream"`
	// Source is the file the line was read from, or "journald:UNIT,…".
	Source string `json:"source"`
	// EMF is true when the real agent sends the event with x-amzn-logs-format:
	// json/emf.
	EMF     bool   `json:"emf"`
	Message string `json:"message"`
}

// sink appends events to the sink file and keeps each file destination's EMF switch.
type sink struct {
	path string
	mu   sync.Mutex
	emf  map[target]bool
}

func newSink(path string) (*sink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return &sink{path: path, emf: map[target]bool{}}, nil
}

// isEMF is cwDest.Publish's test.
func isEMF(msg string) bool {
	return strings.HasPrefix(msg, "{") && strings.HasSuffix(msg, "}") && strings.Contains(msg, `"CloudWatchMetrics"`)
}

// file publishes a line of a log file through its destination, which switches to EMF
// for good at its first EMF record.
func (s *sink) file(t target, source, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.emf[t] && isEMF(msg) {
		s.emf[t] = true
	}
	return s.write(event{LogGroup: t.Group, LogStream: t.Stream, Source: source, EMF: s.emf[t], Message: msg})
}

// journal publishes a journal entry through the OpenTelemetry exporter: never EMF.
func (s *sink) journal(t target, units []string, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(event{LogGroup: t.Group, LogStream: t.Stream, Source: "journald:" + strings.Join(units, ","), Message: msg})
}

func (s *sink) write(e event) error {
	e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	return errors.Join(err, f.Close())
}

// pollInterval is how often the tailers look for new lines and new files.
const pollInterval = 200 * time.Millisecond

// publish runs every source until ctx ends.
func publish(ctx context.Context, w io.Writer, p paths, cfg *agentConfig) error {
	s, err := newSink(p.Sink)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.State, 0o755); err != nil {
		return fmt.Errorf("failed to create state file directory %s: %v", p.State, err)
	}
	var wg sync.WaitGroup
	for _, u := range cfg.Journald {
		wg.Add(1)
		go func() {
			defer wg.Done()
			followUnits(ctx, w, s, u)
		}()
	}
	tailers := make([]*tailer, len(cfg.Files))
	for i, f := range cfg.Files {
		tailers[i] = &tailer{src: f, state: p.State, sink: s, log: w}
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for _, tl := range tailers {
			tl.poll()
		}
		select {
		case <-ctx.Done():
			for _, tl := range tailers {
				tl.close()
			}
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// journalctl is the receiver's binary, found in PATH.
var journalctl = "journalctl"

// journalArgs are the receiver's arguments for units (start_at "end", priority "info").
func journalArgs(units []string) []string {
	args := []string{"--utc", "--output=json", "--follow"}
	for _, u := range units {
		args = append(args, "--unit", u)
	}
	return append(args, "--priority", "info")
}

// followUnits publishes every entry journalctl prints for u's units until ctx ends;
// when journalctl exits, it is started again after a second (with the entries it
// prints again: the receiver here keeps no cursor).
func followUnits(ctx context.Context, w io.Writer, s *sink, u unitSource) {
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, journalctl, journalArgs(u.Units)...)
		// The unit's KillMode=process leaves children alone: journalctl dies with us.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stderr = w
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			logf(w, "E", "[journald] %s: %v", journalctl, err)
		} else {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for sc.Scan() {
				if line := sc.Text(); line != "" {
					if err := s.journal(u.Target, u.Units, line); err != nil {
						logf(w, "E", "[journald] sink: %v", err)
					}
				}
			}
			err = cmd.Wait()
			if ctx.Err() == nil {
				logf(w, "E", "[journald] journalctl for %s ended: %v", strings.Join(u.Units, ","), err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// tailer follows one files entry: the newest file its glob matches.
type tailer struct {
	src   fileSource
	state string
	sink  *sink
	log   io.Writer

	path  string   // the file being read
	f     *os.File // open on path, nil before the first match
	off   int64    // where the next read starts
	part  []byte   // read past the last newline: a line not yet whole
	saved int64    // the offset last saved
}

// stateFile is the state file's path (getStateFilePath, escapeFilePath).
func stateFile(dir, filename string) string {
	r := strings.NewReplacer("/", "_", " ", "_", ":", "_")
	return filepath.Join(dir, r.Replace(filepath.ToSlash(filename)))
}

// restoreState returns the offset saved for filename, false without a valid one.
func restoreState(dir, filename string) (int64, bool) {
	data, err := os.ReadFile(stateFile(dir, filename))
	if err != nil {
		return 0, false
	}
	off, err := strconv.ParseInt(strings.Split(string(data), "\n")[0], 10, 64)
	if err != nil {
		return 0, false
	}
	return off, true
}

// newest returns the most recently modified regular file glob matches (getTargetFiles
// without publish_multi_logs), "" when none does.
func newest(glob, stateDir string) string {
	matches, _ := filepath.Glob(glob)
	best, bestMod := "", time.Time{}
	for _, m := range matches {
		if stateDir != "" && strings.HasPrefix(m, stateDir) {
			continue
		}
		switch filepath.Ext(m) {
		case ".tar", ".zst", ".gz", ".zip", ".bz2", ".rar":
			continue
		}
		fi, err := os.Stat(m)
		if err != nil || fi.IsDir() {
			continue
		}
		if best == "" || fi.ModTime().After(bestMod) {
			best, bestMod = m, fi.ModTime()
		}
	}
	return best
}

// poll reads what is new: in the current file, then, when another file is now the
// newest match or the path names a new file (rotation), in that one from its start.
func (t *tailer) poll() {
	next := newest(t.src.Glob, t.state)
	if t.f != nil {
		moved := !sameFile(t.f, t.path)
		if moved || next != t.path {
			t.read() // the rest of the old file
			if moved {
				// The tail sees the file gone (renamed by a rotation, or deleted) and
				// stops; its state file goes (tailersrc.go, FileDeletedCh), so that
				// the new file at that path is read from its start.
				logf(t.log, "W", "[logfile] deleting state file %s", stateFile(t.state, t.path))
				_ = os.Remove(stateFile(t.state, t.path))
			}
			t.close()
		}
	}
	if t.f == nil && next != "" {
		f, err := os.Open(next)
		if err != nil {
			logf(t.log, "E", "[logfile] Failed to tail file %v with error: %v", next, err)
			return
		}
		t.f, t.path, t.part = f, next, nil
		t.off, _ = restoreState(t.state, next)
		t.saved = t.off
		if t.off > 0 {
			logf(t.log, "I", "[logfile] Reading from offset %v in %s", t.off, next)
		}
	}
	if t.f != nil {
		t.read()
	}
}

// sameFile reports whether path still names f.
func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// read publishes the whole lines added since the last read and saves the offset.
func (t *tailer) read() {
	fi, err := t.f.Stat()
	if err != nil {
		return
	}
	if fi.Size() < t.off {
		logf(t.log, "I", "[logfile] Re-opening truncated file %s", t.path)
		t.off, t.part = 0, nil
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := t.f.ReadAt(buf, t.off)
		t.off += int64(n)
		t.part = append(t.part, buf[:n]...)
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				logf(t.log, "E", "[logfile] Error tailing line in file %s, Error: %v", t.path, err)
			}
			break
		}
	}
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		line := string(t.part[:i])
		t.part = t.part[i+1:]
		if line == "" {
			continue
		}
		if err := t.sink.file(t.src.Target, t.path, line); err != nil {
			logf(t.log, "E", "sink: %v", err)
		}
	}
	t.part = append([]byte(nil), t.part...)
	t.save(t.off - int64(len(t.part)))
}

// save writes the state file as saveState does (nothing for offset 0).
func (t *tailer) save(off int64) {
	if off == t.saved || off == 0 || t.state == "" {
		return
	}
	if err := os.WriteFile(stateFile(t.state, t.path), []byte(strconv.FormatInt(off, 10)+"\n"+t.path), 0o644); err != nil {
		logf(t.log, "E", "[logfile] Error happened when saving file state %s to file state folder %s: %v", t.path, t.state, err)
		return
	}
	t.saved = off
}

func (t *tailer) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}
