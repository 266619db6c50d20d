package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadRefusesNonLoopbackTargets(t *testing.T) {
	for _, u := range []string{"http://example.com", "http://10.0.0.1:3109", "http://[::ffff:8.8.8.8]/"} {
		_, err := run(t.Context(), options{url: u, concurrency: 1, duration: time.Second})
		require.ErrorContains(t, err, "loopback", u)
	}
}

func TestLoadIsBoundedByRequestsAndReportsPercentiles(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	rep, err := run(t.Context(), options{url: srv.URL, path: "/api/ai/chat", key: "k", model: "m", concurrency: 4,
		duration: 10 * time.Second, maxRequests: 200, users: 10, timeout: 5 * time.Second})
	require.NoError(t, err)
	require.Equal(t, int64(200), rep.Requests)
	require.Equal(t, int64(200), got.Load())
	require.Zero(t, rep.Errors)
	require.Equal(t, int64(200), rep.ByStatus[200])
	require.LessOrEqual(t, rep.Percentile(50), rep.Percentile(99))
	require.True(t, strings.Contains(rep.String(), "p99"))
}
