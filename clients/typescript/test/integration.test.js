// Integration tests: the seed's usage examples (shared/seed/AI-ORCHESTRATION-PLUGIN.md), as
// written, against the real data plane built from this repository and started on the dev
// sample folder (mock provider, `dev-admin-key`). Needs Go to build cmd/dataplane (or
// AI_DATAPLANE_BIN).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { AIService, AuthError, BudgetExceededError, NotFoundError, PermissionDeniedError } from '../src/index.js'
import { startDataplane } from '../testutil/dataplane.js'

/** @type {Awaited<ReturnType<typeof startDataplane>>} */
let dp

before(async () => {
  dp = await startDataplane()
  // The seed writes `new AIService()` with no arguments: the client reads these.
  process.env.AI_ORCHESTRATION_URL = dp.url
  process.env.AI_ORCHESTRATION_API_KEY = 'dev-admin-key'
}, { timeout: 11 * 60_000 })

after(async () => {
  await dp?.stop()
})

test("the seed's chat example runs as written and returns content, cost and cached", async () => {
  const ai = new AIService()

  // Chat completion with cost tracking
  const response = await ai.chat({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Summarize this conversation' }],
    userId: 'user-123',
  })

  console.log(response.content) // AI response
  console.log(response.cost) // $0.0023
  console.log(response.cached) // false

  assert.equal(response.content, 'Summarize this conversation', 'the dev mock echoes the last user message')
  assert.equal(typeof response.cost, 'number')
  assert.ok(response.cost > 0, `cost ${response.cost}`)
  assert.equal(response.cached, false)
  assert.equal(response.model, 'gpt-4o-mini')
  assert.equal(response.provider, 'default/mock')
  assert.ok(response.usage.promptTokens > 0)
  assert.equal(response.usage.totalTokens, response.usage.promptTokens + response.usage.completionTokens)
  // gpt-4o-mini in the dev sample: $0.15 / $0.60 per million tokens.
  const expected = (response.usage.promptTokens * 0.15 + response.usage.completionTokens * 0.6) / 1e6
  assert.ok(Math.abs(response.cost - expected) < 1e-12, `cost ${response.cost} != ${expected}`)
})

test("the seed's usage example returns cost and remaining for user-123", async () => {
  const ai = new AIService()
  await ai.chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'one more' }], userId: 'user-123' })

  // Get usage
  const usage = await ai.getUsage('user-123', '7d')
  console.log(usage.cost) // $5.67
  console.log(usage.remaining) // $19.33

  assert.ok(usage.requests >= 1)
  assert.ok(usage.cost > 0)
  assert.equal(typeof usage.remaining, 'number')
  // The dev sample gives every user $1/day and $25/month: the daily one is the tightest.
  assert.ok(usage.remaining < 1 && usage.remaining > 0.99, `remaining ${usage.remaining}`)
  const tightest = Math.min(...usage.budgets.map((b) => b.remaining))
  assert.equal(usage.remaining, tightest)
  assert.ok(usage.budgets.some((b) => b.period === 'daily' && b.limit === 1))
})

test("the seed's budget example sets a budget through the API that the next request obeys", async () => {
  const ai = new AIService()

  // Set user budget
  await ai.setBudget('user-123', {
    daily: 1.0, // $1 per day
    monthly: 25.0, // $25 per month
  })

  // Get usage
  const usage = await ai.getUsage('user-123', '7d')
  console.log(usage.cost) // $5.67
  console.log(usage.remaining) // $19.33
  assert.ok(usage.cost > 0)
  assert.ok(usage.remaining <= 1)

  const mine = (await ai.getBudgets('user-123')).filter((b) => b.subject === 'user-123')
  assert.equal(mine.length, 1)
  assert.equal(mine[0].daily, 1)
  assert.equal(mine[0].monthly, 25)

  // A budget set through the API takes effect on the next request.
  await ai.setBudget('budget-test-user', { daily: '0.000001' })
  await assert.rejects(ai.chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], userId: 'budget-test-user' }), BudgetExceededError)
  await ai.deleteBudget('budget-test-user')
  const again = await ai.chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], userId: 'budget-test-user' })
  assert.ok(again.cost > 0)
})

test('a streamed chat against the data plane yields deltas and a done event with usage and cost', async () => {
  const ai = new AIService({ baseURL: dp.url, apiKey: 'dev-admin-key' })
  const stream = await ai.chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello there friend' }], userId: 'user-456', stream: true })
  let text = ''
  let done
  for await (const ev of stream) {
    if (ev.type === 'delta') text += ev.content
    else done = ev
  }
  assert.ok(done, 'the stream ends with a done event')
  assert.equal(text, 'Hello there friend')
  assert.equal(done.content, text)
  assert.ok(done.cost > 0)
  assert.ok(done.usage.completionTokens > 0)
  assert.equal(stream.provider, 'default/mock')
  assert.match(stream.requestId ?? '', /^[0-9a-f]{16,}$/)
})

test('embed, moderate, summarize and getCosts return the contract shapes', async () => {
  const ai = new AIService({ baseURL: dp.url, apiKey: 'dev-admin-key' })
  const e = await ai.embed({ model: 'text-embedding-3-small', input: ['hello', 'world'], userId: 'user-456' })
  assert.equal(e.embeddings.length, 2)
  assert.ok(e.embeddings[0].length > 0)
  const m = await ai.moderate({ input: 'write to bob@example.com', userId: 'user-456' })
  assert.equal(m.flagged, true)
  assert.deepEqual(m.pii, [{ type: 'email', start: 9, end: 24 }])
  for (const c of ['harassment', 'hate', 'sexual', 'violence', 'self-harm']) assert.equal(typeof m.categories[c], 'boolean')
  const s = await ai.summarize({ text: 'The meeting discussed the budget. Everyone agreed to cut costs.', userId: 'user-456', maxWords: 10 })
  assert.ok(s.summary.length > 0)
  assert.ok(s.cost > 0)
  const costs = await ai.getCosts({ window: '30d', groupBy: 'model' })
  assert.ok(costs.total > 0)
  assert.ok(costs.breakdown.some((l) => l.key === 'gpt-4o-mini'))
  assert.ok(!Number.isNaN(Date.parse(costs.forecast.periodEnd)))
})

test('refusals of the data plane arrive as typed errors', async () => {
  const admin = new AIService({ baseURL: dp.url, apiKey: 'dev-admin-key' })
  await assert.rejects(admin.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }], userId: 'u' }), (err) => {
    assert.ok(err instanceof NotFoundError)
    assert.equal(err.code, 'model_not_found')
    assert.ok(err.requestId)
    return true
  })
  const wrongKey = new AIService({ baseURL: dp.url, apiKey: 'not-a-key' })
  await assert.rejects(wrongKey.chat({ messages: [{ role: 'user', content: 'hi' }], userId: 'u' }), AuthError)
  const app = new AIService({ baseURL: dp.url, apiKey: 'dev-app-key' })
  await assert.rejects(app.chat({ messages: [{ role: 'user', content: 'hi' }], userId: 'u', orgId: 'not-acme' }), PermissionDeniedError)
})

test('the data plane serves its OpenAPI 3.1 description', async () => {
  const res = await fetch(dp.url + '/api/ai/openapi.json', { headers: { Authorization: 'Bearer dev-admin-key' } })
  assert.equal(res.status, 200)
  const doc = await res.json()
  assert.match(doc.openapi, /^3\.1\.\d+$/)
  assert.ok(doc.paths['/api/ai/chat'].post)
})
