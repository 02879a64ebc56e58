//! The read API: what an agent's runs look like, for people and tools (`read` scope on a project
//! key, or the viewer role for a signed-in user, who names the project with `?project_id=`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::analytics::metrics::{self, MetricsParams, MetricsQuery};
use crate::analytics::observations::{self, ObservationFilter};
use crate::analytics::scores::{self, ScoreFilter};
use crate::analytics::traces::{self, SessionFilter, TraceFilter};
use crate::http::auth::{Caller, Need};
use crate::http::error::ApiError;
use crate::http::request::bad;
use crate::http::server::AppState;

#[derive(Deserialize)]
pub struct ProjectChoice {
    project_id: Option<Uuid>,
}

/// The project a read acts on: a project key's own, else the one named, once the caller may read it.
async fn reading_project(state: &AppState, caller: &Caller, chosen: Option<Uuid>) -> Result<Uuid, ApiError> {
    let project = match (caller, chosen) {
        (Caller::Key(key), _) => key.project_id,
        (_, Some(project)) => project,
        (_, None) => {
            return Err(bad(
                "project_id",
                "required: the project to read (a project key implies it)",
            ));
        }
    };
    caller.require(state, project, Need::Read).await?;
    Ok(project)
}

/// `GET /v1/traces/{id}`: the trace, its observation tree, scores, file operations, terminal
/// commands and git links.
pub async fn trace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(choice): Query<ProjectChoice>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, choice.project_id).await?;
    traces::trace_detail(&state.clickhouse, project, &id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no trace {id:?} in this project"),
            )
        })
}

/// `GET /v1/traces`: a page of the project's traces, newest first, with `next_cursor`.
pub async fn trace_list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(filter): Query<TraceFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, filter.project_id).await?;
    Ok(Json(
        traces::trace_list(&state.clickhouse, project, &filter).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    project_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/sessions/{id}`: the session's traces oldest first, each with its summary.
pub async fn session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<SessionQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, query.project_id).await?;
    traces::session_detail(&state.clickhouse, project, &id, query.cursor, query.limit)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no session {id:?} in this project"),
            )
        })
}

/// `GET /v1/sessions`: the project's sessions, most recently active first, with `next_cursor`.
pub async fn session_list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(filter): Query<SessionFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, filter.project_id).await?;
    Ok(Json(
        traces::session_list(&state.clickhouse, project, &filter).await?,
    ))
}

/// `GET /v1/observations`: the project's observations newest first, with `next_cursor`.
pub async fn observation_list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(filter): Query<ObservationFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, filter.project_id).await?;
    Ok(Json(
        observations::observation_list(&state.clickhouse, project, &filter).await?,
    ))
}

/// `GET /v1/scores`: the project's scores newest first, with `next_cursor`.
pub async fn score_list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(filter): Query<ScoreFilter>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, filter.project_id).await?;
    Ok(Json(
        scores::score_list(&state.clickhouse, project, &filter).await?,
    ))
}

/// `GET /v1/metrics`: measures by time bucket and up to two dimensions.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<MetricsParams>,
) -> Result<Json<Value>, ApiError> {
    let project = reading_project(&state, &caller, params.project_id).await?;
    let query = MetricsQuery::from_params(&params)?;
    Ok(Json(metrics::metrics(&state.clickhouse, project, &query).await?))
}
