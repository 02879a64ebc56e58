//! AgentTrace's scheduled jobs. Every job runs through [`runs`]: one runner at a time per job,
//! every run recorded, and a watermark that only a successful run advances.

pub mod alerts;
pub mod calibration;
pub mod daily_costs;
pub mod evaluate;
pub mod frames;
pub mod judge;
pub mod queue_rules;
pub mod recompute;
pub mod retention;
pub mod rollups;
pub mod runs;
pub mod schedule;

use std::fmt;
use std::str::FromStr;

use agenttrace_etl::clickhouse::ClickHouse;
use tokio_postgres::Client;
use uuid::Uuid;

/// A job this crate runs. Its name (`Display`, `FromStr`) is what schedules, run records and
/// `agenttrace jobs run` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// Every active evaluator without a schedule of its own (`evaluate`).
    Evaluate,
    /// One evaluator that has a schedule of its own (`evaluate:<evaluator id>`).
    Evaluator(Uuid),
    /// Per-experiment score distributions and paired comparisons (`experiment_rollups`).
    ExperimentRollups,
    /// Deletes rows past each project's retention (`retention`).
    Retention,
    /// Checks the daily-costs view against the observations (`daily_costs`).
    DailyCosts,
    /// Re-prices table-priced generations after a price change (`recompute_costs`).
    RecomputeCosts,
    /// LLM judges: new observations to the ledger, due judgments to the model (`judge`).
    Judge,
    /// How well each LLM judge agrees with people's scores (`judge_calibration`).
    JudgeCalibration,
    /// Annotation queues' standing rules applied to what arrived (`annotation_rules`).
    AnnotationRules,
    /// Hourly rollups of the observation metrics, for the hours touched since (`metric_rollups`).
    MetricRollups,
    /// Alert rules evaluated, their notifications delivered (`alerts`).
    Alerts,
    /// Per-trace summaries of the traces that arrived since (`trace_summaries`).
    TraceSummaries,
}

impl Job {
    /// The jobs with fixed names (an evaluator's job is named after its id).
    pub const BUILTIN: [Job; 11] = [
        Job::Evaluate,
        Job::Judge,
        Job::JudgeCalibration,
        Job::AnnotationRules,
        Job::ExperimentRollups,
        Job::Retention,
        Job::DailyCosts,
        Job::RecomputeCosts,
        Job::MetricRollups,
        Job::Alerts,
        Job::TraceSummaries,
    ];
}

/// The prefix of a scheduled evaluator's job name.
pub const EVALUATOR_JOB_PREFIX: &str = "evaluate:";

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Job::Evaluate => f.write_str("evaluate"),
            Job::Evaluator(id) => write!(f, "{EVALUATOR_JOB_PREFIX}{id}"),
            Job::ExperimentRollups => f.write_str("experiment_rollups"),
            Job::Retention => f.write_str("retention"),
            Job::DailyCosts => f.write_str("daily_costs"),
            Job::RecomputeCosts => f.write_str("recompute_costs"),
            Job::Judge => f.write_str("judge"),
            Job::JudgeCalibration => f.write_str("judge_calibration"),
            Job::AnnotationRules => f.write_str("annotation_rules"),
            Job::MetricRollups => f.write_str("metric_rollups"),
            Job::Alerts => f.write_str("alerts"),
            Job::TraceSummaries => f.write_str("trace_summaries"),
        }
    }
}

impl FromStr for Job {
    type Err = JobError;

    fn from_str(name: &str) -> Result<Self, JobError> {
        if let Some(id) = name.strip_prefix(EVALUATOR_JOB_PREFIX) {
            return Uuid::parse_str(id)
                .map(Job::Evaluator)
                .map_err(|_| JobError::Unknown(name.to_owned()));
        }
        Job::BUILTIN
            .into_iter()
            .find(|job| job.to_string() == name)
            .ok_or_else(|| JobError::Unknown(name.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(
        "unknown job {0:?}; jobs are evaluate, judge, judge_calibration, annotation_rules, experiment_rollups, retention, daily_costs, recompute_costs, metric_rollups, trace_summaries, alerts and evaluate:<evaluator id>"
    )]
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
/// `tick` is the scheduled time being served, if any (see [`runs::JobRun::start`]). The judges'
/// setup (the key that opens provider keys) comes from the environment.
pub async fn run_job(
    job: Job,
    pg: &Client,
    clickhouse: &ClickHouse,
    tick: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<JobOutcome, JobError> {
    let setup = match job {
        Job::Judge => Some(judge::Setup::from_env().map_err(|message| JobError::Failed {
            job: job.to_string(),
            message,
        })?),
        _ => None,
    };
    run_job_with(job, pg, clickhouse, tick, setup.as_ref()).await
}

/// [`run_job`] with the judges' setup given (required for [`Job::Judge`]).
pub async fn run_job_with(
    job: Job,
    pg: &Client,
    clickhouse: &ClickHouse,
    tick: Option<chrono::DateTime<chrono::Utc>>,
    judge_setup: Option<&judge::Setup>,
) -> Result<JobOutcome, JobError> {
    let name = job.to_string();
    let Some(run) = runs::JobRun::start(pg, &name, tick).await? else {
        return Ok(JobOutcome::Skipped);
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    // Each job yields (rows in, rows out, new watermark, summary), or the error its run
    // record will carry (a failed run keeps the watermark).
    // What went wrong for each project, kept apart so each reads only its own.
    let mut problems = Vec::new();
    let result: Result<(i64, i64, Option<i64>, String), String> = match job {
        Job::Evaluate => {
            evaluation(
                pg,
                clickhouse,
                &evaluate::Selection::Unscheduled,
                run.watermark,
                &mut problems,
            )
            .await
        }
        Job::Evaluator(id) => {
            // One project's own evaluator: the run is that project's.
            if let Some(row) = pg
                .query_opt(
                    "SELECT project_id::text AS project_id FROM evaluators WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(runs::RunError::from)?
            {
                run.belongs_to(row.get("project_id")).await?;
            }
            let selection = evaluate::Selection::One(id.to_string());
            evaluation(pg, clickhouse, &selection, run.watermark, &mut problems).await
        }
        Job::ExperimentRollups => rollups::run(pg, clickhouse, now_us).await.map(|report| {
            let summary = format!(
                "{} experiments, {} rollup rows written",
                report.experiments, report.rows
            );
            (report.traces as i64, report.rows as i64, None, summary)
        }),
        Job::Retention => retention::run(pg, clickhouse, now_us)
            .await
            .map_err(|e| e.to_string())
            .map(|report| {
                let summary = format!(
                    "{} projects with retention, {} rows deleted, {} batch ids pruned",
                    report.projects, report.rows_deleted, report.batches_pruned
                );
                (report.projects as i64, report.rows_deleted as i64, None, summary)
            }),
        Job::DailyCosts => daily_costs_check(clickhouse, now_us).await,
        Job::Judge => match judge_setup {
            Some(setup) => judge::run(pg, clickhouse, setup, run.watermark).await.map(|report| {
                problems.extend(report.blocked.iter().cloned());
                let summary = format!(
                    "{} observations seen, {} queued, {} calls, {} judged, {} to retry, {} failed, ${:.6} spent{}",
                    report.seen,
                    report.queued,
                    report.calls,
                    report.judged,
                    report.retried,
                    report.failed,
                    report.spend_usd,
                    if report.blocked.is_empty() {
                        String::new()
                    } else {
                        format!(", {} judges stopped", report.blocked.len())
                    }
                );
                (report.seen as i64, report.judged as i64, report.watermark, summary)
            }),
            None => Err("the judge job needs its setup (the encryption key)".into()),
        },
        Job::JudgeCalibration => calibration::run(pg, clickhouse, run.watermark)
            .await
            .map(|report| {
                let mut summary = format!(
                    "{} judge or human scores given, {} of {} judges recalibrated from {} pairs",
                    report.scores, report.recomputed, report.judges, report.pairs
                );
                if report.failed > 0 {
                    summary.push_str(&format!("; {} project(s) failed, see the log", report.failed));
                }
                (report.scores as i64, report.recomputed as i64, report.watermark, summary)
            }),
        Job::AnnotationRules => queue_rules::run(pg, clickhouse, now_us).await.map(|report| {
            let mut summary = format!(
                "{} queues with rules found {} new targets, {} items added",
                report.queues, report.found, report.added
            );
            if report.failed > 0 {
                summary.push_str(&format!("; {} queue rule(s) failed, see the log", report.failed));
            }
            (report.found as i64, report.added as i64, None, summary)
        }),
        Job::Alerts => match alerts::Setup::from_env() {
            Ok(setup) => alerts::run(pg, clickhouse, &setup, now_us).await.map(|report| {
                let summary = format!(
                    "{} rules: {} groups fired, {} resolved, {} could not be evaluated; {} delivered, {} to retry, {} failed",
                    report.rules,
                    report.fired,
                    report.resolved,
                    report.errors,
                    report.delivered,
                    report.retrying,
                    report.failed
                );
                (report.rules as i64, report.delivered as i64, None, summary)
            }),
            Err(error) => Err(error),
        },
        Job::TraceSummaries => agenttrace_etl::analytics::summaries::scheduled(clickhouse)
            .await
            .map_err(|e| e.to_string())
            .map(|report| {
                let summary = format!(
                    "{} traces of {} projects summarized, as of second {}",
                    report.traces, report.projects, report.watermark
                );
                (report.traces as i64, report.traces as i64, Some(report.watermark), summary)
            }),
        Job::MetricRollups => agenttrace_etl::analytics::hourly::roll(
            clickhouse,
            run.watermark,
            agenttrace_etl::analytics::hourly::SETTLE_SECONDS,
        )
        .await
        .map_err(|e| e.to_string())
        .map(|report| {
            let summary = format!(
                "{} (project, hour) pairs touched, {} rolled up, {} left for the next run (touched in the last {} s)",
                report.touched,
                report.rolled,
                report.unsettled,
                agenttrace_etl::analytics::hourly::SETTLE_SECONDS
            );
            (report.touched as i64, report.rolled as i64, Some(report.watermark), summary)
        }),
        Job::RecomputeCosts => recompute::run(pg, clickhouse).await.map(|report| {
            let summary = format!(
                "{} table-priced generations, {} re-priced",
                report.generations, report.repriced
            );
            (report.generations as i64, report.repriced as i64, None, summary)
        }),
    };
    run.record_problems(&problems).await?;
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
            Err(JobError::Failed { job: name, message })
        }
    }
}

async fn evaluation(
    pg: &Client,
    clickhouse: &ClickHouse,
    selection: &evaluate::Selection,
    watermark: Option<i64>,
    problems: &mut Vec<(String, String)>,
) -> Result<(i64, i64, Option<i64>, String), String> {
    let report = evaluate::run(pg, clickhouse, selection, watermark).await?;
    if !report.broken.is_empty() {
        problems.extend(report.broken.iter().cloned());
        let reasons: Vec<&str> = report.broken.iter().map(|(_, reason)| reason.as_str()).collect();
        return Err(format!(
            "{} broken evaluator(s), the others wrote {} scores: {}",
            report.broken.len(),
            report.scores,
            reasons.join("; ")
        ));
    }
    Ok((
        report.observations as i64,
        report.scores as i64,
        report.watermark,
        format!(
            "{} observations evaluated, {} scores written",
            report.observations, report.scores
        ),
    ))
}

async fn daily_costs_check(
    clickhouse: &ClickHouse,
    now_us: i64,
) -> Result<(i64, i64, Option<i64>, String), String> {
    let check = daily_costs::verify(clickhouse, now_us)
        .await
        .map_err(|e| e.to_string())?;
    if check.differences.is_empty() {
        return Ok((
            check.groups as i64,
            0,
            None,
            format!("{} (project, day, model) groups match", check.groups),
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_round_trip() {
        let id = Uuid::now_v7();
        for job in Job::BUILTIN.into_iter().chain([Job::Evaluator(id)]) {
            assert_eq!(job.to_string().parse::<Job>().unwrap(), job);
        }
        assert_eq!(Job::Evaluator(id).to_string(), format!("evaluate:{id}"));
        assert!("evaluate:not-a-uuid".parse::<Job>().is_err());
        assert!("vacuum".parse::<Job>().is_err());
    }
}
