package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a log output the test reads while the data plane writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// accessLinesOf counts the access-log lines of route in out, checking each is one JSON object.
func accessLinesOf(t *testing.T, out, route string) int {
	t.Helper()
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var rec struct{ Msg, Route string }
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if rec.Msg == "request" && rec.Route == route {
			n++
		}
	}
	return n
}

func TestBufferedLogLinesAreAllWrittenByAGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	// An hour between timed flushes: only the size limit, an error line or the shutdown can
	// write the buffer during this test.
	go func() {
		done <- run(ctx, []string{"--manifests", filepath.Join("..", "..", "config", "samples", "dev"), "--addr", addr}, out, time.Hour)
	}()
	url := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	const n = 25
	for i := range n {
		code, _, err := chat(url, i)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	require.Less(t, accessLinesOf(t, out.String(), "/api/ai/chat"), n, "the lines wait in the buffer")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the data plane did not stop")
	}
	got := out.String()
	require.Equal(t, n, accessLinesOf(t, got, "/api/ai/chat"), "every access line is written by the shutdown")
	require.Contains(t, got, `"msg":"shutting down: draining in-flight requests"`)
}
