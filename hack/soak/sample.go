package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nself-org/ai-orchestration/hack/internal/harness"
)

// The data plane's /metrics series the soak reads (unlabelled ones only): the Go and process
// collectors' standard names and the data plane's own.
const (
	mGoroutines  = "go_goroutines"
	mHeapInuse   = "go_memstats_heap_inuse_bytes"
	mOpenFDs     = "process_open_fds"
	mStreamsOpen = "aigw_streams_open"
	mReloads     = "aigw_config_reloads_total"
	mLoadErrors  = "aigw_config_load_errors_total"
)

// sample is one reading. Request counts are for the interval since the previous sample;
// reloads and load errors are the data plane's running totals.
type sample struct {
	at                          time.Duration // since the load started
	rss, heap                   int64
	goroutines, fds, streamsNow int64
	chatOK, chatErr             int64
	streamOK, streamErr, cutOff int64
	reloads, loadErrors         int64
	writes                      int64 // manifest changes the soak made so far
}

// scrape reads the wanted series from a Prometheus text exposition.
func scrape(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to scrape %s: HTTP %d", url, resp.StatusCode)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	want := map[string]bool{mGoroutines: true, mHeapInuse: true, mOpenFDs: true, mStreamsOpen: true, mReloads: true, mLoadErrors: true}
	out := map[string]float64{}
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("malformed metric line %q: %w", sc.Text(), err)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read metrics: %w", err)
	}
	for _, n := range []string{mGoroutines, mHeapInuse} {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("the data plane's /metrics has no %s", n)
		}
	}
	return out, nil
}

// take reads the process and its metrics and the interval's counts (resetting them).
func take(ctx context.Context, client *http.Client, metricsURL string, pid int, c *counts, writes int64, at time.Duration) (sample, error) {
	m, err := scrape(ctx, client, metricsURL)
	if err != nil {
		return sample{}, err
	}
	fds := int64(openFDs(pid))
	if fds < 0 {
		fds = int64(m[mOpenFDs])
	}
	return sample{
		at: at, rss: harness.StatusBytes(pid, "VmRSS:"), heap: int64(m[mHeapInuse]),
		goroutines: int64(m[mGoroutines]), fds: fds, streamsNow: int64(m[mStreamsOpen]),
		chatOK: c.chatOK.Swap(0), chatErr: c.chatErr.Swap(0),
		streamOK: c.streamOK.Swap(0), streamErr: c.streamErr.Swap(0), cutOff: c.cutOff.Swap(0),
		reloads: int64(m[mReloads]), loadErrors: int64(m[mLoadErrors]), writes: writes,
	}, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// line is the one-line progress print of a sample.
func (s sample) line() string {
	return fmt.Sprintf("%7s  rss %6.1f MiB  heap %6.1f MiB  goroutines %5d  fds %4d  streams %3d  chat ok/err %6d/%d  stream ok/err/cut %5d/%d/%d  changes/reloads %d/%d",
		fmtDur(s.at), mib(s.rss), mib(s.heap), s.goroutines, s.fds, s.streamsNow,
		s.chatOK, s.chatErr, s.streamOK, s.streamErr, s.cutOff, s.writes, s.reloads)
}

func fmtDur(d time.Duration) string { return d.Round(time.Second).String() }
