// @nself/ai-orchestration — the TypeScript/JavaScript client of the ai-orchestration gateway.
// Zero runtime dependencies: fetch, AbortController, TextDecoder and URL, as in Node 20+, Deno,
// Bun and browsers. Types are in ../index.d.ts.

import {
  AIError,
  ConnectionError,
  InvalidRequestError,
  errorFrom,
} from './errors.js'
import { readSSE } from './sse.js'

export * from './errors.js'
export { readSSE } from './sse.js'

const DEFAULT_PORT = 3109

/** @returns {Record<string, string | undefined>} */
function env() {
  return /** @type {any} */ (globalThis).process?.env ?? {}
}

/**
 * Retry policy (conservative on purpose: a retried chat must never be charged twice).
 *
 * - 429 rate_limited: always retried (any method) when Retry-After is at most maxRetryAfter
 *   seconds — the gateway refuses before reserving or charging anything.
 * - 503 not_ready / store_unavailable: always retried — both refuse before any provider call.
 * - 502, 503 (other codes), 504 and network failures: retried only for idempotent calls (GET, PUT,
 *   DELETE and moderate, which is free and calls no provider). Chat, embed and summarize are not
 *   retried on these: the provider may have done (and billed) the work, and the gateway already
 *   fails over between its targets itself.
 * - Connection refused (the request never left): retried for every call.
 * - Everything else (400, 401, 402, 403, 404, 409, 422, 500): never retried.
 */
const PRE_CALL_503 = new Set(['not_ready', 'store_unavailable'])

/**
 * @param {number} ms
 * @param {AbortSignal | undefined} signal
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve(undefined)
    }, ms)
    function onAbort() {
      clearTimeout(t)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * money renders USD for the budgets API as an exact decimal string ("1.00", "0.0023").
 * @param {unknown} v
 * @param {string} field
 */
export function money(v, field) {
  if (typeof v === 'string') {
    if (!/^\d+(\.\d{1,9})?$/.test(v)) throw new InvalidRequestError(`${field} must be a decimal amount in USD such as "1.00", got ${JSON.stringify(v)}`, { code: 'invalid_request' })
    return v
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new InvalidRequestError(`${field} must be a non-negative amount in USD, got ${String(v)}`, { code: 'invalid_request' })
  }
  if (v >= 1e12) throw new InvalidRequestError(`${field} of ${v} USD is not a plausible budget`, { code: 'invalid_request' })
  // Nine decimals is the gateway's resolution (nano-USD); keep at least cents: 1 → "1.00".
  let s = v.toFixed(9).replace(/0+$/, '')
  const decimals = s.length - s.indexOf('.') - 1
  if (decimals < 2) s += '0'.repeat(2 - decimals)
  return s
}

/** @param {Record<string, unknown>} q */
function queryString(q) {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v))
  const s = p.toString()
  return s ? `?${s}` : ''
}

/** @param {any} obj @param {string | undefined} requestId */
function withRequestId(obj, requestId) {
  if (obj && typeof obj === 'object' && requestId) Object.defineProperty(obj, 'requestId', { value: requestId, enumerable: false })
  return obj
}

/** @param {string | {scope: string, subject: string}} target */
function budgetTarget(target) {
  if (typeof target === 'string' && target !== '') return { scope: 'user', subject: target }
  if (target && typeof target === 'object' && target.scope && target.subject) return target
  throw new InvalidRequestError('a budget target is a user id or {scope, subject}', { code: 'invalid_request' })
}

/** The client of one gateway. */
export class AIService {
  #baseURL
  #apiKey
  #fetch
  #maxRetries
  #maxRetryAfter
  #timeout
  #headers

  /** @param {import('../index.js').AIServiceOptions} [options] */
  constructor(options = {}) {
    const e = env()
    const base = options.baseURL ?? e.AI_ORCHESTRATION_URL ?? `http://localhost:${e.AI_ORCHESTRATION_PORT ?? DEFAULT_PORT}`
    this.#baseURL = base.replace(/\/+$/, '')
    this.#apiKey = options.apiKey ?? e.AI_ORCHESTRATION_API_KEY
    this.#fetch = options.fetch ?? globalThis.fetch
    if (typeof this.#fetch !== 'function') throw new TypeError('no fetch implementation: pass options.fetch')
    this.#maxRetries = Math.max(0, options.maxRetries ?? 2)
    this.#maxRetryAfter = options.maxRetryAfter ?? 10
    this.#timeout = options.timeout ?? 60_000
    this.#headers = { ...(options.headers ?? {}) }
  }

  /** The gateway's base URL, without a trailing slash. */
  get baseURL() {
    return this.#baseURL
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, idempotent: boolean, signal?: AbortSignal, stream?: boolean}} o
   * @returns {Promise<{res: Response, json?: any, requestId?: string, ctrl: AbortController}>}
   */
  async #request(method, path, o) {
    const url = this.#baseURL + path
    /** @type {Record<string, string>} */
    const headers = { Accept: o.stream ? 'text/event-stream' : 'application/json', ...this.#headers }
    if (this.#apiKey) headers.Authorization = `Bearer ${this.#apiKey}`
    let body
    if (o.body !== undefined) {
      headers['Content-Type'] = 'application/json'
      body = JSON.stringify(o.body)
    }
    for (let attempt = 0; ; attempt++) {
      const ctrl = new AbortController()
      const onAbort = () => ctrl.abort(o.signal?.reason)
      if (o.signal?.aborted) throw o.signal.reason
      o.signal?.addEventListener('abort', onAbort, { once: true })
      const timer = setTimeout(() => ctrl.abort(new ConnectionError(`no answer from ${method} ${path} within ${this.#timeout} ms`, { code: 'timeout' })), this.#timeout)
      const done = () => {
        clearTimeout(timer)
        if (!o.stream) o.signal?.removeEventListener('abort', onAbort)
      }
      /** @type {Response} */
      let res
      try {
        res = await this.#fetch(url, { method, headers, body, signal: ctrl.signal })
      } catch (err) {
        done()
        if (o.signal?.aborted) throw o.signal.reason
        const reason = ctrl.signal.aborted ? ctrl.signal.reason : err
        const refused = /** @type {any} */ (err)?.cause?.code === 'ECONNREFUSED'
        if (attempt < this.#maxRetries && (o.idempotent || refused)) {
          await sleep(this.#backoff(attempt), o.signal)
          continue
        }
        if (reason instanceof AIError) throw reason
        throw new ConnectionError(`failed to reach the gateway at ${url}: ${/** @type {any} */ (err)?.cause?.message ?? /** @type {any} */ (err)?.message ?? err}`, { cause: err })
      }
      const requestId = res.headers.get('x-request-id') ?? undefined
      if (res.ok && o.stream) {
        clearTimeout(timer) // a stream may take as long as the model needs
        return { res, requestId, ctrl }
      }
      let text
      try {
        text = await res.text()
      } catch (err) {
        done()
        if (o.signal?.aborted) throw o.signal.reason
        const reason = ctrl.signal.aborted ? ctrl.signal.reason : err
        if (reason instanceof AIError) throw reason
        throw new ConnectionError(`failed to read the reply of ${method} ${path}`, { cause: err, status: res.status, requestId })
      }
      done()
      let json
      try {
        json = text === '' ? undefined : JSON.parse(text)
      } catch {
        json = undefined
      }
      if (res.ok) return { res, json, requestId, ctrl }

      const err = errorFrom({ status: res.status, body: json, headers: res.headers, requestId })
      if (err.message.startsWith('the gateway answered') && text && json === undefined) err.message += `: ${text.slice(0, 200)}`
      const delay = this.#retryDelay(err, o.idempotent, attempt)
      if (delay === undefined) throw err
      await sleep(delay, o.signal)
    }
  }

  /** @param {number} attempt */
  #backoff(attempt) {
    const base = Math.min(8000, 500 * 2 ** attempt)
    return base / 2 + Math.random() * (base / 2)
  }

  /**
   * How long to wait before retrying err, or undefined when it must not be retried.
   * @param {AIError} err @param {boolean} idempotent @param {number} attempt
   */
  #retryDelay(err, idempotent, attempt) {
    if (attempt >= this.#maxRetries) return undefined
    const ra = err.retryAfter
    if (err.status === 429) {
      if (ra === undefined) return this.#backoff(attempt)
      return ra <= this.#maxRetryAfter ? ra * 1000 : undefined
    }
    const retryable5xx = err.status === 502 || err.status === 503 || err.status === 504
    if (!retryable5xx) return undefined
    if (!idempotent && !(err.status === 503 && PRE_CALL_503.has(err.code))) return undefined
    if (ra !== undefined) return ra <= this.#maxRetryAfter ? ra * 1000 : undefined
    return this.#backoff(attempt)
  }

  /**
   * Chat completion. With `stream: true` it resolves to a {@link ChatStream} once the gateway
   * accepted the request (refusals such as 402 or 429 reject here, before any delta).
   * @param {any} req
   * @param {{signal?: AbortSignal}} [opts]
   */
  async chat(req, opts = {}) {
    if (req?.stream) {
      const { res, requestId, ctrl } = await this.#request('POST', '/api/ai/chat', { body: req, idempotent: false, signal: opts.signal, stream: true })
      return new ChatStream(res, ctrl, requestId)
    }
    const { json, requestId } = await this.#request('POST', '/api/ai/chat', { body: req, idempotent: false, signal: opts.signal })
    return withRequestId(json, requestId)
  }

  /** @param {any} req @param {{signal?: AbortSignal}} [opts] */
  async embed(req, opts = {}) {
    const { json, requestId } = await this.#request('POST', '/api/ai/embed', { body: req, idempotent: false, signal: opts.signal })
    return withRequestId(json, requestId)
  }

  /** @param {string | any} req @param {{signal?: AbortSignal}} [opts] */
  async moderate(req, opts = {}) {
    const body = typeof req === 'string' ? { input: req } : req
    const { json, requestId } = await this.#request('POST', '/api/ai/moderate', { body, idempotent: true, signal: opts.signal })
    return withRequestId(json, requestId)
  }

  /** @param {any} req @param {{signal?: AbortSignal}} [opts] */
  async summarize(req, opts = {}) {
    const { json, requestId } = await this.#request('POST', '/api/ai/summarize', { body: req, idempotent: false, signal: opts.signal })
    return withRequestId(json, requestId)
  }

  /**
   * Creates or replaces the API-managed budget of a user (`setBudget('user-123', …)`) or of any
   * scope (`setBudget({scope: 'org', subject: 'acme'}, …)`). Amounts are USD, numbers or decimal
   * strings; they are sent as exact decimal strings. Admin keys only.
   * @param {string | {scope: string, subject: string}} target
   * @param {any} limits
   * @param {{signal?: AbortSignal}} [opts]
   */
  async setBudget(target, limits, opts = {}) {
    const { scope, subject } = budgetTarget(target)
    if (!limits || typeof limits !== 'object') throw new InvalidRequestError('setBudget needs {daily?, weekly?, monthly?}', { code: 'invalid_request' })
    /** @type {Record<string, unknown>} */
    const body = {}
    for (const p of ['daily', 'weekly', 'monthly']) if (limits[p] !== undefined && limits[p] !== null) body[p] = money(limits[p], p)
    if (Object.keys(body).length === 0) throw new InvalidRequestError('setBudget needs at least one of daily, weekly or monthly', { code: 'invalid_request' })
    for (const k of ['action', 'downgradeTo', 'alertThresholds', 'timeZone']) if (limits[k] !== undefined) body[k] = limits[k]
    const path = `/api/ai/budgets/${encodeURIComponent(scope)}/${encodeURIComponent(subject)}`
    const { json, requestId } = await this.#request('PUT', path, { body, idempotent: true, signal: opts.signal })
    return withRequestId(json ?? { scope, subject }, requestId)
  }

  /**
   * Budgets with limits, spend, remaining and forecast; all of them, or those of one user id or
   * {scope?, subject?}. Admin keys only.
   * @param {string | {scope?: string, subject?: string}} [filter]
   * @param {{signal?: AbortSignal}} [opts]
   */
  async getBudgets(filter, opts = {}) {
    const f = typeof filter === 'string' ? { scope: 'user', subject: filter } : (filter ?? {})
    const { json, requestId } = await this.#request('GET', `/api/ai/budgets${queryString({ scope: f.scope, subject: f.subject })}`, { idempotent: true, signal: opts.signal })
    const list = Array.isArray(json) ? json : (json?.budgets ?? [])
    return withRequestId(list, requestId)
  }

  /**
   * Deletes the API-managed budget of a user id or {scope, subject}. Admin keys only.
   * @param {string | {scope: string, subject: string}} target
   * @param {{signal?: AbortSignal}} [opts]
   */
  async deleteBudget(target, opts = {}) {
    const { scope, subject } = budgetTarget(target)
    await this.#request('DELETE', `/api/ai/budgets/${encodeURIComponent(scope)}/${encodeURIComponent(subject)}`, { idempotent: true, signal: opts.signal })
  }

  /**
   * Usage of a user over a window ('7d', '24h', '30m'; default 30d), with the budgets that apply
   * and `remaining` (the smallest headroom; null when no budget applies).
   * @param {string | {userId?: string, orgId?: string, window?: string}} who
   * @param {string} [window]
   * @param {{signal?: AbortSignal}} [opts]
   */
  async getUsage(who, window, opts = {}) {
    const q = typeof who === 'string' ? { userId: who, window } : { ...who, window: window ?? who?.window }
    const { json, requestId } = await this.#request('GET', `/api/ai/usage${queryString(q)}`, { idempotent: true, signal: opts.signal })
    return withRequestId(json, requestId)
  }

  /**
   * Cost breakdown ({groupBy: 'model' | 'provider' | 'user'}) and forecast to the end of the month.
   * @param {{orgId?: string, userId?: string, window?: string, groupBy?: string}} [q]
   * @param {{signal?: AbortSignal}} [opts]
   */
  async getCosts(q = {}, opts = {}) {
    const { json, requestId } = await this.#request('GET', `/api/ai/costs${queryString(q)}`, { idempotent: true, signal: opts.signal })
    return withRequestId(json, requestId)
  }

  /**
   * The models and route aliases the gateway serves (from the OpenAI-compatible /v1/models).
   * @param {{signal?: AbortSignal}} [opts]
   */
  async models(opts = {}) {
    const { json } = await this.#request('GET', '/v1/models', { idempotent: true, signal: opts.signal })
    return json?.data ?? []
  }
}

/**
 * A streamed chat: iterate it (`for await`) for `{type: 'delta', content}` events, ending with
 * one `{type: 'done', ...reply}` carrying usage and cost. Refusals inside the stream throw the
 * same typed errors as plain calls.
 */
export class ChatStream {
  #res
  #ctrl
  #consumed = false
  /** @type {any} */
  #final
  #content = ''

  /** @param {Response} res @param {AbortController} ctrl @param {string | undefined} requestId */
  constructor(res, ctrl, requestId) {
    this.#res = res
    this.#ctrl = ctrl
    /** X-Request-ID of the stream. */
    this.requestId = requestId
    /** X-AI-Provider: the provider serving the stream. */
    this.provider = res.headers.get('x-ai-provider') ?? undefined
    /** X-AI-Cache: true when the stream replays a cached reply. */
    this.cached = res.headers.get('x-ai-cache') === 'hit'
  }

  /** The text received so far. */
  get content() {
    return this.#content
  }

  /** The final reply (usage, cost…) once the done event arrived, else undefined. */
  get final() {
    return this.#final
  }

  /** Stops the stream (the gateway still settles what was generated). */
  abort() {
    this.#ctrl.abort()
  }

  async *[Symbol.asyncIterator]() {
    if (this.#consumed) throw new AIError('a ChatStream can be iterated once', { code: 'stream_consumed' })
    this.#consumed = true
    if (!this.#res.body) throw new ConnectionError('the stream has no body', { requestId: this.requestId })
    let finished = false
    try {
      for await (const ev of readSSE(this.#res.body)) {
        let data
        try {
          data = JSON.parse(ev.data)
        } catch {
          throw new AIError(`the stream sent a malformed ${ev.event} event`, { code: 'bad_stream', requestId: this.requestId })
        }
        if (ev.event === 'delta') {
          const content = typeof data.content === 'string' ? data.content : ''
          this.#content += content
          yield { type: 'delta', content }
        } else if (ev.event === 'done') {
          this.#final = withRequestId(data, this.requestId)
          finished = true
          yield { type: 'done', ...data }
          return
        } else if (ev.event === 'error') {
          finished = true
          throw errorFrom({ status: 0, body: data, requestId: this.requestId })
        }
        // Unknown event names are ignored: the gateway may add some.
      }
      finished = true
      throw new ConnectionError('the stream ended before its done event', { requestId: this.requestId })
    } catch (err) {
      if (err instanceof AIError) throw err
      if (this.#ctrl.signal.aborted) throw this.#ctrl.signal.reason ?? err
      throw new ConnectionError('the stream was cut', { cause: err, requestId: this.requestId })
    } finally {
      // A consumer that stopped early (break) must not leave the connection open.
      if (!finished) this.#ctrl.abort()
    }
  }

  /** Reads the whole stream and returns the final reply (content, usage, cost, cached…). */
  async finalReply() {
    if (!this.#consumed) for await (const _ of this) void _
    if (!this.#final) throw new ConnectionError('the stream ended before its done event', { requestId: this.requestId })
    return this.#final
  }
}
