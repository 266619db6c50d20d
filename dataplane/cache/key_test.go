package cache

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

func ptr[T any](v T) *T { return &v }

func chatRequest() *Request {
	return &Request{
		Endpoint: "chat",
		Route:    "team-a/default",
		Model:    "default",
		Messages: []providers.Message{
			{Role: "system", Content: "You are terse."},
			{Role: "user", Content: "def f():\n    return 1\n\nExplain."},
		},
		Temperature: ptr(0.2),
		MaxTokens:   256,
		Stop:        []string{"END", "STOP"},
	}
}

func mustScope(t *testing.T, scope, org, user string) Scope {
	t.Helper()
	s, err := NewScope(scope, org, user)
	require.NoError(t, err)
	return s
}

func mustKey(t *testing.T, s Scope, r *Request) string {
	t.Helper()
	k, err := Key(s, r)
	require.NoError(t, err)
	require.Len(t, k, 64)
	return k
}

func TestTheSameRequestInTheSameScopeHasTheSameKey(t *testing.T) {
	s := mustScope(t, ScopeOrg, "acme", "alice")
	require.Equal(t, mustKey(t, s, chatRequest()), mustKey(t, mustScope(t, ScopeOrg, "acme", "bob"), chatRequest()),
		"org scope: users of one org share")
}

func TestScopesSeparateTenants(t *testing.T) {
	cases := map[string]struct {
		a, b     [3]string // scope, org, user
		wantSame bool
	}{
		"another org gets another key":                      {a: [3]string{"org", "acme", "u"}, b: [3]string{"org", "globex", "u"}},
		"user scope separates users of one org":             {a: [3]string{"user", "acme", "alice"}, b: [3]string{"user", "acme", "bob"}},
		"user scope separates one user id in two orgs":      {a: [3]string{"user", "acme", "alice"}, b: [3]string{"user", "globex", "alice"}},
		"the empty scope defaults to org":                   {a: [3]string{"", "acme", "alice"}, b: [3]string{"org", "acme", "bob"}, wantSame: true},
		"org scope without an org separates users":          {a: [3]string{"org", "", "alice"}, b: [3]string{"org", "", "bob"}},
		"global scope shares across orgs":                   {a: [3]string{"global", "acme", "alice"}, b: [3]string{"global", "globex", "bob"}, wantSame: true},
		"global and org scope never share":                  {a: [3]string{"global", "acme", ""}, b: [3]string{"org", "acme", ""}},
		"an org id and a user id spelled alike never share": {a: [3]string{"org", "x", ""}, b: [3]string{"org", "", "x"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ka := mustKey(t, mustScope(t, tc.a[0], tc.a[1], tc.a[2]), chatRequest())
			kb := mustKey(t, mustScope(t, tc.b[0], tc.b[1], tc.b[2]), chatRequest())
			if tc.wantSame {
				require.Equal(t, ka, kb)
			} else {
				require.NotEqual(t, ka, kb)
			}
		})
	}
}

func TestATenantIsRequired(t *testing.T) {
	cases := map[string]struct {
		scope, org, user string
		want             error
	}{
		"org scope with no identity at all": {scope: "org", want: ErrNoTenant},
		"user scope without a user":         {scope: "user", org: "acme", want: ErrNoTenant},
		"an unknown scope":                  {scope: "team", org: "acme", user: "u", want: ErrInvalidScope},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewScope(tc.scope, tc.org, tc.user)
			require.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("the zero scope cannot build a key", func(t *testing.T) {
		_, err := Key(Scope{}, chatRequest())
		require.ErrorIs(t, err, ErrNoTenant)
	})
}

func TestEveryOutputChangingParameterChangesTheKey(t *testing.T) {
	scope := mustScope(t, ScopeOrg, "acme", "")
	base := mustKey(t, scope, chatRequest())
	cases := map[string]func(r *Request){
		"endpoint":                       func(r *Request) { r.Endpoint = "summarize" },
		"route":                          func(r *Request) { r.Route = "team-a/other" },
		"model as requested":             func(r *Request) { r.Model = "gpt-4o-mini" },
		"a message role":                 func(r *Request) { r.Messages[0].Role = "user" },
		"a message content":              func(r *Request) { r.Messages[1].Content = "Explain briefly." },
		"inner whitespace (indentation)": func(r *Request) { r.Messages[1].Content = "def f():\n  return 1\n\nExplain." },
		"an extra message":               func(r *Request) { r.Messages = append(r.Messages, providers.Message{Role: "assistant"}) },
		"moving text between messages": func(r *Request) {
			r.Messages[0].Content, r.Messages[1].Content = "You are terse.def f():", "return 1\n\nExplain."
		},
		"temperature":              func(r *Request) { r.Temperature = ptr(0.3) },
		"no temperature":           func(r *Request) { r.Temperature = nil },
		"temperature 0 vs unset":   func(r *Request) { r.Temperature = ptr(0.0) },
		"top_p":                    func(r *Request) { r.TopP = ptr(0.9) },
		"max tokens":               func(r *Request) { r.MaxTokens = 257 },
		"a stop sequence":          func(r *Request) { r.Stop = []string{"END"} },
		"a response format":        func(r *Request) { r.ResponseFormat = &providers.ResponseFormat{Type: "json_object"} },
		"an embedding input":       func(r *Request) { r.Input = []string{"hello"} },
		"an endpoint option":       func(r *Request) { r.Extra = map[string]string{"style": "bullets"} },
		"whitespace normalization": func(r *Request) { r.NormalizeWhitespace = true },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			r := chatRequest()
			change(r)
			require.NotEqual(t, base, mustKey(t, scope, r))
		})
	}
}

func TestEquivalentRequestsShareAKey(t *testing.T) {
	scope := mustScope(t, ScopeOrg, "acme", "")
	cases := map[string]struct {
		a, b func(r *Request)
	}{
		"surrounding whitespace and CRLF line endings": {
			a: func(r *Request) {},
			b: func(r *Request) { r.Messages[1].Content = "  def f():\r\n    return 1\r\n\r\nExplain.\n\n" },
		},
		"role case": {
			a: func(r *Request) {},
			b: func(r *Request) { r.Messages[0].Role = "System" },
		},
		"stop sequences in another order": {
			a: func(r *Request) {},
			b: func(r *Request) { r.Stop = []string{"STOP", "END", "END"} },
		},
		"a JSON schema with other key order and spacing": {
			a: func(r *Request) {
				r.ResponseFormat = &providers.ResponseFormat{Type: "json_schema", Schema: json.RawMessage(`{"type":"object","required":["a"]}`)}
			},
			b: func(r *Request) {
				r.ResponseFormat = &providers.ResponseFormat{Type: "json_schema", Schema: json.RawMessage("{ \"required\": [\"a\"],\n \"type\": \"object\" }")}
			},
		},
		"runs of whitespace when the policy normalizes whitespace": {
			a: func(r *Request) { r.NormalizeWhitespace = true },
			b: func(r *Request) {
				r.NormalizeWhitespace = true
				r.Messages[1].Content = "def   f():\n\treturn 1 Explain."
			},
		},
		"negative and positive zero temperature": {
			a: func(r *Request) { r.Temperature = ptr(0.0) },
			b: func(r *Request) { r.Temperature = ptr(math.Copysign(0, -1)) },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := chatRequest(), chatRequest()
			tc.a(a)
			tc.b(b)
			require.Equal(t, mustKey(t, scope, a), mustKey(t, scope, b))
		})
	}
}

func BenchmarkKey2KBPrompt(b *testing.B) {
	scope, _ := NewScope(ScopeOrg, "acme", "")
	r := chatRequest()
	prompt := make([]byte, 2048)
	for i := range prompt {
		prompt[i] = "lorem ipsum dolor sit amet "[i%27]
	}
	r.Messages[1].Content = string(prompt)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Key(scope, r); err != nil {
			b.Fatal(err)
		}
	}
}

// Keys are taken before input guardrails run, and what is stored is what the guardrails made of
// the reply: every guardrail setting must change the key.
func TestEveryGuardrailSettingChangesTheKey(t *testing.T) {
	scope := mustScope(t, ScopeOrg, "acme", "")
	guarded := func() *Request {
		r := chatRequest()
		r.Guardrails = &config.Guardrails{
			PII:      &config.PIIGuard{Action: "redact", Types: []string{"email"}, ApplyTo: []string{"input"}},
			Toxicity: &config.ToxicityGuard{Action: "block", Threshold: 80},
			Output:   &config.OutputGuard{MaxLength: 100, BannedPhrases: []string{"x"}},
		}
		return r
	}
	base := mustKey(t, scope, guarded())
	require.NotEqual(t, base, mustKey(t, scope, chatRequest()), "no guardrails")
	cases := map[string]func(g *config.Guardrails){
		"pii action":        func(g *config.Guardrails) { g.PII.Action = "block" },
		"pii types":         func(g *config.Guardrails) { g.PII.Types = []string{"email", "phone"} },
		"pii applies to":    func(g *config.Guardrails) { g.PII.ApplyTo = []string{"input", "output"} },
		"no pii":            func(g *config.Guardrails) { g.PII = nil },
		"toxicity action":   func(g *config.Guardrails) { g.Toxicity.Action = "flag" },
		"toxicity level":    func(g *config.Guardrails) { g.Toxicity.Threshold = 70 },
		"toxicity provider": func(g *config.Guardrails) { g.Toxicity.Provider = "ns/openai" },
		"toxicity model":    func(g *config.Guardrails) { g.Toxicity.Model = "omni-moderation-latest" },
		"no toxicity":       func(g *config.Guardrails) { g.Toxicity = nil },
		"output schema":     func(g *config.Guardrails) { g.Output.JSONSchema = `{"type":"object"}` },
		"output length":     func(g *config.Guardrails) { g.Output.MaxLength = 101 },
		"banned phrases":    func(g *config.Guardrails) { g.Output.BannedPhrases = []string{"y"} },
		"no output guard":   func(g *config.Guardrails) { g.Output = nil },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			r := guarded()
			change(r.Guardrails)
			require.NotEqual(t, base, mustKey(t, scope, r))
		})
	}
}

// TestKVKeyOfIsTheKVKeyOfTheKey holds KVKeyOf, which builds the prefixed key in one allocation,
// to KVKey(Key(...)) under the default, a custom and a long prefix, and to Key's errors.
func TestKVKeyOfIsTheKVKeyOfTheKey(t *testing.T) {
	scope, err := NewScope(ScopeUser, "acme", "alice")
	require.NoError(t, err)
	long := string(make([]byte, 100))
	for _, prefix := range []string{"", "p:", long} {
		c := New(nil, Options{Prefix: prefix})
		for _, req := range []*Request{chatRequest(), {Endpoint: "embed", Input: []string{"a", "b"}}} {
			key, err := Key(scope, req)
			require.NoError(t, err)
			kv, err := c.KVKeyOf(scope, req)
			require.NoError(t, err)
			require.Equal(t, c.KVKey(key), kv)
		}
		_, err := c.KVKeyOf(Scope{}, chatRequest())
		require.ErrorIs(t, err, ErrNoTenant)
		_, err = c.KVKeyOf(scope, nil)
		require.Error(t, err)
	}
	c := New(nil, Options{})
	req := chatRequest()
	// Fewer allocations than Key alone (whose hex string costs two): the prefixed key is one.
	keyAllocs := testing.AllocsPerRun(100, func() { _, _ = Key(scope, req) })
	require.Less(t, testing.AllocsPerRun(100, func() { _, _ = c.KVKeyOf(scope, req) }), keyAllocs)
}
