//! Writing the history DAG: the DAG-CBOR node of every accepted commit and snapshot (in the
//! push's transaction), the signed ref-state appended for every branch move, and the
//! one-time backfill for data stored before schema 5.

use std::collections::HashSet;

use cid::Cid;
use libp2p::identity::Keypair;
use rusqlite::Connection;

use super::{Error, Hub, Result};
use crate::cids::Id;
use crate::dag::{self, RefState};
use crate::db::dag::{self as rows, COMMIT_DAG_BACKFILL, Kind, RefStateRow};
use crate::db::repos::{self, Repo};
use crate::db::{self, blocks, content};

fn dag_err(e: dag::Error) -> Error {
    Error::Invalid(e.to_string())
}

fn cid_from(bytes: &[u8], what: &str) -> Result<Cid> {
    Cid::try_from(bytes).map_err(|e| Error::Invalid(format!("stored {what} CID: {e}")))
}

/// Which of `objects` the hub holds under the CID given (an import need not read them again).
pub(crate) fn held_as(conn: &Connection, objects: &[(Id, Cid)]) -> Vec<Id> {
    objects
        .iter()
        .filter(|(oid, cid)| object_cid(conn, oid).ok() == Some(*cid))
        .map(|(oid, _)| *oid)
        .collect()
}

/// An object's CID: its UnixFS root, or the raw CID of its id.
pub(crate) fn object_cid(conn: &Connection, oid: &Id) -> Result<Cid> {
    let row = content::object(conn, oid)?
        .ok_or_else(|| Error::Invalid(format!("object {oid} is not on the hub")))?;
    match row.root {
        Some(root) => cid_from(&root, "object root"),
        None => Ok(oid.raw_cid()),
    }
}

/// The snapshot's node CID, writing its nodes first if it has none.
pub(crate) fn snapshot_node(conn: &Connection, sid: &Id) -> Result<Cid> {
    snapshot_node_with(conn, sid, &std::collections::BTreeMap::new())
}

/// [`snapshot_node`], taking object CIDs from `known` where it has them (an import knows
/// every object's CID: the ones it checked) rather than one lookup per manifest entry.
pub(crate) fn snapshot_node_with(
    conn: &Connection,
    sid: &Id,
    known: &std::collections::BTreeMap<Id, Cid>,
) -> Result<Cid> {
    if let Some(c) = rows::snapshot_cid(conn, sid)? {
        return cid_from(&c, "snapshot");
    }
    let raw = content::snapshot_raw(conn, sid)?
        .ok_or_else(|| Error::Invalid(format!("snapshot {sid} is not on the hub")))?;
    let blocks = dag::snapshot_blocks_from_msgpack(&raw, |oid| match known.get(oid) {
        Some(cid) => Ok(*cid),
        None => object_cid(conn, oid).map_err(|e| dag::Error(e.to_string())),
    })
    .map_err(dag_err)?;
    for b in blocks.parts.iter().chain([&blocks.root]) {
        rows::put_node(conn, &b.digest(), &b.data, Kind::Snapshot, sid)?;
    }
    rows::set_snapshot_cid(conn, sid, &blocks.root.cid.to_bytes())?;
    Ok(blocks.root.cid)
}

/// A snapshot's nodes built and made durable before the push transaction: large parts are
/// files already, small blocks ride along to be written inline.
#[derive(Debug)]
pub(crate) struct StagedSnapshot {
    pub cid: Cid,
    pub blocks: Vec<(Id, u64, Option<Vec<u8>>)>,
}

impl Hub {
    /// Builds and stages the nodes of the pack's snapshots that have none yet, one at a time
    /// (so at most one snapshot's nodes are in memory). A snapshot that cannot be built here
    /// (say, it names an object the hub lacks) is left to the transaction, which refuses it.
    pub(crate) async fn stage_snapshot_nodes(
        &self,
        snapshots: Vec<(Id, bytes::Bytes)>,
    ) -> Result<std::collections::HashMap<Id, StagedSnapshot>> {
        let mut out = std::collections::HashMap::new();
        // Object CIDs looked up once per push: a pack's snapshots mostly name the same
        // objects (each commit changes a few files of many).
        let mut known: std::collections::HashMap<Id, Cid> = std::collections::HashMap::new();
        for (sid, raw) in snapshots {
            let (built, back) = self
                .db
                .read(move |c| {
                    if rows::snapshot_cid(c, &sid)?.is_some() {
                        return Ok::<_, Error>((None, known));
                    }
                    let built = dag::snapshot_blocks_from_msgpack(&raw, |oid| {
                        if let Some(cid) = known.get(oid) {
                            return Ok(*cid);
                        }
                        let cid = object_cid(c, oid).map_err(|e| dag::Error(e.to_string()))?;
                        known.insert(*oid, cid);
                        Ok(cid)
                    });
                    Ok((built.ok(), known))
                })
                .await?;
            known = back;
            let Some(built) = built else { continue };
            let root = built.root.cid;
            let blocks: Vec<(Id, bytes::Bytes)> = built
                .parts
                .into_iter()
                .chain([built.root])
                .map(|b| (b.digest(), bytes::Bytes::from(b.data)))
                .collect();
            self.store.stage_files(blocks.clone()).await?;
            let blocks = blocks
                .into_iter()
                .map(|(digest, data)| {
                    let inline = (data.len() <= crate::storage::INLINE_MAX).then(|| data.to_vec());
                    (digest, data.len() as u64, inline)
                })
                .collect();
            out.insert(sid, StagedSnapshot { cid: root, blocks });
        }
        Ok(out)
    }
}

/// Records a staged snapshot's nodes in the push transaction (unless it has some already).
pub(crate) fn record_snapshot_node(
    conn: &Connection,
    sid: &Id,
    staged: &StagedSnapshot,
) -> Result<()> {
    if rows::snapshot_cid(conn, sid)?.is_some() {
        return Ok(());
    }
    for (digest, size, inline) in &staged.blocks {
        content::put_block(conn, digest, *size, inline.as_deref())?;
        rows::add_dag_block(conn, digest, Kind::Snapshot, sid)?;
    }
    rows::set_snapshot_cid(conn, sid, &staged.cid.to_bytes())?;
    Ok(())
}

/// The commit's node CID, writing its node (and those of its snapshot and of any held
/// ancestor without one, oldest first) if it has none.
pub(crate) fn commit_node(conn: &Connection, commit_id: &Id) -> Result<Cid> {
    if let Some(c) = rows::commit_cid(conn, commit_id)? {
        return cid_from(&c, "commit");
    }
    // Depth-first without recursion: a history can be thousands of commits deep.
    let mut stack = vec![(*commit_id, false)];
    let mut on_stack = HashSet::from([*commit_id]);
    while let Some((id, expanded)) = stack.pop() {
        if rows::commit_cid(conn, &id)?.is_some() {
            continue;
        }
        let row = content::commit_row(conn, &id)?
            .ok_or_else(|| Error::Invalid(format!("commit {id} is not on the hub")))?;
        if !expanded {
            stack.push((id, true));
            for p in &row.parents {
                if content::commit_row(conn, p)?.is_some()
                    && rows::commit_cid(conn, p)?.is_none()
                    && on_stack.insert(*p)
                {
                    stack.push((*p, false));
                }
            }
            continue;
        }
        let snapshot = snapshot_node(conn, &row.snapshot_id)?;
        let mut parents = Vec::new();
        for p in &row.parents {
            if let Some(c) = rows::commit_cid(conn, p)? {
                parents.push(cid_from(&c, "commit")?);
            }
        }
        let raw = content::commit_raw(conn, &id)?
            .ok_or_else(|| Error::Invalid(format!("commit {id} has no record")))?;
        let block = dag::commit_block_from_msgpack(&raw, snapshot, parents).map_err(dag_err)?;
        rows::put_node(conn, &block.digest(), &block.data, Kind::Commit, &id)?;
        rows::set_commit_cid(conn, &id, &block.cid.to_bytes())?;
    }
    let c = rows::commit_cid(conn, commit_id)?.expect("written above");
    cid_from(&c, "commit")
}

/// Appends a signed ref-state for `branch` now at `commit_id` to the repo's chain.
pub(crate) fn append_ref_state(
    conn: &Connection,
    repo: &Repo,
    branch: &str,
    commit_id: &Id,
    key: &Keypair,
) -> Result<Cid> {
    let commit = commit_node(conn, commit_id)?;
    let last = rows::last_ref_state(conn, repo.id)?;
    let prev = last
        .as_ref()
        .map(|r| cid_from(&r.cid, "ref-state"))
        .transpose()?;
    let mut state = RefState {
        repo: format!("{}/{}", repo.owner, repo.slug),
        repo_id: repo.uuid.clone(),
        domain: repo.domain.clone(),
        branch: branch.to_owned(),
        commit,
        commit_id: *commit_id,
        prev,
        seq: last.map_or(1, |r| r.seq + 1),
        time: db::now(),
        signatures: Vec::new(),
    };
    state.sign(key).map_err(dag_err)?;
    let block = state.to_block().map_err(dag_err)?;
    rows::add_ref_state(
        conn,
        repo.id,
        &RefStateRow {
            seq: state.seq,
            branch: branch.to_owned(),
            commit_id: *commit_id,
            cid: block.cid.to_bytes(),
            digest: block.digest(),
            created_at: state.time.clone(),
        },
        &block.data,
    )?;
    Ok(block.cid)
}

impl Hub {
    /// Builds the nodes of commits and snapshots stored before schema 5, and a first signed
    /// ref-state for every branch of every repo. Runs once (a marker row); idempotent if
    /// interrupted. A record that cannot become a node is logged and skipped.
    pub fn backfill_dag(&self) -> Result<()> {
        if !self
            .db
            .read_blocking(|c| blocks::backfill_pending(c, COMMIT_DAG_BACKFILL))?
        {
            return Ok(());
        }
        let key = self.signer.clone();
        let (snaps, commits) = self.db.read_blocking(rows::without_nodes)?;
        let mut done = 0usize;
        for sid in snaps {
            match self.db.write_blocking(|tx| snapshot_node(tx, &sid)) {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(target: "musehub::hub", snapshot = %sid, error = %e, "no DAG node for this snapshot")
                }
            }
        }
        for cid in commits {
            match self.db.write_blocking(|tx| commit_node(tx, &cid)) {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(target: "musehub::hub", commit = %cid, error = %e, "no DAG node for this commit")
                }
            }
        }
        let all = self.db.read_blocking(|c| repos::list(c, None))?;
        for repo in all {
            self.db.write_blocking(|tx| {
                if rows::last_ref_state(tx, repo.id)?.is_some() {
                    return Ok::<_, Error>(());
                }
                for (branch, head) in repos::branches(tx, repo.id)? {
                    if let Err(e) = append_ref_state(tx, &repo, &branch, &head, &key) {
                        tracing::warn!(target: "musehub::hub", repo = %format!("{}/{}", repo.owner, repo.slug), %branch, error = %e, "no ref-state for this branch");
                    }
                }
                Ok(())
            })?;
        }
        self.db
            .write_blocking(|tx| blocks::backfill_done(tx, COMMIT_DAG_BACKFILL))?;
        if done > 0 {
            tracing::info!(target: "musehub::hub", nodes = done, "built the DAG nodes of existing history");
        }
        Ok(())
    }
}
