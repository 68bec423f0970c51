//! Blocks the hub publishes itself (its IPNS index), public by construction.

use rusqlite::{Connection, params};

use super::{Result, now};
use crate::cids::Id;

/// How many index blocks stay published: resolvers may still hold a record naming an older
/// one for its TTL.
pub const KEEP_INDEXES: i64 = 16;

/// Marks a stored block as published, keeping only the newest [`KEEP_INDEXES`] of its kind.
pub fn publish(conn: &Connection, digest: &Id, kind: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO published_blocks (digest, kind, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
    )?
    .execute(params![&digest.0[..], kind, now()])?;
    conn.prepare_cached(
        "DELETE FROM published_blocks WHERE kind = ?1 AND digest NOT IN
           (SELECT digest FROM published_blocks WHERE kind = ?1
            ORDER BY created_at DESC LIMIT ?2)",
    )?
    .execute(params![kind, KEEP_INDEXES])?;
    Ok(())
}

pub fn is_published(conn: &Connection, digest: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM published_blocks WHERE digest = ?1")?
        .exists([&digest.0[..]])?)
}

/// Whether a block is (part of) any object, history node or ref-state, public or not: the gateway never fetches such a
/// block from the network, so a private object's CID cannot be served by going around it.
pub fn in_any_object(conn: &Connection, digest: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM objects WHERE object_id = ?1
             UNION ALL SELECT 1 FROM object_blocks WHERE digest = ?1
             UNION ALL SELECT 1 FROM dag_blocks WHERE digest = ?1
             UNION ALL SELECT 1 FROM ref_states WHERE digest = ?1 LIMIT 1",
        )?
        .exists([&digest.0[..]])?)
}
