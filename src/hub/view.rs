//! Reading one repo's content: [`RepoView`] answers questions about a repo the caller may read,
//! inside one database snapshot, and nothing else. The web UI's pages are built from it, so
//! they never hold a database connection or a repo id of their own.

use rusqlite::Connection;

use super::{Hub, Readable, Result};
use crate::cids::Id;
use crate::db;
use crate::db::content::{self, CommitRow, ObjectRow};
use crate::db::repos::{self, Release, Repo};
use crate::storage::ByteStream;
use crate::wire;

/// One readable repo inside one read transaction.
pub struct RepoView<'a> {
    c: &'a Connection,
    repo: &'a Repo,
}

impl std::fmt::Debug for RepoView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RepoView({}/{})", self.repo.owner, self.repo.slug)
    }
}

/// An object the caller may read, and where its bytes are. Made only by a [`RepoView`] (an
/// object of the repo) or by [`Hub::visible_object`]; [`Hub::object_stream`] takes one.
#[derive(Debug, Clone)]
pub struct Object {
    id: Id,
    row: ObjectRow,
}

impl Object {
    pub fn id(&self) -> Id {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.row.size
    }

    /// The UnixFS root CID bytes of a multi-chunk object.
    pub fn root(&self) -> Option<&[u8]> {
        self.row.root.as_deref()
    }
}

impl RepoView<'_> {
    pub fn repo(&self) -> &Repo {
        self.repo
    }

    /// Whether some commit's parent never reached this hub.
    pub fn is_shallow(&self) -> db::Result<bool> {
        content::is_shallow(self.c, self.repo.id)
    }

    /// Branch names and heads, by name.
    pub fn branches(&self) -> db::Result<Vec<(String, Id)>> {
        repos::branches(self.c, self.repo.id)
    }

    pub fn branch_head(&self, name: &str) -> db::Result<Option<Id>> {
        repos::branch_head(self.c, self.repo.id, name)
    }

    /// A commit of this repo.
    pub fn commit(&self, id: &Id) -> db::Result<Option<CommitRow>> {
        content::repo_commit(self.c, self.repo.id, id)
    }

    pub fn has_commit(&self, id: &Id) -> db::Result<bool> {
        content::repo_has_commit(self.c, self.repo.id, id)
    }

    /// A snapshot record of this repo.
    fn snapshot_raw(&self, snapshot: &Id) -> db::Result<Option<Vec<u8>>> {
        if !content::repo_has_snapshot(self.c, self.repo.id, snapshot)? {
            return Ok(None);
        }
        content::snapshot_raw(self.c, snapshot)
    }

    /// A snapshot of this repo as (path, object id), sorted by path; `None` when the repo has
    /// no such snapshot.
    pub fn manifest(&self, snapshot: &Id) -> Result<Option<Vec<(String, Id)>>> {
        let Some(raw) = self.snapshot_raw(snapshot)? else {
            return Ok(None);
        };
        let mut out = wire::records::snapshot_manifest(&raw)?;
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(out))
    }

    /// The object at `path` in a snapshot of this repo, without listing the rest.
    pub fn file(&self, snapshot: &Id, path: &str) -> Result<Option<Id>> {
        let Some(raw) = self.snapshot_raw(snapshot)? else {
            return Ok(None);
        };
        Ok(wire::records::snapshot_file(&raw, path)?)
    }

    /// An object of this repo whose bytes this hub holds.
    pub fn object(&self, id: &Id) -> db::Result<Option<Object>> {
        Ok(content::repo_object(self.c, self.repo.id, id)?.map(|row| Object { id: *id, row }))
    }

    /// Releases newest first; drafts only when asked (the caller decides who may see them).
    pub fn releases(&self, drafts: bool) -> db::Result<Vec<Release>> {
        repos::releases(self.c, self.repo.id, None, drafts)
    }

    pub fn release(&self, tag: &str) -> db::Result<Option<Release>> {
        repos::release(self.c, self.repo.id, tag)
    }
}

impl Hub {
    /// Runs `f` over one readable repo in one read transaction.
    pub async fn view<T, E, F>(&self, repo: &Readable<Repo>, f: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<db::Error> + Send + 'static,
        F: FnOnce(&RepoView<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        let repo: Repo = (**repo).clone();
        self.db.read(move |c| f(&RepoView { c, repo: &repo })).await
    }

    /// An object held by a public repo or by one of `owner`'s repos (the `/o/{id}` rule).
    pub async fn visible_object(&self, id: Id, owner: Option<i64>) -> Result<Option<Object>> {
        let row = self
            .db
            .read(move |c| {
                if !content::object_visible(c, &id, owner)? {
                    return Ok::<_, db::Error>(None);
                }
                content::object(c, &id)
            })
            .await?;
        Ok(row.map(|row| Object { id, row }))
    }

    /// A readable object's bytes.
    pub fn object_stream(&self, object: &Object) -> ByteStream {
        self.store.object_stream(object.id, object.row.clone())
    }

    /// Bytes `start..=end` of a readable object.
    pub fn object_range_stream(&self, object: &Object, start: u64, end: u64) -> ByteStream {
        self.store
            .object_range_stream(object.id, object.row.clone(), start, end)
    }
}
