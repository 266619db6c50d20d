package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// redisLog writes the Redis client's own messages (a failed dial, the primary a sentinel named)
// as the data plane's JSON log lines instead of go-redis's plain-text lines on stderr, which a
// log pipeline reading JSON would drop or misparse.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.InfoContext(ctx, "redis client", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}
