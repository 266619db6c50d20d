// Package pricing is the built-in price table for well-known models, so that an AIProvider need
// not repeat public list prices. Each entry records where the price came from and when.
package pricing

import "github.com/nself-org/ai-orchestration/dataplane/money"

// Price is a model's list price and limits. Prices are nano-USD per million tokens.
type Price struct {
	InputPerMillion       money.Nanos
	OutputPerMillion      money.Nanos
	CachedInputPerMillion money.Nanos
	ContextWindow         int64
	MaxOutputTokens       int64
	Embedding             bool
	// Source and AsOf document the price (a provider's pricing page and the date it was read).
	Source string
	AsOf   string
}

// Lookup returns the built-in price of a model for a provider type ("openai", "anthropic",
// "google", "ollama", "openai-compatible", "mock"). Ollama and mock models are free.
func Lookup(providerType, model string) (Price, bool) {
	switch providerType {
	case "ollama", "mock":
		return Price{Source: "local model", AsOf: "n/a"}, true
	}
	p, ok := table[providerType+"/"+model]
	return p, ok
}

// table is keyed "type/model". openai-compatible servers have no list prices.
var table = map[string]Price{
	"openai/gpt-4o-mini": {InputPerMillion: 150_000_000, OutputPerMillion: 600_000_000, CachedInputPerMillion: 75_000_000, ContextWindow: 128_000, MaxOutputTokens: 16_384, Source: "https://openai.com/api/pricing", AsOf: "2026-11-25"},
}
