package handlers

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

// replyStrings are the texts every string of the reply is tried with.
var replyStrings = []string{
	"", "chatcmpl-abc", "gpt-4o-mini", "stop", "Hello, world!", "a\"b\\c/d\b\f\n\r\t\v\x00\x1f\x7f",
	"<b>bold</b> & <i>more</i>", "é 中 😀 \ufeff", "\u2028\u2029", "\xff\xfe", "a\xe2\x82", "\xed\xa0\x80",
	"```json\n{\"a\": [1, 2]}\n```", strings.Repeat("long answer ", 500),
}

func completionReplies() []*completionReply {
	var out []*completionReply
	for _, s := range replyStrings {
		out = append(out, &completionReply{ID: s}, &completionReply{Model: s}, &completionReply{Content: s}, &completionReply{FinishReason: s})
	}
	for _, n := range []int64{0, 1, -1, 1 << 40, math.MaxInt64, math.MinInt64} {
		out = append(out, &completionReply{Created: n}, &completionReply{Usage: OAUsage{PromptTokens: n, CompletionTokens: -n, TotalTokens: n / 3}})
	}
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func() string { return replyStrings[rng.IntN(len(replyStrings))] }
	for range 300 {
		out = append(out, &completionReply{ID: pick(), Model: pick(), Content: pick(), FinishReason: pick(), Created: rng.Int64(),
			Usage: OAUsage{PromptTokens: rng.Int64N(1 << 20), CompletionTokens: rng.Int64N(1 << 20), TotalTokens: rng.Int64()}})
	}
	return out
}

func TestCompletionReplyIsEncodingJSONsByteForByte(t *testing.T) {
	for _, r := range completionReplies() {
		want, err := json.Marshal(r.completion())
		require.NoError(t, err)
		require.Equal(t, string(want), string(r.appendJSON(nil)), "reply %+v", r)
	}
}

// The whole reply, headers included, is what c.JSON wrote, plus the Content-Length net/http
// would have added and a flush over HTTP/1; the pooled buffer is reused.
func TestWriteCompletionWritesWhatCJSONWrote(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for i, r := range completionReplies()[:80] {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		if i%2 == 1 {
			req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		}
		want := httptest.NewRecorder()
		wc, _ := gin.CreateTestContext(want)
		wc.Request = req
		wc.JSON(http.StatusOK, r.completion())

		got := httptest.NewRecorder()
		gc, _ := gin.CreateTestContext(got)
		gc.Request = req
		writeCompletion(gc, r)

		wantHeader := want.Header().Clone()
		if req.ProtoMajor == 1 {
			wantHeader.Set("Content-Length", strconv.Itoa(want.Body.Len()))
		}
		require.Equal(t, want.Code, got.Code)
		require.Equal(t, wantHeader, got.Header())
		require.Equal(t, want.Body.String(), got.Body.String())
		require.Equal(t, req.ProtoMajor == 1, got.Flushed, "flushed over HTTP/1 only")
		require.Empty(t, gc.Errors)
	}
}

func FuzzCompletionReplyIsEncodingJSONs(f *testing.F) {
	f.Add("chatcmpl-1", "m", "hi <there> & \u2028", "stop", int64(1), int64(2))
	f.Add("", "\xff", "\x00\"\\", "", int64(-1), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, id, model, content, finish string, created, tokens int64) {
		r := &completionReply{ID: id, Model: model, Content: content, FinishReason: finish, Created: created,
			Usage: OAUsage{PromptTokens: tokens, CompletionTokens: created, TotalTokens: tokens + created}}
		want, err := json.Marshal(r.completion())
		require.NoError(t, err)
		require.Equal(t, string(want), string(r.appendJSON(nil)))
	})
}

// BenchmarkWriteCompletion writes a non-streamed reply of ~600 B of content; the CJSON variant
// is how it was written before, kept as the yardstick.
func BenchmarkWriteCompletion(b *testing.B) {
	gin.SetMode(gin.TestMode)
	r := &completionReply{ID: "chatcmpl-9f3b2c1d4e5f", Model: "gpt-4o-mini", FinishReason: "stop", Created: 1764110000,
		Content: strings.Repeat("Revenue grew in every region while \"operating costs\" held steady.\n", 9),
		Usage:   OAUsage{PromptTokens: 312, CompletionTokens: 140, TotalTokens: 452}}
	// One context for every iteration: its writer passes each Write through; the headers are
	// cleared so that Content-Type is set every time, as on a fresh response.
	w := &discardWriter{h: http.Header{}}
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			writeCompletion(c, r)
		}
	})
	b.Run("CJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			c.JSON(http.StatusOK, r.completion())
		}
	})
}

// discardWriter is an http.ResponseWriter that keeps headers and drops the body.
type discardWriter struct {
	h http.Header
	n int
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}

func (w *discardWriter) WriteHeader(int) {}

func (w *discardWriter) Flush() {}

// replyNow writes what c.JSON writes (plus the Content-Length, flushed, over HTTP/1), and a value
// encoding/json refuses takes c.JSON's own way: the error recorded, no body.
func TestReplyNowWritesWhatCJSONWrote(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for i, v := range []any{
		APIEmbedReply{Embeddings: [][]float32{{0.25, -1e-7}}, Model: "m", Provider: "ns/p"},
		gin.H{"id": "modr-1", "model": "<m>", "results": []int{1, 2}},
		gin.H{"bad": math.NaN()},
	} {
		req := httptest.NewRequest(http.MethodPost, "/api/ai/embed", nil)
		want := httptest.NewRecorder()
		wc, _ := gin.CreateTestContext(want)
		wc.Request = req
		wc.JSON(http.StatusOK, v)

		got := httptest.NewRecorder()
		gc, _ := gin.CreateTestContext(got)
		gc.Request = req
		replyNow(gc, v)

		require.Equal(t, want.Code, got.Code, "value %d", i)
		require.Equal(t, want.Body.String(), got.Body.String(), "value %d", i)
		require.Equal(t, len(wc.Errors), len(gc.Errors), "value %d", i)
		wantHeader := want.Header().Clone()
		if len(wc.Errors) == 0 {
			wantHeader.Set("Content-Length", strconv.Itoa(want.Body.Len()))
			require.True(t, got.Flushed, "value %d", i)
		}
		require.Equal(t, wantHeader, got.Header(), "value %d", i)
	}
}
