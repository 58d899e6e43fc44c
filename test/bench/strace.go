package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// straceArgs are strace's options for a trace that countTrace reads: follow every
// child, one line per syscall prefixed with the thread id, only the syscalls that
// create processes or threads, run programs, or flush files to disk. A thread id
// returned in another PID namespace (firstrun run with nsenter in the sandbox) is
// also given in strace's own (--decode-pids=pidns, strace 6.0+), as the prefixes are.
var straceArgs = []string{"-f", "-qq", "--decode-pids=pidns", "-e", "signal=none",
	"-e", "trace=clone,clone3,fork,vfork,execve,fsync,fdatasync,sync_file_range,syncfs"}

// traceCounts is what a trace says a tool did.
type traceCounts struct {
	// Processes is how many processes the tool and its descendants created (threads
	// not counted); Execs how many programs they ran after the tool itself.
	Processes, Execs int
	// Threads is how many threads they created.
	Threads int
	// Syncs is how many fsync-family calls they made.
	Syncs int
}

var (
	// "1234 clone(...) = 1240", possibly "1234 <... clone resumed>...) = 1240".
	straceLine = regexp.MustCompile(`^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$`)
	// "= 53 /* 15715 in strace's PID NS */" for a child in another PID namespace.
	straceRet = regexp.MustCompile(`\) += (-?\d+)(?: /\* (\d+) in strace's PID NS \*/)?`)
)

// countTrace reads an strace -f -o trace (straceArgs) and counts what the process
// that ran a program whose path ends in tool, and its descendants, did. Lines split by
// another thread's syscall ("<unfinished ...>" then "<... resumed>") are joined.
func countTrace(r io.Reader, tool string) (traceCounts, error) {
	type call struct {
		name, text string
	}
	pending := map[int]call{}
	tgid := map[int]int{}   // thread id → its process
	parent := map[int]int{} // process → the process that created it
	var calls []struct {
		tid int
		call
		ret int
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := straceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue // "+++ exited with 0 +++" and the like
		}
		tid, _ := strconv.Atoi(m[1])
		c := call{name: m[3], text: m[4]}
		if m[2] != "" { // the rest of an unfinished call
			p, ok := pending[tid]
			if !ok {
				continue
			}
			delete(pending, tid)
			c = call{name: p.name, text: p.text + m[4]}
		} else if strings.HasSuffix(c.text, "<unfinished ...>") {
			pending[tid] = call{name: c.name, text: strings.TrimSuffix(c.text, "<unfinished ...>")}
			continue
		}
		ret := -1
		if rm := straceRet.FindAllStringSubmatch(c.text, -1); rm != nil {
			last := rm[len(rm)-1]
			if last[2] != "" {
				ret, _ = strconv.Atoi(last[2])
			} else {
				ret, _ = strconv.Atoi(last[1])
			}
		}
		calls = append(calls, struct {
			tid int
			call
			ret int
		}{tid, c, ret})
	}
	if err := sc.Err(); err != nil {
		return traceCounts{}, fmt.Errorf("reading the trace: %w", err)
	}
	proc := func(tid int) int {
		if p, ok := tgid[tid]; ok {
			return p
		}
		return tid
	}
	// Who is whose: a thread belongs to its creator's process, a process is its own.
	toolPID := 0
	for _, c := range calls {
		switch {
		case isCreate(c.name) && c.ret > 0:
			if strings.Contains(c.text, "CLONE_THREAD") {
				tgid[c.ret] = proc(c.tid)
			} else {
				parent[c.ret] = proc(c.tid)
			}
		case c.name == "execve" && c.ret == 0 && toolPID == 0 && execs(c.text, tool):
			toolPID = proc(c.tid)
		}
	}
	if toolPID == 0 {
		return traceCounts{}, fmt.Errorf("the trace shows no execve of %s", tool)
	}
	inTool := func(p int) bool {
		for ; p != 0; p = parent[p] {
			if p == toolPID {
				return true
			}
		}
		return false
	}
	var n traceCounts
	toolRan := false
	for _, c := range calls {
		p := proc(c.tid)
		if !inTool(p) {
			continue
		}
		switch {
		case isCreate(c.name) && c.ret > 0 && strings.Contains(c.text, "CLONE_THREAD"):
			n.Threads++
		case isCreate(c.name) && c.ret > 0:
			n.Processes++
		case c.name == "execve" && c.ret == 0:
			if p == toolPID && !toolRan && execs(c.text, tool) {
				toolRan = true // the tool itself
				continue
			}
			n.Execs++
		case strings.Contains(c.name, "sync") && c.ret == 0:
			n.Syncs++
		}
	}
	return n, nil
}

func isCreate(name string) bool {
	return name == "clone" || name == "clone3" || name == "fork" || name == "vfork"
}

// execs says an execve line runs a program whose path ends in tool.
func execs(text, tool string) bool {
	path, _, _ := strings.Cut(text, ",")
	path = strings.Trim(path, `"`)
	return strings.HasSuffix(path, tool)
}
