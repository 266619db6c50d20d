import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readSSE } from '../src/index.js'

/** @param {string[]} pieces */
async function* chunks(pieces) {
  const enc = new TextEncoder()
  for (const p of pieces) yield enc.encode(p)
}

/** @param {string[]} pieces */
async function collect(pieces) {
  const out = []
  for await (const ev of readSSE(chunks(pieces))) out.push(ev)
  return out
}

test('events split across chunks at any byte are reassembled', async () => {
  const whole = 'event: delta\ndata: {"content":"Hé"}\n\nevent: done\ndata: {"cost":0.1}\n\n'
  const bytes = new TextEncoder().encode(whole)
  const enc = []
  for (const b of bytes) enc.push(new Uint8Array([b]))
  const out = []
  for await (const ev of readSSE((async function* () { yield* enc })())) out.push(ev)
  assert.deepEqual(out, [
    { event: 'delta', data: '{"content":"Hé"}' },
    { event: 'done', data: '{"cost":0.1}' },
  ])
})

test('CR LF line ends, comments and multi-line data follow the EventSource format', async () => {
  const out = await collect([': keep-alive\r\n', 'event: delta\r\ndata: a\r', '\ndata: b\r\n\r\n', 'data: [DONE]\r\n\r\n'])
  assert.deepEqual(out, [
    { event: 'delta', data: 'a\nb' },
    { event: 'message', data: '[DONE]' },
  ])
})

test('a last event without its blank line is still delivered', async () => {
  assert.deepEqual(await collect(['event: done\ndata: {}']), [{ event: 'done', data: '{}' }])
})

test('events without data are dropped', async () => {
  assert.deepEqual(await collect(['event: ping\n\n', 'data: x\n\n']), [{ event: 'message', data: 'x' }])
})
