//go:build !linux

package e2e

import "syscall"

// dieWithTheTest has no portable equivalent outside Linux; cleanup then relies on t.Cleanup.
func dieWithTheTest() *syscall.SysProcAttr { return nil }
