//! The scheduled jobs' run records (written by `agenttrace-jobs`' run recorder), newest first,
//! for people watching evaluations, rollups and retention.

use serde::Serialize;
use tokio_postgres::{GenericClient, Row};

use crate::control::{ControlError, Precision, optional_time, time};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRun {
    pub id: i64,
    pub job: String,
    pub started_at: String,
    #[schema(required = true)]
    pub finished_at: Option<String>,
    pub status: String,
    pub rows_in: i64,
    pub rows_out: i64,
    #[schema(required = true)]
    pub error: Option<String>,
}

impl JobRun {
    /// What [`JobRun::from_row`] reads, selected from `job_runs`.
    pub const COLUMNS: &'static str = "id, job, started_at, finished_at, status, rows_in, rows_out, error";

    pub fn from_row(row: &Row) -> Self {
        JobRun {
            id: row.get("id"),
            job: row.get("job"),
            started_at: time(row, "started_at", Precision::Millis),
            finished_at: optional_time(row, "finished_at", Precision::Millis),
            status: row.get("status"),
            rows_in: row.get("rows_in"),
            rows_out: row.get("rows_out"),
            error: row.get("error"),
        }
    }
}

/// What a project reads of a platform-wide run that failed: its own problems, if any, and
/// otherwise only that it failed (the error may name other projects).
const PLATFORM_FAILURE: &str =
    "the run failed for reasons outside this project; the operators have the details";

/// The newest `limit` runs `project` may read, of one job when `job` is given: its own
/// evaluators' runs, and the platform-wide runs with only what went wrong for this project.
pub async fn recent(
    client: &impl GenericClient,
    project: uuid::Uuid,
    job: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRun>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, project_id,
                        (SELECT string_agg(message, '; ' ORDER BY message) FROM job_run_problems p
                          WHERE p.run_id = job_runs.id AND p.project_id = $1) AS own_problems
                 FROM job_runs
                 WHERE (project_id = $1 OR project_id IS NULL) AND ($2::text IS NULL OR job = $2)
                 ORDER BY started_at DESC, id DESC LIMIT $3",
                JobRun::COLUMNS
            ),
            &[&project, &job, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut run = JobRun::from_row(row);
            let own: Option<uuid::Uuid> = row.get("project_id");
            if own.is_none() {
                let problems: Option<String> = row.get("own_problems");
                run.error = problems.or_else(|| run.error.as_ref().map(|_| PLATFORM_FAILURE.to_owned()));
            }
            run
        })
        .collect())
}
