// Self-test of the IPNS path, with no Rust node:
//  1. offline: build records with the `ipns` package from the Ed25519 seed 0x00..0x1f and compare
//     them byte for byte with the vectors in shared/ipfs-specs.md §2.8; run the validator on good
//     and broken records;
//  2. over the DHT (loopback only): an in-process js kad-dht *server* node receives the records
//     through PUT_VALUE from a client node, and `helia.mjs ipns --peer <server> --name <k51…>`
//     (a child process) must resolve them — V1+V2 with sequence 1, then V2-only with sequence 2.
//
// Prints one JSON line per check and a final `{"ok":true,…}`; exits 1 on the first failure.
//   node ipns-selftest.mjs [--offline] [--timeout-ms 60000]

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import {
  out, log, fail, succeed, setup, parse, positiveInt, createNode, loadDeps, dialAndIdentify,
  waitForRoutingTable, stopNode
} from './lib.mjs'

const USAGE = 'usage: node ipns-selftest.mjs [--offline] [--timeout-ms N]'
const { values: opts } = parse(process.argv.slice(2), {
  'timeout-ms': { type: 'string', default: '60000' },
  offline: { type: 'boolean', default: false }
}, USAGE)
const timeoutMs = positiveInt(opts['timeout-ms'], '--timeout-ms', USAGE)
const { signal: overall } = setup('ipns-selftest', timeoutMs)

const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
const ipns = await import('ipns')
const { ipnsValidator } = await import('ipns/validator')
const { base36 } = await import('multiformats/bases/base36')
const { CID } = await import('multiformats/cid')
const { sha256 } = await import('multiformats/hashes/sha2')

const hex = (u8) => Buffer.from(u8).toString('hex')
function check (cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`)
}

// ---- vectors from shared/ipfs-specs.md §2.8 ---------------------------------------------------
const V = {
  pub: '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8',
  peerId: '12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB',
  name: 'k51qzi5uqu5dg9ufswxt229ntzdy7p4125xzv5rtyjso89ajdujg6csfxcj260',
  dhtKey: '2f69706e732f00240801122003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8',
  kadId: 'eb9faadef8bfb82526a60ef7014583f919b2b7ad3705dc597efda863c3599a98',
  value: '/ipfs/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e',
  validity: '2030-01-01T00:00:00.000000000Z',
  data: 'a56354544c1b00000045d964b8006556616c756558412f697066732f6261666b726569667a6a7574337465326e6879656b6b6c737332376e68336b37327973636f377933326b6f616f356565693636776f6633366e35656853657175656e6365016856616c6964697479581e323033302d30312d30315430303a30303a30302e3030303030303030305a6c56616c69646974795479706500',
  sigV2: '00f661f50ff95915c1564bc516e44d6ef5d31a7dc88e4e533619a4781d721588bed6a8f08a2224493da09de7c3551da4ac5c6183d7dff0d08e490f9e02a27500',
  sigV1: '02cc369092fb59e0dac9a626bf73cb36600f3d1deac7eb00a5919155c759337bc8fff03476b7ebb6521d26eefc316165e6ab12ef830400eb270a0649c977e90c'
}

async function offline () {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i)
  const key = await generateKeyPairFromSeed('Ed25519', seed)
  const peerId = peerIdFromPrivateKey(key)
  check(hex(key.publicKey.raw) === V.pub, 'public key')
  check(peerId.toString() === V.peerId, `peer id ${peerId}`)
  const name = peerId.toCID().toString(base36)
  check(name === V.name, `name ${name}`)
  const routingKey = ipns.multihashToIPNSRoutingKey(key.publicKey.toMultihash())
  check(hex(routingKey) === V.dhtKey, 'DHT key')
  check(hex((await sha256.digest(routingKey)).digest) === V.kadId, 'Kademlia id')

  const ttlNs = 300_000_000_000n
  const v2 = await ipns.createIPNSRecordWithExpiration(key, V.value, 1n, V.validity, { v1Compatible: false, ttlNs })
  const v2Bytes = ipns.marshalIPNSRecord(v2)
  check(hex(v2.data) === V.data, `V2 data ${hex(v2.data)}`)
  check(hex(v2.signatureV2) === V.sigV2, 'V2 signature')
  check(v2Bytes.byteLength === 221 && hex(v2Bytes) === '4240' + V.sigV2 + '4a9801' + V.data, `V2-only record bytes (${v2Bytes.byteLength} B)`)

  const v1v2 = await ipns.createIPNSRecordWithExpiration(key, V.value, 1n, V.validity, { v1Compatible: true, ttlNs })
  const v1v2Bytes = ipns.marshalIPNSRecord(v1v2)
  check(hex(v1v2.signatureV1) === V.sigV1, 'V1 signature')
  check(v1v2Bytes.byteLength === 397, `V1+V2 record is ${v1v2Bytes.byteLength} B, want 397`)

  for (const [label, bytes] of [['v2-only', v2Bytes], ['v1+v2', v1v2Bytes]]) {
    await ipnsValidator(routingKey, bytes)
    const rec = ipns.unmarshalIPNSRecord(bytes)
    check(rec.value === V.value && rec.sequence === 1n && rec.validity === V.validity, `${label} unmarshal`)
    out({ check: `offline ${label} record valid`, bytes: bytes.byteLength, v1_compatible: rec.signatureV1 != null })
  }

  // Broken records must be rejected.
  const other = await generateKeyPairFromSeed('Ed25519', seed.map(b => b ^ 0xff))
  const otherKey = ipns.multihashToIPNSRoutingKey(other.publicKey.toMultihash())
  const badSig = v2Bytes.slice()
  badSig[10] ^= 0x01 // inside signatureV2
  const expired = ipns.marshalIPNSRecord(await ipns.createIPNSRecordWithExpiration(key, V.value, 1n, '2001-01-01T00:00:00.000000000Z', { v1Compatible: false }))
  const tooBig = ipns.marshalIPNSRecord(await ipns.createIPNSRecord(key, '/ipfs/' + 'a'.repeat(10_300), 1n, 60_000, { v1Compatible: false }))
  for (const [label, rk, bytes] of [
    ['broken signatureV2', routingKey, badSig],
    ['record under another name', otherKey, v2Bytes],
    ['expired record', routingKey, expired],
    ['record over 10 KiB', routingKey, tooBig]
  ]) {
    let rejected = null
    try {
      await ipnsValidator(rk, bytes)
    } catch (err) {
      rejected = `${err.name}: ${err.message}`
    }
    check(rejected != null, `validator accepted a ${label}`)
    out({ check: `offline ${label} rejected`, reason: rejected })
  }
  return { key, name, routingKey, v1v2Bytes, ttlNs }
}

function runChild (args) {
  const here = dirname(fileURLToPath(import.meta.url))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'helia.mjs'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (b) => { stdout += b })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, lines: stdout.split('\n').filter(Boolean).map(l => JSON.parse(l)) }))
    overall.addEventListener('abort', () => child.kill('SIGKILL'))
  })
}

async function overDht ({ key, name, routingKey, v1v2Bytes, ttlNs }) {
  await loadDeps()
  const server = await createNode({ listen: true, dhtServer: true, name: 'dht-server' })
  const client = await createNode({ listen: false, name: 'publisher' })
  try {
    const addr = server.libp2p.getMultiaddrs()[0]
    await dialAndIdentify(client, { ma: addr, peerId: server.libp2p.peerId }, { signal: overall })
    check(await waitForRoutingTable(client, server.libp2p.peerId), 'server is in the publisher routing table')

    const publish = async (bytes) => {
      // libp2p content routing = kad-dht: store locally, then PUT_VALUE to the closest peers.
      await client.libp2p.contentRouting.put(routingKey, bytes, { signal: overall })
    }
    const resolve = async (want) => {
      const { code, lines } = await runChild(['ipns', '--peer', addr.toString(), '--name', name, '--timeout-ms', '20000'])
      const res = lines.at(-1)
      check(code === 0, `helia.mjs ipns exited ${code}: ${JSON.stringify(res)}`)
      for (const [k, v] of Object.entries(want)) check(res[k] === v, `ipns ${k} = ${JSON.stringify(res[k])}, want ${JSON.stringify(v)}`)
      return res
    }

    await publish(v1v2Bytes)
    let res = await resolve({ value: V.value, sequence: 1, v1_compatible: true, helia_ipns_value: V.value })
    out({ check: 'DHT resolve V1+V2 seq 1', result: res })

    const cid2 = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
    const v2b = ipns.marshalIPNSRecord(await ipns.createIPNSRecord(key, cid2, 2n, 3_600_000, { v1Compatible: false, ttlNs }))
    await publish(v2b)
    res = await resolve({ value: `/ipfs/${cid2}`, sequence: 2, v1_compatible: false, helia_ipns_value: `/ipfs/${cid2}` })
    out({ check: 'DHT resolve V2-only seq 2', result: res })

    // A name with no record: the resolver must fail (non-zero exit), not hang or invent a value.
    const nobody = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(7))
    const nobodyName = peerIdFromPrivateKey(nobody).toCID().toString(base36)
    const none = await runChild(['ipns', '--peer', addr.toString(), '--name', nobodyName, '--timeout-ms', '20000'])
    check(none.code !== 0 && none.lines.at(-1)?.error != null, `resolving a name without a record exited ${none.code}`)
    out({ check: 'DHT resolve of an unpublished name fails', error: none.lines.at(-1).error })
  } finally {
    await stopNode(client, 'publisher')
    await stopNode(server, 'dht-server')
  }
}

try {
  const ctx = await offline()
  if (!opts.offline) await overDht(ctx)
  out({ ok: true, name: ctx.name })
} catch (err) {
  log(err?.stack ?? String(err))
  fail(err?.message ?? String(err))
}
succeed()
