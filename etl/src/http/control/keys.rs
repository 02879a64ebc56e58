//! A project's API keys (`/v1/projects/{project}/keys`): administrators only. A secret is shown
//! once, when its key is created.

use std::sync::Arc;

use agenttrace_schemas::Scope;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::api_keys::{self, KeyListing};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    scopes: Vec<Scope>,
    note: Option<String>,
}

/// A key just created, with its secret (shown only now).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    project_id: Uuid,
    public_key: String,
    secret_key: String,
    /// "the secret key is shown only now".
    note: &'static str,
}

/// The `{public_key}` of a key's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    public_key: String,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/keys",
    summary = "List the project's API keys",
    description = "Paged like datasets. Never their secrets. Admin role, or a key with `admin`. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<KeyListing>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<KeyListing>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(api_keys::list_keys(&**client, project.id).await?, &page)
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/keys",
    summary = "Create an API key",
    description = "`{scopes, note}`; the secret is shown once. Admin role, or `admin` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewKey,
    responses(
        (status = 201, description = "OK", body = CreatedKey),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let request: NewKey = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let key = api_keys::create_key(&**client, project.id, &request.scopes, request.note.as_deref()).await?;
    let body = CreatedKey {
        project_id: key.project_id,
        public_key: key.public_key,
        secret_key: key.secret_key,
        note: "the secret key is shown only now",
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/keys/{public_key}",
    summary = "Revoke an API key",
    description = "Admin role, or `admin` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), KeyPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    Path(KeyPath { public_key }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    api_keys::revoke_project_key(&**client, project.id, &public_key).await?;
    Ok(StatusCode::NO_CONTENT)
}
