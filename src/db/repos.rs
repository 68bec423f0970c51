//! Repositories, branches, releases and wire tags.

use rusqlite::{Connection, OptionalExtension, params};

use super::events::{self, Kind};
use super::{Result, now};
use crate::cids::Id;

pub use crate::rules::Visibility;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: i64,
    pub uuid: String,
    pub owner_id: i64,
    pub owner: String,
    pub slug: String,
    pub visibility: Visibility,
    pub domain: String,
    pub default_branch: String,
    pub created_at: String,
    pub pushed_at: Option<String>,
    /// For a replica: the hub the repo comes from (pushes go there).
    pub origin: Option<String>,
}

const REPO_COLUMNS: &str = "r.id, r.uuid, r.owner_id, u.name, r.slug, r.visibility, r.domain, r.default_branch, r.created_at, r.pushed_at, r.origin_url";

fn repo_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Repo> {
    let vis: String = r.get(5)?;
    Ok(Repo {
        id: r.get(0)?,
        uuid: r.get(1)?,
        owner_id: r.get(2)?,
        owner: r.get(3)?,
        slug: r.get(4)?,
        visibility: Visibility::parse(&vis).unwrap_or(Visibility::Private),
        domain: r.get(6)?,
        default_branch: r.get(7)?,
        created_at: r.get(8)?,
        pushed_at: r.get(9)?,
        origin: r.get(10)?,
    })
}

pub fn create(
    conn: &Connection,
    owner_id: i64,
    slug: &str,
    visibility: Visibility,
    uuid: &str,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO repos (uuid, owner_id, slug, visibility, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![uuid, owner_id, slug, visibility.as_str(), now()],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn get(conn: &Connection, owner: &str, slug: &str) -> Result<Option<Repo>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {REPO_COLUMNS} FROM repos r JOIN users u ON u.id = r.owner_id WHERE u.name = ?1 AND r.slug = ?2"
        ))?
        .query_row([owner, slug], repo_row)
        .optional()?)
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Repo>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {REPO_COLUMNS} FROM repos r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1"
        ))?
        .query_row([id], repo_row)
        .optional()?)
}

pub fn list(conn: &Connection, owner: Option<&str>) -> Result<Vec<Repo>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {REPO_COLUMNS} FROM repos r JOIN users u ON u.id = r.owner_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY u.name, r.slug"
    ))?;
    let rows = stmt.query_map([owner], repo_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_visibility(conn: &Connection, repo_id: i64, visibility: Visibility) -> Result<()> {
    let changed = conn.execute(
        "UPDATE repos SET visibility = ?2 WHERE id = ?1 AND visibility <> ?2",
        params![repo_id, visibility.as_str()],
    )?;
    if changed == 1 {
        events::record(conn, repo_id, Kind::VisibilityChanged, visibility.as_str())?;
    }
    Ok(())
}

pub fn set_default_branch(conn: &Connection, repo_id: i64, branch: &str) -> Result<()> {
    conn.execute(
        "UPDATE repos SET default_branch = ?2 WHERE id = ?1",
        params![repo_id, branch],
    )?;
    Ok(())
}

pub fn touch_pushed(conn: &Connection, repo_id: i64) -> Result<()> {
    conn.execute(
        "UPDATE repos SET pushed_at = ?2 WHERE id = ?1",
        params![repo_id, now()],
    )?;
    Ok(())
}

/// Branch name → head commit, ordered by name.
pub fn branches(conn: &Connection, repo_id: i64) -> Result<Vec<(String, Id)>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, head FROM branches WHERE repo_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([repo_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, head) = row?;
        if let Some(id) = Id::from_slice(&head) {
            out.push((name, id));
        }
    }
    Ok(out)
}

pub fn branch_head(conn: &Connection, repo_id: i64, name: &str) -> Result<Option<Id>> {
    let head: Option<Vec<u8>> = conn
        .prepare_cached("SELECT head FROM branches WHERE repo_id = ?1 AND name = ?2")?
        .query_row(params![repo_id, name], |r| r.get(0))
        .optional()?;
    Ok(head.and_then(|h| Id::from_slice(&h)))
}

pub fn set_branch(conn: &Connection, repo_id: i64, name: &str, head: &Id) -> Result<()> {
    conn.execute(
        "INSERT INTO branches (repo_id, name, head, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id, name) DO UPDATE SET head = excluded.head, updated_at = excluded.updated_at",
        params![repo_id, name, &head.0[..], now()],
    )?;
    events::record(conn, repo_id, Kind::BranchMoved, name)
}

/// A stored release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub uuid: String,
    pub tag: String,
    pub channel: String,
    pub is_draft: bool,
    /// The ReleaseDict as JSON (release_id already set to `uuid`).
    pub record: String,
}

/// Inserts a release; false when the tag already exists in the repo.
pub fn add_release(
    conn: &Connection,
    repo_id: i64,
    rel: &Release,
    commit_id: &str,
) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO releases (uuid, repo_id, tag, channel, is_draft, commit_id, record, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (repo_id, tag) DO NOTHING",
        params![rel.uuid, repo_id, rel.tag, rel.channel, rel.is_draft, commit_id, rel.record, now()],
    )?;
    if n == 1 {
        events::record(conn, repo_id, Kind::ReleaseCreated, &rel.tag)?;
    }
    Ok(n == 1)
}

/// Releases newest first, optionally of one channel, drafts only when asked.
pub fn releases(
    conn: &Connection,
    repo_id: i64,
    channel: Option<&str>,
    drafts: bool,
) -> Result<Vec<Release>> {
    let mut stmt = conn.prepare_cached(
        "SELECT uuid, tag, channel, is_draft, record FROM releases
         WHERE repo_id = ?1 AND (?2 IS NULL OR channel = ?2) AND (?3 OR NOT is_draft)
         ORDER BY id DESC",
    )?;
    let rows = stmt.query_map(params![repo_id, channel, drafts], |r| {
        Ok(Release {
            uuid: r.get(0)?,
            tag: r.get(1)?,
            channel: r.get(2)?,
            is_draft: r.get(3)?,
            record: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a release label; false when there was none.
pub fn delete_release(conn: &Connection, repo_id: i64, tag: &str) -> Result<bool> {
    let deleted = conn.execute(
        "DELETE FROM releases WHERE repo_id = ?1 AND tag = ?2",
        params![repo_id, tag],
    )? == 1;
    if deleted {
        events::record(conn, repo_id, Kind::ReleaseDeleted, tag)?;
    }
    Ok(deleted)
}

/// Inserts or refreshes a wire tag (keyed by label).
pub fn upsert_tag(
    conn: &Connection,
    repo_id: i64,
    tag: &str,
    tag_id: &str,
    commit_id: &str,
    created_at: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO wire_tags (repo_id, tag, tag_id, commit_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (repo_id, tag) DO UPDATE SET commit_id = excluded.commit_id, tag_id = excluded.tag_id",
        params![repo_id, tag, tag_id, commit_id, created_at],
    )?;
    Ok(())
}

/// One release by tag, drafts included (the page decides who may see a draft).
pub fn release(conn: &Connection, repo_id: i64, tag: &str) -> Result<Option<Release>> {
    Ok(conn
        .prepare_cached(
            "SELECT uuid, tag, channel, is_draft, record FROM releases
             WHERE repo_id = ?1 AND tag = ?2",
        )?
        .query_row(params![repo_id, tag], |r| {
            Ok(Release {
                uuid: r.get(0)?,
                tag: r.get(1)?,
                channel: r.get(2)?,
                is_draft: r.get(3)?,
                record: r.get(4)?,
            })
        })
        .optional()?)
}

pub fn set_domain(conn: &Connection, repo_id: i64, domain: &str) -> Result<()> {
    conn.prepare_cached("UPDATE repos SET domain = ?2 WHERE id = ?1")?
        .execute(params![repo_id, domain])?;
    Ok(())
}

pub fn uuid_taken(conn: &Connection, uuid: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM repos WHERE uuid = ?1")?
        .exists([uuid])?)
}

/// Marks a repo as a replica of `origin` (or, with `None`, as this hub's own).
pub fn set_origin(conn: &Connection, repo_id: i64, origin: Option<&str>) -> Result<()> {
    conn.execute(
        "UPDATE repos SET origin_url = ?2 WHERE id = ?1",
        params![repo_id, origin],
    )?;
    Ok(())
}

/// Removes a branch (a replica follows its origin's deletions).
pub fn delete_branch(conn: &Connection, repo_id: i64, name: &str) -> Result<()> {
    let deleted = conn.execute(
        "DELETE FROM branches WHERE repo_id = ?1 AND name = ?2",
        params![repo_id, name],
    )?;
    if deleted == 1 {
        events::record(conn, repo_id, Kind::BranchDeleted, name)?;
    }
    Ok(())
}

/// Commits the repo holds.
pub fn commit_count(conn: &Connection, repo_id: i64) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM repo_commits WHERE repo_id = ?1",
        [repo_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// The ids of every commit the repo holds.
pub fn commit_ids(conn: &Connection, repo_id: i64) -> Result<Vec<Id>> {
    let mut stmt = conn.prepare_cached("SELECT commit_id FROM repo_commits WHERE repo_id = ?1")?;
    let rows = stmt.query_map([repo_id], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for r in rows {
        if let Ok(b) = <[u8; 32]>::try_from(r?) {
            out.push(Id(b));
        }
    }
    Ok(out)
}
