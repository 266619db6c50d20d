package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/nself-org/ai-orchestration/dataplane/jsonlex"
)

// fastDecoder is a reply with a fast path for its common shape (see [jsonlex]). decodeFast
// reports false, leaving the value zero, when encoding/json must decode the body instead; when
// it reports true the value is what encoding/json would have produced.
type fastDecoder interface {
	decodeFast(body []byte) bool
}

// replyPool recycles reply-body buffers of the calls made on every request (chat).
var replyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledReply keeps the pool from pinning the memory of an occasional huge reply.
const maxPooledReply = 256 << 10

// decodeBodyFast is decodeBody for replies decoded on every request: the body is read into a
// pooled buffer grown once to its declared length, then decoded on v's fast path, else (same
// errors, same values) by encoding/json. Both copy every string out of the buffer.
func (b *base) decodeBodyFast(c *call, limit int64, v fastDecoder) error {
	buf := replyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledReply {
			replyPool.Put(buf)
		}
	}()
	if n := c.resp.ContentLength; n > 0 && n <= maxPooledReply {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead spare bytes to see EOF without growing
	}
	if _, err := buf.ReadFrom(io.LimitReader(c.body, limit+1)); err != nil {
		return b.streamError(c, err)
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return &Error{Kind: KindMalformed, Provider: b.name, Status: c.resp.StatusCode, Message: fmt.Sprintf("response larger than %d bytes", limit)}
	}
	if v.decodeFast(data) {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &Error{Kind: KindMalformed, Provider: b.name, Status: c.resp.StatusCode, Message: "undecodable response body", Err: err}
	}
	return nil
}

// unmarshalFast decodes data into v on its fast path, else with encoding/json.
func unmarshalFast(data []byte, v fastDecoder) error {
	if v.decodeFast(data) {
		return nil
	}
	return json.Unmarshal(data, v)
}

// Bits of the fields a fast decoder has seen: a duplicate key leaves the fast path, since
// encoding/json merges the second value into the first.
const (
	fID uint8 = 1 << iota
	fModel
	fChoices
	fUsage
	fError
)

// once records f in mask and reports whether it is new; a repeated key fails the lexer.
func once(l *jsonlex.Lexer, mask *uint8, f uint8) bool {
	if *mask&f != 0 {
		l.Fail()
		return false
	}
	*mask |= f
	return true
}

// The JSON names of each decoded object, for the case-insensitive check of other keys.
var (
	oaiChatResponseFields = []string{"id", "model", "choices", "usage"}
	oaiChoiceFields       = []string{"message", "finish_reason"}
	oaiMessageFields      = []string{"content"}
	oaiChunkFields        = []string{"id", "model", "choices", "usage", "error"}
	oaiChunkChoiceFields  = []string{"delta", "finish_reason"}
	oaiUsageFields        = []string{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"}
	oaiDetailsFields      = []string{"cached_tokens"}
)

func (r *oaiChatResponse) decodeFast(body []byte) bool {
	l := jsonlex.New(body)
	var mask uint8
	l.ObjectStart()
	for first := true; !l.Failed(); first = false {
		key, ok := l.Key(first)
		if !ok {
			break
		}
		switch string(key) {
		case "id":
			if once(&l, &mask, fID) && !l.Null() {
				r.ID = string(l.String())
			}
		case "model":
			if once(&l, &mask, fModel) && !l.Null() {
				r.Model = string(l.String())
			}
		case "choices":
			if once(&l, &mask, fChoices) && !l.Null() {
				r.Choices = decodeOAIChoices(&l)
			}
		case "usage":
			if once(&l, &mask, fUsage) && !l.Null() {
				r.Usage = decodeOAIUsage(&l)
			}
		default:
			l.SkipUnknown(key, oaiChatResponseFields)
		}
	}
	l.End()
	if l.Failed() {
		*r = oaiChatResponse{}
		return false
	}
	return true
}

func decodeOAIChoices(l *jsonlex.Lexer) []oaiChatChoice {
	l.ArrayStart()
	choices := make([]oaiChatChoice, 0, 1) // encoding/json leaves [] as an empty, non-nil slice
	for first := true; l.Elem(first); first = false {
		var ch oaiChatChoice
		var mask uint8
		l.ObjectStart() // a null element (a zero choice in encoding/json) is rare: it fails here
		for first := true; !l.Failed(); first = false {
			key, ok := l.Key(first)
			if !ok {
				break
			}
			switch string(key) {
			case "message":
				if once(l, &mask, 1) && !l.Null() {
					var sub uint8
					l.ObjectStart()
					for first := true; !l.Failed(); first = false {
						key, ok := l.Key(first)
						if !ok {
							break
						}
						if string(key) != "content" {
							l.SkipUnknown(key, oaiMessageFields)
						} else if once(l, &sub, 1) && !l.Null() {
							s := string(l.String())
							ch.Message.Content = &s
						}
					}
				}
			case "finish_reason":
				if once(l, &mask, 2) && !l.Null() {
					ch.FinishReason = string(l.String())
				}
			default:
				l.SkipUnknown(key, oaiChoiceFields)
			}
		}
		choices = append(choices, ch)
	}
	return choices
}

func decodeOAIUsage(l *jsonlex.Lexer) *oaiUsage {
	u := &oaiUsage{}
	var mask uint8
	l.ObjectStart()
	for first := true; !l.Failed(); first = false {
		key, ok := l.Key(first)
		if !ok {
			break
		}
		switch string(key) {
		case "prompt_tokens":
			if once(l, &mask, 1) && !l.Null() {
				u.PromptTokens = l.Int(64)
			}
		case "completion_tokens":
			if once(l, &mask, 2) && !l.Null() {
				u.CompletionTokens = l.Int(64)
			}
		case "total_tokens":
			if once(l, &mask, 4) && !l.Null() {
				u.TotalTokens = l.Int(64)
			}
		case "prompt_tokens_details":
			if once(l, &mask, 8) && !l.Null() {
				u.PromptTokensDetails = &oaiPromptTokensInfo{}
				var sub uint8
				l.ObjectStart()
				for first := true; !l.Failed(); first = false {
					key, ok := l.Key(first)
					if !ok {
						break
					}
					if string(key) != "cached_tokens" {
						l.SkipUnknown(key, oaiDetailsFields)
					} else if once(l, &sub, 1) && !l.Null() {
						u.PromptTokensDetails.CachedTokens = l.Int(64)
					}
				}
			}
		default:
			l.SkipUnknown(key, oaiUsageFields)
		}
	}
	return u
}

func (r *oaiChunk) decodeFast(body []byte) bool {
	l := jsonlex.New(body)
	var mask uint8
	l.ObjectStart()
	for first := true; !l.Failed(); first = false {
		key, ok := l.Key(first)
		if !ok {
			break
		}
		switch string(key) {
		case "id":
			if once(&l, &mask, fID) && !l.Null() {
				r.ID = string(l.String())
			}
		case "model":
			if once(&l, &mask, fModel) && !l.Null() {
				r.Model = string(l.String())
			}
		case "choices":
			if once(&l, &mask, fChoices) && !l.Null() {
				r.Choices = decodeOAIChunkChoices(&l)
			}
		case "usage":
			if once(&l, &mask, fUsage) && !l.Null() {
				r.Usage = decodeOAIUsage(&l)
			}
		case "error":
			if once(&l, &mask, fError) && !l.Null() {
				l.Fail() // a stream error is rare: encoding/json's job
			}
		default:
			l.SkipUnknown(key, oaiChunkFields)
		}
	}
	l.End()
	if l.Failed() {
		*r = oaiChunk{}
		return false
	}
	return true
}

func decodeOAIChunkChoices(l *jsonlex.Lexer) []oaiChunkChoice {
	l.ArrayStart()
	choices := make([]oaiChunkChoice, 0, 1) // encoding/json leaves [] as an empty, non-nil slice
	for first := true; l.Elem(first); first = false {
		var ch oaiChunkChoice
		var mask uint8
		l.ObjectStart() // a null element (a zero choice in encoding/json) is rare: it fails here
		for first := true; !l.Failed(); first = false {
			key, ok := l.Key(first)
			if !ok {
				break
			}
			switch string(key) {
			case "delta":
				if once(l, &mask, 1) && !l.Null() {
					var sub uint8
					l.ObjectStart()
					for first := true; !l.Failed(); first = false {
						key, ok := l.Key(first)
						if !ok {
							break
						}
						if string(key) != "content" {
							l.SkipUnknown(key, oaiMessageFields)
						} else if once(l, &sub, 1) && !l.Null() {
							s := string(l.String())
							ch.Delta.Content = &s
						}
					}
				}
			case "finish_reason":
				if once(l, &mask, 2) && !l.Null() {
					s := string(l.String())
					ch.FinishReason = &s
				}
			default:
				l.SkipUnknown(key, oaiChunkChoiceFields)
			}
		}
		choices = append(choices, ch)
	}
	return choices
}
