package governor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// skewedStore answers Now with a clock that runs ahead of the replica's.
type skewedStore struct {
	store.Store
	now func() time.Time
	err error
}

func (s *skewedStore) Now(context.Context) (time.Time, error) { return s.now(), s.err }

func TestTheStoreClockCorrectsAReplicaWhoseClockIsOff(t *testing.T) {
	base := time.Date(2026, 11, 25, 23, 59, 58, 0, time.UTC)
	local := base
	st := &skewedStore{now: func() time.Time { return local.Add(5 * time.Second) }}
	c := newStoreClock(st, time.Hour, func() time.Time { return local })

	// The replica thinks it is 23:59:58; the store says 00:00:03 the next day: the period (and
	// so the budget key) is the store's.
	require.Equal(t, base.Add(5*time.Second), c.Now())
	require.Equal(t, 26, c.Now().Day())

	// A store that cannot answer keeps the last known offset.
	st.err = context.DeadlineExceeded
	c.sync()
	require.Equal(t, base.Add(5*time.Second), c.Now())
}

func TestTheInMemoryStoreKeepsTheSystemClock(t *testing.T) {
	mem := store.NewMemory(store.MemoryOptions{})
	g := New(mem, Options{}).(*gov)
	_, isSystem := g.opts.Clock.(store.SystemClock)
	require.True(t, isSystem, "one in-memory process has one clock: no correction needed")
}
