//! What the pipeline did for a project: the scheduled jobs' runs and the dead letters.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::analytics::answers::CursorPage;
use crate::analytics::dead_letters::DeadLetter;
use crate::analytics::dead_letters::dead_letter_list;
use crate::control::job_runs::{self, JobRun};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::bad;
use crate::http::server::AppState;

/// `?job=&limit=` of the job runs.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobRunQuery {
    /// Only this job's runs.
    job: Option<String>,
    /// 1 to 1000, 50 by default.
    limit: Option<i64>,
}

/// `?limit=&cursor=` of the dead letters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// 1 to 1000, 50 by default.
    limit: Option<usize>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The scheduled jobs' newest runs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobRuns {
    data: Vec<JobRun>,
}

/// The scheduled jobs' newest runs. Jobs run for every project at once, so each project's
/// readers see the same runs; a run's error names the job's failure, not another project's rows.
#[utoipa::path(
    get,
    path = "/v1/projects/{project}/job-runs",
    summary = "List job runs",
    description = "`{data}`: the scheduled jobs' newest runs (evaluate, judge, judge_calibration, annotation_rules, experiment_rollups, retention, daily_costs, evaluators' own schedules) with status, rows and error: this project's own evaluators' runs whole, and the platform-wide runs (every project's unscheduled evaluators, rollups, retention) with only what went wrong for this project — never another project's evaluator names or errors. Viewer role, or `read` scope.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), JobRunQuery),
    responses(
        (status = 200, description = "OK", body = JobRuns),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_job_runs(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<JobRunQuery>,
) -> Result<Json<JobRuns>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit", "must be between 1 and 1000"));
    }
    let client = state.postgres.get().await?;
    let runs = job_runs::recent(&**client, project.id, query.job.as_deref(), limit).await?;
    Ok(Json(JobRuns { data: runs }))
}

/// The project's dead letters, newest first, by cursor.
#[utoipa::path(
    get,
    path = "/v1/projects/{project}/dead-letters",
    summary = "List dead letters",
    description = "`{data, next_cursor}`: events the ETL refused, newest first, each with its batch, position, reason and the raw JSON as received. Viewer role, or `read` scope.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DeadLetterQuery),
    responses(
        (status = 200, description = "OK", body = CursorPage<DeadLetter>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<CursorPage<DeadLetter>>, ApiError> {
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
