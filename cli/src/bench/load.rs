//! `agenttrace bench load`: this loader against a baseline and a ceiling, in one run on the
//! same ClickHouse.
//!
//! (a) the ETL end to end: signed batches over HTTP from many concurrent senders, verified,
//!     validated, priced, converted to Arrow and group-committed as Native/ArrowStream;
//! (b) the baseline: the same rows as `JSONEachRow` in 1000-row inserts from the same senders
//!     (how the main open-source peer loads), bodies prepared before the clock starts;
//! (c) the ceiling: `clickhouse-client` inserting the same rows pre-encoded as Native, one
//!     insert per table.
//!
//! Each variant loads into its own fresh database, and the row counts are checked afterwards.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::clickhouse::catalog::{COST_SCALE, Table};
use agenttrace_etl::clickhouse::compression::Compression;
use agenttrace_etl::clickhouse::insert::{WireFormat, insert_statement};
use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_etl::http::start;
use agenttrace_etl::ingest::to_arrow::TableBatches;
use agenttrace_etl::postgres;
use agenttrace_schemas::{Scope, Timestamp};
use anyhow::{Context, bail, ensure};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float64Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use clap::Args;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::bench::{SIGNING_KEYS, bench_server_config, fresh_database, generate, settle, threads_cpu};
use crate::commands::serve::CompressionArg;

/// The name of the ETL's runtime threads in (a).
const ETL_RUNTIME: &str = "etl-runtime";
/// The ETL's threads in (a): its runtime's and its CPU pool's.
const ETL_THREADS: [&str; 2] = [ETL_RUNTIME, agenttrace_etl::cpu::THREAD_NAME];
use crate::send::{BatchClient, ProjectKey};

#[derive(Debug, Clone, Args)]
pub struct LoadBenchArgs {
    /// Events to load in each variant.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Concurrent senders for (a) and (b).
    #[arg(long, default_value_t = 32)]
    pub senders: usize,
    /// Events per signed batch in (a). The edge flushes a buffer when it holds 1,000 events and
    /// delivers up to 5,000 at once; at 20,000 events/s its deliveries carry 900–2,200.
    #[arg(long, default_value_t = 1000)]
    pub batch_events: usize,
    /// Rows per insert in the baseline (b).
    #[arg(long, default_value_t = 1000)]
    pub baseline_rows_per_insert: usize,
    /// Longest time rows wait for other requests' rows to share an insert, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub max_insert_wait_ms: u64,
    /// How long an insert still waits, once no request is being prepared, for another to begin,
    /// in milliseconds.
    #[arg(long, default_value_t = LoaderOptions::default().insert_linger.as_millis() as u64)]
    pub insert_linger_ms: u64,
    /// Concurrent inserts per table in (a).
    #[arg(long, default_value_t = LoaderOptions::default().inserts_in_flight)]
    pub inserts_in_flight: usize,
    /// How the loader's inserts are compressed.
    #[arg(long, value_enum, default_value_t = CompressionArg::Lz4)]
    pub compression: CompressionArg,
    /// gzip level (1–9) with `--compression gzip`.
    #[arg(long, default_value_t = 1)]
    pub gzip_level: u32,
    /// ClickHouse native TCP port, for clickhouse-client in (c).
    #[arg(long, env = "CLICKHOUSE_TCP_PORT", default_value_t = 9000)]
    pub clickhouse_tcp_port: u16,
    /// Skip variants: any of a, b, c.
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
}

async fn count_rows(clickhouse: &ClickHouse) -> anyhow::Result<usize> {
    let mut total = 0;
    for table in Table::ALL {
        let count = clickhouse
            .query_text(&format!(
                "SELECT count() FROM {} FORMAT TabSeparated",
                table.name()
            ))
            .await?;
        total += count.trim().parse::<usize>()?;
    }
    Ok(total)
}

/// The count of INSERT queries since the server the bench talks to started (`system.events`).
async fn inserts_so_far(clickhouse: &ClickHouse) -> anyhow::Result<u64> {
    let count = clickhouse
        .query_text("SELECT sum(value) FROM system.events WHERE event = 'InsertQuery' FORMAT TabSeparated")
        .await?;
    Ok(count.trim().parse()?)
}

/// Runs `jobs` on `senders` concurrent tasks, each taking the next job until none are left.
async fn run_concurrently<J, F, Fut>(jobs: Vec<J>, senders: usize, work: F) -> anyhow::Result<Duration>
where
    J: Send + Sync + 'static,
    F: Fn(Arc<J>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let jobs: Arc<Vec<Arc<J>>> = Arc::new(jobs.into_iter().map(Arc::new).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::<anyhow::Result<()>>::new();
    for _ in 0..senders {
        let (jobs, next, work) = (jobs.clone(), next.clone(), work.clone());
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(index) else { return Ok(()) };
                work(job.clone()).await?;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(started.elapsed())
}

/// ClickHouse `JSONEachRow` for a batch: one object per row, columns by name.
fn json_each_row(batch: &RecordBatch, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let schema = batch.schema();
    for row in 0..batch.num_rows() {
        out.push(b'{');
        for (i, (field, column)) in schema.fields().iter().zip(batch.columns()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, field.name())?;
            out.push(b':');
            json_value(column.as_ref(), row, out)?;
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(())
}

fn json_value(column: &dyn Array, row: usize, out: &mut Vec<u8>) -> anyhow::Result<()> {
    if column.is_null(row) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    match column.data_type() {
        DataType::Utf8 => serde_json::to_writer(&mut *out, column.as_string::<i32>().value(row))?,
        DataType::UInt8 => write!(out, "{}", column.as_primitive::<UInt8Type>().value(row))?,
        DataType::UInt16 => write!(out, "{}", column.as_primitive::<UInt16Type>().value(row))?,
        DataType::Int32 => write!(out, "{}", column.as_primitive::<Int32Type>().value(row))?,
        DataType::Int64 => write!(out, "{}", column.as_primitive::<Int64Type>().value(row))?,
        DataType::UInt32 => write!(out, "{}", column.as_primitive::<UInt32Type>().value(row))?,
        DataType::UInt64 => write!(out, "{}", column.as_primitive::<UInt64Type>().value(row))?,
        DataType::Float64 => {
            serde_json::to_writer(&mut *out, &column.as_primitive::<Float64Type>().value(row))?
        }
        DataType::Decimal128(_, _) => {
            let raw = column.as_primitive::<Decimal128Type>().value(row);
            let scale = 10i128.pow(COST_SCALE as u32);
            let sign = if raw < 0 { "-" } else { "" };
            write!(out, "{sign}{}.{:012}", raw.abs() / scale, raw.abs() % scale)?;
        }
        DataType::List(_) => {
            let list = column.as_list::<i32>().value(row);
            out.push(b'[');
            for i in 0..list.len() {
                if i > 0 {
                    out.push(b',');
                }
                json_value(list.as_ref(), i, out)?;
            }
            out.push(b']');
        }
        other => bail!("no JSON encoding for {other}"),
    }
    Ok(())
}

struct Measurement {
    name: &'static str,
    events: usize,
    elapsed: Duration,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run_load(
    args: LoadBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let skip = |variant: &str| args.skip.iter().any(|s| s == variant);
    let clickhouse = databases.clickhouse();
    let version = clickhouse.version().await?;
    let mut pg = postgres::connect(&databases.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    writeln!(out, "ClickHouse {version}; generating {} events…", args.events)?;
    let events = generate(args.events);

    // Project and key for (a), and the rows every variant loads.
    let organization = projects::ensure_organization(&pg, "bench").await?;
    let project =
        projects::create_project(&pg, organization, &format!("bench-{}", Uuid::now_v7()), None).await?;
    let key = api_keys::create_key(&pg, project.id, &[Scope::Ingest], Some("bench")).await?;
    let project_key = ProjectKey {
        project_id: project.id,
        public_key: key.public_key.clone(),
    };
    let mut tables = TableBatches::new(&project.id.to_string(), &project.name);
    for event in &events {
        tables.push(event, None)?;
    }
    let batches = tables.finish("bench", Timestamp::now())?;
    let base = clickhouse.database().to_owned();
    let mut results = Vec::new();
    let mut etl_cpu = None;
    let mut etl_inserts = None;

    if !skip("a") {
        let database = fresh_database(&mut pg, &clickhouse, &format!("{base}_bench_a")).await?;
        let bodies: Vec<Vec<u8>> = {
            let client = BatchClient::new("http://unused", SIGNING_KEYS, "bench")?;
            events
                .chunks(args.batch_events)
                .map(|chunk| client.events_body(&project_key, chunk))
                .collect()
        };
        // The ETL runs on a runtime of its own whose threads are named, so its CPU is measured
        // apart from the senders' (which share this process).
        let etl_runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(ETL_RUNTIME)
            // Blocking-pool threads must outlive the run, or their CPU time leaves with them.
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()?;
        let config = bench_server_config(
            databases,
            &database,
            LoaderOptions {
                compression: args.compression.with_level(args.gzip_level),
                max_insert_wait: Duration::from_millis(args.max_insert_wait_ms),
                insert_linger: Duration::from_millis(args.insert_linger_ms),
                inserts_in_flight: args.inserts_in_flight,
                ..LoaderOptions::default()
            },
        )?;
        let server = etl_runtime
            .spawn(start(config, "127.0.0.1:0".parse()?))
            .await?
            .map_err(anyhow::Error::msg)?;
        let client = BatchClient::new(&format!("http://{}", server.addr), SIGNING_KEYS, "bench")?;
        let etl_cpu_before = threads_cpu(&ETL_THREADS);
        let inserts_before = inserts_so_far(&clickhouse).await?;
        let elapsed = run_concurrently(bodies, args.senders, move |body: Arc<Vec<u8>>| {
            let client = client.clone();
            async move {
                let signed_at = Timestamp::now().as_micros() / 1_000_000;
                let result = client.post_body(body.to_vec(), signed_at, None).await?;
                result.response()?;
                Ok(())
            }
        })
        .await?;
        etl_cpu = Some(threads_cpu(&ETL_THREADS) - etl_cpu_before);
        // Saturating: a ClickHouse restarted during the run starts counting again from zero.
        etl_inserts = Some(inserts_so_far(&clickhouse).await?.saturating_sub(inserts_before));
        etl_runtime.spawn(server.shutdown()).await??;
        etl_runtime.shutdown_background();
        let loaded = count_rows(&database).await?;
        ensure!(
            loaded == args.events,
            "(a) loaded {loaded} rows, expected {}",
            args.events
        );
        settle(&clickhouse, &database).await?;
        results.push(Measurement {
            name: "a  this loader, end to end",
            events: args.events,
            elapsed,
        });
    }

    if !skip("b") {
        let database = fresh_database(&mut pg, &clickhouse, &format!("{base}_bench_b")).await?;
        let mut inserts: Vec<(String, Vec<u8>)> = Vec::new();
        for (table, batch) in &batches {
            let statement =
                insert_statement(*table, WireFormat::Native).replace("FORMAT Native", "FORMAT JSONEachRow");
            let mut offset = 0;
            while offset < batch.num_rows() {
                let rows = args.baseline_rows_per_insert.min(batch.num_rows() - offset);
                let mut body = Vec::new();
                json_each_row(&batch.slice(offset, rows), &mut body)?;
                inserts.push((statement.clone(), body));
                offset += rows;
            }
        }
        let target = database.clone();
        let elapsed = run_concurrently(inserts, args.senders, move |insert: Arc<(String, Vec<u8>)>| {
            let target = target.clone();
            async move {
                target
                    .insert(&insert.0, insert.1.clone().into(), Compression::None)
                    .await?;
                Ok(())
            }
        })
        .await?;
        let loaded = count_rows(&database).await?;
        ensure!(
            loaded == args.events,
            "(b) loaded {loaded} rows, expected {}",
            args.events
        );
        settle(&clickhouse, &database).await?;
        results.push(Measurement {
            name: "b  JSONEachRow, 1000-row inserts",
            events: args.events,
            elapsed,
        });
    }

    if !skip("c") {
        let name = format!("{base}_bench_c");
        let database = fresh_database(&mut pg, &clickhouse, &name).await?;
        let dir = std::env::temp_dir().join(format!("agenttrace-bench-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for (table, batch) in &batches {
            let path = dir.join(format!("{}.native", table.name()));
            std::fs::write(&path, WireFormat::Native.encode(std::slice::from_ref(batch))?)?;
            files.push((insert_statement(*table, WireFormat::Native), path));
        }
        let started = Instant::now();
        for (statement, path) in &files {
            let status = std::process::Command::new("clickhouse-client")
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &args.clickhouse_tcp_port.to_string(),
                ])
                .args(["--database", &name, "--query", statement])
                .stdin(std::fs::File::open(path)?)
                .status()
                .context("running clickhouse-client (installed by scripts/stack.sh)")?;
            ensure!(status.success(), "clickhouse-client failed on {}", path.display());
        }
        let elapsed = started.elapsed();
        std::fs::remove_dir_all(&dir)?;
        let loaded = count_rows(&database).await?;
        ensure!(
            loaded == args.events,
            "(c) loaded {loaded} rows, expected {}",
            args.events
        );
        settle(&clickhouse, &database).await?;
        results.push(Measurement {
            name: "c  clickhouse-client, Native",
            events: args.events,
            elapsed,
        });
    }

    writeln!(
        out,
        "\n{} events, {} senders, {} events per signed batch, inserts compressed as {:?}:",
        args.events,
        args.senders,
        args.batch_events,
        args.compression.with_level(args.gzip_level)
    )?;
    for result in &results {
        writeln!(
            out,
            "  {:<34} {:>9.0} events/s  ({:.2} s)",
            result.name,
            result.rate(),
            result.elapsed.as_secs_f64()
        )?;
    }
    let rate = |prefix: &str| {
        results
            .iter()
            .find(|r| r.name.starts_with(prefix))
            .map(Measurement::rate)
    };
    if let Some(cpu) = etl_cpu {
        writeln!(
            out,
            "  ETL CPU in (a): {:.2} µs per event, senders excluded   (target ≤ 2.5)",
            cpu.as_secs_f64() * 1e6 / args.events as f64
        )?;
    }
    if let Some(inserts) = etl_inserts {
        writeln!(
            out,
            "  inserts in (a): {inserts} ({} in flight per table), {:.0} events per insert",
            args.inserts_in_flight,
            args.events as f64 / inserts.max(1) as f64
        )?;
    }
    if let (Some(a), Some(b)) = (rate("a"), rate("b")) {
        writeln!(out, "  a/b = {:.2}   (target ≥ 2)", a / b)?;
    }
    if let (Some(a), Some(c)) = (rate("a"), rate("c")) {
        writeln!(out, "  a/c = {:.2}   (target ≥ 0.8)", a / c)?;
    }
    if let (Some(b), Some(c)) = (rate("b"), rate("c")) {
        writeln!(
            out,
            "  c/b = {:.2}   (headroom of the ceiling over the baseline)",
            c / b
        )?;
    }
    Ok(())
}
