//! `negotiate` and `fetch`: the common base, and a fetch answer planned with its exact length
//! before any object byte is read, then streamed.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;

use crate::cids::Id;
use crate::db::content::{self, ObjectRow};
use crate::db::repos::{self, Repo};
use crate::storage;
use crate::wire;
use crate::wire::answers::{self, Negotiated};
use crate::wire::requests::WantHave;

use super::{Error, Hub, Readable, Result};

/// Small objects of a fetch answer read ahead of the socket.
const SMALL_READ_AHEAD: usize = 16;

impl Hub {
    /// `POST negotiate` (protocol doc §3, the recommended form that reaches `ready`).
    pub async fn negotiate(&self, repo: &Readable<Repo>, req: WantHave) -> Result<Negotiated> {
        let WantHave { want, have } = req;
        let repo_id = repo.id;
        let have_empty = have.is_empty();
        let (ack, base) = self
            .db
            .read(move |c| {
                let mut ack = Vec::new();
                for h in &have {
                    if content::repo_has_commit(c, repo_id, h)? {
                        ack.push(*h);
                    }
                }
                let acked: HashSet<Id> = ack.iter().copied().collect();
                let mut base = None;
                if !acked.is_empty() {
                    'wants: for w in &want {
                        let mut seen = HashSet::new();
                        let mut queue = VecDeque::from([*w]);
                        while let Some(c_id) = queue.pop_front() {
                            if !seen.insert(c_id) {
                                continue;
                            }
                            if acked.contains(&c_id) {
                                base = Some(c_id);
                                break 'wants;
                            }
                            if let Some(row) = content::repo_commit(c, repo_id, &c_id)? {
                                queue.extend(row.parents);
                            }
                        }
                    }
                }
                Ok::<_, Error>((ack, base))
            })
            .await?;
        Ok(Negotiated {
            ready: base.is_some() || have_empty,
            ack,
            common_base: base,
        })
    }

    /// `POST fetch`: works out the answer and its exact size without reading object bytes.
    pub async fn plan_fetch(&self, repo: &Readable<Repo>, req: WantHave) -> Result<FetchPlan> {
        let WantHave { want, have } = req;
        let repo_id = repo.id;
        let cap = self.limits.max_fetch_answer;
        self.db
            .read(move |c| plan_fetch(c, repo_id, &want, &have, cap))
            .await
    }

    /// Streams a planned fetch answer. Its length is exactly `plan.len`.
    ///
    /// Small objects (inline rows, most of a song's files) are read up to
    /// [`SMALL_READ_AHEAD`] ahead of the socket, so thousands of them do not each wait for
    /// their own lookup; a large object streams from its file as the socket takes it.
    pub fn fetch_stream(&self, plan: FetchPlan) -> storage::ByteStream {
        use futures_util::{StreamExt, TryStreamExt};
        let head = Bytes::from(plan.head);
        let store = self.store.clone();
        let tail = Bytes::from(plan.tail);
        let objects = futures_util::stream::iter(plan.objects)
            .map(move |(id, row)| {
                let store = store.clone();
                async move {
                    let prefix = Bytes::from(answers::fetch_object_prefix(&id, row.size));
                    let stream: storage::ByteStream = if row.size as usize <= storage::INLINE_MAX {
                        let mut parts = vec![prefix];
                        parts.extend(store.object_stream(id, row).try_collect::<Vec<_>>().await?);
                        Box::pin(futures_util::stream::iter(parts.into_iter().map(Ok)))
                    } else {
                        Box::pin(
                            futures_util::stream::once(async move { Ok(prefix) })
                                .chain(store.object_stream(id, row)),
                        )
                    };
                    Ok::<_, std::io::Error>(stream)
                }
            })
            .buffered(SMALL_READ_AHEAD)
            .flat_map(|r| match r {
                Ok(stream) => stream,
                Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) })),
            });
        Box::pin(
            futures_util::stream::once(async move { Ok(head) })
                .chain(objects)
                .chain(futures_util::stream::once(async move { Ok(tail) })),
        )
    }
}

/// A fetch answer worked out ahead of sending: everything but the object bytes, and the exact
/// encoded length (the CLI reads `Content-Length` to enforce its cap).
#[derive(Debug)]
pub struct FetchPlan {
    /// Map header, commits, snapshots and the objects array header.
    head: Vec<u8>,
    objects: Vec<(Id, ObjectRow)>,
    /// The `branch_heads` entry.
    tail: Vec<u8>,
    pub len: u64,
    pub commits: usize,
}

fn plan_fetch(
    c: &rusqlite::Connection,
    rid: i64,
    want: &[Id],
    have: &[Id],
    cap: u64,
) -> Result<FetchPlan> {
    let mut have_set = HashSet::new();
    for h in have {
        if content::repo_has_commit(c, rid, h)? {
            have_set.insert(*h);
        }
    }
    // Walk from the wants to everything the client lacks; remember the boundary haves.
    let mut commits = Vec::new();
    let mut boundary = HashSet::new();
    let mut seen = HashSet::new();
    let mut queue: VecDeque<Id> = want.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        if have_set.contains(&id) {
            boundary.insert(id);
            continue;
        }
        if !seen.insert(id) {
            continue;
        }
        let Some(row) = content::repo_commit(c, rid, &id)? else {
            continue;
        };
        queue.extend(row.parents.iter().copied());
        commits.push(row);
    }
    // Objects the client holds through the snapshots of its boundary commits are not resent.
    let mut held = HashSet::new();
    for b in &boundary {
        if let Some(row) = content::repo_commit(c, rid, b)? {
            held.extend(manifest_ids(c, &row.snapshot_id)?);
        }
    }
    let mut snapshot_ids = Vec::new();
    let mut snap_seen = HashSet::new();
    for row in &commits {
        if snap_seen.insert(row.snapshot_id) {
            snapshot_ids.push(row.snapshot_id);
        }
    }
    let mut snapshots_raw = Vec::new();
    let mut object_ids = Vec::new();
    let mut obj_seen = HashSet::new();
    for sid in &snapshot_ids {
        let Some(raw) = content::snapshot_raw(c, sid)? else {
            continue;
        };
        for oid in wire::records::snapshot_object_ids(&raw)? {
            if !held.contains(&oid) && obj_seen.insert(oid) {
                object_ids.push(oid);
            }
        }
        snapshots_raw.push(raw);
    }
    let mut objects = Vec::with_capacity(object_ids.len());
    for oid in object_ids {
        match content::object(c, &oid)? {
            Some(row) if content::repo_has_object(c, rid, &oid)? => objects.push((oid, row)),
            _ => {
                tracing::error!(target: "musehub::hub", object = %oid, "snapshot names an object this repo lacks; run `musehub doctor`")
            }
        }
    }

    let mut commits_raw = Vec::with_capacity(commits.len());
    for row in &commits {
        commits_raw.push(content::commit_raw(c, &row.commit_id)?.unwrap_or_default());
    }
    let head = answers::fetch_head(&commits_raw, &snapshots_raw, objects.len());
    let tail = answers::fetch_tail(&repos::branches(c, rid)?);
    let objects_len: u64 = objects
        .iter()
        .map(|(_, r)| answers::fetch_object_len(r.size))
        .sum();
    let len = head.len() as u64 + objects_len + tail.len() as u64;
    if len > cap {
        return Err(Error::AnswerTooLarge {
            size: len,
            cap,
            hint: "clone or pull it with `musehub clone <hub url>/<owner>/<repo> <dir>` (or `musehub pull` in an existing clone), which has no size limit",
        });
    }
    Ok(FetchPlan {
        head,
        objects,
        tail,
        len,
        commits: commits.len(),
    })
}

fn manifest_ids(c: &rusqlite::Connection, sid: &Id) -> Result<Vec<Id>> {
    match content::snapshot_raw(c, sid)? {
        Some(raw) => Ok(wire::records::snapshot_object_ids(&raw)?),
        None => Ok(Vec::new()),
    }
}
