package money

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseUSD(t *testing.T) {
	cases := map[string]struct {
		in   string
		want Nanos
		err  bool
	}{
		"a whole dollar":              {in: "1", want: PerUSD},
		"a price per million":         {in: "0.15", want: 150_000_000},
		"nine decimals":               {in: "0.000000001", want: 1},
		"trailing zeros":              {in: "25.00", want: 25 * PerUSD},
		"ten decimals are refused":    {in: "0.0000000001", err: true},
		"negative is refused":         {in: "-1", err: true},
		"exponent is refused":         {in: "1e3", err: true},
		"empty is refused":            {in: "", err: true},
		"a bare dot is refused":       {in: ".", err: true},
		"missing whole part refused":  {in: ".5", err: true},
		"missing fraction is refused": {in: "5.", err: true},
		"absurdly large is refused":   {in: "99999999999", err: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseUSD(tc.in)
			if tc.err {
				require.ErrorIs(t, err, ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want, MustParseUSD(got.String()), "String round-trips")
		})
	}
}

func TestCostOfTokensRoundsUp(t *testing.T) {
	require.Equal(t, Nanos(150), CostOfTokens(1, MustParseUSD("0.15")))
	require.Equal(t, Nanos(1), CostOfTokens(1, MustParseUSD("0.000001")), "a fraction of a nano-USD is charged as one")
	require.Equal(t, Nanos(0), CostOfTokens(0, MustParseUSD("15")))
	require.Equal(t, MustParseUSD("15"), CostOfTokens(1_000_000, MustParseUSD("15")))
	require.Equal(t, Nanos(1<<63-1), CostOfTokens(1<<62, 1<<62), "overflow saturates instead of wrapping")
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"0", "1.5", "0.000000001", "-1", "1e9", "", "12345678.123456789"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseUSD(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseUSD(%q) = %d, negative", s, n)
		}
		back, err := ParseUSD(n.String())
		if err != nil || back != n {
			t.Fatalf("round trip of %q: %v %v", s, back, err)
		}
	})
}
