package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The client key, org and model of hack/bench/manifests.
const (
	chatPath  = "/v1/chat/completions"
	chatModel = "gpt-4o-mini"
	clientKey = "bench-app-key"
	clientOrg = "bench"
	// users spreads requests over this many users, so per-user limits, budgets and cache
	// scopes hold a realistic, bounded population.
	users = 1000
)

// counts are the load's outcomes; the sampler swaps them to zero each interval.
type counts struct {
	chatOK, chatErr             atomic.Int64
	streamOK, streamErr, cutOff atomic.Int64

	mu       sync.Mutex
	firstErr error
}

func (c *counts) fail(n *atomic.Int64, err error) {
	n.Add(1)
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

type load struct {
	// prompts bounds the distinct prompts (0: every one unique); see the -prompts flag.
	prompts int64
	base    string
	client  *http.Client
	seq     atomic.Int64
	counts  *counts
}

// body is one request for user n % users, with prompt n % prompts: a prompt comes back only
// after all others, by then (at the default rate and TTL) expired from the cache, so the
// provider is called while the cache holds a bounded set of keys.
func (l *load) body(stream bool) []byte {
	n := l.seq.Add(1)
	p := n
	if l.prompts > 0 {
		p = n % l.prompts
	}
	return fmt.Appendf(nil, `{"model":%q,"user":"soak-user-%d","stream":%t,"messages":[`+
		`{"role":"system","content":"You answer questions about quarterly reports."},`+
		`{"role":"user","content":"Soak request %d: summarise the key risks for next quarter."}]}`,
		chatModel, n%users, stream, p)
}

func (l *load) post(ctx context.Context, stream bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+chatPath, bytes.NewReader(l.body(stream)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	req.Header.Set("X-AI-Org", clientOrg)
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return resp, nil
}

// chat sends non-streamed requests until ctx ends, as fast as the shared limiter allows.
func (l *load) chat(ctx context.Context, lim *rate.Limiter) {
	for lim.Wait(ctx) == nil {
		resp, err := l.post(ctx, false)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		switch {
		case ctx.Err() != nil:
			return // cut by the end of the run, not a failure
		case err != nil:
			l.counts.fail(&l.counts.chatErr, fmt.Errorf("chat: %w", err))
		default:
			l.counts.chatOK.Add(1)
		}
	}
}

var errNoDone = errors.New("stream ended without data: [DONE]")

// stream opens one stream after the other until ctx ends, reading each in small pieces as the
// slow mock sends them. Every cutEvery-th stream (0: none) is closed after its first bytes, on
// purpose, so the client-gone path (upstream cancelled, budget settled) runs all along; offset
// staggers the clients so the cuts do not all fall in the same instant.
func (l *load) stream(ctx context.Context, cutEvery, offset int64) {
	buf := make([]byte, 256)
	for i := offset + 1; ctx.Err() == nil; i++ {
		cut := cutEvery > 0 && i%cutEvery == 0
		err := l.oneStream(ctx, buf, cut)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			l.counts.fail(&l.counts.streamErr, fmt.Errorf("stream: %w", err))
		case cut:
			l.counts.cutOff.Add(1)
		default:
			l.counts.streamOK.Add(1)
		}
	}
}

func (l *load) oneStream(ctx context.Context, buf []byte, cut bool) error {
	resp, err := l.post(ctx, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var tail []byte
	for {
		n, err := resp.Body.Read(buf)
		tail = append(tail, buf[:n]...)
		if len(tail) > 64 {
			tail = tail[len(tail)-64:]
		}
		if n > 0 && cut {
			return nil // closing the body now drops the connection mid-stream
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if !bytes.Contains(tail, []byte("[DONE]")) {
		return errNoDone
	}
	return nil
}

// run starts chatClients chat workers sharing a limit of chatRate req/s and streams stream
// workers, and returns when ctx ends and every worker has stopped.
func (l *load) run(ctx context.Context, chatClients int, chatRate float64, streams int, cutEvery int64) {
	lim := rate.NewLimiter(rate.Limit(chatRate), max(1, int(chatRate/10)))
	var wg sync.WaitGroup
	for range chatClients {
		wg.Go(func() { l.chat(ctx, lim) })
	}
	for i := range streams {
		wg.Go(func() { l.stream(ctx, cutEvery, int64(i)) })
	}
	wg.Wait()
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute, DisableCompression: true},
		Timeout:   2 * time.Minute,
	}
}
