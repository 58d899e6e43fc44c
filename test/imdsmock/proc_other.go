//go:build !linux

package imdsmock

import "syscall"

// sysProcAttr is nil where the kernel cannot tie the mock's life to the test's.
func sysProcAttr() *syscall.SysProcAttr { return nil }
