//! Identities over HTTP: who is calling (a bearer token or an RFC 9421 signed request), and
//! passwordless login for `musehub login`.
//!
//! A signed request carries `Content-Digest`, `Signature-Input` and `Signature` with `keyid`
//! set to the 64 hex characters of the caller's Ed25519 key, covering at least `@method`,
//! `@target-uri` and `content-digest`, with `created`, `expires` and a `nonce`. The
//! [`signed_requests`] layer verifies it before any handler runs and hands the verified user
//! on; every refusal is answered 401 with its reason and logged.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64;
use http_body_util::BodyExt;
use libp2p::identity::PublicKey;

use super::{AppState, Error, Result};
use crate::db::users::User;
use crate::hub::identity::{LoginRequest, Use};
use crate::hub::{Caller, Hub};
use crate::{db, httpsig};

/// Largest body of a signed request: it is held in memory to check its digest. Larger
/// uploads use a bearer token (their objects are verified by hash anyway).
pub const SIGNED_BODY_MAX: usize = 64 * 1024 * 1024;
/// Oldest `created` accepted, and the clock skew tolerated the other way.
const MAX_AGE: Duration = Duration::from_secs(300);
const SKEW: Duration = Duration::from_secs(30);
/// Largest login request body.
const LOGIN_BODY_MAX: usize = 64 * 1024;

/// The user a signed request was verified for.
#[derive(Debug, Clone)]
struct SignedBy(User);

/// The caller of a request: the signer of a verified signed request, else the owner of its
/// bearer token, else anonymous.
#[derive(Debug)]
pub struct Who(pub Caller);

impl FromRequestParts<AppState> for Who {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Who> {
        if let Some(SignedBy(u)) = parts.extensions.get::<SignedBy>() {
            return Ok(Who(Some(u.clone())));
        }
        Ok(Who(super::caller(&st.hub, &parts.headers).await?))
    }
}

fn refused(e: impl std::fmt::Display) -> Error {
    Error::new(StatusCode::UNAUTHORIZED, format!("signature refused: {e}"))
}

/// The absolute URI the client signed: this hub's scheme, the `Host` it was asked for, the
/// path and query.
pub(super) fn target_uri(st: &AppState, parts: &Parts) -> String {
    let scheme = if st.public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    format!("{scheme}://{host}{path}")
}

fn header_pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect()
}

/// Verifies a signed request whose body was read: digest, then the signature by `key_of`.
/// Used for users' signed requests, the login and hub-to-hub calls alike.
pub(super) fn verify(
    hub: &Hub,
    uri: &str,
    parts: &Parts,
    body: &[u8],
    key_of: impl Fn(&str) -> Option<PublicKey>,
) -> std::result::Result<httpsig::Verified, httpsig::Error> {
    let h = |name| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
    };
    let (Some(input), Some(sig)) = (h("signature-input"), h("signature")) else {
        return Err(httpsig::Error::Malformed(
            "Signature",
            "the request is not signed".into(),
        ));
    };
    // Size first: an oversized header is refused before anything is parsed.
    if input.len() > httpsig::MAX_HEADER {
        return Err(httpsig::Error::TooLarge("Signature-Input"));
    }
    if sig.len() > httpsig::MAX_HEADER {
        return Err(httpsig::Error::TooLarge("Signature"));
    }
    match h("content-digest") {
        Some(d) => httpsig::check_content_digest(d, body)?,
        None => return Err(httpsig::Error::NotCovered("content-digest".into())),
    }
    let pairs = header_pairs(&parts.headers);
    let req = httpsig::Request {
        method: parts.method.as_str(),
        target_uri: uri,
        headers: &pairs,
    };
    let policy = httpsig::Policy {
        required: &httpsig::REQUIRED,
        now: db::unix_now(),
        max_age: MAX_AGE,
        skew: SKEW,
        require_nonce: true,
    };
    httpsig::verify(
        &req,
        input,
        sig,
        None,
        &policy,
        key_of,
        &hub.identities().replay,
    )
}

/// Reads a body up to `max` bytes.
pub(super) async fn read_limited(body: Body, max: usize) -> Result<bytes::Bytes> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a signed request body may be at most {max} bytes; send larger uploads with a token"
            ),
        )),
        Err(e) => Err(Error::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// The layer that verifies signed requests (all but the login, which verifies its own).
pub async fn signed_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let signed =
        req.headers().contains_key("signature-input") || req.headers().contains_key("signature");
    // The login and hub-to-hub requests verify their own signatures.
    let own = req.uri().path() == LOGIN_PATH || req.uri().path().starts_with("/api/v1/federation/");
    if !signed || own {
        return next.run(req).await;
    }
    match verify_request(&st, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn verify_request(st: &AppState, req: Request) -> Result<Request> {
    let (mut parts, body) = req.into_parts();
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(refused(
            "send either a signature or an Authorization token, not both",
        ));
    }
    let body = read_limited(body, SIGNED_BODY_MAX).await?;
    let uri = target_uri(st, &parts);
    let input = parts
        .headers
        .get("signature-input")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let keyid = httpsig::keyid(input, None).map_err(|e| log_refusal(&uri, "", e))?;
    let purpose = if matches!(parts.method.as_str(), "GET" | "HEAD") {
        Use::Read
    } else {
        Use::Write
    };
    let signer = st.hub.signer(&keyid, purpose).await?;
    let Some((user, public)) = signer else {
        return Err(log_refusal(
            &uri,
            &keyid,
            httpsig::Error::UnknownKey(keyid.clone()),
        ));
    };
    let public = PublicKey::from(public);
    verify(&st.hub, &uri, &parts, &body, |k| {
        (k == keyid).then(|| public.clone())
    })
    .map_err(|e| log_refusal(&uri, &keyid, e))?;
    parts.extensions.insert(SignedBy(user));
    Ok(Request::from_parts(parts, Body::from(body)))
}

fn log_refusal(uri: &str, keyid: &str, e: httpsig::Error) -> Error {
    tracing::warn!(target: "musehub::identity", %uri, keyid, reason = %e, "signed request refused");
    refused(e)
}

/// Where `musehub login` posts.
pub const LOGIN_PATH: &str = "/api/v1/login";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeBody {
    handle: String,
}

/// `POST /api/v1/login/challenge {"handle"}`: a single-use challenge (valid 5 minutes) that
/// the login request must carry as its signature's nonce.
pub async fn challenge(State(st): State<AppState>, body: Body) -> Result<Response> {
    let body = read_limited(body, LOGIN_BODY_MAX).await?;
    let b: ChallengeBody = serde_json::from_slice(&body)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("login challenge: {e}")))?;
    crate::hub::check_user_name(&b.handle).map_err(crate::hub::Error::from)?;
    let (challenge, expires) = st.hub.login_challenge(&b.handle);
    Ok(axum::Json(serde_json::json!({
        "challenge": challenge,
        "expires": expires,
        "hub_peer_id": st.hub.node_key().public().to_peer_id().to_string(),
    }))
    .into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    handle: String,
    /// 64 hex characters.
    key: String,
    /// The signed key bundle block, base64.
    #[serde(default)]
    bundle: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

/// `POST /api/v1/login`: signed (RFC 9421) by the key in the body, with the challenge as the
/// nonce. Answers `{"token", "user", "anchored"}`.
pub async fn login(State(st): State<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let bearer_user = match super::caller(&st.hub, &parts.headers).await? {
        Some(u) => Some(u.id),
        None => None,
    };
    let body = read_limited(body, LOGIN_BODY_MAX).await?;
    let b: LoginBody = serde_json::from_slice(&body)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("login: {e}")))?;
    let key: [u8; 32] = hex::decode(&b.key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| {
            Error::new(
                StatusCode::BAD_REQUEST,
                "login: key must be 64 hex characters (an Ed25519 public key)",
            )
        })?;
    let public = libp2p::identity::ed25519::PublicKey::try_from_bytes(&key)
        .map_err(|_| Error::new(StatusCode::BAD_REQUEST, "login: not an Ed25519 public key"))?;
    let public = PublicKey::from(public);
    let uri = target_uri(&st, &parts);
    let verified = verify(&st.hub, &uri, &parts, &body, |k| {
        (k == b.key).then(|| public.clone())
    })
    .map_err(|e| log_refusal(&uri, &b.key, e))?;
    let bundle =
        match &b.bundle {
            Some(s) => Some(BASE64.decode(s.as_bytes()).map_err(|_| {
                Error::new(StatusCode::BAD_REQUEST, "login: bundle must be base64")
            })?),
            None => None,
        };
    let answer = st
        .hub
        .login(LoginRequest {
            handle: b.handle,
            key,
            challenge: verified.nonce.unwrap_or_default(),
            bundle,
            label: b.label.unwrap_or_else(|| "musehub login".into()),
            bearer_user,
        })
        .await?;
    Ok(axum::Json(serde_json::json!({
        "token": answer.token,
        "user": answer.user,
        "anchored": answer.anchored,
    }))
    .into_response())
}
