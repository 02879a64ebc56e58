//! `agenttrace delete` (start a deletion job, and with `--wait` run it here until a read of
//! every table finds nothing) and `agenttrace deletions` (a project's jobs, or one).

use std::io::Write;
use std::time::Duration;

use agenttrace_etl::control::deletions::{self, DeletionJob, DeletionTarget};
use agenttrace_etl::deletion::Worker;
use clap::Args;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["trace", "session", "user", "all"])))]
pub struct DeleteArgs {
    #[arg(long)]
    project: Uuid,
    /// A trace id; repeat for several (at most 1000).
    #[arg(long)]
    trace: Vec<String>,
    /// Every trace of this session id.
    #[arg(long)]
    session: Option<String>,
    /// Every trace of this user id, and metric points that carry it.
    #[arg(long)]
    user: Option<String>,
    /// Every event of the project (archive it first).
    #[arg(long)]
    all: bool,
    /// Also delete dataset items made from the deleted traces.
    #[arg(long)]
    dataset_items: bool,
    /// Run the job here and return when it has succeeded.
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DeletionsArgs {
    #[arg(long)]
    project: Uuid,
    /// One job, with its counts per table.
    #[arg(long)]
    id: Option<Uuid>,
    #[arg(long)]
    json: bool,
}

pub async fn delete(args: DeleteArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let target = if !args.trace.is_empty() {
        DeletionTarget::Traces(args.trace)
    } else if let Some(session) = args.session {
        DeletionTarget::Session(session)
    } else if let Some(user) = args.user {
        DeletionTarget::User(user)
    } else {
        DeletionTarget::Project
    };
    let pg = databases.postgres().await?;
    let mut job = deletions::create(&pg, args.project, &target, args.dataset_items, "cli").await?;
    if args.wait {
        let worker = Worker {
            postgres: agenttrace_etl::postgres::pool(&databases.database_url, 2)
                .map_err(anyhow::Error::msg)?,
            clickhouse: databases.clickhouse(),
        };
        let progress = indicatif::ProgressBar::new_spinner();
        progress.enable_steady_tick(Duration::from_millis(120));
        while job.status != "succeeded" {
            progress.set_message(format!(
                "deletion {}: {} ({} steps done){}",
                job.id,
                job.status,
                job.steps_done.len(),
                job.error
                    .as_deref()
                    .map(|e| format!("; retrying: {e}"))
                    .unwrap_or_default()
            ));
            // Runs whichever job is due (this one, or one queued before it); a job another
            // runner holds is left to it.
            if !worker.run_one().await.map_err(anyhow::Error::msg)? {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            job = deletions::get(&pg, args.project, job.id).await?;
        }
        progress.finish_and_clear();
    }
    print_job(out, json_wanted(args.json), &job)
}

fn print_job(out: &mut dyn Write, as_json: bool, job: &DeletionJob) -> anyhow::Result<()> {
    emit(out, as_json, job)
}

pub async fn list(args: DeletionsArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    let as_json = json_wanted(args.json);
    if let Some(id) = args.id {
        return print_job(out, as_json, &deletions::get(&pg, args.project, id).await?);
    }
    let jobs = deletions::list(&pg, args.project, 100).await?;
    if as_json {
        writeln!(out, "{}", serde_json::to_string(&jobs)?)?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(["id", "target", "ids", "status", "rows", "created", "finished"]);
    for job in jobs {
        let rows: u64 = job
            .counts
            .iter()
            .filter(|(table, _)| !table.contains('.'))
            .map(|(_, n)| n)
            .sum();
        let ids = match job.target_ids.len() {
            0 => String::new(),
            1 => job.target_ids[0].clone(),
            n => format!("{} and {} more", job.target_ids[0], n - 1),
        };
        table.add_row([
            job.id.to_string(),
            job.target,
            ids,
            job.status,
            rows.to_string(),
            job.created_at,
            job.finished_at.unwrap_or_default(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
