//! Deletion as a verifiable job: a trace, a session, everything of a user id, or a whole
//! archived project's events, removed from every ClickHouse table (those the materialized views
//! fill included) and from what PostgreSQL keeps about them, until a read of every table finds
//! nothing. Replays of deleted traces are refused at load by the tombstone ledger.
//!
//! - [`plan`]: the condition each table's rows are deleted by (pure).
//! - [`run`]: one attempt at a job, step by step, resumable.
//! - [`Worker`]: the ETL's background loop that claims due jobs and retries failed attempts.

pub mod plan;
pub mod run;

use std::time::Duration;

use crate::clickhouse::ClickHouse;
use crate::control::deletions;
use deadpool_postgres::Pool;

/// How long a claimed job is held before another runner may take it over: renewed every
/// [`HEARTBEAT`] while it runs, so a job whose runner died is taken over within a minute.
const LEASE: Duration = Duration::from_secs(60);
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often an idle worker looks for due jobs.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The delay before attempt `attempts + 1` of a job that failed: quick at first, at most a minute.
pub fn retry_delay(attempts: i32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 6) as u32).min(Duration::from_secs(60))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs due deletion jobs, one at a time, until the process ends.
pub struct Worker {
    pub postgres: Pool,
    pub clickhouse: ClickHouse,
}

impl Worker {
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_one().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "deletion worker: cannot reach PostgreSQL"),
                }
                tokio::time::sleep(IDLE_POLL).await;
            }
        })
    }

    /// Claims and runs one due job; whether there was one.
    pub async fn run_one(&self) -> Result<bool, String> {
        let mut client = self.postgres.get().await.map_err(|e| e.to_string())?;
        let Some(job) = deletions::claim(&**client, LEASE)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        // Stopped when this attempt ends, however it ends (the worker aborted with its server).
        let _heartbeat = {
            let (postgres, id) = (self.postgres.clone(), job.id);
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    if let Ok(client) = postgres.get().await {
                        let _ = deletions::renew(&**client, id, LEASE).await;
                    }
                }
            }))
        };
        match run::run(&mut client, &self.clickhouse, &job, LEASE).await {
            Ok(remaining) => {
                deletions::succeeded(&**client, &job, &remaining)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(job = %job.id, project = %job.project_id, target = job.target, "deletion finished");
            }
            Err(error) => {
                tracing::warn!(job = %job.id, %error, attempt = job.attempts, "deletion attempt failed; will retry");
                if job.attempts >= deletions::MAX_ATTEMPTS {
                    metrics::counter!("agenttrace_deletion_jobs_failed_total").increment(1);
                    tracing::error!(job = %job.id, %error, "deletion gave up after its last attempt");
                }
                deletions::attempt_failed(&**client, &job, &error.to_string(), retry_delay(job.attempts))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(true)
    }
}
