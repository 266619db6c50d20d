package providers

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/pricing"
)

// Interface guards: a provider that stops satisfying the contract fails to compile.
var (
	_ Provider  = (*openAI)(nil)
	_ Moderator = (*openAIModerator)(nil)
	_ Provider  = (*anthropic)(nil)
	_ Provider  = (*google)(nil)
	_ Provider  = (*ollama)(nil)
	_ Provider  = (*mock)(nil)
)

// Default base URLs, written as each provider's own SDK writes them.
const (
	DefaultOpenAIBaseURL    = "https://api.openai.com/v1"
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultGoogleBaseURL    = "https://generativelanguage.googleapis.com"
	DefaultOllamaBaseURL    = "http://localhost:11434"
)

// New builds the adapter for one compiled AIProvider. hc is shared by every provider (see
// [NewHTTPClient]); nil uses a fresh pooled client. Only the openai type implements
// [Moderator]; openai-compatible servers rarely offer /moderations, so it is not assumed.
func New(p config.Provider, hc *http.Client) (Provider, error) {
	if hc == nil {
		hc = NewHTTPClient(0)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	b := base{name: p.Name, baseURL: strings.TrimRight(p.BaseURL, "/"), apiKey: p.APIKey.Reveal(), timeout: timeout, hc: hc}
	def := func(u string) {
		if b.baseURL == "" {
			b.baseURL = u
		}
	}
	switch p.Type {
	case config.ProviderOpenAI:
		def(DefaultOpenAIBaseURL)
		return &openAIModerator{*newOpenAI(b, true)}, nil
	case config.ProviderOpenAICompatible:
		if b.baseURL == "" {
			return nil, fmt.Errorf("failed to build provider %s: openai-compatible needs a baseURL", p.Name)
		}
		return newOpenAI(b, false), nil
	case config.ProviderAnthropic:
		def(DefaultAnthropicBaseURL)
		return newAnthropic(b, outputCaps(p)), nil
	case config.ProviderGoogle:
		def(DefaultGoogleBaseURL)
		return &google{base: b}, nil
	case config.ProviderOllama:
		def(DefaultOllamaBaseURL)
		return newOllama(b), nil
	case config.ProviderMock:
		m := config.Mock{}
		if p.Mock != nil {
			m = *p.Mock
		}
		return NewMock(p.Name, m), nil
	}
	return nil, fmt.Errorf("failed to build provider %s: unknown type %q", p.Name, p.Type)
}

// outputCaps maps model → max output tokens from the snapshot, falling back to the built-in
// table; Anthropic needs one on every request.
func outputCaps(p config.Provider) map[string]int64 {
	caps := map[string]int64{}
	for _, m := range p.Models {
		if m.MaxOutputTokens > 0 {
			caps[m.Name] = m.MaxOutputTokens
		} else if pr, ok := pricing.Lookup(p.Type, m.Name); ok && pr.MaxOutputTokens > 0 {
			caps[m.Name] = pr.MaxOutputTokens
		}
	}
	return caps
}
