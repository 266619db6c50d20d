//go:build linux

package cluster_test

import "syscall"

// dieWithTheTest makes the data plane get SIGKILL if the test binary dies first (a timeout or a
// panic), so no process outlives a run.
func dieWithTheTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
