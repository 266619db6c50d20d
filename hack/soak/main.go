// Command soak holds a steady load on the data plane for a long while and records its memory
// and goroutines over time, to show they level off after warm-up instead of growing:
//
//   - chat: N clients sending non-streamed requests under one shared rate cap;
//   - streams: M clients opening streams from a slow mock (chunks with a delay), reading them
//     as they come and closing them, every cut-every-th one early on purpose;
//   - reloads: every K seconds a change to the manifest folder the data plane watches (a budget
//     bumped, an extra route added or removed), i.e. a new snapshot swapped in under load.
//
// Every S seconds it reads VmRSS and the open fds from /proc and go_goroutines,
// go_memstats_heap_inuse_bytes, aigw_streams_open and aigw_config_reloads_total from /metrics,
// prints a line, and at the end writes hack/soak/results/<UTC time>.md (table, summary, verdict)
// and .csv. See README.md for the verdict's thresholds.
//
//	go run ./hack/soak                             # 30 min, 5 min warm-up
//	go run ./hack/soak -duration 2m -warmup 30s    # quick look
//	go run ./hack/soak -redis-url redis://127.0.0.1:6379/0
//
// Everything listens on 127.0.0.1 and every started process is stopped at the end, Ctrl-C
// included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nself-org/ai-orchestration/hack/internal/harness"
)

type options struct {
	duration, warmup, interval time.Duration
	chatClients                int
	chatRate                   float64
	streams                    int
	cutEvery                   int64
	chunks                     int
	chunkDelay                 time.Duration
	reloadEvery                time.Duration
	cacheTTL                   time.Duration
	prompts                    int64
	redisURL                   string
	logLevel                   string
	results                    string
	lim                        limits
	args                       []string // as given, for the report
}

func parseFlags(args []string) (options, error) {
	o := options{args: args}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "how long the load is held")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Minute, "first part of the run left out of the summary")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "time between samples")
	fs.IntVar(&o.chatClients, "chat-clients", 8, "concurrent non-streamed chat clients")
	fs.Float64Var(&o.chatRate, "chat-rate", 300, "cap on chat requests per second, all clients together")
	fs.IntVar(&o.streams, "streams", 50, "concurrent stream clients (each opens the next stream when one ends)")
	fs.Int64Var(&o.cutEvery, "cut-every", 10, "each stream client closes every n-th stream after its first bytes (0: never)")
	fs.IntVar(&o.chunks, "chunks", 20, "chunks per streamed reply from the mock")
	fs.DurationVar(&o.chunkDelay, "chunk-delay", 100*time.Millisecond, "delay between the mock's chunks (a stream lasts chunks x delay)")
	fs.DurationVar(&o.reloadEvery, "reload-every", 30*time.Second, "time between manifest changes (0: none)")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", time.Minute, "response cache TTL in the soak's copy of the route (sets when the cache stops growing)")
	fs.Int64Var(&o.prompts, "prompts", 20000, "distinct prompts, cycled (0: every prompt unique, and the embedded cache fills to its 64 MiB bound)")
	fs.StringVar(&o.redisURL, "redis-url", "", "run the data plane on this Redis (default: embedded store)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "data plane log level (info logs every request to a temp file)")
	fs.StringVar(&o.results, "results", "hack/soak/results", "folder of the reports, relative to the repository")
	fs.Float64Var(&o.lim.memSlopeMiB, "max-mem-slope", 2, "verdict: largest RSS and heap slope, MiB per 10 min")
	fs.Float64Var(&o.lim.goroutineSlope, "max-goroutine-slope", 10, "verdict: largest goroutine slope per 10 min")
	band := fs.Int64("goroutine-band", 0, "verdict: largest goroutine max-min after warm-up (0: 4 per concurrent client)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case o.duration <= o.warmup:
		return o, errors.New("-duration must exceed -warmup")
	case o.interval <= 0 || o.chatRate <= 0 || o.chatClients < 0 || o.streams < 0 || o.prompts < 0:
		return o, errors.New("-interval and -chat-rate must be positive, -chat-clients, -streams and -prompts not negative")
	}
	// A request or stream in flight holds a few goroutines in the data plane (its connection,
	// the upstream connection's read and write loops, a stream's pump); how many are in flight
	// at a sample instant varies, a leak does not come back down.
	o.lim.goroutineBand = *band
	if o.lim.goroutineBand <= 0 {
		o.lim.goroutineBand = 4 * int64(o.chatClients+o.streams)
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, o)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) error {
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return fmt.Errorf("failed to create a temp folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	var procs harness.Group
	defer procs.StopAll()

	logf("building cmd/mockupstream and cmd/dataplane")
	mockBin, err := buildBinary(ctx, root, tmp, "./cmd/mockupstream")
	if err != nil {
		return err
	}
	dpBin, err := buildBinary(ctx, root, tmp, "./cmd/dataplane")
	if err != nil {
		return err
	}

	mockAddr, err := freeAddr()
	if err != nil {
		return err
	}
	mock, err := procs.Start("mockupstream", mockBin, nil, filepath.Join(tmp, "mockupstream.log"), nil, "--addr", mockAddr, "--kind", "openai",
		"--chunks", fmt.Sprint(o.chunks), "--chunk-delay", o.chunkDelay.String())
	if err != nil {
		return err
	}
	if err := waitReady(ctx, mock, "http://"+mockAddr+"/"); err != nil {
		return err
	}

	dir := filepath.Join(tmp, "manifests")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	if err := copyManifests(root, dir, "http://"+mockAddr, o.cacheTTL); err != nil {
		return err
	}
	dpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"--manifests", dir, "--addr", dpAddr, "--log-level", o.logLevel, "--poll-interval", "1s"}
	if o.redisURL != "" {
		args = append(args, "--redis-url", o.redisURL)
	}
	dp, err := procs.Start("dataplane", dpBin, nil, filepath.Join(tmp, "dataplane.log"), nil, args...)
	if err != nil {
		return err
	}
	base := "http://" + dpAddr
	if err := waitReady(ctx, dp, base+"/readyz"); err != nil {
		return fmt.Errorf("%w\n%s", err, harness.Tail(dp.Log))
	}
	store := "embedded store"
	if o.redisURL != "" {
		store = "Redis " + o.redisURL
	}
	logf("data plane pid %d on %s (%s), mock on %s", dp.PID, base, store, mockAddr)
	logf("load for %s: %d chat clients <= %.0f req/s, %d stream clients (%d chunks x %s), reload every %s; sample every %s",
		o.duration, o.chatClients, o.chatRate, o.streams, o.chunks, o.chunkDelay, o.reloadEvery, o.interval)

	out, err := soak(ctx, o, base, dp, dir)
	samples := out.samples
	interrupted := ctx.Err() != nil
	if err != nil && !interrupted {
		return fmt.Errorf("%w\ndata plane log:\n%s", err, harness.Tail(dp.Log))
	}
	sm := summarize(samples, o.warmup, o.lim, out.writes, out.firstErr)
	fmt.Println()
	fmt.Print(sm.markdown(o.lim))
	path, werr := writeReport(root, o, samples, sm, interrupted)
	if werr != nil {
		return werr
	}
	logf("report: %s (and .csv)", path)
	if interrupted {
		logf("interrupted after %s", fmtDur(lastAt(samples)))
		return nil
	}
	if len(sm.failures) > 0 || (sm.span >= minTrendSpan && len(sm.trends) > 0) {
		return errors.New("not flat") // a non-zero exit, for scripts
	}
	return nil
}

// soak holds the load and samples until the duration ends or ctx is cancelled; it returns the
// samples taken so far either way.
// outcome is what soak returns besides its own failure.
type outcome struct {
	samples  []sample
	writes   int64 // manifest changes made
	firstErr error // the first failed request, if any
}

func soak(ctx context.Context, o options, base string, dp *harness.Proc, dir string) (outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	c := &counts{}
	l := &load{prompts: o.prompts, base: base, client: newClient(o.chatClients + o.streams), counts: c}
	var wg sync.WaitGroup
	wg.Go(func() { l.run(ctx, o.chatClients, o.chatRate, o.streams, o.cutEvery) })
	var writes atomic.Int64
	var reloadErr error
	if o.reloadEvery > 0 {
		wg.Go(func() {
			t := time.NewTicker(o.reloadEvery)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if err := reload(dir, n); err != nil {
					reloadErr = err
					cancel()
					return
				}
				writes.Add(1)
			}
		})
	}
	// The sampler has its own client: a scrape must not queue behind the load's connections.
	mc := newClient(2)
	start := time.Now()
	t := time.NewTicker(o.interval)
	defer t.Stop()
	var samples []sample
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-dp.Done:
			err = errors.New("the data plane exited during the soak")
			break loop
		case <-t.C:
		}
		s, serr := take(ctx, mc, base+"/metrics", dp.PID, c, writes.Load(), time.Since(start))
		if serr != nil {
			if ctx.Err() == nil {
				err = serr
			}
			break loop // else a scrape cut by the end of the run
		}
		samples = append(samples, s)
		fmt.Println(s.line())
	}
	cancel()
	wg.Wait()
	if reloadErr != nil {
		err = reloadErr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return outcome{samples: samples, writes: writes.Load(), firstErr: c.firstErr}, err
}

func lastAt(xs []sample) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1].at
}

func writeReport(root string, o options, samples []sample, sm summary, interrupted bool) (string, error) {
	dir := o.results
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("failed to create %s: %w", dir, err)
	}
	stamp := time.Now().UTC().Format("2006-01-02T1504Z")
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak %s\n\n", stamp)
	store := "embedded store"
	if o.redisURL != "" {
		store = "Redis"
	}
	fmt.Fprintf(&b, "`go run ./hack/soak %s` — %s of load, data plane on the %s; %d chat clients capped at %.0f req/s, "+
		"%d stream clients (%d chunks x %s, every %d-th cut by the client), a manifest change every %s, %d distinct prompts (0: all unique), cache TTL %s, a sample every %s.\n\n",
		strings.Join(o.args, " "), o.duration, store, o.chatClients, o.chatRate, o.streams, o.chunks, o.chunkDelay, o.cutEvery, o.reloadEvery, o.prompts, o.cacheTTL, o.interval)
	if interrupted {
		fmt.Fprintf(&b, "**Interrupted** after %s.\n\n", fmtDur(lastAt(samples)))
	}
	b.WriteString(sm.markdown(o.lim))
	b.WriteString("\n## Samples\n\nRequest counts are per interval; reloads are the data plane's running total.\n\n")
	b.WriteString(samplesMarkdown(samples, o.warmup))
	md := filepath.Join(dir, stamp+".md")
	if err := os.WriteFile(md, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("failed to write %s: %w", md, err)
	}
	var c strings.Builder
	c.WriteString(csvHeader + "\n")
	for _, s := range samples {
		c.WriteString(s.csv() + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, stamp+".csv"), []byte(c.String()), 0o644); err != nil {
		return "", fmt.Errorf("failed to write the CSV: %w", err)
	}
	return md, nil
}
