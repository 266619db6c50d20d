package store

import (
	"math"
	"strconv"
	"time"
)

// The arithmetic below is mirrored line by line in admit.lua, in float64 microseconds (Lua numbers
// are doubles; microseconds since 1970 stay exact below 2^53 until the year 2255). Keeping the same
// operations in the same order makes both stores agree to the last unit.

// gcraEps absorbs float rounding when Window/Limit is not a whole number of microseconds (1 ns).
const gcraEps = 1e-3

type gcraOut struct {
	allowed   bool
	newTAT    float64
	remaining int64
	retry     float64
	reset     float64
}

// gcra evaluates a token bucket. tat is the stored theoretical arrival time (µs), or 0 when absent.
func gcra(tat, now float64, limit, windowUS, burst, cost int64) gcraOut {
	t := float64(windowUS) / float64(limit)
	b := burst
	if b <= 0 {
		b = limit
	}
	tau := float64(b) * t
	base := math.Max(tat, now)
	newTAT := base + float64(cost)*t
	allowAt := newTAT - tau
	if allowAt-now > gcraEps {
		o := gcraOut{retry: allowAt - now, reset: base - now}
		if cost > b {
			o.retry = float64(windowUS)
		}
		o.remaining = clampRem(math.Floor((now-(base-tau))/t+1e-9), b)
		return o
	}
	return gcraOut{
		allowed:   true,
		newTAT:    newTAT,
		remaining: clampRem(math.Floor((now-allowAt)/t+1e-9), b),
		reset:     newTAT - now,
	}
}

func clampRem(v float64, max int64) int64 {
	if v < 0 {
		return 0
	}
	if v > float64(max) {
		return max
	}
	return int64(v)
}

// budgetFits reports whether a reservation of cost fits: spent + reserved + max(cost, 1) ≤ limit.
func budgetFits(spent, reserved, cost, limit int64) bool {
	c := cost
	if c < 1 {
		c = 1
	}
	return spent+reserved+c <= limit
}

// member names an entry of a sliding log or budget reservation set: "id:amount". Keeping the
// amount in the member lets an expiry sweep subtract it without another lookup.
func member(id string, amount int64) string {
	return id + ":" + strconv.FormatInt(amount, 10)
}

func durUS(d time.Duration) int64 { return d.Microseconds() }
