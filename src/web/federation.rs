//! Federation over HTTP: the listing peers replicate from, and the signed subscription and
//! notice endpoints (see [`crate::federation`]).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::identity::{read_limited, target_uri, verify};
use super::{AppState, Error, Result};
use crate::db::peers::{Policy, Subscriber};
use crate::federation::{self, Notice, Subscription};
use crate::httpsig;

const BODY_MAX: usize = 64 * 1024;

/// `GET /api/v1/federation/repos`: the public repos this hub is the origin of.
pub async fn repos(State(st): State<AppState>) -> Result<Response> {
    let listing = federation::listing(&st.hub, &st.public_url, None)
        .await
        .map_err(|e| Error::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(listing).into_response())
}

/// Verifies a hub-signed request; returns the signer's peer id and the body.
async fn verified(st: &AppState, req: Request, what: &str) -> Result<(String, bytes::Bytes)> {
    let (parts, body) = req.into_parts();
    let body = read_limited(body, BODY_MAX).await?;
    let uri = target_uri(st, &parts);
    // The key id is the sending hub's peer id, which embeds its Ed25519 key.
    let input = parts
        .headers
        .get("signature-input")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = httpsig::keyid(input, None)
        .ok()
        .and_then(|k| k.parse::<libp2p::PeerId>().ok())
        .and_then(|p| crate::dag::public_key_of(&p).ok());
    verify(&st.hub, &uri, &parts, &body, |k| {
        key.clone()
            .filter(|key| key.to_peer_id().to_string() == k)
    })
        .map(|v| (v.keyid, body))
        .map_err(|e| {
            st.hub
                .federation()
                .notices_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(target: "musehub::federation", %uri, reason = %e, "{what} refused: bad signature");
            Error::new(StatusCode::UNAUTHORIZED, format!("{what} refused: {e}"))
        })
}

/// `POST /api/v1/federation/subscribe`: a hub asks for notices about what it follows here.
pub async fn subscribe(State(st): State<AppState>, req: Request) -> Result<Response> {
    let (peer_id, body) = verified(&st, req, "subscription").await?;
    let s: Subscription = serde_json::from_slice(&body)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("subscription: {e}")))?;
    let url = federation::normalize_url(&s.url)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let policy = Policy::from_parts(&s.policy, &s.scope).ok_or_else(|| {
        Error::new(
            StatusCode::BAD_REQUEST,
            "policy must be \"repo\", \"owner\" or \"all\"",
        )
    })?;
    let sub = Subscriber {
        url: url.clone(),
        peer_id: peer_id.clone(),
        policy,
    };
    let ok = st.hub.add_subscriber(sub).await?;
    if !ok {
        return Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this hub has too many subscribers; it will be polled instead",
        ));
    }
    tracing::info!(target: "musehub::federation", subscriber = %url, peer = %peer_id, "subscribed to notices");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/federation/notify`: an origin says a repo this hub follows changed.
pub async fn notify(State(st): State<AppState>, req: Request) -> Result<Response> {
    let (peer_id, body) = verified(&st, req, "notice").await?;
    let refuse = |status: StatusCode, why: String| {
        st.hub
            .federation()
            .notices_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(target: "musehub::federation", peer = %peer_id, reason = %why, "notice refused");
        Error::new(status, format!("notice refused: {why}"))
    };
    let n: Notice = serde_json::from_slice(&body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let (owner, slug) = n
        .repo
        .split_once('/')
        .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "repo must be owner/slug".into()))?;
    let followed = st.hub.peers_with_id(&peer_id).await?;
    if followed.is_empty() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("{peer_id} is not a hub this hub follows"),
        ));
    }
    let Some(peer) = followed.iter().find(|p| p.policy.covers(owner, slug)) else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("{} is not a repo this hub follows there", n.repo),
        ));
    };
    st.hub
        .federation()
        .notices_received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(target: "musehub::federation", peer = %peer.url, repo = %n.repo, "notice received; syncing");
    st.hub.federation().due(peer.id);
    Ok(StatusCode::ACCEPTED.into_response())
}
