package handlers

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
