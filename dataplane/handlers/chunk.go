package handlers

import "github.com/nself-org/ai-orchestration/internal/jsonenc"

// The OpenAI-compatible stream writes one chat.completion.chunk per delta, so a chunk is
// encoded by appending to the stream's buffer instead of by reflection (json.Encoder). The bytes
// are the encoder's for the [OAChunk] the chunk stands for, which chunk_test.go checks on a
// differential table. The /api/ai/chat stream's delta events are appended the same way, byte
// for byte what json.Marshal and writeSSE wrote before.

// chunkHead is what every chunk of a stream starts with: `data: {"id":…,"object":…,
// "created":…,"model":…,"choices":`, built once per stream.
func chunkHead(id string, created int64, model string) []byte {
	b := append([]byte(nil), `data: {"id":`...)
	b = jsonenc.AppendString(b, id)
	b = append(b, `,"object":"chat.completion.chunk","created":`...)
	b = jsonenc.AppendInt(b, created)
	b = append(b, `,"model":`...)
	b = jsonenc.AppendString(b, model)
	return append(b, `,"choices":`...)
}

// appendRoleChunk appends the first event: the assistant role with empty content.
func appendRoleChunk(b, head []byte) []byte {
	b = append(b, head...)
	return append(b, `[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

// appendDeltaChunk appends the event of one content delta.
func appendDeltaChunk(b, head []byte, content string) []byte {
	b = append(b, head...)
	b = append(b, `[{"index":0,"delta":{"content":`...)
	b = jsonenc.AppendString(b, content)
	return append(b, `},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

// appendFinishChunk appends the event with an empty delta and the finish reason.
func appendFinishChunk(b, head []byte, reason string) []byte {
	b = append(b, head...)
	b = append(b, `[{"index":0,"delta":{},"logprobs":null,"finish_reason":`...)
	b = jsonenc.AppendString(b, reason)
	return append(b, "}]}\n\n"...)
}

// appendUsageChunk appends the include_usage event: empty choices and the usage.
func appendUsageChunk(b, head []byte, u OAUsage) []byte {
	b = append(b, head...)
	b = append(b, `[],"usage":{"prompt_tokens":`...)
	b = jsonenc.AppendInt(b, u.PromptTokens)
	b = append(b, `,"completion_tokens":`...)
	b = jsonenc.AppendInt(b, u.CompletionTokens)
	b = append(b, `,"total_tokens":`...)
	b = jsonenc.AppendInt(b, u.TotalTokens)
	return append(b, "}}\n\n"...)
}

// appendAPIDelta appends the `event: delta` of one content delta of the /api/ai/chat stream.
func appendAPIDelta(b []byte, content string) []byte {
	b = append(b, "event: delta\ndata: {\"content\":"...)
	b = jsonenc.AppendString(b, content)
	return append(b, "}\n\n"...)
}
