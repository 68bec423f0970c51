//! CAR export of a commit: the commit node, its snapshot nodes, every object block and the
//! newest signed ref-states covering it (`history` adds every ancestor). The block order is
//! a deterministic depth-first walk in link order (the order `ipfs dag export` uses) and
//! the archive is planned, with its exact length, before a byte is sent, then streamed
//! block by block.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use cid::Cid;
use futures_util::StreamExt;

use super::{Error, Hub, Readable, Result};
use crate::cids::{self, DAG_CBOR, DAG_PB, Id, RAW};
use crate::dag;
use crate::db::content;
use crate::db::dag as rows;
use crate::db::repos::{self, Repo};
use crate::storage::{self, Scope, unixfs};

/// Blocks read ahead of the socket while streaming.
const READ_AHEAD: usize = 4;
/// A ref-state covers a commit when the commit is at most this many commits below it.
const COVER_DEPTH: usize = 100_000;

/// A planned CAR: its root, its blocks in order with their sizes, and its exact length. Made
/// only by [`Hub::plan_car`] from a readable repo, so streaming one cannot reach other blocks.
#[derive(Debug, Clone)]
pub struct CarPlan {
    root: Cid,
    commit_id: Id,
    blocks: Vec<(Cid, u64)>,
    len: u64,
}

impl CarPlan {
    pub fn root(&self) -> Cid {
        self.root
    }

    pub fn commit_id(&self) -> Id {
        self.commit_id
    }

    /// The CAR's exact length in bytes.
    pub fn byte_len(&self) -> u64 {
        self.len
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

impl Hub {
    /// A branch name, a 64-hex Muse commit id, or a commit CID, resolved in `repo`.
    pub async fn resolve_commit(&self, repo: &Readable<Repo>, rev: &str) -> Result<Id> {
        let rev = rev.trim_matches('/').to_owned();
        let (rid, r) = (repo.id, rev.clone());
        let found = self
            .db
            .read(move |c| {
                if let Some(head) = repos::branch_head(c, rid, &r)? {
                    return Ok::<_, Error>(Some(head));
                }
                let id = match Id::parse(&r) {
                    Ok(id) => Some(id),
                    Err(_) => match Cid::try_from(r.as_str()) {
                        Ok(cid) if cid.codec() == DAG_CBOR => {
                            rows::commit_by_cid(c, &cid.to_bytes())?
                        }
                        _ => None,
                    },
                };
                match id {
                    Some(id) if content::repo_has_commit(c, rid, &id)? => Ok(Some(id)),
                    _ => Ok(None),
                }
            })
            .await?;
        found.ok_or_else(|| {
            Error::NotFound(format!(
                "no branch, commit id or commit CID {rev:?} in {}/{}",
                repo.owner, repo.slug
            ))
        })
    }

    /// Plans the CAR of `commit_id` in `repo`. With `history`, every ancestor the repo holds
    /// is included; commits in `haves` (the client's, for an incremental pull) and the
    /// objects of their snapshots are left out.
    pub async fn plan_car(
        &self,
        repo: &Readable<Repo>,
        commit_id: Id,
        history: bool,
        haves: Vec<Id>,
    ) -> Result<CarPlan> {
        let hub = self.clone();
        let repo: Repo = (**repo).clone();
        tokio::task::spawn_blocking(move || plan_blocking(&hub, &repo, commit_id, history, &haves))
            .await
            .map_err(|e| Error::Invalid(format!("planning the CAR: {e}")))?
    }

    /// Streams a planned CAR; its length is exactly `plan.len`. Each block goes out as its
    /// section prefix and then its bytes (pooled buffers for leaves), never copied together.
    pub fn car_stream(&self, plan: CarPlan) -> storage::ByteStream {
        let header = Bytes::from(crate::car::header(&[plan.root]));
        let store = self.store.clone();
        let sections = futures_util::stream::iter(plan.blocks)
            .map(move |(cid, size)| {
                let store = store.clone();
                async move {
                    let data = tokio::task::spawn_blocking(move || read_for_car(&store, &cid))
                        .await
                        .map_err(std::io::Error::other)??;
                    if data.len() as u64 != size {
                        return Err(std::io::Error::other(format!(
                            "block {cid} changed size while streaming"
                        )));
                    }
                    let prefix = Bytes::from(crate::car::section_prefix(&cid, data.len()));
                    Ok::<_, std::io::Error>([prefix, data])
                }
            })
            .buffered(READ_AHEAD)
            .flat_map(|r| {
                let items: Vec<std::io::Result<Bytes>> = match r {
                    Ok(pair) => pair.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures_util::stream::iter(items)
            });
        Box::pin(futures_util::stream::once(async move { Ok(header) }).chain(sections))
    }
}

/// One block's bytes for a CAR: raw leaves through the store's buffer pool.
/// A block of a planned CAR (the plan came from a readable repo).
fn read_for_car(store: &storage::Store, cid: &Cid) -> std::io::Result<Bytes> {
    store
        .block_blocking(cid, Scope::Granted)
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::other(format!("block {cid} is missing")))
}

fn cid_of(bytes: &[u8]) -> Result<Cid> {
    Cid::try_from(bytes).map_err(|e| Error::Invalid(format!("stored CID: {e}")))
}

fn missing(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what} has no DAG node on this hub yet"))
}

fn plan_blocking(
    hub: &Hub,
    repo: &Repo,
    commit_id: Id,
    history: bool,
    haves: &[Id],
) -> Result<CarPlan> {
    let db = &hub.db;
    let rid = repo.id;
    let root = db
        .read_blocking(|c| rows::commit_cid(c, &commit_id))?
        .map(|b| cid_of(&b))
        .transpose()?
        .ok_or_else(|| missing(format!("commit {commit_id}")))?;

    let mut seen: HashSet<Cid> = HashSet::new();
    // What the client holds: its commits stop the walk, its snapshots' objects are skipped.
    for have in haves {
        let known = db.read_blocking(|c| {
            if !content::repo_has_commit(c, rid, have)? {
                return Ok::<_, Error>(None);
            }
            let cid = rows::commit_cid(c, have)?;
            let snap = content::repo_commit(c, rid, have)?.map(|r| r.snapshot_id);
            let raw = match &snap {
                Some(s) => content::snapshot_raw(c, s)?,
                None => None,
            };
            Ok(Some((cid, raw)))
        })?;
        let Some((cid, raw)) = known else { continue };
        if let Some(cid) = cid {
            seen.insert(cid_of(&cid)?);
        }
        if let Some(raw) = raw {
            for oid in crate::wire::records::snapshot_object_ids(&raw)? {
                let cid = db.read_blocking(|c| super::dag::object_cid(c, &oid))?;
                seen.insert(cid);
            }
        }
    }

    let mut blocks = Vec::new();
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let digest = cids::digest_of(&cid).map_err(|e| Error::Invalid(e.to_string()))?;
        let children = match cid.codec() {
            RAW => Vec::new(),
            DAG_PB => {
                let data = read(hub, &cid)?;
                unixfs::decode_file_node(&data)
                    .map_err(|e| Error::Invalid(format!("block {cid}: {e}")))?
                    .links
                    .into_iter()
                    .map(|l| l.cid)
                    .collect()
            }
            DAG_CBOR => {
                let data = read(hub, &cid)?;
                match dag::decode_commit(&data) {
                    Ok(node) => {
                        // Only commits of this repo go out, whatever the hub holds elsewhere.
                        let id = node
                            .commit_id()
                            .map_err(|e| Error::Invalid(e.to_string()))?;
                        if !db.read_blocking(|c| content::repo_has_commit(c, rid, &id))? {
                            continue;
                        }
                        let mut links = Vec::new();
                        if history || cid == root {
                            links.push(node.snapshot);
                        }
                        if history {
                            links.extend(node.parents);
                        }
                        links
                    }
                    Err(_) => crate::dagcbor::decode(&data)
                        .map_err(|e| Error::Invalid(format!("block {cid}: {e}")))?
                        .links(),
                }
            }
            _ => return Err(Error::Invalid(format!("block {cid} has an unknown codec"))),
        };
        let size = db
            .read_blocking(|c| content::block(c, &digest))?
            .ok_or_else(|| Error::Invalid(format!("block {cid} is not on the hub")))?
            .size;
        blocks.push((cid, size));
        stack.extend(children.into_iter().rev());
    }

    // The newest ref-state of each branch that covers the commit, with the commit nodes
    // between its head and the commit so a verifier can walk down to it.
    let states = db.read_blocking(|c| rows::ref_states(c, rid))?;
    let mut newest: Vec<&rows::RefStateRow> = Vec::new();
    let mut branches = HashSet::new();
    for s in &states {
        if branches.insert(s.branch.as_str()) {
            newest.push(s);
        }
    }
    let mut covering = Vec::new();
    for s in newest {
        if let Some(path) = db.read_blocking(|c| path_down(c, rid, s.commit_id, commit_id))? {
            covering.push((s, path));
        }
    }
    if covering.is_empty()
        && let Some(s) = states.iter().find(|s| s.commit_id == commit_id)
    {
        covering.push((s, vec![commit_id]));
    }
    for (state, path) in covering {
        for id in path {
            let Some(c) = db.read_blocking(|c| rows::commit_cid(c, &id))? else {
                return Err(missing(format!("commit {id}")));
            };
            let cid = cid_of(&c)?;
            if seen.insert(cid) {
                let size = read(hub, &cid)?.len() as u64;
                blocks.push((cid, size));
            }
        }
        let cid = cid_of(&state.cid)?;
        if seen.insert(cid) {
            let size = read(hub, &cid)?.len() as u64;
            blocks.push((cid, size));
        }
    }

    let len = crate::car::header(&[root]).len() as u64
        + blocks
            .iter()
            .map(|(cid, size)| crate::car::section_prefix(cid, *size as usize).len() as u64 + size)
            .sum::<u64>();
    Ok(CarPlan {
        root,
        commit_id,
        blocks,
        len,
    })
}

fn read(hub: &Hub, cid: &Cid) -> Result<Bytes> {
    hub.store
        .block_blocking(cid, Scope::Granted)?
        .ok_or_else(|| Error::Invalid(format!("block {cid} is not on the hub")))
}

/// The commits from `from` down to `to` along parent links (both included), if `to` is
/// `from` or one of its ancestors in the repo.
fn path_down(c: &rusqlite::Connection, rid: i64, from: Id, to: Id) -> Result<Option<Vec<Id>>> {
    let mut came_from: HashMap<Id, Option<Id>> = HashMap::from([(from, None)]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        if id == to {
            let mut path = vec![id];
            let mut at = id;
            while let Some(Some(prev)) = came_from.get(&at) {
                path.push(*prev);
                at = *prev;
            }
            path.reverse();
            return Ok(Some(path));
        }
        if came_from.len() > COVER_DEPTH {
            break;
        }
        if let Some(row) = content::repo_commit(c, rid, &id)? {
            for p in row.parents {
                if let std::collections::hash_map::Entry::Vacant(e) = came_from.entry(p) {
                    e.insert(Some(id));
                    queue.push_back(p);
                }
            }
        }
    }
    Ok(None)
}
