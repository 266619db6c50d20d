package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recorder is an output that keeps every Write it receives apart.
type recorder struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func (r *recorder) all() string { return strings.Join(r.snapshot(), "") }

func TestLinesAreWrittenInOneBatchAndCloseWritesTheRest(t *testing.T) {
	out := &recorder{}
	w := NewWriter(out, Options{Interval: time.Hour})
	for i := range 100 {
		_, err := fmt.Fprintf(w, "line %d\n", i)
		require.NoError(t, err)
	}
	require.Empty(t, out.snapshot(), "nothing is written before the interval, the size or Close")
	require.NoError(t, w.Close())
	require.Len(t, out.snapshot(), 1, "one write for the batch")
	require.Equal(t, 100, strings.Count(out.all(), "\n"))

	_, err := w.Write([]byte("after close\n"))
	require.NoError(t, err)
	require.Equal(t, "after close\n", out.snapshot()[1], "after Close lines go straight out")
}

func TestABufferedLineIsWrittenWithinTheInterval(t *testing.T) {
	out := &recorder{}
	w := NewWriter(out, Options{Interval: 20 * time.Millisecond})
	defer w.Close()
	for round := range 3 {
		line := fmt.Sprintf("round %d\n", round)
		written := time.Now()
		_, err := w.Write([]byte(line))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return strings.Contains(out.all(), line) }, 2*time.Second, time.Millisecond)
		t.Logf("round %d written after %s", round, time.Since(written))
	}
	require.Len(t, out.snapshot(), 3)
}

func TestAFullBufferIsWrittenAtOnceAndLinesAreNeverSplit(t *testing.T) {
	out := &recorder{}
	w := NewWriter(out, Options{Interval: time.Hour, Size: 1 << 10})
	line := strings.Repeat("x", 99) + "\n"
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 100 {
				_, err := w.Write([]byte(line))
				require.NoError(t, err, "goroutine %d", g)
			}
		})
	}
	wg.Wait()
	require.Greater(t, len(out.snapshot()), 50, "the size triggers writes without waiting for the interval")
	require.NoError(t, w.Close())
	for _, p := range out.snapshot() {
		require.Zero(t, len(p)%len(line), "each write holds whole lines")
		require.LessOrEqual(t, len(p), 1<<10+len(line))
	}
	require.Equal(t, strings.Repeat(line, 800), out.all())
}

func TestErrorRecordsAreWrittenAtOnce(t *testing.T) {
	out := &recorder{}
	log, w := New(out, slog.LevelInfo, Options{Interval: time.Hour})
	defer w.Close()
	log.Info("buffered")
	log.With("request_id", "r1").Warn("buffered too")
	require.Empty(t, out.snapshot())
	log.With("request_id", "r1").Error("upstream failed")
	got := out.all()
	require.Contains(t, got, `"msg":"buffered"`, "the error takes what was buffered before it along")
	require.Contains(t, got, `"msg":"upstream failed","request_id":"r1"`)

	h := log.Handler().(*Handler)
	l := h.Line(time.Now(), slog.LevelError, "request")
	l.Int("status", 502)
	require.NoError(t, l.Write())
	require.Contains(t, out.all(), `"level":"ERROR","msg":"request","status":502}`)
}

func TestAnOutputErrorReachesTheNextLogger(t *testing.T) {
	broken := errors.New("disk full")
	out := &recorder{err: broken}
	w := NewWriter(out, Options{Interval: time.Hour, Size: 16})
	_, err := w.Write([]byte("0123456789abcdef\n"))
	require.ErrorIs(t, err, broken, "the write that fills the buffer sees the output's error")
	_, err = w.Write([]byte("short\n"))
	require.NoError(t, err, "reported once")

	out.mu.Lock()
	out.err = nil
	out.mu.Unlock()
	require.NoError(t, w.Close())
	require.Equal(t, "short\n", out.all(), "the refused batch is dropped, later lines are not")
}

func TestAWriterFlushesOnRequest(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, Options{Interval: time.Hour})
	_, _ = w.Write([]byte("a\n"))
	require.Zero(t, out.Len())
	require.NoError(t, w.Flush())
	require.Equal(t, "a\n", out.String())
	require.NoError(t, w.Close())
}
