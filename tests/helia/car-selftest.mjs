// Self-test of car-check.mjs: writes CARs with @ipld/car's CarWriter into a temp dir, checks that
// good ones pass (and match the byte vectors of shared/ipfs-specs.md §3.6) and that broken ones
// (flipped byte in a block or in the header, truncation, identity block, wrong root, non-canonical
// dag-cbor, duplicates under --no-dups) fail. Prints one JSON line per case, then {"ok":true}.
//   node car-selftest.mjs [--timeout-ms 60000]

import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { out, log, fail, succeed, setup, parse, positiveInt, importFile, memoryBlockstore } from './lib.mjs'

const USAGE = 'usage: node car-selftest.mjs [--timeout-ms N]'
const { values: opts } = parse(process.argv.slice(2), { 'timeout-ms': { type: 'string', default: '60000' } }, USAGE)
setup('car-selftest', positiveInt(opts['timeout-ms'], '--timeout-ms', USAGE))

const { CarWriter } = await import('@ipld/car/writer')
const dagPb = await import('@ipld/dag-pb')
const dagCbor = await import('@ipld/dag-cbor')
const raw = await import('multiformats/codecs/raw')
const { CID } = await import('multiformats/cid')
const { sha256 } = await import('multiformats/hashes/sha2')
const { identity } = await import('multiformats/hashes/identity')

const here = dirname(fileURLToPath(import.meta.url))
const dir = await mkdtemp(join(tmpdir(), 'car-selftest-'))

async function car (roots, blocks) {
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

async function block (codec, bytes) {
  return { cid: CID.createV1(codec, await sha256.digest(bytes)), bytes }
}

function runCheck (file, args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'car-check.mjs'), file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => { stdout += b })
    child.stderr.on('data', (b) => { stderr += b })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, lines: stdout.split('\n').filter(Boolean).map(l => JSON.parse(l)), stderr }))
  })
}

let n = 0
async function expectPass (label, bytes, args = [], more = () => {}) {
  const file = join(dir, `case${n++}.car`)
  await writeFile(file, bytes)
  const res = await runCheck(file, args)
  const first = res.lines[0]
  if (res.code !== 0 || first?.ok !== true) throw new Error(`${label}: car-check failed (exit ${res.code}): ${JSON.stringify(res.lines)} ${res.stderr}`)
  more(first)
  out({ case: label, expect: 'pass', exit: res.code, result: first })
}

async function expectFail (label, bytes, args = []) {
  const file = join(dir, `case${n++}.car`)
  await writeFile(file, bytes)
  const res = await runCheck(file, args)
  const first = res.lines[0]
  if (res.code !== 1 || first?.ok !== false) throw new Error(`${label}: car-check should have failed with exit 1, got ${res.code}: ${JSON.stringify(res.lines)}`)
  out({ case: label, expect: 'fail', exit: res.code, error: first.error })
}

function check (cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`)
}

try {
  // 1. "hello world" raw block: 107 bytes exactly as in §3.6.
  const hello = await block(raw.code, new TextEncoder().encode('hello world'))
  const helloCar = await car([hello.cid], [hello])
  const helloHex = '3aa265726f6f747381d82a58250001551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde96776657273696f6e01' +
    '2f' + '01551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9' + '68656c6c6f20776f726c64'
  check(helloCar.toString('hex') === helloHex, 'hello world CAR bytes (§3.6)')
  await expectPass('hello world raw block (107 B vector)', helloCar, ['--root', hello.cid.toString()], (r) => check(r.bytes === 107 && r.blocks.length === 1, 'hello sizes'))

  // 2. The 3 MiB pattern file (byte i = i mod 251), unixfs-v1-2025, DFS order, dups=n:
  //    3,146,101 bytes, sha256 342a161c… (§3.6).
  const pattern = new Uint8Array(3 * 1024 * 1024)
  for (let i = 0; i < pattern.length; i++) pattern[i] = i % 251
  const patternFile = join(dir, 'pattern.bin')
  await writeFile(patternFile, pattern)
  const bs = memoryBlockstore()
  const root = await importFile(patternFile, bs)
  check(root.cid.toString() === 'bafybeihzpjrbcpjpzcx4yxh3hasnjidsikmwmsrli7hhamhny5iueulu5a', '3 MiB root CID')
  const rootBytes = bs.get(root.cid)
  const dfs = [{ cid: root.cid, bytes: rootBytes }, ...dagPb.decode(rootBytes).Links.map(l => ({ cid: l.Hash, bytes: bs.get(l.Hash) }))]
  const patternCar = await car([root.cid], dfs)
  check(patternCar.byteLength === 3146101, `3 MiB CAR is ${patternCar.byteLength} B`)
  check(createHash('sha256').update(patternCar).digest('hex') === '342a161c2760b2e4fb35ae517b708bef0dbd9c24b002bcbfd75376804552d651', '3 MiB CAR sha256 (§3.6)')
  await expectPass('3 MiB unixfs file, DFS (3,146,101 B vector)', patternCar, ['--root', root.cid.toString(), '--no-dups'],
    (r) => check(r.blocks.length === 4 && r.blocks[0] === root.cid.toString() && r.block_bytes === 3145728 + 159, '3 MiB blocks'))

  // 3. dag-cbor block (CIDv1) and a CIDv0 dag-pb block, two roots, via stdin too.
  const cbor = await block(dagCbor.code, dagCbor.encode({ hello: 'world', link: hello.cid, n: 1 }))
  const emptyDir = new Uint8Array([0x0a, 0x02, 0x08, 0x01])
  const v0 = { cid: CID.createV0(await sha256.digest(emptyDir)), bytes: emptyDir }
  check(v0.cid.toString() === 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn', 'CIDv0 empty dir')
  const mixed = await car([cbor.cid, v0.cid], [cbor, v0, hello])
  await expectPass('dag-cbor + CIDv0 dag-pb + raw, two roots', mixed)
  await expectFail('two roots with --root', mixed, ['--root', cbor.cid.toString()])

  // Broken ones.
  const flipData = Buffer.from(helloCar); flipData[flipData.length - 1] ^= 0x01
  await expectFail('flipped byte in block data', flipData)
  const flipHeader = Buffer.from(helloCar); flipHeader[3] ^= 0x01 // inside "roots"
  await expectFail('flipped byte in header', flipHeader)
  const flipBig = Buffer.from(patternCar); flipBig[2_000_000] ^= 0x80
  await expectFail('flipped byte inside a 1 MiB leaf', flipBig)
  await expectFail('truncated last section', patternCar.subarray(0, patternCar.byteLength - 10))
  await expectFail('wrong --root', helloCar, ['--root', root.cid.toString()])
  const idBlock = { cid: CID.createV1(raw.code, identity.digest(new TextEncoder().encode('hi'))), bytes: new TextEncoder().encode('hi') }
  await expectFail('identity block', await car([hello.cid], [hello, idBlock]))
  // Non-canonical dag-cbor: map keys out of length-first order ({"bb":1,"a":2}), correctly hashed.
  const badCbor = new Uint8Array([0xa2, 0x62, 0x62, 0x62, 0x01, 0x61, 0x61, 0x02])
  await expectFail('non-canonical dag-cbor (key order)', await car([hello.cid], [await block(dagCbor.code, badCbor)]))
  // dag-pb with Data before Links (0x0a… then 0x12…): strict decoders reject it.
  const link = dagPb.encode({ Links: [{ Hash: hello.cid, Name: '', Tsize: 11 }] })
  const badPb = new Uint8Array([0x0a, 0x02, 0x08, 0x02, ...link])
  await expectFail('dag-pb with Data before Links', await car([hello.cid], [await block(dagPb.code, badPb)]))
  await expectFail('duplicate block with --no-dups', await car([hello.cid], [hello, hello]), ['--no-dups'])
  await expectPass('duplicate block allowed without --no-dups', await car([hello.cid], [hello, hello]), [], (r) => check(r.duplicates === 1, 'dup count'))
  await expectFail('not a CAR at all', Buffer.from('this is not a car file'))

  // stdin
  const viaStdin = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'car-check.mjs'), '-'], { stdio: ['pipe', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (b) => { stdout += b })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, line: stdout.split('\n')[0] }))
    child.stdin.end(helloCar)
  })
  check(viaStdin.code === 0 && JSON.parse(viaStdin.line).ok === true, `stdin: ${JSON.stringify(viaStdin)}`)
  out({ case: 'CAR on stdin', expect: 'pass', exit: 0 })
  out({ ok: true, cases: n + 1 })
} catch (err) {
  log(err?.stack ?? String(err))
  await rm(dir, { recursive: true, force: true })
  fail(err?.message ?? String(err))
}
await rm(dir, { recursive: true, force: true })
succeed()
