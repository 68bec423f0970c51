//! Inline blocks versus block files: the figures behind [`musehub::storage::INLINE_MAX`].
//!
//! The inline side goes through the real [`Store`] exactly as `push/objects` does (look the
//! object up, stream it through an object writer, record each batch in one transaction). The
//! file side writes the same bytes the way the store writes a large block (temp file, write,
//! fsync, rename into its shard directory, then each touched directory fsynced once per batch)
//! and records nothing in SQLite, so it is the file path's best case.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::synth::Content;
use musehub::cids::Id;
use musehub::db::repos::{self, Visibility};
use musehub::db::{self, Db, users};
use musehub::storage::Store;

/// What was measured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    pub(super) objects: usize,
    pub(super) object_size: usize,
    pub(super) batch: usize,
    pub(super) inline: Duration,
    pub(super) files: Duration,
}

impl Rates {
    pub(super) fn inline_per_s(&self) -> f64 {
        self.objects as f64 / self.inline.as_secs_f64()
    }

    pub(super) fn files_per_s(&self) -> f64 {
        self.objects as f64 / self.files.as_secs_f64()
    }
}

/// Objects of `size` bytes, distinct from anything in the pushed repo.
fn objects(seed: u64, count: usize, size: usize) -> Vec<(Id, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let mut data = vec![0u8; size];
            Content::new(seed ^ 0xd15c, (1 << 40) + i as u64, false).fill(&mut data);
            (Id::of(&data), data)
        })
        .collect()
}

/// Measures both paths under `dir` (which must not exist yet).
pub(super) async fn measure(
    dir: &Path,
    seed: u64,
    count: usize,
    size: usize,
    batch: usize,
) -> Result<Rates> {
    let objs = objects(seed, count, size);
    let inline = inline(&dir.join("inline"), &objs, batch).await?;
    let files_dir = dir.join("files");
    let files = tokio::task::spawn_blocking(move || files(&files_dir, &objs, batch)).await??;
    Ok(Rates {
        objects: count,
        object_size: size,
        batch,
        inline,
        files,
    })
}

async fn inline(dir: &Path, objs: &[(Id, Vec<u8>)], batch: usize) -> Result<Duration> {
    std::fs::create_dir_all(dir)?;
    // The scratch database's migration log line is noise in the bench output.
    let quiet = tracing::subscriber::NoSubscriber::default();
    let db = tracing::subscriber::with_default(quiet, || Db::open(&dir.join("musehub.db")))
        .context("opening the scratch database")?;
    let store = Store::open(db.clone(), &dir.join("blocks"))?;
    let repo_id = db
        .write(|tx| {
            let u = users::create(tx, "bench")?;
            repos::create(
                tx,
                u.id,
                "disk",
                Visibility::Public,
                "00000000-0000-4000-8000-00000000d15c",
            )
        })
        .await
        .map_err(|e: db::Error| anyhow::anyhow!(e))?;
    let started = Instant::now();
    for chunk in objs.chunks(batch) {
        // One session per batch: each commits (syncs and records) once.
        let mut ingest = store.ingest(repo_id);
        for (id, data) in chunk {
            ingest.add_object(*id, data).await?;
        }
        ingest.commit().await?;
    }
    Ok(started.elapsed())
}

fn files(dir: &Path, objs: &[(Id, Vec<u8>)], batch: usize) -> Result<Duration> {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let started = Instant::now();
    let mut n = 0u64;
    for chunk in objs.chunks(batch) {
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for (_, data) in chunk {
            // Hash like the store does, so both sides pay for it.
            let hex = Id::of(data).to_hex();
            let shard = dir.join(&hex[..2]);
            let path = shard.join(&hex);
            if path.exists() {
                continue;
            }
            std::fs::create_dir_all(&shard)?;
            n += 1;
            let tmp_path = tmp.join(format!("{}-{n}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp_path)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp_path, &path)?;
            dirs.insert(shard);
        }
        for d in &dirs {
            std::fs::File::open(d)?.sync_all()?;
        }
    }
    Ok(started.elapsed())
}
