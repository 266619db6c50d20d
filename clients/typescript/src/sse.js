// A minimal Server-Sent Events reader (the EventSource format: `event:` / `data:` lines, a blank
// line ends an event, `:` starts a comment, CR LF or LF line ends). No dependency: the streams
// of fetch's Response.body and TextDecoder are all it needs.

/**
 * readSSE yields the events of an event-stream body.
 * @param {ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>} body
 * @returns {AsyncGenerator<{event: string, data: string}>}
 */
export async function* readSSE(body) {
  const decoder = new TextDecoder()
  let buf = ''
  let event = ''
  /** @type {string[]} */
  let data = []
  /** @param {string} line */
  function* take(line) {
    if (line === '') {
      if (data.length > 0) yield { event: event || 'message', data: data.join('\n') }
      event = ''
      data = []
      return
    }
    if (line.startsWith(':')) return
    const i = line.indexOf(':')
    const field = i < 0 ? line : line.slice(0, i)
    let value = i < 0 ? '' : line.slice(i + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  for await (const chunk of iterate(body)) {
    buf += decoder.decode(chunk, { stream: true })
    let nl
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl)
      const sep = buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1
      // A lone CR at the very end may be the first half of CR LF: wait for more input.
      if (buf[nl] === '\r' && nl + 1 === buf.length) break
      buf = buf.slice(nl + sep)
      yield* take(line)
    }
  }
  buf += decoder.decode()
  if (buf !== '') yield* take(buf.replace(/\r$/, ''))
  yield* take('')
}

/**
 * @param {ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>} body
 * @returns {AsyncIterable<Uint8Array>}
 */
function iterate(body) {
  if (body && typeof (/** @type {any} */ (body))[Symbol.asyncIterator] === 'function') return /** @type {AsyncIterable<Uint8Array>} */ (body)
  const reader = /** @type {ReadableStream<Uint8Array>} */ (body).getReader()
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return
          yield value
        }
      } finally {
        reader.releaseLock()
      }
    },
  }
}
