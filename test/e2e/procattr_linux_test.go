//go:build linux

package e2e

import "syscall"

// dieWithTheTest makes a child process get SIGKILL if the test binary dies first (a timeout or a
// panic), so no replica or redis-server outlives a run.
func dieWithTheTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
