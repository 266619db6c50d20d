// The usage examples of the product description (shared/seed/AI-ORCHESTRATION-PLUGIN.md), as
// written, against a running gateway:
//
//   make dev                                   # terminal 1: the gateway on :3109, mock provider
//   AI_ORCHESTRATION_API_KEY=dev-admin-key node clients/typescript/examples/seed.mjs
//
// AI_ORCHESTRATION_URL overrides http://localhost:3109. The budget step needs the budgets API
// (PUT /api/ai/budgets/...); when the gateway does not serve it yet the script says so and goes on.
import { AIService, NotFoundError } from '../src/index.js'

process.env.AI_ORCHESTRATION_API_KEY ??= 'dev-admin-key' // the `make dev` sample key

const ai = new AIService()

// Chat completion with cost tracking
const response = await ai.chat({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Summarize this conversation' }],
  userId: 'user-123',
})

console.log('content:  ', response.content) // AI response
console.log('cost:     ', response.cost) // $0.0023
console.log('cached:   ', response.cached) // false
console.log('usage:    ', response.usage)

// Set user budget
try {
  await ai.setBudget('user-123', {
    daily: 1.0, // $1 per day
    monthly: 25.0, // $25 per month
  })
  console.log('budget:    set $1.00/day, $25.00/month for user-123')
} catch (err) {
  if (!(err instanceof NotFoundError)) throw err
  console.log('budget:    this gateway does not serve /api/ai/budgets yet; the sample per-user budget applies')
}

// Get usage
const usage = await ai.getUsage('user-123', '7d')
console.log('7d cost:  ', usage.cost) // $5.67
console.log('remaining:', usage.remaining) // $19.33
console.log('requests: ', usage.requests, 'tokens:', usage.tokens)
