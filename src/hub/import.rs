//! `musehub car import`: a commit DAG from a CAR file into a repo. Every block is checked
//! against its CID (object bytes while they are stored: each must hash to its Muse id, and
//! the tree rebuilt from them must have the CID the CAR links), every Muse id recomputed and
//! every node rebuilt by this hub's own rules before anything is recorded; one transaction
//! then records snapshots, commits, branches and this hub's signed ref-states. A bad CAR
//! leaves nothing visible.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use cid::Cid;
use futures_util::StreamExt;

use super::{Hub, dag as hubdag, topo_order};
use crate::cids::Id;
use crate::clone::{self, CarIndex, History, Source};
use crate::dag::RefState;
use crate::db::content::{self, CommitRow};
use crate::db::repos;
use crate::db::{dag as rows, users};
use crate::storage::Staged;

use super::stream_import::{StreamError, Streamed, object_error};

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub repo: String,
    pub commits: usize,
    pub snapshots: usize,
    pub objects: usize,
    pub bytes: u64,
    pub branches: Vec<(String, Id)>,
    pub missing_parents: usize,
}

/// How an import treats what the hub already holds and who must have signed.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Commits already held: the walk stops there (an incremental CAR leaves them out).
    pub stop: std::collections::HashSet<Id>,
    /// When set, every ref-state must be signed by this hub key (a replica trusts only its
    /// origin's signatures).
    pub signer: Option<libp2p::PeerId>,
}

/// Objects stored at once.
const OBJECTS_IN_FLIGHT: usize = 3;

/// What an import gathered before the repo shows any of it: the checked history, its
/// ref-states (newest first), the objects it stored (recorded, joining no repo yet) and
/// those the hub held, all to be attached to the repo.
#[derive(Debug)]
struct Gathered {
    hist: History,
    states: Vec<(Cid, RefState)>,
    /// Objects stored by this import, and their bytes.
    stored: usize,
    bytes: u64,
    /// Every object of the history: stored now or held before.
    attach: BTreeSet<Id>,
}

impl Hub {
    /// Stores one object from the CAR through the store's writer (which checks its bytes
    /// against `oid` and chunks them by this hub's profile) and checks that the result has
    /// the CID the CAR links.
    async fn store_object(&self, src: &Source, oid: &Id, cid: &Cid) -> Result<Staged> {
        let size = src.object_size(cid, oid).await?;
        let mut w = self.store.writer(*oid, size).await?;
        for piece in clone::pieces(src, cid, oid).await? {
            let data = src.piece(piece, oid).await?;
            w.write_bytes(data).await?;
        }
        let staged = w.finish().await.map_err(|e| object_error(oid, e))?;
        self.check_object_cid(&staged, oid, cid).await?;
        Ok(staged)
    }

    /// Checks that an object stored from a CAR has the CID the CAR links (this hub rebuilt
    /// its tree by its own profile).
    pub(super) async fn check_object_cid(
        &self,
        staged: &Staged,
        oid: &Id,
        cid: &Cid,
    ) -> Result<()> {
        let ours = match staged.root() {
            Some(root) => root,
            // Already held: its CID is the one recorded then.
            None if !staged.is_new() => {
                let o = *oid;
                self.db.read(move |c| hubdag::object_cid(c, &o)).await?
            }
            None => oid.raw_cid(),
        };
        if ours != *cid {
            bail!(
                "object {oid} is linked as {cid}, but this hub's unixfs-v1-2025 layout gives {ours}"
            );
        }
        Ok(())
    }

    /// Imports the CAR at `path` into `target` (`owner/slug`), or into the repo its
    /// ref-states name. One pass when its blocks are in depth-first order (as this hub and
    /// `ipfs dag export` write them), else by index.
    pub async fn import_car(
        &self,
        path: &Path,
        target: Option<&str>,
        opts: &ImportOptions,
        progress: &(dyn Fn(u64, usize, usize) + Sync),
    ) -> Result<ImportReport> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let gathered = match self.stream_car(file, progress).await {
            Ok(streamed) => self.check_streamed(streamed, opts).await?,
            Err(StreamError::Bad(e)) => return Err(e.context(path.display().to_string())),
            Err(StreamError::Order(why)) => {
                tracing::info!(target: "musehub::import", %why, "reading the CAR by index instead");
                self.gather_indexed(path, opts, progress).await?
            }
        };
        self.record_import(gathered, target, opts).await
    }

    /// Imports a CAR as it arrives (another hub's answer) into `target`, in one pass;
    /// [`StreamError::Order`] when its blocks are not in depth-first order.
    pub(crate) async fn import_car_stream<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: R,
        target: &str,
        opts: &ImportOptions,
    ) -> std::result::Result<ImportReport, StreamError> {
        let streamed = self.stream_car(reader, &|_, _, _| {}).await?;
        let gathered = self.check_streamed(streamed, opts).await?;
        Ok(self.record_import(gathered, Some(target), opts).await?)
    }

    /// The history of a streamed CAR, checked from its nodes; every object it names came or
    /// is held.
    async fn check_streamed(&self, s: Streamed, opts: &ImportOptions) -> Result<Gathered> {
        let src = Source::Blocks(s.nodes);
        let hist = clone::load(&src, s.root, true, &opts.stop).await?;
        if let Some((oid, cid)) = hist
            .objects
            .iter()
            .find(|(o, _)| !s.stored.contains_key(o) && !s.held.contains(o))
        {
            bail!("object {oid} ({cid}) is not in the CAR");
        }
        // Objects of commits the walk stopped before are not the import's (they stay
        // unattached, as a refused import's objects do).
        let ours: Vec<(&Id, &u64)> = s
            .stored
            .iter()
            .filter(|(o, _)| hist.objects.contains_key(o))
            .collect();
        let (stored, bytes) = (ours.len(), ours.iter().map(|(_, b)| **b).sum());
        let attach = hist.objects.keys().copied().collect();
        Ok(Gathered {
            hist,
            states: s.states,
            stored,
            bytes,
            attach,
        })
    }

    /// Indexes the CAR at `path`, then stores the objects its history names.
    async fn gather_indexed(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: &(dyn Fn(u64, usize, usize) + Sync),
    ) -> Result<Gathered> {
        let car = CarIndex::open_for_import(path).await?;
        let head = car.roots[0];
        let states = clone::ref_states_in(&car).await?;
        let src = Source::Car(car);
        let hist = clone::load(&src, head, true, &opts.stop).await?;
        // Objects the hub already holds under the same CID are not read again (an
        // incremental CAR leaves them out); the repo only gains them.
        let wanted: Vec<(Id, Cid)> = hist.objects.iter().map(|(o, c)| (*o, *c)).collect();
        let held: BTreeSet<Id> = self
            .db
            .read(move |c| Ok::<_, crate::db::Error>(hubdag::held_as(c, &wanted)))
            .await?
            .into_iter()
            .collect();
        // Objects: stored, chunked by this hub's profile, and checked to give the same CIDs.
        // A few objects at a time: hashing one while another waits on the disk.
        let count = hist.objects.len() - held.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let written = std::sync::atomic::AtomicU64::new(0);
        let src = &src;
        let mut stored =
            futures_util::stream::iter(hist.objects.iter().filter(|(o, _)| !held.contains(o)))
                .map(|(oid, cid)| {
                    let (done, written) = (&done, &written);
                    async move {
                        let r = self.store_object(src, oid, cid).await?;
                        let b = written.fetch_add(r.size(), std::sync::atomic::Ordering::Relaxed)
                            + r.size();
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        progress(b, n, count);
                        Ok::<_, anyhow::Error>(r)
                    }
                })
                .buffer_unordered(OBJECTS_IN_FLIGHT);
        // Recorded as they come (joining no repo yet), so memory holds one batch at most.
        let mut ingest = self.store.ingest_unattached();
        while let Some(staged) = stored.next().await {
            ingest.add(staged?).await?;
        }
        drop(stored);
        ingest.commit().await?;
        let attach = hist.objects.keys().copied().collect();
        Ok(Gathered {
            hist,
            states,
            stored: count,
            bytes: written.into_inner(),
            attach,
        })
    }

    /// Checks the ref-states, then records the gathered objects and history in the target
    /// repo (made when new).
    async fn record_import(
        &self,
        gathered: Gathered,
        target: Option<&str>,
        opts: &ImportOptions,
    ) -> Result<ImportReport> {
        let Gathered {
            hist,
            states,
            stored,
            bytes,
            attach,
        } = gathered;
        for (cid, s) in &states {
            let signer: libp2p::PeerId = s
                .signatures
                .first()
                .ok_or_else(|| anyhow!("ref-state {cid} is not signed"))?
                .signer
                .parse()
                .map_err(|_| anyhow!("ref-state {cid}: the signer is not a peer id"))?;
            s.verify(&signer)
                .map_err(|e| anyhow!("ref-state {cid}: {e}"))?;
            if let Some(want) = &opts.signer
                && *want != signer
            {
                bail!("ref-state {cid} is signed by {signer}, not by the expected hub {want}");
            }
        }
        // Branches: the newest ref-state per branch whose commit came in; else the head on
        // the branch its own record names.
        let mut branches: Vec<(String, Id)> = Vec::new();
        for (_, s) in &states {
            if hist.commit(&s.commit_id).is_some() && !branches.iter().any(|(b, _)| *b == s.branch)
            {
                branches.push((s.branch.clone(), s.commit_id));
            }
        }
        if branches.is_empty() {
            let b = hist.head().node.branch().unwrap_or("main").to_owned();
            branches.push((b, hist.head().id));
        }
        let named = states.first().map(|(_, s)| s.repo.clone());
        let target = match (target, named) {
            (Some(t), _) => t.to_owned(),
            (None, Some(n)) => n,
            (None, None) => bail!("the CAR names no repository; give one with --repo owner/slug"),
        };
        let (owner, slug) = target
            .split_once('/')
            .ok_or_else(|| anyhow!("--repo must be owner/slug, not {target:?}"))?;
        super::check_slug(slug)?;
        let (o, s) = (owner.to_owned(), slug.to_owned());
        let (user, existing) = self
            .db
            .read(move |c| {
                Ok::<_, crate::db::Error>((users::by_name(c, &o)?, repos::get(c, &o, &s)?))
            })
            .await?;
        let Some(user) = user else {
            bail!(
                "there is no user {owner:?} on this hub; create it first with: musehub user add {owner}"
            );
        };
        let domain = states
            .first()
            .map(|(_, s)| s.domain.clone())
            .unwrap_or_else(|| "midi".into());
        let repo = match existing {
            Some(r) => r,
            None => {
                let (new_slug, uuid, vis, dom) = (
                    slug.to_owned(),
                    states
                        .first()
                        .map(|(_, s)| s.repo_id.clone())
                        .unwrap_or_else(super::new_uuid),
                    self.default_visibility,
                    domain.clone(),
                );
                let uid = user.id;
                self.db
                    .write(move |tx| {
                        // A repo id already used here (an import into a second name) gets a
                        // fresh one.
                        let uuid = if repos::uuid_taken(tx, &uuid)? {
                            super::new_uuid()
                        } else {
                            uuid
                        };
                        let id = repos::create(tx, uid, &new_slug, vis, &uuid)?;
                        repos::set_domain(tx, id, &dom)?;
                        Ok::<_, crate::db::Error>(id)
                    })
                    .await?;
                let (o, s) = (owner.to_owned(), slug.to_owned());
                self.db
                    .read(move |c| repos::get(c, &o, &s))
                    .await?
                    .ok_or_else(|| anyhow!("the new repo vanished"))?
            }
        };

        let report = ImportReport {
            repo: format!("{}/{}", repo.owner, repo.slug),
            commits: hist.commits.len(),
            snapshots: hist.snapshots.len(),
            objects: stored,
            bytes,
            branches: branches.clone(),
            missing_parents: hist.missing_parents.len(),
        };
        let key = self.signer.clone();
        self.db
            .write(move |tx| {
                let mut added = 0u64;
                for oid in &attach {
                    added += u64::from(content::add_repo_object(tx, repo.id, oid)?);
                }
                if added > 0 {
                    crate::db::events::record(
                        tx,
                        repo.id,
                        crate::db::events::Kind::ObjectsStored,
                        &added.to_string(),
                    )?;
                }
                record(tx, &repo, &hist, &branches, &key)
            })
            .await?;
        Ok(report)
    }
}

fn record(
    tx: &rusqlite::Transaction<'_>,
    repo: &repos::Repo,
    hist: &History,
    branches: &[(String, Id)],
    key: &libp2p::identity::Keypair,
) -> Result<()> {
    let rid = repo.id;
    for s in hist.snapshots.values() {
        let raw = s.node.to_msgpack(&s.entries)?;
        content::put_snapshot(tx, &s.id, s.entries.len(), &raw)?;
        content::add_repo_snapshot(tx, rid, &s.id)?;
    }
    let mut rows_raw = Vec::new();
    let mut cids: HashMap<Id, Cid> = HashMap::new();
    for c in &hist.commits {
        let n = &c.node;
        let row = CommitRow {
            commit_id: c.id,
            snapshot_id: n.snapshot_id()?,
            parents: n.parent_ids()?,
            message: n.message().to_owned(),
            committed_at: n
                .record
                .get("committed_at")
                .and_then(crate::dagcbor::Value::as_text)
                .unwrap_or_default()
                .to_owned(),
            author: n
                .record
                .get("author")
                .and_then(crate::dagcbor::Value::as_text)
                .unwrap_or_default()
                .to_owned(),
        };
        rows_raw.push((row, n.to_msgpack()?));
        cids.insert(c.id, c.cid);
    }
    for (row, raw) in topo_order(&rows_raw) {
        content::put_commit(tx, row, raw)?;
        content::add_repo_commit(tx, rid, &row.commit_id)?;
    }
    for (c, p) in &hist.missing_parents {
        content::add_shallow(tx, rid, c, p)?;
    }
    // This hub's own nodes must be the ones that came in: same rules, same CIDs.
    // Object CIDs as checked by this import (each object rebuilt by this hub's profile to
    // the CID the CAR links), or as recorded for those the hub held.
    for s in hist.snapshots.values() {
        let ours = hubdag::snapshot_node_with(tx, &s.id, &hist.objects)?;
        if ours != s.cid {
            bail!(
                "snapshot {} came as {}, but this hub builds {ours}",
                s.id,
                s.cid
            );
        }
    }
    for (id, cid) in &cids {
        let ours = hubdag::commit_node(tx, id)?;
        if ours != *cid {
            let stored = rows::commit_cid(tx, id)?.unwrap_or_default();
            bail!(
                "commit {id} came as {cid}, but this hub holds it as {} (its parents or record differ)",
                Cid::try_from(stored.as_slice())
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            );
        }
    }
    let had = !repos::branches(tx, rid)?.is_empty();
    for (branch, head) in branches {
        crate::muse::check_branch(branch)?;
        if repos::branch_head(tx, rid, branch)? != Some(*head) {
            hubdag::append_ref_state(tx, repo, branch, head, key)?;
            repos::set_branch(tx, rid, branch, head)?;
        }
    }
    if !had && let Some((b, _)) = branches.first() {
        repos::set_default_branch(tx, rid, b)?;
    }
    repos::touch_pushed(tx, rid)?;
    Ok(())
}
