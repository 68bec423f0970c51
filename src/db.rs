//! The metadata database: SQLite in WAL mode, the only module that contains SQL.
//!
//! One writer connection behind a mutex serialises every write transaction; readers take a
//! connection from a small pool, so reads never wait for a long push to commit. Both run on
//! tokio's blocking pool (`spawn_blocking`), never on the async workers. Schema changes are
//! numbered migrations tracked by `PRAGMA user_version`.
//!
//! Block bytes are not here, except small blocks stored inline (see [`crate::storage`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};

pub mod blocks;
pub mod content;
pub mod dag;
pub mod events;
pub mod identities;
pub mod peers;
pub mod published;
pub mod repos;
pub mod sessions;
pub mod users;

/// Migrations in order; `user_version` is the number applied. Never edit a released one.
const MIGRATIONS: &[&str] = &[
    include_str!("db/migrations/0001_init.sql"),
    include_str!("db/migrations/0002_sessions.sql"),
    include_str!("db/migrations/0003_object_blocks.sql"),
    include_str!("db/migrations/0004_published_blocks.sql"),
    include_str!("db/migrations/0005_commit_dag.sql"),
    include_str!("db/migrations/0006_identities.sql"),
    include_str!("db/migrations/0007_federation.sql"),
    include_str!("db/migrations/0008_events.sql"),
    include_str!("db/migrations/0009_whole_objects.sql"),
];

/// How long a connection waits on a lock held by another before giving up. Writes are
/// serialised in-process, so this only matters for a concurrent CLI command (e.g. `doctor`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads running at once. More threads than this inside SQLite on a small machine only
/// contend for locks and the scheduler (`musehub bench --ui` with 100 readers spent most of
/// its time there); further reads wait asynchronously, holding no thread.
const CONCURRENT_READS: usize = 8;

/// Read connections kept open for reuse: a fresh connection re-reads the schema and starts
/// with an empty statement cache. Enough for every concurrent read and then some.
const MAX_IDLE_READERS: usize = 16;

/// Page cache of each read connection, in KiB. Readers share the OS page cache, so a small
/// private cache keeps idle connections from each holding a copy of the hot pages.
const READER_CACHE_KIB: i64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "database schema version {found} is newer than this musehub ({known}); upgrade musehub"
    )]
    TooNew { found: i64, known: i64 },
    #[error("database task failed: {0}")]
    Join(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cheap, cloneable handle to the database.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// The single write connection. A std mutex: it is only held inside blocking tasks.
    writer: Mutex<Connection>,
    /// Idle read connections. A std mutex held only to push or pop.
    readers: Mutex<Vec<Connection>>,
    /// Permits for [`Db::read`], see [`CONCURRENT_READS`].
    read_permits: tokio::sync::Semaphore,
    /// Read connections opened so far (exported in `/metrics`: a count that keeps growing
    /// under steady load means the pool is too small).
    readers_opened: std::sync::atomic::AtomicU64,
    /// Woken after each write transaction commits (the event log may have grown).
    committed: tokio::sync::Notify,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL is durable across application crashes (a commit is in the WAL
        // before it returns); FULL additionally survives power loss, which a Pi on an SD card
        // sees, so we keep FULL.
        writer.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut writer)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                read_permits: tokio::sync::Semaphore::new(CONCURRENT_READS),
                readers_opened: std::sync::atomic::AtomicU64::new(0),
                committed: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Runs `f` inside one write transaction on the blocking pool; commits if it returns Ok.
    pub async fn write<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.write_blocking(f))
            .await
            .map_err(|e| E::from(Error::Join(e.to_string())))?
    }

    /// The blocking form of [`Db::write`], for CLI commands and blocking tasks.
    pub fn write_blocking<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        E: From<Error>,
        F: FnOnce(&Transaction<'_>) -> std::result::Result<T, E>,
    {
        let mut conn = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(Error::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(Error::from)?;
        self.inner.committed.notify_one();
        Ok(out)
    }

    /// Resolves after the next write transaction of this process commits (or at once when
    /// one committed since the last call). Writes by other processes are not seen here:
    /// [`crate::events`] also looks at the log every second.
    pub async fn committed(&self) {
        self.inner.committed.notified().await
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
    {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|e| E::from(Error::Join(e.to_string())))?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(f))
            .await
            .map_err(|e| E::from(Error::Join(e.to_string())))?
    }

    /// Read connections opened since start.
    pub fn readers_opened(&self) -> u64 {
        self.inner
            .readers_opened
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The blocking form of [`Db::read`].
    pub fn read_blocking<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        E: From<Error>,
        F: FnOnce(&Connection) -> std::result::Result<T, E>,
    {
        let pooled = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(Error::from)?;
                configure(&c).map_err(Error::from)?;
                c.pragma_update(None, "cache_size", -READER_CACHE_KIB)
                    .map_err(Error::from)?;
                self.inner
                    .readers_opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                c
            }
        };
        // One read transaction around the whole closure: a consistent snapshot across its
        // queries, and one lock instead of one per statement (a 50,000-id filter-objects
        // spent half its time taking and dropping locks).
        // BEGIN and COMMIT go through the statement cache: parsing them on every read was a
        // tenth of the web UI's CPU time under load.
        if let Err(e) = conn
            .prepare_cached("BEGIN")
            .and_then(|mut st| st.execute([]))
        {
            return Err(E::from(Error::from(e)));
        }
        let out = f(&conn);
        let ended = conn
            .prepare_cached("COMMIT")
            .and_then(|mut st| st.execute([]));
        // A connection whose transaction could not end is not reused.
        if ended.is_ok() {
            let mut idle = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(target: "musehub::db", version = i + 1, "applied migration");
    }
    Ok(())
}

/// The current time as RFC 3339 with microseconds (`2026-11-24T07:42:00.123456Z`).
pub fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_bring_user_version_to_their_count() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let v: i64 = db
            .read_blocking(|c| {
                c.pragma_query_value(None, "user_version", |r| r.get(0))
                    .map_err(Error::from)
            })
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        // Reopening applies nothing new and keeps the version.
        drop(db);
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let v: i64 = db
            .read_blocking(|c| {
                c.pragma_query_value(None, "user_version", |r| r.get(0))
                    .map_err(Error::from)
            })
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
