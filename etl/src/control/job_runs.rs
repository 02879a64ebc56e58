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

/// The newest `limit` runs, of one job when `job` is given.
pub async fn recent(
    client: &impl GenericClient,
    job: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRun>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM job_runs WHERE $1::text IS NULL OR job = $1
                 ORDER BY started_at DESC, id DESC LIMIT $2",
                JobRun::COLUMNS
            ),
            &[&job, &limit],
        )
        .await?;
    Ok(rows.iter().map(JobRun::from_row).collect())
}
