//go:build unix

package storetest

import (
	"syscall"
	"time"
)

// CPUTime is the process's CPU time so far (user and system, GC included). Benchmarks report
// it per operation: on a machine shared with other work, wall time per op measures the
// machine's load as much as the code.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
