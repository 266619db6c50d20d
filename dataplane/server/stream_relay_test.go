package server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/providers/providertest"
)

// relayKinds are the upstream wire formats a stream is relayed from.
var relayKinds = []providertest.Kind{providertest.OpenAI, providertest.Anthropic, providertest.Google, providertest.Ollama}

// relayHarness is a harness whose model (returned) is served by a fake of kind: the harness's
// own OpenAI fake, or a fake of another kind added as the one provider of model "relay-<kind>".
// The provider keeps the default silence timeout (a minute), so that a quiet upstream is not cut
// while a test waits for a delta.
func relayHarness(t testing.TB, kind providertest.Kind, o providertest.Options) (*harness, string) {
	t.Helper()
	var up *providertest.Server
	switch kind {
	case providertest.OpenAI:
		return newHarness(t, harnessOpts{upstream: o}), "gpt-4o-mini"
	case providertest.Anthropic:
		up = providertest.NewAnthropic(t, o)
	case providertest.Google:
		up = providertest.NewGoogle(t, o)
	case providertest.Ollama:
		up = providertest.NewOllama(t, o)
	}
	model := "relay-" + string(kind)
	p := up.Provider()
	p.Name, p.Timeout = "default/relay", 0
	p.Models = []config.Model{{Name: model, InputPerMillion: money.MustParseUSD("1"), OutputPerMillion: money.MustParseUSD("2"),
		ContextWindow: 128000, MaxOutputTokens: 1000}}
	return newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
		s.Providers = append(s.Providers, p)
	}}}), model
}

// streamRequest is a streamed chat request for model on the native API ("api") or the
// OpenAI-compatible one ("v1", with include_usage).
func streamRequest(api, model, prompt string) (path string, body []byte) {
	if api == "api" {
		return "/api/ai/chat", []byte(`{"model":"` + model + `","stream":true,"userId":"user-1","messages":[{"role":"user","content":"` + prompt + `"}]}`)
	}
	return "/v1/chat/completions", []byte(`{"model":"` + model + `","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + prompt + `"}]}`)
}

// A relay flushes its client before each read from the upstream rather than after each delta: a
// delta must still reach the client while the upstream is quiet. For every upstream wire format
// and both APIs, the fake waits a minute before its second delta; the first must arrive long
// before that.
func TestEveryRelayDeliversADeltaWhileTheUpstreamIsQuiet(t *testing.T) {
	for _, kind := range relayKinds {
		h, model := relayHarness(t, kind, providertest.Options{Reply: "first second", Chunks: 2, ChunkDelay: time.Minute})
		for _, api := range []string{"api", "v1"} {
			t.Run(string(kind)+"/"+api, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				path, body := streamRequest(api, model, "hi")
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+path, bytes.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+appKey)
				req.Header.Set("X-AI-Org", "acme")
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				br := bufio.NewReader(resp.Body)
				for {
					line, err := br.ReadString('\n')
					require.NoError(t, err, "the first delta did not arrive before the deadline")
					if strings.Contains(line, `"content":"first`) {
						break
					}
				}
			})
		}
	}
}

// A client that hangs up mid-stream is still charged, whatever the upstream and the API: the relay
// flushes less often, so it may learn of the hang-up later, but the stream still ends and settles.
func TestEveryRelayChargesAClientThatDisconnectsMidStream(t *testing.T) {
	for _, kind := range relayKinds {
		h, model := relayHarness(t, kind, providertest.Options{Reply: strings.Repeat("word ", 200), ChunkDelay: 20 * time.Millisecond,
			PromptTokens: 50, CompletionTokens: 200})
		for _, api := range []string{"api", "v1"} {
			t.Run(string(kind)+"/"+api, func(t *testing.T) {
				before := len(h.Gov.settles())
				path, body := streamRequest(api, model, "talk")
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.URL+path, bytes.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+appKey)
				req.Header.Set("X-AI-Org", "acme")
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				br := bufio.NewReader(resp.Body)
				for {
					line, err := br.ReadString('\n')
					require.NoError(t, err)
					if strings.Contains(line, `"content":"word`) {
						break
					}
				}
				require.NoError(t, resp.Body.Close())
				// Polled with a deadline: the 200-chunk stream would take 4 s to end on its own.
				deadline := time.Now().Add(10 * time.Second)
				for len(h.Gov.settles()) == before {
					require.True(t, time.Now().Before(deadline), "the cut stream was never settled")
					time.Sleep(5 * time.Millisecond)
				}
				s := h.Gov.settles()[before]
				require.NoError(t, s.CtxErr, "settle runs on a context that outlives the client")
				require.Positive(t, s.Charge.Cost)
				require.Positive(t, s.Charge.Usage.PromptTokens)
				if kind != providertest.OpenAI {
					require.Equal(t, "default/relay", s.Req.Provider)
				}
			})
		}
	}
}

// countingWriter counts what a handler writes and how often it flushes. Served by net/http, each
// flush that has something to send is one write to the connection (one system call), and writes
// between flushes are only copied into its buffer: flushes/op is the stream's write system calls.
type countingWriter struct {
	*httptest.ResponseRecorder
	writes, flushes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.ResponseRecorder.Write(p)
}

func (w *countingWriter) WriteString(s string) (int, error) {
	w.writes++
	return w.ResponseRecorder.WriteString(s)
}

func (w *countingWriter) Flush() {
	w.flushes++
	w.ResponseRecorder.Flush()
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A cached replay never waits, so it leaves in one write, on either API: the same delta events
// as the stream that filled the cache, flushed once, with the events that end it.
func TestACachedStreamIsReplayedInOneWrite(t *testing.T) {
	h := newHarness(t, harnessOpts{upstream: providertest.Options{Reply: "one two three four five", Chunks: 5},
		mutate: []func(*config.Snapshot){func(s *config.Snapshot) {
			s.Routes[0].Cache = config.Cache{Enabled: true, TTL: time.Minute, Scope: config.CacheScopeOrg}
		}}})
	handler := h.Server.Handler()
	// Each API's event that carries a delta, and what marks the end of the deltas.
	for api, marks := range map[string][2]string{
		"api": {"event: delta\n", "event: done\n"},
		"v1":  {`"delta":{"content":`, `"finish_reason":"stop"`},
	} {
		t.Run(api, func(t *testing.T) {
			stream := func() (*countingWriter, string) {
				path, body := streamRequest(api, "gpt-4o-mini", "count to five ("+api+")") // one cache entry per API
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+appKey)
				req.Header.Set("X-AI-Org", "acme")
				w := &countingWriter{ResponseRecorder: httptest.NewRecorder()}
				handler.ServeHTTP(w, req)
				require.Equal(t, http.StatusOK, w.Code, w.Body.String())
				out := w.Body.String()
				i := strings.Index(out, marks[1])
				require.Positive(t, i, out)
				return w, out[:i]
			}
			miss, missDeltas := stream()
			require.Equal(t, "miss", miss.Header().Get("X-AI-Cache"))
			require.Equal(t, 5, strings.Count(missDeltas, marks[0]), missDeltas)
			hit, hitDeltas := stream()
			require.Equal(t, "hit", hit.Header().Get("X-AI-Cache"))
			require.Equal(t, 5, strings.Count(hitDeltas, marks[0]), "the replay sends the deltas as they were streamed")
			if api == "api" { // the OpenAI-compatible chunks carry a per-reply id and time
				require.Equal(t, missDeltas, hitDeltas, "the replay sends the deltas as they were streamed")
			}
			require.Equal(t, 1, hit.flushes, "a replay is flushed once")
		})
	}
}

// writeSyscalls is the process's write system calls so far (syscw of /proc/self/io): over
// loopback, the relay's writes to its client plus, the same before and after a change, the fake
// upstream's writes and the client's request.
func writeSyscalls(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err) // not Linux: the other metrics still apply elsewhere
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no syscw in /proc/self/io")
	return 0
}

// BenchmarkStreamRelays is a streamed chat through the whole chain, for each API and each upstream
// wire format: 16 chunks from the kind's fake (over loopback) relayed to a recorder. flushes/op is
// the client writes per stream, writes/op the handler's Write calls, cpu-ns/op the process's CPU
// time per stream (the fake's and the relay's), which unlike ns/op does not count the waits.
func BenchmarkStreamRelays(b *testing.B) {
	for _, api := range []string{"api", "v1"} {
		for _, kind := range relayKinds {
			b.Run(api+"/"+string(kind), func(b *testing.B) {
				h, model := relayHarness(b, kind, providertest.Options{Chunks: 16, Reply: "The quarterly report shows revenue growth across all regions while operating costs remained stable, and the outlook is <good> & \"steady\"."})
				handler := h.Server.Handler()
				var writes, flushes int
				send := func(i int) {
					path, body := streamRequest(api, model, "Request "+strconv.Itoa(i)+": summarize the quarterly report")
					req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+appKey)
					req.Header.Set("X-AI-Org", "acme")
					w := &countingWriter{ResponseRecorder: httptest.NewRecorder()}
					handler.ServeHTTP(w, req)
					out := w.Body.Bytes()
					if w.Code != http.StatusOK || !(bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) || bytes.Contains(out, []byte("event: done\n"))) {
						b.Fatalf("status %d: %s", w.Code, out)
					}
					writes += w.writes
					flushes += w.flushes
				}
				send(-1)
				writes, flushes = 0, 0
				b.ReportAllocs()
				cpu := cpuTime(b)
				for b.Loop() {
					send(int(realisticSeq.Add(1)))
				}
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
				b.ReportMetric(float64(flushes)/float64(b.N), "flushes/op")
			})
		}
	}
}

// BenchmarkStreamRelaysOverLoopback is BenchmarkStreamRelays with the client on a real
// connection, so that the relay's writes to it cost their system calls: syscw/op counts the
// process's write system calls per stream (see writeSyscalls), cpu-ns/op its CPU time.
func BenchmarkStreamRelaysOverLoopback(b *testing.B) {
	for _, api := range []string{"api", "v1"} {
		for _, kind := range relayKinds {
			b.Run(api+"/"+string(kind), func(b *testing.B) {
				h, model := relayHarness(b, kind, providertest.Options{Chunks: 16, Reply: "The quarterly report shows revenue growth across all regions while operating costs remained stable, and the outlook is <good> & \"steady\"."})
				send := func(i int) {
					path, body := streamRequest(api, model, "Request "+strconv.Itoa(i)+": summarize the quarterly report")
					req, err := http.NewRequest(http.MethodPost, h.URL+path, bytes.NewReader(body))
					if err != nil {
						b.Fatal(err)
					}
					req.Header.Set("Authorization", "Bearer "+appKey)
					req.Header.Set("X-AI-Org", "acme")
					resp, err := h.client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					out, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK || !(bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) || bytes.Contains(out, []byte("event: done\n"))) {
						b.Fatalf("status %d, %v: %s", resp.StatusCode, err, out)
					}
				}
				send(-1)
				b.ReportAllocs()
				cpu, sysw := cpuTime(b), writeSyscalls(b)
				for b.Loop() {
					send(int(realisticSeq.Add(1)))
				}
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(writeSyscalls(b)-sysw)/float64(b.N), "syscw/op")
			})
		}
	}
}
