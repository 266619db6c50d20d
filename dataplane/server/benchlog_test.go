package server_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/internal/logbuf"
)

// benchLogger is the data plane's logger as cmd/dataplane builds it, writing to /dev/null.
func benchLogger(b *testing.B) *slog.Logger {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(b, err)
	log, w := logbuf.New(f, slog.LevelInfo, logbuf.Options{})
	b.Cleanup(func() {
		require.NoError(b, w.Close())
		_ = f.Close()
	})
	return log
}
