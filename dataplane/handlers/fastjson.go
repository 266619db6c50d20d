package handlers

import (
	"strconv"

	"github.com/nself-org/ai-orchestration/dataplane/jsonlex"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// fastDecoder is a request body with a fast path for its common shape (see [jsonlex]). decodeFast
// reports false, leaving the value zero, when encoding/json must decode the body instead; when
// it reports true the value is what encoding/json would have produced.
type fastDecoder interface {
	decodeFast(body []byte) bool
}

// Bits of the fields a fast decoder has seen: a duplicate key leaves the fast path, since
// encoding/json merges the second value into the first.
const (
	fModel uint16 = 1 << iota
	fMessages
	fStream
	fStreamOptions
	fMaxTokens
	fMaxCompletionTokens
	fTemperature
	fTopP
	fN
	fUser
	fOrgID
)

// once records f in mask and reports whether it is new; a repeated key fails the lexer.
func once(l *jsonlex.Lexer, mask *uint16, f uint16) bool {
	if *mask&f != 0 {
		l.Fail()
		return false
	}
	*mask |= f
	return true
}

// oaMessage is the element type of [OAChatRequest.Messages] (an identical struct type).
type oaMessage = struct {
	Role    string    `json:"role"`
	Content oaContent `json:"content"`
}

// oaChatFields are the JSON names of [OAChatRequest], for the case-insensitive check.
var oaChatFields = []string{"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
	"temperature", "top_p", "n", "stop", "response_format", "user"}

var oaStreamOptionsFields = []string{"include_usage"}

func (r *OAChatRequest) decodeFast(body []byte) bool {
	l := jsonlex.New(body)
	var mask uint16
	l.ObjectStart()
	for first := true; !l.Failed(); first = false {
		key, ok := l.Key(first)
		if !ok {
			break
		}
		switch string(key) {
		case "model":
			if once(&l, &mask, fModel) && !l.Null() {
				r.Model = string(l.String())
			}
		case "messages":
			if once(&l, &mask, fMessages) && !l.Null() {
				r.decodeMessages(&l)
			}
		case "stream":
			if once(&l, &mask, fStream) && !l.Null() {
				r.Stream = l.Bool()
			}
		case "stream_options":
			if once(&l, &mask, fStreamOptions) && !l.Null() {
				r.StreamOptions = &struct {
					IncludeUsage bool `json:"include_usage"`
				}{}
				var sub uint16
				l.ObjectStart()
				for first := true; !l.Failed(); first = false {
					key, ok := l.Key(first)
					if !ok {
						break
					}
					if string(key) != "include_usage" {
						l.SkipUnknown(key, oaStreamOptionsFields)
					} else if once(&l, &sub, 1) && !l.Null() {
						r.StreamOptions.IncludeUsage = l.Bool()
					}
				}
			}
		case "max_tokens":
			if once(&l, &mask, fMaxTokens) && !l.Null() {
				n := l.Int(64)
				r.MaxTokens = &n
			}
		case "max_completion_tokens":
			if once(&l, &mask, fMaxCompletionTokens) && !l.Null() {
				n := l.Int(64)
				r.MaxCompletionTokens = &n
			}
		case "temperature":
			if once(&l, &mask, fTemperature) && !l.Null() {
				f := l.Float64()
				r.Temperature = &f
			}
		case "top_p":
			if once(&l, &mask, fTopP) && !l.Null() {
				f := l.Float64()
				r.TopP = &f
			}
		case "n":
			if once(&l, &mask, fN) && !l.Null() {
				n := int(l.Int(strconv.IntSize))
				r.N = &n
			}
		case "user":
			if once(&l, &mask, fUser) && !l.Null() {
				r.User = string(l.String())
			}
		case "stop", "response_format":
			l.Fail() // rare, and raw or nested: encoding/json's job
		default:
			l.SkipUnknown(key, oaChatFields)
		}
	}
	l.End()
	if l.Failed() {
		*r = OAChatRequest{}
		return false
	}
	return true
}

func (r *OAChatRequest) decodeMessages(l *jsonlex.Lexer) {
	l.ArrayStart()
	r.Messages = make([]oaMessage, 0, 4) // encoding/json leaves [] as an empty, non-nil slice
	for first := true; l.Elem(first); first = false {
		var m oaMessage
		var mask uint16
		l.ObjectStart() // a null element (a zero message in encoding/json) is rare: it fails here
		for first := true; !l.Failed(); first = false {
			key, ok := l.Key(first)
			if !ok {
				break
			}
			switch string(key) {
			case "role":
				if once(l, &mask, 1) && !l.Null() {
					m.Role = string(l.String())
				}
			case "content":
				if once(l, &mask, 2) {
					// oaContent: null is "", a string is itself, a list of parts is its job.
					if !l.Null() {
						m.Content = oaContent(l.String())
					}
				}
			default:
				l.SkipUnknown(key, messageFields)
			}
		}
		r.Messages = append(r.Messages, m)
	}
}

// apiChatFields are the JSON names of [APIChatRequest], for the case-insensitive check.
var apiChatFields = []string{"model", "messages", "userId", "orgId", "stream", "maxTokens", "temperature", "responseFormat"}

func (r *APIChatRequest) decodeFast(body []byte) bool {
	l := jsonlex.New(body)
	var mask uint16
	l.ObjectStart()
	for first := true; !l.Failed(); first = false {
		key, ok := l.Key(first)
		if !ok {
			break
		}
		switch string(key) {
		case "model":
			if once(&l, &mask, fModel) && !l.Null() {
				r.Model = string(l.String())
			}
		case "messages":
			if once(&l, &mask, fMessages) && !l.Null() {
				r.Messages = decodeMessages(&l)
			}
		case "userId":
			if once(&l, &mask, fUser) && !l.Null() {
				r.UserID = string(l.String())
			}
		case "orgId":
			if once(&l, &mask, fOrgID) && !l.Null() {
				r.OrgID = string(l.String())
			}
		case "stream":
			if once(&l, &mask, fStream) && !l.Null() {
				r.Stream = l.Bool()
			}
		case "maxTokens":
			if once(&l, &mask, fMaxTokens) && !l.Null() {
				r.MaxTokens = l.Int(64)
			}
		case "temperature":
			if once(&l, &mask, fTemperature) && !l.Null() {
				f := l.Float64()
				r.Temperature = &f
			}
		case "responseFormat":
			l.Fail() // raw JSON kept as is: encoding/json's job
		default:
			l.SkipUnknown(key, apiChatFields)
		}
	}
	l.End()
	if l.Failed() {
		*r = APIChatRequest{}
		return false
	}
	return true
}

var messageFields = []string{"role", "content"}

// decodeMessages reads a list of {role, content} with string contents.
func decodeMessages(l *jsonlex.Lexer) []providers.Message {
	l.ArrayStart()
	msgs := make([]providers.Message, 0, 4) // encoding/json leaves [] as an empty, non-nil slice
	for first := true; l.Elem(first); first = false {
		var m providers.Message
		var mask uint16
		l.ObjectStart() // a null element (a zero message in encoding/json) is rare: it fails here
		for first := true; !l.Failed(); first = false {
			key, ok := l.Key(first)
			if !ok {
				break
			}
			switch string(key) {
			case "role":
				if once(l, &mask, 1) && !l.Null() {
					m.Role = string(l.String())
				}
			case "content":
				if once(l, &mask, 2) && !l.Null() {
					m.Content = string(l.String())
				}
			default:
				l.SkipUnknown(key, messageFields)
			}
		}
		msgs = append(msgs, m)
	}
	return msgs
}
