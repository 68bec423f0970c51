//! The history DAG's rows: node CIDs beside Muse ids, which node blocks belong to which
//! commit or snapshot (`dag_blocks`), and each repo's signed ref-state chain.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::cids::Id;

pub const COMMIT_DAG_BACKFILL: &str = "commit_dag";

/// Which history a node block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Commit,
    Snapshot,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Snapshot => "snapshot",
        }
    }
}

/// Records a node block: its bytes inline (nodes are at most 1 MiB) and what it belongs to.
pub fn put_node(
    conn: &Connection,
    digest: &Id,
    data: &[u8],
    kind: Kind,
    muse_id: &Id,
) -> Result<()> {
    super::content::put_block(conn, digest, data.len() as u64, Some(data))?;
    add_dag_block(conn, digest, kind, muse_id)
}

/// Records what a node block (already recorded in `blocks`) belongs to.
pub fn add_dag_block(conn: &Connection, digest: &Id, kind: Kind, muse_id: &Id) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO dag_blocks (digest, kind, muse_id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![&digest.0[..], kind.as_str(), &muse_id.0[..]])?;
    Ok(())
}

pub fn snapshot_cid(conn: &Connection, sid: &Id) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT cid FROM snapshots WHERE snapshot_id = ?1")?
        .query_row([&sid.0[..]], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

pub fn set_snapshot_cid(conn: &Connection, sid: &Id, cid: &[u8]) -> Result<()> {
    conn.prepare_cached("UPDATE snapshots SET cid = ?2 WHERE snapshot_id = ?1")?
        .execute(params![&sid.0[..], cid])?;
    Ok(())
}

pub fn commit_cid(conn: &Connection, commit_id: &Id) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT cid FROM commits WHERE commit_id = ?1")?
        .query_row([&commit_id.0[..]], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

pub fn set_commit_cid(conn: &Connection, commit_id: &Id, cid: &[u8]) -> Result<()> {
    conn.prepare_cached("UPDATE commits SET cid = ?2 WHERE commit_id = ?1")?
        .execute(params![&commit_id.0[..], cid])?;
    Ok(())
}

/// The commit whose node has this CID.
pub fn commit_by_cid(conn: &Connection, cid: &[u8]) -> Result<Option<Id>> {
    Ok(conn
        .prepare_cached("SELECT commit_id FROM commits WHERE cid = ?1")?
        .query_row([cid], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
        .and_then(|b| Id::from_slice(&b)))
}

/// Commits and snapshots with no node yet (written before schema 5).
pub fn without_nodes(conn: &Connection) -> Result<(Vec<Id>, Vec<Id>)> {
    let ids = |sql: &str| -> Result<Vec<Id>> {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(Id::from_slice(&r?));
        }
        Ok(out)
    };
    Ok((
        ids("SELECT snapshot_id FROM snapshots WHERE cid IS NULL ORDER BY id")?,
        ids("SELECT commit_id FROM commits WHERE cid IS NULL ORDER BY id")?,
    ))
}

/// One signed branch move of a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefStateRow {
    pub seq: u64,
    pub branch: String,
    pub commit_id: Id,
    pub cid: Vec<u8>,
    pub digest: Id,
    pub created_at: String,
}

pub fn add_ref_state(
    conn: &Connection,
    repo_id: i64,
    row: &RefStateRow,
    data: &[u8],
) -> Result<()> {
    super::content::put_block(conn, &row.digest, data.len() as u64, Some(data))?;
    conn.prepare_cached(
        "INSERT INTO ref_states (repo_id, seq, branch, commit_id, cid, digest, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        repo_id,
        row.seq as i64,
        row.branch,
        &row.commit_id.0[..],
        row.cid,
        &row.digest.0[..],
        row.created_at
    ])?;
    Ok(())
}

fn ref_state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RefStateRow> {
    let commit: Vec<u8> = r.get(2)?;
    let digest: Vec<u8> = r.get(4)?;
    Ok(RefStateRow {
        seq: r.get::<_, i64>(0)? as u64,
        branch: r.get(1)?,
        commit_id: Id::from_slice(&commit).unwrap_or(Id([0; 32])),
        cid: r.get(3)?,
        digest: Id::from_slice(&digest).unwrap_or(Id([0; 32])),
        created_at: r.get(5)?,
    })
}

/// The repo's newest ref-state.
pub fn last_ref_state(conn: &Connection, repo_id: i64) -> Result<Option<RefStateRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, branch, commit_id, cid, digest, created_at FROM ref_states
             WHERE repo_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([repo_id], ref_state_row)
        .optional()?)
}

/// The repo's ref-states, newest first.
pub fn ref_states(conn: &Connection, repo_id: i64) -> Result<Vec<RefStateRow>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, branch, commit_id, cid, digest, created_at FROM ref_states
         WHERE repo_id = ?1 ORDER BY seq DESC",
    )?;
    let rows = st.query_map([repo_id], ref_state_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
