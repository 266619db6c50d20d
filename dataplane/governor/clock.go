package governor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// storeClock is the replica's clock corrected by its measured offset to the store's clock (Redis
// TIME), so that replicas whose clocks differ by seconds still agree on which budget period and
// ledger hour a request falls in. Rate-limit windows already run on TIME inside the scripts.
//
// The offset is refreshed in the background at most every syncEvery, triggered by use: a
// request never waits for it and never pays an extra round trip. Until the first sync, and
// whenever the store cannot answer, the last known offset (initially zero) is used.
type storeClock struct {
	st        store.Store
	syncEvery time.Duration
	local     func() time.Time

	offset  atomic.Int64 // store time minus local time, in nanoseconds
	lastTry atomic.Int64 // local unix nanos of the last sync attempt
	syncing sync.Mutex
}

const defaultClockSync = 10 * time.Second

func newStoreClock(st store.Store, syncEvery time.Duration, local func() time.Time) *storeClock {
	c := &storeClock{st: st, syncEvery: syncEvery, local: local}
	c.sync() // one synchronous read at start, so the first period keys are already right
	return c
}

// Now implements store.Clock.
func (c *storeClock) Now() time.Time {
	now := c.local()
	if now.UnixNano()-c.lastTry.Load() > int64(c.syncEvery) {
		go c.sync()
	}
	return now.Add(time.Duration(c.offset.Load()))
}

func (c *storeClock) sync() {
	if !c.syncing.TryLock() {
		return
	}
	defer c.syncing.Unlock()
	start := c.local()
	c.lastTry.Store(start.UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	remote, err := c.st.Now(ctx)
	if err != nil {
		return
	}
	// The store read its clock somewhere in the round trip: assume the middle.
	end := c.local()
	mid := start.Add(end.Sub(start) / 2)
	c.offset.Store(int64(remote.Sub(mid)))
}
