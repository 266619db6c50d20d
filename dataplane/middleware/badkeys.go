package middleware

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
)

// BadKeyLimiter slows down guessing of client keys. Each source address has a bucket of Burst
// failed authentications that refills at one per Refill; while it is empty, requests from that
// address are refused with 429 before their key is even looked at. Successful requests cost
// nothing, so a caller with a valid key is never slowed by this.
//
// It is per replica and in memory on purpose: it needs no store round trip on the hot path, and
// keys are 128-bit secrets, so its job is to make online guessing loud and slow (and to keep a
// misconfigured client from hammering the gateway), not to count exactly across replicas.
type BadKeyLimiter struct {
	burst  float64
	refill time.Duration
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[string]*badKeyBucket
	lastSweep time.Time
	// addrs is len(buckets), readable without mu: while it is 0 no address can be refused,
	// and [NewAuthWithLimiter] skips looking the client address up.
	addrs atomic.Int64
}

type badKeyBucket struct {
	tokens float64
	at     time.Time
}

// Defaults of [NewBadKeyLimiter]: 20 bad keys at once, then one per 3 s (20 a minute).
const (
	DefaultBadKeyBurst  = 20
	DefaultBadKeyRefill = 3 * time.Second
)

// maxBadKeyAddrs bounds memory under a spray from many addresses: past it, full buckets are
// swept at once rather than once a minute.
const maxBadKeyAddrs = 100_000

// NewBadKeyLimiter returns a limiter allowing burst failures per address, refilling one per
// refill. now may be nil (wall clock); tests inject a fake clock.
func NewBadKeyLimiter(burst int, refill time.Duration, now func() time.Time) *BadKeyLimiter {
	if now == nil {
		now = time.Now
	}
	return &BadKeyLimiter{burst: float64(burst), refill: refill, now: now, buckets: map[string]*badKeyBucket{}}
}

// level refills b up to now and returns its tokens; the caller holds mu.
func (l *BadKeyLimiter) level(b *badKeyBucket, now time.Time) float64 {
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.refill))
	b.at = now
	return b.tokens
}

// active reports whether any address has a bucket, i.e. whether [BadKeyLimiter.retryAfter]
// can answer anything but 0.
func (l *BadKeyLimiter) active() bool { return l.addrs.Load() != 0 }

// retryAfter reports how long addr must wait, or 0 when it may try a key now.
func (l *BadKeyLimiter) retryAfter(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	// Forget refilled buckets here too, not only on failures, so that [BadKeyLimiter.active]
	// turns false again once the bad keys stop.
	if now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
	b, ok := l.buckets[addr]
	if !ok {
		return 0
	}
	if t := l.level(b, now); t < 1 {
		return time.Duration((1 - t) * float64(l.refill))
	}
	return 0
}

// fail takes one token from addr's bucket.
func (l *BadKeyLimiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[addr]
	if !ok {
		b = &badKeyBucket{tokens: l.burst, at: now}
		l.buckets[addr] = b
		l.addrs.Store(int64(len(l.buckets)))
	}
	b.tokens = max(0, l.level(b, now)-1)
	if len(l.buckets) > maxBadKeyAddrs || now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
}

// sweep forgets addresses whose bucket has refilled: they would start full anyway.
func (l *BadKeyLimiter) sweep(now time.Time) {
	for addr, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, addr)
		}
	}
	l.addrs.Store(int64(len(l.buckets)))
	l.lastSweep = now
}

// tooManyBadKeys is the refusal of an address that spent its bucket.
func tooManyBadKeys(wait time.Duration) *apierror.Error {
	e := apierror.New(http.StatusTooManyRequests, apierror.TypeRateLimit, apierror.CodeRateLimited,
		"too many requests with an invalid API key from this address; retry later")
	e.RetryAfter = max(wait, time.Second)
	return e
}
