// What the e2e test pushes to a fresh hub: a small but realistic song (Markdown README, lyrics,
// MIDI tracks, a WAV stem) with several commits on main, a second branch and a release, sent
// over the Muse wire protocol exactly as the CLI would (msgpack bodies, ids derived by the
// Muse rules). Only node's standard library: the msgpack coder is ours, below.

import { createHash } from 'node:crypto';

// ---------------------------------------------------------------------------------------------
// msgpack: the subset the wire protocol uses (maps with string keys, str, bin, arrays, nil,
// booleans, integers). Encoding picks the smallest form, as msgpack-python does.

/** A value to encode as msgpack `bin` (a Buffer or Uint8Array is `bin` as well). */
export class Bin {
  constructor(bytes) {
    this.bytes = Buffer.from(bytes);
  }
}

export function encode(value) {
  const parts = [];
  const byte = (...b) => parts.push(Buffer.from(b));
  const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); parts.push(b); };
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); parts.push(b); };
  const walk = (v) => {
    if (v === null || v === undefined) {
      byte(0xc0);
    } else if (v === false || v === true) {
      byte(v ? 0xc3 : 0xc2);
    } else if (typeof v === 'number' || typeof v === 'bigint') {
      if (typeof v === 'number' && !Number.isInteger(v)) throw new Error(`msgpack: floats are not used on the wire (${v})`);
      const n = BigInt(v);
      if (n >= 0n) {
        if (n < 0x80n) byte(Number(n));
        else if (n <= 0xffn) byte(0xcc, Number(n));
        else if (n <= 0xffffn) { byte(0xcd); u16(Number(n)); }
        else if (n <= 0xffffffffn) { byte(0xce); u32(Number(n)); }
        else { byte(0xcf); const b = Buffer.alloc(8); b.writeBigUInt64BE(n); parts.push(b); }
      } else if (n >= -32n) {
        byte(Number(n) & 0xff);
      } else if (n >= -0x80n) {
        byte(0xd0, Number(n) & 0xff);
      } else if (n >= -0x8000n) {
        byte(0xd1); const b = Buffer.alloc(2); b.writeInt16BE(Number(n)); parts.push(b);
      } else if (n >= -0x80000000n) {
        byte(0xd2); const b = Buffer.alloc(4); b.writeInt32BE(Number(n)); parts.push(b);
      } else {
        byte(0xd3); const b = Buffer.alloc(8); b.writeBigInt64BE(n); parts.push(b);
      }
    } else if (typeof v === 'string') {
      const s = Buffer.from(v, 'utf8');
      if (s.length < 32) byte(0xa0 | s.length);
      else if (s.length <= 0xff) byte(0xd9, s.length);
      else if (s.length <= 0xffff) { byte(0xda); u16(s.length); }
      else { byte(0xdb); u32(s.length); }
      parts.push(s);
    } else if (v instanceof Bin || v instanceof Uint8Array) {
      const b = v instanceof Bin ? v.bytes : Buffer.from(v);
      if (b.length <= 0xff) byte(0xc4, b.length);
      else if (b.length <= 0xffff) { byte(0xc5); u16(b.length); }
      else { byte(0xc6); u32(b.length); }
      parts.push(b);
    } else if (Array.isArray(v)) {
      if (v.length < 16) byte(0x90 | v.length);
      else if (v.length <= 0xffff) { byte(0xdc); u16(v.length); }
      else { byte(0xdd); u32(v.length); }
      v.forEach(walk);
    } else if (typeof v === 'object') {
      // A Map keeps any key order; a plain object keeps insertion order (our keys are never
      // integer-like, so that is the order they were written in).
      const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
      if (entries.length < 16) byte(0x80 | entries.length);
      else if (entries.length <= 0xffff) { byte(0xde); u16(entries.length); }
      else { byte(0xdf); u32(entries.length); }
      for (const [k, val] of entries) {
        if (typeof k !== 'string') throw new Error('msgpack: map keys must be strings');
        walk(k);
        walk(val);
      }
    } else {
      throw new Error(`msgpack: cannot encode ${typeof v}`);
    }
  };
  walk(value);
  return Buffer.concat(parts);
}

/** Decodes one msgpack value (maps become plain objects, bin a Buffer). */
export function decode(buf) {
  let i = 0;
  const need = (n) => { if (i + n > buf.length) throw new Error('msgpack: truncated'); };
  const take = (n) => { need(n); const s = buf.subarray(i, i + n); i += n; return s; };
  const str = (n) => take(n).toString('utf8');
  const arr = (n) => { const a = []; for (let k = 0; k < n; k++) a.push(read()); return a; };
  const map = (n) => { const o = {}; for (let k = 0; k < n; k++) { const key = read(); o[String(key)] = read(); } return o; };
  const read = () => {
    need(1);
    const t = buf[i++];
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return Buffer.from(take(take(1).readUInt8()));
      case 0xc5: return Buffer.from(take(take(2).readUInt16BE()));
      case 0xc6: return Buffer.from(take(take(4).readUInt32BE()));
      case 0xca: return take(4).readFloatBE();
      case 0xcb: return take(8).readDoubleBE();
      case 0xcc: return take(1).readUInt8();
      case 0xcd: return take(2).readUInt16BE();
      case 0xce: return take(4).readUInt32BE();
      case 0xcf: { const n = take(8).readBigUInt64BE(); return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n; }
      case 0xd0: return take(1).readInt8();
      case 0xd1: return take(2).readInt16BE();
      case 0xd2: return take(4).readInt32BE();
      case 0xd3: return Number(take(8).readBigInt64BE());
      case 0xd9: return str(take(1).readUInt8());
      case 0xda: return str(take(2).readUInt16BE());
      case 0xdb: return str(take(4).readUInt32BE());
      case 0xdc: return arr(take(2).readUInt16BE());
      case 0xdd: return arr(take(4).readUInt32BE());
      case 0xde: return map(take(2).readUInt16BE());
      case 0xdf: return map(take(4).readUInt32BE());
      default: throw new Error(`msgpack: unsupported type byte 0x${t.toString(16)}`);
    }
  };
  const v = read();
  if (i !== buf.length) throw new Error(`msgpack: ${buf.length - i} bytes after the value`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Muse ids (shared/muse-wire-protocol.md §1, src/muse.rs).

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** sha256 of the NUL-joined sorted "path\0object_id" entries. */
export function snapshotId(manifest) {
  const lines = Object.entries(manifest).map(([p, oid]) => `${p}\0${oid}`);
  lines.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return sha256(Buffer.from(lines.join('\0'), 'utf8'));
}

/** sha256 of [NUL-joined sorted parents, snapshot id, message, committed_at] joined by NUL. */
export function commitId(parents, snapshot, message, committedAt) {
  const ps = [...parents].sort().join('\0');
  return sha256(Buffer.from([ps, snapshot, message, committedAt].join('\0'), 'utf8'));
}

/** A commit and its snapshot shaped as the Muse CLI 0.1.5 sends them (src/wire/records.rs). */
export function record({ parents, files, message, committedAt, branch }) {
  const manifest = {};
  for (const [path, bytes] of Object.entries(files)) manifest[path] = sha256(bytes);
  const sid = snapshotId(manifest);
  const cid = commitId(parents, sid, message, committedAt);
  const commit = {
    commit_id: cid,
    repo_id: '5e3d0c1a-7a11-4ce0-9d1e-000000000e2e',
    branch,
    snapshot_id: sid,
    message,
    committed_at: committedAt,
    parent_commit_id: parents[0] ?? null,
    parent2_commit_id: parents[1] ?? null,
    author: 'alice',
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
    test_runs: 0,
  };
  const snapshot = { snapshot_id: sid, manifest, created_at: committedAt };
  return { id: cid, snapshotId: sid, message, committedAt, files, commit, snapshot };
}

// ---------------------------------------------------------------------------------------------
// The song's files.

/** A MIDI variable-length quantity. */
function vlq(n) {
  const out = [n & 0x7f];
  for (n >>= 7; n > 0; n >>= 7) out.unshift((n & 0x7f) | 0x80);
  return out;
}

/**
 * A format-0 Standard MIDI File (480 ticks per quarter, 120 bpm, 4/4) holding `notes`:
 * [startTick, lengthTicks, key, velocity] on `channel`.
 */
export function midiFile(name, channel, notes) {
  const events = [];
  for (const [start, len, key, vel] of notes) {
    events.push([start, 1, [0x90 | channel, key, vel]]);
    events.push([start + len, 0, [0x80 | channel, key, 0]]);
  }
  // Note-offs before note-ons at the same tick, then by time.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const nameBytes = [...Buffer.from(name, 'utf8')];
  const track = [
    0x00, 0xff, 0x03, ...vlq(nameBytes.length), ...nameBytes, // track name
    0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20, // tempo: 500,000 µs per quarter (120 bpm)
    0x00, 0xff, 0x58, 0x04, 0x04, 0x02, 0x18, 0x08, // time signature 4/4
  ];
  let now = 0;
  for (const [tick, , bytes] of events) {
    track.push(...vlq(tick - now), ...bytes);
    now = tick;
  }
  track.push(0x00, 0xff, 0x2f, 0x00); // end of track
  const head = Buffer.from([0x4d, 0x54, 0x68, 0x64, 0, 0, 0, 6, 0, 0, 0, 1, 0x01, 0xe0]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(track.length);
  return Buffer.concat([head, Buffer.from('MTrk'), len, Buffer.from(track)]);
}

/** Two bars of a rock groove on General MIDI drums (channel 10). */
export function drums() {
  const notes = [];
  for (let bar = 0; bar < 2; bar++) {
    const t0 = bar * 1920;
    for (let e = 0; e < 8; e++) notes.push([t0 + e * 240, 120, 42, 80]); // closed hi-hat, 8ths
    notes.push([t0, 240, 36, 110], [t0 + 960, 240, 36, 100], [t0 + 1200, 240, 36, 90]); // kick
    notes.push([t0 + 480, 240, 38, 105], [t0 + 1440, 240, 38, 105]); // snare on 2 and 4
  }
  return midiFile('Drums', 9, notes);
}

/** A chorus melody for keys (channel 1). */
export function keys() {
  const melody = [60, 64, 67, 72, 71, 67, 64, 65, 69, 72, 74, 72, 67, 64, 62, 60];
  return midiFile('Keys', 0, melody.map((k, i) => [i * 240, 220, k, 90]));
}

/** A mono 16-bit PCM WAV: a 44-byte header and `seconds` of a fading sine. */
export function wav({ seconds = 2, rate = 8000, freq = 110 } = {}) {
  const n = Math.round(seconds * rate);
  const data = Buffer.alloc(n * 2);
  for (let k = 0; k < n; k++) {
    const fade = Math.min(1, k / 400, (n - k) / 400);
    const s = Math.sin((2 * Math.PI * freq * k) / rate) * 0.6 * fade;
    data.writeInt16LE(Math.round(s * 32767), k * 2);
  }
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28); // byte rate
  h.writeUInt16LE(2, 32); // block align
  h.writeUInt16LE(16, 34); // bits per sample
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

export const README = `# Song

A song about late trains and early mornings, written in Muse.

## Parts

- **Verse**: bass stem and drums
- **Chorus**: keys, on the \`feature/chorus\` branch

| track | file |
| --- | --- |
| drums | \`tracks/drums.mid\` |
| bass | \`stems/bass.wav\` |

Clone it:

\`\`\`sh
muse clone http://127.0.0.1:8080/alice/song
\`\`\`
`;

export const LYRICS_1 = `The last train hums a minor key,
the platform lights are counting me.
`;
export const LYRICS_2 = `${LYRICS_1}
Second verse: the station sleeps,
the timetable is all it keeps.
`;
export const LYRICS_3 = `${LYRICS_2}
Chorus:
Wake me up at Westbourne Park,
I'll find the morning in the dark.
`;

/**
 * The history: four commits on main, one on feature/chorus, and what the checks need to know.
 */
export function history() {
  const at = (min) => `2026-03-16T12:${String(min).padStart(2, '0')}:00+00:00`;
  const f1 = { 'README.md': Buffer.from(README), 'lyrics.txt': Buffer.from(LYRICS_1) };
  const c1 = record({ parents: [], files: f1, message: 'Start the song: README and first verse', committedAt: at(0), branch: 'main' });
  const f2 = { ...f1, 'tracks/drums.mid': drums() };
  const c2 = record({ parents: [c1.id], files: f2, message: 'Add the drum groove', committedAt: at(10), branch: 'main' });
  const f3 = { ...f2, 'stems/bass.wav': wav() };
  const c3 = record({ parents: [c2.id], files: f3, message: 'Record the bass stem', committedAt: at(20), branch: 'main' });
  const f4 = { ...f3, 'lyrics.txt': Buffer.from(LYRICS_2) };
  const c4 = record({ parents: [c3.id], files: f4, message: 'Write the second verse', committedAt: at(30), branch: 'main' });
  const f5 = { ...f4, 'lyrics.txt': Buffer.from(LYRICS_3), 'tracks/keys.mid': keys() };
  const c5 = record({ parents: [c4.id], files: f5, message: 'Sketch a chorus on keys', committedAt: at(40), branch: 'feature/chorus' });
  return { main: [c1, c2, c3, c4], chorus: [c5] };
}

/** The JSON body of `muse release push` (shared/muse-wire-protocol.md §1.8). */
export function releaseJson(tag, tip, commits) {
  return JSON.stringify({
    release_id: '11111111-2222-4333-8444-555555555555',
    repo_id: 'local',
    tag,
    semver: { major: 1, minor: 0, patch: 0, pre: '', build: '' },
    channel: '',
    commit_id: tip.id,
    snapshot_id: tip.snapshotId,
    title: 'First cut',
    body: 'The verse is done: drums, bass and two verses of lyrics.',
    changelog: commits.map((c) => ({
      commit_id: c.id,
      message: c.message,
      sem_ver_bump: 'none',
      breaking_changes: [],
      author: 'alice',
      committed_at: c.committedAt,
      agent_id: '',
      model_id: '',
    })),
    agent_id: '',
    model_id: '',
    is_draft: false,
    gpg_signature: '',
    created_at: tip.committedAt,
  });
}

/** Pushes the history and the release to `base` (`http://…/alice/song`) as the Muse CLI does. */
export async function push(base, token) {
  const h = history();
  const auth = { authorization: `Bearer ${token}` };
  const wireHeaders = { ...auth, 'content-type': 'application/x-msgpack', accept: 'application/x-msgpack, application/json' };
  const post = async (path, body, headers = wireHeaders) => {
    const res = await fetch(`${base}/${path}`, { method: 'POST', headers, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (!res.ok) throw new Error(`POST ${path} answered ${res.status}: ${bytes.toString('utf8').slice(0, 300)}`);
    return res.headers.get('content-type')?.includes('msgpack') ? decode(bytes) : bytes;
  };

  // Every distinct object, once.
  const objects = new Map();
  for (const c of [...h.main, ...h.chorus]) {
    for (const bytes of Object.values(c.files)) objects.set(sha256(bytes), bytes);
  }
  const { missing } = await post('filter-objects', encode({ object_ids: [...objects.keys()] }));
  const up = await post('push/objects', encode({
    objects: missing.map((id) => ({ object_id: id, content: new Bin(objects.get(id)) })),
  }));
  if (up.stored + up.skipped !== missing.length) throw new Error(`push/objects stored ${up.stored} of ${missing.length}`);

  const pushBranch = async (branch, commits) => {
    const answer = await post('push', encode({
      bundle: { commits: commits.map((c) => c.commit), snapshots: commits.map((c) => c.snapshot), objects: [] },
      branch,
      force: false,
    }));
    const tip = commits[commits.length - 1].id;
    if (answer.ok !== true || answer.remote_head !== tip) {
      throw new Error(`push of ${branch} answered ${JSON.stringify(answer)}, expected ok and head ${tip}`);
    }
  };
  await pushBranch('main', h.main);
  await pushBranch('feature/chorus', h.chorus);

  const tip = h.main[h.main.length - 1];
  const rel = await fetch(`${base}/releases`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', accept: 'application/x-msgpack, application/json' },
    body: releaseJson('v1.0.0', tip, h.main),
  });
  if (rel.status !== 201) throw new Error(`POST releases answered ${rel.status}: ${(await rel.text()).slice(0, 300)}`);
  return { ...h, tip, objects: objects.size };
}
