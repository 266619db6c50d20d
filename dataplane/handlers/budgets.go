package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

// Budgets through the API (the seed's setBudget). The handlers here are thin: they check the
// caller is an admin, bind the body and hand a [BudgetSpec] to a [BudgetAdmin], which writes the
// AIBudget where Git and kubectl see it too (a manifest file standalone, the API server in a
// cluster; see internal/budgetwriter). The data plane never enforces a budget it was told about
// directly: it waits until its own configuration source has loaded the written AIBudget, so that
// every replica enforces the same thing and "takes effect on the next request" holds.

// Label values of [BudgetView.ManagedBy].
const (
	// ManagedByAPI marks a budget written through this API (label ai.nself.org/managed-by=api).
	ManagedByAPI = "api"
	// ManagedByGitOps is any budget without that label: read-only through the API.
	ManagedByGitOps = "gitops"
)

// BudgetSpec is the part of an AIBudget the API sets. Amounts are decimal USD strings exactly as
// the caller sent them ("" = period not set); the writer's validation (the compiler's, or the API
// server's) judges them, so that the messages are those of `kubectl apply`.
type BudgetSpec struct {
	Scope           string
	Subject         string
	Daily           string
	Weekly          string
	Monthly         string
	Action          string
	DowngradeTo     string
	AlertThresholds []int32
	TimeZone        string
}

// BudgetView is one AIBudget as the API shows it.
type BudgetView struct {
	// Name is "namespace/name" of the AIBudget.
	Name string
	Spec BudgetSpec
	// ManagedBy is [ManagedByAPI] or [ManagedByGitOps].
	ManagedBy string
}

// BudgetAdmin reads and writes AIBudgets. Implementations live in internal/budgetwriter (files
// and cluster); the data plane sees only this interface so that it stays free of k8s imports.
type BudgetAdmin interface {
	// Put creates or replaces the API-managed budget of spec's scope and subject. created is
	// true when no API-managed budget existed. A GitOps-owned budget of the same scope and
	// subject is an error matching [ErrBudgetConflict]; a spec the validation refuses is a
	// [*BudgetInvalidError].
	Put(ctx context.Context, spec BudgetSpec) (view BudgetView, created bool, err error)
	// Get returns the budget of scope and subject (the API-managed one when several exist), or
	// an error matching [ErrBudgetNotFound].
	Get(ctx context.Context, scope, subject string) (BudgetView, error)
	// List returns the budgets of scope ("" = any) that apply to subject ("" = any; budgets of
	// subject "*" and global ones apply to every subject), sorted by name.
	List(ctx context.Context, scope, subject string) ([]BudgetView, error)
	// Delete removes the API-managed budget of scope and subject: [ErrBudgetNotFound] when
	// there is none, [ErrBudgetConflict] when only a GitOps-owned one exists.
	Delete(ctx context.Context, scope, subject string) error
}

// Sentinel errors of [BudgetAdmin]; writers wrap them with a message for the caller.
var (
	// ErrBudgetNotFound → 404 not_found.
	ErrBudgetNotFound = errors.New("budget not found")
	// ErrBudgetConflict → 409 conflict: the budget is owned by GitOps.
	ErrBudgetConflict = errors.New("budget is managed by GitOps")
)

// BudgetInvalidError is a spec that validation refused (→ 400 invalid_request). Message is the
// validator's own text (the compiler's, or the API server's as kubectl shows it).
type BudgetInvalidError struct{ Message string }

// Error returns the validator's message unchanged.
func (e *BudgetInvalidError) Error() string { return e.Message }

// BudgetConflictError is a refusal to touch a GitOps-owned budget; it matches
// [ErrBudgetConflict] with errors.Is.
type BudgetConflictError struct {
	// Name is "namespace/name" of the GitOps-owned AIBudget.
	Name string
}

// Error says which budget GitOps owns and where to change it.
func (e *BudgetConflictError) Error() string {
	return fmt.Sprintf("budget %s is managed by GitOps (not labelled ai.nself.org/managed-by=api); change it in its manifest", e.Name)
}

// Is makes errors.Is(err, ErrBudgetConflict) true.
func (e *BudgetConflictError) Is(target error) bool { return target == ErrBudgetConflict }

// BudgetHandlers serve /api/ai/budgets. A nil *BudgetHandlers (or one without an Admin) answers
// 503, so the route table can always register them.
type BudgetHandlers struct {
	// Admin writes and reads the AIBudgets.
	Admin BudgetAdmin
	// Governor reports spend; it is used when it implements [governor.BudgetReporter].
	Governor governor.Governor
	// Holder is the loaded configuration; a write waits for it to contain the change.
	Holder *runtime.Holder
	// AwaitTimeout bounds that wait; 0 does not wait. After it the reply is still sent (the
	// AIBudget is written and will be enforced once loaded) and a warning is logged.
	AwaitTimeout time.Duration
	// Now is the clock of period bounds; default time.Now.
	Now func() time.Time
}

// DefaultBudgetAwaitTimeout is the default [BudgetHandlers.AwaitTimeout]: longer than a folder
// poll plus a compile, and than the operator's compile plus a Secret watch event.
const DefaultBudgetAwaitTimeout = 5 * time.Second

// awaitPoll is how often the holder is checked while waiting: one atomic load, so cheap.
const awaitPoll = 10 * time.Millisecond

// NewBudgetHandlers returns the budgets handlers over admin, reading spend from gov and waiting
// (up to [DefaultBudgetAwaitTimeout]) for holder to load each change.
func NewBudgetHandlers(admin BudgetAdmin, gov governor.Governor, holder *runtime.Holder) *BudgetHandlers {
	return &BudgetHandlers{Admin: admin, Governor: gov, Holder: holder, AwaitTimeout: DefaultBudgetAwaitTimeout}
}

// APIBudgetPeriod is one period of a budget with its spend in the current period. For subject
// "*" (and a user budget, which counts per org) it is the subject that spent most.
type APIBudgetPeriod struct {
	Period    string    `json:"period"`
	Limit     usd       `json:"limit"`
	Spent     usd       `json:"spent"`
	Remaining usd       `json:"remaining"`
	ResetsAt  time.Time `json:"resetsAt,omitzero"`
	Forecast  *usd      `json:"forecast,omitempty"`
}

// APIBudget is the reply shape of one budget.
type APIBudget struct {
	Name            string            `json:"name"`
	Scope           string            `json:"scope"`
	Subject         string            `json:"subject"`
	Daily           *usd              `json:"daily,omitempty"`
	Weekly          *usd              `json:"weekly,omitempty"`
	Monthly         *usd              `json:"monthly,omitempty"`
	Action          string            `json:"action,omitempty"`
	DowngradeTo     string            `json:"downgradeTo,omitempty"`
	AlertThresholds []int32           `json:"alertThresholds,omitempty"`
	TimeZone        string            `json:"timeZone,omitempty"`
	ManagedBy       string            `json:"managedBy"`
	Periods         []APIBudgetPeriod `json:"periods"`
}

// APIBudgetList is the reply of GET /api/ai/budgets.
type APIBudgetList struct {
	Budgets []APIBudget `json:"budgets"`
}

// MoneyInput is an amount as a decimal string or a JSON number, kept as its text so that the
// validator sees exactly what was sent (a number is never rounded through float64).
type MoneyInput string

// UnmarshalJSON implements json.Unmarshaler.
func (m *MoneyInput) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*m = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*m = MoneyInput(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("an amount must be a decimal string such as \"1.00\" or a JSON number")
		}
		*m = MoneyInput(n.String())
	}
	return nil
}

// APIBudgetUpdate is the body of PUT /api/ai/budgets/{scope}/{subject}.
type APIBudgetUpdate struct {
	Daily           MoneyInput `json:"daily"`
	Weekly          MoneyInput `json:"weekly"`
	Monthly         MoneyInput `json:"monthly"`
	Action          string     `json:"action"`
	DowngradeTo     string     `json:"downgradeTo"`
	AlertThresholds []int32    `json:"alertThresholds"`
	TimeZone        string     `json:"timeZone"`
}

var validScopes = []string{"user", "org", "apiKey", "global"}

// ready checks the handlers are configured and the caller holds an admin key.
func (b *BudgetHandlers) ready(c *gin.Context) bool {
	if b == nil || b.Admin == nil {
		apierror.Abort(c, apierror.New(http.StatusServiceUnavailable, apierror.TypeUnavailable, apierror.CodeNotReady,
			"the budgets API is not configured on this data plane"))
		return false
	}
	if key := middleware.APIKey(c); key == nil || key.Role != config.RoleAdmin {
		apierror.Abort(c, apierror.Forbidden("managing budgets needs an admin key (annotation ai.nself.org/role: admin)"))
		return false
	}
	return true
}

// pathTarget reads and checks {scope}/{subject}.
func pathTarget(c *gin.Context) (scope, subject string, ok bool) {
	scope, subject = c.Param("scope"), c.Param("subject")
	if !slices.Contains(validScopes, scope) {
		apierror.Abort(c, apierror.BadRequest("scope %q is not one of user, org, apiKey, global", scope))
		return "", "", false
	}
	if subject == "" {
		apierror.Abort(c, apierror.BadRequest(`subject is required: one user, org or API key id, or "*" for every subject separately`))
		return "", "", false
	}
	if strings.IndexFunc(subject, unicode.IsControl) >= 0 {
		apierror.Abort(c, apierror.BadRequest("subject must not contain control characters"))
		return "", "", false
	}
	if scope == "global" && subject != config.AnySubject {
		apierror.Abort(c, apierror.BadRequest(`a global budget counts everyone together: use subject "*"`))
		return "", "", false
	}
	return scope, subject, true
}

// budgetError maps a BudgetAdmin error to the contract's reply.
func budgetError(c *gin.Context, err error) {
	var inv *BudgetInvalidError
	switch {
	case errors.As(err, &inv):
		apierror.Abort(c, apierror.BadRequest("%s", inv.Message))
	case errors.Is(err, ErrBudgetConflict):
		apierror.Abort(c, apierror.New(http.StatusConflict, "conflict_error", "conflict", err.Error()))
	case errors.Is(err, ErrBudgetNotFound):
		apierror.Abort(c, apierror.New(http.StatusNotFound, apierror.TypeNotFound, apierror.CodeNotFound, err.Error()))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		abort(c, err)
	default:
		middleware.Logger(c).Error("budgets API failed", "error", err)
		apierror.Abort(c, apierror.Internal("failed to access budgets; see the data plane log"))
	}
}

// PutBudget serves PUT /api/ai/budgets/{scope}/{subject}: 201 created, 200 replaced.
func (b *BudgetHandlers) PutBudget(c *gin.Context) {
	if !b.ready(c) {
		return
	}
	scope, subject, ok := pathTarget(c)
	if !ok {
		return
	}
	var body APIBudgetUpdate
	if !bindStrict(c, &body) {
		return
	}
	spec := BudgetSpec{Scope: scope, Subject: subject, Daily: string(body.Daily), Weekly: string(body.Weekly),
		Monthly: string(body.Monthly), Action: body.Action, DowngradeTo: body.DowngradeTo,
		AlertThresholds: body.AlertThresholds, TimeZone: body.TimeZone}
	ctx := c.Request.Context()
	view, created, err := b.Admin.Put(ctx, spec)
	if err != nil {
		budgetError(c, err)
		return
	}
	b.await(c, func(s *config.Snapshot) bool {
		cb := findBudget(s, view.Name)
		return cb != nil && sameBudget(cb, view.Spec)
	})
	out, err := b.render(ctx, middleware.Runtime(c), []BudgetView{view})
	if err != nil {
		abort(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, out[0])
}

// GetBudget serves GET /api/ai/budgets/{scope}/{subject}.
func (b *BudgetHandlers) GetBudget(c *gin.Context) {
	if !b.ready(c) {
		return
	}
	scope, subject, ok := pathTarget(c)
	if !ok {
		return
	}
	view, err := b.Admin.Get(c.Request.Context(), scope, subject)
	if err != nil {
		budgetError(c, err)
		return
	}
	out, err := b.render(c.Request.Context(), middleware.Runtime(c), []BudgetView{view})
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, out[0])
}

// ListBudgets serves GET /api/ai/budgets?scope=&subject=.
func (b *BudgetHandlers) ListBudgets(c *gin.Context) {
	if !b.ready(c) {
		return
	}
	scope, subject := c.Query("scope"), c.Query("subject")
	if scope != "" && !slices.Contains(validScopes, scope) {
		apierror.Abort(c, apierror.BadRequest("scope %q is not one of user, org, apiKey, global", scope))
		return
	}
	views, err := b.Admin.List(c.Request.Context(), scope, subject)
	if err != nil {
		budgetError(c, err)
		return
	}
	out, err := b.render(c.Request.Context(), middleware.Runtime(c), views)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, APIBudgetList{Budgets: out})
}

// DeleteBudget serves DELETE /api/ai/budgets/{scope}/{subject}: 204.
func (b *BudgetHandlers) DeleteBudget(c *gin.Context) {
	if !b.ready(c) {
		return
	}
	scope, subject, ok := pathTarget(c)
	if !ok {
		return
	}
	view, err := b.Admin.Get(c.Request.Context(), scope, subject)
	if err != nil {
		budgetError(c, err)
		return
	}
	if err := b.Admin.Delete(c.Request.Context(), scope, subject); err != nil {
		budgetError(c, err)
		return
	}
	b.await(c, func(s *config.Snapshot) bool { return findBudget(s, view.Name) == nil })
	c.Status(http.StatusNoContent)
}

// bindStrict decodes a JSON body refusing unknown fields: a typo such as "dialy" must not
// silently write a budget without its limit.
func bindStrict(c *gin.Context, v any) bool {
	if c.Request.Body == nil {
		apierror.Abort(c, apierror.BadRequest("request body is required"))
		return false
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if limit, ok := middleware.IsBodyTooLarge(err); ok {
			apierror.Abort(c, middleware.TooLarge(limit))
			return false
		}
		if errors.Is(err, io.EOF) {
			apierror.Abort(c, apierror.BadRequest("request body is required"))
			return false
		}
		apierror.Abort(c, apierror.BadRequest("invalid JSON body: %s", err.Error()))
		return false
	}
	return true
}

// await waits until the holder's snapshot satisfies loaded, so that the next request is judged
// by the change. A timeout is logged, not returned: the AIBudget is written and will be loaded.
func (b *BudgetHandlers) await(c *gin.Context, loaded func(*config.Snapshot) bool) {
	if b.Holder == nil || b.AwaitTimeout <= 0 {
		return
	}
	check := func() bool {
		rt := b.Holder.Load()
		return rt != nil && loaded(rt.Snapshot)
	}
	if check() {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), b.AwaitTimeout)
	defer cancel()
	t := time.NewTicker(awaitPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			middleware.Logger(c).Warn("budget written but not loaded yet; it is enforced once the configuration reloads",
				"timeout", b.AwaitTimeout.String())
			return
		case <-t.C:
			if check() {
				return
			}
		}
	}
}

func findBudget(s *config.Snapshot, name string) *config.Budget {
	if s == nil {
		return nil
	}
	for i := range s.Budgets {
		if s.Budgets[i].Name == name {
			return &s.Budgets[i]
		}
	}
	return nil
}

// specLimits parses the spec's amounts; unparseable ones are skipped (validation refused them).
func specLimits(s BudgetSpec) []config.BudgetLimit {
	var out []config.BudgetLimit
	for _, p := range []struct{ period, v string }{
		{config.PeriodDaily, s.Daily}, {config.PeriodWeekly, s.Weekly}, {config.PeriodMonthly, s.Monthly},
	} {
		if p.v == "" {
			continue
		}
		if n, err := money.ParseUSD(p.v); err == nil {
			out = append(out, config.BudgetLimit{Period: p.period, Limit: n})
		}
	}
	return out
}

// sameBudget reports whether the compiled budget enforces spec (the loaded snapshot holds the
// version just written, not an older one of the same name).
func sameBudget(b *config.Budget, s BudgetSpec) bool {
	action := s.Action
	if action == "" {
		action = "block"
	}
	tz := s.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	th := slices.Sorted(slices.Values(s.AlertThresholds))
	return slices.Equal(b.Limits, specLimits(s)) && b.Action == action && b.DowngradeTo == s.DowngradeTo &&
		b.TimeZone == tz && slices.Equal(b.AlertThresholds, th)
}

// render turns views into replies with the current period's spend of each. Budgets not (yet)
// in the loaded snapshot show zero spend.
func (b *BudgetHandlers) render(ctx context.Context, rt *runtime.Runtime, views []BudgetView) ([]APIBudget, error) {
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	// Ask the governor about the loaded budgets of these views only, in one call.
	var snap *config.Snapshot
	if rt == nil && b.Holder != nil {
		rt = b.Holder.Load()
	}
	if rt != nil {
		snap = rt.Snapshot
	}
	mini := &config.Snapshot{}
	for _, v := range views {
		if cb := findBudget(snap, v.Name); cb != nil {
			mini.Budgets = append(mini.Budgets, *cb)
		}
	}
	// worst[name][period] is the status of the subject that spent most.
	worst := map[string]map[string]governor.BudgetStatus{}
	if r, ok := b.Governor.(governor.BudgetReporter); ok && len(mini.Budgets) > 0 {
		reports, err := r.BudgetReports(ctx, mini)
		if err != nil {
			return nil, fmt.Errorf("failed to read budget spend: %w", err)
		}
		for _, rep := range reports {
			m := map[string]governor.BudgetStatus{}
			for _, st := range rep.Statuses {
				if cur, ok := m[st.Period]; !ok || st.Spent+st.Reserved > cur.Spent+cur.Reserved {
					m[st.Period] = st
				}
			}
			worst[rep.Name] = m
		}
	}

	out := make([]APIBudget, 0, len(views))
	for _, v := range views {
		s := v.Spec
		a := APIBudget{Name: v.Name, Scope: s.Scope, Subject: s.Subject, Action: s.Action, DowngradeTo: s.DowngradeTo,
			AlertThresholds: s.AlertThresholds, TimeZone: s.TimeZone, ManagedBy: v.ManagedBy, Periods: []APIBudgetPeriod{}}
		if a.Action == "" {
			a.Action = "block"
		}
		loc := time.UTC
		if s.TimeZone != "" {
			if l, err := time.LoadLocation(s.TimeZone); err == nil {
				loc = l
			}
		}
		for _, l := range specLimits(s) {
			amount := usd(l.Limit)
			switch l.Period {
			case config.PeriodDaily:
				a.Daily = &amount
			case config.PeriodWeekly:
				a.Weekly = &amount
			case config.PeriodMonthly:
				a.Monthly = &amount
			}
			p := APIBudgetPeriod{Period: l.Period, Limit: usd(l.Limit), Remaining: usd(l.Limit)}
			_, p.ResetsAt, _ = governor.PeriodBounds(now, loc, l.Period)
			p.ResetsAt = p.ResetsAt.UTC()
			if st, ok := worst[v.Name][l.Period]; ok && st.Limit == l.Limit {
				f := usd(st.Forecast)
				p.Spent, p.Remaining, p.ResetsAt, p.Forecast = usd(st.Spent), usd(st.Remaining), st.ResetsAt.UTC(), &f
			}
			a.Periods = append(a.Periods, p)
		}
		out = append(out, a)
	}
	return out, nil
}
