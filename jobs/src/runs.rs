//! Job runs in PostgreSQL (`job_runs`, `job_watermarks`).
//!
//! A run holds a session-level advisory lock named after its job, so several schedulers (or a
//! manual `jobs run` next to a scheduler) never run the same job at once. A run is recorded as
//! `running` when it starts and `succeeded` or `failed` when it ends. Only success moves the
//! job's watermark: a failed run leaves it where it was, so the next run retries the same window.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Row};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// The advisory lock key for a job: the first 8 bytes of SHA-256 of its name.
pub fn lock_key(job: &str) -> i64 {
    let digest = Sha256::digest(job.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A job run that holds its job's lock. End it with [`JobRun::succeed`] or [`JobRun::fail`].
pub struct JobRun<'a> {
    client: &'a Client,
    pub job: String,
    pub run_id: i64,
    /// Where the previous successful run stopped (microseconds since the epoch), if any.
    pub watermark: Option<i64>,
}

impl<'a> JobRun<'a> {
    /// Starts a run of `job`, or returns `None` when another session is running it now or,
    /// with `tick`, when a run of that scheduled tick has already started (so replicas that
    /// fire the same tick run it once). `client` must stay open for the whole run: the lock
    /// belongs to its session.
    pub async fn start(
        client: &'a Client,
        job: &str,
        tick: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<JobRun<'a>>, RunError> {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1) AS locked", &[&lock_key(job)])
            .await?
            .get("locked");
        if !locked {
            return Ok(None);
        }
        if let Some(tick) = tick {
            let ran = client
                .query_opt(
                    "SELECT 1 FROM job_runs WHERE job = $1 AND started_at >= $2 LIMIT 1",
                    &[&job, &tick],
                )
                .await?;
            if ran.is_some() {
                client
                    .execute("SELECT pg_advisory_unlock($1)", &[&lock_key(job)])
                    .await?;
                return Ok(None);
            }
        }
        let watermark: Option<i64> = client
            .query_opt("SELECT watermark FROM job_watermarks WHERE job = $1", &[&job])
            .await?
            .map(|row| row.get("watermark"));
        let run_id: i64 = client
            .query_one(
                "INSERT INTO job_runs (job, watermark_before) VALUES ($1, $2) RETURNING id",
                &[&job, &watermark],
            )
            .await?
            .get("id");
        Ok(Some(JobRun {
            client,
            job: job.to_owned(),
            run_id,
            watermark,
        }))
    }

    /// Makes the run one project's (a run of that project's own evaluator): its readers are
    /// that project's, error and all.
    pub async fn belongs_to(&self, project_id: &str) -> Result<(), RunError> {
        self.client
            .execute(
                "UPDATE job_runs SET project_id = $2::text::uuid WHERE id = $1",
                &[&self.run_id, &project_id],
            )
            .await?;
        Ok(())
    }

    /// Records what went wrong for each project in a platform-wide run, `(project id, message)`:
    /// each project reads its own, never another's.
    pub async fn record_problems(&self, problems: &[(String, String)]) -> Result<(), RunError> {
        for (project_id, message) in problems {
            self.client
                .execute(
                    "INSERT INTO job_run_problems (run_id, project_id, message) VALUES ($1, $2::text::uuid, $3)",
                    &[&self.run_id, project_id, message],
                )
                .await?;
        }
        Ok(())
    }

    /// Records success and moves the watermark to `watermark` in one transaction.
    pub async fn succeed(self, rows_in: i64, rows_out: i64, watermark: Option<i64>) -> Result<(), RunError> {
        let result = async {
            self.client.batch_execute("BEGIN").await?;
            if let Some(watermark) = watermark {
                self.client
                    .execute(
                        "INSERT INTO job_watermarks (job, watermark) VALUES ($1, $2)
                         ON CONFLICT (job) DO UPDATE SET watermark = excluded.watermark, updated_at = now()",
                        &[&self.job, &watermark],
                    )
                    .await?;
            }
            self.client
                .execute(
                    "UPDATE job_runs SET status = 'succeeded', finished_at = now(), rows_in = $2, rows_out = $3,
                            watermark_after = coalesce($4, watermark_before)
                     WHERE id = $1",
                    &[&self.run_id, &rows_in, &rows_out, &watermark],
                )
                .await?;
            self.client.batch_execute("COMMIT").await
        }
        .await;
        self.release(result).await
    }

    /// Records failure with its error text; the watermark stays where it was.
    pub async fn fail(self, rows_in: i64, error: &str) -> Result<(), RunError> {
        let result = self
            .client
            .execute(
                "UPDATE job_runs SET status = 'failed', finished_at = now(), rows_in = $2, error = $3,
                        watermark_after = watermark_before
                 WHERE id = $1",
                &[&self.run_id, &rows_in, &error],
            )
            .await
            .map(drop);
        self.release(result).await
    }

    async fn release(self, result: Result<(), tokio_postgres::Error>) -> Result<(), RunError> {
        if result.is_err() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&lock_key(&self.job)])
            .await?;
        result.map_err(RunError::from)
    }
}

/// One recorded run, for `jobs status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub job: String,
    pub status: String,
    pub rows_in: i64,
    pub rows_out: i64,
    pub watermark_before: Option<i64>,
    pub watermark_after: Option<i64>,
    pub error: Option<String>,
}

impl RunRecord {
    /// What [`RunRecord::from_row`] reads, selected from `job_runs`.
    pub const COLUMNS: &'static str =
        "job, status, rows_in, rows_out, watermark_before, watermark_after, error";

    pub fn from_row(row: &Row) -> Self {
        RunRecord {
            job: row.get("job"),
            status: row.get("status"),
            rows_in: row.get("rows_in"),
            rows_out: row.get("rows_out"),
            watermark_before: row.get("watermark_before"),
            watermark_after: row.get("watermark_after"),
            error: row.get("error"),
        }
    }
}

/// The newest runs of every job, newest first.
pub async fn recent_runs(client: &Client, limit: i64) -> Result<Vec<RunRecord>, RunError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM job_runs ORDER BY started_at DESC, id DESC LIMIT $1",
                RunRecord::COLUMNS
            ),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(RunRecord::from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("evaluate"), lock_key("evaluate"));
        assert_ne!(lock_key("evaluate"), lock_key("retention"));
    }
}
