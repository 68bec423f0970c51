//! `GET /{owner}/{slug}/commits/{ref}/car`: a commit's DAG as a streamed CARv1 (root = the
//! commit CID). `?history=full` adds every ancestor; `?have=<commit id>` (repeatable) leaves
//! out what the client already holds. The UI's commit list route hands requests ending in
//! `/car` here.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::{AppState, Error, Result, caller};
use crate::cids::Id;

/// Most `have` ids one request may carry.
const MAX_HAVES: usize = 1024;

pub async fn export(
    st: AppState,
    headers: HeaderMap,
    owner: String,
    slug: String,
    rev: String,
    query: Option<String>,
) -> Result<Response> {
    let mut who = caller(&st.hub, &headers).await?;
    if who.is_none() {
        // A browser signed in to the UI downloads its own private repos too.
        who = super::ui::session::viewer(&st, &headers).await.0;
    }
    let repo = st.hub.repo_for_read(&owner, &slug, &who).await?;
    let mut history = false;
    let mut haves = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("history", "full") => history = true,
            ("history", "none" | "") => history = false,
            ("history", other) => {
                return Err(Error::new(
                    StatusCode::BAD_REQUEST,
                    format!("history must be \"full\" or \"none\", not {other:?}"),
                ));
            }
            ("have", id) => {
                if haves.len() >= MAX_HAVES {
                    return Err(Error::new(
                        StatusCode::BAD_REQUEST,
                        format!("at most {MAX_HAVES} have ids"),
                    ));
                }
                haves.push(Id::parse(id).map_err(|e| {
                    Error::new(StatusCode::BAD_REQUEST, format!("have {id:?}: {e}"))
                })?);
            }
            _ => {}
        }
    }
    let commit = st.hub.resolve_commit(&repo, &rev).await?;
    let plan = st.hub.plan_car(&repo, commit, history, haves).await?;
    let (len, root) = (plan.byte_len(), plan.root());
    let name = format!(
        "{}-{}-{}.car",
        repo.owner,
        repo.slug,
        &commit.to_hex()[..12]
    );
    let mut res = Response::new(Body::from_stream(st.hub.car_stream(plan)));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.car; version=1"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&root.to_string()) {
        h.insert("x-ipfs-roots", v);
    }
    if let Ok(v) = HeaderValue::from_str(&commit.to_hex()) {
        h.insert("x-muse-commit", v);
    }
    Ok(res)
}
