package server_test

import (
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/server"
)

// benchWriter is a response writer reused across iterations, so that the benchmark measures
// the chain rather than a recorder's buffers; its header map is emptied per request, as a
// fresh net/http response's is.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(s int)   { w.status = s }
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

var benchReply = []byte(`{"ok":true}`)

// processCPU is the CPU time the process has used (all threads, the GC's included). On a
// machine shared with other work, CPU per request varies far less than wall time per request.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU used since start per iteration, as cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkMiddlewareChain measures the server's middleware chain (recovery, tracing off,
// request ID, access log line, request metrics, body limit, snapshot, auth with the bad-key
// limiter) around a handler that does nothing but write a small reply. The access log goes to
// /dev/null through the logger the binary builds (see benchLogger), so each line pays for the
// write it costs in production.
func BenchmarkMiddlewareChain(b *testing.B) {
	log := benchLogger(b)
	m := metrics.New()
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: providers.NewHTTPClient(0)}, m, log)
	require.NoError(b, holder.Apply(testSnapshot(b, "http://127.0.0.1:1/v1")))
	trivial := func(c *gin.Context) { c.Data(http.StatusOK, "application/json", benchReply) }
	h := server.NewChain(server.Config{}, []server.Route{
		{Method: http.MethodGet, Path: "/public", Handler: trivial},
		{Method: http.MethodPost, Path: "/api/ai/trivial", Auth: true, Handler: trivial},
	}, holder, m, log)

	run := func(b *testing.B, tmpl *http.Request) {
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			r := *tmpl
			r.Body = http.NoBody
			clear(w.h)
			w.status, w.n = 0, 0
			h.ServeHTTP(w, &r)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
		reportCPU(b, cpu)
	}
	b.Run("public", func(b *testing.B) {
		run(b, httptest.NewRequest(http.MethodGet, "/public", nil))
	})
	b.Run("auth", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodPost, "/api/ai/trivial", nil)
		r.Header.Set("Authorization", "Bearer "+adminKey)
		r.Header.Set("X-Request-ID", "caller-chosen-id-0001")
		run(b, r)
	})
	b.Run("auth-parallel", func(b *testing.B) {
		tmpl := httptest.NewRequest(http.MethodPost, "/api/ai/trivial", nil)
		tmpl.Header.Set("Authorization", "Bearer "+adminKey)
		b.ReportAllocs()
		cpu := processCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			w := &benchWriter{h: http.Header{}}
			for pb.Next() {
				r := *tmpl
				r.Body = http.NoBody
				clear(w.h)
				w.status, w.n = 0, 0
				h.ServeHTTP(w, &r)
				if w.status != http.StatusOK {
					b.Errorf("status %d", w.status)
					return
				}
			}
		})
		reportCPU(b, cpu)
	})
}
