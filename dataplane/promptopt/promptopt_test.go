package promptopt

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/tokens"
)

func TestNormalizeWhitespace(t *testing.T) {
	tests := map[string]struct {
		in, want string
	}{
		"empty text stays empty":                  {"", ""},
		"runs of spaces and tabs collapse":        {"a  b\t\tc \t d", "a b c d"},
		"both ends are trimmed":                   {"  \n\n hello \n\n ", "hello"},
		"trailing spaces on lines are dropped":    {"one   \ntwo\t\nthree", "one\ntwo\nthree"},
		"one blank line between paragraphs stays": {"p1\n\np2", "p1\n\np2"},
		"many blank lines collapse to one":        {"p1\n\n\n\n \n\np2", "p1\n\np2"},
		"CRLF becomes LF":                         {"a\r\nb", "a\nb"},
		"fenced code keeps its indentation": {
			"Fix this:\n\n\n```python\ndef f():\n    return  1\n\n\n```\n  done  ",
			"Fix this:\n\n```python\ndef f():\n    return  1\n\n\n```\ndone",
		},
		"an unclosed fence keeps the rest verbatim": {"x  y\n```\n  a   b", "x y\n```\n  a   b"},
		"unicode text is untouched":                 {"héllo  wörld — 你好", "héllo wörld — 你好"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, NormalizeWhitespace(tc.in))
		})
	}
}

func TestNormalizeWhitespaceIsIdempotent(t *testing.T) {
	in := "  a  \t b\n\n\n\nc\n```\n  x  \n```\n\n\n d "
	once := NormalizeWhitespace(in)
	require.Equal(t, once, NormalizeWhitespace(once))
}

func TestNormalizeMessagesReportsBytesRemovedAndKeepsTheInput(t *testing.T) {
	in := []providers.Message{{Role: "user", Content: "a    b  "}, {Role: "assistant", Content: "ok"}}
	out, removed := NormalizeMessages(in)
	require.Equal(t, "a b", out[0].Content)
	require.Equal(t, "ok", out[1].Content)
	require.Equal(t, 5, removed)
	require.Equal(t, "a    b  ", in[0].Content, "the caller's messages must not be modified")
}

// tenEach counts every message as 10 tokens, which makes the arithmetic of the cases visible.
func tenEach(providers.Message) int64 { return 10 }

func msgs(roles ...string) []providers.Message {
	out := make([]providers.Message, len(roles))
	for i, r := range roles {
		out[i] = providers.Message{Role: r, Content: r + string(rune('0'+i))}
	}
	return out
}

func contents(ms []providers.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Content
	}
	return out
}

func TestTrimHistory(t *testing.T) {
	tests := map[string]struct {
		msgs        []providers.Message
		max         int64
		want        []string
		wantDropped int
		wantSaved   int64
	}{
		"a conversation that fits is untouched": {
			msgs: msgs("system", "user", "assistant", "user"), max: 40,
			want: []string{"system0", "user1", "assistant2", "user3"},
		},
		"no limit means no trimming": {
			msgs: msgs("user", "assistant", "user"), max: 0,
			want: []string{"user0", "assistant1", "user2"},
		},
		"the oldest turns go first and system messages stay": {
			msgs: msgs("system", "user", "assistant", "user", "assistant", "user"), max: 40,
			want:        []string{"system0", "user3", "assistant4", "user5"},
			wantDropped: 2, wantSaved: 20,
		},
		"an assistant turn never opens the trimmed conversation": {
			msgs: msgs("system", "user", "assistant", "user", "assistant", "user"), max: 50,
			want:        []string{"system0", "user3", "assistant4", "user5"},
			wantDropped: 2, wantSaved: 20,
		},
		"system messages in the middle are kept in place": {
			msgs: msgs("user", "system", "assistant", "user"), max: 20,
			want:        []string{"system1", "user3"},
			wantDropped: 2, wantSaved: 20,
		},
		"the latest message is kept even when it alone is over the limit": {
			msgs: msgs("system", "user", "assistant", "user"), max: 5,
			want:        []string{"system0", "user3"},
			wantDropped: 2, wantSaved: 20,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := TrimHistory(tc.msgs, tc.max, tenEach)
			require.Equal(t, tc.want, contents(got.Messages))
			require.Equal(t, tc.wantDropped, got.Dropped)
			require.Equal(t, tc.wantSaved, got.Saved())
			require.Equal(t, int64(10*len(tc.msgs)), got.TokensBefore)
		})
	}
}

func TestTrimHistoryFitsARealTokenBudget(t *testing.T) {
	const model = "gpt-4o"
	long := strings.Repeat("This is an old turn of the conversation that no longer matters. ", 20)
	conv := []providers.Message{{Role: "system", Content: "You are a helpful assistant."}}
	for range 10 {
		conv = append(conv, providers.Message{Role: "user", Content: long},
			providers.Message{Role: "assistant", Content: long})
	}
	conv = append(conv, providers.Message{Role: "user", Content: "What did I ask first?"})
	count := func(m providers.Message) int64 { return tokens.CountMessage(model, m) }

	const limit = 1000
	got := TrimHistory(conv, limit, count)

	require.LessOrEqual(t, got.TokensAfter, int64(limit))
	require.Equal(t, got.TokensAfter+tokens.ReplyPrimingTokens, tokens.CountMessages(model, got.Messages))
	require.Positive(t, got.Saved())
	require.Equal(t, "system", got.Messages[0].Role)
	require.Equal(t, "user", got.Messages[1].Role)
	require.Equal(t, conv[len(conv)-1], got.Messages[len(got.Messages)-1])
}
