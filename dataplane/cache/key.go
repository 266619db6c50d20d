// Package cache is the response cache: exact-match keys over a normalized request, scoped by
// tenant by construction, and a versioned entry format that replays streamed replies as streams.
//
// Tenant safety is structural: [Key] takes a [Scope], and the only way to get a valid Scope is
// [NewScope], which refuses a tenant-scoped cache without the tenant's id. The zero Scope is
// rejected, so a caller that forgets the tenant gets an error (and no caching), never a key
// shared across tenants.
package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// Scopes, as in AIRoutePolicy spec.cache.scope (config.CacheScope*).
const (
	ScopeOrg    = "org"
	ScopeUser   = "user"
	ScopeGlobal = "global"
)

var (
	// ErrNoTenant means the request lacks the identity its cache scope needs; such a request is
	// served without the cache.
	ErrNoTenant = errors.New("no tenant identity for a tenant-scoped cache")
	// ErrInvalidScope is returned for a scope other than org, user or global.
	ErrInvalidScope = errors.New("invalid cache scope")
)

// Scope is the tenant part of a cache key. Build it with [NewScope]; the zero value is invalid.
type Scope struct {
	kind string
	org  string
	user string
}

// NewScope returns the tenant scope of a request for a policy's cache scope:
//   - "org" (also the default for ""): the org id. A request without an org id narrows to its
//     user (org "" + user), so that org-less callers never share entries with each other;
//     with neither id it is [ErrNoTenant].
//   - "user": org and user ids; a request without a user id is [ErrNoTenant] (falling back to
//     the org would share what the policy keeps per user).
//   - "global": nothing; every tenant shares entries, as the policy explicitly asked.
func NewScope(scope, org, user string) (Scope, error) {
	switch scope {
	case ScopeOrg, "":
		if org != "" {
			return Scope{kind: ScopeOrg, org: org}, nil
		}
		if user != "" {
			return Scope{kind: ScopeUser, user: user}, nil
		}
		return Scope{}, fmt.Errorf("%w: scope org needs an org or user id", ErrNoTenant)
	case ScopeUser:
		if user == "" {
			return Scope{}, fmt.Errorf("%w: scope user needs a user id", ErrNoTenant)
		}
		return Scope{kind: ScopeUser, org: org, user: user}, nil
	case ScopeGlobal:
		return Scope{kind: ScopeGlobal}, nil
	}
	return Scope{}, fmt.Errorf("%w: %q (want org, user or global)", ErrInvalidScope, scope)
}

// Kind is the effective scope: "org", "user" or "global" ("" for the invalid zero Scope).
func (s Scope) Kind() string { return s.kind }

// Request is everything about a request that can change the reply. Fill it from the request
// as it will be sent upstream (after prompt optimization), plus the route and the model the
// caller named.
type Request struct {
	// Endpoint is "chat", "embed", "summarize" or "moderate".
	Endpoint string
	// Route is the resolved policy's name; an entry never serves another policy's requests
	// (their targets, guardrails and prompts differ).
	Route string
	// Model is the model as the caller named it ("" and "default" are different keys).
	Model    string
	Messages []providers.Message
	// Temperature and TopP are nil when the caller left them to the upstream's default.
	Temperature    *float64
	TopP           *float64
	MaxTokens      int64
	Stop           []string
	ResponseFormat *providers.ResponseFormat
	// Input holds embedding (or moderation) inputs, in order, compared byte for byte.
	Input []string
	// Extra holds endpoint-specific options that change the output (summarize: maxWords,
	// style); keys are sorted before hashing.
	Extra map[string]string
	// Guardrails are the policy's guardrails. Keys are taken from the messages as the caller sent
	// them (before input guardrails run, so that the lookup can ride with the admission), and the
	// reply stored is what the guardrails made of it: a change of guardrails must change the key.
	Guardrails *config.Guardrails
	// NormalizeWhitespace is set when the policy's promptOptimization.normalizeWhitespace is on:
	// the upstream then never sees runs of whitespace, so messages differing only in them share
	// an entry.
	NormalizeWhitespace bool
}

// keyVersion changes whenever the canonical encoding changes, so that old entries go unread
// instead of answering the wrong request.
const keyVersion = "ai.nself.org/cache-key/v2"

// Key returns the hex SHA-256 of a canonical encoding of scope and req. Every field is
// written with a tag and a length prefix, so no two different requests encode alike.
//
// Message content is normalized before hashing: line endings become "\n" and leading and
// trailing whitespace is dropped (it never changes a model's answer); inner whitespace is kept,
// because indentation is meaning in code, unless req.NormalizeWhitespace collapses every run to
// one space. Roles are lower-cased; stop sequences are a set (sorted); a JSON schema is
// re-encoded with sorted keys. Embedding inputs are hashed as sent.
func Key(scope Scope, req *Request) (string, error) {
	sum, err := keySum(scope, req)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// KVKeyOf is c.KVKey(Key(scope, req)), the key a request's entry is read and written under,
// built in one allocation instead of two (it is built on every cached route's request).
func (c *Cache) KVKeyOf(scope Scope, req *Request) (string, error) {
	sum, err := keySum(scope, req)
	if err != nil {
		return "", err
	}
	if len(c.prefix) > 64 {
		return c.prefix + hex.EncodeToString(sum[:]), nil
	}
	var buf [64 + 2*sha256.Size]byte
	b := append(buf[:0], c.prefix...)
	return string(hex.AppendEncode(b, sum[:])), nil
}

// keySum is the SHA-256 Key is the hex of.
func keySum(scope Scope, req *Request) ([sha256.Size]byte, error) {
	if scope.kind == "" {
		return [sha256.Size]byte{}, fmt.Errorf("%w: the scope was not built with NewScope", ErrNoTenant)
	}
	if req == nil {
		return [sha256.Size]byte{}, errors.New("failed to build cache key: nil request")
	}
	bp := bufPool.Get().(*[]byte)
	e := encoder{b: (*bp)[:0]}
	defer func() {
		if cap(e.b) <= maxPooledBuf {
			*bp = e.b[:0]
			bufPool.Put(bp)
		}
	}()
	e.str('V', keyVersion)
	e.str('S', scope.kind)
	switch scope.kind {
	case ScopeOrg:
		e.str('O', scope.org)
	case ScopeUser:
		e.str('O', scope.org)
		e.str('U', scope.user)
	}
	e.str('E', req.Endpoint)
	e.str('R', req.Route)
	e.str('M', req.Model)
	e.num('m', uint64(len(req.Messages)))
	for _, m := range req.Messages {
		e.str('r', strings.ToLower(strings.TrimSpace(m.Role)))
		e.str('c', normalizeContent(m.Content, req.NormalizeWhitespace))
	}
	e.float('T', req.Temperature)
	e.float('P', req.TopP)
	e.num('X', uint64(max(req.MaxTokens, 0)))
	stops := req.Stop
	if len(stops) > 1 {
		stops = slices.Clone(stops)
		slices.Sort(stops)
		stops = slices.Compact(stops)
	}
	e.num('s', uint64(len(stops)))
	for _, s := range stops {
		e.str('t', s)
	}
	if f := req.ResponseFormat; f != nil {
		e.str('F', f.Type)
		e.str('N', f.Name)
		e.bytes('J', canonicalJSON(f.Schema))
	} else {
		e.num('F', 0)
	}
	e.num('i', uint64(len(req.Input)))
	for _, in := range req.Input {
		e.str('I', in)
	}
	if len(req.Extra) > 0 {
		ks := make([]string, 0, len(req.Extra))
		for k := range req.Extra {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		e.num('x', uint64(len(ks)))
		for _, k := range ks {
			e.str('k', k)
			e.str('v', req.Extra[k])
		}
	} else {
		e.num('x', 0)
	}
	e.guardrails(req.Guardrails)
	return sha256.Sum256(e.b), nil
}

// guardrails writes every guardrail setting that can change what a request is sent or answered.
func (e *encoder) guardrails(g *config.Guardrails) {
	if g == nil {
		e.num('G', 0)
		return
	}
	e.num('G', 1)
	if p := g.PII; p != nil {
		e.str('A', p.Action)
		e.strs('Y', p.Types)
		e.strs('W', p.ApplyTo)
	} else {
		e.num('A', 0)
	}
	if t := g.Toxicity; t != nil {
		e.str('B', t.Action)
		e.num('H', uint64(max(t.Threshold, 0)))
		e.str('D', t.Provider)
		e.str('L', t.Model)
	} else {
		e.num('B', 0)
	}
	if o := g.Output; o != nil {
		e.str('C', o.JSONSchema)
		e.num('Z', uint64(max(o.MaxLength, 0)))
		e.strs('Q', o.BannedPhrases)
	} else {
		e.num('C', 0)
	}
}

// strs writes a list in order, length first.
func (e *encoder) strs(tag byte, ss []string) {
	e.num(tag, uint64(len(ss)))
	for _, s := range ss {
		e.str(tag, s)
	}
}

// encoder appends the canonical encoding to a buffer that is hashed once at the end: one
// sha256.Sum256 over a pooled buffer is cheaper than many small writes through hash.Hash, and
// lets prompt strings be appended without a []byte copy each.
type encoder struct{ b []byte }

// bufPool recycles encoding buffers; buffers grown past maxPooledBuf by a huge prompt are
// dropped so that one request cannot pin memory in the pool.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 64 << 10

func (e *encoder) num(tag byte, n uint64) {
	e.b = append(e.b, tag)
	e.b = binary.AppendUvarint(e.b, n)
}

func (e *encoder) str(tag byte, s string) {
	e.num(tag, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(tag byte, b []byte) {
	e.num(tag, uint64(len(b)))
	e.b = append(e.b, b...)
}

func (e *encoder) float(tag byte, f *float64) {
	if f == nil {
		e.num(tag, 0)
		return
	}
	v := *f
	if v == 0 {
		v = 0 // -0 and +0 ask for the same thing
	}
	e.num(tag, 1)
	e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(v))
}

func normalizeContent(s string, collapse bool) string {
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	s = strings.TrimSpace(s)
	if !collapse {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// canonicalJSON re-encodes a JSON document with sorted object keys and no insignificant
// whitespace, so that equivalent schemas share a key; anything unparsable is used as is.
func canonicalJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}
