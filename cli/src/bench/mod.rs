//! `agenttrace bench ...`: each benchmark prints a ratio against a baseline run in the same
//! process (see BENCHMARKS.md). Run them with a release build.
//!
//! - [`load`]: the ETL's load path against JSONEachRow inserts and `clickhouse-client`.
//! - [`export`]: export throughput and peak memory.
//! - [`jobs`]: the evaluation job's per-chunk work.
//! - [`edge`]: the edge Worker in workerd.
//! - [`redaction`]: the edge's intake with redaction on vs off.
//! - [`read`]: the read routes on the read layout against the old layout, same rows.

pub mod edge;
pub mod evaluate;
pub mod export;
pub mod ingest;
pub mod jobs;
pub mod judge;
pub mod load;
pub mod read;
pub mod redaction;
pub mod text;
pub mod trace;

use std::time::{Duration, Instant};

use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::clickhouse::quote_identifier;
use agenttrace_etl::control::api_keys::{self, NewKey};
use agenttrace_etl::control::projects;
use agenttrace_etl::http::ServeConfig;
use agenttrace_etl::http::throttle::SignInLimits;
use agenttrace_etl::ingest::signing::Keyring;
use agenttrace_etl::migrate::{MigrationSet, migrate};
use agenttrace_etl::postgres;
use agenttrace_schemas::{Event, Scope, Timestamp};
use anyhow::Context;
use clap::Subcommand;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::agent::SessionGenerator;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load throughput: this loader vs JSONEachRow 1000-row inserts vs clickhouse-client Native.
    Load(load::LoadBenchArgs),
    /// Export throughput and peak memory: N observations to Parquet and Arrow through the ETL.
    Export(export::ExportBenchArgs),
    /// Evaluation throughput and peak memory: N observations through the evaluation job's
    /// per-chunk work (no database needed).
    Jobs(jobs::JobsBenchArgs),
    /// The ETL's CPU per event from signed body to compressed Native, without I/O, vs a bare
    /// JSON scan of the same bodies (reads the model price table from PostgreSQL, if it can).
    Ingest(ingest::IngestBenchArgs),
    /// One evaluation pass over what is new among `--stored` observations vs the scan the job
    /// made before the ingest index: its cost must follow what is new.
    Evaluate(evaluate::EvaluateBenchArgs),
    /// Edge requests/s, events/s and CPU per 100-event request in workerd (needs ./dev.sh up).
    Edge(edge::EdgeBenchArgs),
    /// The edge's CPU per 100-event request with redaction on vs off, in this process (no
    /// database or edge needed).
    Redaction(redaction::RedactionBenchArgs),
    /// Read routes (trace, lists, sessions, metrics) through the ETL on the read layout vs the
    /// old (project_id, id) layout, same rows, filled server-side.
    Read(read::ReadBenchArgs),
    /// The LLM judge job over N new generations against a model server in this process vs bare
    /// calls to it: judgments/s, scheduler CPU per judgment, spend accounted, exactly-once under
    /// a kill.
    Judge(judge::JudgeBenchArgs),
    /// One large trace (10,000 observations) through `GET /v1/traces/{id}` vs its rows read
    /// straight from ClickHouse: what the build's optimization moves.
    Trace(trace::TraceBenchArgs),
}

pub async fn run(
    command: BenchCommand,
    databases: &DatabaseArgs,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    match command {
        BenchCommand::Load(args) => load::run_load(args, databases, out).await,
        BenchCommand::Export(args) => export::run_export(args, databases, out).await,
        BenchCommand::Jobs(args) => jobs::run_jobs(args, out),
        BenchCommand::Ingest(args) => ingest::run_ingest(args, ingest::price_table(databases).await, out),
        BenchCommand::Evaluate(args) => evaluate::run_evaluate(args, databases, out).await,
        BenchCommand::Edge(args) => edge::run_edge(args, databases, out).await,
        BenchCommand::Read(args) => read::run_read(args, databases, out).await,
        BenchCommand::Redaction(args) => redaction::run_redaction(args, out),
        BenchCommand::Trace(args) => trace::run_trace(args, databases, out).await,
        BenchCommand::Judge(args) => judge::run_judge(args, databases, out).await,
    }
}

/// The signing key the in-process ETL and the benchmark's senders share.
pub(crate) const SIGNING_KEYS: &str = "bench:bench-signing-secret-0123456789abcdef";

/// The ETL as benchmarks run it: in-process, against `clickhouse`, with the given loader.
pub(crate) fn bench_server_config(
    databases: &DatabaseArgs,
    clickhouse: &ClickHouse,
    loader: LoaderOptions,
) -> anyhow::Result<ServeConfig> {
    Ok(ServeConfig {
        database_url: databases.database_url.clone(),
        clickhouse: clickhouse.clone(),
        reader: clickhouse.reader(None),
        sealer: None,
        allow_private_model_urls: false,
        keyring: Keyring::parse(SIGNING_KEYS).map_err(anyhow::Error::msg)?,
        key_cache_ttl: Duration::from_secs(60),
        price_refresh: Duration::from_secs(60),
        postgres_pool_size: 16,
        loader,
        sign_in_limits: SignInLimits::default(),
        tls: None,
        metrics_token: None,
    })
}

/// Fresh database `name` on the server with the ClickHouse schema applied.
pub(crate) async fn fresh_database(
    pg: &mut tokio_postgres::Client,
    clickhouse: &ClickHouse,
    name: &str,
) -> anyhow::Result<ClickHouse> {
    let database = clickhouse.with_database(name);
    database
        .execute_on_server(&format!("DROP DATABASE IF EXISTS {}", quote_identifier(name)))
        .await?;
    migrate(pg, &database, &MigrationSet::embedded()?).await?;
    Ok(database)
}

/// A benchmark's own fresh database (`<main>_bench_<name>`) and a new project in the `bench`
/// organization, with a key of `scopes`.
pub(crate) async fn fresh_project(
    databases: &DatabaseArgs,
    name: &str,
    scopes: &[Scope],
) -> anyhow::Result<(ClickHouse, Uuid, NewKey)> {
    let clickhouse = databases.clickhouse();
    let mut pg = postgres::connect(&databases.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    let database = fresh_database(
        &mut pg,
        &clickhouse,
        &format!("{}_bench_{name}", clickhouse.database()),
    )
    .await?;
    let organization = projects::ensure_organization(&pg, "bench").await?;
    let project = projects::create_project(
        &pg,
        organization,
        &format!("bench-{name}-{}", Uuid::now_v7()),
        None,
    )
    .await?
    .id;
    let key = api_keys::create_key(&pg, project, scopes, Some(&format!("bench {name}"))).await?;
    Ok((database, project, key))
}

/// Drops a finished variant's database and waits until the server has no merges running, so
/// one variant's background work does not slow the next one down.
pub(crate) async fn settle(clickhouse: &ClickHouse, database: &ClickHouse) -> anyhow::Result<()> {
    let name = quote_identifier(database.database());
    clickhouse
        .execute_on_server(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    quiesce(clickhouse, Duration::from_secs(120)).await
}

/// Waits (at most `timeout`) until the server has no merges running.
pub(crate) async fn quiesce(clickhouse: &ClickHouse, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        // Outside any database: a fresh stack has not created the environment's yet.
        let merges = clickhouse
            .query_on_server("SELECT count() FROM system.merges FORMAT TabSeparated")
            .await?;
        if merges.trim() == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub(crate) fn generate(events: usize) -> Vec<Event<'static>> {
    let mut generator = SessionGenerator::new(2026);
    let now = Timestamp::now().as_micros();
    let mut all = Vec::with_capacity(events + 64);
    let mut session = 0i64;
    while all.len() < events {
        // Spread sessions over the last hours, like many agents reporting at once.
        let end = Timestamp::from_micros(now - (session % 7200) * 1_000_000);
        all.extend(generator.session(end, 6));
        session += 1;
    }
    all.truncate(events);
    all
}

/// Resets this process's peak RSS (Linux `clear_refs`), so each measurement starts fresh.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS in MB since the last reset.
pub(crate) fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (on-CPU nanoseconds, from the scheduler) of this process's threads whose name
/// starts with one of `prefixes`, so a component's CPU is measured apart from the rest of the
/// process.
pub(crate) fn threads_cpu(prefixes: &[&str]) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| prefixes.iter().any(|prefix| name.starts_with(prefix)))
        })
        .filter_map(|task| {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            schedstat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}
