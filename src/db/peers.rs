//! Federation peers (hubs this hub replicates from) and subscribers (hubs that replicate
//! from this one).

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, now};

/// What a hub follows on a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// One repo, `owner/slug`.
    Repo(String),
    /// Every public repo of one owner.
    Owner(String),
    /// Every public repo of the peer.
    All,
}

impl Policy {
    pub fn kind(&self) -> &'static str {
        match self {
            Policy::Repo(_) => "repo",
            Policy::Owner(_) => "owner",
            Policy::All => "all",
        }
    }

    pub fn scope(&self) -> &str {
        match self {
            Policy::Repo(s) | Policy::Owner(s) => s,
            Policy::All => "",
        }
    }

    pub fn from_parts(kind: &str, scope: &str) -> Option<Policy> {
        Some(match kind {
            "repo" => Policy::Repo(scope.to_owned()),
            "owner" => Policy::Owner(scope.to_owned()),
            "all" => Policy::All,
            _ => return None,
        })
    }

    /// Whether the policy covers `owner/slug`.
    pub fn covers(&self, owner: &str, slug: &str) -> bool {
        match self {
            Policy::Repo(s) => s.split_once('/') == Some((owner, slug)),
            Policy::Owner(o) => o == owner,
            Policy::All => true,
        }
    }

    /// For people: "alice/song", "every repo of alice", "every public repo".
    pub fn describe(&self) -> String {
        match self {
            Policy::Repo(s) => s.clone(),
            Policy::Owner(o) => format!("every repo of {o}"),
            Policy::All => "every public repo".into(),
        }
    }
}

/// A peer and how replication from it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: i64,
    pub url: String,
    pub peer_id: Option<String>,
    pub policy: Policy,
    pub source: String,
    pub status: String,
    pub last_sync: Option<i64>,
    pub last_attempt: Option<i64>,
    pub lag_commits: u64,
    pub last_error: Option<String>,
    pub added_at: String,
}

impl Peer {
    /// Seconds since the last complete sync while the replica is behind or cut off; 0 when
    /// it is up to date.
    pub fn lag_seconds(&self, now: i64) -> u64 {
        if self.status == "active" {
            return 0;
        }
        let since = self.last_sync.unwrap_or_else(|| {
            // Never synced: lagging since it was added.
            humantime::parse_rfc3339(&self.added_at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now, |d| d.as_secs() as i64)
        });
        (now - since).max(0) as u64
    }
}

const PEER_COLUMNS: &str = "id, url, peer_id, policy, scope, source, status, last_sync, last_attempt, lag_commits, last_error, added_at";

fn peer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Peer> {
    let kind: String = r.get(3)?;
    let scope: String = r.get(4)?;
    Ok(Peer {
        id: r.get(0)?,
        url: r.get(1)?,
        peer_id: r.get(2)?,
        policy: Policy::from_parts(&kind, &scope).unwrap_or(Policy::All),
        source: r.get(5)?,
        status: r.get(6)?,
        last_sync: r.get(7)?,
        last_attempt: r.get(8)?,
        lag_commits: r.get::<_, i64>(9)? as u64,
        last_error: r.get(10)?,
        added_at: r.get(11)?,
    })
}

/// Adds a peer, or changes the policy of one already there. Returns it.
pub fn add(conn: &Connection, url: &str, policy: &Policy, source: &str) -> Result<Peer> {
    conn.execute(
        "INSERT INTO peers (url, policy, scope, source, added_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (url) DO UPDATE SET policy = excluded.policy, scope = excluded.scope",
        params![url, policy.kind(), policy.scope(), source, now()],
    )?;
    Ok(by_url(conn, url)?.expect("the peer was just written"))
}

pub fn by_url(conn: &Connection, url: &str) -> Result<Option<Peer>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {PEER_COLUMNS} FROM peers WHERE url = ?1"))?
        .query_row([url], peer_row)
        .optional()?)
}

pub fn by_peer_id(conn: &Connection, peer_id: &str) -> Result<Vec<Peer>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PEER_COLUMNS} FROM peers WHERE peer_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([peer_id], peer_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Peer>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {PEER_COLUMNS} FROM peers ORDER BY url"))?;
    let rows = stmt.query_map([], peer_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes a peer; its replica repos stay (read-only) until removed by hand.
pub fn remove(conn: &Connection, url: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM peers WHERE url = ?1", [url])? == 1)
}

pub fn set_peer_id(conn: &Connection, id: i64, peer_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE peers SET peer_id = ?2 WHERE id = ?1",
        params![id, peer_id],
    )?;
    Ok(())
}

/// Records the outcome of a sync attempt.
pub fn record_attempt(
    conn: &Connection,
    id: i64,
    status: &str,
    synced: bool,
    lag_commits: u64,
    error: Option<&str>,
    at: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE peers SET status = ?2, last_attempt = ?6, lag_commits = ?3, last_error = ?4,
                last_sync = CASE WHEN ?5 THEN ?6 ELSE last_sync END
         WHERE id = ?1",
        params![id, status, lag_commits as i64, error, synced, at],
    )?;
    Ok(())
}

/// A hub that wants notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub url: String,
    pub peer_id: String,
    pub policy: Policy,
}

/// Subscribers kept at most (anyone may subscribe to notices about public repos).
pub const MAX_SUBSCRIBERS: i64 = 1_000;

/// Adds (or refreshes) a subscription; false when the table is full.
pub fn subscribe(conn: &Connection, s: &Subscriber) -> Result<bool> {
    let n: i64 = conn.query_row("SELECT count(*) FROM subscribers", [], |r| r.get(0))?;
    let exists: bool = conn
        .query_row(
            "SELECT 1 FROM subscribers WHERE url = ?1 AND policy = ?2 AND scope = ?3",
            params![s.url, s.policy.kind(), s.policy.scope()],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists && n >= MAX_SUBSCRIBERS {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO subscribers (url, peer_id, policy, scope, added_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (url, policy, scope) DO UPDATE SET peer_id = excluded.peer_id",
        params![s.url, s.peer_id, s.policy.kind(), s.policy.scope(), now()],
    )?;
    Ok(true)
}

/// Subscribers whose policy covers `owner/slug`, one per URL.
pub fn subscribers_of(conn: &Connection, owner: &str, slug: &str) -> Result<Vec<Subscriber>> {
    let mut stmt =
        conn.prepare_cached("SELECT url, peer_id, policy, scope FROM subscribers ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out: Vec<Subscriber> = Vec::new();
    for row in rows {
        let (url, peer_id, kind, scope) = row?;
        let Some(policy) = Policy::from_parts(&kind, &scope) else {
            continue;
        };
        if policy.covers(owner, slug) && !out.iter().any(|s| s.url == url) {
            out.push(Subscriber {
                url,
                peer_id,
                policy,
            });
        }
    }
    Ok(out)
}

/// Moves a peer to a new address (a LAN hub that changed IP).
pub fn set_url(conn: &Connection, id: i64, url: &str) -> Result<()> {
    conn.execute("UPDATE peers SET url = ?2 WHERE id = ?1", params![id, url])?;
    Ok(())
}
