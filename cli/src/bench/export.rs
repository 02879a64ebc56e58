//! `agenttrace bench export`: N observations exported as Parquet and Arrow through the ETL's
//! export API, with the process's peak memory (bounded whatever N).

use std::io::Write;
use std::time::Instant;

use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::http::start;
use agenttrace_schemas::Scope;
use anyhow::ensure;
use clap::Args;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::bench::{bench_server_config, fresh_project, peak_rss_mb, reset_peak_rss, settle};

#[derive(Debug, Clone, Args)]
pub struct ExportBenchArgs {
    /// Observations to generate and export.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
}

pub async fn run_export(
    args: ExportBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let clickhouse = databases.clickhouse();
    let (database, project, key) = fresh_project(databases, "export", &[Scope::Export]).await?;

    writeln!(out, "filling observations with {} rows (server-side)…", args.rows)?;
    let started = Instant::now();
    database
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, parent_observation_id, type, name, start_time_us, \
             end_time_us, level, status_message, input, output, metadata_keys, metadata_values, model, \
             model_parameters, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_cost, \
             output_cost, cache_read_cost, cache_write_cost, total_cost, cost_source, tool_name, tool_call_id, \
             event_id, version) \
             SELECT '{project}', concat('obs-', toString(number)), concat('trace-', toString(intDiv(number, 20))), \
             if(number % 20 = 0, NULL, concat('obs-', toString(number - number % 20))), \
             ['generation', 'tool_call', 'agent_step', 'span'][number % 4 + 1], ['llm', 'Bash', 'turn', 'Edit'][number % 4 + 1], \
             1764000000000000 + number * 1000, 1764000000000000 + number * 1000 + 500000, 'default', NULL, \
             concat('{{\"messages\":[{{\"role\":\"user\",\"content\":\"', hex(rand64(number)), \
                    ' fix the failing checkout test in src/cart.rs and run cargo test\"}}]}}'), \
             '{{\"role\":\"assistant\",\"content\":\"Done: 3 files changed.\"}}', ['agent', 'os'], ['claude-code', 'linux'], \
             if(number % 4 = 0, 'claude-sonnet-4-5', NULL), NULL, 1200 + number % 5000, 300, 8000, 0, NULL, NULL, NULL, NULL, \
             if(number % 4 = 0, toDecimal64(0.0123, 12), NULL), '', if(number % 4 = 1, 'Bash', NULL), NULL, \
             concat('e-', toString(number)), number \
             FROM system.numbers LIMIT {rows}",
            project = project,
            rows = args.rows
        ))
        .await?;
    writeln!(out, "  filled in {:.1} s", started.elapsed().as_secs_f64())?;

    // Baseline: ClickHouse's own Native output of the same rows, read and discarded.
    reset_peak_rss();
    let started = Instant::now();
    let mut response = database
        .query_streaming(
            &format!(
                "SELECT * FROM observations FINAL WHERE project_id = '{}' FORMAT Native",
                project
            ),
            &[("max_block_size", "16384")],
        )
        .await?;
    let mut baseline_bytes = 0u64;
    while let Some(chunk) = response.chunk().await? {
        baseline_bytes += chunk.len() as u64;
    }
    let baseline = started.elapsed().as_secs_f64();
    let baseline_rss = peak_rss_mb();

    let server = start(
        bench_server_config(databases, &database, LoaderOptions::default())?,
        "127.0.0.1:0".parse()?,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let dir = std::env::temp_dir().join(format!("agenttrace-bench-export-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let api_key = format!("{}:{}", key.public_key, key.secret_key);
    writeln!(
        out,
        "\n{} observations, exported through the ETL to disk:",
        args.rows
    )?;
    writeln!(
        out,
        "  {:<28} {:>10.0} rows/s {:>8.1} MB/s  peak RSS {:>6.0} MB  ({:.2} s)",
        "baseline: ClickHouse Native",
        args.rows as f64 / baseline,
        baseline_bytes as f64 / 1e6 / baseline,
        baseline_rss,
        baseline
    )?;
    for format in ["parquet", "arrow"] {
        let path = dir.join(format!("observations.{format}"));
        reset_peak_rss();
        let started = Instant::now();
        let mut summary = Vec::new();
        crate::commands::analyst::export(
            crate::commands::analyst::ExportArgs {
                table: "observations".into(),
                from: None,
                to: None,
                columns: None,
                format: format.into(),
                output: path.clone(),
                api: crate::commands::analyst::ApiArgs {
                    url: format!("http://{}", server.addr),
                    api_key: api_key.clone(),
                },
            },
            &mut summary,
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let rss = peak_rss_mb();
        let bytes = std::fs::metadata(&path)?.len();
        let said = String::from_utf8_lossy(&summary);
        ensure!(
            said.starts_with(&format!("wrote {} rows", args.rows)),
            "export of {format} incomplete: {said}"
        );
        writeln!(
            out,
            "  {:<28} {:>10.0} rows/s {:>8.1} MB/s  peak RSS {:>6.0} MB  ({:.2} s, {:.0} MB file, {:.2}x baseline time)",
            format!("export as {format}"),
            args.rows as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            rss,
            seconds,
            bytes as f64 / 1e6,
            seconds / baseline
        )?;
        std::fs::remove_file(&path)?;
    }
    server.shutdown().await?;
    std::fs::remove_dir_all(&dir)?;
    settle(&clickhouse, &database).await?;
    Ok(())
}
