// Type declarations of @nself/ai-orchestration (handwritten; the runtime is plain ESM in src/).
// They mirror the gateway's OpenAPI document, served at GET /api/ai/openapi.json.

/** Options of {@link AIService}. Every field has a default, so `new AIService()` works. */
export interface AIServiceOptions {
  /** Gateway URL. Default: `AI_ORCHESTRATION_URL`, else `http://localhost:${AI_ORCHESTRATION_PORT ?? 3109}`. */
  baseURL?: string
  /** Client key (`Authorization: Bearer …`). Default: `AI_ORCHESTRATION_API_KEY`. */
  apiKey?: string
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch
  /** Retries of safe failures (see README, "Retries"). Default 2. */
  maxRetries?: number
  /** The longest Retry-After (seconds) the client waits by itself; longer ones throw at once. Default 10. */
  maxRetryAfter?: number
  /** Milliseconds to wait for an answer (for streams: for the first byte). Default 60000. */
  timeout?: number
  /** Extra headers sent with every request (e.g. `X-Request-ID`). */
  headers?: Record<string, string>
}

/** Per-call options. */
export interface RequestOptions {
  signal?: AbortSignal
}

export type Role = 'system' | 'user' | 'assistant'

export interface Message {
  role: Role
  content: string
}

export interface Usage {
  promptTokens: number
  completionTokens: number
  totalTokens: number
}

export type ResponseFormat =
  | 'text'
  | 'json'
  | 'json_object'
  | { type: 'text' | 'json' | 'json_object' | 'json_schema'; name?: string; schema?: Record<string, unknown> }

export interface ChatRequest {
  /** A model or route alias; omitted = the policy matching `default`. */
  model?: string
  messages: Message[]
  /** The end user charged for the request. */
  userId: string
  orgId?: string
  stream?: boolean
  /** Output cap; also the worst case reserved against budgets. */
  maxTokens?: number
  temperature?: number
  responseFormat?: ResponseFormat
}

/** Set on every reply object (not enumerable): the X-Request-ID the gateway logged. */
export interface WithRequestId {
  readonly requestId?: string
}

export interface ChatResponse extends WithRequestId {
  id: string
  content: string
  model: string
  /** The AIProvider that answered, `namespace/name`. */
  provider: string
  usage: Usage
  /** USD. */
  cost: number
  cached: boolean
}

export interface ChatDeltaEvent {
  type: 'delta'
  content: string
}

export interface ChatDoneEvent extends Omit<ChatResponse, 'requestId'> {
  type: 'done'
}

export type ChatStreamEvent = ChatDeltaEvent | ChatDoneEvent

/** A streamed chat: `for await (const ev of stream)` yields deltas, then one done event with usage and cost. */
export declare class ChatStream implements AsyncIterable<ChatStreamEvent> {
  readonly requestId?: string
  readonly provider?: string
  readonly cached: boolean
  /** The text received so far. */
  readonly content: string
  /** The final reply once the done event arrived. */
  readonly final?: ChatResponse
  /** Stops the stream (the gateway still settles what was generated). */
  abort(): void
  /** Reads the whole stream and returns the final reply. */
  finalReply(): Promise<ChatResponse>
  [Symbol.asyncIterator](): AsyncIterator<ChatStreamEvent>
}

export interface EmbedRequest {
  model?: string
  input: string | string[]
  userId: string
  orgId?: string
}

export interface EmbedResponse extends WithRequestId {
  embeddings: number[][]
  model: string
  provider?: string
  usage: Usage
  cost: number
  cached: boolean
}

export interface ModerateRequest {
  input: string
  userId?: string
  orgId?: string
}

export type ModerationCategory = 'harassment' | 'hate' | 'sexual' | 'violence' | 'self-harm'
export type PIIType = 'email' | 'phone' | 'credit_card' | 'iban' | 'ssn' | 'ipv4' | 'ipv6' | 'secret'

export interface PIISpan {
  type: PIIType
  /** Unicode code points of the input (not UTF-16 units: use `[...input].slice(start, end)`). */
  start: number
  /** Exclusive. */
  end: number
}

export interface ModerateResponse extends WithRequestId {
  flagged: boolean
  categories: Record<ModerationCategory, boolean> & Record<string, boolean>
  scores: Record<ModerationCategory, number> & Record<string, number>
  pii: PIISpan[]
}

export type SummarizeRequest = {
  model?: string
  userId: string
  orgId?: string
  maxWords?: number
  style?: string
} & ({ text: string; messages?: Message[] } | { text?: string; messages: Message[] })

export interface SummarizeResponse extends WithRequestId {
  summary: string
  model: string
  provider?: string
  usage: Usage
  cost: number
  cached: boolean
  /** Model calls it took (1 when the text fit the context window). */
  parts?: number
}

export type Period = 'daily' | 'weekly' | 'monthly'

export interface BudgetLine {
  /** The AIBudget, `namespace/name`. */
  name: string
  period: Period
  limit: number
  spent: number
  remaining: number
  /** RFC 3339. */
  resetsAt?: string
}

export interface UsageResponse extends WithRequestId {
  requests: number
  tokens: number
  /** USD over the window. */
  cost: number
  budgets: BudgetLine[]
  /** The smallest headroom (USD) over every budget that applies; null when none applies. */
  remaining: number | null
}

export interface UsageQuery {
  userId?: string
  orgId?: string
  /** '7d', '2w', '24h', '30m' (default '30d'). */
  window?: string
}

export interface CostsQuery {
  orgId?: string
  userId?: string
  window?: string
  groupBy?: 'model' | 'provider' | 'user'
}

export interface CostsResponse extends WithRequestId {
  total: number
  breakdown: { key: string; cost: number; requests: number; tokens: number }[]
  forecast: { periodEnd: string; projected: number }
}

export type BudgetScope = 'user' | 'org' | 'apiKey' | 'global'

export interface BudgetTarget {
  scope: BudgetScope
  /** One id, or `*` for every subject separately. */
  subject: string
}

/** USD as a number (1.0) or an exact decimal string ("1.00"); sent as a decimal string. */
export type Money = number | string

export interface BudgetLimits {
  daily?: Money
  weekly?: Money
  monthly?: Money
  action?: 'block' | 'alert' | 'downgrade'
  downgradeTo?: string
  alertThresholds?: number[]
  timeZone?: string
}

export interface Budget extends WithRequestId {
  name?: string
  scope: BudgetScope
  subject: string
  daily?: number
  weekly?: number
  monthly?: number
  action?: 'block' | 'alert' | 'downgrade'
  downgradeTo?: string
  alertThresholds?: number[]
  timeZone?: string
  /** `api` when written through the API; anything else is owned by GitOps (read-only here). */
  managedBy?: string
  periods?: { period: Period; limit: number; spent: number; remaining: number; resetsAt?: string; forecast?: number }[]
}

export interface Model {
  id: string
  object: 'model'
  created: number
  owned_by: string
}

/** The client of one ai-orchestration gateway. */
export declare class AIService {
  constructor(options?: AIServiceOptions)
  readonly baseURL: string
  chat(req: ChatRequest & { stream: true }, opts?: RequestOptions): Promise<ChatStream>
  chat(req: ChatRequest & { stream?: false }, opts?: RequestOptions): Promise<ChatResponse>
  chat(req: ChatRequest, opts?: RequestOptions): Promise<ChatResponse | ChatStream>
  embed(req: EmbedRequest, opts?: RequestOptions): Promise<EmbedResponse>
  moderate(req: string | ModerateRequest, opts?: RequestOptions): Promise<ModerateResponse>
  summarize(req: SummarizeRequest, opts?: RequestOptions): Promise<SummarizeResponse>
  /** `setBudget('user-123', {daily: 1.0, monthly: 25.0})` → PUT /api/ai/budgets/user/user-123. Admin keys. */
  setBudget(target: string | BudgetTarget, limits: BudgetLimits, opts?: RequestOptions): Promise<Budget>
  getBudgets(filter?: string | Partial<BudgetTarget>, opts?: RequestOptions): Promise<Budget[] & WithRequestId>
  deleteBudget(target: string | BudgetTarget, opts?: RequestOptions): Promise<void>
  getUsage(userId: string, window?: string, opts?: RequestOptions): Promise<UsageResponse>
  getUsage(query: UsageQuery, window?: string, opts?: RequestOptions): Promise<UsageResponse>
  getCosts(query?: CostsQuery, opts?: RequestOptions): Promise<CostsResponse>
  models(opts?: RequestOptions): Promise<Model[]>
}

export interface AIErrorOptions {
  status?: number
  type?: string
  code?: string
  requestId?: string
  retryAfter?: number
  cause?: unknown
}

/** Base class of every error the client throws. */
export declare class AIError extends Error {
  constructor(message: string, opts?: AIErrorOptions)
  /** HTTP status; 0 when there was no answer or the error came inside a stream. */
  readonly status: number
  readonly type: string
  /** The gateway's stable code: `budget_exceeded`, `rate_limited`, `content_blocked`, … */
  readonly code: string
  readonly requestId?: string
  /** Seconds from Retry-After. */
  readonly retryAfter?: number
}
/** 400 / 413. */
export declare class InvalidRequestError extends AIError {}
/** 401. */
export declare class AuthError extends AIError {}
/** 403. */
export declare class PermissionDeniedError extends AuthError {}
/** 402 budget_exceeded. */
export declare class BudgetExceededError extends AIError {
  constructor(message: string, opts?: AIErrorOptions & { resetsAt?: Date })
  /** When the exceeded budget period resets. */
  readonly resetsAt?: Date
}
/** 404. */
export declare class NotFoundError extends AIError {}
/** 409 (a GitOps-owned budget). */
export declare class ConflictError extends AIError {}
/** 422 content_blocked. */
export declare class ContentBlockedError extends AIError {}
/** 429 rate_limited. */
export declare class RateLimitedError extends AIError {
  constructor(message: string, opts?: AIErrorOptions & { limit?: number; remaining?: number; reset?: number })
  readonly limit?: number
  readonly remaining?: number
  /** Seconds until the limit's window resets. */
  readonly reset?: number
}
/** 502. */
export declare class ProviderError extends AIError {}
/** 503. */
export declare class ServiceUnavailableError extends AIError {}
/** 504. */
export declare class ProviderTimeoutError extends AIError {}
/** No HTTP answer (refused, reset, timed out). */
export declare class ConnectionError extends AIError {}

/** Builds the typed error of a refusal body. */
export declare function errorFrom(r: { status: number; body: unknown; headers?: Headers; requestId?: string; now?: number }): AIError
/** Reads Retry-After (seconds or HTTP date) as seconds. */
export declare function parseRetryAfter(value: string | null | undefined, now?: number): number | undefined
/** Renders USD as the exact decimal string the budgets API receives ("1.00"). */
export declare function money(v: Money, field: string): string
/** Reads a Server-Sent Events body. */
export declare function readSSE(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): AsyncGenerator<{ event: string; data: string }>
