// Command load is a small, bounded HTTP load generator for the data plane: N concurrent
// workers send chat requests for a fixed time (or up to a request count) to a gateway on the
// loopback interface, then it prints throughput and latency percentiles.
//
//	go run ./hack/load -url http://127.0.0.1:3109 -c 64 -d 10s
//	go run ./hack/load -c 1 -d 5s -stream
//
// It refuses non-loopback targets: it is a test tool, not a way to load someone else's server.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	url         string
	path        string
	key         string
	model       string
	concurrency int
	duration    time.Duration
	maxRequests int64
	users       int
	stream      bool
	timeout     time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:3109", "gateway base URL (loopback only)")
	flag.StringVar(&o.path, "path", "/api/ai/chat", "endpoint: /api/ai/chat or /v1/chat/completions")
	flag.StringVar(&o.key, "key", "dev-admin-key", "bearer API key")
	flag.StringVar(&o.model, "model", "gpt-4o-mini", "model to request")
	flag.IntVar(&o.concurrency, "c", 16, "concurrent workers")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "how long to run (at most 5m)")
	flag.Int64Var(&o.maxRequests, "n", 0, "stop after this many requests (0 = duration only)")
	flag.IntVar(&o.users, "users", 1000, "spread requests over this many user ids (per-user limits)")
	flag.BoolVar(&o.stream, "stream", false, "request streamed replies (latency = whole stream)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.Parse()
	rep, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	fmt.Print(rep)
}

// Report is the outcome of a run.
type Report struct {
	Requests   int64
	Errors     int64
	ByStatus   map[int]int64
	Elapsed    time.Duration
	Latencies  []time.Duration // sorted
	Concurrent int
}

// RPS is the completed-request rate.
func (r *Report) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// Percentile returns the p-th percentile latency (nearest rank).
func (r *Report) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(p/100*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

func (r *Report) String() string {
	codes := make([]int, 0, len(r.ByStatus))
	for c := range r.ByStatus {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b bytes.Buffer
	fmt.Fprintf(&b, "concurrency %d, %s: %d requests, %d errors, %.0f req/s\n", r.Concurrent, r.Elapsed.Round(time.Millisecond), r.Requests, r.Errors, r.RPS())
	fmt.Fprintf(&b, "latency p50 %s  p90 %s  p99 %s  max %s\n", r.Percentile(50), r.Percentile(90), r.Percentile(99), r.Percentile(100))
	for _, c := range codes {
		fmt.Fprintf(&b, "  HTTP %d: %d\n", c, r.ByStatus[c])
	}
	return b.String()
}

func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("failed to parse -url: %w", err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q is not a loopback address: this tool only loads local gateways", raw)
}

func run(ctx context.Context, o options) (*Report, error) {
	if err := checkLoopback(o.url); err != nil {
		return nil, err
	}
	if o.concurrency < 1 || o.concurrency > 4096 {
		return nil, fmt.Errorf("-c must be 1..4096")
	}
	if o.duration <= 0 || o.duration > 5*time.Minute {
		return nil, fmt.Errorf("-d must be in (0, 5m]")
	}
	if o.users < 1 {
		o.users = 1
	}
	tr := &http.Transport{MaxIdleConns: o.concurrency * 2, MaxIdleConnsPerHost: o.concurrency * 2, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: o.timeout}
	defer tr.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		issued atomic.Int64
		mu     sync.Mutex
		rep    = &Report{ByStatus: map[int]int64{}, Concurrent: o.concurrency}
		wg     sync.WaitGroup
	)
	start := time.Now()
	for w := range o.concurrency {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			status := map[int]int64{}
			var errs int64
			for ctx.Err() == nil {
				n := issued.Add(1)
				if o.maxRequests > 0 && n > o.maxRequests {
					break
				}
				body := requestBody(o, int(n)%o.users, w)
				t0 := time.Now()
				code, err := send(ctx, client, o, body)
				if ctx.Err() != nil && err != nil {
					break // cut by the deadline: not a gateway error
				}
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					status[0]++
					continue
				}
				status[code]++
				if code != http.StatusOK {
					errs++
				}
			}
			mu.Lock()
			rep.Latencies = append(rep.Latencies, lat...)
			rep.Errors += errs
			for c, k := range status {
				rep.ByStatus[c] += k
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	rep.Requests = int64(len(rep.Latencies))
	slices.Sort(rep.Latencies)
	return rep, nil
}

func requestBody(o options, user, worker int) []byte {
	u := "load-user-" + strconv.Itoa(user)
	msg := `[{"role":"user","content":"Hello from load worker ` + strconv.Itoa(worker) + `"}]`
	if o.path == "/v1/chat/completions" {
		return []byte(`{"model":"` + o.model + `","user":"` + u + `","stream":` + strconv.FormatBool(o.stream) + `,"messages":` + msg + `}`)
	}
	return []byte(`{"model":"` + o.model + `","userId":"` + u + `","stream":` + strconv.FormatBool(o.stream) + `,"messages":` + msg + `}`)
}

func send(ctx context.Context, c *http.Client, o options, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url+o.path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+o.key)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}
