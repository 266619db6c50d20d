// Package tokens counts tokens the way OpenAI's tokenizers do, with the vocabularies embedded in
// the binary (github.com/tiktoken-go/tokenizer): no download at start-up, no network at all.
//
// Budgets reserve a request's worst-case cost before calling a provider, so prompt tokens must
// be counted exactly for OpenAI models. Other providers (Anthropic, Gemini, Ollama models) use
// their own tokenizers, which are not public or not embeddable; for them we count with
// o200k_base as a documented estimate — the provider's reported usage settles the real cost.
package tokens

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tiktoken-go/tokenizer"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/textmemo"
)

// Encoding names, as OpenAI's tiktoken spells them.
const (
	// O200kBase is the encoding of gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o-series.
	O200kBase = "o200k_base"
	// Cl100kBase is the encoding of gpt-4, gpt-3.5-turbo and the ada-002/3 embeddings.
	Cl100kBase = "cl100k_base"
)

// Per-message overhead of OpenAI's chat format (the "How to count tokens" cookbook): every
// message is wrapped as <|start|>{role}<|message|>{content}<|end|> (3 tokens besides role and
// content), and every reply is primed with <|start|>assistant<|message|> (3 tokens).
const (
	tokensPerMessage = 3
	// ReplyPrimingTokens is the fixed part of every chat prompt, so that
	// CountMessages(model, msgs) == ReplyPrimingTokens + Σ CountMessage(model, m).
	ReplyPrimingTokens = 3
)

// codecs are loaded lazily, once: building an encoder parses a vocabulary of 100–200k entries
// (tens of milliseconds and megabytes), and the codec is safe for concurrent use afterwards.
var (
	o200kOnce   sync.Once
	o200kCodec  tokenizer.Codec
	cl100kOnce  sync.Once
	cl100kCodec tokenizer.Codec
)

func codecFor(encoding string) tokenizer.Codec {
	if encoding == Cl100kBase {
		cl100kOnce.Do(func() { cl100kCodec = mustGet(tokenizer.Cl100kBase) })
		return cl100kCodec
	}
	o200kOnce.Do(func() { o200kCodec = mustGet(tokenizer.O200kBase) })
	return o200kCodec
}

// The fast counters (fast.go) share the codecs' vocabularies; nil when unavailable, in which
// case the codec counts.
var (
	o200kFastOnce  sync.Once
	o200kFast      *fastCodec
	cl100kFastOnce sync.Once
	cl100kFast     *fastCodec
)

func fastFor(encoding string) *fastCodec {
	if encoding == Cl100kBase {
		cl100kFastOnce.Do(func() { cl100kFast = newFastCodec(codecFor(Cl100kBase)) })
		return cl100kFast
	}
	o200kFastOnce.Do(func() { o200kFast = newFastCodec(codecFor(O200kBase)) })
	return o200kFast
}

// mustGet only fails for an unknown encoding name, which is a programming error caught by tests.
func mustGet(enc tokenizer.Encoding) tokenizer.Codec {
	c, err := tokenizer.Get(enc)
	if err != nil {
		panic("tokens: embedded encoding " + string(enc) + " is missing: " + err.Error())
	}
	return c
}

// cl100kPrefixes are the model families that predate o200k_base. Everything else — the newer
// OpenAI models and every non-OpenAI model — is counted with o200k_base.
var cl100kPrefixes = []string{
	"gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-ada-002", "text-embedding-3-",
	"davinci-002", "babbage-002",
}

// EncodingFor returns the encoding used to count tokens for model. Fine-tune names
// ("ft:gpt-4o-mini:org::id") and router prefixes ("openai/gpt-4o") are reduced to the base
// model. Unknown and non-OpenAI models get [O200kBase], an estimate.
func EncodingFor(model string) string {
	// A gateway names few models, every request and (streams) every delta: the choice for a
	// recent name is kept, which spares the lower-casing and the prefix tests.
	slot := &encodingSlots[(len(model)+int(lastByte(model)))%len(encodingSlots)]
	if e := slot.Load(); e != nil && e.model == model {
		return e.enc
	}
	enc := encodingOf(model)
	if len(model) <= maxRememberedModel {
		slot.Store(&modelEncoding{model: strings.Clone(model), enc: enc})
	}
	return enc
}

// modelEncoding is a model name and its encoding.
type modelEncoding struct{ model, enc string }

// encodingSlots remember the encoding of the last model names seen, one per slot (a name's
// length and last byte pick it). Entries are never changed, only replaced.
var encodingSlots [16]atomic.Pointer[modelEncoding]

// maxRememberedModel bounds the names kept (and copied), so that the slots hold little.
const maxRememberedModel = 128

func lastByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[len(s)-1]
}

func encodingOf(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	m = strings.TrimPrefix(m, "ft:")
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	if m == "gpt-4" {
		return Cl100kBase
	}
	for _, p := range cl100kPrefixes {
		// "gpt-4-" must not capture "gpt-4o" or "gpt-4.1"; the dash takes care of that.
		if strings.HasPrefix(m, p) {
			return Cl100kBase
		}
	}
	return O200kBase
}

// Counting was the costliest step of admitting a request (the library's regexp ran at a few
// MB/s; fast.go counts ~25x faster without allocating), and chat requests resend the same texts
// every time (a route's fixed system prompt, the whole conversation every turn), so counts of
// longer texts are remembered per encoding and text (package textmemo).
var counts = textmemo.New[string, int64](textmemo.Options[int64]{
	// Shorter texts count in well under a microsecond; a look-up would not pay.
	MinText: 256,
	// Larger texts are counted every time rather than evicting many smaller ones.
	MaxText:       256 << 10,
	MaxBytes:      8 << 20,
	EntryOverhead: 96,
})

// Count returns the number of tokens of text for model. It never fails: the codec runs with
// the library's default error mode, which tokenizes invalid UTF-8 bytes as they are.
func Count(model, text string) int64 {
	if text == "" {
		return 0
	}
	return countEnc(EncodingFor(model), text)
}

// countEnc is [Count] with the encoding already chosen.
func countEnc(enc, text string) int64 {
	if text == "" {
		return 0
	}
	if n, ok := counts.Get(enc, text); ok {
		return n
	}
	n := countWith(enc, text)
	counts.Offer(enc, text, n)
	return n
}

func countWith(enc, text string) int64 {
	if text == "" {
		return 0
	}
	if f := fastFor(enc); f != nil {
		if n, ok := f.count(text); ok {
			return int64(n)
		}
	}
	n, err := codecFor(enc).Count(text)
	if err != nil {
		// Only the strict error mode or a regexp time-out could fail; fall back to a
		// conservative estimate (one token per 3 bytes) rather than under-reserving budget.
		return int64(len(text)+2) / 3
	}
	return int64(n)
}

// CountMessages returns the prompt tokens of a chat request for model, following OpenAI's
// accounting for current chat models: 3 tokens per message plus its role and content, and 3 for
// the primed assistant reply. For non-OpenAI models it is an estimate of the same shape.
func CountMessages(model string, msgs []providers.Message) int64 {
	// The model's encoding once, not twice per message: EncodingFor lower-cases the name and
	// tries each older family's prefix.
	enc := EncodingFor(model)
	total := int64(ReplyPrimingTokens)
	for _, m := range msgs {
		total += countMessageEnc(enc, m)
	}
	return total
}

// CountMessage returns the tokens one message adds to a chat prompt: its role, its content
// and its framing. Trimming history counts each message once with it instead of recounting
// the whole conversation per dropped message.
func CountMessage(model string, m providers.Message) int64 {
	return countMessageEnc(EncodingFor(model), m)
}

func countMessageEnc(enc string, m providers.Message) int64 {
	return tokensPerMessage + roleTokens(enc, m.Role) + countEnc(enc, m.Content)
}

// knownRoles are the roles whose counts are remembered (per encoding, in roleCounts): a fixed
// set, so a caller cannot make the memo grow. Other roles are counted every time.
var knownRoles = [...]string{"system", "user", "assistant", "tool", "developer"}

// roleCounts memoizes the token count of the known roles (a handful of short strings counted on
// every message), per encoding: [0] o200k_base, [1] cl100k_base. An entry holds the count plus
// one, zero while not yet counted. A fixed table rather than a map keyed by encoding and role:
// building that key cost an allocation per message.
var roleCounts [2][len(knownRoles)]atomic.Int64

func roleTokens(enc, role string) int64 {
	ri := -1
	for i, r := range knownRoles {
		if role == r {
			ri = i
			break
		}
	}
	if ri < 0 {
		return countWith(enc, role)
	}
	ei := 0
	if enc == Cl100kBase {
		ei = 1
	} else if enc != O200kBase {
		return countWith(enc, role)
	}
	if v := roleCounts[ei][ri].Load(); v > 0 {
		return v - 1
	}
	n := countWith(enc, role)
	roleCounts[ei][ri].Store(n + 1)
	return n
}
