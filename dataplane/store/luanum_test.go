package store_test

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

// TestLuaFormattersPrintWhatTheSlowFormatsPrint: the scripts format numbers with '%d' where that
// is cheaper; on many values (integers of every size and sign, the edges of the fast paths, zero
// and minus zero, halves that '%.0f' rounds to even, fractions, infinities, NaN) num must print
// exactly what string.format('%.0f') printed before and exact what string.format('%.17g') did,
// on the Redis the tests run against. Both scripts run after numbers.lua, which defines them.
func TestLuaFormattersPrintWhatTheSlowFormatsPrint(t *testing.T) {
	src, err := os.ReadFile("numbers.lua")
	require.NoError(t, err)
	def := string(src)

	vals := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 1e18, -1e18,
		1e18 - 128, -(1e18 - 128), 1e17, -1e17, 1e17 - 16, -(1e17 - 16), 1e16 + 2, 1 << 53, 1<<53 + 2, -(1 << 53), 1 << 62, 1e300, -1e300,
		math.Inf(1), math.Inf(-1), math.NaN(), 1795655606592735, 1795655606592735.5, 999999, 1e15}
	r := rand.New(rand.NewPCG(7, 11))
	for range 3000 {
		mag := math.Pow(10, float64(r.IntN(19)))
		x := math.Floor(r.Float64() * mag)
		if r.IntN(2) == 0 {
			x = -x
		}
		switch r.IntN(6) {
		case 0:
			x += float64(r.IntN(4)) / 4 // fractions, halves among them
		case 1:
			x += r.Float64() // a token bucket's time: µs and a fraction
		}
		vals = append(vals, x)
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = strconv.FormatFloat(v, 'g', -1, 64) // "+Inf", "NaN": Lua's tonumber reads both
	}

	c := storetest.NewRedisClient(t, storetest.RedisURL(t))
	script := def + `
local out = {}
for i = 1, #ARGV do
  local x = tonumber(ARGV[i])
  out[4 * i - 3] = num(x)
  out[4 * i - 2] = string.format('%.0f', x)
  out[4 * i - 1] = exact(x)
  out[4 * i] = string.format('%.17g', x)
end
return out`
	res, err := c.Eval(t.Context(), script, nil, args...).StringSlice()
	require.NoError(t, err)
	require.Len(t, res, 4*len(vals))
	fast := 0
	for i, v := range vals {
		require.Equal(t, res[4*i+1], res[4*i], "num(%v) (argument %q)", v, args[i])
		require.Equal(t, res[4*i+3], res[4*i+2], "exact(%v) (argument %q)", v, args[i])
		if v == math.Trunc(v) && v != 0 && math.Abs(v) < 1e18 {
			fast++
		}
	}
	require.Greater(t, fast, 2000, "most values take the '%d' path")
}
