// Builds and starts the real data plane (cmd/dataplane) on a copy of the dev sample folder, for
// the integration tests. Needs the Go toolchain (or AI_DATAPLANE_BIN pointing at a built binary).
import { execFile, spawn } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/** The repository root (clients/typescript/testutil → ../../..). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

async function freePort() {
  const srv = createServer()
  await new Promise((r) => srv.listen(0, '127.0.0.1', () => r(undefined)))
  const port = /** @type {import('node:net').AddressInfo} */ (srv.address()).port
  await new Promise((r) => srv.close(() => r(undefined)))
  return port
}

/**
 * startDataplane builds cmd/dataplane (unless AI_DATAPLANE_BIN is set), copies
 * config/samples/dev into a temp folder (the budgets API writes manifests there), starts the
 * gateway on a free 127.0.0.1 port and waits for /readyz.
 * @param {{readyTimeoutMs?: number}} [o]
 */
export async function startDataplane(o = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'aio-ts-'))
  const manifests = join(dir, 'manifests')
  cpSync(join(repoRoot, 'config', 'samples', 'dev'), manifests, { recursive: true })
  for (const f of readdirSync(manifests)) if (!/\.ya?ml$/.test(f)) rmSync(join(manifests, f))
  let bin = process.env.AI_DATAPLANE_BIN
  if (!bin) {
    bin = join(dir, 'dataplane')
    try {
      await promisify(execFile)('go', ['build', '-o', bin, './cmd/dataplane'], { cwd: repoRoot, timeout: 10 * 60_000, maxBuffer: 16 << 20 })
    } catch (err) {
      rmSync(dir, { recursive: true, force: true })
      throw new Error(`failed to build cmd/dataplane (needs Go; or set AI_DATAPLANE_BIN): ${/** @type {any} */ (err).stderr ?? err}`)
    }
  }
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(bin, ['--manifests', manifests, '--addr', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (b) => {
    log = (log + b.toString()).slice(-8192)
  })
  const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })))

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
    rmSync(dir, { recursive: true, force: true })
  }

  const deadline = Date.now() + (o.readyTimeoutMs ?? 30_000)
  let exitedEarly = false
  exited.then(() => {
    exitedEarly = true
  })
  for (;;) {
    if (exitedEarly) {
      await stop()
      throw new Error(`the data plane exited before it was ready:\n${log}`)
    }
    try {
      const res = await fetch(url + '/readyz')
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`the data plane was not ready within ${o.readyTimeoutMs ?? 30_000} ms:\n${log}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { url, manifests, stop, log: () => log }
}
