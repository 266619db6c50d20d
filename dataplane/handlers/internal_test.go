package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
)

func TestUSDRendersExactDecimalsWithoutExponents(t *testing.T) {
	cases := map[string]struct {
		in   money.Nanos
		want string
	}{
		"zero":             {0, "0"},
		"one nano-dollar":  {1, "0.000000001"},
		"a tenth of cents": {money.MustParseUSD("0.00135"), "0.00135"},
		"whole dollars":    {money.MustParseUSD("25"), "25"},
		"mixed":            {money.MustParseUSD("1.5"), "1.5"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, usd(tc.in).String())
			b, err := usd(tc.in).MarshalJSON()
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
		})
	}
}

func TestParseWindowAcceptsDaysWeeksAndGoDurations(t *testing.T) {
	cases := map[string]struct {
		in   string
		want time.Duration
		ok   bool
	}{
		"empty is the default": {"", time.Hour, true},
		"days":                 {"7d", 7 * 24 * time.Hour, true},
		"weeks":                {"2w", 14 * 24 * time.Hour, true},
		"hours":                {"24h", 24 * time.Hour, true},
		"garbage is refused":   {"soon", 0, false},
		"zero is refused":      {"0d", 0, false},
		"negative is refused":  {"-1h", 0, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := parseWindow(tc.in, time.Hour)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, d)
		})
	}
}

func TestSplitTextCutsAtWhitespaceIntoPartsThatFit(t *testing.T) {
	text := strings.Repeat("alpha beta gamma delta. ", 400)
	total := tokens.Count("gpt-4o-mini", text)
	parts := splitText("gpt-4o-mini", text, 300, total)
	require.Greater(t, len(parts), 1)
	require.Equal(t, text, strings.Join(parts, ""), "nothing is lost or duplicated")
	for _, p := range parts {
		require.LessOrEqual(t, tokens.Count("gpt-4o-mini", p), int64(300))
	}
	// A text without whitespace is still split.
	solid := strings.Repeat("x", 5000)
	parts = splitText("gpt-4o-mini", solid, 100, tokens.Count("gpt-4o-mini", solid))
	require.Equal(t, solid, strings.Join(parts, ""))
	for _, p := range parts {
		require.LessOrEqual(t, tokens.Count("gpt-4o-mini", p), int64(100))
	}
}
