//! `GET /peers`: the hubs this hub replicates from, with status and lag, and the hubs found
//! on the LAN with a one-click follow (`POST /peers/follow`).

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::session::{self, form_session, read_form, see_other};
use super::{Chrome, PageError, html};
use crate::db::peers::Policy;
use crate::db::unix_now;
use crate::web::AppState;

struct PeerRow {
    url: String,
    follows: String,
    status: String,
    lag: String,
    last_sync: String,
    error: String,
}

struct LanRow {
    url: String,
    owner: String,
    version: String,
}

#[derive(Template)]
#[template(path = "ui/peers.html")]
struct PeersPage {
    chrome: Chrome,
    peers: Vec<PeerRow>,
    lan: Vec<LanRow>,
    signed_in: bool,
}

fn ago(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// `GET /peers`.
pub async fn page(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let (viewer, csrf) = session::viewer(&st, &headers).await;
    let list = st.hub.peers().await?;
    let now = unix_now();
    let followed: Vec<String> = list.iter().map(|p| p.url.clone()).collect();
    let known_ids: Vec<String> = list.iter().filter_map(|p| p.peer_id.clone()).collect();
    let peers = list
        .iter()
        .map(|p| PeerRow {
            url: p.url.clone(),
            follows: p.policy.describe(),
            status: p.status.clone(),
            lag: match (p.lag_commits, p.lag_seconds(now)) {
                (0, 0) => "up to date".into(),
                (c, s) => format!("{c} commits, {s} s"),
            },
            last_sync: p.last_sync.map_or("never".into(), |t| ago(now - t)),
            error: p.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let lan = st
        .hub
        .federation()
        .lan_hubs()
        .iter()
        .filter(|h| !followed.contains(&h.url) && !known_ids.contains(&h.peer_id))
        .map(|h| LanRow {
            url: h.url.clone(),
            owner: h.owner.clone().unwrap_or_default(),
            version: h.version.clone(),
        })
        .collect();
    Ok(html(PeersPage {
        signed_in: viewer.is_some(),
        chrome: Chrome::new("Peers".to_owned(), viewer, csrf),
        peers,
        lan,
    }))
}

/// `POST /peers/follow`: follow every public repo of a hub found on the LAN.
pub async fn follow(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = read_form(&headers, body).await?;
    let cur = form_session(&st, &headers, &form).await?;
    let url = form.get("url").unwrap_or_default().to_owned();
    // Only hubs seen on the LAN: the page never makes this hub call an address typed in.
    let on_lan = st.hub.federation().lan_hubs().iter().any(|h| h.url == url);
    if !on_lan {
        return Err(PageError::bad_request(
            "That hub is not on the LAN list any more; reload the page.",
        ));
    }
    crate::federation::add_peer(&st.hub, &url, Policy::All, "lan")
        .await
        .map_err(|e| PageError::bad_request(e.to_string()))?;
    tracing::info!(target: "musehub::web", user = %cur.user.name, peer = %url, "followed a LAN hub from the peers page");
    Ok(see_other("/peers", None))
}
