// Package promptopt rewrites prompts before they are sent upstream, per AIRoutePolicy
// promptOptimization: whitespace normalization and history trimming. Both only remove what a
// model does not need, and both report what they saved so that the gateway can expose it in
// metrics and in the reply.
package promptopt

import (
	"strings"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// codeFence opens and closes a Markdown fenced code block.
const codeFence = "```"

// NormalizeWhitespace removes whitespace that carries no meaning for a model:
//   - trailing spaces and tabs at the end of every line are dropped;
//   - runs of spaces and tabs inside a line collapse to one space (leading indentation too:
//     prose does not need it);
//   - three or more consecutive line breaks collapse to one blank line (paragraphs survive);
//   - "\r\n" becomes "\n", and the text is trimmed at both ends.
//
// Fenced code blocks (lines between ``` fences) are kept byte for byte, because indentation
// and spacing are meaningful in code (Python, YAML, Makefiles) and in ASCII tables.
func NormalizeWhitespace(s string) string {
	if s == "" {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	b.Grow(len(s))
	inCode := false
	blankRun := 0
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		trimmedLeft := strings.TrimLeft(line, " \t")
		isFence := strings.HasPrefix(trimmedLeft, codeFence)
		if inCode && !isFence {
			b.WriteString(line)
			if i < len(lines)-1 {
				b.WriteByte('\n')
			}
			continue
		}
		if isFence {
			inCode = !inCode
		}
		out := collapseSpaces(line)
		if out == "" {
			blankRun++
			if blankRun > 1 || b.Len() == 0 {
				continue // at most one blank line in a row, none at the start
			}
		} else {
			blankRun = 0
		}
		b.WriteString(out)
		if i < len(lines)-1 {
			b.WriteByte('\n')
		}
	}
	return strings.TrimSpace(b.String())
}

// collapseSpaces collapses runs of spaces and tabs to one space and trims both ends of a line.
func collapseSpaces(line string) string {
	line = strings.Trim(line, " \t")
	if !strings.Contains(line, "  ") && !strings.ContainsRune(line, '\t') {
		return line
	}
	var b strings.Builder
	b.Grow(len(line))
	space := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == ' ' || c == '\t' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(c)
	}
	return b.String()
}

// NormalizeMessages applies [NormalizeWhitespace] to every message's content. It returns a new
// slice (the caller's request is not modified) and the number of bytes removed.
func NormalizeMessages(msgs []providers.Message) ([]providers.Message, int) {
	out := make([]providers.Message, len(msgs))
	removed := 0
	for i, m := range msgs {
		n := NormalizeWhitespace(m.Content)
		removed += len(m.Content) - len(n)
		out[i] = providers.Message{Role: m.Role, Content: n}
	}
	return out, removed
}

// Counter returns the tokens one message adds to a prompt, framing included; use
// tokens.CountMessage bound to the target model. The prompt's fixed part
// (tokens.ReplyPrimingTokens) is not a message: subtract it from the limit for an exact fit.
type Counter func(providers.Message) int64

// Trimmed is the outcome of [TrimHistory].
type Trimmed struct {
	// Messages is the conversation to send: every system message and the latest turns, in
	// their original order.
	Messages []providers.Message
	// Dropped is how many messages were removed.
	Dropped int
	// TokensBefore and TokensAfter are Σ counter(message) before and after trimming.
	TokensBefore, TokensAfter int64
}

// Saved is the number of tokens trimming removed.
func (t Trimmed) Saved() int64 { return t.TokensBefore - t.TokensAfter }

// TrimHistory drops the oldest non-system messages until the conversation's tokens (as
// counted by count, each message once) fit in maxInputTokens. System messages are always kept
// (they carry the instructions), and so is the latest message (it is the question). After
// trimming, a conversation never starts with an assistant turn whose user turn was dropped:
// such an orphan is dropped too, since some providers (Anthropic, Gemini) require the first
// turn to be the user's.
//
// When system messages and the latest message alone exceed the limit, that minimum is returned
// and the caller decides (the provider will refuse an over-long prompt with a clear error).
// maxInputTokens <= 0 means no limit.
func TrimHistory(msgs []providers.Message, maxInputTokens int64, count Counter) Trimmed {
	costs := make([]int64, len(msgs))
	var total int64
	for i, m := range msgs {
		costs[i] = count(m)
		total += costs[i]
	}
	res := Trimmed{Messages: msgs, TokensBefore: total, TokensAfter: total}
	if maxInputTokens <= 0 || total <= maxInputTokens || len(msgs) == 0 {
		return res
	}
	last := len(msgs) - 1
	drop := make([]bool, len(msgs))
	for i := 0; i < last && total > maxInputTokens; i++ {
		if msgs[i].Role == "system" {
			continue
		}
		drop[i] = true
		total -= costs[i]
	}
	// Drop assistant turns that would now open the conversation.
	for i := 0; i < last; i++ {
		if drop[i] || msgs[i].Role == "system" {
			continue
		}
		if msgs[i].Role != "assistant" {
			break
		}
		drop[i] = true
		total -= costs[i]
	}
	kept := make([]providers.Message, 0, len(msgs))
	for i, m := range msgs {
		if drop[i] {
			res.Dropped++
			continue
		}
		kept = append(kept, m)
	}
	res.Messages = kept
	res.TokensAfter = total
	return res
}
