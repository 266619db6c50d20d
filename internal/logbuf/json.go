package logbuf

import (
	"strconv"
	"unicode/utf8"

	"github.com/nself-org/ai-orchestration/internal/jsonenc"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way slog's JSON handler writes strings: no HTML
// escaping; `"` and `\` escaped; \n, \r and \t by name and other control bytes as \u00XX;
// invalid UTF-8 as \ufffd; U+2028 and U+2029 escaped (they end lines in JavaScript).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// appendFloat formats v as encoding/json does (slog hands floats to it). NaN and infinities,
// which JSON cannot hold, become the error string slog writes in their place.
func appendFloat(b []byte, v float64) []byte {
	if out, ok := jsonenc.AppendFloat(b, v); ok {
		return out
	}
	return appendString(b, "!ERROR:json: unsupported value: "+strconv.FormatFloat(v, 'g', -1, 64))
}

func appendHex(b []byte, v []byte) []byte {
	b = append(b, '"')
	for _, c := range v {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}
