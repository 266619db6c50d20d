// Package money holds the one representation of money the product uses: integer nano-USD.
//
// Float sums drift; a ledger that must match provider invoices to the last unit cannot. Every
// price, reservation, charge and budget limit is a [Nanos]; conversion to float happens only when
// a value is rendered for a human or a JSON reply.
package money

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Nanos is an amount in nano-USD (1e-9 USD). int64 holds ±9.2 billion USD.
type Nanos int64

// PerUSD is the number of [Nanos] in one US dollar.
const PerUSD Nanos = 1_000_000_000

// ErrInvalid is returned by [ParseUSD] for anything that is not a non-negative decimal string.
var ErrInvalid = errors.New("invalid USD amount")

// ParseUSD parses a non-negative decimal string in USD ("1", "0.15", "25.00", "0.000000001").
// More than nine fractional digits, signs, exponents and empty strings are refused, so that a
// price written in a manifest is exactly the price charged.
func ParseUSD(s string) (Nanos, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalid)
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > 9 || !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("%w: %q (want a decimal such as \"0.15\", at most 9 decimals)", ErrInvalid, s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > int64(maxWholeUSD) {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalid, s)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return Nanos(w)*PerUSD + Nanos(f), nil
}

const maxWholeUSD = 9_000_000_000

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MustParseUSD is [ParseUSD] for constants in code and tests; it panics on a malformed literal.
func MustParseUSD(s string) Nanos {
	n, err := ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return n
}

// USD returns the amount in dollars as a float, for JSON replies and metrics only.
func (n Nanos) USD() float64 { return float64(n) / float64(PerUSD) }

// String renders the exact amount with nine decimals, e.g. "0.050000000".
func (n Nanos) String() string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s%d.%09d", sign, n/PerUSD, n%PerUSD)
}

// CostOfTokens returns the price of tokens at pricePerMillion (nano-USD per million tokens),
// rounded up to the next nano-USD so that a charge is never below what the provider bills.
// The product is computed in 128 bits, so no realistic count or price overflows.
func CostOfTokens(tokens int64, pricePerMillion Nanos) Nanos {
	if tokens <= 0 || pricePerMillion <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(pricePerMillion))
	if hi >= 1_000_000 { // quotient would not fit in 64 bits
		return Nanos(1<<63 - 1)
	}
	q, r := bits.Div64(hi, lo, 1_000_000)
	if r != 0 {
		q++
	}
	if q > 1<<63-1 {
		return Nanos(1<<63 - 1)
	}
	return Nanos(q)
}
