//! The write protocol, owned here: an object's bytes go through an [`ObjectWriter`] (checked
//! against its id, chunked, leaves written), which finishes into a [`Staged`] object; an
//! [`Ingest`] session takes staged objects for one repo and records them in batches, each
//! batch only after the directories of its new block files are fsynced, so no row ever names
//! bytes a power cut could lose. Callers never see the directories or the block rows.
//!
//! ```text
//! let mut ingest = store.ingest(repo_id);
//! for each object: let mut w = store.writer(id, size).await?;  w.write(..)…;
//!                  ingest.add(w.finish().await?).await?;
//! let report = ingest.commit().await?;
//! ```
//!
//! This is the seam the block layout sits behind: the writer ([`super::write`]) decides where
//! bytes go and which directories need a sync, the session decides when rows are recorded.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use cid::Cid;

use super::{Imported, Result, Store, sync_dirs};
use crate::cids::Id;
use crate::db::{self, content};

/// Inline bytes staged in memory after which a session records what it has so far, bounding
/// memory when a client sends many small objects in one body.
const RECORD_EVERY_BYTES: u64 = 32 * 1024 * 1024;

/// Inline bytes all sessions of the hub may stage at once; past it, a session records what it
/// has at its next object. Four pushes of four requests each held 50 MB of small files at once
/// without it (massif, `musehub bench`'s concurrent phase). Nobody waits for the budget (a
/// stalled upload could hold it forever): it only makes sessions record early, so the hub
/// holds at most this plus one small object per session.
const STAGED_BUDGET_BYTES: u64 = 16 * 1024 * 1024;

/// Objects staged after which a session records what it has so far (one transaction's size).
const RECORD_EVERY_OBJECTS: usize = 4096;

/// An object whose bytes are checked and written (leaves as files, small blocks in memory),
/// not yet recorded. Only an [`Ingest`] records one.
#[derive(Debug)]
pub struct Staged {
    pub(super) imported: Imported,
    /// Directories holding this object's new block files: synced before it is recorded.
    pub(super) dirs: BTreeSet<PathBuf>,
}

impl Staged {
    pub fn size(&self) -> u64 {
        self.imported.size
    }

    pub fn object_id(&self) -> Id {
        self.imported.object_id
    }

    /// The leaves of a new object stored whole: (digest, offset in its file, length).
    pub fn whole_leaves(&self) -> impl Iterator<Item = (Id, u64, u64)> + '_ {
        self.imported
            .blocks
            .iter()
            .filter_map(|b| b.offset.map(|o| (b.digest, o, b.size)))
    }

    /// The dag-pb root of a multi-chunk object this hub had not held before.
    pub fn root(&self) -> Option<Cid> {
        self.imported.root
    }

    /// Whether the object was new to the hub.
    pub fn is_new(&self) -> bool {
        self.imported.new
    }

    fn inline_bytes(&self) -> u64 {
        self.imported
            .blocks
            .iter()
            .filter_map(|b| b.inline.as_ref())
            .map(|b| b.len() as u64)
            .sum()
    }
}

/// What a session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Objects added to the repo by this session.
    pub stored: u64,
    /// Objects the session was given (stored, or already in the repo).
    pub seen: u64,
}

impl Ingested {
    /// Objects the repo already had.
    pub fn skipped(&self) -> u64 {
        self.seen - self.stored
    }
}

/// One ingest into one repo (see the module docs). Dropping a session without
/// [`Ingest::commit`] records nothing more; its block files stay unreferenced until the
/// same bytes arrive again.
#[derive(Debug)]
pub struct Ingest {
    store: Store,
    /// `None`: objects are recorded without joining a repo (an import attaches them once
    /// everything checked out).
    repo_id: Option<i64>,
    batch: Vec<Imported>,
    dirs: BTreeSet<PathBuf>,
    /// Inline bytes of `batch`, counted in the store's hub-wide total too.
    staged_bytes: u64,
    done: Ingested,
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.store
            .staged
            .fetch_sub(self.staged_bytes, Ordering::Relaxed);
    }
}

impl Store {
    /// Starts an ingest session into `repo_id`.
    pub fn ingest(&self, repo_id: i64) -> Ingest {
        self.session(Some(repo_id))
    }

    /// Starts an ingest session whose objects join no repo: they are stored and recorded
    /// (so a long import holds no more than a batch in memory), but no repo shows them, and
    /// nothing serves them, until [`content::add_repo_object`] attaches them.
    pub fn ingest_unattached(&self) -> Ingest {
        self.session(None)
    }

    fn session(&self, repo_id: Option<i64>) -> Ingest {
        Ingest {
            store: self.clone(),
            repo_id,
            batch: Vec::new(),
            dirs: BTreeSet::new(),
            staged_bytes: 0,
            done: Ingested::default(),
        }
    }

    /// Imports a whole in-memory object into a repo (tests).
    #[cfg(test)]
    pub(crate) async fn import_bytes(&self, repo_id: i64, bytes: &[u8]) -> Result<Id> {
        let mut ingest = self.ingest(repo_id);
        let id = ingest.add_bytes(bytes).await?;
        ingest.commit().await?;
        Ok(id)
    }
}

impl Ingest {
    /// Takes a staged object; records the batch so far once it is large.
    pub async fn add(&mut self, staged: Staged) -> Result<()> {
        self.done.seen += 1;
        let inline = staged.inline_bytes();
        self.staged_bytes += inline;
        let hub_wide = self.store.staged.fetch_add(inline, Ordering::Relaxed) + inline;
        self.dirs.extend(staged.dirs);
        self.batch.push(staged.imported);
        if self.staged_bytes > RECORD_EVERY_BYTES
            || hub_wide > STAGED_BUDGET_BYTES
            || self.batch.len() >= RECORD_EVERY_OBJECTS
        {
            self.record().await?;
        }
        Ok(())
    }

    /// Writes and takes a whole in-memory object; returns its id (tests: callers with bytes
    /// in hand know their id and use [`Ingest::add_object`]).
    #[cfg(test)]
    pub(crate) async fn add_bytes(&mut self, bytes: &[u8]) -> Result<Id> {
        let id = Id::of(bytes);
        self.add_object(id, bytes).await?;
        Ok(id)
    }

    /// Writes and takes an in-memory object that must hash to `id`.
    pub async fn add_object(&mut self, id: Id, bytes: &[u8]) -> Result<()> {
        let mut w = self.store.writer(id, bytes.len() as u64).await?;
        w.write(bytes).await?;
        let staged = w.finish().await?;
        self.add(staged).await
    }

    /// Records whatever is staged and ends the session.
    pub async fn commit(mut self) -> Result<Ingested> {
        self.record().await?;
        Ok(self.done)
    }

    /// Syncs the new files' directories, then records the batch in one transaction.
    async fn record(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let objects = std::mem::take(&mut self.batch);
        let dirs = std::mem::take(&mut self.dirs);
        // The bytes leave the budget now: they are written or dropped by the end of this call.
        self.store
            .staged
            .fetch_sub(std::mem::take(&mut self.staged_bytes), Ordering::Relaxed);
        tokio::task::spawn_blocking(move || sync_dirs(&dirs))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let repo_id = self.repo_id;
        let added = self
            .store
            .db
            .write(move |tx| {
                let mut added = 0;
                for o in &objects {
                    for b in &o.blocks {
                        match b.offset {
                            Some(offset) => {
                                content::put_extent(tx, &b.digest, b.size, &o.object_id, offset)?
                            }
                            None => content::put_block(tx, &b.digest, b.size, b.inline.as_deref())?,
                        }
                    }
                    let root = o.root.map(|c| c.to_bytes());
                    // A new tree is always written whole (storage::write).
                    let whole = o.root.is_some();
                    content::put_object(tx, &o.object_id, o.size, root.as_deref(), whole)?;
                    if o.root.is_some() {
                        // Every block of the tree, so each can be traced to its repos.
                        db::blocks::add_object_blocks(
                            tx,
                            &o.object_id,
                            o.blocks.iter().map(|b| &b.digest),
                        )?;
                    }
                    added += match repo_id {
                        Some(rid) => u64::from(content::add_repo_object(tx, rid, &o.object_id)?),
                        None => 1,
                    };
                }
                if let Some(rid) = repo_id
                    && added > 0
                {
                    db::events::record(
                        tx,
                        rid,
                        db::events::Kind::ObjectsStored,
                        &added.to_string(),
                    )?;
                }
                Ok::<_, super::Error>(added)
            })
            .await?;
        self.done.stored += added;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Scope;

    fn store_with_repos() -> (tempfile::TempDir, Store, i64, i64) {
        let (dir, store, repos) = crate::storage::test_store(&["a", "b"]);
        (dir, store, repos[0], repos[1])
    }

    fn in_repo(store: &Store, repo: i64, id: Id) -> bool {
        store
            .db
            .read_blocking(|c| content::repo_has_object(c, repo, &id))
            .unwrap()
    }

    #[tokio::test]
    async fn a_session_counts_what_it_stored_and_what_the_repo_had() {
        let (_dir, store, a, b) = store_with_repos();
        let big: Vec<u8> = (0..3 * (1 << 20)).map(|i| (i % 249) as u8).collect();
        let mut ingest = store.ingest(a);
        let small = ingest.add_bytes(b"a short riff").await.unwrap();
        let large = ingest.add_bytes(&big).await.unwrap();
        ingest.add_bytes(b"a short riff").await.unwrap();
        let done = ingest.commit().await.unwrap();
        assert_eq!(done, Ingested { stored: 2, seen: 3 });
        assert_eq!(done.skipped(), 1);
        assert!(in_repo(&store, a, small) && in_repo(&store, a, large));
        assert!(!in_repo(&store, b, large), "repo b was not given it");

        // The same bytes into another repo: nothing new on disk, but the repo gains them.
        let mut again = store.ingest(b);
        again.add_object(large, &big).await.unwrap();
        assert_eq!(again.commit().await.unwrap().stored, 1);
        assert!(in_repo(&store, b, large));
        let read = store.block(&large.raw_cid(), Scope::Granted).await.unwrap();
        assert!(
            read.is_none(),
            "a large object's id is not one of its blocks"
        );
    }

    #[tokio::test]
    async fn nothing_is_recorded_without_commit_and_bad_bytes_are_refused() {
        let (_dir, store, a, _) = store_with_repos();
        let mut ingest = store.ingest(a);
        let id = ingest.add_bytes(b"never committed").await.unwrap();
        drop(ingest);
        assert!(!in_repo(&store, a, id));
        assert!(
            store
                .db
                .read_blocking(|c| content::object(c, &id))
                .unwrap()
                .is_none()
        );

        let mut ingest = store.ingest(a);
        let wrong = Id::of(b"something else");
        let err = ingest.add_object(wrong, b"these bytes").await.unwrap_err();
        assert!(
            matches!(err, super::super::Error::HashMismatch { .. }),
            "{err}"
        );
        assert_eq!(ingest.commit().await.unwrap(), Ingested::default());
    }

    #[tokio::test]
    async fn large_sessions_record_in_batches() {
        let (_dir, store, a, _) = store_with_repos();
        let mut ingest = store.ingest(a);
        for i in 0..RECORD_EVERY_OBJECTS + 3 {
            ingest
                .add_bytes(format!("take {i}").as_bytes())
                .await
                .unwrap();
        }
        // The first batch is recorded before commit; the rest waits for it.
        assert_eq!(ingest.done.stored, RECORD_EVERY_OBJECTS as u64);
        assert_eq!(ingest.batch.len(), 3);
        let done = ingest.commit().await.unwrap();
        assert_eq!(done.stored, RECORD_EVERY_OBJECTS as u64 + 3);
    }

    /// `n` distinct inline-sized objects.
    fn smalls(seed: u8, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut b = vec![seed; super::super::INLINE_MAX];
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                b
            })
            .collect()
    }

    async fn recorded(store: &Store, bytes: &[u8]) -> bool {
        let id = Id::of(bytes);
        store
            .db
            .read(move |c| content::object(c, &id))
            .await
            .unwrap()
            .is_some()
    }

    #[tokio::test]
    async fn sessions_record_early_when_the_hub_wide_budget_is_spent() {
        let (_dir, store, repos) = crate::storage::test_store(&["a", "b"]);
        let per = STAGED_BUDGET_BYTES as usize / super::super::INLINE_MAX;
        // One session stages three quarters of the budget and waits (a slow upload).
        let mut slow = store.ingest(repos[0]);
        let held = smalls(1, per * 3 / 4);
        for b in &held {
            slow.add_bytes(b).await.unwrap();
        }
        assert!(
            !recorded(&store, &held[0]).await,
            "under budget: still staged"
        );
        // Another session passes the budget: it records its own batch at once.
        let mut fast = store.ingest(repos[1]);
        let more = smalls(2, per / 2);
        for b in &more {
            fast.add_bytes(b).await.unwrap();
        }
        assert!(
            recorded(&store, &more[0]).await,
            "over budget: recorded early"
        );
        assert!(
            store.staged.load(Ordering::Relaxed) <= STAGED_BUDGET_BYTES,
            "the hub stays within its budget"
        );
        // Nobody waited; the slow session's bytes are still its own to record.
        assert!(!recorded(&store, &held[0]).await);
        fast.commit().await.unwrap();
        drop(slow);
        assert_eq!(
            store.staged.load(Ordering::Relaxed),
            0,
            "commits and dropped sessions give their bytes back"
        );
    }
}
