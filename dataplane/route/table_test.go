package route

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/money"
)

func provider(name, typ string, models ...config.Model) config.Provider {
	return config.Provider{Name: name, Type: typ, Models: models}
}

func model(name string, in, out money.Nanos) config.Model {
	return config.Model{Name: name, InputPerMillion: in, OutputPerMillion: out}
}

func routeTo(name string, match config.Match, targets ...config.Target) config.Route {
	return config.Route{Name: name, Match: match, Targets: targets}
}

func target(provider, model string) config.Target {
	return config.Target{Provider: provider, Model: model, Weight: 1}
}

func matchingSnapshot() *config.Snapshot {
	return &config.Snapshot{
		Providers: []config.Provider{
			provider("ns/anthropic", "anthropic", model("claude", 3, 15)),
			provider("ns/openai", "openai", model("gpt-4o-mini", 150, 600), model("shared", 1, 1)),
			provider("ns/zeta", "openai-compatible", model("shared", 1, 1), model("only-zeta", 1, 1)),
		},
		Routes: []config.Route{
			routeTo("ns/a-acme-alice", config.Match{Models: []string{"gpt"}, Orgs: []string{"acme"}, Users: []string{"alice"}}, target("ns/anthropic", "claude")),
			routeTo("ns/b-acme", config.Match{Models: []string{"gpt"}, Orgs: []string{"acme"}}, target("ns/openai", "shared")),
			routeTo("ns/c-embed", config.Match{Endpoints: []string{"embed"}}, target("ns/zeta", "only-zeta")),
			routeTo("ns/d-gpt", config.Match{Models: []string{"gpt", "default"}}, target("ns/openai", "gpt-4o-mini")),
			routeTo("ns/e-broken", config.Match{Models: []string{"broken"}}, target("ns/missing", "x")),
		},
	}
}

func TestResolveMatchesTheFirstAcceptingRouteInSnapshotOrder(t *testing.T) {
	table := NewTable(matchingSnapshot())
	cases := map[string]struct {
		req          Request
		wantRoute    string
		wantImplicit string // provider/model of the synthesized target
		wantErr      error
	}{
		"a route naming org and user wins for that user": {
			req: Request{Model: "gpt", Endpoint: EndpointChat, Org: "acme", User: "alice"}, wantRoute: "ns/a-acme-alice",
		},
		"another user of the org falls to the org route": {
			req: Request{Model: "gpt", Endpoint: EndpointChat, Org: "acme", User: "bob"}, wantRoute: "ns/b-acme",
		},
		"another org falls to the model route": {
			req: Request{Model: "gpt", Endpoint: EndpointChat, Org: "globex", User: "alice"}, wantRoute: "ns/d-gpt",
		},
		"an endpoint-only route catches every model on that endpoint before later routes": {
			req: Request{Model: "gpt", Endpoint: EndpointEmbed, Org: "globex"}, wantRoute: "ns/c-embed",
		},
		"an empty model is matched as the default alias": {
			req: Request{Model: "", Endpoint: EndpointChat}, wantRoute: "ns/d-gpt",
		},
		"the default alias matches like any model name": {
			req: Request{Model: "default", Endpoint: EndpointSummarize}, wantRoute: "ns/d-gpt",
		},
		"a model no route matches is served by the one provider listing it": {
			req: Request{Model: "claude", Endpoint: EndpointChat}, wantImplicit: "ns/anthropic/claude",
		},
		"a model listed by several providers goes to the first by provider name": {
			req: Request{Model: "shared", Endpoint: EndpointChat}, wantImplicit: "ns/openai/shared",
		},
		"a model nobody serves is not found": {
			req: Request{Model: "nope", Endpoint: EndpointChat}, wantErr: ErrModelNotFound,
		},
		"a matched route whose providers are all missing has no usable target": {
			req: Request{Model: "broken", Endpoint: EndpointChat}, wantErr: ErrNoUsableTarget,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := table.Resolve(tc.req)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.wantImplicit != "" {
				require.True(t, res.Implicit)
				require.Len(t, res.Targets, 1)
				require.Equal(t, tc.wantImplicit, res.Targets[0].Key)
				return
			}
			require.False(t, res.Implicit)
			require.Equal(t, tc.wantRoute, res.Route.Name)
		})
	}
}

func TestResolveCarriesTargetPricesFromTheSnapshot(t *testing.T) {
	snap := &config.Snapshot{
		Providers: []config.Provider{provider("ns/p", "openai", model("priced", 10, 20))},
		Routes:    []config.Route{routeTo("ns/r", config.Match{}, target("ns/p", "priced"), target("ns/p", "unlisted"))},
	}
	res, err := NewTable(snap).Resolve(Request{Model: "anything", Endpoint: EndpointChat})
	require.NoError(t, err)
	require.Len(t, res.Targets, 2)
	require.Equal(t, Target{Provider: "ns/p", ProviderType: "openai", Model: "priced", Weight: 1, Key: "ns/p/priced",
		Priced: true, InputPerMillion: 10, OutputPerMillion: 20}, res.Targets[0])
	require.False(t, res.Targets[1].Priced)
}

func TestResolveOnANilSnapshotFindsNothing(t *testing.T) {
	_, err := NewTable(nil).Resolve(Request{Model: "x"})
	require.ErrorIs(t, err, ErrModelNotFound)
}

// bigSnapshot has n routes, each for its own model and org, plus a catch-all at the end, so a
// scan would touch every route for most requests.
func bigSnapshot(n int) *config.Snapshot {
	snap := &config.Snapshot{Providers: []config.Provider{provider("ns/p", "openai", model("m", 1, 1))}}
	for i := range n - 1 {
		snap.Routes = append(snap.Routes, routeTo(fmt.Sprintf("ns/r%04d", i),
			config.Match{Models: []string{fmt.Sprintf("model-%d", i)}, Orgs: []string{fmt.Sprintf("org-%d", i)}, Endpoints: []string{EndpointChat}},
			target("ns/p", "m")))
	}
	snap.Routes = append(snap.Routes, routeTo("ns/zz-catch-all", config.Match{}, target("ns/p", "m")))
	return snap
}

func TestResolveOnAThousandRoutesFindsTheSameRouteAsAScan(t *testing.T) {
	table := NewTable(bigSnapshot(1000))
	res, err := table.Resolve(Request{Model: "model-998", Endpoint: EndpointChat, Org: "org-998"})
	require.NoError(t, err)
	require.Equal(t, "ns/r0998", res.Route.Name)
	res, err = table.Resolve(Request{Model: "model-998", Endpoint: EndpointChat, Org: "org-1"})
	require.NoError(t, err)
	require.Equal(t, "ns/zz-catch-all", res.Route.Name)
}

func BenchmarkResolve1000Routes(b *testing.B) {
	table := NewTable(bigSnapshot(1000))
	reqs := []Request{
		{Model: "model-998", Endpoint: EndpointChat, Org: "org-998", User: "u"},
		{Model: "model-3", Endpoint: EndpointChat, Org: "org-42", User: "u"},
		{Model: "unknown", Endpoint: EndpointEmbed, Org: "x", User: "u"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := table.Resolve(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewTable1000Routes(b *testing.B) {
	snap := bigSnapshot(1000)
	b.ReportAllocs()
	for b.Loop() {
		NewTable(snap)
	}
}
