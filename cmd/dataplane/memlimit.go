package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// Memory policy of the data plane process.
//
// GOGC stays at Go's default of 100 unless the environment sets it. Measured on the bench's
// request (BenchmarkOpenAIChatWithARealisticPrompt, and 1 000 held streams in hack/bench), GC is
// a few percent of the CPU: GOGC=200 saves little of it while the heap may grow to three times
// the live set, and GOGC=50 costs more CPU and saves little RSS, because with many open streams
// the live set (connection buffers, goroutine stacks, request state), not the garbage, is most
// of the heap.
//
// What the runtime cannot know by itself is the container's memory limit: without a soft limit
// a burst may grow the heap past the cgroup limit and get the pod OOM-killed while a GC would
// have freed enough. So, unless GOMEMLIMIT is set, the soft limit is set to memLimitFraction of
// the cgroup limit when there is one. The rest is left for what the Go heap does not count:
// the binary's mapped pages (charged to the cgroup as page cache), thread stacks and the
// allocator's own overhead.
const memLimitFraction = 0.9

// cgroup files holding the memory limit: v2 first (unified hierarchy), then v1.
var cgroupLimitFiles = []string{
	"/sys/fs/cgroup/memory.max",
	"/sys/fs/cgroup/memory/memory.limit_in_bytes",
}

// applyMemoryLimit sets the Go soft memory limit from the cgroup limit when GOMEMLIMIT is not
// set, and returns the limit it set (0 = none). A limit file that is absent, "max" or absurdly
// large (cgroup v1 reports "unlimited" as a huge number) means no limit.
func applyMemoryLimit(getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0 // the runtime has already applied it
	}
	for _, path := range cgroupLimitFiles {
		b, err := readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			log.Warn("failed to read the cgroup memory limit", "file", path, "error", err)
			return 0
		}
		limit, ok := parseCgroupLimit(string(b))
		if !ok {
			return 0
		}
		soft := int64(float64(limit) * memLimitFraction)
		debug.SetMemoryLimit(soft)
		log.Info("set the Go soft memory limit from the cgroup limit", "cgroupLimitBytes", limit, "softLimitBytes", soft)
		return soft
	}
	return 0
}

// parseCgroupLimit reads a memory.max / memory.limit_in_bytes value; ok is false for no limit.
func parseCgroupLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	// cgroup v1 says "unlimited" with a value near MaxInt64 rounded to the page size.
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0, false
	}
	return n, true
}
