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
	"hash"
	"math"
	"slices"
	"strings"
	"unicode"
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

// Message is one chat message of a [Request] (the same fields as providers.Message).
type Message struct {
	Role    string
	Content string
}

// ResponseFormat is the requested output format (the same fields as providers.ResponseFormat).
type ResponseFormat struct {
	Type   string
	Name   string
	Schema json.RawMessage
}

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
	Messages []Message
	// Temperature and TopP are nil when the caller left them to the upstream's default.
	Temperature    *float64
	TopP           *float64
	MaxTokens      int64
	Stop           []string
	ResponseFormat *ResponseFormat
	// Input holds embedding (or moderation) inputs, in order, compared byte for byte.
	Input []string
	// Extra holds endpoint-specific options that change the output (summarize: maxWords,
	// style); keys are sorted before hashing.
	Extra map[string]string
	// NormalizeWhitespace is set when the policy's promptOptimization.normalizeWhitespace is on:
	// the upstream then never sees runs of whitespace, so messages differing only in them share
	// an entry.
	NormalizeWhitespace bool
}

// keyVersion changes whenever the canonical encoding changes, so that old entries go unread
// instead of answering the wrong request.
const keyVersion = "ai.nself.org/cache-key/v1"

// Key returns the hex SHA-256 of a canonical encoding of scope and req. Every field is
// written with a tag and a length prefix, so no two different requests encode alike.
//
// Message content is normalized before hashing: line endings become "\n" and leading and
// trailing whitespace is dropped (it never changes a model's answer); inner whitespace is kept,
// because indentation is meaning in code, unless req.NormalizeWhitespace collapses every run to
// one space. Roles are lower-cased; stop sequences are a set (sorted); a JSON schema is
// re-encoded with sorted keys. Embedding inputs are hashed as sent.
func Key(scope Scope, req *Request) (string, error) {
	if scope.kind == "" {
		return "", fmt.Errorf("%w: the scope was not built with NewScope", ErrNoTenant)
	}
	if req == nil {
		return "", errors.New("failed to build cache key: nil request")
	}
	e := encoder{h: sha256.New()}
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
	var sum [sha256.Size]byte
	return hex.EncodeToString(e.h.Sum(sum[:0])), nil
}

type encoder struct {
	h   hash.Hash
	buf [1 + binary.MaxVarintLen64]byte
}

func (e *encoder) num(tag byte, n uint64) {
	e.buf[0] = tag
	l := binary.PutUvarint(e.buf[1:], n)
	e.h.Write(e.buf[:1+l])
}

func (e *encoder) str(tag byte, s string) {
	e.num(tag, uint64(len(s)))
	// hash.Hash has no WriteString in its interface, but sha256's digest implements
	// io.StringWriter, which avoids copying the prompt.
	if sw, ok := e.h.(interface{ WriteString(string) (int, error) }); ok {
		sw.WriteString(s)
		return
	}
	e.h.Write([]byte(s))
}

func (e *encoder) bytes(tag byte, b []byte) {
	e.num(tag, uint64(len(b)))
	e.h.Write(b)
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
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.Float64bits(v))
	e.h.Write(b[:])
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
