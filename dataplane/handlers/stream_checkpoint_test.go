package handlers

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
)

// TestAStreamIsCheckpointedAsItRunsAndSettledToItsReportedUsage drives a ChatStream by hand: after
// half the reply it stops reading and waits until the checkpointer (every 5ms, on its own
// goroutine) has charged exactly the prompt plus the tokenizer count of what was read; then it
// reads to the end and checks that Finish leaves the ledger and the budget at the usage the
// provider reported, with nothing reserved. Run with -race, it also checks that the checkpointer
// and the chunk path share the streamed text safely.
func TestAStreamIsCheckpointedAsItRunsAndSettledToItsReportedUsage(t *testing.T) {
	const model = "gpt-4o"
	in, out := money.MustParseUSD("2.50"), money.MustParseUSD("10.00")
	snap := &config.Snapshot{
		Providers: []config.Provider{{Name: "default/mock", Type: config.ProviderMock,
			Mock:   &config.Mock{Reply: strings.Repeat("tokens keep arriving while the stream runs ", 6), CompletionTokens: 4},
			Models: []config.Model{{Name: model, InputPerMillion: in, OutputPerMillion: out, ContextWindow: 128000, MaxOutputTokens: 1000}}}},
		Budgets: []config.Budget{{Name: "default/daily", Scope: config.ScopeUser, Subject: config.AnySubject,
			Limits: []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("1")}}, Action: config.ActionBlock, TimeZone: "UTC"}},
	}
	require.NoError(t, snap.Seal())
	rt, err := runtime.Build(snap, runtime.Options{NewProvider: providers.New})
	require.NoError(t, err)
	gov := governor.New(store.NewMemory(store.MemoryOptions{}), governor.Options{Logger: slog.New(slog.DiscardHandler)})
	svc := NewService(Deps{Governor: gov, Log: slog.New(slog.DiscardHandler), StreamCheckpointInterval: 5 * time.Millisecond})
	id := governor.Identity{User: "u1", Org: "o1"}
	msgs := []providers.Message{{Role: "user", Content: "keep them coming"}}
	usage := func() (*governor.UsageReport, governor.BudgetStatus) {
		rep, err := svc.Usage(t.Context(), rt, governor.Query{User: id.User, Org: id.Org})
		require.NoError(t, err)
		require.Len(t, rep.Budgets, 1)
		return rep, rep.Budgets[0]
	}

	st, err := svc.StartChatStream(t.Context(), rt, &ChatInput{Endpoint: route.EndpointChat, Model: model, Messages: msgs,
		MaxTokens: 100, Identity: id})
	require.NoError(t, err)
	prompt := tokens.CountMessages(model, msgs)
	worst := money.CostOfTokens(prompt, in) + money.CostOfTokens(100, out)
	var read strings.Builder
	for range 12 {
		d, err := st.Next()
		require.NoError(t, err)
		read.WriteString(d)
	}
	sofar := tokens.Count(model, read.String())
	want := money.CostOfTokens(prompt, in) + money.CostOfTokens(sofar, out)
	deadline := time.Now().Add(5 * time.Second)
	rep, b := usage()
	for rep.Cost != want {
		require.True(t, time.Now().Before(deadline), "no checkpoint of %s (ledger %s)", want, rep.Cost)
		time.Sleep(time.Millisecond) // polling the ledger for the checkpointer, not synchronisation
		rep, b = usage()
	}
	require.Equal(t, int64(1), rep.Requests)
	require.Equal(t, prompt+sofar, rep.Tokens)
	require.Equal(t, want, b.Spent)
	require.Equal(t, worst-want, b.Reserved, "the reservation shrank by the checkpointed cost")

	for {
		_, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
	}
	res := st.Finish()
	require.Equal(t, int64(4), res.Usage.CompletionTokens, "the provider's reported usage")
	require.Equal(t, money.CostOfTokens(res.Usage.PromptTokens, in)+money.CostOfTokens(4, out), res.Cost)
	rep, b = usage()
	require.Equal(t, int64(1), rep.Requests)
	require.Equal(t, res.Usage.PromptTokens+4, rep.Tokens)
	require.Equal(t, res.Cost, rep.Cost, "the ledger equals the reported usage's price, not the running estimate")
	require.Equal(t, res.Cost, b.Spent)
	require.Equal(t, money.Nanos(0), b.Reserved)
}

// TestTheOutputTallyCountsAGrowingTextExactlyAsTheWholeText feeds texts in random pieces (words,
// punctuation, digits, runs of spaces, newlines, non-ASCII) and checks after every piece that the
// incremental count equals the tokenizer's count of the whole text so far, for both encodings.
func TestTheOutputTallyCountsAGrowingTextExactlyAsTheWholeText(t *testing.T) {
	pieces := []string{" the", " quick", "brown", " fox", "'s", " 1234", "567", ", ", "  ", "\n", "\n\n", " déjà", " vu",
		"!", "?!", " (x)", " 你好", "世界", " ", "\t", "don't", " I'm", " 3.14", " $5", " e.g.", " --", " a", " b"}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		for run := range 50 {
			var text strings.Builder
			var tl outputTally
			for step := range 80 {
				for range 1 + rng.IntN(4) {
					text.WriteString(pieces[rng.IntN(len(pieces))])
				}
				got := tl.count(model, text.String())
				require.Equal(t, tokens.Count(model, text.String()), got, "%s run %d step %d: %q", model, run, step, text.String())
			}
		}
	}
}
