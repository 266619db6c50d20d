//go:build !linux

package cluster_test

import "syscall"

// dieWithTheTest has no portable equivalent of Linux's parent-death signal; the test's cleanup
// stops the data plane.
func dieWithTheTest() *syscall.SysProcAttr { return nil }
