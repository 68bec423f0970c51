//! Reading a commit's DAG from verified blocks (a CAR file, IPFS peers), checking every Muse
//! id, and writing the `.muse/` repository the Muse CLI expects (protocol doc §5). Used by
//! `musehub clone`, `pull`, `verify` and `car import`; never by the hub's HTTP API.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use cid::Cid;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::car::CarReader;
use crate::cids::{DAG_CBOR, DAG_PB, Id, RAW};
use crate::dag::{self, CommitNode, Entry, RefState, SnapshotBody, SnapshotNode};
use crate::ipfs::Node;
use crate::storage::unixfs;

/// Largest CAR section accepted: a 1 MiB leaf or node with room to spare. A hostile length
/// (say 2 GiB) is refused before anything is allocated.
pub const MAX_SECTION: usize = 4 * 1024 * 1024;
/// Leaves fetched at once while writing an object.
const FETCH_AHEAD: usize = 8;

/// The blocks of a CAR file, indexed by CID after one pass that checks every block's hash.
#[derive(Debug)]
pub struct CarIndex {
    file: Arc<std::fs::File>,
    pub roots: Vec<Cid>,
    /// CID → (data offset, length), in archive order.
    blocks: HashMap<Cid, (u64, usize)>,
    pub order: Vec<Cid>,
    /// Blocks whose bytes do not hash to their CID (kept only by a lenient open).
    pub bad: HashMap<Cid, String>,
}

impl CarIndex {
    /// Indexes `path`. Strict: the first bad block is an error. Lenient (`verify`): bad
    /// blocks are remembered, so the report can say which part of the DAG they were.
    pub async fn open(path: &Path, strict: bool) -> Result<CarIndex> {
        Self::index(path, strict, true).await
    }

    /// Indexes `path` for `car import`: strict, but raw blocks are not hashed here, because
    /// the import hashes each one anyway and checks it then: an object's bytes must hash to
    /// its Muse id, and the tree this hub rebuilds from them must have the CID the CAR links.
    /// A raw block nothing imports is never used. So each object byte is hashed twice in all
    /// (its id, its leaf), not three times.
    pub async fn open_for_import(path: &Path) -> Result<CarIndex> {
        Self::index(path, true, false).await
    }

    async fn index(path: &Path, strict: bool, hash_raw: bool) -> Result<CarIndex> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let mut reader = CarReader::new(file, MAX_SECTION)
            .await
            .with_context(|| format!("{} is not a readable CARv1 file", path.display()))?;
        let roots = reader.roots().to_vec();
        if roots.len() != 1 {
            bail!(
                "{} has {} roots; a Muse CAR has exactly one (the commit CID)",
                path.display(),
                roots.len()
            );
        }
        let mut blocks = HashMap::new();
        let mut order = Vec::new();
        let mut bad = HashMap::new();
        let mut n = 0usize;
        while let Some((cid, len, data)) = reader
            .next_section(|cid| hash_raw || cid.codec() != RAW)
            .await
            .with_context(|| format!("{}: after {n} good blocks", path.display()))?
        {
            n += 1;
            // Raw blocks an import checks later are skipped here unread.
            if let Some(data) = &data
                && let Err(e) = dag::check_block(&cid, data)
            {
                if strict {
                    bail!("{}: block #{n}: {e}", path.display());
                }
                bad.insert(cid, e.to_string());
                continue;
            }
            if blocks.insert(cid, (reader.data_offset(), len)).is_none() {
                order.push(cid);
            }
        }
        let file = std::fs::File::open(path)?;
        Ok(CarIndex {
            file: Arc::new(file),
            roots,
            blocks,
            order,
            bad,
        })
    }

    pub fn has(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid)
    }

    async fn read(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let Some(&(offset, len)) = self.blocks.get(cid) else {
            return Ok(None);
        };
        let file = self.file.clone();
        let data = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset).map(|_| buf)
        })
        .await??;
        Ok(Some(Bytes::from(data)))
    }
}

/// Where blocks come from. Every block handed out has been checked against its CID.
#[derive(Debug)]
pub enum Source {
    Car(CarIndex),
    Ipfs(Node),
    /// Blocks in memory, each checked against its CID already (a streamed import's nodes).
    Blocks(HashMap<Cid, Bytes>),
}

impl Source {
    /// The block `cid`, which plays `role` in the DAG (for error messages).
    pub async fn block(&self, cid: &Cid, role: &str) -> Result<Bytes> {
        match self {
            Source::Car(car) => {
                if let Some(why) = car.bad.get(cid) {
                    bail!("the {role} {cid} is corrupt: {why}");
                }
                car.read(cid)
                    .await?
                    .ok_or_else(|| anyhow!("the {role} {cid} is not in the CAR file"))
            }
            Source::Blocks(blocks) => blocks
                .get(cid)
                .cloned()
                .ok_or_else(|| anyhow!("the {role} {cid} is not in the CAR")),
            Source::Ipfs(node) => node
                .fetch_block(cid)
                .await
                .map(|(b, _)| b)
                .map_err(|e| anyhow!("the {role} {cid}: {e}")),
        }
    }

    /// Whether the block can be had without waiting on the network (CAR: present).
    fn may_have(&self, cid: &Cid) -> bool {
        match self {
            Source::Car(car) => car.has(cid) || car.bad.contains_key(cid),
            Source::Blocks(blocks) => blocks.contains_key(cid),
            Source::Ipfs(_) => true,
        }
    }
}

/// A commit read and checked.
#[derive(Debug, Clone)]
pub struct LoadedCommit {
    pub cid: Cid,
    pub id: Id,
    pub node: CommitNode,
}

/// A snapshot read and checked, with its whole manifest.
#[derive(Debug, Clone)]
pub struct LoadedSnapshot {
    pub cid: Cid,
    pub id: Id,
    pub node: SnapshotNode,
    pub entries: Vec<Entry>,
}

/// A commit DAG read and checked: every commit and snapshot id recomputed, every node in
/// canonical form, every link consistent with the ids it stands for.
#[derive(Debug, Default)]
pub struct History {
    /// Head first, then ancestors breadth-first.
    pub commits: Vec<LoadedCommit>,
    pub snapshots: HashMap<Id, LoadedSnapshot>,
    /// Every object named by a loaded snapshot, with its CID.
    pub objects: BTreeMap<Id, Cid>,
    /// (commit, parent) pairs whose parent is not in the DAG (shallow history).
    pub missing_parents: Vec<(Id, Id)>,
}

impl History {
    pub fn head(&self) -> &LoadedCommit {
        &self.commits[0]
    }

    pub fn commit(&self, id: &Id) -> Option<&LoadedCommit> {
        self.commits.iter().find(|c| c.id == *id)
    }
}

/// A commit reached through a parent link: the child and the parent ids it names.
type Linked = (Id, Vec<Id>);

/// Reads and checks the DAG under the commit `head`. With `history`, follows parent links;
/// a parent in `stop` (what the caller holds already) is not read. A parent the source does
/// not have is recorded in `missing_parents`.
pub async fn load(src: &Source, head: Cid, history: bool, stop: &HashSet<Id>) -> Result<History> {
    if head.codec() != DAG_CBOR {
        bail!("{head} is not a commit CID (commit CIDs are DAG-CBOR, bafyrei…)");
    }
    let mut out = History::default();
    let mut snapshot_cids: HashMap<Cid, Id> = HashMap::new();
    let mut seen = HashSet::from([head]);
    // (commit CID, the child that links it and the parent ids it may be)
    let mut queue: VecDeque<(Cid, Option<Linked>)> = VecDeque::from([(head, None)]);
    while let Some((cid, child)) = queue.pop_front() {
        let data = src.block(&cid, "commit node").await?;
        let node = dag::decode_commit(&data).map_err(|e| anyhow!("commit node {cid}: {e}"))?;
        let id = node
            .verify(&cid)
            .map_err(|e| anyhow!("commit node {cid}: {e}"))?;
        if let Some((child, allowed)) = child
            && !allowed.contains(&id)
        {
            bail!(
                "commit {child} links {cid} as a parent, but that node is commit {id}, which it does not name"
            );
        }
        let sid = node
            .snapshot_id()
            .map_err(|e| anyhow!("commit {id}: {e}"))?;
        match snapshot_cids.get(&node.snapshot) {
            Some(known) if *known == sid => {}
            Some(known) => bail!(
                "commit {id} links snapshot {} as {sid}, but it is {known}",
                node.snapshot
            ),
            None => {
                let snap = load_snapshot(src, node.snapshot).await?;
                if snap.id != sid {
                    bail!(
                        "commit {id} names snapshot {sid} but links {}, which is snapshot {}",
                        node.snapshot,
                        snap.id
                    );
                }
                for e in &snap.entries {
                    match out.objects.get(&e.object_id) {
                        Some(c) if *c != e.cid => {
                            bail!("object {} is linked as both {c} and {}", e.object_id, e.cid)
                        }
                        _ => {
                            out.objects.insert(e.object_id, e.cid);
                        }
                    }
                }
                snapshot_cids.insert(node.snapshot, sid);
                out.snapshots.insert(sid, snap);
            }
        }
        let parent_ids = node.parent_ids().map_err(|e| anyhow!("commit {id}: {e}"))?;
        // Parents the caller holds are not read; parents the source lacks stay missing.
        if history && !parent_ids.iter().all(|p| stop.contains(p)) {
            for p in &node.parents {
                if src.may_have(p) && seen.insert(*p) {
                    queue.push_back((*p, Some((id, parent_ids.clone()))));
                }
            }
        }
        out.commits.push(LoadedCommit { cid, id, node });
    }
    if history {
        let have: HashSet<Id> = out.commits.iter().map(|c| c.id).collect();
        for c in &out.commits {
            for p in c.node.parent_ids()? {
                if !have.contains(&p) && !stop.contains(&p) {
                    out.missing_parents.push((c.id, p));
                }
            }
        }
    }
    Ok(out)
}

async fn load_snapshot(src: &Source, cid: Cid) -> Result<LoadedSnapshot> {
    let data = src.block(&cid, "snapshot node").await?;
    let node = dag::decode_snapshot(&data).map_err(|e| anyhow!("snapshot node {cid}: {e}"))?;
    let entries = match &node.body {
        SnapshotBody::Entries(e) => e.clone(),
        SnapshotBody::Parts(parts) => {
            let mut all = Vec::new();
            for p in parts {
                let data = src.block(p, "snapshot part").await?;
                all.extend(
                    dag::decode_snapshot_part(&data)
                        .map_err(|e| anyhow!("snapshot part {p}: {e}"))?,
                );
            }
            all
        }
    };
    let id = node
        .verify(&cid, &entries)
        .map_err(|e| anyhow!("snapshot node {cid}: {e}"))?;
    Ok(LoadedSnapshot {
        cid,
        id,
        node,
        entries,
    })
}

/// One piece of an object's bytes, in file order.
pub(crate) enum Piece {
    Inline(Vec<u8>),
    Leaf(Cid),
}

/// The pieces of the object under `cid` (a raw block, or a UnixFS file tree).
pub(crate) async fn pieces(src: &Source, cid: &Cid, oid: &Id) -> Result<Vec<Piece>> {
    if cid.codec() == RAW {
        return Ok(vec![Piece::Leaf(*cid)]);
    }
    if cid.codec() != DAG_PB {
        bail!("object {oid} links {cid}, which is neither raw nor a UnixFS file");
    }
    let mut out = Vec::new();
    // Depth-first, children in order.
    let mut stack = vec![*cid];
    while let Some(c) = stack.pop() {
        if c.codec() == RAW {
            out.push(Piece::Leaf(c));
            continue;
        }
        let data = src.block(&c, &format!("file node of object {oid}")).await?;
        let node = unixfs::decode_file_node(&data)
            .map_err(|e| anyhow!("file node {c} of object {oid}: {e}"))?;
        if !node.inline.is_empty() {
            out.push(Piece::Inline(node.inline));
        }
        stack.extend(node.links.iter().rev().map(|l| l.cid));
    }
    Ok(out)
}

impl Source {
    /// The bytes of one piece of the object `oid`.
    pub(crate) async fn piece(&self, p: Piece, oid: &Id) -> Result<Bytes> {
        match p {
            Piece::Inline(b) => Ok(Bytes::from(b)),
            Piece::Leaf(c) => self.block(&c, &format!("block of object {oid}")).await,
        }
    }

    /// The size of the object under `cid`: a raw block's length, or a file tree's
    /// `filesize` (checked against the bytes when they are read).
    pub(crate) async fn object_size(&self, cid: &Cid, oid: &Id) -> Result<u64> {
        if cid.codec() == RAW {
            if let Source::Car(car) = self
                && let Some(&(_, len)) = car.blocks.get(cid)
            {
                return Ok(len as u64);
            }
            return Ok(self.block(cid, "object").await?.len() as u64);
        }
        let data = self
            .block(cid, &format!("file node of object {oid}"))
            .await?;
        Ok(unixfs::decode_file_node(&data)
            .map_err(|e| anyhow!("file node {cid} of object {oid}: {e}"))?
            .filesize)
    }
}

/// Streams the object `oid` (under `cid`) into `out`, checking its bytes against `oid`
/// Returns its size.
pub async fn copy_object<W: std::io::Write + Send>(
    src: &Source,
    oid: &Id,
    cid: &Cid,
    out: &mut W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let pieces = pieces(src, cid, oid).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let role = format!("block of object {oid}");
    let mut stream = futures_util::stream::iter(pieces)
        .map(|p| {
            let role = role.clone();
            async move {
                match p {
                    Piece::Inline(b) => Ok::<_, anyhow::Error>(Bytes::from(b)),
                    Piece::Leaf(c) => src.block(&c, &role).await,
                }
            }
        })
        .buffered(FETCH_AHEAD);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        size += chunk.len() as u64;
        progress(chunk.len() as u64);
    }
    let got = Id(hasher.finalize().into());
    if got != *oid {
        bail!("object {oid} (CID {cid}): its bytes hash to {got}");
    }
    Ok(size)
}

/// The ref-states in a CAR (every block that decodes as one).
pub async fn ref_states_in(car: &CarIndex) -> Result<Vec<(Cid, RefState)>> {
    let mut out = Vec::new();
    for cid in &car.order {
        if cid.codec() != DAG_CBOR {
            continue;
        }
        let Some(data) = car.read(cid).await? else {
            continue;
        };
        if let Ok(state) = RefState::decode(&data) {
            out.push((*cid, state));
        }
    }
    out.sort_by_key(|(_, s)| std::cmp::Reverse(s.seq));
    Ok(out)
}

/// Whether `state` covers the commit `target`: it names it, or the commit nodes in `src`
/// lead from its commit down to it. Returns the path length.
pub async fn covers(src: &Source, state: &RefState, target: &Id) -> Result<Option<usize>> {
    let mut queue = VecDeque::from([(state.commit, 0usize)]);
    let mut seen = HashSet::new();
    while let Some((cid, depth)) = queue.pop_front() {
        if !seen.insert(cid) || seen.len() > 100_000 {
            continue;
        }
        if !src.may_have(&cid) {
            continue;
        }
        let Ok(data) = src.block(&cid, "commit node").await else {
            continue;
        };
        let node = dag::decode_commit(&data).map_err(|e| anyhow!("commit node {cid}: {e}"))?;
        let id = node
            .verify(&cid)
            .map_err(|e| anyhow!("commit node {cid}: {e}"))?;
        if depth == 0 && id != state.commit_id {
            bail!(
                "ref-state #{} of {} names commit {} but links {cid}, which is commit {id}",
                state.seq,
                state.repo,
                state.commit_id
            );
        }
        if id == *target {
            return Ok(Some(depth));
        }
        for p in node.parents {
            queue.push_back((p, depth + 1));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Writing a `.muse/` repository

/// What the DAG does not say about the repository being written.
#[derive(Debug, Clone)]
pub struct RepoMeta {
    pub repo_id: String,
    pub domain: String,
    pub branch: String,
    /// `origin`'s URL, when cloned from a hub.
    pub remote: Option<String>,
}

/// The time as Python's `datetime.now(timezone.utc).isoformat()` writes it.
pub fn iso_now() -> String {
    let t = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    format!("{}+00:00", t.trim_end_matches('Z'))
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("JSON values serialise");
    out.push(b'\n');
    out
}

/// Writes a `.muse/` file (creating its directory) through a temp file and a rename
/// ([`crate::fsutil::write_atomic_unsynced`]: a clone cut short is simply run again).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("paths under .muse have a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::fsutil::write_atomic_unsynced(path, data, 0o644)
        .with_context(|| format!("writing {}", path.display()))
}

pub fn object_path(muse: &Path, oid: &Id) -> PathBuf {
    let hex = oid.to_hex();
    muse.join("objects").join(&hex[..2]).join(&hex[2..])
}

/// Writes every object, snapshot and commit of `hist` into `muse` (a `.muse/` directory),
/// skipping objects already there. `progress(bytes, objects done, objects)` follows the
/// objects.
pub async fn write_history(
    src: &Source,
    hist: &History,
    muse: &Path,
    progress: &(dyn Fn(u64, usize, usize) + Sync),
) -> Result<()> {
    let todo: Vec<(&Id, &Cid)> = hist
        .objects
        .iter()
        .filter(|(oid, _)| !object_path(muse, oid).exists())
        .collect();
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let count = todo.len();
    for (i, (oid, cid)) in todo.into_iter().enumerate() {
        let path = object_path(muse, oid);
        let dir = path.parent().expect("object paths have a shard directory");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.tmp", &oid.to_hex()[2..]));
        let mut file = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let tick = |n: u64| {
            let b = bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(b, i, count);
        };
        let r = copy_object(src, oid, cid, &mut file, &tick).await;
        if let Err(e) = r {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        file.flush()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
    }
    progress(bytes.into_inner(), count, count);
    for snap in hist.snapshots.values() {
        let path = muse.join("snapshots").join(format!("{}.json", snap.id));
        if !path.exists() {
            write_atomic(&path, &json_bytes(&snap.node.to_json(&snap.entries)?))?;
        }
    }
    for c in &hist.commits {
        let path = muse.join("commits").join(format!("{}.json", c.id));
        if !path.exists() {
            write_atomic(&path, &json_bytes(&c.node.to_json()?))?;
        }
    }
    Ok(())
}

/// Writes the files of `snap` into the working tree `root` from `muse/objects`.
pub fn checkout(muse: &Path, root: &Path, snap: &LoadedSnapshot) -> Result<()> {
    for e in &snap.entries {
        crate::muse::check_path(&e.path)?;
        let target = root.join(&e.path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(object_path(muse, &e.object_id), &target)
            .with_context(|| format!("checking out {}", e.path))?;
    }
    Ok(())
}

/// A new repository in `root` (which must not exist or be empty): the whole `.muse/`
/// layout, HEAD on `meta.branch` at the head commit, and its files checked out.
pub async fn write_new_repo(
    src: &Source,
    hist: &History,
    root: &Path,
    meta: &RepoMeta,
    progress: &(dyn Fn(u64, usize, usize) + Sync),
) -> Result<()> {
    let muse = root.join(".muse");
    for d in ["commits", "snapshots", "objects", "refs/heads"] {
        std::fs::create_dir_all(muse.join(d))
            .with_context(|| format!("creating {}", muse.join(d).display()))?;
    }
    write_history(src, hist, &muse, progress).await?;
    let head = hist.head();
    crate::muse::check_branch(&meta.branch)?;
    let repo_json = serde_json::json!({
        "repo_id": meta.repo_id,
        "schema_version": "0.1.5",
        "created_at": iso_now(),
        "domain": meta.domain,
    });
    write_atomic(&muse.join("repo.json"), &json_bytes(&repo_json))?;
    write_atomic(
        &muse.join("refs/heads").join(&meta.branch),
        head.id.to_hex().as_bytes(),
    )?;
    let mut config = String::new();
    if let Some(url) = &meta.remote {
        write_atomic(
            &muse.join("remotes/origin").join(&meta.branch),
            head.id.to_hex().as_bytes(),
        )?;
        config.push_str(&format!(
            "[remotes.origin]\nurl = {}\nbranch = {}\n\n[auth]\ntoken = \"\"\n",
            toml_str(url),
            toml_str(&meta.branch)
        ));
    }
    write_atomic(&muse.join("config.toml"), config.as_bytes())?;
    let snap = hist
        .snapshots
        .get(&head.node.snapshot_id()?)
        .ok_or_else(|| anyhow!("the head commit's snapshot was not loaded"))?;
    checkout(&muse, root, snap)?;
    write_atomic(
        &muse.join("HEAD"),
        format!("ref: refs/heads/{}\n", meta.branch).as_bytes(),
    )?;
    Ok(())
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
