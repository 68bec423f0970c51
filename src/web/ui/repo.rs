//! Repository pages: home (files, README, clone instructions), branches, commits, a commit,
//! tree and blob views, releases. (Being written.)

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::PageError;
use crate::web::AppState;

fn todo_page() -> Result<Response, PageError> {
    Err(PageError::not_found("This page is not available yet."))
}

pub async fn home(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn branches(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn commits(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn commit(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn tree(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn blob(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn release(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
/// `GET /{owner}/{slug}/releases` from a browser (the CLI gets msgpack at the same URL).
pub async fn releases(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
