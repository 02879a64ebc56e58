//! The read API: what an agent's runs look like, for people and tools (`read` scope on a project
//! key, or the viewer role for a signed-in user, who names the project with `?project_id=`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::analytics::metrics::{self, MetricsParams, MetricsQuery};
use crate::analytics::observations::{self, ObservationFilter};
use crate::analytics::scores::{self, ScoreFilter};
use crate::analytics::traces::{self, SessionFilter, TraceFilter};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::server::AppState;

/// `GET /v1/traces/{id}`: the trace, its observation tree, scores, file operations, terminal
/// commands and git links.
pub async fn trace(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    traces::trace_detail(&state.clickhouse, project, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no trace {id:?} in this project")))
}

/// `GET /v1/traces`: a page of the project's traces, newest first, with `next_cursor`.
pub async fn trace_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<TraceFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    Ok(Json(
        traces::trace_list(&state.clickhouse, project, &filter).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Read by [`ProjectAccess`]; named so that it is not refused as unknown.
    #[serde(rename = "project_id")]
    _project_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/sessions/{id}`: the session's traces oldest first, each with its summary.
pub async fn session(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(id): Path<String>,
    Query(query): Query<SessionQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    traces::session_detail(&state.clickhouse, project, &id, query.cursor, query.limit)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no session {id:?} in this project")))
}

/// `GET /v1/sessions`: the project's sessions, most recently active first, with `next_cursor`.
pub async fn session_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<SessionFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    Ok(Json(
        traces::session_list(&state.clickhouse, project, &filter).await?,
    ))
}

/// `GET /v1/observations`: the project's observations newest first, with `next_cursor`.
pub async fn observation_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<ObservationFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    Ok(Json(
        observations::observation_list(&state.clickhouse, project, &filter).await?,
    ))
}

/// `GET /v1/scores`: the project's scores newest first, with `next_cursor`.
pub async fn score_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<ScoreFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    Ok(Json(
        scores::score_list(&state.clickhouse, project, &filter).await?,
    ))
}

/// `GET /v1/metrics`: measures by time bucket and up to two dimensions.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    let query = MetricsQuery::from_params(&params)?;
    Ok(Json(metrics::metrics(&state.clickhouse, project, &query).await?))
}
