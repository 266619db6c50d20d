// Command bench measures the data plane side by side with the floor any Go gateway pays for one
// extra hop, in one run, on this machine:
//
//   - direct: the mock upstream (cmd/mockupstream, OpenAI wire format) alone;
//   - floor: a bare httputil.ReverseProxy in front of it (hack/bench/floor);
//   - dataplane: the gateway in front of it, with the manifests of hack/bench/manifests (two rate
//     limits, a per-user and an org budget, PII redaction on input, a cache that misses, metrics
//     and access logs on); with --redis-url also dataplane+redis on that Redis.
//
// The same request bytes go to every target (POST /v1/chat/completions, a unique user and prompt
// per request), rounds alternate the targets (interleaved, so machine noise hits all alike), and
// the table gives medians over rounds. Chat cells are driven by wrk (installed with apt-get
// when missing) with hack/bench/chat.lua; streaming cells by the Go load generator in load.go,
// which measures time to first byte, which wrk cannot.
//
//	go run ./hack/bench                       # 3 rounds x 5 s per cell, chat + stream, c = 1,16,64
//	go run ./hack/bench --duration 2s --rounds 1 --concurrency 16
//	hack/bench/run.sh --redis                 # adds dataplane+redis on a throw-away redis-server
//	go run ./hack/bench --profile             # also CPU + allocation profiles of the data plane
//	go run ./hack/bench --table=false --hold-streams 1000   # peak RSS with 1000 open streams
//
// Everything listens on 127.0.0.1 only and is stopped when the run ends (or is interrupted).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nself-org/ai-orchestration/hack/internal/harness"
)

type options struct {
	duration     time.Duration
	warmup       time.Duration
	rounds       int
	concurrency  []int
	kinds        []string
	redisURL     string
	systemBytes  int
	promptBytes  int
	chunks       int
	chunkDelay   time.Duration
	latency      time.Duration
	resultsDir   string
	profile      bool
	profileOnly  bool
	profileFor   time.Duration
	profileConc  int
	profileKind  string
	useWrk       bool
	dataplaneLog string
	table        bool
	holdStreams  int
	holdFor      time.Duration
	holdProfile  bool
	holdTLS      bool
	compareRev   string
	bare         bool
	profileBare  bool
}

func parseFlags(args []string) (options, error) {
	var o options
	var conc, kinds string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of one measured cell (one target, one concurrency, one round); whole seconds")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load per target before the first round")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per cell (the table gives medians)")
	fs.StringVar(&conc, "concurrency", "1,16,64", "comma-separated concurrency levels")
	fs.StringVar(&kinds, "kinds", "chat,stream", "comma-separated: chat, stream")
	fs.StringVar(&o.redisURL, "redis-url", "", "also measure a data plane on this Redis (redis://127.0.0.1:PORT/0); see run.sh --redis")
	fs.IntVar(&o.systemBytes, "system-bytes", 1024, "size of the system message (the same in every request, like a real app's)")
	fs.IntVar(&o.promptBytes, "prompt-bytes", 512, "size of the user message (unique per request)")
	fs.IntVar(&o.chunks, "chunks", 16, "mock upstream: chunks per streamed reply")
	fs.DurationVar(&o.chunkDelay, "chunk-delay", 0, "mock upstream: delay between streamed chunks")
	fs.DurationVar(&o.latency, "latency", 0, "mock upstream: delay before the response headers")
	fs.StringVar(&o.resultsDir, "results", "hack/bench/results", "folder for the markdown report (and profiles)")
	fs.BoolVar(&o.profile, "profile", false, "after the table, profile the data plane (CPU + allocations) under chat load")
	fs.BoolVar(&o.profileOnly, "profile-only", false, "only profile, no table")
	fs.DurationVar(&o.profileFor, "profile-seconds", 10*time.Second, "profile length")
	fs.IntVar(&o.profileConc, "profile-concurrency", 16, "concurrency while profiling")
	fs.StringVar(&o.profileKind, "profile-kind", "chat", "load while profiling: chat or stream")
	fs.BoolVar(&o.useWrk, "wrk", true, "drive chat cells with wrk (false: the Go load generator)")
	fs.StringVar(&o.dataplaneLog, "dataplane-log-level", "info", "the data plane's --log-level (info = access log per request, as in production)")
	fs.BoolVar(&o.table, "table", true, "measure the side-by-side table (false: only --profile and/or --hold-streams)")
	fs.IntVar(&o.holdStreams, "hold-streams", 0, "also hold this many streams open at once (e.g. 1000) and report peak RSS")
	fs.DurationVar(&o.holdFor, "hold-for", 5*time.Second, "how long each held stream lasts")
	fs.BoolVar(&o.holdProfile, "hold-profile", false, "with --hold-streams: also hold them through a pprof build of the data plane and save its heap and goroutine profiles while they are open")
	fs.BoolVar(&o.holdTLS, "hold-tls", false, "with --hold-streams: the slow mock serves HTTPS with HTTP/2, as hosted providers do (a self-signed certificate the floor and the data plane trust through SSL_CERT_FILE)")
	fs.StringVar(&o.compareRev, "compare-rev", "", "also measure a data plane built from this git revision (e.g. HEAD~1), interleaved with the working tree's, in the table and with --hold-streams: before and after in one run")
	fs.BoolVar(&o.profileBare, "profile-bare", false, "with --profile: profile the --bare data plane (no chain, no access log) instead of the full one")
	fs.BoolVar(&o.bare, "bare", false, "also measure the data plane on a route with no rate limit, budget, guardrail or cache and no access log (hack/bench/manifests-bare): its plumbing alone")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for f := range strings.SplitSeq(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return o, fmt.Errorf("invalid --concurrency %q: want integers in 1..1024", conc)
		}
		o.concurrency = append(o.concurrency, n)
	}
	for f := range strings.SplitSeq(kinds, ",") {
		k := strings.TrimSpace(f)
		if k != "chat" && k != "stream" {
			return o, fmt.Errorf("invalid --kinds %q: want chat and/or stream", kinds)
		}
		o.kinds = append(o.kinds, k)
	}
	if o.duration < time.Second || o.duration > 60*time.Second || o.duration%time.Second != 0 {
		return o, errors.New("--duration must be whole seconds in 1s..60s")
	}
	if o.rounds < 1 || o.rounds > 20 {
		return o, errors.New("--rounds must be 1..20")
	}
	if o.profileOnly {
		o.profile, o.table = true, false
	}
	if o.profileKind != "chat" && o.profileKind != "stream" {
		return o, errors.New("--profile-kind must be chat or stream")
	}
	if o.holdStreams < 0 || o.holdStreams > 5000 {
		return o, errors.New("--hold-streams must be 0..5000")
	}
	if o.holdFor < time.Second || o.holdFor > time.Minute {
		return o, errors.New("--hold-for must be in 1s..1m")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ai-bench-")
	if err != nil {
		return fmt.Errorf("failed to create a temporary folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	pm := &procs{}
	defer pm.StopAll()

	logf("building mockupstream, floor and dataplane")
	bins, err := build(ctx, root, tmp, o.profile || o.holdProfile && o.holdStreams > 0)
	if err != nil {
		return err
	}
	if o.compareRev != "" {
		if err := buildRevision(ctx, root, tmp, o.compareRev, bins); err != nil {
			return err
		}
	}
	wrkPath := ""
	if o.useWrk && slices.Contains(o.kinds, "chat") || o.profile {
		if wrkPath, err = ensureWrk(ctx); err != nil {
			return err
		}
	}
	luaPath := filepath.Join(root, "hack", "bench", "chat.lua")
	w := newWorkload(o.systemBytes, o.promptBytes)

	mock, err := pm.startListening(ctx, "mock", bins["mockupstream"], "--addr", "127.0.0.1:0", "--kind", "openai",
		"--latency", o.latency.String(), "--chunks", strconv.Itoa(o.chunks), "--chunk-delay", o.chunkDelay.String())
	if err != nil {
		return err
	}
	floor, err := pm.startListening(ctx, "floor", bins["floor"], "--addr", "127.0.0.1:0", "--upstream", mock.url)
	if err != nil {
		return err
	}
	targets := []*proc{mock, floor}
	var redisPID int
	if o.table {
		dp, err := startDataplane(ctx, pm, "dataplane", bins["dataplane"], root, tmp, mock.url, "", o.dataplaneLog, "")
		if err != nil {
			return err
		}
		targets = append(targets, dp)
		if o.bare {
			dpb, err := startDataplane(ctx, pm, bareTarget, bins["dataplane"], root, tmp, mock.url, "", "warn", "")
			if err != nil {
				return err
			}
			targets = append(targets, dpb)
		}
		if name, bin := compareTarget(bins); bin != "" {
			dpc, err := startDataplane(ctx, pm, name, bin, root, tmp, mock.url, "", o.dataplaneLog, "")
			if err != nil {
				return err
			}
			targets = append(targets, dpc)
		}
		if o.redisURL != "" {
			dpr, err := startDataplane(ctx, pm, "dataplane+redis", bins["dataplane"], root, tmp, mock.url, o.redisURL, o.dataplaneLog, "")
			if err != nil {
				return err
			}
			targets = append(targets, dpr)
			if redisPID, err = redisProcessID(ctx, o.redisURL); err != nil {
				logf("redis-server CPU will not be reported: %v", err)
			}
		}
	}
	mock.Name = "direct"

	var rep *report
	if o.table {
		rep = &report{opts: o, started: time.Now().UTC(), targets: names(targets), results: map[cellKey][]cellResult{}}
		if err := measure(ctx, o, rep, targets, mock, redisPID, w, wrkPath, luaPath); err != nil {
			return err
		}
	}
	var prof *profileResult
	if o.profile {
		if prof, err = profileDataplane(ctx, o, pm, bins, root, tmp, mock.url, w, wrkPath, luaPath); err != nil {
			return err
		}
	}
	var hold *holdReport
	if o.holdStreams > 0 {
		if hold, err = holdStreams(ctx, o, pm, bins, root, tmp, w); err != nil {
			return err
		}
	}
	return writeReport(o, root, rep, prof, hold)
}

func names(ps []*proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// measure runs every cell: for each kind and concurrency, rounds × targets, the targets'
// order rotating each round so none is always measured first (or right after a warm-up).
func measure(ctx context.Context, o options, rep *report, targets []*proc, mock *proc, redisPID int, w *workload, wrkPath, luaPath string) error {
	gen := func(kind string, c int, d time.Duration, url string) (loadResult, error) {
		if kind == "chat" && wrkPath != "" {
			return runWrk(ctx, wrkPath, luaPath, url, c, d, w)
		}
		return runGo(ctx, kind == "stream", url, c, d, w)
	}
	for _, t := range targets {
		for _, kind := range o.kinds {
			if _, err := gen(kind, 16, o.warmup.Truncate(time.Second)+time.Second, t.url); err != nil {
				return fmt.Errorf("warm-up of %s (%s) failed: %w", t.Name, kind, err)
			}
		}
	}
	total := len(o.kinds) * len(o.concurrency) * o.rounds * len(targets)
	n := 0
	for _, kind := range o.kinds {
		for _, c := range o.concurrency {
			for r := range o.rounds {
				for i := range targets {
					t := targets[(i+r)%len(targets)]
					n++
					logf("[%d/%d] %s c=%d round %d: %s", n, total, kind, c, r+1, t.Name)
					t.resetPeak()
					before := t.cpu()
					cBefore := t.counters()
					mockBefore := mock.cpu()
					redisBefore := cpuOf(redisPID)
					res, err := gen(kind, c, o.duration, t.url)
					if err != nil {
						return fmt.Errorf("%s c=%d %s: %w", kind, c, t.Name, err)
					}
					after := t.cpu()
					cAfter := t.counters()
					if res.requests > 0 {
						reqs := float64(res.requests)
						res.readCallsPerReq = float64(cAfter.io.reads-cBefore.io.reads) / reqs
						res.writeCallsPerReq = float64(cAfter.io.writes-cBefore.io.writes) / reqs
						cs := ctxSwitchDelta(cBefore.ctx, cAfter.ctx)
						res.volCSPerReq, res.involCSPerReq = float64(cs.voluntary)/reqs, float64(cs.involuntary)/reqs
						res.cpuMsPerReq = float64((after - before).Microseconds()) / 1000 / float64(res.requests)
						if t != mock {
							res.upstreamCPUMsPerReq = float64((mock.cpu() - mockBefore).Microseconds()) / 1000 / float64(res.requests)
						}
						if redisPID > 0 && strings.Contains(t.Name, "redis") {
							res.redisCPUMsPerReq = float64((cpuOf(redisPID) - redisBefore).Microseconds()) / 1000 / float64(res.requests)
						}
					}
					res.peakRSS = t.peakRSS()
					logf("    %.0f req/s p50 %s p99 %s ttfb50 %s cpu %.3f ms/req io %.2f/req cs %.2f/req errors %d", res.rps, res.p50, res.p99, res.ttfb50, res.cpuMsPerReq,
						res.readCallsPerReq+res.writeCallsPerReq, res.volCSPerReq+res.involCSPerReq, res.errors)
					k := cellKey{kind: kind, c: c, target: t.Name}
					rep.results[k] = append(rep.results[k], res)
				}
			}
		}
	}
	rep.finished = time.Now().UTC()
	return nil
}
