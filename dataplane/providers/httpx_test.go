package providers_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// Upstreams that offer HTTP/2 (every hosted provider, over TLS) must get it: the transport has
// its own dialer, which turns HTTP/2 off unless it is forced on, and over HTTP/1.1 each open
// stream holds a connection of its own (two goroutines and two buffers) instead of sharing one.
func TestTheUpstreamClientSpeaksHTTP2WhenTheUpstreamOffersIt(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	hc := providers.NewHTTPClient(0)
	tr := providers.HTTPTransport(hc)
	// Trust the test server's certificate; everything else is the production transport.
	tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	defer hc.CloseIdleConnections()

	for range 2 {
		resp, err := hc.Get(srv.URL)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, 2, resp.ProtoMajor)
		require.Equal(t, "HTTP/2.0", string(body))
	}
}
