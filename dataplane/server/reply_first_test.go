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

// accessLogGate holds the access-log line of a chat completion until the client says it has
// the whole reply, and reports whether it did before a deadline.
type accessLogGate struct {
	clientHasReply chan struct{}
	beforeLog      chan bool
}

func (g *accessLogGate) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"msg":"request"`)) && bytes.Contains(p, []byte(`"route":"/v1/chat/completions"`)) {
		select {
		case <-g.clientHasReply:
			g.beforeLog <- true
		case <-time.After(10 * time.Second):
			g.beforeLog <- false
		}
	}
	return len(p), nil
}

// TestAChatCompletionReachesTheClientBeforeTheAccessLog: the reply is on the wire, whole, while
// the middleware after the handler (here the access log, held up until the client has read the
// reply) still runs.
func TestAChatCompletionReachesTheClientBeforeTheAccessLog(t *testing.T) {
	g := &accessLogGate{clientHasReply: make(chan struct{}), beforeLog: make(chan bool, 1)}
	h := newHarness(t, harnessOpts{logs: g, upstream: providertest.Options{Reply: "hello"}})

	code, hdr, raw := h.do("POST", "/v1/chat/completions", adminKey, map[string]any{
		"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "x"}},
	})
	close(g.clientHasReply)
	require.True(t, <-g.beforeLog, "the client got the reply only after the access log was written")
	require.Equal(t, http.StatusOK, code, string(raw))
	require.Equal(t, strconv.Itoa(len(raw)), hdr.Get("Content-Length"))
	require.Contains(t, string(raw), `"content":"hello"`)
}
