// A tiny local HTTP server that answers the client's requests with scripted replies and records
// what it received, so unit tests see exactly the bytes the client sends and parses.
import { createServer } from 'node:http'

/**
 * @typedef {{method: string, url: string, headers: import('node:http').IncomingHttpHeaders, body: string}} Recorded
 * @typedef {(req: Recorded, res: import('node:http').ServerResponse) => void | Promise<void>} Handler
 */

/**
 * startFake serves each request with the next handler of `script` (the last one repeats).
 * @param {Handler[]} script
 */
export async function startFake(script) {
  /** @type {Recorded[]} */
  const requests = []
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set()
  let closedEarly = 0
  const server = createServer(async (req, res) => {
    const chunks = []
    for await (const c of req) chunks.push(c)
    const rec = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
    requests.push(rec)
    res.on('close', () => {
      if (!res.writableFinished) closedEarly++
    })
    const h = script[Math.min(requests.length - 1, script.length - 1)]
    await h(rec, res)
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address())
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    /** How many replies the client hung up on before they finished. */
    get closedEarly() {
      return closedEarly
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(() => resolve(undefined)))
    },
  }
}

/**
 * json answers status with body and headers (X-Request-ID always).
 * @param {number} status @param {unknown} body @param {Record<string, string>} [headers]
 * @returns {Handler}
 */
export function json(status, body, headers = {}) {
  return (_req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'X-Request-ID': 'req-test-1', ...headers })
    res.end(JSON.stringify(body))
  }
}

/**
 * apiError answers the gateway's error body.
 * @param {number} status @param {string} type @param {string} code @param {string} message @param {Record<string, string>} [headers]
 */
export function apiError(status, type, code, message, headers = {}) {
  return json(status, { error: { type, code, message } }, headers)
}

/**
 * sse answers an event stream written in the given raw pieces (each flushed on its own), and ends
 * it unless `hang`.
 * @param {string[]} pieces @param {{hang?: boolean}} [o]
 * @returns {Handler}
 */
export function sse(pieces, o = {}) {
  return async (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'X-Request-ID': 'req-stream-1', 'X-AI-Provider': 'default/mock', 'X-AI-Cache': 'miss' })
    for (const p of pieces) {
      res.write(p)
      await new Promise((r) => setImmediate(r))
    }
    if (!o.hang) res.end()
  }
}
