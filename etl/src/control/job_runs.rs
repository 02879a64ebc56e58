//! The scheduled jobs' run records (written by `agenttrace-jobs`' run recorder), newest first,
//! for people watching evaluations, rollups and retention.

use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::control::ControlError;

const TIME: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

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

/// The newest `limit` runs, of one job when `job` is given.
pub async fn recent(
    client: &impl GenericClient,
    job: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRun>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT id, job, to_char(started_at AT TIME ZONE 'UTC', {TIME}),
                        to_char(finished_at AT TIME ZONE 'UTC', {TIME}), status, rows_in, rows_out, error
                 FROM job_runs WHERE $1::text IS NULL OR job = $1
                 ORDER BY started_at DESC, id DESC LIMIT $2"
            ),
            &[&job, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| JobRun {
            id: row.get(0),
            job: row.get(1),
            started_at: row.get(2),
            finished_at: row.get(3),
            status: row.get(4),
            rows_in: row.get(5),
            rows_out: row.get(6),
            error: row.get(7),
        })
        .collect())
}
