//go:build unix

package tokens

import "syscall"

// processCPU is the process's user+system CPU time in nanoseconds. Benchmarks report it per
// operation besides ns/op: on a machine shared with other work, wall time per operation
// includes the time spent waiting for a core, CPU time much less so.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
