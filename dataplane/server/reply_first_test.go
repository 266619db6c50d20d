package server_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// accessLogGate holds the access-log line of a request to route until the client says it has
// the whole reply, and reports whether it did before a deadline.
type accessLogGate struct {
	route          []byte
	clientHasReply chan struct{}
	beforeLog      chan bool
}

func (g *accessLogGate) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"msg":"request"`)) && bytes.Contains(p, g.route) {
		select {
		case <-g.clientHasReply:
			g.beforeLog <- true
		case <-time.After(10 * time.Second):
			g.beforeLog <- false
		}
	}
	return len(p), nil
}

// TestAServedReplyReachesTheClientBeforeTheAccessLog: the reply of a served AI request is on the
// wire, whole, while the middleware after the handler (here the access log, held up until the
// client has read the reply) still runs.
func TestAServedReplyReachesTheClientBeforeTheAccessLog(t *testing.T) {
	for path, body := range map[string]any{
		"/v1/chat/completions": map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "x"}}},
		"/api/ai/chat":         chatBody("gpt-4o-mini", "x"),
		"/api/ai/embed":        map[string]any{"model": "text-embedding-3-small", "input": []string{"a"}, "userId": "u"},
		"/v1/embeddings":       map[string]any{"model": "text-embedding-3-small", "input": "a"},
		"/api/ai/moderate":     map[string]any{"input": "hello", "userId": "u"},
		"/v1/moderations":      map[string]any{"input": "hello"},
		"/api/ai/summarize":    map[string]any{"model": "tiny-window", "text": "one two three four five six", "userId": "u", "maxWords": 3},
	} {
		t.Run(path, func(t *testing.T) {
			g := &accessLogGate{route: []byte(`"route":"` + path + `"`), clientHasReply: make(chan struct{}), beforeLog: make(chan bool, 1)}
			h := newHarness(t, harnessOpts{logs: g, upstream: providertest.Options{Reply: "hello"}})

			code, hdr, raw := h.do("POST", path, adminKey, body)
			close(g.clientHasReply)
			require.True(t, <-g.beforeLog, "the client got the reply only after the access log was written")
			require.Equal(t, http.StatusOK, code, string(raw))
			require.Equal(t, strconv.Itoa(len(raw)), hdr.Get("Content-Length"))
			require.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
		})
	}
}
