// Runs the harness against itself (no Rust node): every helia.mjs mode between child processes
// on loopback (serve-car on CARs written here with CarWriter), then ipns-selftest.mjs and
// car-selftest.mjs. One JSON line per case, then a plain
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

/** Start `helia.mjs serve …` (or serve-car) with stdin as a pipe; resolves with its first JSON line. */
function startServe (args, mode = 'serve') {
  const child = spawn(process.execPath, [join(here, 'helia.mjs'), mode, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
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
    exited.then(({ code }) => reject(new Error(`${mode} exited ${code} before it was ready: ${stderr}`)))
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

// CARs for serve-car: A = a dag-cbor root linking a 200 KiB raw block; B = "hello world" (root)
// plus A's raw block again (a duplicate across CARs); a copy of A with one payload byte flipped;
// and a CAR whose only block is hashed with sha2-512.
const { CarWriter } = await import('@ipld/car/writer')
const dagCbor = await import('@ipld/dag-cbor')
const raw = await import('multiformats/codecs/raw')
const { CID } = await import('multiformats/cid')
const { sha256, sha512 } = await import('multiformats/hashes/sha2')
async function carBytes (roots, blocks) {
  const { writer, out: chunks } = CarWriter.create(roots)
  const collected = (async () => {
    const parts = []
    for await (const c of chunks) parts.push(c)
    return Buffer.concat(parts)
  })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  return collected
}
const payload = randomBytes(200 * 1024)
const rawBlock = { cid: CID.createV1(raw.code, await sha256.digest(payload)), bytes: payload }
const cborBytes = dagCbor.encode({ name: 'musehub serve-car selftest', data: rawBlock.cid, size: payload.length })
const cborBlock = { cid: CID.createV1(dagCbor.code, await sha256.digest(cborBytes)), bytes: cborBytes }
const helloBytes = new TextEncoder().encode('hello world')
const helloBlock = { cid: CID.createV1(raw.code, await sha256.digest(helloBytes)), bytes: helloBytes }
const carA = join(dir, 'a.car')
const carABytes = await carBytes([cborBlock.cid], [cborBlock, rawBlock])
await writeFile(carA, carABytes)
const carB = join(dir, 'b.car')
await writeFile(carB, await carBytes([helloBlock.cid], [helloBlock, rawBlock]))
const carBad = join(dir, 'flipped.car')
const flipped = Buffer.from(carABytes)
const at = flipped.indexOf(payload.subarray(0, 64)) + 1000
flipped[at] ^= 0x01
await writeFile(carBad, flipped)
const sha512Bytes = new TextEncoder().encode('not sha2-256')
const sha512Block = { cid: CID.createV1(raw.code, await sha512.digest(sha512Bytes)), bytes: sha512Bytes }
const carSha512 = join(dir, 'sha512.car')
await writeFile(carSha512, await carBytes([sha512Block.cid], [sha512Block]))

let server
let carServer
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

  carServer = startServe(['--car', carA, '--car', carB, '--dht-server', '--provide', '--timeout-ms', '120000'], 'serve-car')
  const carReady = await carServer.ready
  const carAddr = carReady.multiaddrs[0]
  await test('serve-car: ready line (roots, blocks, multiaddrs)', async () => {
    const roots = [cborBlock.cid.toString(), HELLO]
    check(helloBlock.cid.toString() === HELLO, `hello world block is ${helloBlock.cid}`)
    check(JSON.stringify(carReady.roots) === JSON.stringify(roots), JSON.stringify(carReady.roots))
    check(JSON.stringify(carReady.cids) === JSON.stringify(roots), JSON.stringify(carReady.cids))
    check(carReady.blocks === 3, `blocks ${carReady.blocks}, want 3 distinct`)
    check(carReady.cars.length === 2 && carReady.cars[0].blocks === 2 && carReady.cars[1].blocks === 2, JSON.stringify(carReady.cars))
    check(JSON.stringify(carReady.provided) === JSON.stringify(roots), JSON.stringify(carReady.provided))
    check(carAddr.startsWith('/ip4/127.0.0.1/tcp/') && carAddr.endsWith(`/p2p/${carReady.peer_id}`), carAddr)
    return carReady
  })

  await test('serve-car: fetch the dag-cbor root, its raw child and hello world over bitswap', async () => {
    const want = [cborBlock, rawBlock, helloBlock]
    const r = await run('helia.mjs', ['fetch', '--peer', carAddr, ...want.flatMap(b => ['--cid', b.cid.toString()])])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    want.forEach((b, i) => {
      const got = r.lines[i]
      const sha = createHash('sha256').update(b.bytes).digest('hex')
      check(got.cid === b.cid.toString() && got.size === b.bytes.byteLength && got.sha256 === sha, `${JSON.stringify(got)} != ${b.cid} ${b.bytes.byteLength} ${sha}`)
    })
    return r.lines.map(l => ({ cid: l.cid, size: l.size }))
  })

  await test('serve-car --provide: GET_PROVIDERS finds it for a CAR root', async () => {
    const r = await run('helia.mjs', ['fetch', '--peer', carAddr, '--find-providers', cborBlock.cid.toString()])
    check(r.code === 0, `exit ${r.code}: ${r.stderr}`)
    check(r.lines[0].providers.length === 1 && r.lines[0].providers[0] === carReady.peer_id, JSON.stringify(r.lines[0]))
  })

  await test('serve-car: stdin EOF stops it with exit 0', async () => {
    carServer.child.stdin.end()
    const { code } = await carServer.exited
    check(code === 0, `exit ${code}: ${carServer.stderr()}`)
    check(carServer.lines.at(-1).stopped === true, JSON.stringify(carServer.lines.at(-1)))
    carServer = null
  })

  await test('serve-car: a block whose bytes do not hash to its CID is refused (exit 1)', async () => {
    const r = await run('helia.mjs', ['serve-car', '--car', carBad])
    check(r.code === 1 && /hash to sha2-256/.test(r.lines.at(-1).error) && r.lines.length === 1, `exit ${r.code}: ${JSON.stringify(r.lines)}`)
    return r.lines.at(-1)
  })

  await test('serve-car: a sha2-512 block is refused (exit 1)', async () => {
    const r = await run('helia.mjs', ['serve-car', '--car', carSha512])
    check(r.code === 1 && /not sha2-256/.test(r.lines.at(-1).error) && r.lines.length === 1, `exit ${r.code}: ${JSON.stringify(r.lines)}`)
    return r.lines.at(-1)
  })

  await test('serve-car: no --car, or a serve option, is a usage error (exit 2)', async () => {
    const a = await run('helia.mjs', ['serve-car'])
    check(a.code === 2, `no --car: exit ${a.code}`)
    const b = await run('helia.mjs', ['serve-car', '--car', carA, '--file', small])
    check(b.code === 2, `--file: exit ${b.code}`)
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
  if (carServer != null) carServer.child.kill('SIGTERM')
  await rm(dir, { recursive: true, force: true })
}

process.stdout.write(`selftest: ${passed} passed, ${failed} failed\n`)
if (failed > 0) process.exit(EXIT_FAIL)
succeed()
