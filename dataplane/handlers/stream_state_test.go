package handlers

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	rt "runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/cache"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/guard"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/store"
)

// streamService is a Service over the mock provider (replying reply), a memory store, a cache
// and the guardrail engine, with one route that caches per user; redactOutput adds a PII guard
// that redacts streamed output.
func streamService(t *testing.T, reply string, redactOutput bool) (*Service, *runtime.Runtime) {
	t.Helper()
	r := config.Route{Name: "default/chat", Match: config.Match{Models: []string{"gpt-4o"}},
		Targets: []config.Target{{Provider: "default/mock", Model: "gpt-4o", Weight: 1}}, Strategy: config.StrategyFailover,
		Cache: config.Cache{Enabled: true, TTL: time.Minute, Scope: config.CacheScopeUser}}
	if redactOutput {
		r.Guardrails.PII = &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{guard.ApplyOutput}}
	}
	snap := &config.Snapshot{
		Providers: []config.Provider{{Name: "default/mock", Type: config.ProviderMock, Mock: &config.Mock{Reply: reply},
			Models: []config.Model{{Name: "gpt-4o", InputPerMillion: money.MustParseUSD("2.50"), OutputPerMillion: money.MustParseUSD("10.00"),
				ContextWindow: 128000, MaxOutputTokens: 1000}}}},
		Routes: []config.Route{r},
	}
	require.NoError(t, snap.Seal())
	run, err := runtime.Build(snap, runtime.Options{NewProvider: providers.New})
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	st := store.NewMemory(store.MemoryOptions{})
	svc := NewService(Deps{Governor: governor.New(st, governor.Options{Logger: log}), Log: log,
		Guard: NewGuard(guard.NewEngine(guard.Options{})), Cache: cache.New(st.Cache(), cache.Options{Logger: log}),
		StreamCheckpointInterval: time.Millisecond})
	return svc, run
}

func streamInput(question string) *ChatInput {
	return &ChatInput{Endpoint: route.EndpointChat, Model: "gpt-4o", MaxTokens: 100,
		Messages: []providers.Message{{Role: "user", Content: question}}, Identity: governor.Identity{User: "u1", Org: "o1"}}
}

// readStream reads st to its end and finishes it.
func readStream(t *testing.T, st *ChatStream) ([]string, *ChatResult) {
	t.Helper()
	var got []string
	for {
		d, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append(got, d)
	}
	return got, st.Finish()
}

// TestAStreamedReplyIsCachedChunkByChunkAsItWasSent streams a reply that misses the cache, then
// the same request again: the hit replays exactly the chunks the first client got (the stream
// keeps the reply's text once and the chunk ends as offsets), and the reply's content is their
// concatenation. With output redaction the chunks are the redactor's, which holds text back
// across chunks and flushes a rest at the end, so they differ from the provider's.
func TestAStreamedReplyIsCachedChunkByChunkAsItWasSent(t *testing.T) {
	const reply = "write to jane.doe@example.com or call me, ok? the rest  of   the reply has  odd spacing ✓ and ends here"
	for name, redact := range map[string]bool{"as sent by the provider": false, "redacted on the way": true} {
		t.Run(name, func(t *testing.T) {
			svc, run := streamService(t, reply, redact)
			st, err := svc.StartChatStream(t.Context(), run, streamInput("a question"))
			require.NoError(t, err)
			require.False(t, st.Cached())
			sent, res := readStream(t, st)
			require.Greater(t, len(sent), 5)
			require.Equal(t, strings.Join(sent, ""), res.Content)
			if redact {
				require.NotContains(t, res.Content, "jane.doe@example.com")
			} else {
				require.Equal(t, reply, res.Content)
			}

			again, err := svc.StartChatStream(t.Context(), run, streamInput("a question"))
			require.NoError(t, err)
			require.True(t, again.Cached(), "the first stream was stored")
			replayed, hit := readStream(t, again)
			require.Equal(t, sent, replayed)
			require.Equal(t, res.Content, hit.Content)
		})
	}
}

// TestAnOpenStreamDoesNotHoldItsRequest opens a stream and, while it is open, checks that the
// request (its messages were sent upstream and counted at the start) and the route plan can be
// collected: a thousand open streams would otherwise each keep their prompt in memory.
func TestAnOpenStreamDoesNotHoldItsRequest(t *testing.T) {
	svc, run := streamService(t, "one two three four five six", false)
	in := streamInput(strings.Repeat("a long prompt ", 100))
	held := weak.Make(in)
	st, err := svc.StartChatStream(t.Context(), run, in)
	require.NoError(t, err)
	in = nil
	d, err := st.Next()
	require.NoError(t, err)
	require.Equal(t, "one", d)
	require.Nil(t, st.c.plan)
	for range 10 {
		if held.Value() == nil {
			break
		}
		rt.GC()
	}
	require.Nil(t, held.Value(), "the open stream still references its ChatInput")
	rest, res := readStream(t, st)
	require.Equal(t, "one two three four five six", "one"+strings.Join(rest, ""))
	require.Equal(t, "stop", res.FinishReason)
	rt.KeepAlive(st)
}

// TestManyOpenStreamsAreCheckpointedByABoundedSetOfGoroutines opens many more streams than there
// are checkpoint runners, all coming due together (every millisecond), and checks that every one
// is checkpointed while no more than maxCheckpointRunners goroutines run checkpoints; then that
// each settles to the usage its provider reported.
func TestManyOpenStreamsAreCheckpointedByABoundedSetOfGoroutines(t *testing.T) {
	const n = 8 * maxCheckpointRunners
	svc, run := streamService(t, "one two three four five six seven eight", false)
	streams := make([]*ChatStream, n)
	for i := range streams {
		in := streamInput(fmt.Sprintf("question %d", i))
		in.Identity.User = fmt.Sprintf("u%d", i)
		st, err := svc.StartChatStream(t.Context(), run, in)
		require.NoError(t, err)
		_, err = st.Next()
		require.NoError(t, err)
		streams[i] = st
	}
	checkpointed := func() int {
		done := 0
		for _, st := range streams {
			st.cp.mu.Lock()
			if st.cp.charged > 0 {
				done++
			}
			st.cp.mu.Unlock()
		}
		return done
	}
	deadline := time.Now().Add(10 * time.Second)
	for checkpointed() < n {
		svc.checkpoints.mu.Lock()
		running := svc.checkpoints.running
		svc.checkpoints.mu.Unlock()
		require.LessOrEqual(t, running, maxCheckpointRunners)
		require.True(t, time.Now().Before(deadline), "%d of %d streams checkpointed", checkpointed(), n)
		time.Sleep(time.Millisecond) // polling the checkpoints, not synchronisation
	}
	for i, st := range streams {
		_, res := readStream(t, st)
		require.Equal(t, "stop", res.FinishReason)
		rep, err := svc.Usage(t.Context(), run, governor.Query{User: fmt.Sprintf("u%d", i), Org: "o1"})
		require.NoError(t, err)
		require.Equal(t, res.Cost, rep.Cost, "stream %d: the ledger holds the settled usage, not a checkpoint's estimate", i)
	}
}
