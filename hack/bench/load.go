package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nself-org/ai-orchestration/internal/loadtext"
)

// Request shape shared by every target: the same bytes go to the mock, the floor and the data
// plane, so the only difference measured is what sits in between.
const (
	benchPath  = "/v1/chat/completions"
	benchModel = "gpt-4o-mini"
	benchKey   = "bench-app-key"
	benchOrg   = "bench"
	// benchUsers spreads requests over this many users (per-user limits and budgets see a
	// realistic population); the prompt is unique per request, so the cache always misses.
	benchUsers = 1000
)

// workload holds the constant parts of the request bodies, already JSON-escaped (they are
// plain ASCII words).
type workload struct {
	system string
	filler string
}

func newWorkload(systemBytes, promptBytes int) *workload {
	return &workload{
		system: loadtext.Prose(max(systemBytes, 1), 0),
		filler: loadtext.Prose(max(promptBytes-32, 1), 3),
	}
}

// body is one request: user n%benchUsers, a prompt made unique by nonce and n.
func (w *workload) body(stream bool, nonce string, n int64) []byte {
	var b bytes.Buffer
	b.Grow(len(w.system) + len(w.filler) + 256)
	b.WriteString(`{"model":"` + benchModel + `","user":"bench-user-`)
	b.WriteString(strconv.FormatInt(n%benchUsers, 10))
	b.WriteString(`","stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"system","content":"`)
	b.WriteString(w.system)
	b.WriteString(`"},{"role":"user","content":"Request `)
	b.WriteString(nonce)
	b.WriteByte('-')
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteString(`: `)
	b.WriteString(w.filler)
	b.WriteString(`"}]}`)
	return b.Bytes()
}

// loadResult is one measured cell.
type loadResult struct {
	requests, errors    int64
	rps                 float64
	p50, p90, p99       time.Duration
	ttfb50, ttfb99      time.Duration
	cpuMsPerReq         float64 // the target process's own CPU
	upstreamCPUMsPerReq float64 // the mock's, when the target is a proxy
	redisCPUMsPerReq    float64
	peakRSS             int64
	// Per request, of the target process: read- and write-family system calls
	// (/proc/PID/io) and context switches summed over its threads.
	readCallsPerReq, writeCallsPerReq float64
	volCSPerReq, involCSPerReq        float64
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

var cellSeq atomic.Int64

func nonce() string {
	return strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "x" + strconv.FormatInt(cellSeq.Add(1), 36)
}

// runGo drives c workers for d against base with Go's HTTP client, measuring the whole exchange
// and the time to the first body byte. A streamed reply counts as an error unless it ends with
// the OpenAI terminator "data: [DONE]" (the stream was cut otherwise).
func runGo(ctx context.Context, stream bool, base string, c int, d time.Duration, w *workload) (loadResult, error) {
	tr := &http.Transport{MaxIdleConns: c * 2, MaxIdleConnsPerHost: c * 2, IdleConnTimeout: time.Minute, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	n := nonce()
	var (
		seq       atomic.Int64
		mu        sync.Mutex
		lat, ttfb []time.Duration
		errs      int64
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range c {
		wg.Go(func() {
			myLat := make([]time.Duration, 0, 4096)
			myTTFB := make([]time.Duration, 0, 4096)
			var myErrs int64
			var myFirst error
			buf := make([]byte, 32<<10)
			for ctx.Err() == nil {
				body := w.body(stream, n, seq.Add(1))
				t0 := time.Now()
				first, err := exchange(ctx, client, base, body, stream, buf)
				if err != nil && ctx.Err() != nil {
					break // cut by the end of the cell, not a failure
				}
				if err != nil {
					myErrs++
					if myFirst == nil {
						myFirst = err
					}
					continue
				}
				myLat = append(myLat, time.Since(t0))
				myTTFB = append(myTTFB, first.Sub(t0))
			}
			mu.Lock()
			lat = append(lat, myLat...)
			ttfb = append(ttfb, myTTFB...)
			errs += myErrs
			if firstErr == nil {
				firstErr = myFirst
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	slices.Sort(ttfb)
	res := loadResult{
		requests: int64(len(lat)), errors: errs, rps: float64(len(lat)) / elapsed.Seconds(),
		p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99),
		ttfb50: pct(ttfb, 50), ttfb99: pct(ttfb, 99),
	}
	if len(lat) == 0 && firstErr != nil {
		return res, fmt.Errorf("every request failed: %w", firstErr)
	}
	if firstErr != nil {
		logf("    %d errors, first: %v", errs, firstErr)
	}
	return res, nil
}

var errCut = errors.New("stream ended without data: [DONE]")

// streamsOpen counts the exchanges that have received their first byte and not yet ended: the
// hold test reports how many were open at once.
var streamsOpen atomic.Int64

func exchange(ctx context.Context, client *http.Client, base string, body []byte, stream bool, buf []byte) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+benchPath, bytes.NewReader(body))
	if err != nil {
		return time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchKey)
	req.Header.Set("X-AI-Org", benchOrg)
	resp, err := client.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	var first time.Time
	var tailBuf []byte
	defer func() {
		if !first.IsZero() {
			streamsOpen.Add(-1)
		}
	}()
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if first.IsZero() {
				first = time.Now()
				streamsOpen.Add(1)
			}
			tailBuf = append(tailBuf, buf[:n]...)
			if len(tailBuf) > 64 {
				tailBuf = tailBuf[len(tailBuf)-64:]
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return first, rerr
		}
	}
	if resp.StatusCode != http.StatusOK {
		return first, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if stream && !bytes.Contains(tailBuf, []byte("[DONE]")) {
		return first, errCut
	}
	return first, nil
}

// runWrk drives a chat cell with wrk and hack/bench/chat.lua, which builds the same bodies as
// [workload.body] and prints one "BENCH ..." line with the counts and percentiles.
func runWrk(ctx context.Context, wrk, lua, base string, c int, d time.Duration, w *workload) (loadResult, error) {
	threads := min(c, 2)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(c), "-d", strconv.Itoa(int(d.Seconds())) + "s",
		"--timeout", "10s", "-s", lua, base + benchPath, "--",
		benchModel, benchKey, benchOrg, strconv.Itoa(benchUsers), nonce(), w.system, w.filler}
	cmd := exec.CommandContext(ctx, wrk, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk failed: %w\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f, ok := strings.CutPrefix(sc.Text(), "BENCH ")
		if !ok {
			continue
		}
		return parseWrkLine(f)
	}
	return loadResult{}, fmt.Errorf("wrk printed no BENCH line:\n%s", out)
}

// parseWrkLine reads "requests duration_us p50_us p90_us p99_us status_errors socket_errors".
func parseWrkLine(s string) (loadResult, error) {
	f := strings.Fields(s)
	if len(f) != 7 {
		return loadResult{}, fmt.Errorf("malformed BENCH line %q", s)
	}
	v := make([]int64, len(f))
	for i, x := range f {
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return loadResult{}, fmt.Errorf("malformed BENCH line %q: %w", s, err)
		}
		v[i] = int64(n)
	}
	us := func(n int64) time.Duration { return time.Duration(n) * time.Microsecond }
	res := loadResult{requests: v[0], errors: v[5] + v[6], p50: us(v[2]), p90: us(v[3]), p99: us(v[4])}
	if v[1] > 0 {
		res.rps = float64(v[0]) / (float64(v[1]) / 1e6)
	}
	if res.requests > 0 && res.errors >= res.requests {
		return res, fmt.Errorf("every request failed (%d errors)", res.errors)
	}
	return res, nil
}
