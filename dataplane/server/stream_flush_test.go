package server_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// The OpenAI-compatible stream flushes the client before each read from the upstream, not after
// each chunk: a delta must still reach the client while the upstream is quiet. The fake waits a
// minute before its second delta; the first must arrive long before that.
func TestOpenAIStreamDeliversADeltaWhileTheUpstreamIsQuiet(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "first second", Chunks: 2, ChunkDelay: time.Minute}})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/v1/chat/completions", bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+appKey)
	req.Header.Set("X-AI-Org", "acme")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err, "the first delta did not arrive before the deadline")
		if strings.Contains(line, `"content":"first`) {
			break
		}
	}
}
