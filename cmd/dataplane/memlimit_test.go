package main

import (
	"io"
	"io/fs"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCgroupLimitValuesAreParsed(t *testing.T) {
	for in, want := range map[string]int64{
		"536870912\n":         536870912, // v2 memory.max, 512 MiB
		"max\n":               0,         // v2 without a limit
		"9223372036854771712": 0,         // v1 "unlimited"
		"":                    0,
		"garbage":             0,
		"-1":                  0,
	} {
		got, ok := parseCgroupLimit(in)
		require.Equal(t, want, got, "%q", in)
		require.Equal(t, want != 0, ok, "%q", in)
	}
}

// keepMemoryLimit restores the process's soft limit after a test that sets it.
func keepMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if v, ok := m[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestTheSoftMemoryLimitFollowsTheCgroupLimit(t *testing.T) {
	keepMemoryLimit(t)
	debug.SetMemoryLimit(math.MaxInt64)
	noEnv := func(string) string { return "" }

	got := applyMemoryLimit(noEnv, files(map[string]string{"/sys/fs/cgroup/memory.max": "1073741824\n"}), quiet)
	require.Equal(t, int64(966367641), got) // 0.9 × 1 GiB, truncated
	require.Equal(t, got, debug.SetMemoryLimit(-1), "the runtime's limit is the one reported")

	// cgroup v1
	debug.SetMemoryLimit(math.MaxInt64)
	got = applyMemoryLimit(noEnv, files(map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456"}), quiet)
	require.Equal(t, int64(241591910), got) // 0.9 × 256 MiB, truncated
	require.Equal(t, got, debug.SetMemoryLimit(-1))
}

func TestNoCgroupLimitOrAnExplicitGOMEMLIMITLeavesTheRuntimeAlone(t *testing.T) {
	keepMemoryLimit(t)
	debug.SetMemoryLimit(math.MaxInt64)
	noEnv := func(string) string { return "" }
	require.Zero(t, applyMemoryLimit(noEnv, files(nil), quiet))
	require.Zero(t, applyMemoryLimit(noEnv, files(map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}), quiet))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))

	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "300MiB"
		}
		return ""
	}
	require.Zero(t, applyMemoryLimit(env, files(map[string]string{"/sys/fs/cgroup/memory.max": "1073741824"}), quiet))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "GOMEMLIMIT from the environment wins")
}
