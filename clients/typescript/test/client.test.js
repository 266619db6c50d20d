// Unit tests: the client against a local fake gateway that answers in the gateway's exact shapes
// (copied from replies recorded from the real data plane, see dataplane/openapi/testdata).
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  AIService,
  AIError,
  AuthError,
  BudgetExceededError,
  ConflictError,
  ConnectionError,
  ContentBlockedError,
  InvalidRequestError,
  NotFoundError,
  PermissionDeniedError,
  ProviderError,
  ProviderTimeoutError,
  RateLimitedError,
  ServiceUnavailableError,
} from '../src/index.js'
import { startFake, json, apiError, sse } from '../testutil/fake-server.js'

const chatReply = {
  id: 'mock-1',
  content: 'Hello there',
  model: 'gpt-4o-mini',
  provider: 'default/mock',
  usage: { promptTokens: 7, completionTokens: 2, totalTokens: 9 },
  cost: 0.00000225,
  cached: false,
}
const chatReq = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello there' }], userId: 'user-123' }

/** @type {Awaited<ReturnType<typeof startFake>>[]} */
const fakes = []
/** @param {Parameters<typeof startFake>[0]} script */
async function fake(script) {
  const f = await startFake(script)
  fakes.push(f)
  return f
}
afterEach(async () => {
  while (fakes.length) await fakes.pop()?.close()
})

test('chat posts the request with the bearer key and returns the reply with its request ID', async () => {
  const f = await fake([json(200, chatReply)])
  const ai = new AIService({ baseURL: f.url + '/', apiKey: 'k-1' })
  const res = await ai.chat(chatReq)
  assert.deepEqual({ ...res }, chatReply)
  assert.equal(res.requestId, 'req-test-1')
  assert.equal(Object.keys(res).includes('requestId'), false, 'requestId is not enumerable')
  assert.equal(f.requests.length, 1)
  const r = f.requests[0]
  assert.equal(r.method, 'POST')
  assert.equal(r.url, '/api/ai/chat')
  assert.equal(r.headers.authorization, 'Bearer k-1')
  assert.equal(r.headers['content-type'], 'application/json')
  assert.deepEqual(JSON.parse(r.body), chatReq)
})

test('new AIService() without options reads the gateway URL and key from the environment', async () => {
  const f = await fake([json(200, chatReply)])
  const saved = { url: process.env.AI_ORCHESTRATION_URL, key: process.env.AI_ORCHESTRATION_API_KEY }
  process.env.AI_ORCHESTRATION_URL = f.url
  process.env.AI_ORCHESTRATION_API_KEY = 'env-key'
  try {
    const ai = new AIService()
    assert.equal(ai.baseURL, f.url)
    await ai.chat(chatReq)
    assert.equal(f.requests[0].headers.authorization, 'Bearer env-key')
  } finally {
    for (const [k, v] of [['AI_ORCHESTRATION_URL', saved.url], ['AI_ORCHESTRATION_API_KEY', saved.key]]) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
})

test('without options or environment the client targets localhost:3109', () => {
  const saved = process.env.AI_ORCHESTRATION_URL
  delete process.env.AI_ORCHESTRATION_URL
  try {
    assert.equal(new AIService().baseURL, 'http://localhost:3109')
  } finally {
    if (saved !== undefined) process.env.AI_ORCHESTRATION_URL = saved
  }
})

const errorCases = [
  { status: 400, type: 'invalid_request_error', code: 'invalid_request', cls: InvalidRequestError },
  { status: 401, type: 'authentication_error', code: 'invalid_api_key', cls: AuthError },
  { status: 403, type: 'permission_error', code: 'forbidden', cls: PermissionDeniedError },
  { status: 404, type: 'not_found_error', code: 'model_not_found', cls: NotFoundError },
  { status: 409, type: 'conflict_error', code: 'conflict', cls: ConflictError },
  { status: 413, type: 'invalid_request_error', code: 'request_too_large', cls: InvalidRequestError },
  { status: 422, type: 'content_policy_violation', code: 'content_blocked', cls: ContentBlockedError },
  { status: 502, type: 'api_error', code: 'provider_error', cls: ProviderError },
  { status: 503, type: 'service_unavailable', code: 'no_usable_provider', cls: ServiceUnavailableError },
  { status: 504, type: 'timeout_error', code: 'provider_timeout', cls: ProviderTimeoutError },
  { status: 500, type: 'server_error', code: 'internal_error', cls: AIError },
]
for (const c of errorCases) {
  test(`a ${c.status} ${c.code} reply throws ${c.cls.name} with the gateway's code and request ID`, async () => {
    const f = await fake([apiError(c.status, c.type, c.code, `refused: ${c.code}`)])
    const ai = new AIService({ baseURL: f.url, apiKey: 'k', maxRetries: 0 })
    await assert.rejects(ai.chat(chatReq), (err) => {
      assert.ok(err instanceof c.cls, `got ${err?.constructor?.name}`)
      assert.ok(err instanceof AIError)
      assert.equal(err.status, c.status)
      assert.equal(err.code, c.code)
      assert.equal(err.type, c.type)
      assert.equal(err.message, `refused: ${c.code}`)
      assert.equal(err.requestId, 'req-test-1')
      return true
    })
  })
}

test('PermissionDeniedError is an AuthError, so one catch covers both key problems', () => {
  assert.ok(new PermissionDeniedError('x') instanceof AuthError)
})

test('a 402 budget_exceeded carries when the budget resets, from Retry-After', async () => {
  const f = await fake([apiError(402, 'insufficient_quota', 'budget_exceeded', 'budget default/per-user (daily) exceeded; resets at 2026-11-26T00:00:00Z', { 'Retry-After': '3600' })])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const before = Date.now()
  await assert.rejects(ai.chat(chatReq), (err) => {
    assert.ok(err instanceof BudgetExceededError)
    assert.equal(err.retryAfter, 3600)
    const at = err.resetsAt.getTime()
    assert.ok(at >= before + 3600_000 && at <= Date.now() + 3600_000, `resetsAt ${err.resetsAt.toISOString()}`)
    return true
  })
  assert.equal(f.requests.length, 1, 'a budget refusal is never retried')
})

test('a 402 without Retry-After takes the reset time from the message', async () => {
  const f = await fake([apiError(402, 'insufficient_quota', 'budget_exceeded', 'budget default/per-user (daily) exceeded; resets at 2026-11-26T00:00:00Z')])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  await assert.rejects(ai.chat(chatReq), (err) => {
    assert.ok(err instanceof BudgetExceededError)
    assert.equal(err.resetsAt.toISOString(), '2026-11-26T00:00:00.000Z')
    return true
  })
})

test('a 429 is retried after its Retry-After when that is within the cap, even for chat', async () => {
  const f = await fake([
    apiError(429, 'rate_limit_error', 'rate_limited', 'rate limit per-user exceeded', { 'Retry-After': '0', 'X-RateLimit-Limit': '1' }),
    json(200, chatReply),
  ])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const res = await ai.chat(chatReq)
  assert.equal(res.content, 'Hello there')
  assert.equal(f.requests.length, 2)
})

test('a 429 whose Retry-After exceeds the cap throws RateLimitedError at once with the limit headers', async () => {
  const f = await fake([
    apiError(429, 'rate_limit_error', 'rate_limited', 'rate limit one-a-minute exceeded; retry after 1m0s', {
      'Retry-After': '60',
      'X-RateLimit-Limit': '1',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': '60',
    }),
  ])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k', maxRetryAfter: 10 })
  await assert.rejects(ai.chat(chatReq), (err) => {
    assert.ok(err instanceof RateLimitedError)
    assert.equal(err.retryAfter, 60)
    assert.equal(err.limit, 1)
    assert.equal(err.remaining, 0)
    assert.equal(err.reset, 60)
    return true
  })
  assert.equal(f.requests.length, 1)
})

const noRetryForChat = [
  [502, 'api_error', 'provider_error'],
  [503, 'service_unavailable', 'no_usable_provider'],
  [504, 'timeout_error', 'provider_timeout'],
]
for (const [status, type, code] of noRetryForChat) {
  test(`chat is not retried on ${status} ${code}: the provider may have billed the work`, async () => {
    const f = await fake([apiError(status, type, code, 'upstream trouble', { 'Retry-After': '0' }), json(200, chatReply)])
    const ai = new AIService({ baseURL: f.url, apiKey: 'k', maxRetries: 3 })
    await assert.rejects(ai.chat(chatReq), AIError)
    assert.equal(f.requests.length, 1)
  })
}

test('chat is retried on 503 store_unavailable, which refuses before any provider call', async () => {
  const f = await fake([apiError(503, 'service_unavailable', 'store_unavailable', 'the limit store is unavailable', { 'Retry-After': '0' }), json(200, chatReply)])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  assert.equal((await ai.chat(chatReq)).id, 'mock-1')
  assert.equal(f.requests.length, 2)
})

test('GETs are retried on 502/503/504 up to maxRetries, then the last error is thrown', async () => {
  const f = await fake([apiError(504, 'timeout_error', 'provider_timeout', 'slow', { 'Retry-After': '0' })])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k', maxRetries: 2 })
  await assert.rejects(ai.getUsage('user-123', '7d'), ProviderTimeoutError)
  assert.equal(f.requests.length, 3)
})

test('a GET that fails once with 503 succeeds on the retry', async () => {
  const usage = { requests: 1, tokens: 9, cost: 0.00000225, budgets: [], remaining: null }
  const f = await fake([apiError(503, 'service_unavailable', 'no_usable_provider', 'x', { 'Retry-After': '0' }), json(200, usage)])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  assert.deepEqual({ ...(await ai.getUsage('user-123', '7d')) }, usage)
  assert.equal(f.requests.length, 2)
})

test("setBudget sends the seed's numbers as exact decimal strings to PUT /api/ai/budgets/user/{id}", async () => {
  const budget = { name: 'default/api-user-user-123', scope: 'user', subject: 'user-123', daily: 1, monthly: 25, managedBy: 'api' }
  const f = await fake([json(201, budget)])
  const ai = new AIService({ baseURL: f.url, apiKey: 'admin' })
  const res = await ai.setBudget('user-123', { daily: 1.0, monthly: 25.0 })
  assert.deepEqual({ ...res }, budget)
  assert.equal(f.requests[0].method, 'PUT')
  assert.equal(f.requests[0].url, '/api/ai/budgets/user/user-123')
  assert.deepEqual(JSON.parse(f.requests[0].body), { daily: '1.00', monthly: '25.00' })
})

test('setBudget takes any scope, escapes the subject and passes action and strings through', async () => {
  const f = await fake([json(200, { scope: 'org', subject: 'acme corp' })])
  const ai = new AIService({ baseURL: f.url, apiKey: 'admin' })
  await ai.setBudget({ scope: 'org', subject: 'acme corp' }, { weekly: '10.5', monthly: 0.1 + 0.2, action: 'alert' })
  assert.equal(f.requests[0].url, '/api/ai/budgets/org/acme%20corp')
  assert.deepEqual(JSON.parse(f.requests[0].body), { weekly: '10.5', monthly: '0.30', action: 'alert' })
})

const badBudgets = [
  ['no period', {}],
  ['a negative amount', { daily: -1 }],
  ['NaN', { daily: Number.NaN }],
  ['a malformed string', { daily: '1,00' }],
]
for (const [name, limits] of badBudgets) {
  test(`setBudget refuses ${name} without calling the gateway`, async () => {
    const f = await fake([json(200, {})])
    const ai = new AIService({ baseURL: f.url, apiKey: 'admin' })
    await assert.rejects(ai.setBudget('user-123', limits), InvalidRequestError)
    assert.equal(f.requests.length, 0)
  })
}

test('a budget owned by GitOps is refused with ConflictError', async () => {
  const f = await fake([apiError(409, 'conflict_error', 'conflict', 'budget default/per-user is managed by GitOps')])
  const ai = new AIService({ baseURL: f.url, apiKey: 'admin' })
  await assert.rejects(ai.setBudget({ scope: 'user', subject: '*' }, { daily: 2 }), ConflictError)
  assert.equal(f.requests.length, 1)
})

test('getBudgets filters by user and unwraps the list; deleteBudget sends DELETE', async () => {
  const budgets = [{ scope: 'user', subject: 'user-123', daily: 1 }]
  const f = await fake([json(200, { budgets }), (_r, res) => { res.writeHead(204, { 'X-Request-ID': 'd' }); res.end() }])
  const ai = new AIService({ baseURL: f.url, apiKey: 'admin' })
  assert.deepEqual([...(await ai.getBudgets('user-123'))], budgets)
  assert.equal(f.requests[0].url, '/api/ai/budgets?scope=user&subject=user-123')
  await ai.deleteBudget('user-123')
  assert.equal(f.requests[1].method, 'DELETE')
  assert.equal(f.requests[1].url, '/api/ai/budgets/user/user-123')
})

test('getUsage and getCosts put their arguments in the query string', async () => {
  const f = await fake([json(200, { requests: 0, tokens: 0, cost: 0, budgets: [], remaining: 1 }), json(200, { total: 0, breakdown: [], forecast: { periodEnd: '2026-12-01T00:00:00Z', projected: 0 } })])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  await ai.getUsage('user-123', '7d')
  await ai.getCosts({ orgId: 'acme', window: '30d', groupBy: 'model' })
  assert.equal(f.requests[0].url, '/api/ai/usage?userId=user-123&window=7d')
  assert.equal(f.requests[1].url, '/api/ai/costs?orgId=acme&window=30d&groupBy=model')
})

test('moderate accepts a bare string and embed/summarize post their bodies', async () => {
  const f = await fake([
    json(200, { flagged: false, categories: {}, scores: {}, pii: [] }),
    json(200, { embeddings: [[0.1]], model: 'e', usage: { promptTokens: 1, completionTokens: 0, totalTokens: 1 }, cost: 0, cached: false }),
    json(200, { summary: 's', model: 'm', usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 }, cost: 0, cached: false, parts: 1 }),
  ])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  await ai.moderate('hello')
  await ai.embed({ input: ['a'], userId: 'u' })
  const s = await ai.summarize({ text: 'long text', userId: 'u', maxWords: 5 })
  assert.equal(s.summary, 's')
  assert.deepEqual(f.requests.map((r) => [r.url, JSON.parse(r.body)]), [
    ['/api/ai/moderate', { input: 'hello' }],
    ['/api/ai/embed', { input: ['a'], userId: 'u' }],
    ['/api/ai/summarize', { text: 'long text', userId: 'u', maxWords: 5 }],
  ])
})

test('chat with stream: true yields deltas and ends with a done event carrying usage and cost', async () => {
  const done = { ...chatReply, id: 'chat-1', content: 'Hello there friend' }
  const f = await fake([sse(['event: delta\r\ndata: {"con', 'tent":"Hello"}\r\n\r\n', 'event: delta\ndata: {"content":" there"}\n\n: ping\n\nevent: delta\ndata: {"content":" friend"}\n\n', `event: done\ndata: ${JSON.stringify(done)}\n\n`])])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const stream = await ai.chat({ ...chatReq, stream: true })
  assert.equal(stream.requestId, 'req-stream-1')
  assert.equal(stream.provider, 'default/mock')
  const events = []
  for await (const ev of stream) events.push(ev)
  assert.deepEqual(events, [
    { type: 'delta', content: 'Hello' },
    { type: 'delta', content: ' there' },
    { type: 'delta', content: ' friend' },
    { type: 'done', ...done },
  ])
  assert.equal(stream.content, 'Hello there friend')
  assert.equal(stream.final.cost, chatReply.cost)
  assert.deepEqual(JSON.parse(f.requests[0].body).stream, true)
  assert.equal(f.requests[0].headers.accept, 'text/event-stream')
})

test('finalReply reads the whole stream and returns the done event', async () => {
  const f = await fake([sse(['event: delta\ndata: {"content":"Hi"}\n\n', `event: done\ndata: ${JSON.stringify(chatReply)}\n\n`])])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const final = await (await ai.chat({ ...chatReq, stream: true })).finalReply()
  assert.equal(final.cost, chatReply.cost)
  assert.deepEqual(final.usage, chatReply.usage)
})

test('an error event inside the stream throws the typed error of its code', async () => {
  const f = await fake([sse(['event: delta\ndata: {"content":"my mail is"}\n\n', 'event: error\ndata: {"error":{"type":"content_policy_violation","code":"content_blocked","message":"personal data detected: email"}}\n\n'])])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const stream = await ai.chat({ ...chatReq, stream: true })
  const seen = []
  await assert.rejects(
    (async () => {
      for await (const ev of stream) seen.push(ev.type)
    })(),
    (err) => {
      assert.ok(err instanceof ContentBlockedError)
      assert.equal(err.status, 0)
      assert.equal(err.code, 'content_blocked')
      assert.equal(err.requestId, 'req-stream-1')
      return true
    },
  )
  assert.deepEqual(seen, ['delta'])
})

test('a stream that ends without its done event throws ConnectionError', async () => {
  const f = await fake([sse(['event: delta\ndata: {"content":"Hel"}\n\n'])])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const stream = await ai.chat({ ...chatReq, stream: true })
  await assert.rejects(stream.finalReply(), ConnectionError)
})

test('a refused stream rejects chat() itself, before any delta', async () => {
  const f = await fake([apiError(402, 'insufficient_quota', 'budget_exceeded', 'budget exceeded', { 'Retry-After': '10' })])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  await assert.rejects(ai.chat({ ...chatReq, stream: true }), BudgetExceededError)
})

test('breaking out of a stream early closes the connection', async () => {
  const f = await fake([sse(['event: delta\ndata: {"content":"a"}\n\n', 'event: delta\ndata: {"content":"b"}\n\n'], { hang: true })])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const stream = await ai.chat({ ...chatReq, stream: true })
  for await (const ev of stream) {
    assert.equal(ev.type, 'delta')
    break
  }
  // The server sees the hang-up; poll its counter instead of sleeping a fixed time.
  for (let i = 0; i < 200 && f.closedEarly === 0; i++) await new Promise((r) => setTimeout(r, 5))
  assert.equal(f.closedEarly, 1)
})

test('a gateway that does not answer within the timeout throws ConnectionError', async () => {
  const f = await fake([() => {}])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k', timeout: 100, maxRetries: 0 })
  await assert.rejects(ai.getUsage('u', '7d'), (err) => {
    assert.ok(err instanceof ConnectionError)
    assert.equal(err.code, 'timeout')
    return true
  })
})

test('a caller abort signal stops the request with its own reason', async () => {
  const f = await fake([() => {}])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k' })
  const ctrl = new AbortController()
  const p = ai.chat(chatReq, { signal: ctrl.signal })
  const reason = new Error('user went away')
  ctrl.abort(reason)
  await assert.rejects(p, (err) => err === reason)
})

test('a refused connection throws ConnectionError after the allowed retries', async () => {
  const f = await fake([json(200, {})])
  const url = f.url
  await fakes.pop()?.close()
  const ai = new AIService({ baseURL: url, apiKey: 'k', maxRetries: 0 })
  await assert.rejects(ai.chat(chatReq), ConnectionError)
})

test('a non-JSON error page still becomes a typed error with its status', async () => {
  const f = await fake([(_r, res) => { res.writeHead(502, { 'Content-Type': 'text/html' }); res.end('<h1>Bad Gateway</h1>') }])
  const ai = new AIService({ baseURL: f.url, apiKey: 'k', maxRetries: 0 })
  await assert.rejects(ai.getCosts(), (err) => {
    assert.ok(err instanceof ProviderError)
    assert.equal(err.status, 502)
    assert.match(err.message, /Bad Gateway/)
    return true
  })
})
