// Prints the UnixFS root CID (CIDv1, base32) that the reference JS importer gives a file.
//
// Usage: node unixfs-cid.mjs <file> [chunkSize maxChildrenPerNode]
//
// The import uses the IPIP-499 `unixfs-v1-2025` profile (raw leaves, CIDv1, sha2-256, 1 MiB
// fixed chunks, balanced layout, 1024 links per node). With the two optional numbers, the
// chunker and the layout width are overridden (a small tree shape for tests) while every other
// setting stays the profile's. Used by tests/unixfs_interop.rs to cross-check musehub's own
// importer (src/storage/unixfs.rs). Install once with `npm ci --prefix tests/js`.

import { readFile } from 'node:fs/promises'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

function usage (message) {
  process.stderr.write(`${message}\nusage: node unixfs-cid.mjs <file> [chunkSize maxChildrenPerNode]\n`)
  process.exit(2)
}

function positiveInt (text, what) {
  if (!/^[0-9]+$/.test(text)) usage(`${what} must be a positive integer, got ${JSON.stringify(text)}`)
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) usage(`${what} must be a positive integer, got ${text}`)
  return n
}

const args = process.argv.slice(2)
if (args.length !== 1 && args.length !== 3) usage('expected 1 or 3 arguments')
const [file, chunkArg, widthArg] = args

const options = { profile: 'unixfs-v1-2025' }
if (chunkArg !== undefined) {
  // Explicit chunker/layout take precedence over the profile's defaults (importer 17:
  // `options.chunker ?? fixedSize(profile size)`, `options.layout ?? balanced(profile width)`).
  options.chunker = fixedSize({ chunkSize: positiveInt(chunkArg, 'chunkSize') })
  options.layout = balanced({ maxChildrenPerNode: positiveInt(widthArg, 'maxChildrenPerNode') })
}

// The importer only needs `put`; keep the blocks in memory (inputs here are a few MiB).
const blocks = new Map()
const blockstore = {
  put (cid, bytes) {
    blocks.set(cid.toString(), bytes)
    return cid
  },
  get (cid) {
    const bytes = blocks.get(cid.toString())
    if (bytes === undefined) throw new Error(`block not found: ${cid}`)
    return bytes
  }
}

const content = new Uint8Array(await readFile(file))
let root
for await (const entry of importer([{ content }], blockstore, options)) {
  root = entry.cid
}
if (root === undefined) {
  process.stderr.write('importer returned no entry\n')
  process.exit(1)
}
process.stdout.write(`${root.toV1().toString()}\n`)
