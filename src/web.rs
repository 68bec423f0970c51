//! The hub's HTTP surface: the Muse wire protocol under `/{owner}/{slug}/…`, `/o/{id}`,
//! `/health`, `/metrics` and `/ca.crt`. The only module that knows HTTP.
//!
//! Wire answers follow the CLI's rules (protocol doc §2.1): every 2xx body is msgpack, errors
//! are short JSON `{"detail": …}` that the CLI shows the musician, nothing redirects and
//! nothing is compressed. Handlers turn requests into [`crate::hub`] calls.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http_body_util::BodyExt;
use rmpv::Value;

use crate::cids::Id;
use crate::hub::{self, Caller, Hub};
use crate::wire::answers::{Answer, ReleaseCreated};
use crate::wire::requests::{FilterObjects, Presign, Push, Tags, WantHave};
use crate::{auth, wire};

pub mod car;
pub mod count;
pub mod federation;
pub mod gateway;
pub mod identity;
pub(crate) mod range;
pub mod ui;

use identity::Who;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub hub: Hub,
    /// The CA certificate PEM, when the hub has TLS material.
    pub ca_pem: Option<Arc<str>>,
    pub started: Instant,
    /// The hub's address as users type it (`public_url` in the config).
    pub public_url: Arc<str>,
    /// The embedded IPFS node, when enabled.
    pub node: Option<crate::ipfs::Node>,
    /// The data directory: the SQLite file (the node page's data usage) and the record
    /// `musehub setup` leaves there (the `/setup` page).
    pub data_dir: Option<Arc<std::path::Path>>,
}

/// An error answer: status plus a `{"detail": …}` body.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    detail: String,
}

impl Error {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Error {
            status,
            detail: detail.into(),
        }
    }
}

/// The HTTP status of a hub error: the one place the hub's words become statuses (the UI's
/// pages use it too).
pub fn status_of(e: &hub::Error) -> StatusCode {
    use hub::Error as H;
    match e {
        H::NotFound(_) => StatusCode::NOT_FOUND,
        H::NotSignedIn(_) => StatusCode::UNAUTHORIZED,
        H::NotPermitted(_) => StatusCode::FORBIDDEN,
        H::Conflict(_) => StatusCode::CONFLICT,
        H::Invalid(_) | H::AnswerTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        H::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        H::Wire(w) => wire_status(w),
        H::Storage(crate::storage::Error::HashMismatch { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
        H::Storage(crate::storage::Error::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        H::Storage(_) | H::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<hub::Error> for Error {
    fn from(e: hub::Error) -> Self {
        let status = status_of(&e);
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(target: "musehub::web", error = %e, "request failed");
            return Error::new(status, "internal error; the hub's log has the details");
        }
        Error::new(status, e.to_string())
    }
}

impl From<wire::Error> for Error {
    fn from(e: wire::Error) -> Self {
        Error::new(wire_status(&e), e.to_string())
    }
}

fn wire_status(e: &wire::Error) -> StatusCode {
    match e {
        wire::Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        wire::Error::Msgpack(_)
        | wire::Error::Json(_)
        | wire::Error::NotMap
        | wire::Error::Truncated
        | wire::Error::Body(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "detail": self.detail }).to_string();
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The router with every route and the metrics layer.
pub fn router(state: AppState) -> Router {
    let metrics = state.hub.metrics().clone();
    let wire_routes = Router::new()
        .route("/{owner}/{slug}/refs", get(refs))
        .route("/{owner}/{slug}/filter-objects", post(filter_objects))
        .route("/{owner}/{slug}/presign", post(presign))
        .route("/{owner}/{slug}/push/objects", post(push_objects))
        .route("/{owner}/{slug}/push", post(push))
        .route("/{owner}/{slug}/negotiate", post(negotiate))
        .route("/{owner}/{slug}/fetch", post(fetch))
        .route(
            "/{owner}/{slug}/releases",
            get(list_releases).post(create_release),
        )
        .route("/{owner}/{slug}/releases/{*tag}", delete(delete_release))
        .route("/{owner}/{slug}/tags", post(tags));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .route("/ca.crt", get(ca_cert))
        .route("/api/node", get(node_info))
        .route("/api/v1/login/challenge", post(identity::challenge))
        .route(identity::LOGIN_PATH, post(identity::login))
        .route(crate::federation::REPOS_PATH, get(federation::repos))
        .route(
            crate::federation::SUBSCRIBE_PATH,
            post(federation::subscribe),
        )
        .route(crate::federation::NOTIFY_PATH, post(federation::notify))
        .route("/o/{object_id}", get(object))
        .merge(wire_routes)
        .merge(gateway::routes())
        .merge(ui::routes())
        .fallback(|headers: HeaderMap| async move {
            if ui::wants_html(&headers) {
                ui::PageError::not_found("There is no page at this address.").into_response()
            } else {
                Error::new(StatusCode::NOT_FOUND, "no such endpoint").into_response()
            }
        })
        // Bodies are limited by our own streaming readers (see `read_body`), not axum's default.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            identity::signed_requests,
        ))
        .layer(middleware::from_fn_with_state(metrics, count::layer))
        .with_state(state)
}

/// The caller from the `Authorization` header.
async fn caller(hub: &Hub, headers: &HeaderMap) -> Result<Caller> {
    let bearer = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                Error::new(StatusCode::UNAUTHORIZED, "malformed Authorization header")
            })?;
            Some(auth::bearer(v).ok_or_else(|| {
                Error::new(
                    StatusCode::UNAUTHORIZED,
                    "Authorization must be 'Bearer <token>'",
                )
            })?)
        }
    };
    Ok(hub.authenticate(bearer).await?)
}

/// Reads a whole (small) request body, refusing more than the configured limit.
async fn read_body(hub: &Hub, mut body: Body) -> Result<bytes::Bytes> {
    use http_body::Body as _;
    let limit = hub.limits().max_body;
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > limit) {
        return Err(wire::Error::TooLarge { limit }.into());
    }
    // One buffer of the declared size (up to a first step; a client's Content-Length is not
    // trusted further), so a large body is never held twice while it is joined.
    let mut buf =
        bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(FIRST_BODY_RESERVE) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| wire::Error::Body(e.to_string()))?;
        let Ok(piece) = frame.into_data() else {
            continue;
        };
        if (buf.len() + piece.len()) as u64 > limit {
            return Err(wire::Error::TooLarge { limit }.into());
        }
        buf.extend_from_slice(&piece);
    }
    Ok(buf.freeze())
}

/// The most a request body's buffer reserves before its bytes arrive.
const FIRST_BODY_RESERVE: u64 = 64 << 20;

async fn msgpack_body(hub: &Hub, body: Body) -> Result<Value> {
    let bytes = read_body(hub, body).await?;
    Ok(wire::decode(&bytes)?)
}

/// A msgpack answer.
fn msgpack(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-msgpack")],
        wire::encode(v),
    )
        .into_response()
}

/// A hub answer in its msgpack form.
fn answer(status: StatusCode, a: &impl Answer) -> Response {
    msgpack(status, &a.to_value())
}

/// `GET /health` for `muse hub ping` (any 2xx; msgpack like every wire answer).
async fn health() -> Response {
    msgpack(
        StatusCode::OK,
        &wire::map([
            ("status", Value::from("ok")),
            ("version", Value::from(env!("CARGO_PKG_VERSION"))),
        ]),
    )
}

async fn metrics_page(State(st): State<AppState>) -> Result<Response> {
    let (objects, blocks, bytes) = st.hub.counts().await?;
    let mut text = crate::metrics::Text::default();
    st.hub.metrics().render(
        objects,
        blocks,
        bytes,
        st.hub.db_readers_opened(),
        &mut text,
    );
    if let Some(node) = &st.node {
        node.metrics().render(&node.status(), &mut text);
    }
    let peers = st.hub.peers().await?;
    crate::federation::render_metrics(&peers, st.hub.federation(), &mut text);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text.finish(),
    )
        .into_response())
}

/// The IPFS node's identity and state as JSON (what `musehub node` prints).
async fn node_info(State(st): State<AppState>) -> Result<Response> {
    let Some(node) = &st.node else {
        return Err(Error::new(
            StatusCode::NOT_FOUND,
            "this hub runs without its IPFS node ([ipfs] enabled = false)",
        ));
    };
    let s = node.status();
    let body = serde_json::json!({
        "peer_id": node.peer_id().to_string(),
        "ipns_name": crate::ipfs::ipns::name_to_string(&node.peer_id()),
        "listen_addrs": node.dial_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "external_addrs": s.external_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "peers": s.peers,
        "dht_server": s.dht_server,
        "routing_table": s.routing_table,
        "provided": s.provided,
        "provide_backlog": s.provide_backlog,
        "last_provide": s.last_provide.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
    });
    Ok(axum::Json(body).into_response())
}

async fn ca_cert(State(st): State<AppState>) -> Result<Response> {
    match &st.ca_pem {
        Some(pem) => Ok((
            [
                (header::CONTENT_TYPE, "application/x-pem-file"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"musehub-ca.crt\"",
                ),
            ],
            pem.to_string(),
        )
            .into_response()),
        None => Err(Error::new(
            StatusCode::NOT_FOUND,
            "this hub has no CA certificate; run `musehub init` on it",
        )),
    }
}

/// `GET /o/{object_id}`: the raw bytes of an object held by a public repo (or one of the
/// caller's own repos).
async fn object(
    State(st): State<AppState>,
    Path(oid): Path<String>,
    Who(who): Who,
    headers: HeaderMap,
) -> Result<Response> {
    let id = Id::parse(&oid)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("object id: {e}")))?;
    let Some(object) = st.hub.visible_object(id, who.map(|u| u.id)).await? else {
        return Err(Error::new(StatusCode::NOT_FOUND, "object not found"));
    };
    let etag = format!("\"{id}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let len = object.size();
    let stream = st.hub.object_stream(&object);
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a valid header value"),
    );
    Ok(res)
}

type RepoPath = Path<(String, String)>;

async fn refs(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
) -> Result<Response> {
    let repo = st.hub.repo_for_read(&owner, &slug, &who).await?;
    Ok(answer(StatusCode::OK, &st.hub.refs(&repo).await?))
}

async fn filter_objects(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let req = FilterObjects::parse(&msgpack_body(&st.hub, body).await?)?;
    let repo = st.hub.repo_for_filter(&owner, &slug, &who).await?;
    Ok(answer(
        StatusCode::OK,
        &st.hub.filter_objects(repo.as_ref(), req).await?,
    ))
}

async fn presign(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    st.hub.repo_for_write(&owner, &slug, &who, true).await?;
    let req = Presign::parse(&msgpack_body(&st.hub, body).await?)?;
    Ok(answer(StatusCode::OK, &st.hub.presign(req)))
}

async fn push_objects(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let repo = st.hub.repo_for_write(&owner, &slug, &who, true).await?;
    let stored = st.hub.push_objects(&repo, body.into_data_stream()).await?;
    Ok(answer(StatusCode::OK, &stored))
}

async fn push(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let started = Instant::now();
    let repo = st.hub.repo_for_write(&owner, &slug, &who, true).await?;
    let req = Push::parse(read_body(&st.hub, body).await?)?;
    let pushed = st.hub.push(&repo, req).await?;
    st.hub.metrics().push(started.elapsed());
    tracing::info!(target: "musehub::web", repo = %format!("{owner}/{slug}"), took_ms = started.elapsed().as_millis() as u64, "push accepted");
    Ok(answer(StatusCode::OK, &pushed))
}

async fn negotiate(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let repo = st.hub.repo_for_read(&owner, &slug, &who).await?;
    let req = WantHave::parse(&msgpack_body(&st.hub, body).await?, true)?;
    Ok(answer(StatusCode::OK, &st.hub.negotiate(&repo, req).await?))
}

async fn fetch(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let repo = st.hub.repo_for_read(&owner, &slug, &who).await?;
    let req = WantHave::parse(&msgpack_body(&st.hub, body).await?, false)?;
    let plan = st.hub.plan_fetch(&repo, req).await?;
    let len = plan.len;
    let mut res = Response::new(Body::from_stream(st.hub.fetch_stream(plan)));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-msgpack"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(res)
}

async fn create_release(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let repo = st.hub.repo_for_write(&owner, &slug, &who, false).await?;
    let bytes = read_body(&st.hub, body).await?;
    let id = st.hub.create_release(&repo, &bytes).await?;
    Ok(answer(StatusCode::CREATED, &ReleaseCreated(id)))
}

#[derive(Debug, serde::Deserialize)]
struct ReleaseQuery {
    channel: Option<String>,
    include_drafts: Option<String>,
}

async fn list_releases(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Query(q): Query<ReleaseQuery>,
    Who(who): Who,
    headers: HeaderMap,
) -> Result<Response> {
    if ui::wants_html(&headers) {
        // A browser: the same URL is the releases page.
        return Ok(ui::repo::releases(State(st), headers, Path((owner, slug)))
            .await
            .into_response());
    }
    let repo = st.hub.repo_for_read(&owner, &slug, &who).await?;
    let wants_drafts = q
        .include_drafts
        .as_deref()
        .is_some_and(|v| matches!(v, "1" | "true" | "yes" | "True"));
    let drafts = wants_drafts && hub::is_owner(&who, &repo);
    Ok(answer(
        StatusCode::OK,
        &st.hub.releases(&repo, q.channel, drafts).await?,
    ))
}

async fn delete_release(
    State(st): State<AppState>,
    Path((owner, slug, tag)): Path<(String, String, String)>,
    Who(who): Who,
) -> Result<Response> {
    let repo = st.hub.repo_for_write(&owner, &slug, &who, false).await?;
    Ok(answer(
        StatusCode::OK,
        &st.hub.delete_release(&repo, &tag).await?,
    ))
}

async fn tags(
    State(st): State<AppState>,
    Path((owner, slug)): RepoPath,
    Who(who): Who,
    body: Body,
) -> Result<Response> {
    let repo = st.hub.repo_for_write(&owner, &slug, &who, false).await?;
    let req = Tags::parse(&msgpack_body(&st.hub, body).await?)?;
    Ok(answer(StatusCode::OK, &st.hub.tags(&repo, req).await?))
}
