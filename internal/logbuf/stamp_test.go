package logbuf

import (
	"math/rand/v2"
	"testing"
	"time"
	_ "time/tzdata" // zones with daylight saving time and historic offsets, whatever the host has

	"github.com/stretchr/testify/require"
)

// The cached second must never show through: every instant, in every location, in any order
// of calls (a new second, another location, the same second again), is what AppendFormat writes.
func TestTimestampsAreWhatAppendFormatWrites(t *testing.T) {
	locs := []*time.Location{time.UTC, time.Local, time.FixedZone("odd", -(9*3600 + 30*60)),
		time.FixedZone("seconds", 5*3600+30*60+15), time.FixedZone("zero", 0)}
	for _, name := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/Amsterdam"} {
		loc, err := time.LoadLocation(name)
		require.NoError(t, err)
		locs = append(locs, loc)
	}
	check := func(at time.Time) {
		t.Helper()
		require.Equal(t, at.Format(time.RFC3339Nano), string(appendRFC3339Nano(nil, at)), "%d.%09d in %s", at.Unix(), at.Nanosecond(), at.Location())
		require.Equal(t, "x"+at.Format(time.RFC3339Nano), string(appendRFC3339Nano([]byte("x"), at)))
	}
	nanos := []int{0, 1, 10, 100, 123456789, 120000000, 100000000, 999999999, 500, 7000}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		sec := r.Int64N(253402300800+62135596800+2*86400) - 62135596800 - 86400 // years 0..9999 and a day past each end
		at := time.Unix(sec, int64(nanos[r.IntN(len(nanos))])).In(locs[r.IntN(len(locs))])
		check(at)
		check(at.Add(time.Duration(r.IntN(3)) * time.Nanosecond)) // the same second again, or close
		check(at.In(locs[r.IntN(len(locs))]))                     // the same instant elsewhere
	}
	// Around daylight saving time changes, second by second, in both directions.
	ny := locs[5]
	for _, d := range []time.Time{time.Date(2026, 3, 8, 1, 59, 58, 0, ny), time.Date(2026, 11, 1, 0, 59, 58, 0, ny)} {
		for s := range 7200 + 4 {
			check(d.Add(time.Duration(s)*time.Second + 1))
			check(d.Add(time.Duration(s) * time.Second))
		}
	}
	for _, at := range times {
		check(at)
	}
	check(time.Now())
	check(time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC))
	check(time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC))
}

// FuzzTimestamp compares appendRFC3339Nano with AppendFormat for arbitrary instants and offsets,
// two in a row so that the second may find the first one's second cached.
func FuzzTimestamp(f *testing.F) {
	f.Add(int64(1795645635), int64(123456789), 3600, int64(0))
	f.Add(int64(-62135596800), int64(0), -34200, int64(1))
	f.Add(int64(253402300799), int64(999999999), 0, int64(-1))
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int, delta int64) {
		loc := time.FixedZone("z", offset%(24*3600))
		for _, at := range []time.Time{time.Unix(sec, nsec).In(loc), time.Unix(sec, nsec).Add(time.Duration(delta)).In(loc)} {
			require.Equal(t, at.Format(time.RFC3339Nano), string(appendRFC3339Nano(nil, at)))
		}
	})
}

func BenchmarkTimestamp(b *testing.B) {
	at := time.Now()
	buf := make([]byte, 0, 64)
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = at.AppendFormat(buf[:0], time.RFC3339Nano)
		}
	})
	b.Run("appendRFC3339Nano", func(b *testing.B) {
		for b.Loop() {
			buf = appendRFC3339Nano(buf[:0], at)
		}
	})
}
