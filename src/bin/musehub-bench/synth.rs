//! The synthetic repository of `musehub bench`: a deterministic history whose object bytes are
//! never held in memory. Each object's content is a pure function of `(seed, object index)`,
//! regenerated piece by piece whenever it is hashed or uploaded; only ids, sizes and the
//! msgpack records of commits and snapshots are kept.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmpv::Value;
use sha2::{Digest, Sha256};

use musehub::cids::Id;
use musehub::wire;

const MIB: u64 = 1 << 20;

/// Size of the pieces object content is generated, hashed and streamed in.
pub(super) const PIECE: usize = 1 << 20;

/// The `repo_id` field of every commit record (the CLI's local repo uuid; the hub keeps it).
const REPO_UUID: &str = "0b7c1f7e-be4c-4000-8000-00000000be4c";
/// The Muse repo id of the sketchbook history ([`generate_small`]).
const SKETCH_UUID: &str = "5ec0b00c-be4c-4000-8000-00000000be4c";

/// xoshiro256** seeded through splitmix64: fast, small and good enough for test data.
#[derive(Debug, Clone)]
pub(super) struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let out = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        out
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = u128::from(hi - lo) + 1;
        lo + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    pub(super) fn id(&mut self) -> Id {
        let mut b = [0u8; 32];
        for c in b.chunks_exact_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        Id(b)
    }
}

/// Characters of the text objects (`song.txt`): 32 of them, picked by the low 5 bits.
const TEXT: &[u8; 32] = b"eettaaoinshrdlcumwfgypbvk   \n.,;";

/// The byte sequence of one object. The bytes do not depend on how they are cut into pieces.
#[derive(Debug, Clone)]
pub(super) struct Content {
    rng: Rng,
    /// Unused bytes of the last generated word, low byte first.
    spare: u64,
    spare_len: usize,
    text: bool,
}

impl Content {
    pub(super) fn new(seed: u64, index: u64, text: bool) -> Content {
        let mixed = seed.rotate_left(29)
            ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03)
            ^ 0x6d75_7365_6875_6221;
        Content {
            rng: Rng::new(mixed),
            spare: 0,
            spare_len: 0,
            text,
        }
    }

    /// Fills `out` with the next bytes.
    pub(super) fn fill(&mut self, out: &mut [u8]) {
        let mut start = 0;
        while start < out.len() && self.spare_len > 0 {
            out[start] = self.spare as u8;
            self.spare >>= 8;
            self.spare_len -= 1;
            start += 1;
        }
        let rest = &mut out[start..];
        let mut words = rest.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let word = self.rng.next_u64();
            tail.copy_from_slice(&word.to_le_bytes()[..tail.len()]);
            self.spare = word >> (8 * tail.len());
            self.spare_len = 8 - tail.len();
        }
        if self.text {
            for b in &mut out[..] {
                *b = TEXT[(*b & 31) as usize];
            }
        }
    }
}

/// One object of the history: enough to regenerate its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Object {
    pub(super) id: Id,
    pub(super) size: u64,
    pub(super) index: u64,
    pub(super) text: bool,
}

impl Object {
    pub(super) fn content(&self, seed: u64) -> Content {
        Content::new(seed, self.index, self.text)
    }
}

/// One commit: ids, the objects it adds (a range of [`Repo::objects`]) and its records.
#[derive(Debug)]
pub(super) struct Commit {
    pub(super) id: Id,
    pub(super) snapshot_id: Id,
    pub(super) new: Range<usize>,
    pub(super) new_bytes: u64,
    pub(super) files: usize,
    /// The commit and snapshot records as msgpack, as the CLI sends them.
    pub(super) commit_raw: Vec<u8>,
    pub(super) snapshot_raw: Vec<u8>,
}

/// The generated history.
#[derive(Debug)]
pub(super) struct Repo {
    pub(super) seed: u64,
    pub(super) objects: Vec<Object>,
    pub(super) commits: Vec<Commit>,
    pub(super) total_bytes: u64,
    /// Time spent inside SHA-256 alone while computing the object ids.
    pub(super) hash_time: Duration,
}

/// What one commit adds, before its objects are hashed.
struct NewFile {
    path: String,
    size: u64,
    text: bool,
}

/// Plans commit `k` (1-based) within `budget` bytes: `song.txt` edited, 200-400 MIDI-sized
/// files of 1-20 KB, and 0-2 stems of 8-60 MiB capped to what is left of the budget.
fn plan_commit(layout: &mut Rng, k: usize, budget: u64) -> Vec<NewFile> {
    let mut used = layout.range(1_024, 4_096).min(budget);
    let mut files = vec![NewFile {
        path: "song.txt".into(),
        size: used,
        text: true,
    }];
    let midi = layout.range(200, 400);
    for i in 0..midi {
        let size = layout.range(1_000, 20_000);
        if used + size > budget {
            break;
        }
        used += size;
        files.push(NewFile {
            path: format!("midi/c{k}/f{i}.mid"),
            size,
            text: false,
        });
    }
    let stems = layout.range(0, 2);
    for j in 0..stems {
        let size = layout.range(8 * MIB, 60 * MIB).min(budget - used);
        if size < MIB {
            break;
        }
        used += size;
        files.push(NewFile {
            path: format!("stems/c{k}_{j}.wav"),
            size,
            text: false,
        });
    }
    files
}

/// SHA-256 of an object's bytes, generated in [`PIECE`]s into `buf`. Adds the time spent in
/// the hash function alone to `hash_time`.
pub(super) fn hash_object(
    seed: u64,
    obj_index: u64,
    size: u64,
    text: bool,
    buf: &mut [u8],
    hash_time: &mut Duration,
) -> Id {
    let mut content = Content::new(seed, obj_index, text);
    let mut h = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        content.fill(&mut buf[..n]);
        let t = Instant::now();
        h.update(&buf[..n]);
        *hash_time += t.elapsed();
        left -= n as u64;
    }
    let t = Instant::now();
    let id = Id(h.finalize().into());
    *hash_time += t.elapsed();
    id
}

/// `committed_at` of commit `k`: one second apart from 2026-11-24T10:00:00.
fn committed_at(k: usize) -> String {
    let s = 10 * 3600 + k;
    format!(
        "2026-11-24T{:02}:{:02}:{:02}.000001+00:00",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Generates commits until they add at least `size` bytes, each adding at most `max_commit`.
pub(super) fn generate(seed: u64, size: u64, max_commit: u64) -> Repo {
    let mut layout = Rng::new(seed ^ 0x6c61_796f_7574_0000);
    let mut history = History::new(seed, REPO_UUID);
    while history.repo.total_bytes < size {
        let k = history.repo.commits.len() + 1;
        let files = plan_commit(&mut layout, k, max_commit);
        history.commit(k, files);
    }
    history.repo
}

/// Files in the sketchbook history: `song.txt` and this many MIDI takes, edited in turn.
const SKETCH_TAKES: u64 = 20;

/// Generates `commits` small commits, the shape of a musician saving often: each edits
/// `song.txt` and re-records 1-3 of 20 MIDI takes (1-20 KB each), so the tree stays small
/// while the history grows long.
pub(super) fn generate_small(seed: u64, commits: usize) -> Repo {
    let mut layout = Rng::new(seed ^ 0x736b_6574_6368_0000);
    let mut history = History::new(seed ^ 0x5ec0, SKETCH_UUID);
    for k in 1..=commits {
        let mut files = vec![NewFile {
            path: "song.txt".into(),
            size: layout.range(1_024, 4_096),
            text: true,
        }];
        let takes = layout.range(1, 3);
        for _ in 0..takes {
            let take = layout.range(0, SKETCH_TAKES - 1);
            let path = format!("midi/take{take}.mid");
            if files.iter().any(|f| f.path == path) {
                continue;
            }
            files.push(NewFile {
                path,
                size: layout.range(1_000, 20_000),
                text: false,
            });
        }
        history.commit(k, files);
    }
    history.repo
}

/// A history being generated: the repo so far and its current manifest.
struct History {
    repo: Repo,
    uuid: &'static str,
    buf: Vec<u8>,
    /// path → object id, `song.txt` first and replaced by each commit.
    manifest: Vec<(String, Id)>,
    position: HashMap<String, usize>,
    parent: Option<Id>,
}

impl History {
    fn new(seed: u64, uuid: &'static str) -> History {
        History {
            repo: Repo {
                seed,
                objects: Vec::new(),
                commits: Vec::new(),
                total_bytes: 0,
                hash_time: Duration::ZERO,
            },
            uuid,
            buf: vec![0u8; PIECE],
            manifest: Vec::new(),
            position: HashMap::new(),
            parent: None,
        }
    }

    /// Adds commit `k` (1-based) with these new files.
    fn commit(&mut self, k: usize, files: Vec<NewFile>) {
        let repo = &mut self.repo;
        let first = repo.objects.len();
        let mut new_bytes = 0;
        for f in files {
            let index = repo.objects.len() as u64;
            let id = hash_object(
                repo.seed,
                index,
                f.size,
                f.text,
                &mut self.buf,
                &mut repo.hash_time,
            );
            repo.objects.push(Object {
                id,
                size: f.size,
                index,
                text: f.text,
            });
            new_bytes += f.size;
            match self.position.get(&f.path) {
                Some(&at) => self.manifest[at].1 = id,
                None => {
                    self.position.insert(f.path.clone(), self.manifest.len());
                    self.manifest.push((f.path, id));
                }
            }
        }
        repo.total_bytes += new_bytes;
        let parents: Vec<Id> = self.parent.into_iter().collect();
        let message = format!("bench commit {k}");
        let (commit, snapshot) = records_in(
            self.uuid,
            &parents,
            &self.manifest,
            &message,
            &committed_at(k),
        );
        let id = Id::parse(commit_field(&commit, "commit_id")).expect("we wrote a valid id");
        let snapshot_id =
            Id::parse(commit_field(&commit, "snapshot_id")).expect("we wrote a valid id");
        repo.commits.push(Commit {
            id,
            snapshot_id,
            new: first..repo.objects.len(),
            new_bytes,
            files: self.manifest.len(),
            commit_raw: wire::encode(&commit),
            snapshot_raw: wire::encode(&snapshot),
        });
        self.parent = Some(id);
    }
}

fn commit_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The commit and snapshot records the Muse CLI sends for this manifest in the repo whose
/// Muse repo id is `repo_id`.
fn records_in(
    repo_id: &str,
    parents: &[Id],
    manifest: &[(String, Id)],
    message: &str,
    committed_at: &str,
) -> (Value, Value) {
    let r = wire::records::Commit {
        repo_id,
        branch: "main",
        parents,
        manifest,
        message,
        committed_at,
    }
    .record();
    (r.commit, r.snapshot)
}

/// The `POST push` body for every commit of the repo, as one pack:
/// `{bundle: {commits, snapshots, objects: []}, branch, force: false}`.
pub(super) fn push_body(repo: &Repo, branch: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = repo.commits.len() as u32;
    rmp::encode::write_map_len(&mut out, 3).expect("Vec write");
    rmp::encode::write_str(&mut out, "bundle").expect("Vec write");
    rmp::encode::write_map_len(&mut out, 3).expect("Vec write");
    rmp::encode::write_str(&mut out, "commits").expect("Vec write");
    rmp::encode::write_array_len(&mut out, n).expect("Vec write");
    for c in &repo.commits {
        out.extend_from_slice(&c.commit_raw);
    }
    rmp::encode::write_str(&mut out, "snapshots").expect("Vec write");
    rmp::encode::write_array_len(&mut out, n).expect("Vec write");
    for c in &repo.commits {
        out.extend_from_slice(&c.snapshot_raw);
    }
    rmp::encode::write_str(&mut out, "objects").expect("Vec write");
    rmp::encode::write_array_len(&mut out, 0).expect("Vec write");
    rmp::encode::write_str(&mut out, "branch").expect("Vec write");
    rmp::encode::write_str(&mut out, branch).expect("Vec write");
    rmp::encode::write_str(&mut out, "force").expect("Vec write");
    rmp::encode::write_bool(&mut out, false).expect("Vec write");
    out
}

/// Per object: fixmap(2), "object_id" (10), str8 64-hex id (66), "content" (8) = 85, then the
/// bin header and the bytes.
fn object_entry_len(size: u64) -> u64 {
    85 + wire::bin_header_len(size) + size
}

/// The exact length of a `push/objects` body carrying `objects`.
pub(super) fn objects_body_len(objects: &[Object]) -> u64 {
    1 + 8
        + wire::container_header_len(objects.len())
        + objects
            .iter()
            .map(|o| object_entry_len(o.size))
            .sum::<u64>()
}

/// A `push/objects` body `{objects: [{object_id, content}]}` produced in pieces of about
/// `piece` bytes, object bytes generated as they are needed.
#[derive(Debug)]
pub(super) struct ObjectsBody {
    seed: u64,
    objects: Arc<[Object]>,
    range: Range<usize>,
    started: bool,
    current: Option<(Content, u64)>,
    piece: usize,
}

impl ObjectsBody {
    pub(super) fn new(
        seed: u64,
        objects: Arc<[Object]>,
        range: Range<usize>,
        piece: usize,
    ) -> ObjectsBody {
        ObjectsBody {
            seed,
            objects,
            range,
            started: false,
            current: None,
            piece: piece.max(1),
        }
    }
}

impl Iterator for ObjectsBody {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut buf = Vec::with_capacity(self.piece + 96);
        if !self.started {
            self.started = true;
            rmp::encode::write_map_len(&mut buf, 1).expect("Vec write");
            rmp::encode::write_str(&mut buf, "objects").expect("Vec write");
            rmp::encode::write_array_len(&mut buf, self.range.len() as u32).expect("Vec write");
        }
        while buf.len() < self.piece {
            if let Some((content, left)) = &mut self.current {
                let n = (*left).min((self.piece - buf.len()) as u64) as usize;
                let start = buf.len();
                buf.resize(start + n, 0);
                content.fill(&mut buf[start..]);
                *left -= n as u64;
                if *left == 0 {
                    self.current = None;
                }
                continue;
            }
            let Some(i) = self.range.next() else { break };
            let o = self.objects[i];
            rmp::encode::write_map_len(&mut buf, 2).expect("Vec write");
            rmp::encode::write_str(&mut buf, "object_id").expect("Vec write");
            rmp::encode::write_str(&mut buf, &o.id.to_hex()).expect("Vec write");
            rmp::encode::write_str(&mut buf, "content").expect("Vec write");
            rmp::encode::write_bin_len(&mut buf, o.size as u32).expect("Vec write");
            if o.size > 0 {
                self.current = Some((o.content(self.seed), o.size));
            }
        }
        if buf.is_empty() {
            None
        } else {
            Some(Bytes::from(buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musehub::muse;

    fn whole(seed: u64, o: &Object) -> Vec<u8> {
        let mut v = vec![0u8; o.size as usize];
        o.content(seed).fill(&mut v);
        v
    }

    #[test]
    fn content_does_not_depend_on_piece_sizes() {
        for text in [false, true] {
            let mut a = vec![0u8; 10_007];
            Content::new(7, 3, text).fill(&mut a);
            let mut b = Vec::new();
            let mut c = Content::new(7, 3, text);
            for n in [1usize, 2, 3, 5, 8, 13, 21, 1000, 4096].iter().cycle() {
                let n = (*n).min(a.len() - b.len());
                if n == 0 {
                    break;
                }
                let mut piece = vec![0u8; n];
                c.fill(&mut piece);
                b.extend_from_slice(&piece);
            }
            assert_eq!(a, b);
        }
        let mut other = vec![0u8; 64];
        Content::new(7, 4, false).fill(&mut other);
        let mut same = vec![0u8; 64];
        Content::new(7, 3, false).fill(&mut same);
        assert_ne!(other, same, "each object index has its own bytes");
    }

    #[test]
    fn generation_is_deterministic_and_ids_match_regenerated_bytes() {
        let a = generate(42, 3 * MIB, MIB + 300_000);
        let b = generate(42, 3 * MIB, MIB + 300_000);
        let c = generate(43, 3 * MIB, MIB + 300_000);
        assert_eq!(a.objects, b.objects);
        assert_eq!(
            a.commits.iter().map(|c| c.id).collect::<Vec<_>>(),
            b.commits.iter().map(|c| c.id).collect::<Vec<_>>()
        );
        assert_ne!(a.objects[0].id, c.objects[0].id);
        assert!(a.total_bytes >= 3 * MIB);
        assert!(a.commits.len() >= 2);
        for (k, commit) in a.commits.iter().enumerate() {
            assert!(
                commit.new_bytes <= MIB + 300_000,
                "commit {k} adds {} bytes",
                commit.new_bytes
            );
            assert_eq!(
                commit.new_bytes,
                a.objects[commit.new.clone()]
                    .iter()
                    .map(|o| o.size)
                    .sum::<u64>()
            );
        }
        for o in a.objects.iter().step_by(97) {
            assert_eq!(Id::of(&whole(a.seed, o)), o.id);
        }
        // The song file is text; the snapshot manifests grow by each commit's new files.
        assert!(a.objects[0].text);
        assert!(
            whole(a.seed, &a.objects[0])
                .iter()
                .all(|b| TEXT.contains(b))
        );
        let last = wire::decode(&a.commits[a.commits.len() - 1].snapshot_raw).unwrap();
        let entries = wire::Fields::of(&last, "")
            .unwrap()
            .get("manifest")
            .unwrap()
            .as_map()
            .unwrap()
            .len();
        assert_eq!(
            entries,
            a.objects.len() - (a.commits.len() - 1),
            "one song.txt, every other object once"
        );
    }

    #[test]
    fn records_follow_the_id_rules() {
        let a = generate(1, MIB, 4 * MIB);
        let c = wire::decode(&a.commits[0].commit_raw).unwrap();
        let f = wire::Fields::of(&c, "").unwrap();
        assert_eq!(f.id("commit_id").unwrap(), a.commits[0].id);
        assert_eq!(f.opt_id("parent_commit_id").unwrap(), None);
        assert_eq!(
            muse::commit_id(
                &[],
                &a.commits[0].snapshot_id,
                "bench commit 1",
                &committed_at(1)
            ),
            a.commits[0].id
        );
        assert_eq!(committed_at(61), "2026-11-24T10:01:01.000001+00:00");
    }

    #[test]
    fn streamed_objects_body_equals_wire_encoding() {
        let seed = 9;
        let sizes = [0u64, 1, 31, 255, 256, 1000, 65_535, 65_536, 70_001];
        let objects: Vec<Object> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let (mut buf, mut spent) = (vec![0u8; 4096], Duration::ZERO);
                let id = hash_object(seed, i as u64, size, i % 2 == 1, &mut buf, &mut spent);
                Object {
                    id,
                    size,
                    index: i as u64,
                    text: i % 2 == 1,
                }
            })
            .collect();
        let items = objects
            .iter()
            .map(|o| {
                wire::map([
                    ("object_id", Value::from(o.id.to_hex())),
                    ("content", Value::Binary(whole(seed, o))),
                ])
            })
            .collect();
        let expected = wire::encode(&wire::map([("objects", Value::Array(items))]));
        let shared: Arc<[Object]> = objects.clone().into();
        for piece in [1usize, 7, 100, 4096, PIECE] {
            let body: Vec<u8> = ObjectsBody::new(seed, shared.clone(), 0..objects.len(), piece)
                .flat_map(|b| b.to_vec())
                .collect();
            assert_eq!(
                body.len() as u64,
                objects_body_len(&objects),
                "piece {piece}"
            );
            assert!(
                body == expected,
                "piece {piece}: streamed body differs from wire::encode"
            );
        }
        // A sub-range is a body of its own.
        let part: Vec<u8> = ObjectsBody::new(seed, shared, 2..5, 64)
            .flat_map(|b| b.to_vec())
            .collect();
        let v = wire::decode(&part).unwrap();
        assert_eq!(
            wire::Fields::of(&v, "")
                .unwrap()
                .array("objects")
                .unwrap()
                .len(),
            3
        );
        assert_eq!(part.len() as u64, objects_body_len(&objects[2..5]));
    }

    #[test]
    fn push_body_equals_wire_encoding() {
        let a = generate(5, MIB, 700_000);
        let commits = a
            .commits
            .iter()
            .map(|c| wire::decode(&c.commit_raw).unwrap())
            .collect();
        let snapshots = a
            .commits
            .iter()
            .map(|c| wire::decode(&c.snapshot_raw).unwrap())
            .collect();
        let expected = wire::encode(&wire::map([
            (
                "bundle",
                wire::map([
                    ("commits", Value::Array(commits)),
                    ("snapshots", Value::Array(snapshots)),
                    ("objects", Value::Array(vec![])),
                ]),
            ),
            ("branch", Value::from("main")),
            ("force", Value::Boolean(false)),
        ]));
        assert_eq!(push_body(&a, "main"), expected);
    }

    #[test]
    fn rng_range_stays_in_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let x = r.range(3, 5);
            assert!((3..=5).contains(&x));
        }
        assert_eq!(Rng::new(1).next_u64(), Rng::new(1).next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
