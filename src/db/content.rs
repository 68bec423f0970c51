//! Content rows: blocks, objects, snapshots, commits, and which repo may see which.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::cids::Id;

/// Where a block's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub size: u64,
    /// The bytes when stored inline.
    pub inline: Option<Vec<u8>>,
    /// Where the bytes are in a whole object's file: `(object_id, offset)` (a leaf of an
    /// object stored whole, schema 9). Neither this nor `inline`: a file of its own.
    pub extent: Option<(Id, u64)>,
}

fn block_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<BlockRow> {
    let object: Option<Vec<u8>> = r.get(at + 2)?;
    let offset: Option<i64> = r.get(at + 3)?;
    Ok(BlockRow {
        size: r.get::<_, i64>(at)? as u64,
        inline: r.get(at + 1)?,
        extent: match (object.as_deref().and_then(Id::from_slice), offset) {
            (Some(o), Some(off)) => Some((o, off as u64)),
            _ => None,
        },
    })
}

pub fn block(conn: &Connection, digest: &Id) -> Result<Option<BlockRow>> {
    Ok(conn
        .prepare_cached("SELECT size, data, object_id, offset FROM blocks WHERE digest = ?1")?
        .query_row([&digest.0[..]], |r| block_row(r, 0))
        .optional()?)
}

pub fn has_block(conn: &Connection, digest: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM blocks WHERE digest = ?1")?
        .query_row([&digest.0[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records a block. `inline` carries the bytes for a small block; `None` means the file is
/// already durable in the block directory. Idempotent: a block already recorded keeps its
/// place.
pub fn put_block(conn: &Connection, digest: &Id, size: u64, inline: Option<&[u8]>) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO blocks (digest, size, data) VALUES (?1, ?2, ?3)")?
        .execute(params![&digest.0[..], size as i64, inline])?;
    Ok(())
}

/// Records a block whose bytes are `size` bytes at `offset` in the durable file of the whole
/// object `object_id`. Idempotent: a block already recorded keeps its place.
pub fn put_extent(
    conn: &Connection,
    digest: &Id,
    size: u64,
    object_id: &Id,
    offset: u64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO blocks (digest, size, object_id, offset) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        &digest.0[..],
        size as i64,
        &object_id.0[..],
        offset as i64
    ])?;
    Ok(())
}

/// Points a block that is a file of its own at a range of a whole object's file instead
/// (converting to schema 9). True when the row changed: its own file is then unused.
pub fn move_to_extent(conn: &Connection, digest: &Id, object_id: &Id, offset: u64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE blocks SET object_id = ?2, offset = ?3
             WHERE digest = ?1 AND data IS NULL AND object_id IS NULL",
        )?
        .execute(params![&digest.0[..], &object_id.0[..], offset as i64])?;
    Ok(n == 1)
}

/// Every block digest with its row, for `doctor`.
pub fn all_blocks(conn: &Connection, mut f: impl FnMut(Id, BlockRow) -> Result<()>) -> Result<()> {
    let mut stmt = conn.prepare("SELECT digest, size, data, object_id, offset FROM blocks")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let d: Vec<u8> = r.get(0)?;
        if let Some(id) = Id::from_slice(&d) {
            f(id, block_row(r, 1)?)?;
        }
    }
    Ok(())
}

/// Digests of blocks stored as ranges of whole objects, in digest order after `after`
/// (finishing the conversion to schema 9: their own files, if any, are removed).
pub fn extent_blocks_after(conn: &Connection, after: &Id, limit: usize) -> Result<Vec<Id>> {
    let mut stmt = conn.prepare_cached(
        "SELECT digest FROM blocks WHERE object_id IS NOT NULL AND digest > ?1
         ORDER BY digest LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![&after.0[..], limit as i64], |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.extend(Id::from_slice(&row?));
    }
    Ok(out)
}

/// An object's size and, for multi-chunk objects, its UnixFS root CID bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub size: u64,
    pub root: Option<Vec<u8>>,
    /// The object's bytes are one file of their own (a multi-chunk object stored whole,
    /// schema 9); otherwise they are read through its blocks.
    pub whole: bool,
}

fn object_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        size: r.get::<_, i64>(at)? as u64,
        root: r.get(at + 1)?,
        whole: r.get(at + 2)?,
    })
}

pub fn object(conn: &Connection, oid: &Id) -> Result<Option<ObjectRow>> {
    Ok(conn
        .prepare_cached("SELECT size, root, whole FROM objects WHERE object_id = ?1")?
        .query_row([&oid.0[..]], |r| object_row(r, 0))
        .optional()?)
}

/// Records an object. Idempotent: an object already recorded keeps its row.
pub fn put_object(
    conn: &Connection,
    oid: &Id,
    size: u64,
    root: Option<&[u8]>,
    whole: bool,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO objects (object_id, size, root, whole) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![&oid.0[..], size as i64, root, whole])?;
    Ok(())
}

/// Marks an object as stored whole: its file is durable (converting to schema 9).
pub fn set_whole(conn: &Connection, oid: &Id) -> Result<()> {
    conn.prepare_cached("UPDATE objects SET whole = 1 WHERE object_id = ?1")?
        .execute([&oid.0[..]])?;
    Ok(())
}

/// How many multi-chunk objects are not stored whole yet, and their bytes.
pub fn objects_in_blocks(conn: &Connection) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects WHERE root IS NOT NULL AND whole = 0",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// Multi-chunk objects not stored whole yet, in id order after `after`.
pub fn objects_in_blocks_after(
    conn: &Connection,
    after: &Id,
    limit: usize,
) -> Result<Vec<(Id, ObjectRow)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT object_id, size, root, whole FROM objects
         WHERE root IS NOT NULL AND whole = 0 AND object_id > ?1
         ORDER BY object_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![&after.0[..], limit as i64], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, object_row(r, 1)?))
    })?;
    objects_of(rows)
}

/// `(object_id, row)` pairs from a query, leaving out ids of the wrong length.
fn objects_of(
    rows: impl Iterator<Item = rusqlite::Result<(Vec<u8>, ObjectRow)>>,
) -> Result<Vec<(Id, ObjectRow)>> {
    let mut out = Vec::new();
    for row in rows {
        let (id, o) = row?;
        if let Some(id) = Id::from_slice(&id) {
            out.push((id, o));
        }
    }
    Ok(out)
}

pub fn all_objects(conn: &Connection) -> Result<Vec<(Id, ObjectRow)>> {
    let mut stmt = conn.prepare("SELECT object_id, size, root, whole FROM objects")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, object_row(r, 1)?)))?;
    objects_of(rows)
}

/// Adds an object to a repo; true when it was not there yet.
pub fn add_repo_object(conn: &Connection, repo_id: i64, oid: &Id) -> Result<bool> {
    let n = conn
        .prepare_cached("INSERT OR IGNORE INTO repo_objects (repo_id, object_id) VALUES (?1, ?2)")?
        .execute(params![repo_id, &oid.0[..]])?;
    Ok(n == 1)
}

/// An object's row when the repo holds it (one indexed join).
pub fn repo_object(conn: &Connection, repo_id: i64, oid: &Id) -> Result<Option<ObjectRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT o.size, o.root, o.whole FROM repo_objects ro
             JOIN objects o ON o.object_id = ro.object_id
             WHERE ro.repo_id = ?1 AND ro.object_id = ?2",
        )?
        .query_row(params![repo_id, &oid.0[..]], |r| object_row(r, 0))
        .optional()?)
}

pub fn repo_has_object(conn: &Connection, repo_id: i64, oid: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM repo_objects WHERE repo_id = ?1 AND object_id = ?2")?
        .query_row(params![repo_id, &oid.0[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The ids of `ids` this repo does not hold, in request order.
pub fn missing_objects(conn: &Connection, repo_id: i64, ids: &[Id]) -> Result<Vec<Id>> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM repo_objects WHERE repo_id = ?1 AND object_id = ?2")?;
    let mut out = Vec::new();
    for id in ids {
        if !stmt.exists(params![repo_id, &id.0[..]])? {
            out.push(*id);
        }
    }
    Ok(out)
}

/// Whether any public repo, or any repo of `owner_id`, holds the object (the `/o/{id}` ACL).
pub fn object_visible(conn: &Connection, oid: &Id, owner_id: Option<i64>) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM repo_objects ro JOIN repos r ON r.id = ro.repo_id
             WHERE ro.object_id = ?1 AND (r.visibility = 'public' OR r.owner_id = ?2) LIMIT 1",
        )?
        .exists(params![&oid.0[..], owner_id])?)
}

pub fn snapshot_raw(conn: &Connection, sid: &Id) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT raw FROM snapshots WHERE snapshot_id = ?1")?
        .query_row([&sid.0[..]], |r| r.get(0))
        .optional()?)
}

pub fn put_snapshot(conn: &Connection, sid: &Id, entries: usize, raw: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO snapshots (snapshot_id, entries, raw) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![&sid.0[..], entries as i64, raw])?;
    Ok(())
}

pub fn add_repo_snapshot(conn: &Connection, repo_id: i64, sid: &Id) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO repo_snapshots (repo_id, snapshot_id) VALUES (?1, ?2)",
    )?
    .execute(params![repo_id, &sid.0[..]])?;
    Ok(())
}

pub fn repo_has_snapshot(conn: &Connection, repo_id: i64, sid: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM repo_snapshots WHERE repo_id = ?1 AND snapshot_id = ?2")?
        .exists(params![repo_id, &sid.0[..]])?)
}

/// The fields of a commit the hub uses; the full record stays in `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRow {
    pub commit_id: Id,
    pub snapshot_id: Id,
    pub parents: Vec<Id>,
    pub message: String,
    pub committed_at: String,
    pub author: String,
}

pub fn put_commit(conn: &Connection, c: &CommitRow, raw: &[u8]) -> Result<()> {
    let p1 = c.parents.first().map(|p| p.0.to_vec());
    let p2 = c.parents.get(1).map(|p| p.0.to_vec());
    conn.prepare_cached(
        "INSERT OR IGNORE INTO commits (commit_id, snapshot_id, parent1, parent2, message, committed_at, author, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![&c.commit_id.0[..], &c.snapshot_id.0[..], p1, p2, c.message, c.committed_at, c.author, raw])?;
    Ok(())
}

/// A `CommitRow` from `snapshot_id, parent1, parent2, message, committed_at, author`.
fn commit_row_of(r: &rusqlite::Row<'_>, cid: &Id) -> rusqlite::Result<CommitRow> {
    let snap: Vec<u8> = r.get(0)?;
    let parents = [
        r.get::<_, Option<Vec<u8>>>(1)?,
        r.get::<_, Option<Vec<u8>>>(2)?,
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| Id::from_slice(&p))
    .collect();
    Ok(CommitRow {
        commit_id: *cid,
        snapshot_id: Id::from_slice(&snap).unwrap_or(Id([0; 32])),
        parents,
        message: r.get(3)?,
        committed_at: r.get(4)?,
        author: r.get(5)?,
    })
}

/// A commit of this repo (membership checked), without its raw record.
pub fn repo_commit(conn: &Connection, repo_id: i64, cid: &Id) -> Result<Option<CommitRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.snapshot_id, c.parent1, c.parent2, c.message, c.committed_at, c.author
             FROM repo_commits rc JOIN commits c ON c.commit_id = rc.commit_id
             WHERE rc.repo_id = ?1 AND rc.commit_id = ?2",
        )?
        .query_row(params![repo_id, &cid.0[..]], |r| commit_row_of(r, cid))
        .optional()?)
}

/// A commit the hub holds in any repo, without its raw record.
pub fn commit_row(conn: &Connection, cid: &Id) -> Result<Option<CommitRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT snapshot_id, parent1, parent2, message, committed_at, author
             FROM commits WHERE commit_id = ?1",
        )?
        .query_row(params![&cid.0[..]], |r| commit_row_of(r, cid))
        .optional()?)
}

pub fn commit_raw(conn: &Connection, cid: &Id) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT raw FROM commits WHERE commit_id = ?1")?
        .query_row([&cid.0[..]], |r| r.get(0))
        .optional()?)
}

pub fn repo_has_commit(conn: &Connection, repo_id: i64, cid: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM repo_commits WHERE repo_id = ?1 AND commit_id = ?2")?
        .exists(params![repo_id, &cid.0[..]])?)
}

pub fn add_repo_commit(conn: &Connection, repo_id: i64, cid: &Id) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO repo_commits (repo_id, commit_id, seq)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM repo_commits WHERE repo_id = ?1))",
    )?
    .execute(params![repo_id, &cid.0[..]])?;
    Ok(())
}

pub fn add_shallow(conn: &Connection, repo_id: i64, cid: &Id, missing: &Id) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO shallow (repo_id, commit_id, missing_parent) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![repo_id, &cid.0[..], &missing.0[..]])?;
    Ok(())
}

/// (commit, missing parent) pairs of a repo's shallow history.
pub fn shallow(conn: &Connection, repo_id: i64) -> Result<Vec<(Id, Id)>> {
    let mut stmt =
        conn.prepare_cached("SELECT commit_id, missing_parent FROM shallow WHERE repo_id = ?1")?;
    let rows = stmt.query_map([repo_id], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (a, b) = row?;
        if let (Some(a), Some(b)) = (Id::from_slice(&a), Id::from_slice(&b)) {
            out.push((a, b));
        }
    }
    Ok(out)
}

/// Counts for the node page and metrics: (objects, blocks, bytes in blocks).
pub fn counts(conn: &Connection) -> Result<(u64, u64, u64)> {
    let objects: i64 = conn.query_row("SELECT COUNT(*) FROM objects", [], |r| r.get(0))?;
    let (blocks, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blocks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((objects as u64, blocks as u64, bytes as u64))
}

/// Whether any commit of the repo names a parent this hub has never seen (one row, not all).
pub fn is_shallow(conn: &Connection, repo_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM shallow WHERE repo_id = ?1 LIMIT 1")?
        .exists([repo_id])?)
}
