// Package runtime compiles a [config.Snapshot] into what requests need at hand — provider
// clients, a route resolver, API-key and model indexes — and holds the current one behind an
// atomic pointer. A request loads the pointer once and keeps that [Runtime] until it ends, so a
// swap in the middle of a stream never mixes two configurations.
package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
)

// ProviderFactory builds the client of one configured provider. The data plane passes one
// pooled *http.Client to every provider so that keep-alive connections are shared.
type ProviderFactory func(p config.Provider, hc *http.Client) (providers.Provider, error)

// Options are what [Build] needs besides the snapshot.
type Options struct {
	// NewProvider builds provider clients; required.
	NewProvider ProviderFactory
	// HTTPClient is shared by every provider client.
	HTTPClient *http.Client
	// DefaultTimeout bounds one upstream call when neither the route nor the provider sets one.
	DefaultTimeout time.Duration
}

// ModelRef is a model as served by one provider.
type ModelRef struct {
	Provider *config.Provider
	Model    *config.Model
	Client   providers.Provider
}

// Runtime is one compiled snapshot. It is immutable once built and shared by every request that
// loaded it.
type Runtime struct {
	// Snapshot is the configuration this runtime was built from; never modified.
	Snapshot *config.Snapshot
	// LoadedAt is when this runtime was swapped in.
	LoadedAt time.Time
	// Routes matches requests to policies; compiled once per snapshot.
	Routes *route.Table

	opts      Options
	providers map[string]*providerEntry
	keys      map[[32]byte]*config.APIKey
	// models maps an upstream model name to every provider listing it, in provider-name order.
	models map[string][]ModelRef
}

type providerEntry struct {
	spec   *config.Provider
	client providers.Provider
	models map[string]*config.Model
}

// Build validates snap and compiles it. Any error refuses the whole snapshot: the caller keeps
// the previous runtime.
func Build(snap *config.Snapshot, opts Options) (*Runtime, error) {
	if snap == nil {
		return nil, errors.New("snapshot is nil")
	}
	if snap.Version != config.SchemaVersion {
		return nil, fmt.Errorf("snapshot version %q is not %q", snap.Version, config.SchemaVersion)
	}
	if opts.NewProvider == nil {
		return nil, errors.New("no provider factory configured")
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 120 * time.Second
	}
	rt := &Runtime{
		Snapshot:  snap,
		opts:      opts,
		providers: make(map[string]*providerEntry, len(snap.Providers)),
		keys:      make(map[[32]byte]*config.APIKey, len(snap.APIKeys)),
		models:    make(map[string][]ModelRef),
	}
	for i := range snap.Providers {
		p := &snap.Providers[i]
		if _, dup := rt.providers[p.Name]; dup {
			return nil, fmt.Errorf("provider %s appears twice", p.Name)
		}
		client, err := opts.NewProvider(*p, opts.HTTPClient)
		if err != nil {
			return nil, fmt.Errorf("failed to build provider %s: %w", p.Name, err)
		}
		e := &providerEntry{spec: p, client: client, models: make(map[string]*config.Model, len(p.Models))}
		for j := range p.Models {
			m := &p.Models[j]
			e.models[m.Name] = m
			rt.models[m.Name] = append(rt.models[m.Name], ModelRef{Provider: p, Model: m, Client: client})
		}
		rt.providers[p.Name] = e
	}
	for i := range snap.APIKeys {
		k := &snap.APIKeys[i]
		raw, err := hex.DecodeString(k.SHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("api key %s: sha256 is not 64 hex digits", k.Name)
		}
		var h [32]byte
		copy(h[:], raw)
		rt.keys[h] = k
	}
	for i := range snap.Routes {
		r := &snap.Routes[i]
		for _, t := range r.Targets {
			if _, ok := rt.providers[t.Provider]; !ok {
				return nil, fmt.Errorf("route %s: target provider %s is not in the snapshot", r.Name, t.Provider)
			}
		}
	}
	rt.Routes = route.NewTable(snap)
	return rt, nil
}

// Authenticate returns the client key whose hash matches token. The token is hashed first, so
// the map lookup sees only a digest: the map's key is the decoded SHA-256 of the stored hex
// (Build), so a hit already means the digests are equal, and comparing them again in constant
// time would add nothing. Whatever timing the lookup leaks is about the digest of the caller's
// own token, which tells nothing about any stored key (finding a token with a chosen digest
// prefix is a preimage search).
func (rt *Runtime) Authenticate(token string) (*config.APIKey, bool) {
	if token == "" {
		return nil, false
	}
	k, ok := rt.keys[sha256.Sum256([]byte(token))]
	return k, ok
}

// Provider returns the client and spec of a provider by name.
func (rt *Runtime) Provider(name string) (providers.Provider, *config.Provider, bool) {
	e, ok := rt.providers[name]
	if !ok {
		return nil, nil, false
	}
	return e.client, e.spec, true
}

// Model returns a provider's model spec (prices, context window).
func (rt *Runtime) Model(provider, model string) (*config.Model, bool) {
	e, ok := rt.providers[provider]
	if !ok {
		return nil, false
	}
	m, ok := e.models[model]
	return m, ok
}

// ModelsNamed returns every provider that lists model.
func (rt *Runtime) ModelsNamed(model string) []ModelRef { return rt.models[model] }

// ModelNames lists every servable name: provider models and route aliases, sorted and unique,
// each with the provider that owns it ("" for an alias).
func (rt *Runtime) ModelNames() []ModelName {
	seen := map[string]bool{}
	var out []ModelName
	for i := range rt.Snapshot.Providers {
		p := &rt.Snapshot.Providers[i]
		for _, m := range p.Models {
			if !seen[m.Name] {
				seen[m.Name] = true
				out = append(out, ModelName{Name: m.Name, OwnedBy: p.Name, Embedding: m.Embedding})
			}
		}
	}
	for _, r := range rt.Snapshot.Routes {
		for _, m := range r.Match.Models {
			if !seen[m] {
				seen[m] = true
				out = append(out, ModelName{Name: m, OwnedBy: "route " + r.Name})
			}
		}
	}
	slices.SortFunc(out, func(a, b ModelName) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// ModelName is one entry of /v1/models.
type ModelName struct {
	Name      string
	OwnedBy   string
	Embedding bool
}

// Timeout returns the bound of one upstream call to target under route (route beats provider
// beats the data plane default).
func (rt *Runtime) Timeout(route *config.Route, provider string) time.Duration {
	if route != nil && route.Timeout > 0 {
		return route.Timeout
	}
	if e, ok := rt.providers[provider]; ok && e.spec.Timeout > 0 {
		return e.spec.Timeout
	}
	return rt.opts.DefaultTimeout
}
