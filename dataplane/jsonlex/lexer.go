// Package jsonlex is a strict, allocation-free JSON reader for the few bodies on the request
// path that are decoded on every call (the OpenAI chat request and reply).
//
// It is a fast path, not a second JSON implementation: a decoder built on it handles only the
// common shape of one document and gives up ([Lexer.Failed]) on anything else — a type it does
// not expect, an escaped or mixed-case key (encoding/json matches keys case-insensitively), a
// duplicate key, invalid UTF-8 (encoding/json replaces it), a number that does not fit, invalid
// JSON. The caller then decodes the same bytes again with encoding/json, so every answer (values
// and error messages alike) is exactly encoding/json's; the fast path only has to be right on
// what it accepts, and it accepts only valid JSON (the grammar of RFC 8259, checked in full,
// skipped values included).
package jsonlex

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of skipped values; deeper documents go to encoding/json, which
// has its own limit and error message.
const maxDepth = 64

// Lexer reads one JSON document from data. Every method is a no-op once the lexer has failed,
// so a decoder may read a whole object and check [Lexer.Failed] once.
type Lexer struct {
	data   []byte
	pos    int
	failed bool
	// buf holds unescaped strings; a string returned by [Lexer.String] is valid only until the
	// next call.
	buf []byte
}

// New returns a lexer over data; data must not change while the lexer is in use.
func New(data []byte) Lexer { return Lexer{data: data} }

// Failed reports whether the document left the fast path; the caller must then decode it with
// encoding/json.
func (l *Lexer) Failed() bool { return l.failed }

// Fail makes the lexer give up, for a decoder that met something it does not handle.
func (l *Lexer) Fail() { l.failed = true }

func (l *Lexer) ws() {
	for l.pos < len(l.data) {
		switch l.data[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (l *Lexer) peek() byte {
	l.ws()
	if l.failed || l.pos >= len(l.data) {
		return 0
	}
	return l.data[l.pos]
}

// End checks that nothing but white space follows the document.
func (l *Lexer) End() {
	l.ws()
	if l.pos != len(l.data) {
		l.failed = true
	}
}

// Null consumes a null literal if one comes next.
func (l *Lexer) Null() bool {
	if l.peek() != 'n' {
		return false
	}
	l.literal("null")
	return !l.failed
}

func (l *Lexer) literal(s string) {
	if len(l.data)-l.pos < len(s) || string(l.data[l.pos:l.pos+len(s)]) != s {
		l.failed = true
		return
	}
	l.pos += len(s)
}

// ObjectStart consumes '{'; it fails on anything else.
func (l *Lexer) ObjectStart() {
	if l.peek() != '{' {
		l.failed = true
		return
	}
	l.pos++
}

// Key returns the next key of the object opened by [Lexer.ObjectStart] (having consumed the ','
// before it and the ':' after it), or ok false at the closing '}'. first is true for the first
// call on an object. Only keys without escapes and within ASCII are accepted, so that comparing
// them with field names is what encoding/json does (see [Lexer.SkipUnknown] for the rest).
func (l *Lexer) Key(first bool) (key []byte, ok bool) {
	c := l.peek()
	if l.failed {
		return nil, false
	}
	if c == '}' {
		l.pos++
		return nil, false
	}
	if !first {
		if c != ',' {
			l.failed = true
			return nil, false
		}
		l.pos++
		c = l.peek()
	}
	if c != '"' {
		l.failed = true
		return nil, false
	}
	start := l.pos + 1
	i := start
	for ; i < len(l.data); i++ {
		b := l.data[i]
		if b == '"' {
			break
		}
		if b < 0x20 || b >= 0x80 || b == '\\' {
			l.failed = true
			return nil, false
		}
	}
	if i >= len(l.data) {
		l.failed = true
		return nil, false
	}
	key = l.data[start:i]
	l.pos = i + 1
	if l.peek() != ':' {
		l.failed = true
		return nil, false
	}
	l.pos++
	return key, true
}

// ArrayStart consumes '['; it fails on anything else.
func (l *Lexer) ArrayStart() {
	if l.peek() != '[' {
		l.failed = true
		return
	}
	l.pos++
}

// Elem reports whether another element of the array opened by [Lexer.ArrayStart] follows
// (consuming the ',' before it), or consumes the closing ']' and returns false. first is true
// for the first call on an array.
func (l *Lexer) Elem(first bool) bool {
	c := l.peek()
	if l.failed {
		return false
	}
	if c == ']' {
		l.pos++
		return false
	}
	if !first {
		if c != ',' {
			l.failed = true
			return false
		}
		l.pos++
	}
	return true
}

// Bool reads true or false.
func (l *Lexer) Bool() bool {
	switch l.peek() {
	case 't':
		l.literal("true")
		return true
	case 'f':
		l.literal("false")
	default:
		l.failed = true
	}
	return false
}

// strClass marks the bytes that end the plain run of a string: the quote, the backslash,
// control characters (invalid in JSON strings) and non-ASCII bytes (checked as UTF-8).
var strClass = func() (t [256]bool) {
	for i := range 0x20 {
		t[i] = true
	}
	for i := 0x80; i < 0x100; i++ {
		t[i] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// String reads a string and returns its value, unescaped exactly as encoding/json does. The
// bytes alias the document or the lexer's buffer: copy them (string(b)) before the next call.
// Invalid UTF-8, which encoding/json would replace with U+FFFD, leaves the fast path.
func (l *Lexer) String() []byte {
	if l.peek() != '"' {
		l.failed = true
		return nil
	}
	start := l.pos + 1
	i := start
	for {
		for i < len(l.data) && !strClass[l.data[i]] {
			i++
		}
		if i >= len(l.data) {
			l.failed = true
			return nil
		}
		switch b := l.data[i]; {
		case b == '"':
			l.pos = i + 1
			return l.data[start:i]
		case b == '\\':
			return l.escaped(start, i)
		case b < 0x20:
			l.failed = true
			return nil
		default:
			r, n := utf8.DecodeRune(l.data[i:])
			if r == utf8.RuneError && n <= 1 {
				l.failed = true
				return nil
			}
			i += n
		}
	}
}

// escaped finishes a string that has escapes from i (the first backslash), unescaping into buf.
func (l *Lexer) escaped(start, i int) []byte {
	if q := bytes.IndexByte(l.data[i:], '"'); cap(l.buf) < i+q-start {
		// The next quote (escaped or not) bounds the string from below: one allocation for
		// most strings, and the buffer serves the next escaped strings of the document.
		l.buf = make([]byte, 0, i+q-start+32)
	}
	buf := append(l.buf[:0], l.data[start:i]...)
	d := l.data
	for i < len(d) {
		b := d[i]
		switch {
		case b == '"':
			l.pos = i + 1
			l.buf = buf
			return buf
		case b < 0x20:
			l.failed = true
			return nil
		case b >= 0x80:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n <= 1 {
				l.failed = true
				return nil
			}
			buf = append(buf, d[i:i+n]...)
			i += n
		case b != '\\':
			buf = append(buf, b)
			i++
		default:
			if i+1 >= len(d) {
				l.failed = true
				return nil
			}
			switch e := d[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(d[i+2:])
				if r < 0 {
					l.failed = true
					return nil
				}
				i += 6
				// As encoding/json: a valid surrogate pair is one rune, anything else that is a
				// surrogate is U+FFFD and the next escape stands on its own.
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						r2 = hex4(d[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				l.failed = true
				return nil
			}
			i += 2
		}
	}
	l.failed = true
	return nil
}

// hex4 decodes the four hex digits at the start of b, -1 if there are not four.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number literal with the JSON grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// and returns its text.
func (l *Lexer) number() []byte {
	l.ws()
	d, i := l.data, l.pos
	start := i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		l.failed = true
		return nil
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			l.failed = true
			return nil
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			l.failed = true
			return nil
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	l.pos = i
	return d[start:i]
}

// Int reads a number into an integer of bits bits; like encoding/json, anything
// strconv.ParseInt refuses (a fraction, an exponent, an overflow) is not an integer.
func (l *Lexer) Int(bits int) int64 {
	if l.failed {
		return 0
	}
	lit := l.number()
	if l.failed {
		return 0
	}
	n, err := strconv.ParseInt(string(lit), 10, bits)
	if err != nil {
		l.failed = true
	}
	return n
}

// Float64 reads a number as encoding/json does (strconv.ParseFloat; out of range leaves the fast path).
func (l *Lexer) Float64() float64 {
	if l.failed {
		return 0
	}
	lit := l.number()
	if l.failed {
		return 0
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		l.failed = true
	}
	return f
}

// equalFoldASCII is bytes.EqualFold for ASCII keys and names ([Lexer.Key] admits no other keys).
func equalFoldASCII(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Skip reads and validates any value.
func (l *Lexer) Skip() { l.skip(0) }

// SkipUnknown skips the value of a key that matched none of the decoder's fields exactly.
// encoding/json also matches keys case-insensitively, so a key equal to one of fields but for
// case leaves the fast path.
func (l *Lexer) SkipUnknown(key []byte, fields []string) {
	for _, f := range fields {
		if equalFoldASCII(key, f) {
			l.failed = true
			return
		}
	}
	l.skip(0)
}

func (l *Lexer) skip(depth int) {
	if depth > maxDepth {
		l.failed = true
		return
	}
	switch l.peek() {
	case '{':
		l.pos++
		for first := true; ; first = false {
			c := l.peek()
			if c == '}' {
				l.pos++
				return
			}
			if !first {
				if c != ',' {
					l.failed = true
					return
				}
				l.pos++
			}
			// Keys of skipped objects are never matched, so any valid string will do.
			l.String()
			if l.peek() != ':' {
				l.failed = true
				return
			}
			l.pos++
			l.skip(depth + 1)
			if l.failed {
				return
			}
		}
	case '[':
		l.pos++
		for first := true; l.Elem(first); first = false {
			l.skip(depth + 1)
		}
	case '"':
		l.String()
	case 't':
		l.literal("true")
	case 'f':
		l.literal("false")
	case 'n':
		l.literal("null")
	default:
		l.number()
	}
}
