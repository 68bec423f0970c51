//! The trustless HTTP gateway (ipfs-specs.md §3): `GET|HEAD /ipfs/{cid}` serving the hub's
//! own public blocks as a raw block, a CARv1 archive, or (for UnixFS files) the file bytes.
//!
//! Only local content is served, and only what [`Hub::public_block`] allows: a block that is
//! absent or private is a 404 with the same body on every path (raw, CAR, file, HEAD), so
//! private content is indistinguishable from absent content. A CID no block here can have
//! (unsupported codec or hash function) is a 400 before any lookup. The gateway never
//! deserializes (strict trustless mode), and fetches from other peers only when the operator
//! sets `[ipfs] gateway_fetch` (raw and CAR answers; blocks of this hub's own private objects
//! are never fetched around the privacy rule).
//!
//! Choices where the spec leaves room:
//! - `format` beats `Accept`; in `Accept` the first `application/vnd.ipld.*` or
//!   `application/vnd.ipfs.*` type decides (q-weights ignored, as boxo does). An unknown
//!   `format` value is a 400; a known format this gateway does not produce (`dag-json`,
//!   `dag-cbor`, `json`, `cbor`, `tar`, `ipns-record`) is a 406, as is a vendor type in `Accept`
//!   other than raw and CAR.
//! - CAR: `version` other than 1 and `order` other than `dfs`/`unk` are 406; `dups` other than
//!   `y`/`n`, an unknown `dag-scope` and a malformed `entity-bytes` are 400. Query parameters
//!   (`car-version`, `car-order`, `car-dups`) override the `Accept` parameters. Blocks are
//!   always written in DFS pre-order, so the answer says `order=dfs` even when `unk` was asked.
//! - `entity-bytes` implies `dag-scope=entity` unless `dag-scope=block` is asked (the narrower
//!   wins). A range outside the file gives the root block only, like `dag-scope=block`.
//! - Range on a raw block or a file: one `bytes` range gives 206; several ranges give 200
//!   with everything (RFC 9110 allows it); a malformed or unsatisfiable range gives 416.
//! - A path after the CID (`/ipfs/{cid}/a/b`) is a 404: every public DAG the hub holds today is
//!   a file or a raw block, which have no named children. (The CID is still checked: 400 when
//!   malformed.) `/ipfs/{cid}/` is the CID itself.
//! - A CAR of a DAG whose links this gateway cannot read (a dag-pb node that is not a UnixFS
//!   file, such as a directory, or DAG-CBOR that does not decode, with `dag-scope=all`; none is
//!   public today) ends after that block, like a CAR whose next block is missing: clients must
//!   check that a CAR is complete. DAG-CBOR links are followed in canonical order.
//!
//! `/ipns/{name}` is added by a later issue beside these routes ([`routes`]).

use std::collections::HashSet;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cid::Cid;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::range::{self, header_value, none_match};
use super::{AppState, Error, Result};
use crate::car;
use crate::cids::{DAG_CBOR, DAG_PB, RAW};
use crate::hub::{self, BlockKey, Hub};
use crate::storage::unixfs;

/// Cache-Control of everything under `/ipfs/` (content-addressed, so immutable).
const IMMUTABLE: &str = "public, max-age=29030400, immutable";

const RAW_TYPE: &str = "application/vnd.ipld.raw";
const CAR_TYPE: &str = "application/vnd.ipld.car";

/// `format` values of other gateway response types, which a strict trustless gateway refuses
/// with 406.
const NOT_PRODUCED: &[&str] = &["dag-json", "dag-cbor", "json", "cbor", "tar", "ipns-record"];

/// The gateway's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ipfs/{cid}", get(ipfs))
        .route("/ipfs/{cid}/", get(ipfs))
        .route("/ipfs/{cid}/{*path}", get(ipfs_path))
        .route("/ipns/{name}", get(ipns))
        .route("/ipns/{name}/", get(ipns))
}

/// Query parameters the gateway reads; others are ignored.
#[derive(Debug, Default, serde::Deserialize)]
struct Params {
    format: Option<String>,
    #[serde(rename = "dag-scope")]
    dag_scope: Option<String>,
    #[serde(rename = "entity-bytes")]
    entity_bytes: Option<String>,
    #[serde(rename = "car-version")]
    car_version: Option<String>,
    #[serde(rename = "car-order")]
    car_order: Option<String>,
    #[serde(rename = "car-dups")]
    car_dups: Option<String>,
}

/// The response type a request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    /// No format: the UnixFS file's bytes.
    Plain,
    Raw,
    Car(CarParams),
}

/// CAR variant parameters as given (from `Accept`, then overridden by the query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CarParams {
    version: Option<String>,
    order: Option<String>,
    dups: Option<String>,
}

/// The blocks a CAR holds below its root, as asked (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Block,
    Entity,
    All,
    /// `entity-bytes=from:to`; `to` is `None` for `*`. Negative values count from the end.
    Bytes {
        from: i64,
        to: Option<i64>,
    },
}

/// `GET|HEAD /ipfs/{cid}` (and `/ipfs/{cid}/`).
async fn ipfs(
    State(st): State<AppState>,
    Path(cid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    let cid = parse_cid(&cid)?;
    serve(&st, cid, &uri, &headers).await
}

/// Serves `cid` in the format the request asks for.
async fn serve(st: &AppState, cid: Cid, uri: &Uri, headers: &HeaderMap) -> Result<Response> {
    let params = Query::<Params>::try_from_uri(uri)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("query: {e}")))?
        .0;
    let (format, from_accept) = negotiate(&params, headers)?;
    let fetch = st.node.as_ref().filter(|n| n.config().gateway_fetch);
    let req = Req {
        hub: &st.hub,
        fetch,
        cid,
        path: uri.path(),
        headers,
        content_location: from_accept.then(|| content_location(uri, &format)),
    };
    match format {
        Format::Plain => req.plain().await,
        Format::Raw => req.raw().await,
        Format::Car(c) => {
            let dups = car_dups(&c)?;
            let scope = scope(&params)?;
            req.car(dups, scope).await
        }
    }
}

const IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// `GET|HEAD /ipns/{name}`: the name's signed record (`?format=ipns-record` or that
/// `Accept`), or the content its record points to, in any format `/ipfs/` serves. This
/// hub's own name resolves from memory; other names through the DHT.
async fn ipns(
    State(st): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    let peer = crate::ipfs::ipns::parse_name(&name).map_err(|e| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("{name:?} is not an IPNS name (k51…, bafz… or 12D3Koo…): {e}"),
        )
    })?;
    let Some(node) = &st.node else {
        return Err(Error::new(
            StatusCode::NOT_FOUND,
            "this hub runs without its IPFS node, so it resolves no IPNS names",
        ));
    };
    let (record, v) = node
        .resolve_ipns(&peer)
        .await
        .map_err(|e| Error::new(StatusCode::NOT_FOUND, format!("/ipns/{name}: {e}")))?;
    // Cache no longer than the record's TTL or its remaining validity.
    let left = v
        .validity
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let max_age = v.ttl.min(left).as_secs();
    let params = Query::<Params>::try_from_uri(&uri)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("query: {e}")))?
        .0;
    let wants_record = match params.format.as_deref() {
        Some(f) => f == "ipns-record",
        None => headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains(IPNS_RECORD)),
    };
    if wants_record {
        let mut res = Response::new(Body::from(record));
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(IPNS_RECORD));
        h.insert(
            header::CONTENT_DISPOSITION,
            header_value(&format!("attachment; filename=\"{name}.ipns-record\"")),
        );
        h.insert(
            header::CACHE_CONTROL,
            header_value(&format!("public, max-age={max_age}")),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return Ok(res);
    }
    let value = String::from_utf8_lossy(&v.value).into_owned();
    let target = value
        .strip_prefix("/ipfs/")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| {
            Error::new(
                StatusCode::NOT_FOUND,
                format!("/ipns/{name} points to {value:?}, which this gateway does not follow"),
            )
        })?;
    let cid = parse_cid(target)?;
    let mut res = serve(&st, cid, &uri, &headers).await?;
    // Mutable: the name may point elsewhere after its TTL.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header_value(&format!("public, max-age={max_age}")),
    );
    Ok(res)
}

/// `GET|HEAD /ipfs/{cid}/{path}`: paths are not resolved (see the module notes).
async fn ipfs_path(Path((cid, _path)): Path<(String, String)>) -> Result<Response> {
    parse_cid(&cid)?;
    Err(Error::new(
        StatusCode::NOT_FOUND,
        "no such path: this gateway serves CIDs of blocks and files, which have no named children",
    ))
}

/// Parses a CID and checks that a block of this hub could have it (400 otherwise).
fn parse_cid(text: &str) -> Result<Cid> {
    let cid = Cid::try_from(text).map_err(|e| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("invalid CID {text:?}: {e}"),
        )
    })?;
    hub::block_key(&cid).map_err(|e| Error::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(cid)
}

/// The format asked for, and whether `Accept` (rather than `format`) chose it.
fn negotiate(params: &Params, headers: &HeaderMap) -> Result<(Format, bool)> {
    let accept = vendor_type(headers);
    let accept_car = accept
        .as_ref()
        .and_then(|(t, p)| (t == CAR_TYPE).then_some(p));
    let mut format = match params.format.as_deref().filter(|f| !f.is_empty()) {
        Some("raw") => (Format::Raw, false),
        Some("car") => (Format::Car(accept_car.cloned().unwrap_or_default()), false),
        Some(f) if NOT_PRODUCED.contains(&f) => {
            return Err(Error::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("format={f} is not served: this is a trustless gateway (raw and car only)"),
            ));
        }
        Some(f) => {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                format!("unknown format {f:?}: use format=raw or format=car"),
            ));
        }
        None => match accept {
            None => (Format::Plain, false),
            Some((t, _)) if t == RAW_TYPE => (Format::Raw, true),
            Some((t, p)) if t == CAR_TYPE => (Format::Car(p), true),
            Some((t, _)) => {
                return Err(Error::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "{t} is not served: this is a trustless gateway ({RAW_TYPE} and {CAR_TYPE} only)"
                    ),
                ));
            }
        },
    };
    if let Format::Car(c) = &mut format.0 {
        for (slot, value) in [
            (&mut c.version, &params.car_version),
            (&mut c.order, &params.car_order),
            (&mut c.dups, &params.car_dups),
        ] {
            if value.is_some() {
                slot.clone_from(value);
            }
        }
        if c.version.as_deref().is_some_and(|v| v != "1") {
            return Err(Error::new(
                StatusCode::NOT_ACCEPTABLE,
                "only CAR version=1 is served",
            ));
        }
        if c.order.as_deref().is_some_and(|o| o != "dfs" && o != "unk") {
            return Err(Error::new(
                StatusCode::NOT_ACCEPTABLE,
                "CAR order must be dfs or unk",
            ));
        }
    }
    Ok(format)
}

/// The first `application/vnd.ipld.*` or `application/vnd.ipfs.*` type in `Accept`, with its
/// parameters (CAR's `version`, `order`, `dups`).
fn vendor_type(headers: &HeaderMap) -> Option<(String, CarParams)> {
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let t = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if !(t.starts_with("application/vnd.ipld.") || t.starts_with("application/vnd.ipfs.")) {
                continue;
            }
            let mut p = CarParams::default();
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = Some(v.trim().trim_matches('"').to_owned());
                match k.trim().to_ascii_lowercase().as_str() {
                    "version" => p.version = v,
                    "order" => p.order = v,
                    "dups" => p.dups = v,
                    _ => {}
                }
            }
            return Some((t, p));
        }
    }
    None
}

/// Whether duplicate blocks are written (`dups=y`); `n` when not given.
fn car_dups(c: &CarParams) -> Result<bool> {
    match c.dups.as_deref() {
        None | Some("n") => Ok(false),
        Some("y") => Ok(true),
        Some(d) => Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!("CAR dups must be y or n, not {d:?}"),
        )),
    }
}

/// `dag-scope` and `entity-bytes`.
fn scope(params: &Params) -> Result<Scope> {
    let bad = |what: String| Error::new(StatusCode::BAD_REQUEST, what);
    let scope = match params.dag_scope.as_deref() {
        None | Some("all") => Scope::All,
        Some("entity") => Scope::Entity,
        Some("block") => Scope::Block,
        Some(s) => {
            return Err(bad(format!(
                "dag-scope must be block, entity or all, not {s:?}"
            )));
        }
    };
    let Some(range) = params.entity_bytes.as_deref() else {
        return Ok(scope);
    };
    let parsed = parse_entity_bytes(range).ok_or_else(|| {
        bad(format!(
            "entity-bytes must be from:to (integers, negative from the end, to may be *), not {range:?}"
        ))
    })?;
    Ok(if scope == Scope::Block {
        Scope::Block
    } else {
        parsed
    })
}

fn parse_entity_bytes(s: &str) -> Option<Scope> {
    let (from, to) = s.split_once(':')?;
    let int = |t: &str| -> Option<i64> {
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let from = int(from)?;
    let to = if to == "*" { None } else { Some(int(to)?) };
    if let Some(to) = to
        && from >= 0
        && to >= 0
        && from > to
    {
        return None;
    }
    Some(Scope::Bytes { from, to })
}

/// `{path}?{query&}format=…`, for an answer whose format `Accept` chose.
fn content_location(uri: &Uri, format: &Format) -> String {
    let f = match format {
        Format::Car(_) => "car",
        _ => "raw",
    };
    match uri.query().filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}&format={f}", uri.path()),
        None => format!("{}?format={f}", uri.path()),
    }
}

/// One gateway request being answered.
struct Req<'a> {
    hub: &'a Hub,
    /// The IPFS node when `[ipfs] gateway_fetch` lets the gateway fetch what it lacks.
    fetch: Option<&'a crate::ipfs::Node>,
    cid: Cid,
    /// The request path as sent (`X-Ipfs-Path`).
    path: &'a str,
    headers: &'a HeaderMap,
    content_location: Option<String>,
}

impl Req<'_> {
    /// The root block, or the 404 every absent or private block gets.
    async fn root(&self) -> Result<Bytes> {
        block(self.hub, self.fetch, &self.cid)
            .await?
            .ok_or_else(|| Error::new(StatusCode::NOT_FOUND, "block not found on this hub"))
    }

    /// Headers every `/ipfs/` answer carries, 304s included.
    fn common(&self, res: &mut Response, etag: &str) {
        let h = res.headers_mut();
        h.insert(header::ETAG, header_value(etag));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert("x-ipfs-path", header_value(self.path));
        h.insert("x-ipfs-roots", header_value(&self.cid.to_string()));
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
        if let Some(loc) = &self.content_location {
            h.insert(header::CONTENT_LOCATION, header_value(loc));
        }
    }

    fn not_modified(&self, etag: &str) -> Response {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        self.common(&mut res, etag);
        res
    }

    /// `?format=raw`: the block itself, with Range.
    async fn raw(&self) -> Result<Response> {
        let block = self.root().await?;
        let etag = format!("\"{}.raw\"", self.cid);
        if none_match(self.headers, &etag) {
            return Ok(self.not_modified(&etag));
        }
        let want = range::requested(self.headers, &etag, block.len() as u64);
        let mut res = range::answer(block.len() as u64, want, |s, e| {
            Body::from(block.slice(s as usize..e as usize + 1))
        });
        self.common(&mut res, &etag);
        let h = res.headers_mut();
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if res.status().is_success() {
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(RAW_TYPE));
            h.insert(
                header::CONTENT_DISPOSITION,
                header_value(&format!("attachment; filename=\"{}.bin\"", self.cid)),
            );
        }
        Ok(res)
    }

    /// No format: a UnixFS file's bytes (a raw block, or a dag-pb File tree), with Range.
    async fn plain(&self) -> Result<Response> {
        let block = self.root().await?;
        let etag = format!("\"{}\"", self.cid);
        let not_a_file = |what: &str| {
            Error::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "{} is {what}; this trustless gateway serves it only as ?format=raw or ?format=car",
                    self.cid
                ),
            )
        };
        let mut res = match self.cid.codec() {
            RAW => {
                if none_match(self.headers, &etag) {
                    return Ok(self.not_modified(&etag));
                }
                let want = range::requested(self.headers, &etag, block.len() as u64);
                range::answer(block.len() as u64, want, |s, e| {
                    Body::from(block.slice(s as usize..e as usize + 1))
                })
            }
            DAG_PB => {
                let Ok(BlockKey::Sha256(digest)) = hub::block_key(&self.cid) else {
                    return Err(not_a_file("an inline (identity) dag-pb node"));
                };
                let node = unixfs::decode_file_node(&block)
                    .map_err(|_| not_a_file("not a UnixFS file (a directory, perhaps)"))?;
                if none_match(self.headers, &etag) {
                    return Ok(self.not_modified(&etag));
                }
                let size = node.filesize;
                let want = range::requested(self.headers, &etag, size);
                let (hub, root) = (self.hub.clone(), self.cid);
                range::answer(size, want, move |s, e| {
                    Body::from_stream(hub.public_file_range(digest, &root, size, s, e))
                })
            }
            DAG_CBOR => return Err(not_a_file("a DAG-CBOR node")),
            _ => return Err(not_a_file("not a UnixFS file")),
        };
        self.common(&mut res, &etag);
        let success = res.status().is_success();
        let h = res.headers_mut();
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if success {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
        Ok(res)
    }

    /// `?format=car`: a CARv1 of the DAG under the CID, streamed block by block.
    async fn car(&self, dups: bool, scope: Scope) -> Result<Response> {
        let root = self.root().await?;
        let dups_text = if dups { "y" } else { "n" };
        let etag = car_etag(&self.cid, self.path, scope, dups_text);
        if none_match(self.headers, &etag) {
            return Ok(self.not_modified(&etag));
        }
        let walk_scope = match scope {
            Scope::Block => WalkScope::Block,
            Scope::Entity => WalkScope::Entity,
            Scope::All => WalkScope::All,
            Scope::Bytes { from, to } => match entity_size(&self.cid, &root) {
                Some(size) => WalkScope::Range(resolve_range(from, to, size)),
                None => WalkScope::Entity,
            },
        };
        let walk = Walk {
            hub: self.hub.clone(),
            fetch: self.fetch.cloned(),
            stack: vec![(self.cid, 0)],
            root: Some(root),
            seen: HashSet::new(),
            dups,
            scope: walk_scope,
            pending: None,
            done: false,
        };
        let head = Bytes::from(car::header(&[self.cid]));
        let blocks = futures_util::stream::try_unfold(walk, Walk::step);
        let stream = futures_util::stream::once(async move { Ok(head) }).chain(blocks);
        let mut res = Response::new(Body::from_stream(stream));
        self.common(&mut res, &etag);
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header_value(&format!(
                "{CAR_TYPE}; version=1; order=dfs; dups={dups_text}"
            )),
        );
        h.insert(
            header::CONTENT_DISPOSITION,
            header_value(&format!("attachment; filename=\"{}.car\"", self.cid)),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
        Ok(res)
    }
}

/// The weak CAR ETag: it varies with everything that changes the archive's bytes.
fn car_etag(cid: &Cid, path: &str, scope: Scope, dups: &str) -> String {
    let scope = match scope {
        Scope::Block => "block".to_owned(),
        Scope::Entity => "entity".to_owned(),
        Scope::All => "all".to_owned(),
        Scope::Bytes { from, to } => match to {
            Some(to) => format!("entity-bytes={from}:{to}"),
            None => format!("entity-bytes={from}:*"),
        },
    };
    let h = Sha256::digest(format!("{path}\n{scope}\norder=dfs\ndups={dups}").as_bytes());
    format!("W/\"{cid}.car.{}\"", hex::encode(&h[..8]))
}

/// The file size of a UnixFS file root (raw block or dag-pb File); `None` for anything else.
fn entity_size(cid: &Cid, block: &[u8]) -> Option<u64> {
    match cid.codec() {
        RAW => Some(block.len() as u64),
        DAG_PB => unixfs::decode_file_node(block).ok().map(|n| n.filesize),
        _ => None,
    }
}

/// `entity-bytes` against a file of `size` bytes: the inclusive byte range, or `None` when
/// nothing of the file is inside it.
fn resolve_range(from: i64, to: Option<i64>, size: u64) -> Option<(u64, u64)> {
    let size = i128::from(size);
    let from = i128::from(from);
    let from = if from < 0 { (size + from).max(0) } else { from };
    let to = match to {
        None => size - 1,
        Some(t) if t < 0 => size + i128::from(t),
        Some(t) => i128::from(t).min(size - 1),
    };
    if size == 0 || to < 0 || from > to || from >= size {
        return None;
    }
    Some((u64::try_from(from).ok()?, u64::try_from(to).ok()?))
}

/// Which children a CAR walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkScope {
    Block,
    Entity,
    All,
    /// `entity-bytes`, resolved: only children holding bytes of the range (none if `None`).
    Range(Option<(u64, u64)>),
}

/// The blocks after one block in the walk: children with their first file byte offset, or
/// `Unknown` when this gateway cannot read the block's links.
enum Next {
    Children(Vec<(Cid, u64)>),
    Unknown,
}

fn next(cid: &Cid, data: &[u8], offset: u64, scope: WalkScope) -> Next {
    if scope == WalkScope::Block {
        return Next::Children(Vec::new());
    }
    let node = match cid.codec() {
        RAW => return Next::Children(Vec::new()),
        DAG_PB => unixfs::decode_file_node(data).ok(),
        // A DAG-CBOR document alone for entity scopes (§3.5); its links in canonical order
        // for `all`.
        DAG_CBOR if scope != WalkScope::All => return Next::Children(Vec::new()),
        DAG_CBOR => {
            return match crate::dagcbor::decode(data) {
                Ok(v) => Next::Children(v.links().into_iter().map(|c| (c, 0)).collect()),
                Err(_) => Next::Unknown,
            };
        }
        _ => None,
    };
    let Some(node) = node else {
        // Not a UnixFS file (a directory, say): alone for entity scopes (§3.5); for `all`
        // its links are not read by this gateway.
        return if scope == WalkScope::All {
            Next::Unknown
        } else {
            Next::Children(Vec::new())
        };
    };
    let mut at = offset.saturating_add(node.inline.len() as u64);
    let mut out = Vec::with_capacity(node.links.len());
    for link in node.links {
        let (start, len) = (at, link.file_bytes);
        at = at.saturating_add(len);
        let keep = match scope {
            WalkScope::Range(None) => false,
            WalkScope::Range(Some((from, to))) => {
                len > 0 && start <= to && start.saturating_add(len - 1) >= from
            }
            _ => true,
        };
        if keep {
            out.push((link.cid, start));
        }
    }
    Next::Children(out)
}

/// A public block of this hub, or, when the gateway may fetch (`fetch` is set), a block this
/// hub does not hold as part of any repo, from the network (peers, the DHT, HTTP gateways;
/// verified). A block of a private object is never fetched around the privacy rule: it stays
/// a 404 like any private block.
async fn block(
    hub: &Hub,
    fetch: Option<&crate::ipfs::Node>,
    cid: &Cid,
) -> hub::Result<Option<Bytes>> {
    if let Some(b) = hub.public_block(cid).await? {
        return Ok(Some(b));
    }
    let Some(node) = fetch else {
        return Ok(None);
    };
    let Ok(BlockKey::Sha256(digest)) = hub::block_key(cid) else {
        return Ok(None);
    };
    if hub.is_object_block(digest).await? {
        return Ok(None);
    }
    match node.fetch_block(cid).await {
        Ok((b, _)) => Ok(Some(b)),
        Err(e) => {
            tracing::debug!(target: "musehub::web", %cid, error = %e, "gateway fetch failed");
            Ok(None)
        }
    }
}

/// A CAR being streamed: a depth-first pre-order walk, one block read at a time.
struct Walk {
    hub: Hub,
    fetch: Option<crate::ipfs::Node>,
    /// Blocks still to visit (popped from the end), with their first file byte offset.
    stack: Vec<(Cid, u64)>,
    /// The root block, read before answering (to give a 404 instead of an empty CAR).
    root: Option<Bytes>,
    /// Blocks written so far, when `dups=n`.
    seen: HashSet<Cid>,
    dups: bool,
    scope: WalkScope,
    /// A block's bytes, sent right after its section prefix.
    pending: Option<Bytes>,
    /// Set when the walk cannot go further.
    done: bool,
}

impl Walk {
    async fn step(mut self) -> std::io::Result<Option<(Bytes, Walk)>> {
        loop {
            if let Some(data) = self.pending.take() {
                return Ok(Some((data, self)));
            }
            if self.done {
                return Ok(None);
            }
            let Some((cid, offset)) = self.stack.pop() else {
                return Ok(None);
            };
            let seen = !self.dups && self.seen.contains(&cid);
            // A repeated block has the same subtree, already written; only a byte range may
            // need other parts of it (the same node at another offset).
            if seen && !matches!(self.scope, WalkScope::Range(_)) {
                continue;
            }
            let data = match self.root.take() {
                Some(data) => data,
                None => match block(&self.hub, self.fetch.as_ref(), &cid).await {
                    Ok(Some(data)) => data,
                    Ok(None) => {
                        tracing::debug!(target: "musehub::web", block = %cid, "CAR ends early: block not available");
                        return Ok(None);
                    }
                    Err(e) => {
                        tracing::error!(target: "musehub::web", block = %cid, error = %e, "CAR block read failed");
                        return Err(std::io::Error::other(e.to_string()));
                    }
                },
            };
            match next(&cid, &data, offset, self.scope) {
                Next::Children(children) => self.stack.extend(children.into_iter().rev()),
                Next::Unknown => {
                    tracing::debug!(target: "musehub::web", block = %cid, "CAR ends early: links of this block are not read by this gateway");
                    self.done = true;
                }
            }
            // Identity blocks are never written (their bytes are in the CID).
            if seen || matches!(hub::block_key(&cid), Ok(BlockKey::Identity(_))) {
                continue;
            }
            if !self.dups {
                self.seen.insert(cid);
            }
            let prefix = Bytes::from(car::section_prefix(&cid, data.len()));
            self.pending = Some(data);
            return Ok(Some((prefix, self)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        h
    }

    fn params(q: &str) -> Params {
        let uri: Uri = format!("/ipfs/x?{q}").parse().unwrap();
        Query::<Params>::try_from_uri(&uri).unwrap().0
    }

    fn status(r: Result<(Format, bool)>) -> StatusCode {
        match r {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status,
        }
    }

    #[test]
    fn format_beats_accept_and_accept_takes_the_first_vendor_type() {
        let none = HeaderMap::new();
        assert_eq!(
            negotiate(&params(""), &none).unwrap(),
            (Format::Plain, false)
        );
        assert_eq!(
            negotiate(&params("format=raw"), &headers(CAR_TYPE)).unwrap(),
            (Format::Raw, false)
        );
        assert_eq!(
            negotiate(
                &params(""),
                &headers("text/html, application/vnd.ipld.raw;q=0.1, application/vnd.ipld.car")
            )
            .unwrap(),
            (Format::Raw, true)
        );
        let (f, via) = negotiate(
            &params("car-dups=y"),
            &headers("application/vnd.ipld.car; version=1; order=dfs; dups=n"),
        )
        .unwrap();
        assert!(via);
        let Format::Car(c) = f else { panic!("{f:?}") };
        assert_eq!(c.dups.as_deref(), Some("y"), "the query overrides Accept");
        assert_eq!(c.order.as_deref(), Some("dfs"));
    }

    #[test]
    fn refusals() {
        let none = HeaderMap::new();
        assert_eq!(
            status(negotiate(&params("format=dag-json"), &none)),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            status(negotiate(&params("format=zip"), &none)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(negotiate(
                &params(""),
                &headers("application/vnd.ipld.dag-json")
            )),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            status(negotiate(&params("format=car&car-version=2"), &none)),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            status(negotiate(
                &params(""),
                &headers("application/vnd.ipld.car; order=bfs")
            )),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            status(negotiate(&params("format=car&car-order=unk"), &none)),
            StatusCode::OK
        );
        assert!(
            car_dups(&CarParams {
                dups: Some("maybe".into()),
                ..CarParams::default()
            })
            .is_err()
        );
        assert!(scope(&params("dag-scope=everything")).is_err());
    }

    #[test]
    fn entity_bytes_syntax_and_resolution() {
        assert_eq!(
            parse_entity_bytes("0:*"),
            Some(Scope::Bytes { from: 0, to: None })
        );
        assert_eq!(
            parse_entity_bytes("-1024:*"),
            Some(Scope::Bytes {
                from: -1024,
                to: None
            })
        );
        assert_eq!(
            parse_entity_bytes("499:-1000"),
            Some(Scope::Bytes {
                from: 499,
                to: Some(-1000)
            })
        );
        for bad in [
            "", "1", "a:b", "1:", ":2", "5:4", "+1:2", "1:*x", "--1:*", "1:2:3",
        ] {
            assert_eq!(parse_entity_bytes(bad), None, "{bad}");
        }
        const M: u64 = 1_048_576;
        assert_eq!(resolve_range(0, None, 3 * M), Some((0, 3 * M - 1)));
        assert_eq!(resolve_range(-1, None, 3 * M), Some((3 * M - 1, 3 * M - 1)));
        assert_eq!(
            resolve_range(-9 * M as i64, Some(-1), 3 * M),
            Some((0, 3 * M - 1)),
            "-1 is the last byte, as in from"
        );
        assert_eq!(resolve_range(5, Some(99 * M as i64), 10), Some((5, 9)));
        assert_eq!(resolve_range(10, None, 10), None, "starts past the end");
        assert_eq!(
            resolve_range(0, Some(-11), 10),
            None,
            "ends before the start"
        );
        assert_eq!(resolve_range(8, Some(-5), 10), None, "crossed");
        assert_eq!(resolve_range(0, None, 0), None, "empty file");
        // dag-scope=block wins over entity-bytes.
        assert_eq!(
            scope(&params("dag-scope=block&entity-bytes=0:*")).unwrap(),
            Scope::Block
        );
    }

    #[test]
    fn car_etags_vary_with_scope_range_and_dups() {
        let cid = crate::cids::Id::of(b"x").raw_cid();
        let p = "/ipfs/x";
        let all = car_etag(&cid, p, Scope::All, "n");
        assert!(all.starts_with("W/\"") && all.ends_with('"'), "{all}");
        let others = [
            car_etag(&cid, p, Scope::Block, "n"),
            car_etag(&cid, p, Scope::Entity, "n"),
            car_etag(&cid, p, Scope::All, "y"),
            car_etag(&cid, p, Scope::Bytes { from: 0, to: None }, "n"),
            car_etag(
                &cid,
                p,
                Scope::Bytes {
                    from: 0,
                    to: Some(9),
                },
                "n",
            ),
        ];
        let mut set: HashSet<&String> = others.iter().collect();
        set.insert(&all);
        assert_eq!(set.len(), 6);
    }
}
