//! Hub-to-hub replication: a hub follows repos of its peers (one repo, every repo of an
//! owner, or every public repo), pulls what changed, verifies every byte and serves the
//! result read-only; an origin sends a signed notice to its subscribers after every push.
//!
//! Pulling uses the peer's HTTP surface: `GET /api/v1/federation/repos` for the public repos
//! the peer is the origin of (heads and commit counts, like the wire protocol's `refs`), then
//! the streamed CAR download of each branch head that moved, with `have=` for what this hub
//! holds. The CAR is checked block by block and imported by [`Hub::import_car`], which also
//! requires every ref-state to be signed by the peer's own key. Only origins are replicated,
//! never replicas, so hubs following each other cannot loop.
//!
//! Notices (`POST /api/v1/federation/notify`) and subscriptions (`…/subscribe`) are RFC 9421
//! signed with the hub's Ed25519 node key; `keyid` is its peer id, which embeds the key.
//! A notice only wakes the sync of a peer this hub follows; what is fetched is checked the
//! same way as a poll. The poll (default 5 minutes) catches missed notices.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::cids::Id;
use crate::db::peers::{self, Peer, Policy, Subscriber};
use crate::db::repos::{self, Visibility};
use crate::db::{unix_now, users};
use crate::httpsig;
use crate::hub::{Hub, ImportOptions, StreamError};
use crate::metrics::{Kind, Text};

pub mod shared;
pub use crate::config::normalize_url;
pub use shared::{LanHub, Shared};

/// Where notices and subscriptions are posted.
pub const NOTIFY_PATH: &str = "/api/v1/federation/notify";
pub const SUBSCRIBE_PATH: &str = "/api/v1/federation/subscribe";
pub const REPOS_PATH: &str = "/api/v1/federation/repos";

/// A repo as an origin lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListedRepo {
    pub owner: String,
    pub slug: String,
    pub uuid: String,
    pub domain: String,
    pub default_branch: String,
    /// Branch → commit id (64 hex).
    pub heads: BTreeMap<String, String>,
    /// Commits the repo holds (a replica's lag is the difference).
    pub commits: u64,
}

/// `GET /api/v1/federation/repos`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    pub peer_id: String,
    pub url: String,
    pub owner: Option<String>,
    pub repos: Vec<ListedRepo>,
}

/// The body of a notice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    /// `owner/slug`.
    pub repo: String,
    pub heads: BTreeMap<String, String>,
}

/// The body of a subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    /// Where the subscriber takes notices.
    pub url: String,
    pub policy: String,
    #[serde(default)]
    pub scope: String,
}

/// The replication task's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This hub's address as peers reach it (where notices come).
    pub public_url: String,
    pub poll: Duration,
    /// Where CAR downloads wait for their import.
    pub tmp_dir: PathBuf,
}

/// The replication task.
#[derive(Debug, Clone)]
pub struct Federation {
    hub: Hub,
    http: reqwest::Client,
    settings: Settings,
}

/// How long one request to a peer may take before the peer counts as offline (a CAR
/// download may take longer as long as bytes keep coming).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole small request (listing, subscription, notice): a peer that stopped answering on
/// a kept-alive connection counts as offline after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client for peers: our rustls stack, bounded waits.
pub fn http_client() -> Result<reqwest::Client> {
    Ok(crate::tls::http_client_builder()?
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()?)
}

/// Signs a JSON body for `url` with the hub's node key.
fn signed(hub: &Hub, url: &str, body: &[u8]) -> Result<[(&'static str, String); 3]> {
    let now = unix_now();
    let nonce = hex::encode(crate::auth::random_bytes::<16>());
    let keyid = hub.node_key().public().to_peer_id().to_string();
    Ok(httpsig::signed_headers(
        "POST",
        url,
        body,
        &httpsig::Signing {
            created: now,
            expires: now + 60,
            nonce: &nonce,
            keyid: &keyid,
            label: "sig1",
        },
        hub.node_key(),
    )?)
}

/// The outcome of syncing one peer.
#[derive(Debug, Default)]
struct Outcome {
    lag: u64,
    errors: Vec<String>,
}

impl Federation {
    pub fn new(hub: Hub, settings: Settings) -> Result<Federation> {
        Ok(Federation {
            hub,
            http: http_client()?,
            settings,
        })
    }

    /// Runs until `stop`: notices after pushes, syncs that are due, and the poll.
    pub async fn run(self, stop: CancellationToken) {
        let _ = std::fs::remove_dir_all(&self.settings.tmp_dir);
        let shared = self.hub.federation().clone();
        // A branch that moved here, by a push or a `car import`, is news for the hubs that
        // follow the repo (send_notices leaves replicas and private repos out).
        let mut events = self.hub.events().subscribe();
        let (notify, stop2) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            while let Some(event) = events.next_until(&stop2).await {
                if let crate::events::Event::BranchMoved { repo_id, .. } = event {
                    notify.pushed(repo_id);
                }
            }
        });
        loop {
            for repo in shared.take_pushed() {
                let me = self.clone();
                tokio::spawn(async move { me.send_notices(repo).await });
            }
            let due = shared.take_due();
            let list = match self.hub.db().read(peers::list).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(target: "musehub::federation", error = %e, "reading peers failed");
                    Vec::new()
                }
            };
            let now = unix_now();
            let poll = self.settings.poll.as_secs() as i64;
            let mut todo = Vec::new();
            for p in list {
                let stale = p.last_attempt.is_none_or(|t| now - t >= poll);
                if stale || due.contains(&p.id) {
                    todo.push(p);
                }
            }
            for p in todo {
                if stop.is_cancelled() {
                    return;
                }
                self.sync_peer(&p).await;
            }
            let wake = shared.wake.notified();
            let nap = tokio::time::timeout(Duration::from_secs(1), wake);
            let _ = nap.await;
            if stop.is_cancelled() {
                return;
            }
        }
    }

    /// Syncs everything `peer` has that this hub follows, and records how it went.
    pub async fn sync_peer(&self, peer: &Peer) {
        let at = unix_now();
        let (status, synced, lag, error) = match self.try_sync_peer(peer).await {
            Ok(o) if o.errors.is_empty() => {
                let status = if o.lag == 0 { "active" } else { "lagging" };
                (status, o.lag == 0, o.lag, None)
            }
            Ok(o) => {
                let e = o.errors.join("; ");
                tracing::warn!(target: "musehub::federation", peer = %peer.url, error = %e, "replication incomplete");
                ("lagging", false, o.lag, Some(e))
            }
            Err(e) => {
                let e = format!("{e:#}");
                tracing::warn!(target: "musehub::federation", peer = %peer.url, error = %e, "peer unreachable");
                ("offline", false, peer.lag_commits, Some(e))
            }
        };
        let id = peer.id;
        let res = self
            .hub
            .db()
            .write(move |tx| {
                peers::record_attempt(tx, id, status, synced, lag, error.as_deref(), at)
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(target: "musehub::federation", error = %e, "recording a sync failed");
        }
    }

    async fn try_sync_peer(&self, peer: &Peer) -> Result<Outcome> {
        let listing: Listing = self.get_json(&format!("{}{REPOS_PATH}", peer.url)).await?;
        let me = self.hub.node_key().public().to_peer_id().to_string();
        if listing.peer_id == me {
            bail!("{} is this hub itself", peer.url);
        }
        match &peer.peer_id {
            Some(known) if *known != listing.peer_id => bail!(
                "{} now answers with hub key {}, not {known}; remove and add the peer again if that is intended",
                peer.url,
                listing.peer_id
            ),
            Some(_) => {}
            None => {
                let (id, pid) = (peer.id, listing.peer_id.clone());
                self.hub
                    .db()
                    .write(move |tx| peers::set_peer_id(tx, id, &pid))
                    .await?;
            }
        }
        let signer: libp2p::PeerId = listing
            .peer_id
            .parse()
            .map_err(|_| anyhow!("{} sent a peer id that does not parse", peer.url))?;
        let shared = &self.hub.federation();
        let subscribed = shared
            .subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&peer.id);
        if !subscribed {
            match self.subscribe(peer).await {
                Ok(()) => {
                    shared
                        .subscribed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(peer.id);
                }
                Err(e) => {
                    tracing::info!(target: "musehub::federation", peer = %peer.url, error = %format!("{e:#}"), "could not subscribe to notices; polling only");
                }
            }
        }
        let mut out = Outcome::default();
        for repo in &listing.repos {
            if !peer.policy.covers(&repo.owner, &repo.slug) {
                continue;
            }
            match self.sync_repo(peer, &signer, repo).await {
                Ok(lag) => out.lag += lag,
                Err(e) => {
                    out.lag += repo.commits.max(1);
                    out.errors
                        .push(format!("{}/{}: {e:#}", repo.owner, repo.slug));
                }
            }
        }
        Ok(out)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T> {
        let res = self
            .http
            .get(url)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = res.status();
        let bytes = res.bytes().await.with_context(|| format!("GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("GET {url}: not a musehub answer"))
    }

    /// Asks `peer` to send this hub notices for what it follows there.
    async fn subscribe(&self, peer: &Peer) -> Result<()> {
        let url = format!("{}{SUBSCRIBE_PATH}", peer.url);
        let body = serde_json::to_vec(&Subscription {
            url: self.settings.public_url.clone(),
            policy: peer.policy.kind().into(),
            scope: peer.policy.scope().into(),
        })?;
        let mut req = self
            .http
            .post(&url)
            .timeout(CALL_TIMEOUT)
            .header("content-type", "application/json");
        for (k, v) in signed(&self.hub, &url, &body)? {
            req = req.header(k, v);
        }
        let res = req.body(body).send().await?;
        if !res.status().is_success() {
            let s = res.status();
            bail!("{s}: {}", res.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// Brings one replica up to the origin's heads; returns the commits still missing.
    async fn sync_repo(&self, peer: &Peer, signer: &libp2p::PeerId, r: &ListedRepo) -> Result<u64> {
        crate::hub::check_slug(&r.slug)?;
        crate::hub::check_user_name(&r.owner)?;
        let mut heads = Vec::new();
        for (b, h) in &r.heads {
            crate::muse::check_branch(b)?;
            heads.push((
                b.clone(),
                Id::parse(h).map_err(|e| anyhow!("head of {b}: {e}"))?,
            ));
        }
        let repo = self.replica(peer, r).await?;
        let local: BTreeMap<String, Id> = {
            let id = repo.id;
            self.hub
                .db()
                .read(move |c| repos::branches(c, id))
                .await?
                .into_iter()
                .collect()
        };
        for (branch, head) in &heads {
            if local.get(branch) == Some(head) {
                continue;
            }
            let (rid, h) = (repo.id, *head);
            let held = self
                .hub
                .db()
                .read(move |c| crate::db::content::repo_has_commit(c, rid, &h))
                .await?;
            if !held {
                self.fetch_branch(peer, signer, &repo, head, &local).await?;
            }
            let (repo2, b, h, key) = (
                repo.clone(),
                branch.clone(),
                *head,
                self.hub.node_key().clone(),
            );
            self.hub
                .db()
                .write(move |tx| {
                    if repos::branch_head(tx, repo2.id, &b)? != Some(h) {
                        crate::hub::dag::append_ref_state(tx, &repo2, &b, &h, &key)?;
                        repos::set_branch(tx, repo2.id, &b, &h)?;
                    }
                    Ok::<_, anyhow::Error>(())
                })
                .await?;
            tracing::info!(target: "musehub::federation", repo = %format!("{}/{}", r.owner, r.slug), branch, head = %head, from = %peer.url, "replicated");
        }
        let gone: Vec<String> = local
            .keys()
            .filter(|b| !r.heads.contains_key(*b))
            .cloned()
            .collect();
        let (rid, default) = (repo.id, r.default_branch.clone());
        let has_default = r.heads.contains_key(&default);
        let count = self
            .hub
            .db()
            .write(move |tx| {
                for b in &gone {
                    repos::delete_branch(tx, rid, b)?;
                }
                if has_default {
                    repos::set_default_branch(tx, rid, &default)?;
                }
                repos::commit_count(tx, rid)
            })
            .await?;
        Ok(r.commits.saturating_sub(count))
    }

    /// The local replica of `r`, created (public, with the origin's repo id) on first sync.
    async fn replica(&self, peer: &Peer, r: &ListedRepo) -> Result<repos::Repo> {
        let (owner, slug, uuid, domain, origin) = (
            r.owner.clone(),
            r.slug.clone(),
            r.uuid.clone(),
            r.domain.clone(),
            peer.url.clone(),
        );
        let repo = self
            .hub
            .db()
            .write(move |tx| {
                if let Some(existing) = repos::get(tx, &owner, &slug)? {
                    return Ok(existing);
                }
                let user = match users::by_name(tx, &owner)? {
                    Some(u) => u,
                    None => users::create(tx, &owner)?,
                };
                let uuid = if repos::uuid_taken(tx, &uuid)? {
                    crate::hub::new_uuid()
                } else {
                    uuid
                };
                let id = repos::create(tx, user.id, &slug, Visibility::Public, &uuid)?;
                repos::set_domain(tx, id, &domain)?;
                repos::set_origin(tx, id, Some(&origin))?;
                tracing::info!(target: "musehub::federation", repo = %format!("{owner}/{slug}"), %origin, "new replica");
                Ok::<_, crate::db::Error>(repos::get(tx, &owner, &slug)?.expect("just created"))
            })
            .await?;
        match &repo.origin {
            Some(o) if *o == peer.url => Ok(repo),
            Some(o) => bail!(
                "this hub replicates {}/{} from {o} already",
                r.owner,
                r.slug
            ),
            None => bail!(
                "this hub has its own {}/{}; it is not replaced by {}'s",
                r.owner,
                r.slug,
                peer.url
            ),
        }
    }

    /// Downloads the CAR of `head` (leaving out what the replica holds) and imports it.
    async fn fetch_branch(
        &self,
        peer: &Peer,
        signer: &libp2p::PeerId,
        repo: &repos::Repo,
        head: &Id,
        local: &BTreeMap<String, Id>,
    ) -> Result<()> {
        let mut url = reqwest::Url::parse(&format!(
            "{}/{}/{}/commits/{}/car",
            peer.url, repo.owner, repo.slug, head
        ))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("history", "full");
            for h in local.values().collect::<BTreeSet<_>>() {
                q.append_pair("have", &h.to_string());
            }
        }
        let target = format!("{}/{}", repo.owner, repo.slug);
        let opts = self.import_options(repo.id, *signer).await?;
        // Straight from the answer into the store; a CAR in an order one pass cannot follow
        // (not one this hub's export writes) is downloaded whole and read by index.
        match self.stream_import(url.clone(), &target, &opts).await {
            Ok(()) => return Ok(()),
            Err(StreamError::Bad(e)) => return Err(e),
            Err(StreamError::Order(why)) => {
                tracing::info!(target: "musehub::federation", %why, "downloading the CAR whole instead");
            }
        }
        std::fs::create_dir_all(&self.settings.tmp_dir)?;
        let path = self.settings.tmp_dir.join(format!(
            "{}.car",
            hex::encode(crate::auth::random_bytes::<8>())
        ));
        let result = self.download_and_import(url, &path, target, opts).await;
        let _ = tokio::fs::remove_file(&path).await;
        result
    }

    /// What an import of a replica's CAR stops at (the commits it holds) and who must have
    /// signed its ref-states (the origin).
    async fn import_options(&self, repo_id: i64, signer: libp2p::PeerId) -> Result<ImportOptions> {
        let stop: HashSet<Id> = self
            .hub
            .db()
            .read(move |c| repos::commit_ids(c, repo_id))
            .await?
            .into_iter()
            .collect();
        Ok(ImportOptions {
            stop,
            signer: Some(signer),
        })
    }

    /// Imports the CAR at `url` as its answer arrives, in one pass.
    async fn stream_import(
        &self,
        url: reqwest::Url,
        target: &str,
        opts: &ImportOptions,
    ) -> std::result::Result<(), StreamError> {
        let res = self.http.get(url.clone()).send().await?;
        if !res.status().is_success() {
            let s = res.status();
            return Err(anyhow!("GET {url}: {s}: {}", res.text().await.unwrap_or_default()).into());
        }
        let body = tokio_util::io::StreamReader::new(
            res.bytes_stream().map(|r| r.map_err(std::io::Error::other)),
        );
        self.hub.import_car_stream(body, target, opts).await?;
        Ok(())
    }

    async fn download_and_import(
        &self,
        url: reqwest::Url,
        path: &std::path::Path,
        target: String,
        opts: ImportOptions,
    ) -> Result<()> {
        let res = self.http.get(url.clone()).send().await?;
        if !res.status().is_success() {
            let s = res.status();
            bail!("GET {url}: {s}: {}", res.text().await.unwrap_or_default());
        }
        let mut f = tokio::fs::File::create(path).await?;
        let mut body = res.bytes_stream();
        while let Some(chunk) = body.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await?;
        drop(f);
        // See stream_import: the import runs on a blocking thread of its own.
        let (hub, path) = (self.hub.clone(), path.to_owned());
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            rt.block_on(hub.import_car(&path, Some(&target), &opts, &no_progress))
        })
        .await??;
        Ok(())
    }

    /// Sends a signed notice about `repo_id` to every subscriber that follows it.
    async fn send_notices(&self, repo_id: i64) {
        let hub = &self.hub;
        let found = hub
            .db()
            .read(move |c| {
                let Some(repo) = repos::by_id(c, repo_id)? else {
                    return Ok(None);
                };
                let heads = repos::branches(c, repo_id)?;
                let subs = peers::subscribers_of(c, &repo.owner, &repo.slug)?;
                Ok::<_, crate::db::Error>(Some((repo, heads, subs)))
            })
            .await;
        let (repo, heads, subs) = match found {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(target: "musehub::federation", error = %e, "reading a pushed repo failed");
                return;
            }
        };
        // Replicas never fan out (no loops); private repos are never announced.
        if repo.origin.is_some() || repo.visibility != Visibility::Public {
            return;
        }
        let notice = Notice {
            repo: format!("{}/{}", repo.owner, repo.slug),
            heads: heads
                .iter()
                .map(|(b, h)| (b.clone(), h.to_string()))
                .collect(),
        };
        let Ok(body) = serde_json::to_vec(&notice) else {
            return;
        };
        let notice = &notice;
        let sends = subs.iter().map(|s: &Subscriber| {
            let body = body.clone();
            async move {
                let url = format!("{}{NOTIFY_PATH}", s.url);
                let r: Result<()> = async {
                    let mut req = self
                        .http
                        .post(&url)
                        .timeout(CALL_TIMEOUT)
                        .header("content-type", "application/json");
                    for (k, v) in signed(hub, &url, &body)? {
                        req = req.header(k, v);
                    }
                    let res = req.body(body).send().await?;
                    if !res.status().is_success() {
                        let st = res.status();
                        bail!("{st}: {}", res.text().await.unwrap_or_default());
                    }
                    Ok(())
                }
                .await;
                match r {
                    Ok(()) => {
                        hub.federation()
                            .notices_sent
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(target: "musehub::federation", to = %s.url, repo = %notice.repo, "notice sent");
                    }
                    Err(e) => {
                        tracing::info!(target: "musehub::federation", to = %s.url, repo = %notice.repo, error = %format!("{e:#}"), "notice not delivered; the subscriber's poll will catch up")
                    }
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }
}

fn no_progress(_: u64, _: usize, _: usize) {}

/// The listing of the public repos this hub is the origin of.
pub async fn listing(hub: &Hub, url: &str, owner: Option<String>) -> Result<Listing> {
    let repos = hub
        .db()
        .read(|c| {
            let mut out = Vec::new();
            for r in repos::list(c, None)? {
                if r.visibility != Visibility::Public || r.origin.is_some() {
                    continue;
                }
                let heads = repos::branches(c, r.id)?;
                if heads.is_empty() {
                    continue;
                }
                out.push(ListedRepo {
                    commits: repos::commit_count(c, r.id)?,
                    heads: heads
                        .iter()
                        .map(|(b, h)| (b.clone(), h.to_string()))
                        .collect(),
                    owner: r.owner,
                    slug: r.slug,
                    uuid: r.uuid,
                    domain: r.domain,
                    default_branch: r.default_branch,
                });
            }
            Ok::<_, crate::db::Error>(out)
        })
        .await?;
    Ok(Listing {
        peer_id: hub.node_key().public().to_peer_id().to_string(),
        url: url.to_owned(),
        owner,
        repos,
    })
}

/// Follows `url` with `policy` (what `musehub peer add` and a LAN pairing do).
pub async fn add_peer(hub: &Hub, url: &str, policy: Policy, source: &str) -> Result<Peer> {
    let url = normalize_url(url)?;
    if let Policy::Repo(s) = &policy {
        let (o, n) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("--repo must be OWNER/NAME"))?;
        crate::hub::check_user_name(o)?;
        crate::hub::check_slug(n)?;
    }
    let (u, p, s) = (url.clone(), policy, source.to_owned());
    let peer = hub.db().write(move |tx| peers::add(tx, &u, &p, &s)).await?;
    hub.federation().due(peer.id);
    Ok(peer)
}

/// Status for `/metrics`: one line per peer and series.
pub fn render_metrics(list: &[Peer], shared: &Shared, out: &mut Text) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = unix_now();
    out.family(
        "musehub_peer_up",
        "1 when the last sync reached the peer.",
        Kind::Gauge,
    );
    for p in list {
        let up = u8::from(p.status == "active" || p.status == "lagging");
        out.sample(
            "musehub_peer_up",
            &[("peer", &p.url), ("status", &p.status)],
            up,
        );
    }
    out.family(
        "musehub_peer_lag_commits",
        "Commits the peer has that this hub does not yet.",
        Kind::Gauge,
    );
    for p in list {
        out.sample(
            "musehub_peer_lag_commits",
            &[("peer", &p.url)],
            p.lag_commits,
        );
    }
    out.family(
        "musehub_peer_lag_seconds",
        "Seconds since the last complete sync while behind.",
        Kind::Gauge,
    );
    for p in list {
        out.sample(
            "musehub_peer_lag_seconds",
            &[("peer", &p.url)],
            p.lag_seconds(now),
        );
    }
    out.family(
        "musehub_federation_notices_total",
        "Federation notices sent, received and refused.",
        Kind::Counter,
    );
    for (way, n) in [
        ("sent", &shared.notices_sent),
        ("received", &shared.notices_received),
        ("refused", &shared.notices_refused),
    ] {
        out.sample(
            "musehub_federation_notices_total",
            &[("way", way)],
            n.load(Relaxed),
        );
    }
}
