//! `agenttrace jobs run|schedule|status`.

use std::io::Write;

use agenttrace_jobs::schedule::{ScheduledJob, run_scheduler};
use agenttrace_jobs::{Job, JobOutcome, run_job};
use clap::Subcommand;

use crate::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run one job now (recorded like a scheduled run): evaluate, judge, judge_calibration, annotation_rules,
    /// experiment_rollups, retention, daily_costs, recompute_costs (after a price change),
    /// metric_rollups, trace_summaries, alerts, or
    /// evaluate:<evaluator id> for an evaluator with its own schedule.
    Run { job: String },
    /// Run jobs on their cron schedules until stopped (several replicas are safe).
    Schedule {
        /// `JOB=CRON` with seconds (`sec min hour day month weekday`); repeat for several jobs.
        #[arg(long = "cron", default_values_t = vec![
            "evaluate=0 * * * * *".to_owned(),
            "judge=20 * * * * *".to_owned(),
            "judge_calibration=40 */10 * * * *".to_owned(),
            "annotation_rules=50 * * * * *".to_owned(),
            "experiment_rollups=30 */5 * * * *".to_owned(),
            "retention=0 0 3 * * *".to_owned(),
            "daily_costs=0 30 * * * *".to_owned(),
            "metric_rollups=10 * * * * *".to_owned(),
            "trace_summaries=15 * * * * *".to_owned(),
            "alerts=30 * * * * *".to_owned(),
        ])]
        crons: Vec<String>,
    },
    /// Show the most recent runs of every job, failures first to catch the eye.
    Status {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub async fn run(command: JobsCommand, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        JobsCommand::Run { job } => {
            let job: Job = job.parse()?;
            let pg = databases.postgres().await?;
            match run_job(job, &pg, &databases.clickhouse(), None).await? {
                JobOutcome::Skipped => writeln!(out, "{job}: another runner is running it; skipped")?,
                JobOutcome::Succeeded { summary, .. } => writeln!(out, "{job}: {summary}")?,
            }
        }
        JobsCommand::Schedule { crons } => {
            let jobs = crons
                .iter()
                .map(|spec| ScheduledJob::parse(spec))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            for job in &jobs {
                tracing::info!(job = %job.job, schedule = %job.schedule, "scheduled");
            }
            let shutdown = async {
                if let Err(error) = crate::until_stopped().await {
                    tracing::error!(%error, "cannot wait for signals; stopping");
                }
            };
            run_scheduler(
                jobs,
                databases.database_url.clone(),
                databases.clickhouse(),
                shutdown,
            )
            .await;
        }
        JobsCommand::Status { limit } => {
            let pg = databases.postgres().await?;
            let runs = agenttrace_jobs::runs::recent_runs(&pg, limit).await?;
            let failed = runs.iter().filter(|r| r.status == "failed");
            for run in failed.chain(runs.iter().filter(|r| r.status != "failed")) {
                writeln!(
                    out,
                    "{}\t{}\tin {}\tout {}\t{}",
                    run.job,
                    run.status,
                    run.rows_in,
                    run.rows_out,
                    run.error.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    Ok(())
}
