package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync"

	gojson "github.com/goccy/go-json"
)

// The OpenAI reply and every provider's stream frames (OpenAI chunks, Anthropic events, Gemini
// and Ollama frames) are decoded on every call, so they are decoded by goccy/go-json: about 6× faster than encoding/json, with 9 allocations and 392 B instead of 19
// and 856 B on BenchmarkDecodeChatReply. Our contract is still encoding/json's behaviour, and
// fastjson_test.go (stream_fastjson_test.go for the other providers' frames) holds the library to it: on a differential table and by fuzzing, it must
// yield encoding/json's value for every body encoding/json accepts and refuse every body it
// refuses (which encoding/json then decodes again, for its error). Decoded strings never refer
// to the caller's buffer: the library decodes from its own copy.

// replyPool recycles reply-body buffers of the calls made on every request (chat).
var replyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledReply keeps the pool from pinning the memory of an occasional huge reply.
const maxPooledReply = 256 << 10

// decodeBodyFast is decodeBody for replies decoded on every request: the body is read into a
// pooled buffer grown once to its declared length, then decoded by [unmarshalFast].
func (b *base) decodeBodyFast(c *call, limit int64, v any) error {
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
	c.limited = io.LimitedReader{R: c.body, N: limit + 1} // io.LimitReader, without its allocation
	if _, err := buf.ReadFrom(&c.limited); err != nil {
		return b.streamError(c, err)
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return &Error{Kind: KindMalformed, Provider: b.name, Status: c.resp.StatusCode, Message: fmt.Sprintf("response larger than %d bytes", limit)}
	}
	if err := unmarshalFast(data, v); err != nil {
		return &Error{Kind: KindMalformed, Provider: b.name, Status: c.resp.StatusCode, Message: "undecodable response body", Err: err}
	}
	return nil
}

// unmarshalFast decodes data into v (a pointer to a zero reply or chunk) with the library; when
// it refuses, encoding/json decodes data again into a zero value and gives its error.
func unmarshalFast(data []byte, v any) error {
	if gojson.Unmarshal(data, v) == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero()
	return json.Unmarshal(data, v)
}
