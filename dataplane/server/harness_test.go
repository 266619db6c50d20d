package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/cache"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/guard"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/server"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/internal/logbuf"
)

// Tokens of the test client keys.
const (
	adminKey = "test-admin-key"
	appKey   = "test-app-key" // app key for org "acme" only
)

func keyHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// testSnapshot is a snapshot with an OpenAI-compatible fake upstream at baseURL serving
// gpt-4o-mini and an embedding model, a mock provider with a tiny context window, a default
// route and two client keys.
func testSnapshot(t testing.TB, baseURL string, mutate ...func(*config.Snapshot)) *config.Snapshot {
	t.Helper()
	s := &config.Snapshot{
		Providers: []config.Provider{
			{
				Name: "default/mock", Type: config.ProviderMock,
				Mock: &config.Mock{Reply: "short summary"},
				Models: []config.Model{{Name: "tiny-window", InputPerMillion: money.MustParseUSD("1"),
					OutputPerMillion: money.MustParseUSD("2"), ContextWindow: 600, MaxOutputTokens: 100}},
			},
			{
				Name: "default/openai", Type: config.ProviderOpenAI, BaseURL: baseURL,
				APIKey: config.Secret(providertest.DefaultAPIKey),
				Models: []config.Model{
					{Name: "gpt-4o-mini", InputPerMillion: money.MustParseUSD("0.15"), OutputPerMillion: money.MustParseUSD("0.60"),
						ContextWindow: 128000, MaxOutputTokens: 1000},
					{Name: "text-embedding-3-small", InputPerMillion: money.MustParseUSD("0.02"), Embedding: true},
				},
			},
		},
		Routes: []config.Route{{
			Name:     "default/default",
			Match:    config.Match{Models: []string{"default", "gpt-4o-mini"}},
			Targets:  []config.Target{{Provider: "default/openai", Model: "gpt-4o-mini", Weight: 1}},
			Strategy: config.StrategyFailover,
		}},
		APIKeys: []config.APIKey{
			{Name: "default/admin", SHA256: keyHash(adminKey), Role: config.RoleAdmin},
			{Name: "default/app", SHA256: keyHash(appKey), Role: config.RoleApp, Orgs: []string{"acme"}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	require.NoError(t, s.Seal())
	return s
}

type harness struct {
	t        testing.TB
	URL      string
	Server   *server.Server
	Holder   *runtime.Holder
	Metrics  *metrics.Metrics
	Gov      *recordingGovernor
	Upstream *providertest.Server
	client   *http.Client
	// Stop shuts the server down gracefully (as SIGTERM does) and returns Serve's error.
	Stop func() error
}

type harnessOpts struct {
	upstream providertest.Options
	mutate   []func(*config.Snapshot)
	gov      governor.Governor
	noGuard  bool
	clock    store.Clock
	// logs receives the server's JSON logs (default: discarded).
	logs io.Writer
	// readTimeout is the server's body read timeout (default: the server's).
	readTimeout time.Duration
	// maxBody is the request body limit (default 64 KiB).
	maxBody int64
	// health and planner tune the route planner (breaker threshold, cooldown, fake clock).
	health  route.HealthOptions
	planner route.PlannerOptions
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	up := providertest.NewOpenAI(t, o.upstream)
	m := metrics.New()
	if o.logs == nil {
		o.logs = io.Discard
	}
	// The data plane's own JSON handler, as cmd/dataplane installs it (unbuffered here), so that
	// these tests see the access lines the binary writes.
	log := slog.New(logbuf.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: providers.NewHTTPClient(0)}, m, log)
	require.NoError(t, holder.Apply(testSnapshot(t, up.BaseURL, o.mutate...)))
	st := store.NewMemory(store.MemoryOptions{Clock: o.clock})
	inner := o.gov
	if inner == nil {
		inner = governor.New(st, governor.Options{Clock: o.clock, Logger: log})
	}
	gov := &recordingGovernor{Governor: inner}
	var g handlers.Guard
	if !o.noGuard {
		g = handlers.NewGuard(guard.NewEngine(guard.Options{}))
	}
	svc := handlers.NewService(handlers.Deps{
		Governor: gov,
		Planner:  route.NewPlanner(route.NewHealth(o.health), o.planner),
		Guard:    g,
		Cache:    cache.New(st.Cache(), cache.Options{Logger: log}),
		Metrics:  m,
		Log:      log,
	})
	if o.maxBody == 0 {
		o.maxBody = 64 << 10
	}
	srv := server.New(server.Config{MaxBodyBytes: o.maxBody, ReadTimeout: o.readTimeout}, handlers.New(svc, holder, m), holder, m, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	return &harness{t: t, URL: "http://" + ln.Addr().String(), Server: srv, Holder: holder, Metrics: m, Gov: gov,
		Upstream: up, client: &http.Client{Timeout: 30 * time.Second}, Stop: stop}
}

// do sends a request with the given bearer key ("" = none) and returns status, headers, body.
func (h *harness) do(method, path, key string, body any, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(h.t, err)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.URL+path, r)
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	for k, v := range resp.Trailer { // streams send X-AI-Cost as a trailer
		resp.Header[k] = v
	}
	return resp.StatusCode, resp.Header, out
}

// recordingGovernor wraps the governor under test and records settles, so tests can assert
// that every admitted call was settled (also after a client disconnect).
type recordingGovernor struct {
	governor.Governor
	mu      sync.Mutex
	settled []settleRecord
	notify  chan struct{}
}

type settleRecord struct {
	Req    governor.Request
	Charge governor.Charge
	CtxErr error
}

func (g *recordingGovernor) Settle(ctx context.Context, req *governor.Request, t *governor.Ticket, c governor.Charge) error {
	err := g.Governor.Settle(ctx, req, t, c)
	g.mu.Lock()
	g.settled = append(g.settled, settleRecord{Req: *req, Charge: c, CtxErr: ctx.Err()})
	n := g.notify
	g.mu.Unlock()
	if n != nil {
		select {
		case n <- struct{}{}:
		default:
		}
	}
	return err
}

func (g *recordingGovernor) settles() []settleRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]settleRecord(nil), g.settled...)
}

func errorBody(t testing.TB, b []byte) (typ, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Type, Code, Message string
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(b, &e), string(b))
	require.NotEmpty(t, e.Error.Message, string(b))
	return e.Error.Type, e.Error.Code
}
