package pricing_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/pricing"
)

func TestEveryEntryHasASourceADateAndSaneValues(t *testing.T) {
	entries := pricing.Entries()
	require.NotEmpty(t, entries)
	maxPrice := money.MustParseUSD("200") // no listed model costs more per million tokens
	for key, p := range entries {
		t.Run(key, func(t *testing.T) {
			typ, model, ok := strings.Cut(key, "/")
			require.True(t, ok)
			require.Contains(t, []string{"openai", "anthropic", "google"}, typ)
			require.NotEmpty(t, model)
			require.True(t, strings.HasPrefix(p.Source, "https://"), "source is a URL")
			_, err := time.Parse(time.DateOnly, p.AsOf)
			require.NoError(t, err, "AsOf is a date")

			for _, v := range []money.Nanos{p.InputPerMillion, p.OutputPerMillion, p.CachedInputPerMillion} {
				require.GreaterOrEqual(t, v, money.Nanos(0))
				require.LessOrEqual(t, v, maxPrice)
			}
			require.LessOrEqual(t, p.CachedInputPerMillion, p.InputPerMillion, "a cache hit never costs more than input")
			if p.Embedding {
				require.Zero(t, p.OutputPerMillion, "embeddings have no output tokens")
				require.Positive(t, p.ContextWindow)
				return
			}
			if strings.Contains(model, "moderation") {
				require.Zero(t, p.InputPerMillion, "moderation is free")
				return
			}
			require.Positive(t, p.InputPerMillion)
			require.GreaterOrEqual(t, p.OutputPerMillion, p.InputPerMillion, "output costs at least input")
			require.Positive(t, p.ContextWindow)
			require.Positive(t, p.MaxOutputTokens)
			require.Less(t, p.MaxOutputTokens, p.ContextWindow)
		})
	}
}

func TestTheSeedsModelsAndTheirSuccessorsArePriced(t *testing.T) {
	want := map[string][]string{
		"openai": {"gpt-4o", "gpt-4o-mini", "o1", "o3", "o4-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
			"text-embedding-3-small", "text-embedding-3-large", "omni-moderation-latest"},
		"anthropic": {"claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest", "claude-3-7-sonnet-latest", "claude-sonnet-4-0",
			"claude-sonnet-4-5", "claude-opus-4-1", "claude-opus-4-5", "claude-haiku-4-5", "claude-3-5-haiku-latest"},
		"google": {"gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004", "gemini-embedding-001"},
	}
	for typ, models := range want {
		for _, m := range models {
			_, ok := pricing.Lookup(typ, m)
			require.True(t, ok, "%s/%s is priced", typ, m)
		}
	}
}

func TestListPricesMatchTheProvidersPages(t *testing.T) {
	cases := map[string]struct {
		typ, model      string
		in, out, cached string
	}{
		"gpt-4o":            {"openai", "gpt-4o", "2.50", "10", "1.25"},
		"gpt-4o-mini":       {"openai", "gpt-4o-mini", "0.15", "0.60", "0.075"},
		"claude sonnet 3.5": {"anthropic", "claude-3-5-sonnet-20241022", "3", "15", "0.30"},
		"gemini 2.0 flash":  {"google", "gemini-2.0-flash", "0.10", "0.40", "0.025"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, ok := pricing.Lookup(tc.typ, tc.model)
			require.True(t, ok)
			require.Equal(t, money.MustParseUSD(tc.in), p.InputPerMillion)
			require.Equal(t, money.MustParseUSD(tc.out), p.OutputPerMillion)
			require.Equal(t, money.MustParseUSD(tc.cached), p.CachedInputPerMillion)
		})
	}
}

func TestLocalModelsAreFreeAndUnknownModelsAreNotPriced(t *testing.T) {
	for _, typ := range []string{"ollama", "mock"} {
		p, ok := pricing.Lookup(typ, "anything")
		require.True(t, ok)
		require.Zero(t, p.InputPerMillion)
		require.Zero(t, p.OutputPerMillion)
	}
	_, ok := pricing.Lookup("openai", "no-such-model")
	require.False(t, ok)
	_, ok = pricing.Lookup("openai-compatible", "gpt-4o")
	require.False(t, ok, "a compatible server's models have no list price")
}
