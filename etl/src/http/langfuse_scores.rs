//! Langfuse's score reads and deletes as its SDKs call them (`langfuse.api.scores`):
//! `GET /api/public/v3/scores`, `GET` and `DELETE /api/public/scores/{scoreId}`. Scores are
//! written through the edge (`POST /api/public/scores`, the ingestion batch).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::analytics::scores::{self, LangfuseScores, ScoresV3Params};
use crate::control::deletions::{self, DeletionTarget};
use crate::http::auth::{KeyProject, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::server::AppState;

/// The `{scoreId}` of a score's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct ScorePath {
    /// The score's id.
    score_id: String,
}

#[utoipa::path(
    get,
    path = "/api/public/v3/scores",
    operation_id = "langfuse_scores_v3",
    summary = "Langfuse: list scores (v3)",
    description = "Langfuse-compatible (`langfuse.api.scores.get_many`): newest first, `{data, meta: {limit, cursor}}`, `value` typed by `dataType`; `fields` adds `details` (comment, configId, metadata), `subject`, `annotation` (authorUserId, queueId). Lists are comma-separated. `sessionId` and `experimentId` are a 400: AgentTrace keeps scores of traces and observations. A project API key with `read` scope (Basic auth).",
    security(("apiKey" = ["read"])),
    params(ScoresV3Params),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseScores),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn scores_v3(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(params): Query<ScoresV3Params>,
) -> Result<Json<LangfuseScores>, ApiError> {
    let project = project.id;
    Ok(Json(
        scores::scores_v3(&state.reader.for_project(project), project, &params).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/public/scores/{scoreId}",
    operation_id = "langfuse_get_score",
    summary = "Langfuse: get a score",
    description = "A score in Langfuse's v3 shape with every field group. A project API key with `read` scope (Basic auth).",
    security(("apiKey" = ["read"])),
    params(ScorePath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Object),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_score(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(ScorePath { score_id }): Path<ScorePath>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    scores::score_v3(&state.reader.for_project(project), project, &score_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no score {score_id:?} in this project")))
}

#[utoipa::path(
    delete,
    path = "/api/public/scores/{scoreId}",
    operation_id = "langfuse_delete_score",
    summary = "Langfuse: delete a score",
    description = "Langfuse-compatible (`langfuse.api.scores.delete`): starts a deletion job for the score (`GET /v1/projects/{project}/deletions` shows it), gone from reads within seconds; a score sent again with the same id after that is refused. A project API key with `manage` scope (Basic auth).",
    security(("apiKey" = ["manage"])),
    params(ScorePath),
    responses(
        (status = 204, description = "The deletion is recorded"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "The project has 20 deletions waiting or running; retry when they finish", body = ErrorBody),
    ),
)]
pub async fn delete_score(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(ScorePath { score_id }): Path<ScorePath>,
) -> Result<StatusCode, ApiError> {
    let (project, public_key) = (project.id, project.public_key);
    if scores::score_v3(&state.reader.for_project(project), project, &score_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "no score {score_id:?} in this project"
        )));
    }
    // A deletion job: verifiable (`GET /v1/projects/{project}/deletions`), waited for on every
    // replica, and the score's id in the ledger, so that the score sent again stays deleted.
    let client = state.postgres.get().await?;
    deletions::create(
        &**client,
        project,
        &DeletionTarget::Scores(vec![score_id]),
        false,
        &format!("key:{public_key}"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
