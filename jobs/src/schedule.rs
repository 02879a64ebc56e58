//! `agenttrace jobs schedule`: fires jobs from cron expressions until shut down.
//!
//! Built-in jobs come with their cron expressions from the command line; an evaluator with a
//! `schedule` of its own in PostgreSQL runs as the job `evaluate:<id>` on that schedule (the
//! list is re-read every [`EVALUATOR_REFRESH`], so added or changed evaluators need no restart).
//!
//! Each due job runs in its own task on its own PostgreSQL connection, so a slow or failing job
//! never delays the others. Several schedulers (replicas) may run at once: the job's advisory
//! lock and the per-tick check in [`crate::runs::JobRun::start`] make each tick run once.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::control::evaluators::parse_schedule;
use chrono::{DateTime, Utc};
use cron::Schedule;

use crate::{Job, JobOutcome, run_job};

/// How often the scheduler re-reads evaluator schedules from PostgreSQL.
pub const EVALUATOR_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub job: Job,
    pub schedule: Schedule,
}

impl ScheduledJob {
    /// Parses `JOB=CRON` (cron with seconds: `sec min hour day-of-month month day-of-week`).
    pub fn parse(spec: &str) -> Result<ScheduledJob, String> {
        let (job, expression) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected JOB=CRON, e.g. retention=\"0 0 3 * * *\""))?;
        let job = match job.parse::<Job>() {
            Ok(Job::Evaluator(_)) => {
                return Err(format!(
                    "{spec:?}: an evaluator's schedule is its own `schedule` (agenttrace evaluator add --schedule)"
                ));
            }
            Ok(job) => job,
            Err(error) => return Err(format!("{spec:?}: {error}")),
        };
        let schedule = parse_schedule(expression).map_err(|e| format!("{spec:?}: {e}"))?;
        Ok(ScheduledJob { job, schedule })
    }
}

/// The next time any job is due after `now`, and the jobs due then.
fn next_due(jobs: &[ScheduledJob], now: DateTime<Utc>) -> Option<(DateTime<Utc>, Vec<Job>)> {
    let upcoming: Vec<(DateTime<Utc>, Job)> = jobs
        .iter()
        .filter_map(|j| j.schedule.after(&now).next().map(|t| (t, j.job)))
        .collect();
    let first = upcoming.iter().map(|(t, _)| *t).min()?;
    Some((
        first,
        upcoming
            .iter()
            .filter(|(t, _)| *t == first)
            .map(|(_, job)| *job)
            .collect(),
    ))
}

/// The evaluators with a schedule of their own, as jobs. An evaluator whose schedule does not
/// parse gets a failed run that says why, once per scheduler and schedule text.
async fn evaluator_jobs(
    database_url: &str,
    reported: &mut BTreeSet<(uuid::Uuid, String)>,
) -> Vec<ScheduledJob> {
    let pg = match agenttrace_etl::postgres::connect(database_url).await {
        Ok(pg) => pg,
        Err(error) => {
            tracing::error!(%error, "cannot read evaluator schedules from PostgreSQL");
            return Vec::new();
        }
    };
    let rows = match pg
        .query(
            "SELECT id, name, schedule FROM evaluators WHERE active AND schedule IS NOT NULL ORDER BY id",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "cannot read evaluator schedules from PostgreSQL");
            return Vec::new();
        }
    };
    let mut jobs = Vec::new();
    for row in rows {
        let (id, name, expression): (uuid::Uuid, String, String) = (row.get(0), row.get(1), row.get(2));
        let job = Job::Evaluator(id);
        match parse_schedule(&expression) {
            Ok(schedule) => jobs.push(ScheduledJob { job, schedule }),
            Err(error) if reported.insert((id, expression.clone())) => {
                let message = format!("evaluator {name:?} ({id}) has a bad schedule: {error}");
                tracing::error!("{message}");
                if let Ok(Some(run)) = crate::runs::JobRun::start(&pg, &job.to_string(), None).await
                    && let Err(error) = run.fail(0, &message).await
                {
                    tracing::error!(%error, "cannot record the failed run");
                }
            }
            Err(_) => {}
        }
    }
    jobs
}

/// Runs the schedule until `shutdown` resolves. Runs already started are left to finish.
pub async fn run_scheduler(
    builtin: Vec<ScheduledJob>,
    database_url: String,
    clickhouse: ClickHouse,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut reported = BTreeSet::new();
    let mut evaluators = evaluator_jobs(&database_url, &mut reported).await;
    let mut refreshed = tokio::time::Instant::now();
    // The last tick fired: the next one is strictly after it, so no tick fires twice.
    let mut last_tick = Utc::now();
    loop {
        if refreshed.elapsed() >= EVALUATOR_REFRESH {
            evaluators = evaluator_jobs(&database_url, &mut reported).await;
            refreshed = tokio::time::Instant::now();
        }
        let jobs: Vec<ScheduledJob> = builtin.iter().chain(&evaluators).cloned().collect();
        let next = next_due(&jobs, last_tick.max(Utc::now()));
        let until_refresh = EVALUATOR_REFRESH.saturating_sub(refreshed.elapsed());
        let wait = next.as_ref().map_or(until_refresh, |(tick, _)| {
            (*tick - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(until_refresh)
        });
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some((tick, due)) = next.filter(|(tick, _)| *tick <= Utc::now()) else {
            continue;
        };
        last_tick = tick;
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
                match run_job(job, &pg, &clickhouse, Some(tick)).await {
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
        assert_eq!(due, vec![Job::Retention]);
    }
}
