//! `agenttrace bench evaluate`: one evaluation pass over what is new, in a table of `--stored`
//! observations, against the scan the job made before the ingest index (the baseline, same
//! process, same rows).
//!
//! The stored rows are filled server-side as `bench read` fills them (kept with `--reuse`).
//! Then `--new` observations arrive in the largest project, which has an evaluator, and the
//! evaluation job runs once from the watermark before them: it finds them in
//! `observations_by_ingest` and reads them by their key. The baseline runs the old chunk query
//! (`observations FINAL` filtered by `ingested_at`, which no key starts with) over the same new
//! rows. Each side reports its time and the index granules ClickHouse selected (`SelectedMarks`):
//! the pass's should follow `--new`, not `--stored`.

use std::io::Write;
use std::time::Instant;

use agenttrace_etl::clickhouse::{ClickHouse, quote};
use agenttrace_etl::control::{evaluators, projects};
use agenttrace_etl::migrate::MigrationSet;
use agenttrace_etl::postgres;
use agenttrace_jobs::evaluate::{self, CHUNK_ROWS, Selection};
use agenttrace_schemas::Timestamp;
use anyhow::{Context, ensure};
use clap::Args;
use serde_json::json;

use crate::DatabaseArgs;
use crate::bench::read::{bench_project, database, fill_project, project_sizes, record_fill};

#[derive(Debug, Clone, Args)]
pub struct EvaluateBenchArgs {
    /// Observations stored before the pass, across all projects.
    #[arg(long, default_value_t = 20_000_000)]
    pub stored: u64,
    /// Projects the stored observations are spread over (at least 4).
    #[arg(long, default_value_t = 10)]
    pub projects: usize,
    /// Observations that arrive before the pass, in the evaluated project.
    #[arg(long, default_value_t = 50_000)]
    pub new: u64,
    /// Keep the filled database, and reuse it when a run asks for the same sizes.
    #[arg(long)]
    pub reuse: bool,
}

/// Index granules ClickHouse has selected since it started.
async fn selected_marks(clickhouse: &ClickHouse) -> anyhow::Result<u64> {
    let text = clickhouse
        .query_text("SELECT value FROM system.events WHERE event = 'SelectedMarks' FORMAT TabSeparated")
        .await?;
    Ok(text.trim().parse().unwrap_or(0))
}

/// The chunk query the job sent before the ingest index: every stored row's `ingested_at`.
fn old_chunk_query(after_second: i64, after_id: &str, until: i64) -> String {
    let after = if after_id.is_empty() {
        format!("toUInt32(ingested_at) > {after_second}")
    } else {
        format!(
            "(toUInt32(ingested_at) > {after_second} OR (toUInt32(ingested_at) = {after_second} AND id > {}))",
            quote(after_id)
        )
    };
    format!(
        "SELECT project_id, project_name, id, trace_id, type, input, output, start_time_us, end_time_us, level, \
         status_message, toFloat64(ifNull(total_cost, toDecimal64(0, 12))) AS total_cost, input_tokens, \
         output_tokens, version, toInt64(toUInt32(ingested_at)) AS ingested_second \
         FROM observations FINAL WHERE {after} AND toUInt32(ingested_at) < {until} \
         ORDER BY ingested_second, id LIMIT {CHUNK_ROWS} FORMAT TabSeparated"
    )
}

pub async fn run_evaluate(
    args: EvaluateBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    ensure!(args.projects >= 4, "--projects must be at least 4");
    ensure!(
        args.stored >= 1000 * args.projects as u64,
        "--stored must be at least 1000 per project"
    );
    ensure!(args.new >= 1, "--new must be at least 1");
    let clickhouse = databases.clickhouse();
    let mut pg = postgres::connect(&databases.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    let fingerprint = format!("{}x{}", args.stored, args.projects);
    let (database, reused) = database(
        &mut pg,
        &clickhouse,
        &format!("{}_bench_evaluate", clickhouse.database()),
        &MigrationSet::embedded()?,
        &fingerprint,
        args.reuse,
    )
    .await?;
    let organization = projects::ensure_organization(&pg, "bench").await?;
    let mut project_ids = Vec::new();
    for i in 0..args.projects {
        project_ids
            .push(bench_project(&pg, organization, &format!("bench-evaluate-{fingerprint}-{i}")).await?);
    }
    if !reused {
        writeln!(
            out,
            "filling {} observations over {} projects, server-side…",
            args.stored, args.projects
        )?;
        let started = Instant::now();
        let now_us = Timestamp::now().as_micros();
        for (project, size) in project_ids.iter().zip(project_sizes(args.stored, args.projects)) {
            fill_project(&database, *project, size, now_us).await?;
        }
        record_fill(&database, &fingerprint, now_us).await?;
        writeln!(out, "  filled in {:.0} s", started.elapsed().as_secs_f64())?;
    }
    let evaluated = project_ids[0];
    evaluators::add(
        &pg,
        &evaluators::NewEvaluator {
            project_id: evaluated,
            name: "says-done".into(),
            kind: "contains".into(),
            config: json!({"pattern": "Done"}),
            schedule: None,
        },
    )
    .await?;
    let evaluator = evaluators::list(&pg, evaluated)
        .await?
        .into_iter()
        .find(|e| e.name == "says-done")
        .context("the bench evaluator")?;

    // The watermark is the last second before the new rows arrive.
    let before = database.clock().await.map_err(anyhow::Error::msg)?;
    database.wait_past(before).await.map_err(anyhow::Error::msg)?;
    let batch = uuid::Uuid::now_v7().simple().to_string();
    let project = quote(&evaluated.to_string());
    database
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, level, output, \
             metadata_keys, metadata_values, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             cost_source, event_id, version) \
             SELECT {project}, concat('new-{batch}-', toString(number)), concat('new-{batch}-', toString(intDiv(number, 20))), \
             'generation', 'llm', toInt64(toUInt64(now()) * 1000000 + number), 'default', \
             '{{\"role\":\"assistant\",\"content\":\"Done: 3 files changed.\"}}', [], [], 100, 20, 0, 0, '', \
             concat('e-new-', toString(number)), 1 FROM numbers({})",
            args.new
        ))
        .await?;
    let arrived = database.clock().await.map_err(anyhow::Error::msg)?;
    database.wait_past(arrived).await.map_err(anyhow::Error::msg)?;

    let marks = selected_marks(&database).await?;
    let started = Instant::now();
    let report = evaluate::run(
        &pg,
        &database,
        &Selection::One(evaluator.id.to_string()),
        Some(before * 1_000_000),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let pass = started.elapsed();
    let pass_marks = selected_marks(&database).await? - marks;
    ensure!(
        report.observations == args.new,
        "the pass evaluated {} observations, not the {} new ones",
        report.observations,
        args.new
    );

    // The old chunk query over the same new rows, chunk by chunk.
    let until = database.clock().await.map_err(anyhow::Error::msg)?;
    let marks = selected_marks(&database).await?;
    let started = Instant::now();
    let (mut after_second, mut after_id, mut old_rows) = (before, String::new(), 0u64);
    loop {
        let chunk = database
            .query_text(&old_chunk_query(after_second, &after_id, until))
            .await?;
        let lines: Vec<&str> = chunk.lines().collect();
        old_rows += lines.len() as u64;
        let Some(last) = lines.last() else { break };
        let fields: Vec<&str> = last.split('\t').collect();
        after_id = fields[2].to_owned();
        after_second = fields[fields.len() - 1].parse()?;
        if lines.len() < CHUNK_ROWS {
            break;
        }
    }
    let old = started.elapsed();
    let old_marks = selected_marks(&database).await? - marks;

    writeln!(
        out,
        "bench evaluate: {} new observations among {} stored ({} projects)",
        args.new, args.stored, args.projects
    )?;
    writeln!(
        out,
        "  pass (ingest index, then by key)       {:>9.0} ms  {:>9} granules  {} evaluated, {} scores",
        pass.as_secs_f64() * 1e3,
        pass_marks,
        report.observations,
        report.scores
    )?;
    writeln!(
        out,
        "  baseline (old scan by ingested_at)     {:>9.0} ms  {:>9} granules  {old_rows} rows read back",
        old.as_secs_f64() * 1e3,
        old_marks
    )?;
    writeln!(
        out,
        "  baseline / pass = {:.1} (time), {:.1} (granules)",
        old.as_secs_f64() / pass.as_secs_f64(),
        old_marks as f64 / pass_marks.max(1) as f64
    )?;
    Ok(())
}
