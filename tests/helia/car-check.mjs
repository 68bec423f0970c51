// An independent CARv1 checker built on @ipld/car, @ipld/dag-pb and @ipld/dag-cbor (no musehub code).
//
//   node car-check.mjs <file.car | -> [--root <cid>] [--no-dups] [--timeout-ms 60000]
//
// Checks:
//   - the header decodes and says version 1; with --root, that CID is the one and only root;
//   - every block: its CID uses sha2-256 (identity and other hashes are rejected), and hashing its
//     bytes gives back the same CID (same version and codec);
//   - dag-pb (0x70) blocks decode with @ipld/dag-pb, dag-cbor (0x71) with @ipld/dag-cbor (strict:
//     no indefinite lengths, no duplicate keys, minimal integers), and both re-encode to exactly the
//     same bytes (canonical form); raw (0x55) blocks are bytes; any other codec is rejected;
//   - the file ends cleanly after the last block (a truncated section is an error);
//   - with --no-dups, no block appears twice.
// Success: one line {"ok":true,"version":1,"roots":[…],"blocks":[cid…],"bytes":<CAR file size>,
// "block_bytes":<sum of block data>,"duplicates":n} and exit 0.
// Failure: {"ok":false,"error":"…"} (plus {"error":…}) and exit 1; usage errors exit 2.

import { createReadStream } from 'node:fs'
import { out, fail, succeed, setup, parse, positiveInt, usageError, log } from './lib.mjs'

const USAGE = 'usage: node car-check.mjs <file.car | -> [--root <cid>] [--no-dups] [--timeout-ms N]'
const { values: opts, positionals } = parse(process.argv.slice(2), {
  root: { type: 'string' },
  'no-dups': { type: 'boolean', default: false },
  'timeout-ms': { type: 'string', default: '60000' }
}, USAGE)
if (positionals.length !== 1) usageError('expected exactly one CAR file (or - for stdin)', USAGE)
const timeoutMs = positiveInt(opts['timeout-ms'], '--timeout-ms', USAGE)
setup('car-check', timeoutMs)

const { CarBlockIterator } = await import('@ipld/car/iterator')
const dagPb = await import('@ipld/dag-pb')
const dagCbor = await import('@ipld/dag-cbor')
const { CID } = await import('multiformats/cid')
const { sha256 } = await import('multiformats/hashes/sha2')
const { equals } = await import('multiformats/bytes')

const RAW = 0x55
const SHA2_256 = 0x12
const IDENTITY = 0x00

let wantRoot = null
if (opts.root != null) {
  try {
    wantRoot = CID.parse(opts.root)
  } catch (err) {
    usageError(`bad --root ${JSON.stringify(opts.root)}: ${err.message}`, USAGE)
  }
}

function problem (message) {
  out({ ok: false, error: message })
  fail(message)
}

const path = positionals[0]
let fileBytes = 0
async function * source () {
  const stream = path === '-' ? process.stdin : createReadStream(path)
  for await (const chunk of stream) {
    fileBytes += chunk.byteLength
    yield chunk
  }
}

try {
  const iterator = await CarBlockIterator.fromIterable(source())
  if (iterator.version !== 1) problem(`CAR version ${iterator.version}, want 1`)
  const roots = await iterator.getRoots()
  if (wantRoot != null) {
    if (roots.length !== 1) problem(`${roots.length} roots (${roots.join(', ')}), want exactly ${wantRoot}`)
    if (!roots[0].equals(wantRoot)) problem(`root is ${roots[0]}, want ${wantRoot}`)
  }

  const blocks = []
  const seen = new Set()
  let duplicates = 0
  let blockBytes = 0
  let index = 0
  for await (const { cid, bytes } of iterator) {
    const where = `block #${index} ${cid}`
    index++
    const mh = cid.multihash.code
    if (mh === IDENTITY) problem(`${where}: identity-hash CID (identity blocks must never be in a CAR)`)
    if (mh !== SHA2_256) problem(`${where}: multihash 0x${mh.toString(16)} is not sha2-256`)
    const digest = await sha256.digest(bytes)
    const again = cid.version === 0 ? CID.createV0(digest) : CID.createV1(cid.code, digest)
    if (!again.equals(cid)) problem(`${where}: its ${bytes.byteLength} bytes hash to ${again}`)

    if (cid.code === dagPb.code) {
      let node
      try {
        node = dagPb.decode(bytes)
      } catch (err) {
        problem(`${where}: dag-pb decode failed: ${err.message}`)
      }
      if (!equals(dagPb.encode(node), bytes)) problem(`${where}: dag-pb block is not in canonical form`)
    } else if (cid.code === dagCbor.code) {
      let value
      try {
        value = dagCbor.decode(bytes)
      } catch (err) {
        problem(`${where}: dag-cbor decode failed: ${err.message}`)
      }
      if (!equals(dagCbor.encode(value), bytes)) problem(`${where}: dag-cbor block is not in canonical form`)
    } else if (cid.code !== RAW) {
      problem(`${where}: unsupported codec 0x${cid.code.toString(16)} (only raw, dag-pb, dag-cbor)`)
    }

    const key = cid.toString()
    if (seen.has(key)) {
      duplicates++
      if (opts['no-dups']) problem(`${where}: duplicate block (--no-dups)`)
    }
    seen.add(key)
    blocks.push(key)
    blockBytes += bytes.byteLength
  }

  out({
    ok: true,
    version: iterator.version,
    roots: roots.map(r => r.toString()),
    blocks,
    bytes: fileBytes,
    block_bytes: blockBytes,
    duplicates
  })
} catch (err) {
  log(err?.stack ?? String(err))
  problem(`CAR does not parse: ${err?.message ?? String(err)}`)
}
succeed()
