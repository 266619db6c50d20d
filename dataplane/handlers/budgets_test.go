package handlers_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/openapi"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

const (
	budgetAdminToken = "budget-admin-token"
	budgetAppToken   = "budget-app-token"
)

// fakeBudgetAdmin keeps budgets in memory; err, when set, is returned by every call.
type fakeBudgetAdmin struct {
	mu      sync.Mutex
	budgets map[string]handlers.BudgetView // by scope/subject
	err     error
	lastPut handlers.BudgetSpec
}

func (f *fakeBudgetAdmin) Put(_ context.Context, s handlers.BudgetSpec) (handlers.BudgetView, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPut = s
	if f.err != nil {
		return handlers.BudgetView{}, false, f.err
	}
	k := s.Scope + "/" + s.Subject
	if cur, ok := f.budgets[k]; ok && cur.ManagedBy != handlers.ManagedByAPI {
		return handlers.BudgetView{}, false, &handlers.BudgetConflictError{Name: cur.Name}
	}
	_, existed := f.budgets[k]
	v := handlers.BudgetView{Name: "default/api-" + strings.ToLower(s.Scope) + "-" + s.Subject, Spec: s, ManagedBy: handlers.ManagedByAPI}
	f.budgets[k] = v
	return v, !existed, nil
}

func (f *fakeBudgetAdmin) Get(_ context.Context, scope, subject string) (handlers.BudgetView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return handlers.BudgetView{}, f.err
	}
	v, ok := f.budgets[scope+"/"+subject]
	if !ok {
		return handlers.BudgetView{}, handlers.ErrBudgetNotFound
	}
	return v, nil
}

func (f *fakeBudgetAdmin) List(_ context.Context, scope, subject string) ([]handlers.BudgetView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []handlers.BudgetView{}
	for _, v := range f.budgets {
		if (scope == "" || v.Spec.Scope == scope) && (subject == "" || v.Spec.Subject == subject || v.Spec.Subject == "*") {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b handlers.BudgetView) int { return strings.Compare(a.Name, b.Name) })
	return out, f.err
}

func (f *fakeBudgetAdmin) Delete(_ context.Context, scope, subject string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := scope + "/" + subject
	v, ok := f.budgets[k]
	switch {
	case !ok:
		return handlers.ErrBudgetNotFound
	case v.ManagedBy != handlers.ManagedByAPI:
		return &handlers.BudgetConflictError{Name: v.Name}
	}
	delete(f.budgets, k)
	return nil
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func tokenHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// gitOpsPerUser is a GitOps-owned budget that is also in the loaded snapshot, with spend.
var gitOpsPerUser = handlers.BudgetView{Name: "default/per-user", ManagedBy: handlers.ManagedByGitOps,
	Spec: handlers.BudgetSpec{Scope: "user", Subject: "*", Daily: "1", Monthly: "25", Action: "block"}}

type budgetFixture struct {
	admin  *fakeBudgetAdmin
	engine *gin.Engine
	gov    governor.Governor
	snap   *config.Snapshot
	h      *handlers.BudgetHandlers
}

func newBudgetFixture(t *testing.T, bh func(*handlers.BudgetHandlers) *handlers.BudgetHandlers) *budgetFixture {
	t.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := metrics.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	snap := &config.Snapshot{
		APIKeys: []config.APIKey{
			{Name: "default/admin", SHA256: tokenHash(budgetAdminToken), Role: config.RoleAdmin},
			{Name: "default/app", SHA256: tokenHash(budgetAppToken), Role: config.RoleApp},
		},
		Budgets: []config.Budget{{Name: "default/per-user", Scope: "user", Subject: "*", Action: "block", TimeZone: "UTC",
			Limits: []config.BudgetLimit{{Period: "daily", Limit: money.MustParseUSD("1")}, {Period: "monthly", Limit: money.MustParseUSD("25")}}}},
	}
	require.NoError(t, snap.Seal())
	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: providers.NewHTTPClient(0)}, m, log)
	require.NoError(t, holder.Apply(snap))
	gov := governor.New(store.NewMemory(store.MemoryOptions{Clock: fixedClock{now}}), governor.Options{Clock: fixedClock{now}, Logger: log})

	admin := &fakeBudgetAdmin{budgets: map[string]handlers.BudgetView{"user/*": gitOpsPerUser}}
	h := handlers.NewBudgetHandlers(admin, gov, holder)
	h.AwaitTimeout = 0 // the fake writes nothing the holder could load
	h.Now = func() time.Time { return now }
	if bh != nil {
		h = bh(h)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// API-key subjects are "namespace/name": routing on the raw path lets a client send the
	// slash as %2F inside the {subject} segment (the server sets the same).
	e.UseRawPath = true
	e.Use(middleware.NewRequestLog(log, m))
	api := e.Group("/api/ai", middleware.NewRuntime(holder), middleware.NewAuth())
	api.GET("/budgets", h.ListBudgets)
	api.GET("/budgets/:scope/:subject", h.GetBudget)
	api.PUT("/budgets/:scope/:subject", h.PutBudget)
	api.DELETE("/budgets/:scope/:subject", h.DeleteBudget)
	return &budgetFixture{admin: admin, engine: e, gov: gov, snap: snap, h: h}
}

func (f *budgetFixture) do(t *testing.T, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	f.engine.ServeHTTP(w, req)
	return w
}

// template returns the OpenAPI path template of a concrete budgets path.
func template(path string) string {
	p, _, _ := strings.Cut(path, "?")
	if p == "/api/ai/budgets" {
		return p
	}
	return "/api/ai/budgets/{scope}/{subject}"
}

func TestBudgetsAPIAnswersWithTheContractStatusCodeAndShape(t *testing.T) {
	cases := map[string]struct {
		method, path, token, body string
		adminErr                  error
		status                    int
		code                      string // error code, "" for a success
		contains                  string // a substring of the body
	}{
		"a new budget is created with 201": {method: "PUT", path: "/api/ai/budgets/user/user-123", token: budgetAdminToken,
			body: `{"daily": "1.00", "monthly": 25}`, status: 201, contains: `"managedBy":"api"`},
		"an app key may not set budgets": {method: "PUT", path: "/api/ai/budgets/user/user-123", token: budgetAppToken,
			body: `{"daily": "1"}`, status: 403, code: "forbidden"},
		"an app key may not list budgets": {method: "GET", path: "/api/ai/budgets", token: budgetAppToken, status: 403, code: "forbidden"},
		"no key is 401":                   {method: "GET", path: "/api/ai/budgets", status: 401, code: "invalid_api_key"},
		"a GitOps-owned budget is not overwritten": {method: "PUT", path: "/api/ai/budgets/user/*", token: budgetAdminToken,
			body: `{"daily": "2"}`, status: 409, code: "conflict", contains: "default/per-user is managed by GitOps"},
		"a GitOps-owned budget is not deleted": {method: "DELETE", path: "/api/ai/budgets/user/*", token: budgetAdminToken,
			status: 409, code: "conflict"},
		"an unknown scope is 400": {method: "PUT", path: "/api/ai/budgets/team/x", token: budgetAdminToken,
			body: `{"daily": "1"}`, status: 400, code: "invalid_request", contains: "is not one of user, org, apiKey, global"},
		"a global budget takes subject *": {method: "PUT", path: "/api/ai/budgets/global/acme", token: budgetAdminToken,
			body: `{"daily": "1"}`, status: 400, code: "invalid_request"},
		"a subject with a line break is refused": {method: "PUT", path: "/api/ai/budgets/user/a%0Akind:%20Secret", token: budgetAdminToken,
			body: `{"daily": "1"}`, status: 400, code: "invalid_request", contains: "control characters"},
		"a misspelt field is refused, not ignored": {method: "PUT", path: "/api/ai/budgets/user/u", token: budgetAdminToken,
			body: `{"dialy": "1"}`, status: 400, code: "invalid_request", contains: "dialy"},
		"malformed JSON is 400": {method: "PUT", path: "/api/ai/budgets/user/u", token: budgetAdminToken,
			body: `{"daily": `, status: 400, code: "invalid_request"},
		"the validator's message is passed through": {method: "PUT", path: "/api/ai/budgets/user/u", token: budgetAdminToken,
			body: `{"daily": "1"}`, adminErr: &handlers.BudgetInvalidError{Message: "spec.timeZone \"Mars\" is not a known IANA time zone"},
			status: 400, code: "invalid_request", contains: "spec.timeZone \\\"Mars\\\" is not a known IANA time zone"},
		"a writer failure is 500 without details": {method: "PUT", path: "/api/ai/budgets/user/u", token: budgetAdminToken,
			body: `{"daily": "1"}`, adminErr: io.ErrUnexpectedEOF, status: 500, code: "internal_error"},
		"an unknown budget is 404": {method: "GET", path: "/api/ai/budgets/org/nobody", token: budgetAdminToken,
			status: 404, code: "not_found"},
		"deleting an unknown budget is 404": {method: "DELETE", path: "/api/ai/budgets/org/nobody", token: budgetAdminToken,
			status: 404, code: "not_found"},
		"one budget is shown with its periods": {method: "GET", path: "/api/ai/budgets/user/*", token: budgetAdminToken,
			status: 200, contains: `"managedBy":"gitops"`},
		"the list filters by scope": {method: "GET", path: "/api/ai/budgets?scope=org", token: budgetAdminToken,
			status: 200, contains: `{"budgets":[]}`},
		"the list refuses an unknown scope": {method: "GET", path: "/api/ai/budgets?scope=team", token: budgetAdminToken,
			status: 400, code: "invalid_request"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newBudgetFixture(t, nil)
			f.admin.err = tc.adminErr
			w := f.do(t, tc.method, tc.path, tc.token, tc.body)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			if tc.code != "" {
				var e struct {
					Error struct{ Type, Code, Message string }
				}
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
				require.Equal(t, tc.code, e.Error.Code)
			}
			if tc.contains != "" {
				require.Contains(t, w.Body.String(), tc.contains)
			}
			require.NoError(t, openapi.ValidateReply(openapi.Reply{Method: tc.method, Path: template(tc.path),
				Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}))
		})
	}
}

func TestBudgetsAPIPassesAmountsThroughExactlyAsSent(t *testing.T) {
	cases := map[string]struct {
		body          string
		daily, weekly string
	}{
		"a decimal string":           {`{"daily": "1.50"}`, "1.50", ""},
		"a JSON number keeps digits": {`{"daily": 0.000000001, "weekly": 7}`, "0.000000001", "7"},
		"a null is unset":            {`{"daily": null, "weekly": "3"}`, "", "3"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newBudgetFixture(t, nil)
			w := f.do(t, "PUT", "/api/ai/budgets/org/acme", budgetAdminToken, tc.body)
			require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
			require.Equal(t, tc.daily, f.admin.lastPut.Daily)
			require.Equal(t, tc.weekly, f.admin.lastPut.Weekly)
			require.Equal(t, "org", f.admin.lastPut.Scope)
			require.Equal(t, "acme", f.admin.lastPut.Subject)
		})
	}
}

func TestBudgetsAPIAcceptsAnAPIKeySubjectWithAnEscapedSlash(t *testing.T) {
	f := newBudgetFixture(t, nil)
	w := f.do(t, "PUT", "/api/ai/budgets/apiKey/default%2Fapp-key", budgetAdminToken, `{"daily": "1"}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	require.Equal(t, "default/app-key", f.admin.lastPut.Subject)
	w = f.do(t, "GET", "/api/ai/budgets/apiKey/default%2Fapp-key", budgetAdminToken, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"subject":"default/app-key"`)
}

func TestBudgetsAPIReplacesWith200AndDeletesWith204(t *testing.T) {
	f := newBudgetFixture(t, nil)
	w := f.do(t, "PUT", "/api/ai/budgets/user/user-123", budgetAdminToken, `{"daily": "1"}`)
	require.Equal(t, http.StatusCreated, w.Code)
	w = f.do(t, "PUT", "/api/ai/budgets/user/user-123", budgetAdminToken, `{"daily": "2", "action": "alert", "alertThresholds": [50, 80]}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NoError(t, openapi.ValidateReply(openapi.Reply{Method: "PUT", Path: "/api/ai/budgets/{scope}/{subject}",
		Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}))
	var b replyBudget
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &b))
	require.Equal(t, "alert", b.Action)
	require.Equal(t, []int32{50, 80}, b.AlertThresholds)
	require.JSONEq(t, `[{"period":"daily","limit":2,"spent":0,"remaining":2,"resetsAt":"2026-11-26T00:00:00Z"}]`, string(b.Periods))

	w = f.do(t, "DELETE", "/api/ai/budgets/user/user-123", budgetAdminToken, "")
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.NoError(t, openapi.ValidateReply(openapi.Reply{Method: "DELETE", Path: "/api/ai/budgets/{scope}/{subject}",
		Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}))
	w = f.do(t, "GET", "/api/ai/budgets/user/user-123", budgetAdminToken, "")
	require.Equal(t, http.StatusNotFound, w.Code)
}

func TestBudgetsAPIShowsSpendRemainingAndForecastFromTheGovernor(t *testing.T) {
	f := newBudgetFixture(t, nil)
	// Two users spend under the per-user budget; the view shows the one who spent most.
	for user, cost := range map[string]string{"alice": "0.25", "bob": "0.10"} {
		req := &governor.Request{Identity: governor.Identity{User: user, Org: "acme"}, Endpoint: "chat",
			Provider: "default/mock", Model: "m", WorstCaseCost: money.MustParseUSD("0.5")}
		dec, err := f.gov.Admit(t.Context(), f.snap, req)
		require.NoError(t, err)
		require.NoError(t, f.gov.Settle(t.Context(), req, dec.Ticket, governor.Charge{Cost: money.MustParseUSD(cost)}))
	}
	w := f.do(t, "GET", "/api/ai/budgets?subject=alice", budgetAdminToken, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NoError(t, openapi.ValidateReply(openapi.Reply{Method: "GET", Path: "/api/ai/budgets",
		Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}))
	var list struct{ Budgets []replyBudget }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Budgets, 1)
	got := list.Budgets[0]
	require.Equal(t, "default/per-user", got.Name)
	var periods []replyPeriod
	require.NoError(t, json.Unmarshal(got.Periods, &periods))
	require.Len(t, periods, 2)
	daily := periods[0]
	require.Equal(t, "daily", daily.Period)
	require.Equal(t, json.Number("0.25"), daily.Spent)
	require.Equal(t, json.Number("0.75"), daily.Remaining)
	require.NotNil(t, daily.Forecast)
	require.Equal(t, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), daily.ResetsAt)
	require.Equal(t, "monthly", periods[1].Period)
	require.Equal(t, json.Number("0.25"), periods[1].Spent)
	require.Equal(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), periods[1].ResetsAt)
}

// replyBudget and replyPeriod decode replies keeping amounts as the exact decimals sent.
type replyBudget struct {
	Name            string
	Action          string
	AlertThresholds []int32
	ManagedBy       string
	Periods         json.RawMessage
}

type replyPeriod struct {
	Period                  string
	Limit, Spent, Remaining json.Number
	Forecast                *json.Number
	ResetsAt                time.Time
}

func TestBudgetsAPIWithoutAWriterAnswers503(t *testing.T) {
	f := newBudgetFixture(t, func(*handlers.BudgetHandlers) *handlers.BudgetHandlers { return nil })
	w := f.do(t, "GET", "/api/ai/budgets", budgetAdminToken, "")
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Contains(t, w.Body.String(), "not_ready")
	require.NoError(t, openapi.ValidateReply(openapi.Reply{Method: "GET", Path: "/api/ai/budgets",
		Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}))
}

func TestBudgetsAPIPutWaitsUntilTheChangeIsLoaded(t *testing.T) {
	f := newBudgetFixture(t, nil)
	written := make(chan handlers.BudgetSpec, 1)
	f.h.Admin = &notifyingAdmin{fakeBudgetAdmin: f.admin, written: written}
	f.h.AwaitTimeout = 10 * time.Second
	// A loader stands in for the folder watcher: once the writer has written, it applies a
	// snapshot with the new budget. The PUT must not answer before that.
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		s := <-written
		snap := *f.snap
		snap.Hash, snap.Version = "", ""
		snap.Budgets = append(slices.Clone(snap.Budgets), config.Budget{Name: "default/api-org-acme", Scope: s.Scope, Subject: s.Subject,
			Action: "block", TimeZone: "UTC", Limits: []config.BudgetLimit{{Period: "daily", Limit: money.MustParseUSD(s.Daily)}}})
		if err := snap.Seal(); err == nil {
			_ = f.h.Holder.Apply(&snap)
		}
	}()
	w := f.do(t, "PUT", "/api/ai/budgets/org/acme", budgetAdminToken, `{"daily": "3"}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	select {
	case <-loaded:
	default:
		t.Fatal("the PUT answered before the configuration with the new budget was loaded")
	}
	require.True(t, slices.ContainsFunc(f.h.Holder.Load().Snapshot.Budgets, func(b config.Budget) bool { return b.Name == "default/api-org-acme" }))
}

// notifyingAdmin reports each successful Put on written.
type notifyingAdmin struct {
	*fakeBudgetAdmin
	written chan handlers.BudgetSpec
}

func (n *notifyingAdmin) Put(ctx context.Context, s handlers.BudgetSpec) (handlers.BudgetView, bool, error) {
	v, created, err := n.fakeBudgetAdmin.Put(ctx, s)
	if err == nil {
		n.written <- s
	}
	return v, created, err
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
