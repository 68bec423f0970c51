//! `musehub doctor`: proves the data directory is whole.
//!
//! Two checks: every stored byte hashes to its id (each block against its digest, each
//! multi-chunk object re-read from its file, or through its UnixFS tree when it is not
//! stored whole, against its `object_id`), and every
//! branch of every repo reaches a complete DAG (commits, snapshots and objects present in the
//! repo, ids recomputed from the records). Parents that were never pushed to this hub are
//! reported as shallow history, which is not a fault.

use std::collections::{HashSet, VecDeque};

use serde::Serialize;

use crate::cids::Id;
use crate::db::{content, repos};
use crate::hub::Hub;
use crate::{muse, wire};

/// What `doctor` found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub blocks_checked: u64,
    pub objects_checked: u64,
    pub commits_checked: u64,
    pub repos_checked: u64,
    pub faults: Vec<String>,
    /// `owner/slug: commit → missing parent` lines.
    pub shallow: Vec<String>,
}

/// Runs every check (blocking; call from a CLI command or `spawn_blocking`).
pub fn run(hub: &Hub, mut progress: impl FnMut(&str)) -> Result<Report, crate::db::Error> {
    let mut r = Report::default();
    let store = &hub.store();
    progress("checking blocks");
    let mut faults = Vec::new();
    let mut n = 0u64;
    hub.db().read_blocking(|c| {
        content::all_blocks(c, |digest, row| {
            n += 1;
            if let Err(e) = store.verify_block_blocking(&digest, row) {
                faults.push(format!("block {digest}: {e}"));
            }
            Ok(())
        })
    })?;
    r.blocks_checked = n;
    r.faults.append(&mut faults);

    progress("checking objects");
    let objects = hub.db().read_blocking(content::all_objects)?;
    for (oid, row) in &objects {
        r.objects_checked += 1;
        let res = match row.root {
            // A single-block object is its block; the block check above hashed it. Here we
            // only need it to exist.
            None => match hub.db().read_blocking(|c| content::has_block(c, oid)) {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("its block {oid} is missing")),
                Err(e) => Err(e.to_string()),
            },
            Some(_) => store
                .verify_object_blocking(oid, row)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = res {
            r.faults.push(format!("object {oid}: {e}"));
        }
    }

    progress("checking repositories");
    let all = hub.db().read_blocking(|c| repos::list(c, None))?;
    for repo in &all {
        r.repos_checked += 1;
        let name = format!("{}/{}", repo.owner, repo.slug);
        let (faults, shallow, commits) = hub.db().read_blocking(|c| check_repo(c, repo.id))?;
        r.commits_checked += commits;
        r.faults
            .extend(faults.into_iter().map(|f| format!("{name}: {f}")));
        r.shallow.extend(
            shallow
                .into_iter()
                .map(|(c, p)| format!("{name}: {c} has parent {p}, never pushed here")),
        );
    }
    r.ok = r.faults.is_empty();
    Ok(r)
}

type RepoCheck = (Vec<String>, Vec<(Id, Id)>, u64);

fn check_repo(c: &rusqlite::Connection, rid: i64) -> Result<RepoCheck, crate::db::Error> {
    let mut faults = Vec::new();
    let shallow = content::shallow(c, rid)?;
    let known_missing: HashSet<Id> = shallow.iter().map(|(_, p)| *p).collect();
    let mut seen = HashSet::new();
    let mut seen_snaps = HashSet::new();
    let mut queue: VecDeque<(Id, String)> = repos::branches(c, rid)?
        .into_iter()
        .map(|(b, h)| (h, format!("branch {b}")))
        .collect();
    while let Some((cid, from)) = queue.pop_front() {
        if !seen.insert(cid) {
            continue;
        }
        let Some(row) = content::repo_commit(c, rid, &cid)? else {
            if !known_missing.contains(&cid) {
                faults.push(format!("commit {cid} (reached from {from}) is missing"));
            }
            continue;
        };
        let computed = muse::commit_id(
            &row.parents,
            &row.snapshot_id,
            &row.message,
            &row.committed_at,
        );
        if computed != cid {
            faults.push(format!(
                "commit {cid} does not hash to its id (computed {computed})"
            ));
        }
        if seen_snaps.insert(row.snapshot_id) {
            check_snapshot(c, rid, &row.snapshot_id, &cid, &mut faults)?;
        }
        queue.extend(row.parents.iter().map(|p| (*p, format!("commit {cid}"))));
    }
    Ok((faults, shallow, seen.len() as u64))
}

fn check_snapshot(
    c: &rusqlite::Connection,
    rid: i64,
    sid: &Id,
    commit: &Id,
    faults: &mut Vec<String>,
) -> Result<(), crate::db::Error> {
    if !content::repo_has_snapshot(c, rid, sid)? {
        faults.push(format!("snapshot {sid} of commit {commit} is missing"));
        return Ok(());
    }
    let Some(raw) = content::snapshot_raw(c, sid)? else {
        faults.push(format!("snapshot {sid} has no record"));
        return Ok(());
    };
    let value = match wire::decode(&raw) {
        Ok(v) => v,
        Err(e) => {
            faults.push(format!("snapshot {sid} record is unreadable: {e}"));
            return Ok(());
        }
    };
    let Some(rmpv::Value::Map(manifest)) = wire::Fields::of(&value, "")
        .ok()
        .and_then(|f| f.get("manifest"))
    else {
        faults.push(format!("snapshot {sid} record has no manifest"));
        return Ok(());
    };
    let mut entries = Vec::new();
    for (k, v) in manifest {
        match (k.as_str(), v.as_str().and_then(|s| Id::parse(s).ok())) {
            (Some(p), Some(o)) => entries.push((p, o)),
            _ => faults.push(format!("snapshot {sid} has a malformed entry")),
        }
    }
    let computed = muse::snapshot_id(entries.iter().map(|(p, o)| (*p, o)));
    if computed != *sid {
        faults.push(format!(
            "snapshot {sid} does not hash to its id (computed {computed})"
        ));
    }
    for (path, oid) in &entries {
        if !content::repo_has_object(c, rid, oid)? || content::object(c, oid)?.is_none() {
            faults.push(format!(
                "object {oid} ({path} in snapshot {sid}) is missing"
            ));
        }
    }
    Ok(())
}
