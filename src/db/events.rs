//! The event log: one row per change to a repo's content or how it is shown, written in the
//! transaction that makes the change (see `migrations/0008_events.sql`). [`crate::events`]
//! turns the rows into typed events for the running hub.

use rusqlite::{Connection, params};

use super::{Result, unix_now};

/// Rows kept: the running hub reads the tail within a second or two, so this is only a
/// margin for a hub that is busy or briefly stopped. Older rows are deleted on insert.
const KEEP: i64 = 10_000;

/// What changed. Stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Objects were added to the repo (`detail`: how many).
    ObjectsStored,
    /// A branch was set or moved (`detail`: the branch).
    BranchMoved,
    /// A branch was removed (`detail`: the branch).
    BranchDeleted,
    /// A release was made (`detail`: its tag).
    ReleaseCreated,
    /// A release was removed (`detail`: its tag).
    ReleaseDeleted,
    /// The repo became public or private (`detail`: the new visibility).
    VisibilityChanged,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ObjectsStored,
        Kind::BranchMoved,
        Kind::BranchDeleted,
        Kind::ReleaseCreated,
        Kind::ReleaseDeleted,
        Kind::VisibilityChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ObjectsStored => "objects_stored",
            Kind::BranchMoved => "branch_moved",
            Kind::BranchDeleted => "branch_deleted",
            Kind::ReleaseCreated => "release_created",
            Kind::ReleaseDeleted => "release_deleted",
            Kind::VisibilityChanged => "visibility_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub repo_id: i64,
    pub kind: Kind,
    pub detail: String,
}

/// Logs a change; call it inside the transaction that makes the change.
pub fn record(conn: &Connection, repo_id: i64, kind: Kind, detail: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO events (repo_id, kind, detail, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![repo_id, kind.as_str(), detail, unix_now()])?;
    let seq = conn.last_insert_rowid();
    if seq % 1000 == 0 {
        conn.prepare_cached("DELETE FROM events WHERE seq <= ?1")?
            .execute([seq - KEEP])?;
    }
    Ok(())
}

/// The newest sequence number (0 when nothing was ever logged).
pub fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))?)
}

/// A page of the log: its rows of known kinds, the last sequence number read and how many
/// rows were read (a full page means more may follow).
#[derive(Debug)]
pub struct Page {
    pub rows: Vec<Row>,
    pub last: i64,
    pub read: usize,
}

/// Up to `limit` rows after `seq`, oldest first. Rows of a kind this version does not know
/// (written by a newer musehub) are read past and left out.
pub fn after(conn: &Connection, seq: i64, limit: usize) -> Result<Page> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, repo_id, kind, detail FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![seq, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut page = Page {
        rows: Vec::new(),
        last: seq,
        read: 0,
    };
    for row in rows {
        let (seq, repo_id, kind, detail) = row?;
        page.last = seq;
        page.read += 1;
        if let Some(kind) = Kind::parse(&kind) {
            page.rows.push(Row {
                seq,
                repo_id,
                kind,
                detail,
            });
        }
    }
    Ok(page)
}
