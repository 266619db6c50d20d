package seedenv

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// Test key values: distinctive, so that a leak into printed YAML is easy to find.
const (
	clientKey    = "client-key-0123456789abcdef"
	openAIKey    = "sk-test-openai-KEYMATERIAL-1111"
	anthropicKey = "sk-ant-test-KEYMATERIAL-2222"
	googleKey    = "AIza-test-KEYMATERIAL-3333"
)

// env builds a getenv from pairs.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// seedEnv is the seed's `.env.plugins`, plus the client key and a local upstream.
func seedEnv() map[string]string {
	return map[string]string{
		EnvEnabled:       "true",
		EnvPort:          "3109",
		EnvOpenAIKey:     openAIKey,
		EnvOpenAIBaseURL: "http://127.0.0.1:18080/v1",
		EnvDefaultModel:  "gpt-4o-mini",
		EnvUserDaily:     "1.00",
		EnvCacheEnabled:  "true",
		EnvAPIKey:        clientKey,
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func compileEnv(t *testing.T, kv map[string]string) *config.Snapshot {
	t.Helper()
	in, present, err := FromEnv(env(kv))
	require.NoError(t, err)
	require.True(t, present)
	res := compiler.Compile(in)
	require.Empty(t, res.Problems)
	return res.Snapshot
}

func providerOf(t *testing.T, snap *config.Snapshot, name string) config.Provider {
	t.Helper()
	i := slices.IndexFunc(snap.Providers, func(p config.Provider) bool { return p.Name == name })
	require.GreaterOrEqual(t, i, 0, "provider %s in %v", name, snap.Providers)
	return snap.Providers[i]
}

func hasModel(p config.Provider, m string) bool {
	return slices.ContainsFunc(p.Models, func(x config.Model) bool { return x.Name == m })
}

func TestTheSeedsSettingsCompileToAnOpenAIDefaultRouteADailyUserBudgetAndACache(t *testing.T) {
	snap := compileEnv(t, seedEnv())

	require.Len(t, snap.Providers, 1)
	p := providerOf(t, snap, "default/openai")
	require.Equal(t, config.ProviderOpenAI, p.Type)
	require.Equal(t, "http://127.0.0.1:18080/v1", p.BaseURL)
	require.Equal(t, openAIKey, p.APIKey.Reveal())
	require.True(t, hasModel(p, "gpt-4o-mini"))
	require.True(t, hasModel(p, "gpt-4o"), "well-known models of the type are listed too")
	require.True(t, hasModel(p, "text-embedding-3-small"), "embeddings work without a route")

	require.Len(t, snap.Routes, 2)
	r := snap.Routes[0]
	require.Equal(t, "default/default", r.Name)
	require.Equal(t, []string{"default", "gpt-4o-mini"}, r.Match.Models)
	require.Equal(t, []string{"chat", "summarize"}, r.Match.Endpoints)
	require.Equal(t, []config.Target{{Provider: "default/openai", Model: "gpt-4o-mini", Weight: 1}}, r.Targets)
	require.Equal(t, config.Cache{Enabled: true, TTL: time.Hour, Scope: config.CacheScopeOrg}, r.Cache)
	e := snap.Routes[1]
	require.Equal(t, "default/default-embed", e.Name)
	require.Equal(t, config.Match{Models: []string{"default"}, Endpoints: []string{"embed"}}, e.Match)
	require.Equal(t, []config.Target{{Provider: "default/openai", Model: "text-embedding-3-small", Weight: 1}}, e.Targets)

	require.Len(t, snap.Budgets, 1)
	b := snap.Budgets[0]
	require.Equal(t, "default/per-user", b.Name)
	require.Equal(t, config.ScopeUser, b.Scope)
	require.Equal(t, config.AnySubject, b.Subject)
	require.Equal(t, config.ActionBlock, b.Action)
	require.Equal(t, []config.BudgetLimit{{Period: config.PeriodDaily, Limit: money.MustParseUSD("1")}}, b.Limits)

	sum := sha256.Sum256([]byte(clientKey))
	require.Equal(t, []config.APIKey{{Name: "default/ai-api-key", SHA256: hex.EncodeToString(sum[:]), Role: config.RoleAdmin}}, snap.APIKeys)
}

func TestFromEnvBuildsWhatEachSettingDescribes(t *testing.T) {
	base := map[string]string{EnvAPIKey: clientKey}
	tests := map[string]struct {
		env   map[string]string
		check func(t *testing.T, snap *config.Snapshot)
	}{
		"an Anthropic key alone defaults to Claude Haiku on Anthropic": {
			env: with(base, EnvAnthropicKey, anthropicKey),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Equal(t, []config.Target{{Provider: "default/anthropic", Model: "claude-haiku-4-5", Weight: 1}}, snap.Routes[0].Targets)
				require.Equal(t, compiler.DefaultAnthropicBaseURL, providerOf(t, snap, "default/anthropic").BaseURL)
				require.Empty(t, snap.Budgets, "no limit variable, no budget")
				require.False(t, snap.Routes[0].Cache.Enabled)
				require.Len(t, snap.Routes, 1, "Anthropic has no embeddings, so no default embedding route")
			},
		},
		"a Claude default model goes to Anthropic even when OpenAI is configured first": {
			env: with(base, EnvOpenAIKey, openAIKey, EnvAnthropicKey, anthropicKey, EnvDefaultModel, "claude-sonnet-4-5"),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Len(t, snap.Providers, 2)
				require.Equal(t, "default/anthropic", snap.Routes[0].Targets[0].Provider)
				require.Equal(t, []string{"claude-sonnet-4-5", "default"}, snap.Routes[0].Match.Models)
			},
		},
		"a Google key serves Gemini with the service root as base URL": {
			env: with(base, EnvGoogleKey, googleKey, EnvGoogleBaseURL, "http://127.0.0.1:9/"),
			check: func(t *testing.T, snap *config.Snapshot) {
				p := providerOf(t, snap, "default/google")
				require.Equal(t, "http://127.0.0.1:9", p.BaseURL, "a trailing slash is dropped")
				require.Equal(t, "gemini-2.0-flash", snap.Routes[0].Targets[0].Model)
				require.Equal(t, "gemini-embedding-001", snap.Routes[1].Targets[0].Model)
			},
		},
		"Ollama serves its listed models and any default model for free": {
			env: with(base, EnvOllamaBaseURL, "http://localhost:11434", EnvOllamaModels, "mistral, llama3.2,mistral", EnvDefaultModel, "llama3.2"),
			check: func(t *testing.T, snap *config.Snapshot) {
				p := providerOf(t, snap, "default/ollama")
				require.Empty(t, p.APIKey.Reveal())
				require.Equal(t, []string{"llama3.2", "mistral"}, []string{p.Models[0].Name, p.Models[1].Name})
				require.Len(t, p.Models, 2)
				require.Zero(t, p.Models[0].InputPerMillion)
				require.Equal(t, "default/ollama", snap.Routes[0].Targets[0].Provider)
			},
		},
		"an unknown model with OpenAI and Ollama configured goes to Ollama": {
			env: with(base, EnvOpenAIKey, openAIKey, EnvOllamaBaseURL, "http://localhost:11434", EnvDefaultModel, "qwen2.5"),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Equal(t, "default/ollama", snap.Routes[0].Targets[0].Provider)
				require.False(t, hasModel(providerOf(t, snap, "default/openai"), "qwen2.5"))
			},
		},
		"AI_DEFAULT_CHAT_PROVIDER picks the provider when the model name is ambiguous": {
			env: with(base, EnvOpenAIKey, openAIKey, EnvOllamaBaseURL, "http://localhost:11434", EnvDefaultProvider, "ollama", EnvDefaultModel, "gpt-4o-mini"),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Equal(t, "default/ollama", snap.Routes[0].Targets[0].Provider)
			},
		},
		"an Ollama embedding model is marked as one and routed for embeddings": {
			env: with(base, EnvOllamaBaseURL, "http://localhost:11434", EnvDefaultModel, "llama3.2", EnvDefaultEmbed, "nomic-embed-text"),
			check: func(t *testing.T, snap *config.Snapshot) {
				p := providerOf(t, snap, "default/ollama")
				require.Equal(t, []config.Model{{Name: "llama3.2"}, {Name: "nomic-embed-text", Embedding: true}}, p.Models)
				require.Equal(t, "default/default-embed", snap.Routes[1].Name)
				require.Equal(t, "nomic-embed-text", snap.Routes[1].Targets[0].Model)
			},
		},
		"AI_DEFAULT_EMBED_MODEL picks another known embedding model": {
			env: with(base, EnvOpenAIKey, openAIKey, EnvDefaultEmbed, "text-embedding-3-large"),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Equal(t, "text-embedding-3-large", snap.Routes[1].Targets[0].Model)
			},
		},
		"user daily and monthly limits make one budget and the org limit another": {
			env: with(base, EnvOpenAIKey, openAIKey, EnvUserDaily, "1", EnvUserMonthly, "25.00", EnvOrgMonthly, "500"),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Len(t, snap.Budgets, 2)
				org, user := snap.Budgets[0], snap.Budgets[1]
				require.Equal(t, "default/per-org", org.Name)
				require.Equal(t, config.ScopeOrg, org.Scope)
				require.Equal(t, []config.BudgetLimit{{Period: config.PeriodMonthly, Limit: money.MustParseUSD("500")}}, org.Limits)
				require.Equal(t, []config.BudgetLimit{
					{Period: config.PeriodDaily, Limit: money.MustParseUSD("1")},
					{Period: config.PeriodMonthly, Limit: money.MustParseUSD("25")},
				}, user.Limits)
			},
		},
		"the cache TTL and spelled-out booleans are honoured": {
			env: with(base, EnvOpenAIKey, openAIKey, EnvCacheEnabled, "Yes", EnvCacheTTL, "10m", EnvEnabled, "1"),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Equal(t, 10*time.Minute, snap.Routes[0].Cache.TTL)
			},
		},
		"values are trimmed": {
			env: with(base, EnvOpenAIKey, " "+openAIKey+"\n", EnvUserDaily, " 2.50 "),
			check: func(t *testing.T, snap *config.Snapshot) {
				require.Equal(t, openAIKey, providerOf(t, snap, "default/openai").APIKey.Reveal())
				require.Equal(t, money.MustParseUSD("2.5"), snap.Budgets[0].Limits[0].Limit)
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.check(t, compileEnv(t, tc.env))
		})
	}
}

func TestFromEnvRefusesBadSettingsNamingTheVariable(t *testing.T) {
	base := seedEnv()
	tests := map[string]struct {
		env  map[string]string
		want []string
	}{
		"a daily limit that is not an amount":   {with(base, EnvUserDaily, "abc"), []string{EnvUserDaily, `"abc"`}},
		"a monthly limit with a currency sign":  {with(base, EnvUserMonthly, "$25"), []string{EnvUserMonthly}},
		"a negative org limit":                  {with(base, EnvOrgMonthly, "-5"), []string{EnvOrgMonthly}},
		"a port that is not a number":           {with(base, EnvPort, "http"), []string{EnvPort}},
		"a port out of range":                   {with(base, EnvPort, "70000"), []string{EnvPort}},
		"a switch that is not a boolean":        {with(base, EnvEnabled, "maybe"), []string{EnvEnabled}},
		"a cache switch that is not a boolean":  {with(base, EnvCacheEnabled, "sometimes"), []string{EnvCacheEnabled}},
		"a cache TTL that is not a duration":    {with(base, EnvCacheTTL, "ten minutes"), []string{EnvCacheTTL}},
		"a cache TTL without the cache":         {with(base, EnvCacheEnabled, "false", EnvCacheTTL, "5m"), []string{EnvCacheTTL, EnvCacheEnabled}},
		"no client key":                         {with(base, EnvAPIKey, ""), []string{EnvAPIKey, "openssl rand"}},
		"a short client key":                    {with(base, EnvAPIKey, "secret"), []string{EnvAPIKey, "16"}},
		"the client key reusing a provider key": {with(base, EnvAPIKey, openAIKey), []string{EnvAPIKey, EnvOpenAIKey}},
		"no provider":                           {with(base, EnvOpenAIKey, "", EnvOpenAIBaseURL, ""), []string{"no provider", EnvOpenAIKey, EnvOllamaBaseURL}},
		"a base URL without its key":            {with(base, EnvAnthropicURL, "http://127.0.0.1:1"), []string{EnvAnthropicURL, EnvAnthropicKey}},
		"a base URL that is not a URL":          {with(base, EnvOpenAIBaseURL, "localhost:8080"), []string{EnvOpenAIBaseURL}},
		"a default model no provider knows":     {with(base, EnvDefaultModel, "gpt-9-ultra"), []string{EnvDefaultModel, "gpt-9-ultra", EnvDefaultProvider}},
		"a default model the named provider does not price": {
			with(base, EnvDefaultProvider, "openai", EnvDefaultModel, "claude-haiku-4-5"), []string{EnvDefaultModel, "openai"},
		},
		"a default embedding model that is a chat model": {with(base, EnvDefaultEmbed, "gpt-4o"), []string{EnvDefaultEmbed, "gpt-4o"}},
		"a default provider that does not exist":         {with(base, EnvDefaultProvider, "azure"), []string{EnvDefaultProvider, "azure"}},
		"a default provider that is not configured":      {with(base, EnvDefaultProvider, "google"), []string{EnvDefaultProvider, EnvGoogleKey}},
		"Ollama models without the Ollama server":        {with(base, EnvOllamaModels, "llama3.2"), []string{EnvOllamaModels, EnvOllamaBaseURL}},
		"Ollama alone without any model":                 {map[string]string{EnvAPIKey: clientKey, EnvOllamaBaseURL: "http://localhost:11434"}, []string{EnvDefaultModel}},
		"Ollama with no model of its own beside OpenAI":  {with(base, EnvOllamaBaseURL, "http://localhost:11434"), []string{EnvOllamaBaseURL, EnvOllamaModels}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, present, err := FromEnv(env(tc.env))
			require.Error(t, err)
			require.True(t, present)
			require.Empty(t, in.Providers)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			for _, k := range []string{openAIKey, anthropicKey, clientKey} {
				require.NotContains(t, err.Error(), k, "errors never carry key material")
			}
		})
	}
}

func TestFromEnvWhenDisabledOrUnset(t *testing.T) {
	tests := map[string]struct {
		env         map[string]string
		wantPresent bool
		wantErr     error
	}{
		"no variable at all is not the quick start":        {map[string]string{}, false, nil},
		"a port alone does not switch the quick start on":  {map[string]string{EnvPort: "8080"}, false, nil},
		"whitespace-only values count as unset":            {map[string]string{EnvOpenAIKey: "  "}, false, nil},
		"disabled refuses to start even with a full setup": {with(seedEnv(), EnvEnabled, "false"), true, ErrDisabled},
		"disabled alone refuses to start":                  {map[string]string{EnvEnabled: "off"}, true, ErrDisabled},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, present, err := FromEnv(env(tc.env))
			require.Equal(t, tc.wantPresent, present)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
				require.Contains(t, err.Error(), EnvEnabled)
			}
			require.Empty(t, in.Providers)
			require.Empty(t, in.Secrets)
		})
	}
}

func TestListenAddr(t *testing.T) {
	tests := map[string]struct {
		port, want string
	}{
		"empty means the contract port":     {"", ":3109"},
		"a port is used on every interface": {"8080", ":8080"},
		"surrounding space is ignored":      {" 9000 ", ":9000"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, ListenAddr(env(map[string]string{EnvPort: tc.port})))
		})
	}
}

// writeAndLoad writes manifests to a temporary folder and compiles it as --manifests would.
func writeAndLoad(t *testing.T, y []byte) compiler.Result {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ai.yaml"), y, 0o600))
	in, err := compiler.LoadDir(dir)
	require.NoError(t, err)
	return compiler.Compile(in)
}

func TestManifestsReloadToTheSameSnapshot(t *testing.T) {
	envs := map[string]map[string]string{
		"the seed's settings": seedEnv(),
		"every provider, every limit and a cache TTL": with(seedEnv(),
			EnvAnthropicKey, anthropicKey, EnvGoogleKey, googleKey, EnvOllamaBaseURL, "http://localhost:11434",
			EnvOllamaModels, "llama3.2", EnvUserMonthly, "25", EnvOrgMonthly, "1000.50", EnvCacheTTL, "15m"),
	}
	for name, kv := range envs {
		t.Run(name, func(t *testing.T) {
			in, _, err := FromEnv(env(kv))
			require.NoError(t, err)
			want := compiler.Compile(in).Snapshot

			y, err := Manifests(in, ManifestOptions{IncludeSecrets: true})
			require.NoError(t, err)
			res := writeAndLoad(t, y)
			require.Empty(t, res.Problems)
			require.Equal(t, want.Hash, res.Snapshot.Hash)
			require.Equal(t, want, res.Snapshot)
			require.Contains(t, string(y), "Do not commit")
		})
	}
}

func TestManifestsWithoutSecretsNeverPrintKeysAndSayHowToFillThem(t *testing.T) {
	kv := with(seedEnv(), EnvAnthropicKey, anthropicKey, EnvGoogleKey, googleKey)
	in, _, err := FromEnv(env(kv))
	require.NoError(t, err)

	y, err := Manifests(in, ManifestOptions{})
	require.NoError(t, err)
	out := string(y)
	for _, k := range []string{openAIKey, anthropicKey, googleKey, clientKey} {
		require.NotContains(t, out, k)
	}
	for _, v := range []string{EnvOpenAIKey, EnvAnthropicKey, EnvGoogleKey, EnvAPIKey} {
		require.Contains(t, out, "$"+v, "the comment names the variable to fill the Secret from")
	}
	require.Contains(t, out, "kubectl -n default create secret generic openai-api-key")
	require.NotContains(t, out, "status:")
	require.NotContains(t, out, "creationTimestamp")

	// The output still loads, and the compiler refuses the empty placeholders by name rather
	// than serving with an empty key.
	res := writeAndLoad(t, y)
	var missing []string
	for _, p := range res.Problems {
		if p.Reason == aiv1alpha1.ReasonSecretKeyMissing {
			missing = append(missing, p.Kind+" "+p.Name)
		}
	}
	slices.Sort(missing)
	require.Equal(t, []string{"AIProvider anthropic", "AIProvider google", "AIProvider openai", "Secret ai-api-key"}, missing)
	require.Empty(t, res.Snapshot.APIKeys)
}

func TestManifestsIsStableAndOrdered(t *testing.T) {
	in, _, err := FromEnv(env(with(seedEnv(), EnvAnthropicKey, anthropicKey, EnvOrgMonthly, "100")))
	require.NoError(t, err)
	first, err := Manifests(in, ManifestOptions{})
	require.NoError(t, err)
	slices.Reverse(in.Providers)
	slices.Reverse(in.Secrets)
	slices.Reverse(in.Budgets)
	second, err := Manifests(in, ManifestOptions{})
	require.NoError(t, err)
	require.Equal(t, string(first), string(second), "the order of the input does not change the output")

	var kinds []string
	for _, line := range strings.Split(string(first), "\n") {
		if k, ok := strings.CutPrefix(line, "kind: "); ok {
			kinds = append(kinds, k)
		}
	}
	require.Equal(t, []string{"Secret", "Secret", "Secret", "AIProvider", "AIProvider", "AIRoutePolicy", "AIRoutePolicy", "AIBudget", "AIBudget"}, kinds)
}

func TestTheRouteTableServesRequestsWithoutAModelFromTheDefaultRoutes(t *testing.T) {
	table := route.NewTable(compileEnv(t, seedEnv()))
	tests := map[string]struct {
		req          route.Request
		wantRoute    string // "" = implicit route to the provider listing the model
		wantTarget   string
		wantNotFound bool
	}{
		"a chat without a model":          {route.Request{Endpoint: route.EndpointChat}, "default/default", "gpt-4o-mini", false},
		"a chat naming the default model": {route.Request{Endpoint: route.EndpointChat, Model: "gpt-4o-mini"}, "default/default", "gpt-4o-mini", false},
		"a summary without a model":       {route.Request{Endpoint: route.EndpointSummarize}, "default/default", "gpt-4o-mini", false},
		"an embedding without a model":    {route.Request{Endpoint: route.EndpointEmbed}, "default/default-embed", "text-embedding-3-small", false},
		"a chat naming another known model goes straight to its provider": {
			route.Request{Endpoint: route.EndpointChat, Model: "gpt-4o"}, "", "gpt-4o", false,
		},
		"a model nobody serves": {route.Request{Endpoint: route.EndpointChat, Model: "llama3.2"}, "", "", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := table.Resolve(tc.req)
			if tc.wantNotFound {
				require.ErrorIs(t, err, route.ErrModelNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantRoute, res.Route.Name)
			require.Equal(t, tc.wantRoute == "", res.Implicit)
			require.Len(t, res.Targets, 1)
			require.Equal(t, "default/openai", res.Targets[0].Provider)
			require.Equal(t, tc.wantTarget, res.Targets[0].Model)
		})
	}
}

// FuzzFromEnv feeds arbitrary values to the variables that take free text: FromEnv must never
// panic, and whatever it accepts must compile cleanly and survive the trip through Manifests.
func FuzzFromEnv(f *testing.F) {
	f.Add("gpt-4o-mini", "1.00", "", "true", "1h", "http://127.0.0.1:1/v1", "llama3.2", "3109")
	f.Add("claude-haiku-4-5", "abc", "25", "yes", "", "", "", "")
	f.Add("", "0.000000001", "9000000000", "off", "10m", "http://[::1]:8080", "a,b,,c", "0")
	f.Fuzz(func(t *testing.T, model, daily, monthly, cache, ttl, baseURL, ollamaModels, port string) {
		kv := with(seedEnv(), EnvDefaultModel, model, EnvUserDaily, daily, EnvUserMonthly, monthly,
			EnvCacheEnabled, cache, EnvCacheTTL, ttl, EnvOpenAIBaseURL, baseURL, EnvOllamaModels, ollamaModels, EnvPort, port)
		if ollamaModels != "" {
			kv[EnvOllamaBaseURL] = "http://localhost:11434"
		}
		in, present, err := FromEnv(env(kv))
		require.True(t, present)
		if err != nil {
			require.NotContains(t, err.Error(), openAIKey)
			return
		}
		res := compiler.Compile(in)
		require.Empty(t, res.Problems)
		y, err := Manifests(in, ManifestOptions{IncludeSecrets: true})
		require.NoError(t, err)
		require.Equal(t, res.Snapshot.Hash, writeAndLoad(t, y).Snapshot.Hash)
	})
}

// A value that is not UTF-8 would not survive the trip through Manifests (YAML holds only UTF-8):
// it is refused by name, without quoting the value, which may be a key.
func TestFromEnvRefusesValuesThatAreNotUTF8(t *testing.T) {
	for _, k := range []string{EnvOpenAIBaseURL, EnvDefaultModel, EnvOpenAIKey} {
		_, present, err := FromEnv(env(with(seedEnv(), k, "http://\x88"+openAIKey)))
		require.True(t, present)
		require.EqualError(t, err, k+" is not valid UTF-8 text")
	}
}
