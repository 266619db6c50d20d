//go:build unix

package guard

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU adds a cpu-ns/op metric (user+system CPU of the process per iteration) next to the
// wall-clock ns/op, which is inflated on a machine shared with other work.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
