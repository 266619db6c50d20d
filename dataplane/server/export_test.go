package server

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

// NewChain is the engine [New] builds, with its whole middleware chain, serving routes instead
// of the handlers' table: benchmarks measure the chain around a trivial handler with it.
func NewChain(cfg Config, routes []Route, holder *runtime.Holder, m *metrics.Metrics, log *slog.Logger) http.Handler {
	cfg.defaults()
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, engine: gin.New(), holder: holder, metrics: m, log: log, routes: routes}
	s.install()
	return s.engine
}
