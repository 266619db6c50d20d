package handlers

import (
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// TestServedSetsTheHeadersHeaderSetWould holds served and tokensSaved, which write the header
// map under pre-canonicalized keys, to what http.Header.Set with the documented names gives.
func TestServedSetsTheHeadersHeaderSetWould(t *testing.T) {
	for _, tc := range []struct {
		provider string
		cost     money.Nanos
		cached   bool
		saved    int64
	}{
		{"openai", money.MustParseUSD("0.00135"), false, 0},
		{"", 0, true, 12},
		{"ns/anthropic", money.MustParseUSD("25"), true, -1},
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		served(c, tc.provider, tc.cost, tc.cached, governor.RateLimitState{})
		tokensSaved(c, tc.saved)

		want := http.Header{}
		want.Set("X-AI-Cost", usd(tc.cost).String())
		if tc.cached {
			want.Set("X-AI-Cache", "hit")
		} else {
			want.Set("X-AI-Cache", "miss")
		}
		if tc.provider != "" {
			want.Set("X-AI-Provider", tc.provider)
		}
		if tc.saved > 0 {
			want.Set("X-AI-Tokens-Saved", "12")
		}
		require.Equal(t, want, c.Writer.Header())
	}
}

// usdReference is usd.String as it was written first, on fmt: the reference appendUSD is held to.
func usdReference(n money.Nanos) string {
	s := n.String()
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// TestUSDMatchesItsReference compares usd's fmt-free rendering with the fmt-based one on edge
// values and a spread of random ones.
func TestUSDMatchesItsReference(t *testing.T) {
	values := []money.Nanos{0, 1, -1, 9, 10, 100, 999_999_999, 1_000_000_000, -1_000_000_000, 1_000_000_001,
		1_500_000_000, 120_000_000, 1_350_000, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, money.MustParseUSD("0.00135"),
		money.MustParseUSD("25"), -money.MustParseUSD("3.10")}
	r := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		n := money.Nanos(r.Int64() >> r.IntN(64))
		if r.IntN(2) == 0 {
			n = -n
		}
		values = append(values, n, n/1000*1000, n/1_000_000_000*1_000_000_000)
	}
	for _, n := range values {
		require.Equal(t, usdReference(n), usd(n).String(), "%d", int64(n))
		require.Equal(t, usdReference(n), string(appendUSD([]byte("x"), n))[1:], "%d", int64(n))
	}
}

// TestServedAllocatesTwiceAndTheRateLimitTwice bounds the allocations of the headers of every
// served reply: the values' backing array and the cost, and the rate limit's two.
func TestServedAllocatesTwiceAndTheRateLimitTwice(t *testing.T) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	rl := governor.RateLimitState{Limit: 1 << 40, Remaining: 1 << 39, Reset: time.Minute}
	cost := money.MustParseUSD("0.00135")
	allocs := testing.AllocsPerRun(100, func() {
		clear(c.Writer.Header())
		served(c, "default/openai", cost, false, rl)
	})
	require.LessOrEqual(t, allocs, 4.0)
}
