//! A project's score configs: `/v1/projects/{project}/score-configs` and Langfuse's
//! `/api/public/score-configs`, one shape (Langfuse's) for both.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use uuid::Uuid;

use crate::control::score_configs::{self, NewScoreConfig, ScoreConfigChange, ScoreConfigRecord};
use crate::http::auth::{KeyProject, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, paged};
use crate::http::server::AppState;

/// The `{id}` of a config's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConfigPath {
    /// The config's id.
    id: Uuid,
}

async fn list(
    state: &AppState,
    project: Uuid,
    page: &Page,
) -> Result<Json<Paged<ScoreConfigRecord>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = score_configs::list(&**client, project, page, limit).await?;
    Ok(paged(found, page, limit, total))
}

async fn create(state: &AppState, project: Uuid, bytes: &[u8]) -> Result<Json<ScoreConfigRecord>, ApiError> {
    let request: NewScoreConfig = json_body(bytes)?;
    let client = state.postgres.get().await?;
    Ok(Json(score_configs::create(&**client, project, request).await?))
}

async fn get(state: &AppState, project: Uuid, id: Uuid) -> Result<Json<ScoreConfigRecord>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(score_configs::get(&**client, project, id).await?))
}

async fn update(
    state: &AppState,
    project: Uuid,
    id: Uuid,
    bytes: &[u8],
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    let change: ScoreConfigChange = json_body(bytes)?;
    let client = state.postgres.get().await?;
    Ok(Json(score_configs::update(&**client, project, id, change).await?))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/score-configs",
    summary = "List score configs",
    description = "Newest first. Paged: `page` (from 1), `limit` (default 50, at most 1000); `{data, meta: {page, limit, totalItems, totalPages}}`. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<ScoreConfigRecord>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_score_configs(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<ScoreConfigRecord>>, ApiError> {
    list(&state, project.id, &page).await
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/score-configs",
    summary = "Create a score config",
    description = "`NUMERIC` (optional `minValue`, `maxValue`), `BOOLEAN` (categories fixed: True = 1, False = 0), `CATEGORICAL` (`categories` `[{value, label}]`, unique) or `TEXT`. Scores sent with its id as `configId` must fit it. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewScoreConfig,
    responses(
        (status = 200, description = "OK", body = ScoreConfigRecord),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_score_config(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    create(&state, project.id, &bytes).await
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/score-configs/{id}",
    summary = "Get a score config",
    description = "Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ConfigPath),
    responses(
        (status = 200, description = "OK", body = ScoreConfigRecord),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_score_config(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(ConfigPath { id }): Path<ConfigPath>,
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    get(&state, project.id, id).await
}

#[utoipa::path(
    patch,
    path = "/v1/projects/{project}/score-configs/{id}",
    summary = "Change or archive a score config",
    description = "The fields given replace the stored ones; the data type stays. `isArchived: true` archives it (scores naming it are refused), `false` brings it back. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ConfigPath),
    request_body = ScoreConfigChange,
    responses(
        (status = 200, description = "OK", body = ScoreConfigRecord),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn update_score_config(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(ConfigPath { id }): Path<ConfigPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    update(&state, project.id, id, &bytes).await
}

/// The `{configId}` of Langfuse's config route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseConfigPath {
    /// The config's id.
    config_id: Uuid,
}

#[utoipa::path(
    get,
    path = "/api/public/score-configs",
    operation_id = "langfuse_list_score_configs",
    summary = "List score configs",
    description = "Langfuse-compatible (`langfuse.api.score_configs.get`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(Page),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<ScoreConfigRecord>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_score_configs(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<ScoreConfigRecord>>, ApiError> {
    list(&state, project.id, &page).await
}

#[utoipa::path(
    post,
    path = "/api/public/score-configs",
    operation_id = "langfuse_create_score_config",
    summary = "Create a score config",
    description = "Langfuse-compatible (`langfuse.api.score_configs.create`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = NewScoreConfig,
    responses(
        (status = 200, description = "Langfuse's shape", body = ScoreConfigRecord),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_score_config(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    create(&state, project.id, &bytes).await
}

#[utoipa::path(
    get,
    path = "/api/public/score-configs/{configId}",
    operation_id = "langfuse_get_score_config",
    summary = "Get a score config",
    description = "Langfuse-compatible (`langfuse.api.score_configs.get_by_id`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(LangfuseConfigPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = ScoreConfigRecord),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_score_config(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(LangfuseConfigPath { config_id }): Path<LangfuseConfigPath>,
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    get(&state, project.id, config_id).await
}

#[utoipa::path(
    patch,
    path = "/api/public/score-configs/{configId}",
    operation_id = "langfuse_update_score_config",
    summary = "Change or archive a score config",
    description = "Langfuse-compatible (`langfuse.api.score_configs.update`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(LangfuseConfigPath),
    request_body = ScoreConfigChange,
    responses(
        (status = 200, description = "Langfuse's shape", body = ScoreConfigRecord),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_update_score_config(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(LangfuseConfigPath { config_id }): Path<LangfuseConfigPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<ScoreConfigRecord>, ApiError> {
    update(&state, project.id, config_id, &bytes).await
}
