package handlers

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/internal/jsonenc"
)

// The chat completion is written on every non-streamed request, so it is encoded by appending
// to a pooled buffer instead of by reflection into a fresh slice (gin's c.JSON). The bytes and
// headers are c.JSON's of the [OAChatCompletion] the reply stands for, which reply_test.go
// checks on a differential table.

// completionReply is what a non-streamed chat.completion varies in: one assistant choice with
// null logprobs and refusal.
type completionReply struct {
	ID, Model, Content, FinishReason string
	Created                          int64
	Usage                            OAUsage
}

// completion is the OpenAI object r stands for, as c.JSON would be given it.
func (r *completionReply) completion() OAChatCompletion {
	return OAChatCompletion{
		ID: r.ID, Object: "chat.completion", Created: r.Created, Model: r.Model,
		Choices: []OAChatChoice{{Index: 0, Message: OAChatMessage{Role: "assistant", Content: r.Content},
			Logprobs: jsonNull, FinishReason: r.FinishReason}},
		Usage: r.Usage,
	}
}

// appendJSON appends json.Marshal(r.completion()).
func (r *completionReply) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, r.ID)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = jsonenc.AppendInt(b, r.Created)
	b = append(b, `,"model":`...)
	b = jsonenc.AppendString(b, r.Model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	b = jsonenc.AppendString(b, r.Content)
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":`...)
	b = jsonenc.AppendString(b, r.FinishReason)
	b = append(b, `}],"usage":{"prompt_tokens":`...)
	b = jsonenc.AppendInt(b, r.Usage.PromptTokens)
	b = append(b, `,"completion_tokens":`...)
	b = jsonenc.AppendInt(b, r.Usage.CompletionTokens)
	b = append(b, `,"total_tokens":`...)
	b = jsonenc.AppendInt(b, r.Usage.TotalTokens)
	return append(b, "}}"...)
}

// writeCompletion is c.JSON(http.StatusOK, r.completion()), sent at once ([sendNow]).
func writeCompletion(c *gin.Context, r *completionReply) {
	j := replyPool.Get().(*jsonReply)
	j.b = r.appendJSON(j.b[:0])
	sendNow(c, j)
	if cap(j.b) <= maxPooledReply {
		replyPool.Put(j)
	}
}

// replyNow is c.JSON(http.StatusOK, v) sent at once ([sendNow]): the reply of a served AI
// request (chat, embeddings, moderation, summary). A value encoding/json refuses goes to c.JSON,
// which records the error as it always did.
func replyNow(c *gin.Context, v any) {
	b, err := json.Marshal(v) // what gin's JSON renderer encodes with
	if err != nil {
		c.JSON(http.StatusOK, v)
		return
	}
	sendNow(c, &jsonReply{b: b})
}

// sendNow writes a 200 reply of j's bytes and, over HTTP/1, sends it before the handler returns.
// net/http sends a reply it buffered only when the handler returns, that is after every
// middleware's way out (access log, metrics, tracing span); with its Content-Length and a flush
// the client has it while those run. (HTTP/2 would pay a frame for it: an empty DATA frame to end
// the stream.)
func sendNow(c *gin.Context, j *jsonReply) {
	early := c.Request != nil && c.Request.ProtoMajor == 1
	if early {
		c.Writer.Header()["Content-Length"] = []string{strconv.Itoa(len(j.b))}
	}
	c.Render(http.StatusOK, j)
	if early {
		c.Writer.Flush()
	}
}

// jsonContentType is the Content-Type c.JSON sets.
var jsonContentType = []string{"application/json; charset=utf-8"}

// jsonReply is an encoded JSON reply; it renders as gin's JSON renderer does, minus the
// encoding.
type jsonReply struct{ b []byte }

var replyPool = sync.Pool{New: func() any { return &jsonReply{b: make([]byte, 0, 1<<10)} }}

// maxPooledReply keeps the pool from pinning the memory of an occasional huge reply.
const maxPooledReply = 64 << 10

// Render implements render.Render. The writer does not keep the slice (io.Writer's contract),
// so the buffer can go back to the pool once Render returns.
func (j *jsonReply) Render(w http.ResponseWriter) error {
	j.WriteContentType(w)
	_, err := w.Write(j.b)
	return err
}

// WriteContentType implements render.Render.
func (j *jsonReply) WriteContentType(w http.ResponseWriter) {
	if h := w.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
}
