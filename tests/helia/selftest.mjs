// Runs the harness against itself (no Rust node): every helia.mjs mode between child processes
// on loopback, then ipns-selftest.mjs and car-selftest.mjs. One JSON line per case, then a plain
// "selftest: N passed, N failed" line; exit 0 only if all passed.
//   node selftest.mjs [--bench-mib 20] [--timeout-ms 300000]

import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { randomBytes, createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { out, log, setup, parse, positiveInt, succeed, EXIT_FAIL } from './lib.mjs'

const USAGE = 'usage: node selftest.mjs [--bench-mib N] [--timeout-ms N]'
const { values: opts } = parse(process.argv.slice(2), {
  'bench-mib': { type: 'string', default: '20' },
  'timeout-ms': { type: 'string', default: '300000' }
}, USAGE)
const benchMib = positiveInt(opts['bench-mib'], '--bench-mib', USAGE)
setup('selftest', positiveInt(opts['timeout-ms'], '--timeout-ms', USAGE))

const here = dirname(fileURLToPath(import.meta.url))
const dir = await mkdtemp(join(tmpdir(), 'helia-selftest-'))
const HELLO = 'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e'
const MISSING = 'bafkreih7uy2yhx5gobvypuuexbvq22j2cypeqqfk2lc46225e7b3syq7pu'
const P3 = 'bafybeihzpjrbcpjpzcx4yxh3hasnjidsikmwmsrli7hhamhny5iueulu5a'
const P3_LEAF1 = 'bafkreidddocae7lltzjlkooe5a3tmiwsgazn7logjvqk7bzttsidpzhxne'

/** Run a script to completion; returns exit code and parsed stdout JSON lines. */
function run (script, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => { stdout += b })
    child.stderr.on('data', (b) => { stderr += b })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, lines: stdout.split('\n').filter(Boolean).map(l => JSON.parse(l)), stderr }))
  })
}

/** Start `helia.mjs serve …` with stdin as a pipe; resolves with its first JSON line. */
function startServe (args) {
  const child = spawn(process.execPath, [join(here, 'helia.mjs'), 'serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (b) => { stderr += b })
  const lines = []
  const rl = createInterface({ input: child.stdout })
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })))
  const ready = new Promise((resolve, reject) => {
    rl.on('line', (l) => {
      lines.push(JSON.parse(l))
      if (lines.length === 1) resolve(lines[0])
    })
    exited.then(({ code }) => reject(new Error(`serve exited ${code} before it was ready: ${stderr}`)))
  })
  return { child, ready, exited, lines, stderr: () => stderr }
}

let passed = 0
let failed = 0
async function test (name, fn) {
  const started = Date.now()
  try {
    const detail = await fn()
    passed++
    out({ test: name, ok: true, ms: Date.now() - started, ...(detail != null ? { detail } : {}) })
  } catch (err) {
    failed++
    out({ test: name, ok: false, error: err.message })
    log(`${name}: ${err.stack}`)
  }
}
function check (cond, what) {
  if (!cond) throw new Error(what)
}

// Inputs.
const small = join(dir, 'hello.txt')
await writeFile(small, 'hello world')
const pattern = new Uint8Array(3 * 1024 * 1024)
for (let i = 0; i < pattern.length; i++) pattern[i] = i % 251
const p3 = join(dir, 'pattern-3mib.bin')
await writeFile(p3, pattern)
const p3Sha = createHash('sha256').update(pattern).digest('hex')
const bench = join(dir, `random-${benchMib}mib.bin`)
await writeFile(bench, randomBytes(benchMib * 1024 * 1024))

let server
try {
  await test('import: 3 MiB pattern file gives the §4.7 vector CID', async () => {
    const r = await run('helia.mjs', ['import', '--file', p3])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[0].cid === P3 && r.lines[0].size === 3145728, JSON.stringify(r.lines[0]))
    return r.lines[0]
  })

  server = startServe(['--file', small, '--file', p3, '--dht-server', '--provide', '--timeout-ms', '120000'])
  const ready = await server.ready
  const addr = ready.multiaddrs[0]
  await test('serve: ready line', async () => {
    check(ready.cids[0] === HELLO && ready.cids[1] === P3, JSON.stringify(ready.cids))
    check(addr.startsWith('/ip4/127.0.0.1/tcp/') && addr.endsWith(`/p2p/${ready.peer_id}`), addr)
    return { peer_id: ready.peer_id, multiaddrs: ready.multiaddrs }
  })

  await test('fetch: raw blocks (hello world, a 1 MiB leaf) verified', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', addr, '--cid', HELLO, '--cid', P3_LEAF1])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[0].cid === HELLO && r.lines[0].size === 11 && r.lines[0].sha256 === 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9', JSON.stringify(r.lines[0]))
    check(r.lines[1].cid === P3_LEAF1 && r.lines[1].size === 1048576, JSON.stringify(r.lines[1]))
    return r.lines
  })

  await test('fetch --unixfs: 3 MiB file, bytes match', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', addr, '--unixfs', '--cid', P3])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[0].size === 3145728 && r.lines[0].sha256 === p3Sha, JSON.stringify(r.lines[0]))
    return r.lines[0]
  })

  await test('fetch --expect-missing: absent block reported missing', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', addr, '--cid', HELLO, '--expect-missing', MISSING])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[1].cid === MISSING && r.lines[1].missing === true, JSON.stringify(r.lines))
    return r.lines[1]
  })

  await test('fetch --expect-missing: a block the peer has makes it fail', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', addr, '--expect-missing', HELLO])
    check(r.code === 1 && /delivered/.test(r.lines.at(-1).error), `exit ${r.code}: ${JSON.stringify(r.lines)}`)
    return r.lines.at(-1)
  })

  await test('fetch --find-providers: kad-dht GET_PROVIDERS finds the server', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', addr, '--find-providers', P3, '--find-providers', MISSING])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[0].providers.length === 1 && r.lines[0].providers[0] === ready.peer_id, JSON.stringify(r.lines[0]))
    check(r.lines[1].providers.length === 0, JSON.stringify(r.lines[1]))
    return r.lines
  })

  await test('serve --dial: a second server dials the first', async () => {
    const second = startServe(['--file', small, '--dial', addr])
    try {
      const r = await second.ready
      check(r.dialed.length === 1 && r.dialed[0] === ready.peer_id, JSON.stringify(r))
      const f = await run('helia.mjs', ['fetch', '--peer', r.multiaddrs[0], '--cid', HELLO])
      check(f.code === 0, `fetch from the second server: exit ${f.code}`)
    } finally {
      second.child.stdin.end()
    }
    const { code } = await second.exited
    check(code === 0, `second serve exited ${code}: ${second.stderr()}`)
  })

  await test('fetch: overall --timeout-ms ends a hung fetch with exit 3', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', addr, '--cid', MISSING, '--timeout-ms', '2000'])
    check(r.code === 3 && /timeout/.test(r.lines.at(-1).error), `exit ${r.code}: ${JSON.stringify(r.lines)}`)
  })

  await test('fetch: unreachable peer fails cleanly', async () => {
    const dead = addr.replace(/\/tcp\/\d+\//, '/tcp/1/')
    const r = await run('helia.mjs', ['fetch', '--peer', dead, '--cid', HELLO, '--timeout-ms', '20000'])
    check(r.code === 1 && r.lines.at(-1).error != null, `exit ${r.code}: ${JSON.stringify(r.lines)}`)
    return r.lines.at(-1)
  })

  await test('fetch: a non-loopback peer is refused (usage error)', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', `/ip4/10.0.0.1/tcp/4001/p2p/${ready.peer_id}`, '--cid', HELLO])
    check(r.code === 2, `exit ${r.code}`)
  })

  await test('serve: stdin EOF stops it with exit 0', async () => {
    server.child.stdin.end()
    const { code } = await server.exited
    check(code === 0, `exit ${code}: ${server.stderr()}`)
    check(server.lines.at(-1).stopped === true, JSON.stringify(server.lines.at(-1)))
    server = null
  })

  await test(`bench-pair: ${benchMib} MiB Helia -> Helia over bitswap`, async () => {
    const r = await run('helia.mjs', ['bench-pair', '--file', bench, '--timeout-ms', '120000'])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[0].size === benchMib * 1024 * 1024 && r.lines[0].mib_per_s > 0, JSON.stringify(r.lines[0]))
    return r.lines[0]
  })

  await test('ipns-selftest.mjs (vectors, validator, DHT round trip)', async () => {
    const r = await run('ipns-selftest.mjs', [])
    check(r.code === 0 && r.lines.at(-1).ok === true, `exit ${r.code}: ${JSON.stringify(r.lines.at(-1))} ${r.stderr}`)
  })

  await test('car-selftest.mjs (good and broken CARs)', async () => {
    const r = await run('car-selftest.mjs', [])
    check(r.code === 0 && r.lines.at(-1).ok === true, `exit ${r.code}: ${JSON.stringify(r.lines.at(-1))} ${r.stderr}`)
  })
} finally {
  if (server != null) server.child.kill('SIGTERM')
  await rm(dir, { recursive: true, force: true })
}

process.stdout.write(`selftest: ${passed} passed, ${failed} failed\n`)
if (failed > 0) process.exit(EXIT_FAIL)
succeed()
