package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/hack/internal/harness"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

func TestWorkloadBodiesAreValidOpenAIRequestsWithUniquePrompts(t *testing.T) {
	w := newWorkload(300, 200)
	type msg struct{ Role, Content string }
	var a, b struct {
		Model    string `json:"model"`
		User     string `json:"user"`
		Stream   bool   `json:"stream"`
		Messages []msg  `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(w.body(true, "n1", 7), &a))
	require.NoError(t, json.Unmarshal(w.body(true, "n1", 1007), &b))
	require.Equal(t, benchModel, a.Model)
	require.True(t, a.Stream)
	require.Equal(t, "bench-user-7", a.User)
	require.Equal(t, a.User, b.User, "users repeat over the population")
	require.Len(t, a.Messages, 2)
	require.Len(t, a.Messages[0].Content, 300)
	require.Equal(t, a.Messages[0], b.Messages[0], "the system message is the same in every request")
	require.NotEqual(t, a.Messages[1].Content, b.Messages[1].Content, "the prompt is unique, so the cache misses")
}

func TestParseWrkLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    loadResult
		wantErr string
	}{
		{name: "a normal cell gives rate and percentiles", line: "5000 2000000 150 300 900 0 0",
			want: loadResult{requests: 5000, rps: 2500, p50: 150 * time.Microsecond, p90: 300 * time.Microsecond, p99: 900 * time.Microsecond}},
		{name: "status and socket errors are summed", line: "10 1000000 1 2 3 2 1",
			want: loadResult{requests: 10, errors: 3, rps: 10, p50: time.Microsecond, p90: 2 * time.Microsecond, p99: 3 * time.Microsecond}},
		{name: "a cell where everything failed is an error", line: "10 1000000 1 2 3 10 0", wantErr: "every request failed"},
		{name: "a short line is refused", line: "1 2 3", wantErr: "malformed"},
		{name: "a non-number is refused", line: "1 2 3 4 5 x 7", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrkLine(tt.line)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMedianOfRounds(t *testing.T) {
	require.Equal(t, 2*time.Millisecond, median([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}))
	require.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
	require.Equal(t, int64(0), median([]int64{}))
	s := summarize([]cellResult{{rps: 10, errors: 1, peakRSS: 5}, {rps: 30, errors: 2, peakRSS: 9}, {rps: 20, peakRSS: 7}})
	require.Equal(t, 20.0, s.rps)
	require.Equal(t, int64(3), s.errors, "errors are summed over rounds")
	require.Equal(t, int64(9), s.peakRSS, "peak RSS is the maximum over rounds")
}

func TestKernelTableGivesPerRequestCountsAndRatiosToTheFloor(t *testing.T) {
	r := &report{targets: []string{"direct", "floor", "dataplane"}, results: map[cellKey][]cellResult{
		{"chat", 1, "direct"}: {{requests: 10, readCallsPerReq: 2, writeCallsPerReq: 1, volCSPerReq: 3, involCSPerReq: 1}},
		{"chat", 1, "floor"}: {
			{requests: 10, readCallsPerReq: 5, writeCallsPerReq: 3, volCSPerReq: 6, involCSPerReq: 2},
			{requests: 10, readCallsPerReq: 3, writeCallsPerReq: 3, volCSPerReq: 8, involCSPerReq: 2},
			{requests: 10, readCallsPerReq: 4, writeCallsPerReq: 5, volCSPerReq: 7, involCSPerReq: 1},
		},
		{"chat", 1, "dataplane"}: {{requests: 10, readCallsPerReq: 5, writeCallsPerReq: 1, volCSPerReq: 11, involCSPerReq: 3}},
	}}
	var b strings.Builder
	r.kernelTable(&b, "chat", 1)
	out := b.String()
	require.Contains(t, out, "| direct | 2.00 | 1.00 | 3.00 | 3.00 | 1.00 | 4.00 | — | — |\n")
	// The floor's medians over its rounds: 4 reads, 3 writes, 7 voluntary, 2 involuntary.
	require.Contains(t, out, "| floor | 4.00 | 3.00 | 7.00 | 7.00 | 2.00 | 9.00 | — | — |\n")
	require.Contains(t, out, "| dataplane | 5.00 | 1.00 | 6.00 | 11.00 | 3.00 | 14.00 | 0.86 | 1.56 |\n")
}

func TestParseProcIO(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    ioCalls
		wantErr string
	}{
		"a full /proc/PID/io gives the read and write call counts": {
			in:   "rchar: 323934931\nwchar: 323929600\nsyscr: 632687\nsyscw: 632675\nread_bytes: 0\nwrite_bytes: 323932160\ncancelled_write_bytes: 0\n",
			want: ioCalls{reads: 632687, writes: 632675},
		},
		"the order of the lines does not matter": {in: "syscw: 2\nsyscr: 1\n", want: ioCalls{reads: 1, writes: 2}},
		"a file without syscw is refused":        {in: "rchar: 1\nsyscr: 5\n", wantErr: "want both"},
		"an empty file is refused":               {in: "", wantErr: "want both"},
		"a non-number is refused":                {in: "syscr: x\nsyscw: 1\n", wantErr: "malformed"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseProcIO([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseCtxSwitches(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    ctxSwitches
		wantErr string
	}{
		"a thread's status gives both counts": {
			in:   "Name:\tdataplane\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4250\nVmHWM:\t   20480 kB\nvoluntary_ctxt_switches:\t1500\nnonvoluntary_ctxt_switches:\t37\n",
			want: ctxSwitches{voluntary: 1500, involuntary: 37},
		},
		"a status with only one count is refused": {in: "voluntary_ctxt_switches:\t3\n", wantErr: "want both"},
		"a non-number is refused":                 {in: "voluntary_ctxt_switches:\t-\nnonvoluntary_ctxt_switches:\t1\n", wantErr: "malformed"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseCtxSwitches([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCtxSwitchDeltaCountsLiveThreadsOnly(t *testing.T) {
	before := map[int]ctxSwitches{1: {10, 1}, 2: {20, 2}, 3: {1000, 100}, 5: {500, 50}}
	after := map[int]ctxSwitches{1: {15, 1}, 2: {21, 4}, 4: {7, 3}, 5: {9, 60}}
	// Thread 3 exited (its count is lost, not subtracted); thread 4 is new (all of it counts);
	// id 5 is a new thread reusing a retired thread's id (its count is below the old one's).
	require.Equal(t, ctxSwitches{voluntary: 5 + 1 + 7 + 9, involuntary: 0 + 2 + 3 + 60}, ctxSwitchDelta(before, after))
}

// TestProcCountersReadThisProcess reads the test's own /proc: the I/O calls grow by at least the
// reads it makes, and the context switches of a thread other than the main one are seen, which
// /proc/PID/status alone would miss.
func TestProcCountersReadThisProcess(t *testing.T) {
	pid := os.Getpid()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	before := ioCallsOf(pid)
	require.Positive(t, before.reads)
	buf := make([]byte, 1)
	for range 100 {
		_, _ = f.Read(buf)
	}
	require.GreaterOrEqual(t, ioCallsOf(pid).reads-before.reads, int64(100))

	// Two goroutines locked to their own threads: at most one can be the main thread. Each
	// sleeps in nanosleep(2) 20 times when told, a voluntary switch per sleep.
	type locked struct {
		tid        int
		wake, done chan struct{}
	}
	exit := make(chan struct{})
	defer close(exit)
	start := func() *locked {
		l := &locked{wake: make(chan struct{}), done: make(chan struct{})}
		ready := make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			ready <- syscall.Gettid()
			select {
			case <-l.wake:
			case <-exit:
				return
			}
			for range 20 {
				ts := syscall.NsecToTimespec(int64(time.Millisecond))
				_ = syscall.Nanosleep(&ts, nil)
			}
			close(l.done)
			<-exit
		}()
		l.tid = <-ready
		return l
	}
	a, b := start(), start()
	l := a
	if l.tid == pid {
		l = b
	}
	require.NotEqual(t, pid, l.tid)
	cs0 := ctxSwitchesOf(pid)
	require.Contains(t, cs0, l.tid, "every thread is read, not only the main one")
	close(l.wake)
	<-l.done
	cs1 := ctxSwitchesOf(pid)
	slept := cs1[l.tid].voluntary - cs0[l.tid].voluntary
	require.GreaterOrEqual(t, slept, int64(20))
	require.GreaterOrEqual(t, ctxSwitchDelta(cs0, cs1).voluntary, slept)
}

// TestTheBenchBuildsTheDataPlaneAsTheMakefileDoes keeps the measured binary the shipped one: the
// flags of the Makefile's DATAPLANE_BUILD_FLAGS must be the bench's dataplaneBuildFlags.
func TestTheBenchBuildsTheDataPlaneAsTheMakefileDoes(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	var flags []string
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "DATAPLANE_BUILD_FLAGS ?="); ok {
			flags, found = strings.Fields(v), true
		}
	}
	require.True(t, found, "the Makefile must define DATAPLANE_BUILD_FLAGS ?= ...")
	require.Contains(t, string(b), "go build $(DATAPLANE_BUILD_FLAGS) -o $(LOCALBIN)/dataplane ./cmd/dataplane",
		"the Makefile's data plane build line must use DATAPLANE_BUILD_FLAGS")
	require.Equal(t, flags, dataplaneBuildFlags)
}

func TestCompareTablePairsTheRoundsOfTheTwoBuilds(t *testing.T) {
	r := &report{targets: []string{"direct", "floor", "dataplane", "dataplane@abc1234"}, results: map[cellKey][]cellResult{
		{"chat", 1, "dataplane"}: {
			{p50: 400 * time.Microsecond, rps: 2000, cpuMsPerReq: 0.300},
			{p50: 500 * time.Microsecond, rps: 1900, cpuMsPerReq: 0.310},
			{p50: 450 * time.Microsecond, rps: 2100, cpuMsPerReq: 0.290},
		},
		{"chat", 1, "dataplane@abc1234"}: {
			{p50: 420 * time.Microsecond, rps: 1900, cpuMsPerReq: 0.320},
			{p50: 490 * time.Microsecond, rps: 2000, cpuMsPerReq: 0.300},
			{p50: 480 * time.Microsecond, rps: 2000, cpuMsPerReq: 0.300},
		},
	}}
	var b strings.Builder
	r.compareTable(&b, "chat", 1)
	out := b.String()
	require.Contains(t, out, "dataplane against dataplane@abc1234 (3 rounds)")
	// p50 changes −20, +10, −30 µs: median −20, two rounds better.
	require.Contains(t, out, "| p50 | -20 µs | 2 / 1 | -30 … +10 |\n")
	// req/s +5.3 %, −5.0 %, +5.0 %.
	require.Contains(t, out, "| req/s | +5.0 % | 2 / 1 | -5.0 … +5.3 |\n")
	require.Contains(t, out, "| CPU ms/req | -0.010 ms | 2 / 1 | -0.020 … +0.010 |\n")

	var none strings.Builder
	(&report{targets: []string{"floor", "dataplane"}, results: r.results}).compareTable(&none, "chat", 1)
	require.Empty(t, none.String(), "no table without a --compare-rev target")
}

// --bare's data plane runs on the benchmark's key and provider with a route that does none of the
// chain's work, and both folders compile without problems.
func TestBareManifestsKeepTheProviderAndDropTheChain(t *testing.T) {
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	snapshot := func(name string) *config.Snapshot {
		files, err := manifestFiles(root, name)
		require.NoError(t, err)
		dir := t.TempDir()
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			b = []byte(strings.ReplaceAll(string(b), "BENCH_UPSTREAM", "http://127.0.0.1:1"))
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600))
		}
		in, err := compiler.LoadDir(dir)
		require.NoError(t, err)
		res := compiler.Compile(in)
		require.Empty(t, res.Problems)
		return res.Snapshot
	}
	full, bare := snapshot("dataplane"), snapshot(bareTarget)
	require.Len(t, full.Routes, 1)
	require.Len(t, bare.Routes, 1)
	require.NotEmpty(t, full.Routes[0].RateLimits)
	require.NotEmpty(t, full.Budgets)
	require.True(t, full.Routes[0].Cache.Enabled)
	require.Empty(t, bare.Routes[0].RateLimits)
	require.Empty(t, bare.Budgets)
	require.False(t, bare.Routes[0].Cache.Enabled)
	require.Equal(t, config.Guardrails{}, bare.Routes[0].Guardrails)
	require.Equal(t, full.Providers, bare.Providers)
	require.Equal(t, full.Routes[0].Targets, bare.Routes[0].Targets)
	require.Equal(t, full.APIKeys, bare.APIKeys)
}

func TestVerdictsGiveTheRoundByRoundDifferenceBesideTheMedians(t *testing.T) {
	ms := func(us ...int) []cellResult {
		out := make([]cellResult, len(us))
		for i, u := range us {
			out[i] = cellResult{p50: time.Duration(u) * time.Microsecond, rps: 1000}
		}
		return out
	}
	r := &report{opts: options{concurrency: []int{1}, kinds: []string{"chat"}}, targets: []string{"floor", "dataplane"},
		results: map[cellKey][]cellResult{
			{"chat", 1, "floor"}:     ms(400, 300, 500),
			{"chat", 1, "dataplane"}: ms(460, 420, 530),
		}}
	// Medians 460 vs 400 (+60); per round +60, +120, +30: median +60.
	require.Contains(t, r.verdicts(), "| dataplane chat c=1 p50 ≤ floor's + 50 µs | 460 µs vs 400 µs (+60 µs; round by round +60 µs) | **no** |")
	// Medians 420 vs 400 (+20, judged); per round +20, +120, +30: median +30 (shown).
	r.results[cellKey{"chat", 1, "dataplane"}] = ms(420, 420, 530)
	require.Contains(t, r.verdicts(), "(+20 µs; round by round +30 µs) | yes |")
}
