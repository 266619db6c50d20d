package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
)

// APIUsage is the usage object of /api/ai replies.
type APIUsage struct {
	PromptTokens     int64 `json:"promptTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	TotalTokens      int64 `json:"totalTokens"`
}

func apiUsage(u providers.Usage) APIUsage {
	return APIUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.Total()}
}

// APIChatRequest is the body of POST /api/ai/chat.
type APIChatRequest struct {
	Model          string              `json:"model"`
	Messages       []providers.Message `json:"messages"`
	UserID         string              `json:"userId"`
	OrgID          string              `json:"orgId"`
	Stream         bool                `json:"stream"`
	MaxTokens      int64               `json:"maxTokens"`
	Temperature    *float64            `json:"temperature"`
	ResponseFormat json.RawMessage     `json:"responseFormat"`
}

// APIChatReply is the reply of POST /api/ai/chat (and the data of the stream's done event).
type APIChatReply struct {
	ID       string   `json:"id"`
	Content  string   `json:"content"`
	Model    string   `json:"model"`
	Provider string   `json:"provider"`
	Usage    APIUsage `json:"usage"`
	Cost     usd      `json:"cost"`
	Cached   bool     `json:"cached"`
}

func apiChatReply(r *ChatResult) APIChatReply {
	return APIChatReply{ID: r.ID, Content: r.Content, Model: r.Model, Provider: r.Provider, Usage: apiUsage(r.Usage),
		Cost: usd(r.Cost), Cached: r.Cached}
}

// parseResponseFormat accepts "json"/"json_object"/"text" or {type, name, schema}.
func parseResponseFormat(raw json.RawMessage) (*providers.ResponseFormat, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "", "text":
			return nil, nil
		case "json", "json_object":
			return &providers.ResponseFormat{Type: "json_object"}, nil
		}
		return nil, apierror.BadRequest("responseFormat %q is not text, json or json_object", s)
	}
	var rf providers.ResponseFormat
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, apierror.BadRequest("responseFormat is neither a string nor {type, schema}")
	}
	switch rf.Type {
	case "text":
		return nil, nil
	case "json", "json_object":
		rf.Type = "json_object"
	case "json_schema":
		if len(rf.Schema) == 0 {
			return nil, apierror.BadRequest("responseFormat json_schema needs a schema")
		}
	default:
		return nil, apierror.BadRequest("responseFormat type %q is not text, json_object or json_schema", rf.Type)
	}
	return &rf, nil
}

func validMessages(msgs []providers.Message) error {
	if len(msgs) == 0 {
		return apierror.BadRequest("messages must not be empty")
	}
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return apierror.BadRequest("messages[%d].role %q is not system, user or assistant", i, m.Role)
		}
	}
	return nil
}

// Chat serves POST /api/ai/chat, as JSON or (stream: true) as Server-Sent Events.
func (h *Handlers) Chat(c *gin.Context) {
	var req APIChatRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.UserID == "" {
		apierror.Abort(c, apierror.BadRequest("userId is required"))
		return
	}
	if err := validMessages(req.Messages); err != nil {
		abort(c, err)
		return
	}
	if req.MaxTokens < 0 {
		apierror.Abort(c, apierror.BadRequest("maxTokens must not be negative"))
		return
	}
	rf, err := parseResponseFormat(req.ResponseFormat)
	if err != nil {
		abort(c, err)
		return
	}
	id, ok := identity(c, req.UserID, req.OrgID)
	if !ok {
		return
	}
	in := &ChatInput{Endpoint: route.EndpointChat, Model: req.Model, Messages: req.Messages, MaxTokens: req.MaxTokens,
		Temperature: req.Temperature, ResponseFormat: rf, Identity: id}
	rt := middleware.Runtime(c)
	if !req.Stream {
		res, err := h.svc.Chat(c.Request.Context(), rt, in)
		if err != nil {
			abort(c, err)
			return
		}
		served(c, res.Provider, res.Cost, res.Cached, res.RateLimit)
		tokensSaved(c, res.TokensSaved)
		replyNow(c, apiChatReply(res))
		return
	}
	st, err := h.svc.StartChatStream(c.Request.Context(), rt, in)
	if err != nil {
		abort(c, err)
		return
	}
	h.streamAPI(c, st)
}

// streamAPI writes `event: delta` per chunk and one `event: done` with the whole reply; a
// failure after the first byte is sent as `event: error` with the standard error body. Each delta
// event is the bytes json.Marshal gave it (chunk.go); [streamOut] says when they are flushed.
func (h *Handlers) streamAPI(c *gin.Context, st *ChatStream) {
	out := openStream(c, st)
	defer out.close(st)
	// One buffer for the whole stream: a delta costs no allocation of its own.
	buf := make([]byte, 0, 256)
	var streamErr error
	gone := false
	for {
		d, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			streamErr = err
			break
		}
		buf = appendAPIDelta(buf[:0], d)
		if out.write(buf) != nil {
			gone = true
			break
		}
	}
	res := st.Finish()
	c.Writer.Header().Set("X-AI-Cost", usd(res.Cost).String())
	if gone {
		return
	}
	if streamErr != nil {
		writeStreamError(c, "error", streamErr) // flushes the deltas before it too
		return
	}
	// The done event leaves with the deltas not yet flushed, in one write.
	b, _ := json.Marshal(apiChatReply(res))
	_ = writeSSE(c, "done", b)
}

// stringList is a JSON string or list of strings.
type stringList []string

// UnmarshalJSON implements json.Unmarshaler.
func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*s = many
	return nil
}

// APIEmbedRequest is the body of POST /api/ai/embed.
type APIEmbedRequest struct {
	Model  string     `json:"model"`
	Input  stringList `json:"input"`
	UserID string     `json:"userId"`
	OrgID  string     `json:"orgId"`
}

// APIEmbedReply is the reply of POST /api/ai/embed.
type APIEmbedReply struct {
	Embeddings [][]float32 `json:"embeddings"`
	Model      string      `json:"model"`
	Provider   string      `json:"provider"`
	Usage      APIUsage    `json:"usage"`
	Cost       usd         `json:"cost"`
	Cached     bool        `json:"cached"`
}

// Embed serves POST /api/ai/embed.
func (h *Handlers) Embed(c *gin.Context) {
	var req APIEmbedRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.UserID == "" {
		apierror.Abort(c, apierror.BadRequest("userId is required"))
		return
	}
	if len(req.Input) == 0 {
		apierror.Abort(c, apierror.BadRequest("input must be a non-empty string or list of strings"))
		return
	}
	id, ok := identity(c, req.UserID, req.OrgID)
	if !ok {
		return
	}
	res, err := h.svc.Embed(c.Request.Context(), middleware.Runtime(c), &EmbedInput{Model: req.Model, Input: req.Input, Identity: id})
	if err != nil {
		abort(c, err)
		return
	}
	served(c, res.Provider, res.Cost, false, res.RateLimit)
	replyNow(c, APIEmbedReply{Embeddings: res.Embeddings, Model: res.Model, Provider: res.Provider,
		Usage: apiUsage(res.Usage), Cost: usd(res.Cost)})
}

// APIModerateRequest is the body of POST /api/ai/moderate.
type APIModerateRequest struct {
	Input  string `json:"input"`
	UserID string `json:"userId"`
	OrgID  string `json:"orgId"`
}

// APIModerateReply is the reply of POST /api/ai/moderate.
type APIModerateReply struct {
	Flagged    bool               `json:"flagged"`
	Categories map[string]bool    `json:"categories"`
	Scores     map[string]float64 `json:"scores"`
	PII        []PIISpan          `json:"pii"`
}

// Categories every moderation reply lists, as the contract names them.
var moderationCategories = []string{"harassment", "hate", "sexual", "violence", "self-harm"}

// Moderate serves POST /api/ai/moderate.
func (h *Handlers) Moderate(c *gin.Context) {
	var req APIModerateRequest
	if !bindJSON(c, &req) {
		return
	}
	if _, ok := identity(c, req.UserID, req.OrgID); !ok {
		return
	}
	m, err := h.svc.Moderate(c.Request.Context(), req.Input)
	if err != nil {
		abort(c, err)
		return
	}
	replyNow(c, apiModeration(m))
}

func apiModeration(m *Moderation) APIModerateReply {
	out := APIModerateReply{Flagged: m.Flagged, Categories: map[string]bool{}, Scores: map[string]float64{}, PII: m.PII}
	for _, k := range moderationCategories {
		out.Categories[k], out.Scores[k] = false, 0
	}
	for k, v := range m.Categories {
		out.Categories[k] = v
		out.Flagged = out.Flagged || v
	}
	for k, v := range m.Scores {
		out.Scores[k] = v
	}
	if out.PII == nil {
		out.PII = []PIISpan{}
	}
	out.Flagged = out.Flagged || len(out.PII) > 0
	return out
}

// APISummarizeRequest is the body of POST /api/ai/summarize.
type APISummarizeRequest struct {
	Model    string              `json:"model"`
	Text     string              `json:"text"`
	Messages []providers.Message `json:"messages"`
	UserID   string              `json:"userId"`
	OrgID    string              `json:"orgId"`
	MaxWords int                 `json:"maxWords"`
	Style    string              `json:"style"`
}

// APISummarizeReply is the reply of POST /api/ai/summarize.
type APISummarizeReply struct {
	Summary  string   `json:"summary"`
	Model    string   `json:"model"`
	Provider string   `json:"provider"`
	Usage    APIUsage `json:"usage"`
	Cost     usd      `json:"cost"`
	Cached   bool     `json:"cached"`
	// Parts is the number of model calls the summary took (1 when the text fit the context window).
	Parts int `json:"parts"`
}

// Summarize serves POST /api/ai/summarize.
func (h *Handlers) Summarize(c *gin.Context) {
	var req APISummarizeRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.UserID == "" {
		apierror.Abort(c, apierror.BadRequest("userId is required"))
		return
	}
	text := req.Text
	if text == "" && len(req.Messages) > 0 {
		var b strings.Builder
		for _, m := range req.Messages {
			b.WriteString(m.Role)
			b.WriteString(": ")
			b.WriteString(m.Content)
			b.WriteString("\n")
		}
		text = b.String()
	}
	if strings.TrimSpace(text) == "" {
		apierror.Abort(c, apierror.BadRequest("text or messages is required"))
		return
	}
	if req.MaxWords < 0 {
		apierror.Abort(c, apierror.BadRequest("maxWords must not be negative"))
		return
	}
	id, ok := identity(c, req.UserID, req.OrgID)
	if !ok {
		return
	}
	res, err := h.svc.Summarize(c.Request.Context(), middleware.Runtime(c), &SummarizeInput{Model: req.Model, Text: text,
		MaxWords: req.MaxWords, Style: req.Style, Identity: id})
	if err != nil {
		abort(c, err)
		return
	}
	served(c, res.Provider, res.Cost, res.Cached, res.RateLimit)
	replyNow(c, APISummarizeReply{Summary: res.Summary, Model: res.Model, Provider: res.Provider,
		Usage: apiUsage(res.Usage), Cost: usd(res.Cost), Cached: res.Cached, Parts: res.Parts})
}

// APIBudgetLine is one budget period in /api/ai/usage.
type APIBudgetLine struct {
	Name      string    `json:"name"`
	Period    string    `json:"period"`
	Limit     usd       `json:"limit"`
	Spent     usd       `json:"spent"`
	Remaining usd       `json:"remaining"`
	ResetsAt  time.Time `json:"resetsAt,omitzero"`
}

// APIUsageReply is the reply of GET /api/ai/usage.
type APIUsageReply struct {
	Requests  int64           `json:"requests"`
	Tokens    int64           `json:"tokens"`
	Cost      usd             `json:"cost"`
	Budgets   []APIBudgetLine `json:"budgets"`
	Remaining *usd            `json:"remaining"`
}

// Usage serves GET /api/ai/usage?userId=&orgId=&window=7d.
func (h *Handlers) Usage(c *gin.Context) {
	user, org := c.Query("userId"), c.Query("orgId")
	window, err := parseWindow(c.Query("window"), 30*24*time.Hour)
	if err != nil {
		abort(c, err)
		return
	}
	key := middleware.APIKey(c)
	if user == "" && org == "" && key.Role != config.RoleAdmin {
		apierror.Abort(c, apierror.BadRequest("userId or orgId is required"))
		return
	}
	id, ok := identity(c, user, org)
	if !ok {
		return
	}
	// An admin (or a key for any org) asking without orgId sees the user across every org,
	// including DefaultOrg, where org-less requests were charged; an org-bound key was given its
	// org by identity above.
	now := h.svc.Now()
	rep, err := h.svc.Usage(c.Request.Context(), middleware.Runtime(c), governor.Query{User: id.User, Org: id.Org, From: now.Add(-window), To: now})
	if err != nil {
		abort(c, err)
		return
	}
	out := APIUsageReply{Requests: rep.Requests, Tokens: rep.Tokens, Cost: usd(rep.Cost), Budgets: []APIBudgetLine{}}
	for _, b := range rep.Budgets {
		out.Budgets = append(out.Budgets, APIBudgetLine{Name: b.Name, Period: b.Period, Limit: usd(b.Limit),
			Spent: usd(b.Spent), Remaining: usd(b.Remaining), ResetsAt: b.ResetsAt})
	}
	if rep.Remaining != nil {
		r := usd(*rep.Remaining)
		out.Remaining = &r
	}
	c.JSON(http.StatusOK, out)
}

// APICostLine is one group of /api/ai/costs.
type APICostLine struct {
	Key      string `json:"key"`
	Cost     usd    `json:"cost"`
	Requests int64  `json:"requests"`
	Tokens   int64  `json:"tokens"`
}

// APICostsReply is the reply of GET /api/ai/costs.
type APICostsReply struct {
	Total     usd           `json:"total"`
	Breakdown []APICostLine `json:"breakdown"`
	Forecast  struct {
		PeriodEnd time.Time `json:"periodEnd"`
		Projected usd       `json:"projected"`
	} `json:"forecast"`
}

// Costs serves GET /api/ai/costs?orgId=&window=30d&groupBy=model|provider|user.
func (h *Handlers) Costs(c *gin.Context) {
	window, err := parseWindow(c.Query("window"), 30*24*time.Hour)
	if err != nil {
		abort(c, err)
		return
	}
	groupBy := c.Query("groupBy")
	switch groupBy {
	case "", "model", "provider", "user":
	default:
		apierror.Abort(c, apierror.BadRequest("groupBy %q is not model, provider or user", groupBy))
		return
	}
	id, ok := identity(c, c.Query("userId"), c.Query("orgId"))
	if !ok {
		return
	}
	now := h.svc.Now()
	rep, err := h.svc.Costs(c.Request.Context(), governor.Query{User: id.User, Org: id.Org, From: now.Add(-window), To: now, GroupBy: groupBy})
	if err != nil {
		abort(c, err)
		return
	}
	out := APICostsReply{Total: usd(rep.Total), Breakdown: []APICostLine{}}
	for _, l := range rep.Breakdown {
		out.Breakdown = append(out.Breakdown, APICostLine{Key: l.Key, Cost: usd(l.Cost), Requests: l.Requests, Tokens: l.Tokens})
	}
	out.Forecast.PeriodEnd, out.Forecast.Projected = rep.PeriodEnd, usd(rep.Projected)
	c.JSON(http.StatusOK, out)
}
