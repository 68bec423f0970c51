//! Signing in without passwords (one-time links), sessions, CSRF and the owner's forms.
//! (Being written: until then nobody is signed in and the forms answer 404.)

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::PageError;
use crate::db::users::User;
use crate::web::AppState;

/// The signed-in user of a request and the CSRF token for its forms.
pub async fn viewer(_st: &AppState, _headers: &HeaderMap) -> (Option<User>, String) {
    (None, String::new())
}

fn todo_page() -> Result<Response, PageError> {
    Err(PageError::not_found("Signing in is not available yet."))
}

pub async fn login_form(
    State(_st): State<AppState>,
    Path(_token): Path<String>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn login(
    State(_st): State<AppState>,
    Path(_token): Path<String>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn logout(State(_st): State<AppState>) -> Result<Response, PageError> {
    todo_page()
}
pub async fn settings(State(_st): State<AppState>) -> Result<Response, PageError> {
    todo_page()
}
pub async fn create_repo(State(_st): State<AppState>) -> Result<Response, PageError> {
    todo_page()
}
pub async fn create_token(State(_st): State<AppState>) -> Result<Response, PageError> {
    todo_page()
}
pub async fn revoke_token(
    State(_st): State<AppState>,
    Path(_id): Path<i64>,
) -> Result<Response, PageError> {
    todo_page()
}
pub async fn set_visibility(
    State(_st): State<AppState>,
    Path(_p): Path<(String, String)>,
) -> Result<Response, PageError> {
    todo_page()
}
