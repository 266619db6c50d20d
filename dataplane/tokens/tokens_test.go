package tokens

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

func TestEncodingForPicksTheModelFamilysEncoding(t *testing.T) {
	tests := map[string]struct {
		model string
		want  string
	}{
		"gpt-4o uses o200k":                       {"gpt-4o", O200kBase},
		"a dated gpt-4o snapshot uses o200k":      {"gpt-4o-2024-08-06", O200kBase},
		"gpt-4o-mini uses o200k":                  {"gpt-4o-mini", O200kBase},
		"gpt-4.1 uses o200k":                      {"gpt-4.1-nano", O200kBase},
		"the o-series uses o200k":                 {"o3-mini", O200kBase},
		"gpt-5 uses o200k":                        {"gpt-5", O200kBase},
		"gpt-4 uses cl100k":                       {"gpt-4", Cl100kBase},
		"gpt-4-turbo uses cl100k":                 {"gpt-4-turbo", Cl100kBase},
		"gpt-3.5-turbo uses cl100k":               {"gpt-3.5-turbo", Cl100kBase},
		"ada-002 embeddings use cl100k":           {"text-embedding-ada-002", Cl100kBase},
		"v3 embeddings use cl100k":                {"text-embedding-3-small", Cl100kBase},
		"a fine-tune uses its base model's":       {"ft:gpt-3.5-turbo-0125:acme::abc", Cl100kBase},
		"a router prefix is ignored":              {"openai/gpt-4-turbo", Cl100kBase},
		"case is ignored":                         {"GPT-4", Cl100kBase},
		"Anthropic models are estimated by o200k": {"claude-sonnet-4-5", O200kBase},
		"Ollama models are estimated by o200k":    {"llama3.1:8b", O200kBase},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, EncodingFor(tc.model))
		})
	}
}

// EncodingFor keeps the choice for recent model names; whatever the order of names, colliding
// ones included, and from several goroutines at once, it answers what the rules give.
func TestEncodingForRemembersNamesWithoutChangingTheAnswer(t *testing.T) {
	names := []string{"gpt-4o", "gpt-4", "GPT-4", "gpt-4 ", " gpt-4", "gpt-4o-mini", "gpt-4-turbo", "ft:gpt-3.5-turbo:a::b",
		"openai/gpt-4-0613", "claude-sonnet-4-5", "", " ", "gpt-35-turbo", "text-embedding-3-small", "o3", "gpt-4.1",
		strings.Repeat("gpt-4-", 30), strings.Repeat("x", 200) + "gpt-4-", "davinci-002", "babbage-002", "gpt-3.5"}
	for i := range 64 { // many names per slot
		names = append(names, "gpt-4-"+strconv.Itoa(i), "gpt-4o-"+strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 50 {
				for k := range names {
					name := names[(k*7+g+round)%len(names)]
					if got, want := EncodingFor(name), encodingOf(name); got != want {
						t.Errorf("EncodingFor(%q) = %s, want %s", name, got, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, Cl100kBase, EncodingFor("gpt-4-turbo"))
	require.Equal(t, O200kBase, EncodingFor("gpt-4o"))
}

func TestCountMatchesTheReferenceTokenizer(t *testing.T) {
	tests := map[string]struct {
		model string
		text  string
		want  int64
	}{
		"empty text has no tokens":                {"gpt-4o", "", 0},
		"cl100k splits the cookbook example in 6": {"gpt-4", "tiktoken is great!", 6},
		"hello world is two tokens in cl100k":     {"gpt-3.5-turbo", "hello world", 2},
		"hello world is two tokens in o200k":      {"gpt-4o", "hello world", 2},
		"digits are grouped by three":             {"gpt-4o", "1234567", 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, Count(tc.model, tc.text))
		})
	}
}

func TestCountCountsInvalidUTF8InsteadOfFailing(t *testing.T) {
	require.Positive(t, Count("gpt-4o", "\xff\xfe"))
}

func TestCountDiffersBetweenEncodingsOnNonEnglishText(t *testing.T) {
	// o200k_base has a much larger multilingual vocabulary; counting Hindi with the wrong
	// encoding would over-reserve budget several times over.
	text := "नमस्ते, आप कैसे हैं? मैं ठीक हूँ, धन्यवाद।"
	o200k, cl100k := Count("gpt-4o", text), Count("gpt-4", text)
	require.Less(t, o200k, cl100k)
}

func TestCountMessagesAddsOpenAIsPerMessageOverhead(t *testing.T) {
	msgs := []providers.Message{
		{Role: "system", Content: "You are terse."},
		{Role: "user", Content: "hello world"},
	}
	var content int64
	for _, m := range msgs {
		content += Count("gpt-4o", m.Role) + Count("gpt-4o", m.Content)
	}
	// 3 per message and 3 for the primed reply.
	require.Equal(t, content+2*3+3, CountMessages("gpt-4o", msgs))
	require.Equal(t, int64(3), CountMessages("gpt-4o", nil))
}

// CountMessages chooses the encoding once for all messages; the total must stay what each
// message counts on its own, for every spelling of a model name and both encodings.
func TestCountMessagesIsThePrimingPlusEachMessage(t *testing.T) {
	msgs := []providers.Message{
		{Role: "system", Content: strings.Repeat("नमस्ते, You are terse. ", 20)}, // long enough for the memo
		{Role: "user", Content: "hello world"},
		{Role: "developer", Content: "x"},
		{Role: "tool", Content: ""},
		{Role: "custom-role", Content: "\xff\xfe"},
	}
	for _, model := range []string{"gpt-4o", "GPT-4", " gpt-4-turbo ", "ft:gpt-3.5-turbo:org::id", "openai/gpt-4o-mini", "claude-3-5-sonnet", ""} {
		want := int64(ReplyPrimingTokens)
		for _, m := range msgs {
			want += CountMessage(model, m)
		}
		for range 2 { // the second time through the memo
			require.Equal(t, want, CountMessages(model, msgs), model)
		}
	}
	require.NotEqual(t, CountMessages("gpt-4o", msgs), CountMessages("gpt-4", msgs), "each model gets its own encoding")
}

func TestCountIsSafeForConcurrentFirstUse(t *testing.T) {
	var wg sync.WaitGroup
	results := make([]int64, 16)
	for i := range results {
		wg.Go(func() {
			model := "gpt-4o"
			if i%2 == 1 {
				model = "gpt-4"
			}
			results[i] = Count(model, "concurrency is not parallelism")
		})
	}
	wg.Wait()
	for i, n := range results {
		require.Equal(t, results[i%2], n)
	}
}

var benchPrompt = strings.Repeat("Summarize the quarterly report for ACME Corp. Revenue grew 12% to $4.2M; "+
	"churn fell to 3.1%. Highlight risks, owners and next steps in five bullet points.\n", 14)[:2048]

// BenchmarkCount2KBPrompt measures the tokenizer itself (a different prompt every iteration, so
// the cache never answers).
func BenchmarkCount2KBPrompt(b *testing.B) {
	Count("gpt-4o", benchPrompt) // load the vocabulary outside the timed loop
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPrompt)))
	i := 0
	for b.Loop() {
		i++
		countWith(O200kBase, benchPrompt[:2040]+strconv.Itoa(i%1000000))
	}
}

// BenchmarkCount2KBPromptCached measures a repeated prompt (conversation history).
func BenchmarkCount2KBPromptCached(b *testing.B) {
	Count("gpt-4o", benchPrompt)
	b.ReportAllocs()
	for b.Loop() {
		Count("gpt-4o", benchPrompt)
	}
}

func TestCountCachesLongTextsWithoutChangingTheResult(t *testing.T) {
	first := Count("gpt-4o", benchPrompt)
	require.Equal(t, first, Count("gpt-4o", benchPrompt))
	require.Equal(t, first, countWith(O200kBase, benchPrompt))
	hindi := strings.Repeat("नमस्ते, आप कैसे हैं? मैं ठीक हूँ, धन्यवाद। ", 8)
	o200k := Count("gpt-4o", hindi)
	require.NotEqual(t, o200k, Count("gpt-4", hindi), "the cache key includes the encoding")
	require.Equal(t, o200k, Count("gpt-4o", hindi))
}

// TestRoleTokensRemembersTheCountOfKnownRolesOnly holds the role memo to the count it stands for,
// for every known role under both encodings and for roles it must not remember, and the
// remembered look-up to no allocation.
func TestRoleTokensRemembersTheCountOfKnownRolesOnly(t *testing.T) {
	roles := append(knownRoles[:], "", "function", "User", "a-very-long-role-name-that-is-longer-than-thirty-two-bytes")
	for _, enc := range []string{O200kBase, Cl100kBase} {
		for range 2 { // the second pass reads the memo
			for _, role := range roles {
				require.Equal(t, countWith(enc, role), roleTokens(enc, role), "%s %q", enc, role)
			}
		}
	}
	require.Zero(t, testing.AllocsPerRun(100, func() {
		_ = roleTokens(O200kBase, "assistant") + roleTokens(Cl100kBase, "user")
	}))
}

var encodingSink string

// BenchmarkEncodingFor is the encoding choice every count starts with (per message, and per
// delta of a counted stream).
func BenchmarkEncodingFor(b *testing.B) {
	for b.Loop() {
		encodingSink = EncodingFor("gpt-4o-mini")
	}
}
