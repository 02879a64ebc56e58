//! `agenttrace export` and `agenttrace query`: the analyst's side of the export and query APIs.
//!
//! Files are streamed to disk as they arrive (a progress bar shows bytes and rate on a
//! terminal, nothing otherwise), then the row count in the file's footer is checked, so a cut
//! transfer is reported instead of leaving a silently short file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The ETL's URL.
    #[arg(long, env = "AGENTTRACE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// `public_key:secret_key` of a key with the `export` or `query` scope.
    #[arg(long, env = "AGENTTRACE_API_KEY", hide_env_values = true)]
    pub api_key: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// traces, observations, scores, file_operations, terminal_commands, git_links or dead_letters.
    pub table: String,
    /// Start of the time range (RFC 3339), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the time range (RFC 3339), exclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Comma-separated columns (default: all).
    #[arg(long)]
    pub columns: Option<String>,
    #[arg(long, default_value = "parquet", value_parser = ["parquet", "arrow"])]
    pub format: String,
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// One read-only SELECT; it sees your project's rows only.
    pub sql: String,
    #[arg(long, default_value = "json", value_parser = ["json", "arrow", "parquet"])]
    pub format: String,
    /// Print JSON (`{"columns", "rows"}`) even on a terminal; a pipe always gets JSON.
    #[arg(long)]
    pub json: bool,
    /// Where to write the result (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes} received, {bytes_per_sec}, {elapsed}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Sends the request and streams a successful answer into `sink`; returns the bytes written.
async fn download(request: reqwest::RequestBuilder, sink: &mut dyn Write) -> anyhow::Result<u64> {
    let mut response = request.send().await.context("contacting the ETL")?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{status}: {message}");
    }
    let bar = progress_bar();
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.context("the transfer was interrupted")? {
        sink.write_all(&chunk)?;
        bytes += chunk.len() as u64;
        bar.set_position(bytes);
    }
    sink.flush()?;
    bar.finish_and_clear();
    Ok(bytes)
}

/// The row count a finished file declares in its footer.
fn footer_rows(path: &Path, format: &str) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path)?;
    let declared = if format == "parquet" {
        use parquet::file::reader::FileReader;
        let reader = parquet::file::reader::SerializedFileReader::new(file)
            .context("the file is not complete Parquet (the transfer was probably cut)")?;
        reader.metadata().file_metadata().num_rows() as u64
    } else {
        let reader = arrow_ipc::reader::FileReader::try_new(file, None)
            .context("the file is not a complete Arrow IPC file (the transfer was probably cut)")?;
        let row_count = reader
            .custom_metadata()
            .get(agenttrace_etl::analytics::stream::ROW_COUNT_KEY)
            .cloned();
        row_count
            .context("the file has no row count in its footer")?
            .parse()?
    };
    Ok(declared)
}

fn summary(
    out: &mut dyn Write,
    rows: Option<u64>,
    bytes: u64,
    started: Instant,
    path: &Path,
) -> anyhow::Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    let size = bytes as f64 / 1e6;
    match rows {
        Some(rows) => writeln!(
            out,
            "wrote {rows} rows ({size:.1} MB) to {} in {seconds:.2} s ({:.0} rows/s)",
            path.display(),
            rows as f64 / seconds
        )?,
        None => writeln!(out, "wrote {size:.1} MB to {} in {seconds:.2} s", path.display())?,
    }
    Ok(())
}

pub async fn export(args: ExportArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut query: Vec<(&str, &str)> = vec![("format", &args.format)];
    for (name, value) in [("from", &args.from), ("to", &args.to), ("columns", &args.columns)] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    let request = reqwest::Client::new()
        .get(format!(
            "{}/v1/export/{}",
            args.api.url.trim_end_matches('/'),
            args.table
        ))
        .query(&query)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", args.api.api_key),
        );
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?,
    );
    let bytes = download(request, &mut file).await?;
    drop(file);
    let rows = footer_rows(&args.output, &args.format)?;
    summary(out, Some(rows), bytes, started, &args.output)
}

/// A JSON result (ClickHouse's `JSON`: meta, data, rows) for a person (a table, and the row
/// count) or for a program (`{"columns", "rows"}` as one JSON document).
fn print_result(answer: &[u8], as_json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let result: serde_json::Value =
        serde_json::from_slice(answer).context("reading the query's JSON result")?;
    let columns: Vec<String> = result["meta"]
        .as_array()
        .map(|meta| {
            meta.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let rows = result["data"].as_array().cloned().unwrap_or_default();
    if as_json {
        let body = serde_json::json!({ "columns": columns, "rows": rows });
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(&columns);
    for row in &rows {
        table.add_row(columns.iter().map(|column| match &row[column] {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => "∅".to_owned(),
            other => other.to_string(),
        }));
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{} row{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )?;
    Ok(())
}

pub async fn query(args: QueryArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let body = serde_json::json!({ "sql": args.sql, "format": args.format }).to_string();
    let request = reqwest::Client::new()
        .post(format!("{}/v1/query", args.api.url.trim_end_matches('/')))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", args.api.api_key),
        )
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    match &args.output {
        None if args.format == "json" => {
            let mut answer = Vec::new();
            download(request, &mut answer).await?;
            print_result(&answer, args.json || !std::io::stdout().is_terminal(), out)?;
        }
        None => {
            download(request, out).await?;
        }
        Some(path) => {
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
            );
            let bytes = download(request, &mut file).await?;
            drop(file);
            let rows = (args.format != "json")
                .then(|| footer_rows(path, &args.format))
                .transpose()?;
            summary(out, rows, bytes, started, path)?;
        }
    }
    Ok(())
}
