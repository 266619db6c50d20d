// Records the example replies of this folder from a running data plane, so that the Go test can
// check them against openapi.json. Start the gateway on a copy of the dev samples plus
// manifests/recording.yaml, then run this script:
//
//   dir=$(mktemp -d) && cp config/samples/dev/*.yaml dataplane/openapi/testdata/manifests/*.yaml "$dir"
//   go run ./cmd/dataplane --manifests "$dir" --addr 127.0.0.1:39109 &
//   node dataplane/openapi/testdata/record.mjs http://127.0.0.1:39109
//
// Each file is {method, path (template), status, headers, body}; body is the parsed JSON, or the
// raw text of an event stream. Volatile header values (request IDs) are kept: they are examples.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const base = process.argv[2] ?? 'http://127.0.0.1:39109'
const here = dirname(fileURLToPath(import.meta.url))
const admin = { Authorization: 'Bearer dev-admin-key' }
const msg = (content) => [{ role: 'user', content }]

const cases = [
  ['chat', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'gpt-4o-mini', messages: msg('Summarize this conversation'), userId: 'user-123' }],
  ['chat-stream', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'gpt-4o-mini', messages: msg('Hello there friend'), userId: 'user-123', stream: true }],
  ['chat-400', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { messages: [], userId: 'user-123' }],
  ['chat-401', 'POST', '/api/ai/chat', '/api/ai/chat', {}, { messages: msg('hi'), userId: 'user-123' }],
  ['chat-402', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'gpt-4o', messages: msg('hi'), userId: 'poor-user' }],
  ['chat-403', 'POST', '/api/ai/chat', '/api/ai/chat', { Authorization: 'Bearer dev-app-key' }, { messages: msg('hi'), userId: 'u1', orgId: 'other' }],
  ['chat-404', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'no-such-model', messages: msg('hi'), userId: 'user-123' }],
  ['chat-429-first', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'gpt-4o', messages: msg('hi'), userId: 'limited-user' }],
  ['chat-429', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'gpt-4o', messages: msg('hi'), userId: 'limited-user' }],
  ['chat-422', 'POST', '/api/ai/chat', '/api/ai/chat', admin, { model: 'gpt-4o', messages: msg('mail bob@example.com'), userId: 'guarded-user' }],
  ['embed', 'POST', '/api/ai/embed', '/api/ai/embed', admin, { model: 'text-embedding-3-small', input: ['hello', 'world'], userId: 'user-123' }],
  ['moderate', 'POST', '/api/ai/moderate', '/api/ai/moderate', admin, { input: 'mail me at bob@example.com, you idiot', userId: 'user-123' }],
  ['summarize', 'POST', '/api/ai/summarize', '/api/ai/summarize', admin, { text: 'The meeting discussed the budget. Everyone agreed to cut costs. The next meeting is Monday.', userId: 'user-123', maxWords: 20 }],
  ['usage', 'GET', '/api/ai/usage', '/api/ai/usage?userId=user-123&window=7d', admin],
  ['costs', 'GET', '/api/ai/costs', '/api/ai/costs?window=30d&groupBy=model', admin],
  ['v1-chat', 'POST', '/v1/chat/completions', '/v1/chat/completions', admin, { model: 'gpt-4o-mini', messages: msg('Hi'), user: 'user-123' }],
  ['v1-chat-stream', 'POST', '/v1/chat/completions', '/v1/chat/completions', admin, { model: 'gpt-4o-mini', messages: msg('Hi there'), stream: true, stream_options: { include_usage: true } }],
  ['v1-embeddings', 'POST', '/v1/embeddings', '/v1/embeddings', admin, { model: 'text-embedding-3-small', input: 'hello' }],
  ['v1-moderations', 'POST', '/v1/moderations', '/v1/moderations', admin, { input: ['hello', 'call 555-0100 now'] }],
  ['v1-models', 'GET', '/v1/models', '/v1/models', admin],
  ['healthz', 'GET', '/healthz', '/healthz', {}],
  ['readyz', 'GET', '/readyz', '/readyz', {}],
]

const keep = /^(content-type|x-request-id|x-ai-.*|x-ratelimit-.*|retry-after|etag)$/i
for (const [name, method, path, url, headers, body] of cases) {
  const res = await fetch(base + url, {
    method,
    headers: { ...headers, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  const hdrs = {}
  for (const [k, v] of res.headers) if (keep.test(k)) hdrs[k] = v
  const isJSON = (res.headers.get('content-type') ?? '').startsWith('application/json')
  const rec = { method, path, status: res.status, headers: hdrs, body: isJSON ? JSON.parse(text) : text }
  if (name.endsWith('-first')) continue // only there to use up the limit
  writeFileSync(join(here, `${name}.json`), JSON.stringify(rec, null, 2) + '\n')
  console.log(`${name}: ${res.status}`)
}
