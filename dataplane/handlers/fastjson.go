package handlers

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// The chat requests are decoded on every call, so they are decoded by goccy/go-json: about 3.5×
// faster than encoding/json, with 10 allocations instead of 16 but 3.3 KiB instead of 2.1 (it
// decodes from its own copy of the body) on BenchmarkDecodeChatRequest. Our contract
// is still encoding/json's behaviour, and fastjson_test.go holds the library to it: on a
// differential table and by fuzzing, it must yield encoding/json's value for every body
// encoding/json accepts and refuse every body it refuses. The other libraries measured did not:
// segmentio/encoding accepts nesting deeper than encoding/json's limit; sonic's ConfigStd folds
// keys ASCII-only, turns -0 into 0, rewrites invalid UTF-8 inside json.RawMessage and accepts a
// "\0" escape in an ignored value.

// decodeChat decodes body into v when v is a chat request, reporting false when it is not or
// when the library refused body (v is then left zero, for encoding/json to decode again and word
// the error). Decoded strings never refer to body: the library decodes from its own copy.
func decodeChat(body []byte, v any) bool {
	switch r := v.(type) {
	case *OAChatRequest:
		return decodeOAChat(body, r)
	case *APIChatRequest:
		return decodeLib(body, r)
	}
	return false
}

func decodeLib[T any](body []byte, v *T) bool {
	if gojson.Unmarshal(body, v) == nil {
		return true
	}
	var zero T
	*v = zero
	return false
}

// oaChatStrings is [OAChatRequest] with every message content a JSON string or null, as nearly
// every client sends it. The library decodes such a content natively, with one copy; through
// oaContent's UnmarshalJSON it copies the literal for the method and the method copies it again
// (a tenth of the bytes allocated per request).
type oaChatStrings struct {
	Messages []struct {
		Role string `json:"role"`
		// Content is a pointer so that null is seen: oaContent resets on null, where a string
		// would keep what a repeated key or array left in it.
		Content *string `json:"content"`
	} `json:"messages"`
	oaChatParams
}

// decodeOAChat decodes body into the zero r: by [decodeOAChatPlain] when body has the plain
// shape, else by the library as [oaChatStrings] when every content is a string or null, else (a
// list of parts, or a body the library refuses that way) as r itself.
func decodeOAChat(body []byte, r *OAChatRequest) bool {
	if decodeOAChatPlain(body, r) {
		return true
	}
	var s oaChatStrings
	if gojson.Unmarshal(body, &s) != nil {
		return decodeLib(body, r)
	}
	*r = OAChatRequest{oaChatParams: s.oaChatParams}
	if s.Messages != nil {
		r.Messages = make([]oaMessage, len(s.Messages))
		for i, m := range s.Messages {
			r.Messages[i].Role = m.Role
			if m.Content != nil {
				r.Messages[i].Content = oaContent(*m.Content)
			}
		}
	}
	return true
}

// decodeOAChatPlain decodes the shape nearly every client sends, without the library: an object
// of model, user, stream, max_tokens, max_completion_tokens, temperature, top_p and messages,
// each at most once, whose messages have only a role and a content, every string without escapes
// or control characters and in valid UTF-8. Such a body decodes to what encoding/json gives by
// construction: each string is its bytes between the quotes, each number what strconv parses
// from its literal, as encoding/json parses it. Anything else (another key, a null, an escape, a
// repeated key, a number an int64 field would refuse) reports false with r untouched, and the
// library decodes the body. One pass and at most one allocation per string (a role is interned,
// a recurring content shared: intern.go): on BenchmarkDecodeChatRequest 6 allocations instead of
// the library's 12, in about 30% less time.
func decodeOAChatPlain(body []byte, r *OAChatRequest) bool {
	p := plainScan{b: body}
	if !p.next('{') {
		return false
	}
	var (
		out  OAChatRequest
		seen uint8
	)
	if !p.next('}') {
		for {
			key, ok := p.str()
			if !ok || !p.next(':') {
				return false
			}
			var bit uint8
			switch string(key) {
			case "model":
				bit = 1 << 0
				s, ok := p.str()
				if !ok {
					return false
				}
				out.Model = string(s)
			case "user":
				bit = 1 << 1
				s, ok := p.str()
				if !ok {
					return false
				}
				out.User = string(s)
			case "stream":
				bit = 1 << 2
				if out.Stream, ok = p.boolean(); !ok {
					return false
				}
			case "max_tokens", "max_completion_tokens":
				v, ok := p.int64()
				if !ok {
					return false
				}
				if key[4] == 't' {
					bit, out.MaxTokens = 1<<3, &v
				} else {
					bit, out.MaxCompletionTokens = 1<<4, &v
				}
			case "temperature", "top_p":
				v, ok := p.float64()
				if !ok {
					return false
				}
				if key[0] == 't' && key[1] == 'e' {
					bit, out.Temperature = 1<<5, &v
				} else {
					bit, out.TopP = 1<<6, &v
				}
			case "messages":
				bit = 1 << 7
				if out.Messages, ok = p.messages(); !ok {
					return false
				}
			default:
				return false
			}
			if seen&bit != 0 {
				return false // encoding/json merges a repeated key into what the first left
			}
			seen |= bit
			if p.next(',') {
				continue
			}
			if p.next('}') {
				break
			}
			return false
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return false
	}
	*r = out
	return true
}

// plainScan reads the tokens of a plain chat body (see decodeOAChatPlain).
type plainScan struct {
	b []byte
	i int
}

func (p *plainScan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next consumes c after any whitespace, reporting whether it was there.
func (p *plainScan) next(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string literal and returns the bytes between its quotes; false when it is not a
// string, has an escape or a control character, or is not valid UTF-8 (which encoding/json
// would replace).
func (p *plainScan) str() ([]byte, bool) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	rest := p.b[p.i+1:]
	end := bytes.IndexByte(rest, '"') // no escape may precede it (below), so it ends the string
	if end < 0 {
		return nil, false
	}
	s := rest[:end]
	if bytes.IndexByte(s, '\\') >= 0 || !plainText(s) {
		return nil, false
	}
	p.i += 1 + end + 1
	return s, true
}

// plainText reports whether s has no control character and is valid UTF-8, eight bytes at a time
// while they are ASCII above the control characters.
func plainText(s []byte) bool {
	const high, low = 0x8080808080808080, 0x2020202020202020
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		// A byte ≥ 0x80, or one below 0x20 (w-low borrows into its high bit while the byte's own
		// high bit is clear): the rest is checked byte by byte.
		if w&high != 0 || (w-low)&^w&high != 0 {
			break
		}
	}
	for _, c := range s[i:] {
		if c < 0x20 {
			return false
		}
	}
	return utf8.Valid(s[i:])
}

func (p *plainScan) boolean() (v, ok bool) {
	p.ws()
	switch rest := p.b[p.i:]; {
	case bytes.HasPrefix(rest, []byte("true")):
		p.i += 4
		return true, true
	case bytes.HasPrefix(rest, []byte("false")):
		p.i += 5
		return false, true
	}
	return false, false
}

// number reads a JSON number literal.
func (p *plainScan) number() ([]byte, bool) {
	p.ws()
	b, j := p.b, p.i
	digits := func() int {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j - k
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case digits() == 0:
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	lit := b[p.i:j]
	p.i = j
	return lit, true
}

// int64 reads an integer literal of at most 18 digits (which cannot overflow); encoding/json
// refuses a fraction or an exponent for an int64 field, and the library words that error.
func (p *plainScan) int64() (int64, bool) {
	lit, ok := p.number()
	if !ok {
		return 0, false
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if len(lit) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// float64 reads a number as encoding/json does for a float64 field: strconv.ParseFloat of the
// literal, an out-of-range literal being its error.
func (p *plainScan) float64() (float64, bool) {
	lit, ok := p.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	return v, err == nil
}

// messages reads an array of {"role": string, "content": string} objects, each key at most once.
func (p *plainScan) messages() ([]oaMessage, bool) {
	if !p.next('[') {
		return nil, false
	}
	var (
		small [4]oaMessage
		msgs  = small[:0]
	)
	if !p.next(']') {
		for {
			if !p.next('{') {
				return nil, false
			}
			var (
				m    oaMessage
				seen uint8
			)
			if !p.next('}') {
				for {
					key, ok := p.str()
					if !ok || !p.next(':') {
						return nil, false
					}
					s, ok := p.str()
					if !ok {
						return nil, false
					}
					switch string(key) {
					case "role":
						if seen&1 != 0 {
							return nil, false
						}
						seen |= 1
						m.Role = role(s)
					case "content":
						if seen&2 != 0 {
							return nil, false
						}
						seen |= 2
						m.Content = oaContent(contents.text(s))
					default:
						return nil, false
					}
					if p.next(',') {
						continue
					}
					if p.next('}') {
						break
					}
					return nil, false
				}
			}
			msgs = append(msgs, m)
			if p.next(',') {
				continue
			}
			if p.next(']') {
				break
			}
			return nil, false
		}
	}
	return append(make([]oaMessage, 0, len(msgs)), msgs...), true
}

// role returns the role s spells, without an allocation for the usual ones.
func role(s []byte) string {
	switch string(s) {
	case "system":
		return "system"
	case "user":
		return "user"
	case "assistant":
		return "assistant"
	case "developer":
		return "developer"
	case "tool":
		return "tool"
	}
	return string(s)
}
