//! `push/objects` and `push`: objects through an ingest session, then the pack checked and
//! the branch moved in one transaction (fast-forward over the pack and the stored history).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use futures_util::Stream;

use crate::cids::Id;
use crate::db::content::{self, CommitRow};
use crate::db::repos::{self, Repo};
use crate::muse;
use crate::wire::answers::{ObjectsStored, Pushed};
use crate::wire::objects::ObjectsReader;
use crate::wire::requests::{Push, PushedCommit};

use super::{Error, Hub, Result, Writable, dag};

impl Hub {
    /// `POST push/objects`, decoding the body as it arrives: objects new to the repo, and
    /// objects it already had.
    pub async fn push_objects<S, E>(&self, repo: &Writable<Repo>, body: S) -> Result<ObjectsStored>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut reader = ObjectsReader::start(body, self.limits.max_body).await?;
        let mut ingest = self.store.ingest(repo.id);
        while let Some((id, len)) = reader.next_object().await? {
            let mut w = self.store.writer(id, len).await?;
            while let Some(chunk) = reader.content_chunk().await? {
                w.write_bytes(chunk).await?;
            }
            ingest.add(w.finish().await?).await?;
        }
        let done = ingest.commit().await?;
        Ok(ObjectsStored {
            stored: done.stored,
            skipped: done.skipped(),
        })
    }

    /// `POST push`: verifies the pack and moves the branch, all in one transaction.
    pub async fn push(&self, repo: &Writable<Repo>, req: Push) -> Result<Pushed> {
        let pack = Pack::verify(req)?;
        if !pack.objects.is_empty() {
            self.store_bundle_objects(repo, &pack.objects).await?;
        }
        // Snapshot nodes can be large: they become durable files before the transaction,
        // which then records small rows only.
        let snaps: Vec<(Id, Bytes)> = pack
            .snapshots
            .iter()
            .map(|(s, _, raw)| (*s, raw.clone()))
            .collect();
        let staged = self.stage_snapshot_nodes(snaps).await?;
        let repo: Repo = (**repo).clone();
        let key = self.signer.clone();
        let outcome = self
            .db
            .write(move |tx| apply_push(tx, &repo, pack, &key, &staged))
            .await?;
        Ok(outcome)
    }

    async fn store_bundle_objects(
        &self,
        repo: &Writable<Repo>,
        objects: &[(Id, Bytes)],
    ) -> Result<()> {
        let mut ingest = self.store.ingest(repo.id);
        for (id, bytes) in objects {
            ingest.add_object(*id, bytes).await?;
        }
        ingest.commit().await?;
        Ok(())
    }
}

/// A push body whose ids are checked against the Muse rules, with its tip worked out.
#[derive(Debug)]
struct Pack {
    branch: String,
    force: bool,
    tip: Id,
    /// Commits with their verbatim msgpack record.
    commits: Vec<(CommitRow, Bytes)>,
    /// Snapshots: id, manifest object ids, verbatim record.
    snapshots: Vec<(Id, Vec<Id>, Bytes)>,
    objects: Vec<(Id, Bytes)>,
}

impl Pack {
    /// Checks the branch name, every manifest path, and that every snapshot and commit id is
    /// the hash of its record; works out the tip.
    fn verify(push: Push) -> Result<Pack> {
        muse::check_branch(&push.branch)?;
        let mut snapshots = Vec::with_capacity(push.snapshots.len());
        for s in push.snapshots {
            // Read once: each entry's id is hex to parse.
            let entries: Vec<(&str, Id)> = s.manifest().collect();
            for (path, _) in &entries {
                muse::check_path(path)?;
            }
            let computed = muse::snapshot_id(entries.iter().map(|(p, o)| (*p, o)));
            if computed != s.snapshot_id {
                return Err(muse::Error::SnapshotId {
                    claimed: s.snapshot_id,
                    computed,
                }
                .into());
            }
            let oids = entries.into_iter().map(|(_, o)| o).collect();
            snapshots.push((s.snapshot_id, oids, s.raw().clone()));
        }
        for c in &push.commits {
            let r = &c.row;
            let computed = muse::commit_id(&r.parents, &r.snapshot_id, &r.message, &r.committed_at);
            if computed != r.commit_id {
                return Err(muse::Error::CommitId {
                    claimed: r.commit_id,
                    computed,
                }
                .into());
            }
        }
        let tip = match push.tip {
            Some(t) => t,
            None => leaf_tip(&push.commits, &push.branch)?,
        };
        Ok(Pack {
            tip,
            commits: push.commits.into_iter().map(|c| (c.row, c.raw)).collect(),
            branch: push.branch,
            force: push.force,
            snapshots,
            objects: push.objects,
        })
    }
}

/// The tip of a push that names none: its one leaf commit, else the one leaf whose record
/// says it was made on `branch`.
fn leaf_tip(commits: &[PushedCommit], branch: &str) -> Result<Id> {
    let named: HashSet<Id> = commits
        .iter()
        .flat_map(|c| c.row.parents.iter().copied())
        .collect();
    let leaves: Vec<&PushedCommit> = commits
        .iter()
        .filter(|c| !named.contains(&c.row.commit_id))
        .collect();
    match leaves.as_slice() {
        [] => Err(Error::Invalid("push carries no commits".into())),
        [one] => Ok(one.row.commit_id),
        many => {
            let on_branch: Vec<&&PushedCommit> = many
                .iter()
                .filter(|c| c.branch.as_deref() == Some(branch))
                .collect();
            match on_branch.as_slice() {
                [one] => Ok(one.row.commit_id),
                _ => Err(Error::Invalid(format!(
                    "push has {} tip commits; cannot tell which is '{branch}'",
                    many.len()
                ))),
            }
        }
    }
}

fn apply_push(
    tx: &rusqlite::Transaction<'_>,
    repo: &Repo,
    pack: Pack,
    key: &libp2p::identity::Keypair,
    staged: &HashMap<Id, dag::StagedSnapshot>,
) -> Result<Pushed> {
    let rid = repo.id;
    let tip = pack.tip;
    let pack_commits: HashMap<Id, &CommitRow> =
        pack.commits.iter().map(|(c, _)| (c.commit_id, c)).collect();
    let pack_snaps: HashSet<Id> = pack.snapshots.iter().map(|(s, _, _)| *s).collect();

    if !pack_commits.contains_key(&tip) && !content::repo_has_commit(tx, rid, &tip)? {
        return Err(Error::Invalid(format!(
            "tip {tip} of '{}' is neither in the push nor on the hub",
            pack.branch
        )));
    }
    for (sid, oids, _) in &pack.snapshots {
        // The CLI resends snapshots the hub already holds; their objects were checked then.
        if content::repo_has_snapshot(tx, rid, sid)? {
            continue;
        }
        for oid in oids {
            if !content::repo_has_object(tx, rid, oid)? {
                return Err(Error::Invalid(format!(
                    "snapshot {sid} names object {oid}, which was not uploaded"
                )));
            }
        }
    }
    let mut shallow = Vec::new();
    for (c, _) in &pack.commits {
        if !pack_snaps.contains(&c.snapshot_id)
            && !content::repo_has_snapshot(tx, rid, &c.snapshot_id)?
        {
            return Err(Error::Invalid(format!(
                "commit {} names snapshot {}, which is not in the push",
                c.commit_id, c.snapshot_id
            )));
        }
        for p in &c.parents {
            if !pack_commits.contains_key(p) && !content::repo_has_commit(tx, rid, p)? {
                shallow.push((c.commit_id, *p));
            }
        }
    }

    let old = repos::branch_head(tx, rid, &pack.branch)?;
    if let Some(old) = old
        && old != tip
        && !pack.force
        && !reaches(tx, rid, &pack_commits, tip, old)?
    {
        return Err(Error::Conflict(format!(
            "non-fast-forward push to '{}': the hub's '{}' is at {}, which your commits do not contain; pull first, or push with --force to overwrite",
            pack.branch,
            pack.branch,
            &old.to_hex()[..12]
        )));
    }

    let had_branches = !repos::branches(tx, rid)?.is_empty();
    for (sid, oids, raw) in &pack.snapshots {
        content::put_snapshot(tx, sid, oids.len(), raw)?;
        content::add_repo_snapshot(tx, rid, sid)?;
    }
    let mut new_commits = 0usize;
    for (c, raw) in topo_order(&pack.commits) {
        if !content::repo_has_commit(tx, rid, &c.commit_id)? {
            new_commits += 1;
        }
        content::put_commit(tx, c, raw)?;
        content::add_repo_commit(tx, rid, &c.commit_id)?;
    }
    for (c, missing) in &shallow {
        tracing::warn!(target: "musehub::hub", repo = %format!("{}/{}", repo.owner, repo.slug), commit = %c, parent = %missing, "accepted commit whose parent this hub has never seen (shallow history)");
        content::add_shallow(tx, rid, c, missing)?;
    }
    // The history DAG: a node for every new commit and snapshot (and a refused push if a
    // record cannot become one), then the signed branch move.
    for (sid, _, _) in &pack.snapshots {
        match staged.get(sid) {
            Some(s) => dag::record_snapshot_node(tx, sid, s)?,
            None => {
                dag::snapshot_node(tx, sid)?;
            }
        }
    }
    for (c, _) in &pack.commits {
        dag::commit_node(tx, &c.commit_id)?;
    }
    if old != Some(tip) {
        dag::append_ref_state(tx, repo, &pack.branch, &tip, key)?;
    }
    repos::set_branch(tx, rid, &pack.branch, &tip)?;
    repos::touch_pushed(tx, rid)?;
    if !had_branches {
        repos::set_default_branch(tx, rid, &pack.branch)?;
    }
    Ok(Pushed {
        message: format!("pushed {new_commits} commit(s) to '{}'", pack.branch),
        branch_heads: repos::branches(tx, rid)?,
        remote_head: tip,
    })
}

/// Whether `target` is `from` or one of its ancestors, over the pack and the repo's history.
fn reaches(
    conn: &rusqlite::Connection,
    rid: i64,
    pack: &HashMap<Id, &CommitRow>,
    from: Id,
    target: Id,
) -> Result<bool> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([from]);
    while let Some(c) = queue.pop_front() {
        if c == target {
            return Ok(true);
        }
        if !seen.insert(c) {
            continue;
        }
        if let Some(row) = pack.get(&c) {
            queue.extend(row.parents.iter().copied());
        } else if let Some(row) = content::repo_commit(conn, rid, &c)? {
            queue.extend(row.parents);
        }
    }
    Ok(false)
}

/// Pack commits with parents before children (Kahn's algorithm; ties keep pack order).
pub(crate) fn topo_order<R>(commits: &[(CommitRow, R)]) -> Vec<&(CommitRow, R)> {
    let index: HashMap<Id, usize> = commits
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (c.commit_id, i))
        .collect();
    let mut indegree = vec![0usize; commits.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); commits.len()];
    for (i, (c, _)) in commits.iter().enumerate() {
        for p in &c.parents {
            if let Some(&pi) = index.get(p) {
                indegree[i] += 1;
                children[pi].push(i);
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..commits.len()).filter(|&i| indegree[i] == 0).collect();
    let mut out = Vec::with_capacity(commits.len());
    let mut done = vec![false; commits.len()];
    while let Some(i) = ready.pop_front() {
        if done[i] {
            continue;
        }
        done[i] = true;
        out.push(&commits[i]);
        for &ch in &children[i] {
            indegree[ch] -= 1;
            if indegree[ch] == 0 {
                ready.push_back(ch);
            }
        }
    }
    // A cycle cannot hash consistently, but never drop records: append whatever is left.
    out.extend(
        commits
            .iter()
            .enumerate()
            .filter(|(i, _)| !done[*i])
            .map(|(_, c)| c),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::requests::PushedSnapshot;

    const AT: &str = "2026-01-01T00:00:00+00:00";

    fn snapshot(files: &[(&str, u8)]) -> PushedSnapshot {
        let manifest: Vec<(String, Id)> = files
            .iter()
            .map(|(p, b)| ((*p).to_owned(), Id([*b; 32])))
            .collect();
        let snapshot_id = muse::snapshot_id(manifest.iter().map(|(p, o)| (p.as_str(), o)));
        PushedSnapshot::new(snapshot_id, &manifest)
    }

    fn commit(parents: &[Id], snap: Id, message: &str, branch: Option<&str>) -> PushedCommit {
        PushedCommit {
            row: CommitRow {
                commit_id: muse::commit_id(parents, &snap, message, AT),
                snapshot_id: snap,
                parents: parents.to_vec(),
                message: message.to_owned(),
                committed_at: AT.to_owned(),
                author: String::new(),
            },
            branch: branch.map(str::to_owned),
            raw: Bytes::new(),
        }
    }

    fn push(commits: Vec<PushedCommit>, snapshots: Vec<PushedSnapshot>) -> Push {
        Push {
            branch: "main".into(),
            force: false,
            tip: None,
            commits,
            snapshots,
            objects: Vec::new(),
        }
    }

    fn refused(p: Push) -> String {
        match Pack::verify(p) {
            Err(Error::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn verify_checks_ids_paths_and_the_branch_name() {
        let s = snapshot(&[("a.mid", 3)]);
        let c = commit(&[], s.snapshot_id, "verse", None);
        let pack = Pack::verify(push(vec![c.clone()], vec![s.clone()])).unwrap();
        assert_eq!(pack.commits[0].0.commit_id, c.row.commit_id);
        assert_eq!(pack.snapshots[0].1, [Id([3; 32])]);

        let mut edited = c.clone();
        edited.row.message = "chorus".into();
        assert!(refused(push(vec![edited], vec![s.clone()])).contains("does not match its fields"));

        let moved = PushedSnapshot::new(s.snapshot_id, &[("a.mid".into(), Id([4; 32]))]);
        assert!(
            refused(push(vec![c.clone()], vec![moved])).contains("does not match its manifest")
        );

        let bad_path = snapshot(&[("../outside.mid", 3)]);
        assert!(refused(push(vec![], vec![bad_path])).contains("invalid path"));

        let mut bad_branch = push(vec![c], vec![s]);
        bad_branch.branch = "no..dots".into();
        assert!(refused(bad_branch).contains("invalid branch name"));
    }

    #[test]
    fn the_tip_is_the_named_head_else_the_one_leaf_else_the_leaf_on_the_branch() {
        let s = snapshot(&[("a.mid", 3)]);
        let root = commit(&[], s.snapshot_id, "intro", None);
        let verse = commit(&[root.row.commit_id], s.snapshot_id, "verse", Some("main"));
        let bridge = commit(&[root.row.commit_id], s.snapshot_id, "bridge", Some("idea"));

        let one = Pack::verify(push(vec![root.clone(), verse.clone()], vec![])).unwrap();
        assert_eq!(one.tip, verse.row.commit_id);

        let two = Pack::verify(push(
            vec![root.clone(), verse.clone(), bridge.clone()],
            vec![],
        ))
        .unwrap();
        assert_eq!(two.tip, verse.row.commit_id, "the leaf made on main");

        let mut named = push(vec![root.clone(), verse, bridge.clone()], vec![]);
        named.tip = Some(bridge.row.commit_id);
        assert_eq!(Pack::verify(named).unwrap().tip, bridge.row.commit_id);

        let other = commit(&[root.row.commit_id], s.snapshot_id, "solo", Some("idea"));
        let unclear = push(vec![root, bridge, other], vec![]);
        assert!(refused(unclear).contains("cannot tell"));

        assert!(refused(push(vec![], vec![])).contains("no commits"));
    }

    #[test]
    fn topo_order_puts_parents_first_and_keeps_everything() {
        let s = snapshot(&[("a.mid", 3)]);
        let a = commit(&[], s.snapshot_id, "a", None);
        let b = commit(&[a.row.commit_id], s.snapshot_id, "b", None);
        let c = commit(
            &[b.row.commit_id, a.row.commit_id],
            s.snapshot_id,
            "c",
            None,
        );
        let pack = Pack::verify(push(vec![c.clone(), a.clone(), b.clone()], vec![])).unwrap();
        let order: Vec<Id> = topo_order(&pack.commits)
            .iter()
            .map(|(row, _)| row.commit_id)
            .collect();
        assert_eq!(order, [a.row.commit_id, b.row.commit_id, c.row.commit_id]);
    }
}
