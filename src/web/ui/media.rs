//! Object bytes for the browser: raw downloads and audio with HTTP Range, and the MIDI piano
//! roll as server-rendered SVG. (Being written.)

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::PageError;
use crate::web::AppState;

pub async fn raw(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    Err(PageError::not_found("This page is not available yet."))
}
pub async fn pianoroll(
    State(_st): State<AppState>,
    _h: HeaderMap,
    Path(_p): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    Err(PageError::not_found("This page is not available yet."))
}
