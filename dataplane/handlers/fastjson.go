package handlers

import (
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

// decodeOAChat decodes body into the zero r: as [oaChatStrings] when every content is a string
// or null, else (a list of parts, or a body the library refuses that way) as r itself.
func decodeOAChat(body []byte, r *OAChatRequest) bool {
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
