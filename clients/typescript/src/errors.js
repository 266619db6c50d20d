// Typed errors of the ai-orchestration client. Every refusal of the gateway is
// {"error":{"type","code","message"}}; the class is chosen by HTTP status (or, inside a stream
// where there is no status, by code), and `code` is always the gateway's stable code.

/** Base class of every error the client throws. */
export class AIError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, type?: string, code?: string, requestId?: string, retryAfter?: number, cause?: unknown}} [opts]
   */
  constructor(message, opts = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    /** HTTP status, 0 when the request never got an answer (network) or the error came inside a stream. */
    this.status = opts.status ?? 0
    /** Error class, OpenAI's naming (`insufficient_quota`, `rate_limit_error`, …). */
    this.type = opts.type ?? ''
    /** The gateway's stable code (`budget_exceeded`, `rate_limited`, `content_blocked`, …). */
    this.code = opts.code ?? ''
    /** X-Request-ID of the reply: quote it when asking about a failure; it is in the gateway's logs. */
    this.requestId = opts.requestId
    /** Seconds from Retry-After, when the gateway sent one. */
    this.retryAfter = opts.retryAfter
  }
}

/** 400 invalid_request (and 413 request_too_large): the request itself is wrong; do not retry. */
export class InvalidRequestError extends AIError {}

/** 401 invalid_api_key: no key, or a key the gateway does not know. */
export class AuthError extends AIError {}

/** 403 forbidden: the key may not act for that user or org, or is not an admin key. */
export class PermissionDeniedError extends AuthError {}

/** 402 budget_exceeded: a budget that applies would be overspent; nothing was charged. */
export class BudgetExceededError extends AIError {
  /** @param {string} message @param {ConstructorParameters<typeof AIError>[1] & {resetsAt?: Date}} [opts] */
  constructor(message, opts = {}) {
    super(message, opts)
    /** When the exceeded budget period resets (from Retry-After, else from the message). */
    this.resetsAt = opts.resetsAt
  }
}

/** 404 model_not_found / not_found. */
export class NotFoundError extends AIError {}

/** 409 conflict: e.g. a budget owned by GitOps, which the API never overwrites. */
export class ConflictError extends AIError {}

/** 422 content_blocked: a guardrail blocked the input or the output. */
export class ContentBlockedError extends AIError {}

/** 429 rate_limited: refused before anything was reserved or charged; retry after `retryAfter` seconds. */
export class RateLimitedError extends AIError {
  /** @param {string} message @param {ConstructorParameters<typeof AIError>[1] & {limit?: number, remaining?: number, reset?: number}} [opts] */
  constructor(message, opts = {}) {
    super(message, opts)
    /** X-RateLimit-Limit of the limit that refused. */
    this.limit = opts.limit
    /** X-RateLimit-Remaining. */
    this.remaining = opts.remaining
    /** X-RateLimit-Reset: seconds until the window resets. */
    this.reset = opts.reset
  }
}

/** 502 provider_error: the upstream provider answered with an error. */
export class ProviderError extends AIError {}

/** 503 no_usable_provider / store_unavailable / not_ready. */
export class ServiceUnavailableError extends AIError {}

/** 504 provider_timeout: the provider did not answer in time. */
export class ProviderTimeoutError extends AIError {}

/** The request got no HTTP answer (connection refused, reset, DNS, client-side timeout). */
export class ConnectionError extends AIError {}

/** @type {Record<number, typeof AIError>} */
const byStatus = {
  400: InvalidRequestError,
  401: AuthError,
  402: BudgetExceededError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  413: InvalidRequestError,
  422: ContentBlockedError,
  429: RateLimitedError,
  502: ProviderError,
  503: ServiceUnavailableError,
  504: ProviderTimeoutError,
}

/** @type {Record<string, number>} the status each code is sent with, for errors inside a stream */
const statusOfCode = {
  invalid_request: 400,
  request_too_large: 413,
  invalid_api_key: 401,
  forbidden: 403,
  budget_exceeded: 402,
  model_not_found: 404,
  not_found: 404,
  conflict: 409,
  content_blocked: 422,
  rate_limited: 429,
  provider_error: 502,
  no_usable_provider: 503,
  store_unavailable: 503,
  not_ready: 503,
  provider_timeout: 504,
}

/**
 * parseRetryAfter reads Retry-After (delta-seconds or an HTTP date) as seconds, undefined if absent or malformed.
 * @param {string | null | undefined} value
 * @param {number} [now]
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value.trim() === '') return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v)
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, Math.ceil((at - now) / 1000))
}

/** @param {string | null} v */
function intHeader(v) {
  if (v == null || !/^\d+$/.test(v.trim())) return undefined
  return Number(v)
}

/**
 * errorFrom builds the typed error of a refusal.
 * @param {{status: number, body: unknown, headers?: Headers, requestId?: string, now?: number}} r
 * @returns {AIError}
 */
export function errorFrom({ status, body, headers, requestId, now = Date.now() }) {
  /** @type {any} */
  const e = body && typeof body === 'object' && 'error' in body && body.error && typeof body.error === 'object' ? body.error : {}
  const code = typeof e.code === 'string' ? e.code : ''
  const type = typeof e.type === 'string' ? e.type : ''
  const message =
    typeof e.message === 'string' && e.message !== ''
      ? e.message
      : status
        ? `the gateway answered ${status}${code ? ` ${code}` : ''}`
        : `the gateway reported ${code || 'an error'}`
  const effective = status || statusOfCode[code] || 0
  const Cls = byStatus[effective] ?? AIError
  const retryAfter = parseRetryAfter(headers?.get('retry-after'), now)
  /** @type {any} */
  const opts = { status, type, code, requestId: requestId ?? headers?.get('x-request-id') ?? undefined, retryAfter }
  if (Cls === BudgetExceededError) {
    if (typeof e.resetsAt === 'string' && !Number.isNaN(Date.parse(e.resetsAt))) {
      opts.resetsAt = new Date(e.resetsAt)
    } else if (retryAfter !== undefined) {
      opts.resetsAt = new Date(now + retryAfter * 1000)
    } else {
      // The gateway's message ends with "resets at <RFC 3339>"; use it when no header made it through.
      const m = /resets at (\S+)$/.exec(message)
      if (m && !Number.isNaN(Date.parse(m[1]))) opts.resetsAt = new Date(m[1])
    }
  }
  if (Cls === RateLimitedError && headers) {
    opts.limit = intHeader(headers.get('x-ratelimit-limit'))
    opts.remaining = intHeader(headers.get('x-ratelimit-remaining'))
    opts.reset = intHeader(headers.get('x-ratelimit-reset'))
  }
  return new Cls(message, opts)
}
