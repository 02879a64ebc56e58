//! A project's API keys (`/v1/projects/{project}/keys`): administrators only. A secret is shown
//! once, when its key is created.

use std::sync::Arc;

use agenttrace_schemas::Scope;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::api_keys;
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::request::{Page, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    scopes: Vec<Scope>,
    note: Option<String>,
}

/// The `{public_key}` of a key's route.
#[derive(Deserialize)]
pub struct KeyPath {
    public_key: String,
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    let keys: Vec<Value> = api_keys::list_keys(&**client, project.id)
        .await?
        .into_iter()
        .map(|k| {
            json!({"public_key": k.public_key, "secret_hint": k.secret_hint, "scopes": k.scopes,
                   "note": k.note, "revoked": k.revoked})
        })
        .collect();
    page_of(keys, &page)
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: NewKey = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let key = api_keys::create_key(&**client, project.id, &request.scopes, request.note.as_deref()).await?;
    let body = json!({"project_id": key.project_id, "public_key": key.public_key, "secret_key": key.secret_key,
                      "note": "the secret key is shown only now"});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    Path(KeyPath { public_key }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    api_keys::revoke_project_key(&**client, project.id, &public_key).await?;
    Ok(StatusCode::NO_CONTENT)
}
