//! Pages about the hub as a whole: home (explore), a user's page, the node page and the
//! "connect" page that tells a musician how to point the Muse CLI here.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{Chrome, PageError, html, session, short_time, size};
use crate::chain::RotationKind;
use crate::db::repos::{Repo, Visibility};
use crate::hub::identity::Anchoring;
use crate::web::AppState;

/// A repository as listed on the explore and user pages.
#[derive(Debug)]
pub struct RepoCard {
    pub owner: String,
    pub slug: String,
    pub private: bool,
    pub pushed: String,
}

impl From<&Repo> for RepoCard {
    fn from(r: &Repo) -> Self {
        RepoCard {
            owner: r.owner.clone(),
            slug: r.slug.clone(),
            private: r.visibility == Visibility::Private,
            pushed: r
                .pushed_at
                .as_deref()
                .map_or_else(|| "never pushed".to_owned(), short_time),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct Search {
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/home.html")]
struct Home {
    chrome: Chrome,
    q: String,
    repos: Vec<RepoCard>,
}

/// `GET /`: public repositories, newest pushes first; `?q=` searches owner and name.
pub async fn home(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Result<Response, PageError> {
    let (viewer, csrf) = session::viewer(&st, &headers).await;
    let q = search.q.unwrap_or_default().trim().to_owned();
    let needle = q.to_lowercase();
    // Public repos only, even for a signed-in viewer: explore is the hub's shop window.
    let list = st.hub.repos_visible_to(&None, None).await?;
    let mut shown: Vec<&Repo> = list
        .iter()
        .map(|r| &**r)
        .filter(|r| {
            needle.is_empty()
                || r.owner.to_lowercase().contains(&needle)
                || r.slug.to_lowercase().contains(&needle)
        })
        .collect();
    shown.sort_by(|a, b| {
        b.pushed_at
            .cmp(&a.pushed_at)
            .then_with(|| b.created_at.cmp(&a.created_at))
    });
    let repos = shown.into_iter().take(200).map(RepoCard::from).collect();
    Ok(html(Home {
        chrome: Chrome::new("Explore", viewer, csrf),
        q,
        repos,
    }))
}

#[derive(Template)]
#[template(path = "ui/user.html")]
struct UserPage {
    chrome: Chrome,
    name: String,
    since: String,
    repos: Vec<RepoCard>,
    /// Hex Ed25519 keys the user signs in with.
    keys: Vec<String>,
    /// A CSS-safe word for the anchoring state, its label and an explanation.
    anchor_state: &'static str,
    anchor_label: String,
    anchor_detail: String,
}

/// The user page's words for an anchoring state.
fn anchoring_words(a: &Anchoring, has_keys: bool) -> (&'static str, String, String) {
    let short = |k: &[u8; 32]| hex::encode(&k[..8]);
    match a {
        Anchoring::NoChain if has_keys => (
            "local",
            "not anchored".into(),
            "This hub has no key registry configured, so these keys are known to this hub only.".into(),
        ),
        Anchoring::NoChain => (
            "none",
            "no key".into(),
            "No public key is published for this user yet.".into(),
        ),
        Anchoring::Anchored { key, rotation, owner, nonce } => {
            let (state, label) = match rotation {
                Some(RotationKind::Recovery) => ("recovery", "anchored (recovery rotation)"),
                Some(RotationKind::Suspicious) => (
                    "suspicious",
                    "anchored (recovery rotation, bad old-key signature)",
                ),
                _ => ("anchored", "anchored"),
            };
            let why = match rotation {
                Some(RotationKind::Recovery) => " The last key change was made by the owner address alone, without the old key's approval (for example after a lost device).",
                Some(RotationKind::Suspicious) => " The last key change carried an old-key signature that does not verify.",
                _ => "",
            };
            (
                state,
                label.into(),
                format!("Key {}… is the current key on chain, owned by {owner} (record version {nonce}).{why}", short(key)),
            )
        }
        Anchoring::Pending => (
            "pending",
            "pending".into(),
            "The key registry has no record of this handle yet; it is waiting to be anchored with `musehub key anchor`.".into(),
        ),
        Anchoring::Revoked => (
            "revoked",
            "revoked".into(),
            "The current key was revoked on chain and not replaced yet; nothing signed with it is accepted.".into(),
        ),
        Anchoring::Elsewhere { key } => (
            "elsewhere",
            "anchored elsewhere".into(),
            format!("The chain names key {}…, which has not signed in to this hub yet.", short(key)),
        ),
        Anchoring::Unknown(why) => (
            "unknown",
            "unknown".into(),
            format!("The key registry could not be reached: {why}"),
        ),
    }
}

/// `GET /{owner}`: a user's repositories (private ones only for that user).
pub async fn user(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(owner): Path<String>,
) -> Result<Response, PageError> {
    let (viewer, csrf) = session::viewer(&st, &headers).await;
    let Some(user) = st.hub.user_named(&owner).await? else {
        return Err(PageError::not_found(format!(
            "There is no user called {owner} on this hub."
        )));
    };
    let list = st.hub.repos_visible_to(&viewer, Some(&owner)).await?;
    let keys = st.hub.keys_of(&user).await?;
    let anchoring = st.hub.anchoring(&user).await?;
    let (anchor_state, anchor_label, anchor_detail) = anchoring_words(&anchoring, !keys.is_empty());
    let repos = list.iter().map(|r| RepoCard::from(&**r)).collect();
    Ok(html(UserPage {
        chrome: Chrome::new(user.name.clone(), viewer, csrf),
        name: user.name,
        since: short_time(&user.created_at),
        repos,
        keys: keys.iter().map(hex::encode).collect(),
        anchor_state,
        anchor_label,
        anchor_detail,
    }))
}

#[derive(Template)]
#[template(path = "ui/node.html")]
struct Node {
    chrome: Chrome,
    version: &'static str,
    uptime: String,
    objects: u64,
    blocks: u64,
    block_bytes: String,
    database: String,
    repos: usize,
}

/// `GET /node`: what this hub holds and how long it has been up.
pub async fn node(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let (viewer, csrf) = session::viewer(&st, &headers).await;
    let (objects, blocks, bytes) = st.hub.counts().await?;
    let repos = st.hub.repo_count().await?;
    let database = st
        .data_dir
        .as_deref()
        .and_then(|d| std::fs::metadata(crate::config::Paths::db_in(d)).ok())
        .map_or(0, |m| m.len());
    let secs = st.started.elapsed().as_secs();
    let uptime = format!(
        "{}d {}h {}m",
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60
    );
    Ok(html(Node {
        chrome: Chrome::new("This hub", viewer, csrf),
        version: env!("CARGO_PKG_VERSION"),
        uptime,
        objects,
        blocks,
        block_bytes: size(bytes),
        database: size(database),
        repos,
    }))
}

#[derive(Template)]
#[template(path = "ui/connect.html")]
struct Connect {
    chrome: Chrome,
    url: String,
    https: bool,
    has_ca: bool,
}

/// `GET /connect`: how to point the Muse CLI at this hub.
pub async fn connect(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (viewer, csrf) = session::viewer(&st, &headers).await;
    let url = st.public_url.to_string();
    Ok(html(Connect {
        chrome: Chrome::new("Connect", viewer, csrf),
        https: url.starts_with("https://"),
        has_ca: st.ca_pem.is_some(),
        url,
    }))
}
