//! What the hub does with the Muse wire protocol, free of HTTP: who may read or push a repo,
//! storing pushed objects, accepting a push, negotiating and planning a fetch, releases.
//!
//! [`crate::web`] turns requests into calls here and results into responses. Every rule the
//! reference MuseHub gets wrong (protocol doc §7.2) is handled here: ids and hashes are
//! verified, empty objects kept, membership is per repo, the fast-forward check walks the
//! pack and the stored history, a push is one transaction, non-owners get 403.

use std::sync::Arc;

use crate::db::content;
use crate::db::repos::{self, Repo, Visibility};
use crate::db::users::User;
use crate::db::{self, Db};
use crate::metrics::Metrics;
use crate::storage::{self, Store};
use crate::wire;
use crate::wire::answers::{Inline, Missing, Refs};
use crate::wire::requests::{FilterObjects, Presign};
use crate::{auth, muse};

mod access;
mod blocks;
mod car;
pub(crate) mod dag;
mod fetch;
pub mod identity;
mod import;
mod pages;
mod push;
mod releases;
mod stream_import;
mod view;
pub use crate::rules::{Limits, check_slug, check_user_name};
pub use crate::storage::{BlockKey, IDENTITY, IDENTITY_MAX, block_key};
pub use access::{Readable, Writable};
pub use car::CarPlan;
pub use fetch::FetchPlan;
pub use import::{ImportOptions, ImportReport};
pub(crate) use push::topo_order;
pub(crate) use stream_import::StreamError;
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
