package providers

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A connection holds a read buffer only while a call reads from it, and a write buffer never
// longer than the write: an idle connection in the pool holds none, an open stream one.
func TestDirectConnectionsHoldBuffersOnlyWhileACallUsesThem(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "head")
		w.(http.Flusher).Flush()
		if r.URL.Path == "/stream" {
			<-release
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before the server's Close waits for its handler
	hc := NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections)
	tr := hc.Transport.(*directTransport)
	idle := func() []*directConn {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		var all []*directConn
		for _, h := range tr.hosts {
			all = append(all, h.idle...)
		}
		return all
	}

	resp, err := hc.Post(srv.URL+"/once", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "head", string(b))
	require.Len(t, idle(), 1)
	require.Nil(t, idle()[0].br, "an idle connection keeps its read buffer")

	resp, err = hc.Post(srv.URL+"/stream", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	var head [4]byte
	_, err = io.ReadFull(resp.Body, head[:])
	require.NoError(t, err)
	require.Empty(t, idle(), "the open stream's connection is not idle")
	require.NotNil(t, resp.Body.(*directBody).pc.br)
	require.NoError(t, resp.Body.Close())
}
