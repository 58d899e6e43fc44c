package imdsmock

import "syscall"

// sysProcAttr has Linux kill the mock when the test process dies without its cleanup
// (a timeout's panic, a kill): the mock holds no state worth a graceful stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
