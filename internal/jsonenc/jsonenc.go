// Package jsonenc appends JSON values to a byte slice exactly as encoding/json's Marshal writes
// them: strings with its escaping (HTML characters and U+2028/U+2029 escaped, invalid UTF-8
// replaced by U+FFFD) and floats in its ES6-style notation. The request bodies sent upstream and
// the chat replies written to clients on every request are built with it instead of by
// reflection; encoding/json stays the reference, which the differential tests of its callers
// compare against.
package jsonenc

import (
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes encoding/json copies as they are: printable, and none of the
// quote, the backslash and the HTML characters <, > and & (which it escapes so that JSON can be
// embedded in HTML). DEL (0x7f) is copied too.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// AppendString appends s as a JSON string.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	done := 0 // s[:done] is written
	for i := 0; i < len(s); {
		// Skip eight plain bytes at a time where ASCII text goes on (most prompts); inside
		// non-ASCII text each word would hold a multi-byte rune, so it is not tried there.
		if s[i] < utf8.RuneSelf {
			if i = skipPlainWords(s, i); i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[done:i]...)
			dst = appendEscapedASCII(dst, c)
			i++
			done = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid in JSON but line ends in JavaScript; encoding/json escapes them always.
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// skipPlainWords returns the index of the first 8-byte word of s[i:] that may hold a byte that
// is not plain: 0x80 or more (part of a multi-byte rune, or invalid), a control character, or one
// of "\<>&; len(s) when none does; or where fewer than 8 bytes are left. Each test sets the high
// bit of a byte that matches (the has-zero-byte and has-less-than word tricks); they can only err
// by flagging a word that holds no such byte, never by missing one.
func skipPlainWords(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, bs := w^('"'*ones), w^('\\'*ones)
		lt, gt, amp := w^('<'*ones), w^('>'*ones), w^('&'*ones)
		m := w | (w - 0x20*ones) |
			(q-ones)&^q | (bs-ones)&^bs | (lt-ones)&^lt | (gt-ones)&^gt | (amp-ones)&^amp
		if m&highs != 0 {
			return i
		}
	}
	return i
}

// appendEscapedASCII writes the escape encoding/json uses for an ASCII byte it does not copy:
// the two-character form where JSON has one, \u00XX otherwise.
func appendEscapedASCII(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// AppendFloat appends f as encoding/json writes a float64: shortest round-trip digits, plain
// notation from 1e-6 up to (not including) 1e21 and exponent notation outside, with an exponent
// of at least one digit ("1e-7", not "1e-07"). ok is false for NaN and ±Inf, which JSON cannot
// represent (encoding/json fails on them); dst is then returned unchanged.
func AppendFloat(dst []byte, f float64) (out []byte, ok bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// strconv pads the exponent to two digits; drop the padding zero of a negative one.
		if b := dst[start:]; len(b) >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst, true
}

// AppendBool appends true or false.
func AppendBool(dst []byte, v bool) []byte { return strconv.AppendBool(dst, v) }

// AppendInt appends v in decimal.
func AppendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }
