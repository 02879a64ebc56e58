//! AgentTrace's scheduled jobs. Every job runs through [`runs`]: one runner at a time per job,
//! every run recorded, and a watermark that only a successful run advances.

pub mod daily_costs;
pub mod evaluate;
pub mod frames;
pub mod retention;
pub mod rollups;
pub mod runs;
pub mod schedule;

use agenttrace_etl::clickhouse::ClickHouse;
use tokio_postgres::Client;

/// The built-in jobs. Besides these, `evaluate:<evaluator id>` runs one evaluator that has a
/// schedule of its own (see [`schedule`]).
pub const JOBS: &[&str] = &["evaluate", "experiment_rollups", "retention", "daily_costs"];

/// The prefix of a scheduled evaluator's job name.
pub const EVALUATOR_JOB_PREFIX: &str = "evaluate:";

/// Whether `job` names a job this crate runs.
pub fn is_job(job: &str) -> bool {
    JOBS.contains(&job)
        || job
            .strip_prefix(EVALUATOR_JOB_PREFIX)
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown job {0:?}; jobs are {JOBS:?} and evaluate:<evaluator id>")]
    Unknown(String),
    #[error(transparent)]
    Run(#[from] runs::RunError),
    #[error("job {job} failed: {message}")]
    Failed { job: String, message: String },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Another runner holds the job, or already ran this tick; nothing was done.
    Skipped,
    Succeeded {
        rows_in: i64,
        rows_out: i64,
        summary: String,
    },
}

/// Runs `job` once, recorded in `job_runs`; a failure is recorded with its error and returned.
/// `tick` is the scheduled time being served, if any (see [`runs::JobRun::start`]).
pub async fn run_job(
    job: &str,
    pg: &Client,
    clickhouse: &ClickHouse,
    tick: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<JobOutcome, JobError> {
    if !is_job(job) {
        return Err(JobError::Unknown(job.to_owned()));
    }
    let Some(run) = runs::JobRun::start(pg, job, tick).await? else {
        return Ok(JobOutcome::Skipped);
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    // Each job yields (rows in, rows out, new watermark, summary), or the error its run
    // record will carry (a failed run keeps the watermark).
    let evaluation = match job.strip_prefix(EVALUATOR_JOB_PREFIX) {
        Some(id) => Some(evaluate::Selection::One(id.to_owned())),
        None => (job == "evaluate").then_some(evaluate::Selection::Unscheduled),
    };
    let result: Result<(i64, i64, Option<i64>, String), String> = match (evaluation, job) {
        (Some(selection), _) => match evaluate::run(pg, clickhouse, &selection, run.watermark).await {
            Err(error) => Err(error),
            Ok(report) if !report.broken.is_empty() => Err(format!(
                "{} broken evaluator(s), the others wrote {} scores: {}",
                report.broken.len(),
                report.scores,
                report.broken.join("; ")
            )),
            Ok(report) => Ok((
                report.observations as i64,
                report.scores as i64,
                report.watermark,
                format!(
                    "{} observations evaluated, {} scores written",
                    report.observations, report.scores
                ),
            )),
        },
        (None, "experiment_rollups") => rollups::run(pg, clickhouse, now_us).await.map(|report| {
            let summary = format!(
                "{} experiments, {} rollup rows written",
                report.experiments, report.rows
            );
            (report.traces as i64, report.rows as i64, None, summary)
        }),
        (None, "retention") => retention::run(pg, clickhouse, now_us)
            .await
            .map_err(|e| e.to_string())
            .map(|report| {
                let summary = format!(
                    "{} projects with retention, {} rows deleted, {} batch ids pruned",
                    report.projects, report.rows_deleted, report.batches_pruned
                );
                (report.projects as i64, report.rows_deleted as i64, None, summary)
            }),
        _ => match daily_costs::verify(clickhouse, now_us).await {
            Err(error) => Err(error.to_string()),
            Ok(check) if check.differences.is_empty() => Ok((
                check.groups as i64,
                0,
                None,
                format!("{} (project, day, model) groups match", check.groups),
            )),
            Ok(check) => {
                let details: Vec<String> = check
                    .differences
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} {:?}: view {} generations / {} USD, observations {} / {} USD",
                            d.project_id, d.day, d.model, d.view.0, d.view.1, d.raw.0, d.raw.1
                        )
                    })
                    .collect();
                Err(format!(
                    "daily_costs differs from observations in {} of {} groups: {}",
                    check.differences.len(),
                    check.groups,
                    details.join("; ")
                ))
            }
        },
    };
    match result {
        Ok((rows_in, rows_out, watermark, summary)) => {
            run.succeed(rows_in, rows_out, watermark).await?;
            Ok(JobOutcome::Succeeded {
                rows_in,
                rows_out,
                summary,
            })
        }
        Err(message) => {
            run.fail(0, &message).await?;
            Err(JobError::Failed {
                job: job.to_owned(),
                message,
            })
        }
    }
}
