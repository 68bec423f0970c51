//! What the hub does with the Muse wire protocol, free of HTTP: who may read or push a repo,
//! storing pushed objects, accepting a push, negotiating and planning a fetch, releases.
//!
//! [`crate::web`] turns requests into calls here and results into responses. Every rule the
//! reference MuseHub gets wrong (protocol doc §7.2) is handled here: ids and hashes are
//! verified, empty objects kept, membership is per repo, the fast-forward check walks the
//! pack and the stored history, a push is one transaction, non-owners get 403.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use crate::cids::Id;
use crate::db::content::{self, CommitRow, ObjectRow};
use crate::db::repos::{self, Repo, Visibility};
use crate::db::users::User;
use crate::db::{self, Db};
use crate::metrics::Metrics;
use crate::storage::{self, Store};
use crate::wire;
use crate::wire::answers::{
    self, Inline, Missing, Negotiated, ObjectsStored, Pushed, Refs, Releases, Retracted, TagsStored,
};
use crate::wire::objects::ObjectsReader;
use crate::wire::requests::{FilterObjects, Presign, Push, Tags, WantHave};
use crate::{auth, muse};

mod access;
mod blocks;
mod car;
pub(crate) mod dag;
pub mod identity;
mod import;
mod pages;
mod view;
pub use crate::rules::{Limits, check_slug, check_user_name};
pub use crate::storage::{BlockKey, IDENTITY, IDENTITY_MAX, block_key};
pub use access::{Readable, Writable};
pub use car::CarPlan;
pub use import::{ImportOptions, ImportReport};
pub use view::{Object, RepoView};

/// The hub: database, block store and policy. Cheap to clone.
///
/// Its parts are private: the web layer reaches repo content only through methods that take a
/// [`Readable`] or [`Writable`] repo. The accessors below are for the hub's own services (the
/// server, federation, the IPFS node, the operator's CLI); `tests/layers.rs` checks that no
/// file under `src/web/` uses them to reach the database or the block store.
#[derive(Clone, Debug)]
pub struct Hub {
    db: Db,
    store: Store,
    limits: Limits,
    default_visibility: Visibility,
    metrics: Arc<Metrics>,
    signer: libp2p::identity::Keypair,
    identity: Arc<identity::Identities>,
    federation: Arc<crate::federation::shared::Shared>,
    events: crate::events::Events,
}

/// What a [`Hub`] is made of (see [`Hub::new`]).
#[derive(Debug)]
pub struct Parts {
    pub db: Db,
    pub store: Store,
    pub limits: Limits,
    /// Visibility of a repo created by its owner's first push.
    pub default_visibility: Visibility,
    /// The hub's Ed25519 key (its IPFS node key): signs every ref-state.
    pub signer: libp2p::identity::Keypair,
    /// Users' keys, the chain cache, login challenges and the signed-request replay cache.
    pub identity: identity::Identities,
}

impl Hub {
    pub fn new(parts: Parts) -> Hub {
        Hub {
            db: parts.db,
            store: parts.store,
            limits: parts.limits,
            default_visibility: parts.default_visibility,
            metrics: Arc::new(Metrics::default()),
            signer: parts.signer,
            identity: Arc::new(parts.identity),
            federation: Arc::default(),
            events: crate::events::Events::default(),
        }
    }

    /// The database, for the hub's own services (never the web layer).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The block store, for the hub's own services (never the web layer).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Visibility of a repo created by its owner's first push.
    pub fn default_visibility(&self) -> Visibility {
        self.default_visibility
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The hub's Ed25519 key (its IPFS node key): signs every ref-state.
    pub fn node_key(&self) -> &libp2p::identity::Keypair {
        &self.signer
    }

    /// Users' keys, the chain cache, login challenges and the signed-request replay cache.
    pub fn identities(&self) -> &Arc<identity::Identities> {
        &self.identity
    }

    /// Federation work shared with the replication task (notices to send, peers due).
    pub fn federation(&self) -> &Arc<crate::federation::shared::Shared> {
        &self.federation
    }

    /// Changes to repos, as they commit (fed by the event log, see [`crate::events`]).
    pub fn events(&self) -> &crate::events::Events {
        &self.events
    }

    /// Any repo, for the hub's operator: the CLI run on the hub's own machine (`musehub car
    /// export`, `musehub repo …`), which can read the data directory anyway. Never called
    /// for a request (checked by `tests/layers.rs`).
    pub async fn repo_for_operator(&self, owner: &str, slug: &str) -> Result<Writable<Repo>> {
        let (o, s) = (owner.to_owned(), slug.to_owned());
        let repo = self.db.read(move |c| repos::get(c, &o, &s)).await?;
        repo.map(Writable::grant)
            .ok_or_else(|| not_found(owner, slug))
    }
}

/// Why a request was refused or failed, in the hub's words. [`crate::web`] maps each to an HTTP
/// status in one place (`web::status_of`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such repo, release or commit, or one the caller may not know about.
    #[error("{0}")]
    NotFound(String),
    /// The request needs a signed-in caller (a token), or its token is not valid.
    #[error("{0}")]
    NotSignedIn(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    NotPermitted(String),
    /// The change clashes with what the hub holds (a release that exists, a push that is
    /// not a fast-forward).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (a bad name, a commit that is not here).
    #[error("{0}")]
    Invalid(String),
    /// Something the answer depends on (the key registry) cannot be reached right now.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Wire(#[from] wire::Error),
    #[error("this answer would be {size} bytes, over the {cap}-byte limit of the Muse CLI: {hint}")]
    AnswerTooLarge {
        size: u64,
        cap: u64,
        hint: &'static str,
    },
    #[error("storage: {0}")]
    Storage(#[from] storage::Error),
    #[error("database: {0}")]
    Db(#[from] db::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The caller of a request: a user authenticated by bearer token, or anonymous.
pub type Caller = Option<User>;

impl From<crate::rules::NameError> for Error {
    fn from(e: crate::rules::NameError) -> Self {
        Error::Invalid(e.to_string())
    }
}

impl From<muse::Error> for Error {
    fn from(e: muse::Error) -> Self {
        Error::Invalid(e.to_string())
    }
}

fn not_found(owner: &str, slug: &str) -> Error {
    Error::NotFound(format!("repository {owner}/{slug} not found"))
}

impl Hub {
    /// Resolves a bearer token to its user. A token that is sent but not valid is an error,
    /// so a musician with a revoked or mistyped token learns it instead of seeing 404s.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller> {
        let Some(token) = bearer else { return Ok(None) };
        let hash = auth::hash_token(token);
        let user = self.db.read(move |c| db::users::by_token(c, &hash)).await?;
        match user {
            Some(u) => {
                // A token minted by `musehub login` dies with its key.
                if let Some(k) = &u.key {
                    self.require_key(&u.name, k, identity::Use::Read).await?;
                }
                Ok(Some(u))
            }
            None => Err(Error::NotSignedIn(
                "invalid, expired or revoked token".into(),
            )),
        }
    }

    /// A repo the caller may read. Private repos are invisible (404) to everyone but the owner.
    pub async fn repo_for_read(
        &self,
        owner: &str,
        slug: &str,
        caller: &Caller,
    ) -> Result<Readable<Repo>> {
        let (o, s) = (owner.to_owned(), slug.to_owned());
        let repo = self.db.read(move |c| repos::get(c, &o, &s)).await?;
        match repo {
            Some(r) if r.visibility == Visibility::Public || is_owner(caller, &r) => {
                Ok(Readable::grant(r))
            }
            _ => Err(not_found(owner, slug)),
        }
    }

    /// A repo the caller may write, created when this is its owner's first push.
    pub async fn repo_for_write(
        &self,
        owner: &str,
        slug: &str,
        caller: &Caller,
        create: bool,
    ) -> Result<Writable<Repo>> {
        let Some(user) = caller else {
            return Err(Error::NotSignedIn(
                "pushing needs a token: run `musehub token create --user <you>` on the hub and `muse auth login`".into(),
            ));
        };
        if let Some(k) = &user.key {
            // Writes need the chain's fresh word on the key (fail closed).
            self.require_key(&user.name, k, identity::Use::Write)
                .await?;
        }
        let (o, s) = (owner.to_owned(), slug.to_owned());
        let existing = self.db.read(move |c| repos::get(c, &o, &s)).await?;
        if let Some(r) = &existing
            && let Some(origin) = &r.origin
            && (r.visibility == Visibility::Public || r.owner_id == user.id)
        {
            return Err(Error::NotPermitted(format!(
                "{owner}/{slug} is a read-only replica here; push to its origin: {origin}/{owner}/{slug}"
            )));
        }
        match existing {
            Some(r) if r.owner_id == user.id => Ok(Writable::grant(r)),
            Some(r) if r.visibility == Visibility::Private => Err(not_found(owner, slug)),
            Some(_) => Err(Error::NotPermitted(format!(
                "only {owner} can push to {owner}/{slug}"
            ))),
            None if user.name == owner && create => {
                check_slug(slug)?;
                let (o, s, uid, vis) = (
                    owner.to_owned(),
                    slug.to_owned(),
                    user.id,
                    self.default_visibility,
                );
                let repo = self
                    .db
                    .write(move |tx| {
                        if repos::get(tx, &o, &s)?.is_none() {
                            repos::create(tx, uid, &s, vis, &new_uuid())?;
                            tracing::info!(target: "musehub::hub", repo = %format!("{o}/{s}"), "created repository on first push");
                        }
                        repos::get(tx, &o, &s)
                    })
                    .await?;
                repo.map(Writable::grant)
                    .ok_or_else(|| not_found(owner, slug))
            }
            None if user.name == owner => Err(not_found(owner, slug)),
            None => Err(Error::NotPermitted(format!(
                "only {owner} can create repositories under {owner}/"
            ))),
        }
    }

    /// The repo a `filter-objects` asks about, which the caller reads or writes. `None` when
    /// it is the caller's own repo that their first push is about to create: everything is
    /// missing then.
    pub async fn repo_for_filter(
        &self,
        owner: &str,
        slug: &str,
        caller: &Caller,
    ) -> Result<Option<Readable<Repo>>> {
        match self.repo_for_write(owner, slug, caller, false).await {
            Ok(r) => Ok(Some(r.readable())),
            Err(Error::NotFound(_)) if caller.as_ref().is_some_and(|u| u.name == owner) => Ok(None),
            Err(Error::NotPermitted(_)) => self.repo_for_read(owner, slug, caller).await.map(Some),
            Err(e) => Err(e),
        }
    }

    /// `GET refs`.
    pub async fn refs(&self, repo: &Readable<Repo>) -> Result<Refs> {
        let id = repo.id;
        let branch_heads = self.db.read(move |c| repos::branches(c, id)).await?;
        Ok(Refs {
            repo_id: repo.uuid.clone(),
            domain: repo.domain.clone(),
            default_branch: repo.default_branch.clone(),
            branch_heads,
        })
    }

    /// `POST filter-objects`: the ids the repo lacks, in request order.
    pub async fn filter_objects(
        &self,
        repo: Option<&Readable<Repo>>,
        req: FilterObjects,
    ) -> Result<Missing> {
        let ids = req.object_ids;
        let missing = match repo {
            None => ids,
            Some(r) => {
                let id = r.id;
                self.db
                    .read(move |c| content::missing_objects(c, id, &ids))
                    .await?
            }
        };
        Ok(Missing(missing))
    }

    /// `POST presign`: this hub has no external object store, so every object goes inline
    /// through push/objects (what the CLI expects when nothing is presigned).
    pub fn presign(&self, req: Presign) -> Inline {
        Inline(req.object_ids)
    }

    /// `POST push/objects`, decoding the body as it arrives. Returns (stored, skipped).
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
                w.write(&chunk).await?;
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
        let snaps: Vec<(Id, Vec<u8>)> = pack
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
        objects: &[(Id, Vec<u8>)],
    ) -> Result<()> {
        let mut ingest = self.store.ingest(repo.id);
        for (id, bytes) in objects {
            ingest.add_object(*id, bytes).await?;
        }
        ingest.commit().await?;
        Ok(())
    }

    /// `POST negotiate` (protocol doc §3, the recommended form that reaches `ready`).
    pub async fn negotiate(&self, repo: &Readable<Repo>, req: WantHave) -> Result<Negotiated> {
        let WantHave { want, have } = req;
        let repo_id = repo.id;
        let have_empty = have.is_empty();
        let (ack, base) = self
            .db
            .read(move |c| {
                let mut ack = Vec::new();
                for h in &have {
                    if content::repo_has_commit(c, repo_id, h)? {
                        ack.push(*h);
                    }
                }
                let acked: HashSet<Id> = ack.iter().copied().collect();
                let mut base = None;
                if !acked.is_empty() {
                    'wants: for w in &want {
                        let mut seen = HashSet::new();
                        let mut queue = VecDeque::from([*w]);
                        while let Some(c_id) = queue.pop_front() {
                            if !seen.insert(c_id) {
                                continue;
                            }
                            if acked.contains(&c_id) {
                                base = Some(c_id);
                                break 'wants;
                            }
                            if let Some(row) = content::repo_commit(c, repo_id, &c_id)? {
                                queue.extend(row.parents);
                            }
                        }
                    }
                }
                Ok::<_, Error>((ack, base))
            })
            .await?;
        Ok(Negotiated {
            ready: base.is_some() || have_empty,
            ack,
            common_base: base,
        })
    }

    /// `POST fetch`: works out the answer and its exact size without reading object bytes.
    pub async fn plan_fetch(&self, repo: &Readable<Repo>, req: WantHave) -> Result<FetchPlan> {
        let WantHave { want, have } = req;
        let repo_id = repo.id;
        let cap = self.limits.max_fetch_answer;
        self.db
            .read(move |c| plan_fetch(c, repo_id, &want, &have, cap))
            .await
    }

    /// Streams a planned fetch answer. Its length is exactly `plan.len`.
    pub fn fetch_stream(&self, plan: FetchPlan) -> storage::ByteStream {
        use futures_util::StreamExt;
        let head = Bytes::from(plan.head);
        let store = self.store.clone();
        let tail = Bytes::from(plan.tail);
        let objects = futures_util::stream::iter(plan.objects).flat_map(move |(id, row)| {
            let prefix = answers::fetch_object_prefix(&id, row.size);
            futures_util::stream::once(async move { Ok(Bytes::from(prefix)) })
                .chain(store.object_stream(id, row))
        });
        Box::pin(
            futures_util::stream::once(async move { Ok(head) })
                .chain(objects)
                .chain(futures_util::stream::once(async move { Ok(tail) })),
        )
    }

    /// `POST releases` (JSON body). Owner only. Returns the server-assigned release id.
    pub async fn create_release(&self, repo: &Writable<Repo>, body: &[u8]) -> Result<String> {
        let mut rec: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| wire::Error::Json(e.to_string()))?;
        let obj = rec
            .as_object_mut()
            .ok_or_else(|| Error::Invalid("release must be a JSON object".into()))?;
        let tag = obj
            .get("tag")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        if tag.is_empty() || tag.len() > 100 || tag.contains(['/', '\0', '\n']) {
            return Err(Error::Invalid(format!("release tag {tag:?} is not valid")));
        }
        let pre = obj
            .get("semver")
            .and_then(|s| s.get("pre"))
            .and_then(|p| p.as_str())
            .unwrap_or("");
        let channel = match obj
            .get("channel")
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
        {
            Some(c) => c.to_owned(),
            None => infer_channel(pre).to_owned(),
        };
        if !matches!(channel.as_str(), "stable" | "beta" | "alpha" | "nightly") {
            return Err(Error::Invalid(format!(
                "channel must be stable, beta, alpha or nightly, got {channel:?}"
            )));
        }
        let commit = obj
            .get("commit_id")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_owned();
        let commit_id =
            Id::parse(&commit).map_err(|e| Error::Invalid(format!("commit_id: {e}")))?;
        let is_draft = obj
            .get("is_draft")
            .and_then(|d| d.as_bool())
            .unwrap_or(false);
        let uuid = new_uuid();
        obj.insert("release_id".into(), uuid.clone().into());
        obj.insert("repo_id".into(), repo.uuid.clone().into());
        obj.insert("channel".into(), channel.clone().into());
        if obj
            .get("created_at")
            .and_then(|c| c.as_str())
            .is_none_or(str::is_empty)
        {
            obj.insert("created_at".into(), db::now().into());
        }
        let release = repos::Release {
            uuid: uuid.clone(),
            tag: tag.clone(),
            channel,
            is_draft,
            record: rec.to_string(),
        };
        let repo_id = repo.id;
        self.db
            .write(move |tx| {
                if !content::repo_has_commit(tx, repo_id, &commit_id)? {
                    return Err(Error::Invalid(format!(
                        "commit {commit_id} is not on this hub: push it before its release"
                    )));
                }
                if !repos::add_release(tx, repo_id, &release, &commit)? {
                    return Err(Error::Conflict(format!("release {tag} already exists")));
                }
                Ok(())
            })
            .await?;
        Ok(uuid)
    }

    /// `GET releases`, newest first.
    pub async fn releases(
        &self,
        repo: &Readable<Repo>,
        channel: Option<String>,
        drafts: bool,
    ) -> Result<Releases> {
        let repo_id = repo.id;
        let channel =
            channel.filter(|c| matches!(c.as_str(), "stable" | "beta" | "alpha" | "nightly"));
        let list = self
            .db
            .read(move |c| repos::releases(c, repo_id, channel.as_deref(), drafts))
            .await?;
        let items = list
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.record))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("stored release record: {e}")))?;
        Ok(Releases(items))
    }

    /// `DELETE releases/{tag}`: removes the label only; commits and objects stay.
    pub async fn delete_release(&self, repo: &Writable<Repo>, tag: &str) -> Result<Retracted> {
        let (repo_id, t) = (repo.id, tag.to_owned());
        if !self
            .db
            .write(move |tx| repos::delete_release(tx, repo_id, &t))
            .await?
        {
            return Err(Error::NotFound(format!("release {tag} not found")));
        }
        Ok(Retracted(tag.to_owned()))
    }

    /// `POST tags`: upserts wire tags by label.
    pub async fn tags(&self, repo: &Writable<Repo>, req: Tags) -> Result<TagsStored> {
        let parsed: Vec<_> = req
            .tags
            .into_iter()
            .map(|t| {
                (
                    t.label,
                    t.tag_id.unwrap_or_else(new_uuid),
                    t.commit_id.to_hex(),
                    t.created_at.unwrap_or_else(db::now),
                )
            })
            .collect();
        let (repo_id, n) = (repo.id, parsed.len());
        self.db
            .write(move |tx| {
                for (label, tag_id, commit, created) in &parsed {
                    repos::upsert_tag(tx, repo_id, label, tag_id, commit, created)?;
                }
                Ok::<_, Error>(())
            })
            .await?;
        Ok(TagsStored(n as u64))
    }
}

/// Whether the caller owns the repo.
pub fn is_owner(caller: &Caller, repo: &Repo) -> bool {
    caller.as_ref().is_some_and(|u| u.id == repo.owner_id)
}

/// A random UUID v4 string (the repo and release ids the CLI stores).
pub fn new_uuid() -> String {
    let mut b = auth::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn infer_channel(pre: &str) -> &'static str {
    if pre.starts_with("alpha") {
        "alpha"
    } else if pre.starts_with("beta") {
        "beta"
    } else if pre.starts_with("nightly") {
        "nightly"
    } else {
        "stable"
    }
}

/// A push body whose ids are checked against the Muse rules.
#[derive(Debug)]
struct Pack {
    branch: String,
    force: bool,
    tip: Option<Id>,
    /// Commits with their verbatim msgpack record.
    commits: Vec<(CommitRow, Vec<u8>)>,
    /// The branch each commit's record names, if any (same order as `commits`).
    commit_branches: Vec<Option<String>>,
    /// Snapshots: id, manifest object ids, verbatim record.
    snapshots: Vec<(Id, Vec<Id>, Vec<u8>)>,
    objects: Vec<(Id, Vec<u8>)>,
}

impl Pack {
    /// Checks the branch name, every manifest path, and that every snapshot and commit id is
    /// the hash of its record.
    fn verify(push: Push) -> Result<Pack> {
        muse::check_branch(&push.branch)?;
        let mut snapshots = Vec::with_capacity(push.snapshots.len());
        for s in push.snapshots {
            for (path, _) in &s.manifest {
                muse::check_path(path)?;
            }
            let computed = muse::snapshot_id(s.manifest.iter().map(|(p, o)| (p.as_str(), o)));
            if computed != s.snapshot_id {
                return Err(muse::Error::SnapshotId {
                    claimed: s.snapshot_id,
                    computed,
                }
                .into());
            }
            let oids = s.manifest.into_iter().map(|(_, o)| o).collect();
            snapshots.push((s.snapshot_id, oids, s.raw));
        }
        let mut commits = Vec::with_capacity(push.commits.len());
        let mut commit_branches = Vec::with_capacity(push.commits.len());
        for c in push.commits {
            let computed = muse::commit_id(&c.parents, &c.snapshot_id, &c.message, &c.committed_at);
            if computed != c.commit_id {
                return Err(muse::Error::CommitId {
                    claimed: c.commit_id,
                    computed,
                }
                .into());
            }
            let row = CommitRow {
                commit_id: c.commit_id,
                snapshot_id: c.snapshot_id,
                parents: c.parents,
                message: c.message,
                committed_at: c.committed_at,
                author: c.author,
            };
            commits.push((row, c.raw));
            commit_branches.push(c.branch);
        }
        Ok(Pack {
            branch: push.branch,
            force: push.force,
            tip: push.tip,
            commits,
            commit_branches,
            snapshots,
            objects: push.objects,
        })
    }

    /// The pushed tip: the named head, else the pack's one leaf (preferring the target branch).
    fn tip(&self) -> Result<Id> {
        if let Some(t) = self.tip {
            return Ok(t);
        }
        let named: HashSet<Id> = self
            .commits
            .iter()
            .flat_map(|(c, _)| c.parents.iter().copied())
            .collect();
        let leaves: Vec<usize> = (0..self.commits.len())
            .filter(|&i| !named.contains(&self.commits[i].0.commit_id))
            .collect();
        match leaves.as_slice() {
            [] => Err(Error::Invalid("push carries no commits".into())),
            [one] => Ok(self.commits[*one].0.commit_id),
            many => {
                let on_branch: Vec<usize> = many
                    .iter()
                    .copied()
                    .filter(|&i| self.commit_branches[i].as_deref() == Some(self.branch.as_str()))
                    .collect();
                match on_branch.as_slice() {
                    [one] => Ok(self.commits[*one].0.commit_id),
                    _ => Err(Error::Invalid(format!(
                        "push has {} tip commits; cannot tell which is '{}'",
                        many.len(),
                        self.branch
                    ))),
                }
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
    let tip = pack.tip()?;
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
pub(crate) fn topo_order(commits: &[(CommitRow, Vec<u8>)]) -> Vec<&(CommitRow, Vec<u8>)> {
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

/// A fetch answer worked out ahead of sending: everything but the object bytes, and the exact
/// encoded length (the CLI reads `Content-Length` to enforce its cap).
#[derive(Debug)]
pub struct FetchPlan {
    /// Map header, commits, snapshots and the objects array header.
    head: Vec<u8>,
    objects: Vec<(Id, ObjectRow)>,
    /// The `branch_heads` entry.
    tail: Vec<u8>,
    pub len: u64,
    pub commits: usize,
}

fn plan_fetch(
    c: &rusqlite::Connection,
    rid: i64,
    want: &[Id],
    have: &[Id],
    cap: u64,
) -> Result<FetchPlan> {
    let mut have_set = HashSet::new();
    for h in have {
        if content::repo_has_commit(c, rid, h)? {
            have_set.insert(*h);
        }
    }
    // Walk from the wants to everything the client lacks; remember the boundary haves.
    let mut commits = Vec::new();
    let mut boundary = HashSet::new();
    let mut seen = HashSet::new();
    let mut queue: VecDeque<Id> = want.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        if have_set.contains(&id) {
            boundary.insert(id);
            continue;
        }
        if !seen.insert(id) {
            continue;
        }
        let Some(row) = content::repo_commit(c, rid, &id)? else {
            continue;
        };
        queue.extend(row.parents.iter().copied());
        commits.push(row);
    }
    // Objects the client holds through the snapshots of its boundary commits are not resent.
    let mut held = HashSet::new();
    for b in &boundary {
        if let Some(row) = content::repo_commit(c, rid, b)? {
            held.extend(manifest_ids(c, &row.snapshot_id)?);
        }
    }
    let mut snapshot_ids = Vec::new();
    let mut snap_seen = HashSet::new();
    for row in &commits {
        if snap_seen.insert(row.snapshot_id) {
            snapshot_ids.push(row.snapshot_id);
        }
    }
    let mut snapshots_raw = Vec::new();
    let mut object_ids = Vec::new();
    let mut obj_seen = HashSet::new();
    for sid in &snapshot_ids {
        let Some(raw) = content::snapshot_raw(c, sid)? else {
            continue;
        };
        for oid in manifest_ids_of_raw(&raw)? {
            if !held.contains(&oid) && obj_seen.insert(oid) {
                object_ids.push(oid);
            }
        }
        snapshots_raw.push(raw);
    }
    let mut objects = Vec::with_capacity(object_ids.len());
    for oid in object_ids {
        match content::object(c, &oid)? {
            Some(row) if content::repo_has_object(c, rid, &oid)? => objects.push((oid, row)),
            _ => {
                tracing::error!(target: "musehub::hub", object = %oid, "snapshot names an object this repo lacks; run `musehub doctor`")
            }
        }
    }

    let mut commits_raw = Vec::with_capacity(commits.len());
    for row in &commits {
        commits_raw.push(content::commit_raw(c, &row.commit_id)?.unwrap_or_default());
    }
    let head = answers::fetch_head(&commits_raw, &snapshots_raw, objects.len());
    let tail = answers::fetch_tail(&repos::branches(c, rid)?);
    let objects_len: u64 = objects
        .iter()
        .map(|(_, r)| answers::fetch_object_len(r.size))
        .sum();
    let len = head.len() as u64 + objects_len + tail.len() as u64;
    if len > cap {
        return Err(Error::AnswerTooLarge {
            size: len,
            cap,
            hint: "clone or pull it with `musehub clone <hub url>/<owner>/<repo> <dir>` (or `musehub pull` in an existing clone), which has no size limit",
        });
    }
    Ok(FetchPlan {
        head,
        objects,
        tail,
        len,
        commits: commits.len(),
    })
}

fn manifest_ids(c: &rusqlite::Connection, sid: &Id) -> Result<Vec<Id>> {
    match content::snapshot_raw(c, sid)? {
        Some(raw) => manifest_ids_of_raw(&raw),
        None => Ok(Vec::new()),
    }
}

/// The object ids of a stored snapshot record.
pub fn manifest_ids_of_raw(raw: &[u8]) -> Result<Vec<Id>> {
    Ok(wire::records::snapshot_object_ids(raw)?)
}
