// Package pricing is the built-in price table for well-known models, so that an AIProvider need
// not repeat public list prices. Each entry records where the price came from and when.
//
// Prices are standard (non-batch) list prices per million tokens. Where a provider prices by
// prompt length (Gemini 2.5 Pro and Claude Sonnet 4/4.5 above 200K input tokens) the entry holds
// the base tier and says so in Source; an AIProvider that serves long prompts should set its own
// prices. A table goes stale: every entry's AsOf is the day it was last checked, and an
// AIProvider's own price always wins over the table.
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

// Entries returns a copy of the table keyed "type/model", for docs and tests.
func Entries() map[string]Price {
	out := make(map[string]Price, len(table))
	for k, v := range table {
		out[k] = v
	}
	return out
}

// asOf is the day the table below was last checked against its sources.
const asOf = "2026-11-25"

const (
	srcOpenAI    = "https://platform.openai.com/docs/pricing"
	srcAnthropic = "https://docs.anthropic.com/en/docs/about-claude/pricing"
	srcGoogle    = "https://ai.google.dev/gemini-api/docs/pricing"
)

// usd parses a table literal; a typo panics at init, which every test run catches.
func usd(s string) money.Nanos { return money.MustParseUSD(s) }

// chat is a chat model row: input, output, cached input (USD per million), context, max output.
func chat(in, out, cached string, ctx, maxOut int64, src string) Price {
	return Price{InputPerMillion: usd(in), OutputPerMillion: usd(out), CachedInputPerMillion: usd(cached), ContextWindow: ctx, MaxOutputTokens: maxOut, Source: src, AsOf: asOf}
}

// embed is an embedding model row: input price and maximum input tokens.
func embed(in string, ctx int64, src string) Price {
	return Price{InputPerMillion: usd(in), ContextWindow: ctx, Embedding: true, Source: src, AsOf: asOf}
}

// alias registers the same price under several model ids (dated snapshots and aliases).
func alias(m map[string]Price, p Price, keys ...string) {
	for _, k := range keys {
		m[k] = p
	}
}

// table is keyed "type/model". openai-compatible servers have no list prices.
var table = func() map[string]Price {
	t := map[string]Price{}

	// OpenAI. Cached input is the prompt-caching rate. Secondary cross-check: deploybase.ai and
	// aumiqx.com 2026 price tables, which agree with these values.
	alias(t, chat("2.50", "10", "1.25", 128_000, 16_384, srcOpenAI), "openai/gpt-4o", "openai/gpt-4o-2024-11-20", "openai/gpt-4o-2024-08-06")
	alias(t, chat("0.15", "0.60", "0.075", 128_000, 16_384, srcOpenAI), "openai/gpt-4o-mini", "openai/gpt-4o-mini-2024-07-18")
	alias(t, chat("15", "60", "7.50", 200_000, 100_000, srcOpenAI), "openai/o1", "openai/o1-2024-12-17")
	alias(t, chat("1.10", "4.40", "0.55", 200_000, 100_000, srcOpenAI), "openai/o3-mini", "openai/o3-mini-2025-01-31")
	alias(t, chat("2", "8", "0.50", 200_000, 100_000, srcOpenAI+" (o3 after the June 2025 price cut)"), "openai/o3", "openai/o3-2025-04-16")
	alias(t, chat("1.10", "4.40", "0.275", 200_000, 100_000, srcOpenAI), "openai/o4-mini", "openai/o4-mini-2025-04-16")
	alias(t, chat("2", "8", "0.50", 1_047_576, 32_768, srcOpenAI), "openai/gpt-4.1", "openai/gpt-4.1-2025-04-14")
	alias(t, chat("0.40", "1.60", "0.10", 1_047_576, 32_768, srcOpenAI), "openai/gpt-4.1-mini", "openai/gpt-4.1-mini-2025-04-14")
	alias(t, chat("0.10", "0.40", "0.025", 1_047_576, 32_768, srcOpenAI), "openai/gpt-4.1-nano", "openai/gpt-4.1-nano-2025-04-14")
	alias(t, chat("1.25", "10", "0.125", 400_000, 128_000, srcOpenAI), "openai/gpt-5", "openai/gpt-5-2025-08-07")
	alias(t, chat("0.25", "2", "0.025", 400_000, 128_000, srcOpenAI), "openai/gpt-5-mini", "openai/gpt-5-mini-2025-08-07")
	alias(t, chat("0.05", "0.40", "0.005", 400_000, 128_000, srcOpenAI), "openai/gpt-5-nano", "openai/gpt-5-nano-2025-08-07")
	t["openai/text-embedding-3-small"] = embed("0.02", 8191, srcOpenAI)
	t["openai/text-embedding-3-large"] = embed("0.13", 8191, srcOpenAI)
	t["openai/text-embedding-ada-002"] = embed("0.10", 8191, srcOpenAI)
	// Moderation is free; the input limit is not published as a token count, so it is unknown.
	t["openai/omni-moderation-latest"] = Price{Source: srcOpenAI + " (moderation is free of charge)", AsOf: asOf}
	t["openai/omni-moderation-2024-09-26"] = t["openai/omni-moderation-latest"]

	// Anthropic. Cached input is the cache-hit rate (cache writes cost more: 1.25x base for 5m).
	alias(t, chat("3", "15", "0.30", 200_000, 8_192, srcAnthropic+" (Claude Sonnet 3.5, deprecated)"),
		"anthropic/claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet-20240620", "anthropic/claude-3-5-sonnet-latest")
	alias(t, chat("3", "15", "0.30", 200_000, 64_000, srcAnthropic), "anthropic/claude-3-7-sonnet-20250219", "anthropic/claude-3-7-sonnet-latest")
	alias(t, chat("3", "15", "0.30", 200_000, 64_000, srcAnthropic+" (base tier; prompts over 200K tokens with the 1M-context beta cost $6/$22.50)"),
		"anthropic/claude-sonnet-4-20250514", "anthropic/claude-sonnet-4-0")
	alias(t, chat("3", "15", "0.30", 200_000, 64_000, srcAnthropic+" (base tier; prompts over 200K tokens with the 1M-context beta cost $6/$22.50)"),
		"anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5")
	alias(t, chat("15", "75", "1.50", 200_000, 32_000, srcAnthropic), "anthropic/claude-opus-4-20250514", "anthropic/claude-opus-4-0")
	alias(t, chat("15", "75", "1.50", 200_000, 32_000, srcAnthropic), "anthropic/claude-opus-4-1-20250805", "anthropic/claude-opus-4-1")
	alias(t, chat("5", "25", "0.50", 200_000, 64_000, srcAnthropic), "anthropic/claude-opus-4-5-20251101", "anthropic/claude-opus-4-5")
	alias(t, chat("1", "5", "0.10", 200_000, 64_000, srcAnthropic), "anthropic/claude-haiku-4-5-20251001", "anthropic/claude-haiku-4-5")
	alias(t, chat("0.80", "4", "0.08", 200_000, 8_192, srcAnthropic), "anthropic/claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku-latest")
	t["anthropic/claude-3-haiku-20240307"] = chat("0.25", "1.25", "0.03", 200_000, 4_096, srcAnthropic)
	// Newer models seen only in secondary sources (deploybase.ai, March 2026); ids follow
	// Anthropic's alias pattern and are unverified against the official page.
	t["anthropic/claude-opus-4-6"] = chat("5", "25", "0.50", 1_000_000, 128_000, srcAnthropic+" (UNVERIFIED: price and id from deploybase.ai/articles/claude-api-pricing, 2026-03)")
	t["anthropic/claude-sonnet-4-6"] = chat("3", "15", "0.30", 1_000_000, 64_000, srcAnthropic+" (UNVERIFIED: price and id from deploybase.ai/articles/claude-api-pricing, 2026-03)")

	// Google Gemini (paid tier). Cached input is the context-caching rate (storage billed apart).
	alias(t, chat("0.10", "0.40", "0.025", 1_048_576, 8_192, srcGoogle), "google/gemini-2.0-flash", "google/gemini-2.0-flash-001")
	alias(t, chat("0.075", "0.30", "0.075", 1_048_576, 8_192, srcGoogle+" (no context caching: cached = input)"), "google/gemini-2.0-flash-lite", "google/gemini-2.0-flash-lite-001")
	t["google/gemini-2.5-flash"] = chat("0.30", "2.50", "0.03", 1_048_576, 65_536, srcGoogle+" (text input; cached rate unsure: 0.075 before the 2025 cut, 0.03 after)")
	t["google/gemini-2.5-flash-lite"] = chat("0.10", "0.40", "0.01", 1_048_576, 65_536, srcGoogle)
	t["google/gemini-2.5-pro"] = chat("1.25", "10", "0.125", 1_048_576, 65_536, srcGoogle+" (base tier for prompts up to 200K tokens; above: $2.50/$15)")
	t["google/gemini-3-pro-preview"] = chat("2", "12", "0.20", 1_048_576, 65_536, srcGoogle+" (UNVERIFIED: from aifreeapi.com 2026 guide; base tier up to 200K tokens)")
	t["google/gemini-embedding-001"] = embed("0.15", 2048, srcGoogle)
	t["google/text-embedding-004"] = embed("0", 2048, srcGoogle+" (listed free of charge; being retired in favour of gemini-embedding-001)")
	return t
}()
