package config

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/money"
)

// The snapshot's hash is the SHA-256 of its encoding by encoding/json, so every replica must
// reproduce those exact bytes: of a snapshot it decoded (to verify the hash) and of one it is
// handed (runtime.Holder.Apply verifies again, as the snapshot may have been changed since).
// encoding/json finds the fields by reflection and took ~10 ms here for a snapshot of 10 000
// budgets; appendSnapshot writes the same bytes field by field in a fraction of that.
//
// The contract is encoding/json's output and nothing else: canonical_test.go compares the two on
// snapshots whose every field (found by reflection, so a field added later is covered) is set to
// awkward values, nil and empty alike. A field added to the types of snapshot.go fails that test
// until appendSnapshot writes it, and decode_test.go until parseSnapshot reads it. Strings that
// need escaping are handed to encoding/json itself, so its escaping rules (HTML characters,
// U+2028, invalid UTF-8) are the only ones by construction.

// appendSnapshot appends the encoding/json encoding of s, with hash in place of s.Hash.
func appendSnapshot(b []byte, s *Snapshot, hash string) []byte {
	b = append(b, `{"version":`...)
	b = appendString(b, s.Version)
	b = append(b, `,"hash":`...)
	b = appendString(b, hash)
	b = append(b, `,"providers":`...)
	b = appendList(b, s.Providers, appendProvider)
	b = append(b, `,"budgets":`...)
	b = appendList(b, s.Budgets, appendBudget)
	b = append(b, `,"routes":`...)
	b = appendList(b, s.Routes, appendRoute)
	b = append(b, `,"apiKeys":`...)
	b = appendList(b, s.APIKeys, appendAPIKey)
	return append(b, '}')
}

func appendProvider(b []byte, p *Provider) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, p.Name)
	b = append(b, `,"type":`...)
	b = appendString(b, p.Type)
	b = append(b, `,"baseURL":`...)
	b = appendString(b, p.BaseURL)
	b = appendStringOmitEmpty(b, `,"apiKey":`, string(p.APIKey))
	b = appendIntOmitEmpty(b, `,"timeout":`, int64(p.Timeout))
	b = append(b, `,"limits":{`...)
	o := object{b: b}
	o.int(`"requestsPerMinute":`, p.Limits.RequestsPerMinute)
	o.int(`"tokensPerMinute":`, p.Limits.TokensPerMinute)
	b = append(o.b, `},"models":`...)
	b = appendList(b, p.Models, appendModel)
	if m := p.Mock; m != nil {
		b = append(b, `,"mock":{`...)
		o := object{b: b}
		if m.Reply != "" {
			o.key(`"reply":`)
			o.b = appendString(o.b, m.Reply)
		}
		o.int(`"completionTokens":`, m.CompletionTokens)
		o.int(`"latency":`, int64(m.Latency))
		b = append(o.b, '}')
	}
	return append(b, '}')
}

func appendModel(b []byte, m *Model) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, m.Name)
	b = appendInt(b, `,"inputPerMillion":`, int64(m.InputPerMillion))
	b = appendInt(b, `,"outputPerMillion":`, int64(m.OutputPerMillion))
	b = appendInt(b, `,"cachedInputPerMillion":`, int64(m.CachedInputPerMillion))
	b = appendIntOmitEmpty(b, `,"contextWindow":`, m.ContextWindow)
	b = appendIntOmitEmpty(b, `,"maxOutputTokens":`, m.MaxOutputTokens)
	if m.Embedding {
		b = append(b, `,"embedding":true`...)
	}
	return append(b, '}')
}

func appendBudget(b []byte, x *Budget) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, x.Name)
	b = append(b, `,"scope":`...)
	b = appendString(b, x.Scope)
	b = append(b, `,"subject":`...)
	b = appendString(b, x.Subject)
	b = append(b, `,"limits":`...)
	b = appendList(b, x.Limits, appendBudgetLimit)
	b = append(b, `,"action":`...)
	b = appendString(b, x.Action)
	b = appendStringOmitEmpty(b, `,"downgradeTo":`, x.DowngradeTo)
	if len(x.AlertThresholds) > 0 {
		b = append(b, `,"alertThresholds":[`...)
		for i, t := range x.AlertThresholds {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(t), 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"timeZone":`...)
	b = appendString(b, x.TimeZone)
	return append(b, '}')
}

func appendBudgetLimit(b []byte, l *BudgetLimit) []byte {
	b = append(b, `{"period":`...)
	b = appendString(b, l.Period)
	b = appendInt(b, `,"limit":`, int64(l.Limit))
	return append(b, '}')
}

func appendRoute(b []byte, r *Route) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, r.Name)
	b = append(b, `,"match":{`...)
	o := object{b: b}
	o.strings(`"models":`, r.Match.Models)
	o.strings(`"endpoints":`, r.Match.Endpoints)
	o.strings(`"orgs":`, r.Match.Orgs)
	o.strings(`"users":`, r.Match.Users)
	b = o.b
	b = append(b, `},"targets":`...)
	b = appendList(b, r.Targets, appendTarget)
	b = append(b, `,"strategy":`...)
	b = appendString(b, r.Strategy)
	b = appendInt(b, `,"retries":{"attempts":`, int64(r.Retries.Attempts))
	b = appendIntOmitEmpty(b, `,"backoff":`, int64(r.Retries.Backoff))
	b = append(b, '}')
	b = appendIntOmitEmpty(b, `,"timeout":`, int64(r.Timeout))
	if len(r.RateLimits) > 0 {
		b = append(b, `,"rateLimits":`...)
		b = appendList(b, r.RateLimits, appendRateLimit)
	}
	b = append(b, `,"cache":{"enabled":`...)
	b = strconv.AppendBool(b, r.Cache.Enabled)
	b = appendIntOmitEmpty(b, `,"ttl":`, int64(r.Cache.TTL))
	b = appendStringOmitEmpty(b, `,"scope":`, r.Cache.Scope)
	b = append(b, `},"guardrails":{`...)
	o = object{b: b}
	if p := r.Guardrails.PII; p != nil {
		o.key(`"pii":{"action":`)
		o.b = appendString(o.b, p.Action)
		o.b = appendStringsOmitEmpty(o.b, `,"types":`, p.Types)
		o.b = appendStringsOmitEmpty(o.b, `,"applyTo":`, p.ApplyTo)
		o.b = append(o.b, '}')
	}
	if t := r.Guardrails.Toxicity; t != nil {
		o.key(`"toxicity":{"action":`)
		o.b = appendString(o.b, t.Action)
		o.b = appendInt(o.b, `,"threshold":`, int64(t.Threshold))
		o.b = appendStringOmitEmpty(o.b, `,"provider":`, t.Provider)
		o.b = appendStringOmitEmpty(o.b, `,"model":`, t.Model)
		o.b = append(o.b, '}')
	}
	if g := r.Guardrails.Output; g != nil {
		o.key(`"output":{`)
		inner := object{b: o.b}
		if g.JSONSchema != "" {
			inner.key(`"jsonSchema":`)
			inner.b = appendString(inner.b, g.JSONSchema)
		}
		inner.int(`"maxLength":`, g.MaxLength)
		inner.strings(`"bannedPhrases":`, g.BannedPhrases)
		o.b = append(inner.b, '}')
	}
	o.b = append(o.b, `},"promptOptimization":{`...)
	o.written = false
	if r.PromptOptimization.NormalizeWhitespace {
		o.key(`"normalizeWhitespace":true`)
	}
	o.int(`"maxInputTokens":`, r.PromptOptimization.MaxInputTokens)
	return append(o.b, `}}`...)
}

func appendTarget(b []byte, t *Target) []byte {
	b = append(b, `{"provider":`...)
	b = appendString(b, t.Provider)
	b = append(b, `,"model":`...)
	b = appendString(b, t.Model)
	b = appendInt(b, `,"weight":`, int64(t.Weight))
	b = appendInt(b, `,"priority":`, int64(t.Priority))
	return append(b, '}')
}

func appendRateLimit(b []byte, l *RateLimit) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, l.Name)
	b = append(b, `,"per":`...)
	b = appendString(b, l.Per)
	b = append(b, `,"algorithm":`...)
	b = appendString(b, l.Algorithm)
	b = appendIntOmitEmpty(b, `,"requests":`, l.Requests)
	b = appendIntOmitEmpty(b, `,"tokens":`, l.Tokens)
	b = appendInt(b, `,"window":`, int64(l.Window))
	b = appendIntOmitEmpty(b, `,"burst":`, l.Burst)
	b = append(b, `,"failMode":`...)
	b = appendString(b, l.FailMode)
	if l.Shadow {
		b = append(b, `,"shadow":true`...)
	}
	return append(b, '}')
}

func appendAPIKey(b []byte, k *APIKey) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, k.Name)
	b = append(b, `,"sha256":`...)
	b = appendString(b, k.SHA256)
	b = append(b, `,"role":`...)
	b = appendString(b, k.Role)
	b = appendStringsOmitEmpty(b, `,"orgs":`, k.Orgs)
	return append(b, '}')
}

// appendList encodes a slice as encoding/json does: nil is null, empty is [].
func appendList[T any](b []byte, l []T, each func([]byte, *T) []byte) []byte {
	if l == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = each(b, &l[i])
	}
	return append(b, ']')
}

func appendStrings(b []byte, l []string) []byte {
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// object writes the members of an object whose leading members may be omitted: every member
// after the first written one takes a comma.
type object struct {
	b       []byte
	written bool
}

// key writes the separator, if a member precedes, then key.
func (o *object) key(key string) {
	if o.written {
		o.b = append(o.b, ',')
	}
	o.written = true
	o.b = append(o.b, key...)
}

// int writes an omitempty integer member.
func (o *object) int(key string, v int64) {
	if v != 0 {
		o.key(key)
		o.b = strconv.AppendInt(o.b, v, 10)
	}
}

// strings writes an omitempty list of strings.
func (o *object) strings(key string, l []string) {
	if len(l) > 0 {
		o.key(key)
		o.b = appendStrings(o.b, l)
	}
}

func appendStringOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, key...)
	return appendString(b, s)
}

func appendStringsOmitEmpty(b []byte, key string, l []string) []byte {
	if len(l) == 0 {
		return b
	}
	b = append(b, key...)
	return appendStrings(b, l)
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, key...)
	return strconv.AppendInt(b, v, 10)
}

func appendIntOmitEmpty(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	return appendInt(b, key, v)
}

// appendString writes s quoted. Printable ASCII other than the characters encoding/json escapes
// (quote, backslash and, for HTML safety, < > &) is copied; any other string is encoded by
// encoding/json, which keeps its escaping rules the only ones.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain holds the bytes that encoding/json copies into a string unescaped.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// parseSnapshot reads the encoding that appendSnapshot writes, and nothing else: members in
// its order, no whitespace, no unknown member. It reports false for anything it does not
// expect. It checks only what it needs in order to read: [decodeCanonical] encodes the value it
// returns and compares, which is the proof. Reading this one shape straight into the types is
// several times faster than a general decoder's reflection, and lets repeated enumeration
// values (scopes, periods, actions, time zones, model names) share one string.
func parseSnapshot(data []byte) (*Snapshot, bool) {
	p := parser{b: data, syms: make(map[string]string)}
	var s Snapshot
	p.lit(`{"version":`)
	s.Version = p.sym()
	p.lit(`,"hash":`)
	s.Hash = p.str()
	p.lit(`,"providers":`)
	s.Providers = parseList(&p, parseProvider)
	p.lit(`,"budgets":`)
	p.hint = p.count(`},{"name":`, `],"routes":`)
	s.Budgets = parseList(&p, parseBudget)
	p.lit(`,"routes":`)
	p.hint = p.count(`}},{"name":`, `],"apiKeys":`)
	s.Routes = parseList(&p, parseRoute)
	p.lit(`,"apiKeys":`)
	s.APIKeys = parseList(&p, parseAPIKey)
	p.lit(`}`)
	return &s, !p.bad
}

func parseProvider(p *parser, x *Provider) {
	p.lit(`{"name":`)
	x.Name = p.str()
	p.lit(`,"type":`)
	x.Type = p.sym()
	p.lit(`,"baseURL":`)
	x.BaseURL = p.sym()
	if p.opt(`,"apiKey":`) {
		x.APIKey = Secret(p.str())
	}
	if p.opt(`,"timeout":`) {
		x.Timeout = time.Duration(p.int())
	}
	p.lit(`,"limits":{`)
	o := p.object()
	if o.opt(`"requestsPerMinute":`) {
		x.Limits.RequestsPerMinute = p.int()
	}
	if o.opt(`"tokensPerMinute":`) {
		x.Limits.TokensPerMinute = p.int()
	}
	p.lit(`},"models":`)
	x.Models = parseList(p, parseModel)
	if p.opt(`,"mock":{`) {
		x.Mock = &Mock{}
		o := p.object()
		if o.opt(`"reply":`) {
			x.Mock.Reply = p.str()
		}
		if o.opt(`"completionTokens":`) {
			x.Mock.CompletionTokens = p.int()
		}
		if o.opt(`"latency":`) {
			x.Mock.Latency = time.Duration(p.int())
		}
		p.lit(`}`)
	}
	p.lit(`}`)
}

func parseModel(p *parser, m *Model) {
	p.lit(`{"name":`)
	m.Name = p.sym()
	p.lit(`,"inputPerMillion":`)
	m.InputPerMillion = money.Nanos(p.int())
	p.lit(`,"outputPerMillion":`)
	m.OutputPerMillion = money.Nanos(p.int())
	p.lit(`,"cachedInputPerMillion":`)
	m.CachedInputPerMillion = money.Nanos(p.int())
	if p.opt(`,"contextWindow":`) {
		m.ContextWindow = p.int()
	}
	if p.opt(`,"maxOutputTokens":`) {
		m.MaxOutputTokens = p.int()
	}
	if p.opt(`,"embedding":true`) {
		m.Embedding = true
	}
	p.lit(`}`)
}

func parseBudget(p *parser, x *Budget) {
	p.lit(`{"name":`)
	x.Name = p.str()
	p.lit(`,"scope":`)
	x.Scope = p.sym()
	p.lit(`,"subject":`)
	x.Subject = p.str()
	p.lit(`,"limits":`)
	x.Limits = parseList(p, func(p *parser, l *BudgetLimit) {
		p.lit(`{"period":`)
		l.Period = p.sym()
		p.lit(`,"limit":`)
		l.Limit = money.Nanos(p.int())
		p.lit(`}`)
	})
	p.lit(`,"action":`)
	x.Action = p.sym()
	if p.opt(`,"downgradeTo":`) {
		x.DowngradeTo = p.sym()
	}
	if p.opt(`,"alertThresholds":`) {
		x.AlertThresholds = parseList(p, func(p *parser, t *int32) { *t = p.int32() })
	}
	p.lit(`,"timeZone":`)
	x.TimeZone = p.sym()
	p.lit(`}`)
}

func parseRoute(p *parser, r *Route) {
	p.lit(`{"name":`)
	r.Name = p.str()
	p.lit(`,"match":{`)
	o := p.object()
	if o.opt(`"models":`) {
		r.Match.Models = p.strs()
	}
	if o.opt(`"endpoints":`) {
		r.Match.Endpoints = p.strs()
	}
	if o.opt(`"orgs":`) {
		r.Match.Orgs = p.strs()
	}
	if o.opt(`"users":`) {
		r.Match.Users = p.strs()
	}
	p.lit(`},"targets":`)
	r.Targets = parseList(p, func(p *parser, t *Target) {
		p.lit(`{"provider":`)
		t.Provider = p.sym()
		p.lit(`,"model":`)
		t.Model = p.sym()
		p.lit(`,"weight":`)
		t.Weight = p.int32()
		p.lit(`,"priority":`)
		t.Priority = p.int32()
		p.lit(`}`)
	})
	p.lit(`,"strategy":`)
	r.Strategy = p.sym()
	p.lit(`,"retries":{"attempts":`)
	r.Retries.Attempts = p.int32()
	if p.opt(`,"backoff":`) {
		r.Retries.Backoff = time.Duration(p.int())
	}
	p.lit(`}`)
	if p.opt(`,"timeout":`) {
		r.Timeout = time.Duration(p.int())
	}
	if p.opt(`,"rateLimits":`) {
		r.RateLimits = parseList(p, parseRateLimit)
	}
	p.lit(`,"cache":{"enabled":`)
	r.Cache.Enabled = p.bool()
	if p.opt(`,"ttl":`) {
		r.Cache.TTL = time.Duration(p.int())
	}
	if p.opt(`,"scope":`) {
		r.Cache.Scope = p.sym()
	}
	p.lit(`},"guardrails":{`)
	o = p.object()
	if o.opt(`"pii":{"action":`) {
		g := &PIIGuard{Action: p.sym()}
		if p.opt(`,"types":`) {
			g.Types = p.strs()
		}
		if p.opt(`,"applyTo":`) {
			g.ApplyTo = p.strs()
		}
		p.lit(`}`)
		r.Guardrails.PII = g
	}
	if o.opt(`"toxicity":{"action":`) {
		g := &ToxicityGuard{Action: p.sym()}
		p.lit(`,"threshold":`)
		g.Threshold = p.int32()
		if p.opt(`,"provider":`) {
			g.Provider = p.sym()
		}
		if p.opt(`,"model":`) {
			g.Model = p.sym()
		}
		p.lit(`}`)
		r.Guardrails.Toxicity = g
	}
	if o.opt(`"output":{`) {
		g := &OutputGuard{}
		inner := p.object()
		if inner.opt(`"jsonSchema":`) {
			g.JSONSchema = p.str()
		}
		if inner.opt(`"maxLength":`) {
			g.MaxLength = p.int()
		}
		if inner.opt(`"bannedPhrases":`) {
			g.BannedPhrases = p.strs()
		}
		p.lit(`}`)
		r.Guardrails.Output = g
	}
	p.lit(`},"promptOptimization":{`)
	o = p.object()
	if o.opt(`"normalizeWhitespace":true`) {
		r.PromptOptimization.NormalizeWhitespace = true
	}
	if o.opt(`"maxInputTokens":`) {
		r.PromptOptimization.MaxInputTokens = p.int()
	}
	p.lit(`}}`)
}

func parseRateLimit(p *parser, l *RateLimit) {
	p.lit(`{"name":`)
	l.Name = p.sym()
	p.lit(`,"per":`)
	l.Per = p.sym()
	p.lit(`,"algorithm":`)
	l.Algorithm = p.sym()
	if p.opt(`,"requests":`) {
		l.Requests = p.int()
	}
	if p.opt(`,"tokens":`) {
		l.Tokens = p.int()
	}
	p.lit(`,"window":`)
	l.Window = time.Duration(p.int())
	if p.opt(`,"burst":`) {
		l.Burst = p.int()
	}
	p.lit(`,"failMode":`)
	l.FailMode = p.sym()
	if p.opt(`,"shadow":true`) {
		l.Shadow = true
	}
	p.lit(`}`)
}

func parseAPIKey(p *parser, k *APIKey) {
	p.lit(`{"name":`)
	k.Name = p.str()
	p.lit(`,"sha256":`)
	k.SHA256 = p.str()
	p.lit(`,"role":`)
	k.Role = p.sym()
	if p.opt(`,"orgs":`) {
		k.Orgs = p.strs()
	}
	p.lit(`}`)
}

// parser reads data from i on. Once bad, every read returns a zero value without moving.
type parser struct {
	b    []byte
	i    int
	bad  bool
	syms map[string]string
	// hint is the capacity of the next list, see count.
	hint int
}

// count guesses the length of the list that starts at i (its capacity; a wrong guess costs
// memory or time, never correctness): one more than the separators sep up to the first end.
// Growing a list of 10 000 budgets by appending alone costs more than reading them. Neither
// sep nor end can occur inside a string, where every quote is escaped.
func (p *parser) count(sep, end string) int {
	rest := p.b[p.i:]
	if n := bytes.Index(rest, []byte(end)); n >= 0 {
		rest = rest[:n]
	}
	return min(bytes.Count(rest, []byte(sep))+1, len(rest)/len(sep))
}

// lit consumes s, which must come next.
func (p *parser) lit(s string) {
	if !p.opt(s) {
		p.bad = true
	}
}

// opt consumes s if it comes next.
func (p *parser) opt(s string) bool {
	if p.bad || len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// members reads the members of an object whose leading members may be omitted.
type members struct {
	p    *parser
	read bool
}

func (p *parser) object() members { return members{p: p} }

// opt consumes key, preceded by a comma unless it is the object's first member.
func (o *members) opt(key string) bool {
	if o.read && !o.p.opt(",") {
		return false
	}
	if o.p.opt(key) {
		o.read = true
		return true
	}
	if o.read {
		o.p.i-- // give the comma back: the next key may be another member
	}
	return false
}

// token returns the bytes of the string that comes next, without its quotes, and whether they
// are all plain (no escape, nothing encoding/json would escape).
func (p *parser) token() ([]byte, bool) {
	if p.bad || p.i >= len(p.b) || p.b[p.i] != '"' {
		p.bad = true
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			return p.b[start:j], true
		}
		if !plain[c] {
			return p.escaped(start)
		}
	}
	p.bad = true
	return nil, false
}

// escaped finds the end of a string that holds escapes or non-ASCII bytes.
func (p *parser) escaped(start int) ([]byte, bool) {
	for j := start; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			j++
		case '"':
			p.i = j + 1
			return p.b[start:j], false
		}
	}
	p.bad = true
	return nil, false
}

// str reads a string. One with escapes or non-ASCII bytes is left to encoding/json.
func (p *parser) str() string {
	t, ok := p.token()
	if ok || p.bad {
		return string(t)
	}
	var s string
	if json.Unmarshal(p.b[p.i-len(t)-2:p.i], &s) != nil {
		p.bad = true
	}
	return s
}

// sym reads a string that is likely to repeat and returns the first copy of equal strings.
func (p *parser) sym() string {
	t, ok := p.token()
	if !ok {
		if p.bad {
			return ""
		}
		p.i -= len(t) + 2
		return p.str()
	}
	if s, seen := p.syms[string(t)]; seen {
		return s
	}
	s := string(t)
	p.syms[s] = s
	return s
}

func (p *parser) strs() []string {
	return parseList(p, func(p *parser, s *string) { *s = p.sym() })
}

// int reads an integer as encoding/json writes an int64.
func (p *parser) int() int64 {
	if p.bad {
		return 0
	}
	neg := p.opt("-")
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' && p.i-start < 19 {
		n = n*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start || (p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9') {
		p.bad = true // no digit, or more than int64 has
		return 0
	}
	if neg {
		if n > 1<<63 {
			p.bad = true
		}
		return int64(-n)
	}
	if n > 1<<63-1 {
		p.bad = true
	}
	return int64(n)
}

func (p *parser) int32() int32 {
	n := p.int()
	if n != int64(int32(n)) {
		p.bad = true
	}
	return int32(n)
}

func (p *parser) bool() bool {
	if p.opt("true") {
		return true
	}
	p.lit("false")
	return false
}

// parseList reads null (nil) or a list of elements.
func parseList[T any](p *parser, each func(*parser, *T)) []T {
	if p.opt("null") {
		return nil
	}
	p.lit("[")
	out := make([]T, 0, p.hint)
	p.hint = 0
	if p.opt("]") {
		return out
	}
	for !p.bad {
		out = append(out, *new(T))
		each(p, &out[len(out)-1])
		if !p.opt(",") {
			break
		}
	}
	p.lit("]")
	return out
}
