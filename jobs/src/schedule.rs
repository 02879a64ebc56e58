//! `agenttrace jobs schedule`: fires jobs from cron expressions until shut down.
//!
//! Each due job runs in its own task on its own PostgreSQL connection, so a slow or failing job
//! never delays the others. Several schedulers (replicas) may run at once: the job's advisory
//! lock and the per-tick check in [`crate::runs::JobRun::start`] make each tick run once.

use std::future::Future;
use std::str::FromStr;

use agenttrace_etl::clickhouse::ClickHouse;
use chrono::{DateTime, Utc};
use cron::Schedule;

use crate::{JobOutcome, run_job};

#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub job: String,
    pub schedule: Schedule,
}

impl ScheduledJob {
    /// Parses `JOB=CRON` (cron with seconds: `sec min hour day-of-month month day-of-week`).
    pub fn parse(spec: &str) -> Result<ScheduledJob, String> {
        let (job, expression) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected JOB=CRON, e.g. retention=\"0 0 3 * * *\""))?;
        if !crate::JOBS.contains(&job) {
            return Err(format!(
                "{spec:?}: unknown job {job:?}; jobs are {:?}",
                crate::JOBS
            ));
        }
        let schedule = Schedule::from_str(expression.trim()).map_err(|e| {
            format!("{spec:?}: invalid cron expression ({e}); use `sec min hour day month weekday`")
        })?;
        Ok(ScheduledJob {
            job: job.to_owned(),
            schedule,
        })
    }
}

/// The next time any job is due after `now`, and the jobs due then.
fn next_due(jobs: &[ScheduledJob], now: DateTime<Utc>) -> Option<(DateTime<Utc>, Vec<String>)> {
    let upcoming: Vec<(DateTime<Utc>, &str)> = jobs
        .iter()
        .filter_map(|j| j.schedule.after(&now).next().map(|t| (t, j.job.as_str())))
        .collect();
    let first = upcoming.iter().map(|(t, _)| *t).min()?;
    Some((
        first,
        upcoming
            .iter()
            .filter(|(t, _)| *t == first)
            .map(|(_, job)| job.to_string())
            .collect(),
    ))
}

/// Runs the schedule until `shutdown` resolves. Runs already started are left to finish.
pub async fn run_scheduler(
    jobs: Vec<ScheduledJob>,
    database_url: String,
    clickhouse: ClickHouse,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let Some((tick, due)) = next_due(&jobs, Utc::now()) else {
            return;
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
        for job in due {
            let (database_url, clickhouse) = (database_url.clone(), clickhouse.clone());
            tokio::spawn(async move {
                let pg = match agenttrace_etl::postgres::connect(&database_url).await {
                    Ok(pg) => pg,
                    Err(error) => {
                        tracing::error!(%job, %error, "cannot reach PostgreSQL; the run is skipped");
                        return;
                    }
                };
                match run_job(&job, &pg, &clickhouse, Some(tick)).await {
                    Ok(JobOutcome::Succeeded { summary, .. }) => tracing::info!(%job, %tick, "{summary}"),
                    Ok(JobOutcome::Skipped) => tracing::debug!(%job, %tick, "run by another scheduler"),
                    Err(error) => tracing::error!(%job, %tick, %error, "job failed"),
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_explains_mistakes() {
        assert!(ScheduledJob::parse("retention=0 0 3 * * *").is_ok());
        assert!(
            ScheduledJob::parse("retention")
                .unwrap_err()
                .contains("expected JOB=CRON")
        );
        assert!(
            ScheduledJob::parse("vacuum=0 0 3 * * *")
                .unwrap_err()
                .contains("unknown job")
        );
        assert!(
            ScheduledJob::parse("retention=every day")
                .unwrap_err()
                .contains("invalid cron expression")
        );
    }

    #[test]
    fn finds_the_next_due_jobs() {
        let jobs = vec![
            ScheduledJob::parse("retention=0 0 3 * * *").unwrap(),
            ScheduledJob::parse("daily_costs=0 30 * * * *").unwrap(),
        ];
        let now = DateTime::parse_from_rfc3339("2026-11-25T02:45:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (tick, due) = next_due(&jobs, now).unwrap();
        assert_eq!(tick.to_rfc3339(), "2026-11-25T03:00:00+00:00");
        assert_eq!(due, vec!["retention"]);
    }
}
