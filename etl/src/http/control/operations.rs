//! What the pipeline did for a project: the scheduled jobs' runs and the dead letters.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::analytics::dead_letters::dead_letter_list;
use crate::control::job_runs;
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::request::bad;
use crate::http::server::AppState;

/// `?job=&limit=` of the job runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRunQuery {
    job: Option<String>,
    limit: Option<i64>,
}

/// `?limit=&cursor=` of the dead letters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The scheduled jobs' newest runs. Jobs run for every project at once, so each project's
/// readers see the same runs; a run's error names the job's failure, not another project's rows.
pub async fn list_job_runs(
    State(state): State<Arc<AppState>>,
    _project: ProjectAccess<need::Read>,
    Query(query): Query<JobRunQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit", "must be between 1 and 1000"));
    }
    let client = state.postgres.get().await?;
    let runs = job_runs::recent(&**client, query.job.as_deref(), limit).await?;
    Ok(Json(json!({ "data": runs })))
}

/// The project's dead letters, newest first, by cursor.
pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        dead_letter_list(
            &state.clickhouse,
            project.id,
            query.limit,
            query.cursor.as_deref(),
        )
        .await?,
    ))
}
