package handlers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
)

// SummarizeInput is a /api/ai/summarize request.
type SummarizeInput struct {
	Model    string
	Text     string
	MaxWords int
	Style    string
	Identity governor.Identity
}

// SummarizeResult is a served summary; Usage and Cost add up every call made.
type SummarizeResult struct {
	Summary   string
	Model     string
	Provider  string
	Usage     providers.Usage
	Cost      money.Nanos
	Cached    bool
	Parts     int
	RateLimit governor.RateLimitState
}

// Defaults of summarization.
const (
	defaultContextWindow = 8192
	summaryOutputTokens  = 1024
	// promptOverhead is reserved for the instruction and chat framing around a part.
	promptOverhead  = 256
	maxSummaryDepth = 4
)

// Summarize summarizes text. Text longer than the model's context window is split into parts
// that fit, each part is summarized (each call admitted, guarded and settled on its own), and
// the part summaries are summarized together — recursively, if even they do not fit.
func (s *Service) Summarize(ctx context.Context, rt *runtime.Runtime, in *SummarizeInput) (*SummarizeResult, error) {
	if strings.TrimSpace(in.Text) == "" {
		return nil, fmt.Errorf("%w", errEmptyText)
	}
	res, err := rt.Routes.Resolve(route.Request{Model: in.Model, Endpoint: route.EndpointSummarize, Org: in.Identity.Org, User: in.Identity.User})
	if err != nil {
		return nil, resolveErr(err, in.Model)
	}
	window := int64(0)
	for _, t := range res.Targets {
		if t.ContextWindow > 0 && (window == 0 || t.ContextWindow < window) {
			window = t.ContextWindow
		}
	}
	if window <= 0 {
		window = defaultContextWindow
	}
	out := &SummarizeResult{Cached: true}
	summary, err := s.summarize(ctx, rt, in, in.Text, window, false, 0, out)
	if err != nil {
		return nil, err
	}
	out.Summary = summary
	return out, nil
}

var errEmptyText = badRequest("text (or messages) must not be empty")

func (s *Service) summarize(ctx context.Context, rt *runtime.Runtime, in *SummarizeInput, text string, window int64,
	combine bool, depth int, acc *SummarizeResult) (string, error) {
	outTokens := min(int64(summaryOutputTokens), max(window/4, 64))
	partTokens := window - outTokens - promptOverhead
	if partTokens < 64 {
		partTokens = 64
	}
	model := in.Model
	total := tokens.Count(model, text)
	if total <= partTokens || depth >= maxSummaryDepth {
		r, err := s.Chat(ctx, rt, &ChatInput{
			Endpoint:  route.EndpointSummarize,
			Model:     in.Model,
			Messages:  summaryPrompt(text, in.MaxWords, in.Style, combine),
			MaxTokens: outTokens,
			Identity:  in.Identity,
			Extra:     map[string]string{"maxWords": strconv.Itoa(in.MaxWords), "style": in.Style, "combine": strconv.FormatBool(combine)},
		})
		if err != nil {
			return "", err
		}
		acc.Parts++
		acc.Model, acc.Provider = r.Model, r.Provider
		acc.Usage.PromptTokens += r.Usage.PromptTokens
		acc.Usage.CompletionTokens += r.Usage.CompletionTokens
		acc.Usage.CachedPromptTokens += r.Usage.CachedPromptTokens
		acc.Cost += r.Cost
		acc.Cached = acc.Cached && r.Cached
		if r.RateLimit.Limit > 0 {
			acc.RateLimit = r.RateLimit
		}
		return r.Content, nil
	}
	parts := splitText(model, text, partTokens, total)
	sums := make([]string, 0, len(parts))
	for _, p := range parts {
		sum, err := s.summarize(ctx, rt, in, p, window, false, depth+1, acc)
		if err != nil {
			return "", err
		}
		sums = append(sums, sum)
	}
	return s.summarize(ctx, rt, in, strings.Join(sums, "\n\n"), window, true, depth+1, acc)
}

func summaryPrompt(text string, maxWords int, style string, combine bool) []providers.Message {
	var b strings.Builder
	if combine {
		b.WriteString("The following are summaries of consecutive parts of one document. Combine them into one coherent summary")
	} else {
		b.WriteString("Summarize the following text")
	}
	if maxWords > 0 {
		fmt.Fprintf(&b, " in at most %d words", maxWords)
	}
	if style != "" {
		fmt.Fprintf(&b, ", in this style: %s", style)
	}
	b.WriteString(". Reply with the summary only.")
	return []providers.Message{{Role: "system", Content: b.String()}, {Role: "user", Content: text}}
}

// splitText cuts text at whitespace into parts of at most limit tokens each, aiming for equal
// parts: it starts from the token count's proportion and splits again any part that still
// does not fit (token density varies along a text).
func splitText(model, text string, limit, total int64) []string {
	n := int((total + limit - 1) / limit)
	runes := []rune(text)
	var parts []string
	start := 0
	for i := 1; i <= n && start < len(runes); i++ {
		end := len(runes) * i / n
		if i < n {
			end = cutAtSpace(runes, start, end)
		} else {
			end = len(runes)
		}
		if end <= start {
			continue
		}
		parts = append(parts, string(runes[start:end]))
		start = end
	}
	var out []string
	for _, p := range parts {
		if c := tokens.Count(model, p); c > limit && len([]rune(p)) > 1 {
			out = append(out, splitText(model, p, limit, c)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// cutAtSpace moves end back to just after the nearest whitespace within the part, so that words
// are not cut; a part without whitespace is cut where it is.
func cutAtSpace(runes []rune, start, end int) int {
	for j := end; j > start+(end-start)/2; j-- {
		if unicode.IsSpace(runes[j-1]) {
			return j
		}
	}
	return end
}
