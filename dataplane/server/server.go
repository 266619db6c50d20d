// Package server builds the data plane's Gin engine from one route table and runs it with
// production timeouts and a graceful shutdown.
//
// Middleware order (fixed):
//
//  1. recovery (a panic becomes a 500 error body)
//  2. request ID + JSON access log + request metrics (no bodies, no keys); before it, when
//     OTEL_* turns tracing on, one span per request (see package tracing)
//  3. request body limit (413)
//  4. snapshot: the current [runtime.Runtime] is loaded once and kept for the request
//  5. auth: bearer key → SHA-256 → constant-time match against the snapshot's keys
//
// Then the handler's one service call runs route resolution, rate limits and budget reservation
// (one governor call), input guardrails, the cache lookup, the provider call, output
// guardrails, the settle (before a non-streamed reply is written) and the cache store.
// Steps 4–5 are installed only on routes whose table entry says Auth.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/openapi"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/tracing"
)

// Config is the HTTP side of the data plane; zero fields take the Default* values.
type Config struct {
	Addr              string
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading one request (headers and body). It does not cut streams:
	// net/http lifts the read deadline once the body is consumed (handlers read it to the end).
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests and streams may take to finish after
	// SIGTERM before connections are closed.
	ShutdownTimeout time.Duration
}

// Defaults of [Config].
const (
	DefaultAddr              = ":3109"
	DefaultMaxBodyBytes      = 4 << 20
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
)

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
}

// Route is one entry of the route table.
type Route struct {
	Method string
	Path   string
	// Auth routes get the snapshot and auth middleware; every /api/ai and /v1 route must.
	Auth    bool
	Handler gin.HandlerFunc
}

// Routes is the one route table of the data plane.
func Routes(h *handlers.Handlers) []Route {
	return []Route{
		{http.MethodGet, "/healthz", false, h.Healthz},
		{http.MethodGet, "/readyz", false, h.Readyz},
		{http.MethodGet, "/metrics", false, h.Metrics},

		{http.MethodPost, "/api/ai/chat", true, h.Chat},
		{http.MethodPost, "/api/ai/embed", true, h.Embed},
		{http.MethodPost, "/api/ai/moderate", true, h.Moderate},
		{http.MethodPost, "/api/ai/summarize", true, h.Summarize},
		{http.MethodGet, "/api/ai/usage", true, h.Usage},
		{http.MethodGet, "/api/ai/costs", true, h.Costs},
		{http.MethodGet, openapi.Path, true, openapi.Handler()},
		{http.MethodGet, "/api/ai/budgets", true, h.Budgets.ListBudgets},
		{http.MethodGet, "/api/ai/budgets/:scope/:subject", true, h.Budgets.GetBudget},
		{http.MethodPut, "/api/ai/budgets/:scope/:subject", true, h.Budgets.PutBudget},
		{http.MethodDelete, "/api/ai/budgets/:scope/:subject", true, h.Budgets.DeleteBudget},

		{http.MethodPost, "/v1/chat/completions", true, h.ChatCompletions},
		{http.MethodPost, "/v1/embeddings", true, h.Embeddings},
		{http.MethodPost, "/v1/moderations", true, h.Moderations},
		{http.MethodGet, "/v1/models", true, h.Models},
	}
}

// Server is the data plane's HTTP server.
type Server struct {
	cfg      Config
	engine   *gin.Engine
	routes   []Route
	holder   *runtime.Holder
	metrics  *metrics.Metrics
	log      *slog.Logger
	draining atomic.Bool
}

// New builds the engine: the handlers h, their table and middleware, serving holder's snapshots.
func New(cfg Config, h *handlers.Handlers, holder *runtime.Holder, m *metrics.Metrics, log *slog.Logger) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, engine: gin.New(), holder: holder, metrics: m, log: log}
	h.Draining = s.draining.Load
	s.routes = Routes(h)
	s.install()
	return s
}

// install puts the middleware chain and s.routes on the engine.
func (s *Server) install() {
	cfg, log, m, holder := s.cfg, s.log, s.metrics, s.holder
	e := s.engine
	e.HandleMethodNotAllowed = true
	// apiKey budget subjects are "namespace/name" and travel as %2F inside {subject}; match on
	// the raw path so that they stay one segment.
	e.UseRawPath = true
	// The bad-key limiter and the logs key on the peer address; X-Forwarded-For from an arbitrary
	// client would let it pick its own address.
	_ = e.SetTrustedProxies(nil)
	e.ContextWithFallback = true
	// tracing runs before the request log so that the log lines carry the span's trace ID.
	e.Use(middleware.NewRecovery(log), tracing.Middleware(), middleware.NewRequestLog(log, m), middleware.NewBodyLimit(cfg.MaxBodyBytes))
	snap := middleware.NewRuntime(holder)
	auth := middleware.NewAuthWithLimiter(middleware.NewBadKeyLimiter(middleware.DefaultBadKeyBurst, middleware.DefaultBadKeyRefill, nil))
	for _, r := range s.routes {
		chain := []gin.HandlerFunc{r.Handler}
		if r.Auth {
			chain = []gin.HandlerFunc{snap, auth, r.Handler}
		}
		e.Handle(r.Method, r.Path, chain...)
	}
	e.NoRoute(func(c *gin.Context) {
		apierror.Abort(c, apierror.New(http.StatusNotFound, apierror.TypeNotFound, apierror.CodeNotFound, "no such endpoint"))
	})
	e.NoMethod(func(c *gin.Context) {
		apierror.Abort(c, apierror.New(http.StatusMethodNotAllowed, apierror.TypeInvalidRequest, apierror.CodeInvalidRequest, "method not allowed"))
	})
}

// Handler is the engine, for httptest and benchmarks.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes returns the route table as registered.
func (s *Server) Routes() []Route { return s.routes }

// Serve serves on ln until ctx ends, then drains: /readyz turns 503, new connections are
// refused, and in-flight requests and streams get ShutdownTimeout to finish before the rest
// are closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		// No WriteTimeout: it would cut long streams. Upstream stalls are bounded by the
		// providers' own per-chunk timeouts instead.
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("data plane listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down: draining in-flight requests", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown deadline passed; closing remaining connections")
		_ = srv.Close()
		err = nil
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ListenAndServe listens on the configured address and calls [Server.Serve].
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}
