//! The `agenttrace` command. A library as well, so tests run the real commands in-process.

pub mod analyst;
pub mod bench;
pub mod bench_edge;
pub mod bench_jobs;
pub mod demo;
pub mod send;

use std::io::Write;
use std::path::PathBuf;

use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
use agenttrace_etl::{keys, migrate, postgres};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "agenttrace",
    version,
    about = "AgentTrace: observability pipeline for AI agents"
)]
pub struct Cli {
    #[command(flatten)]
    pub databases: DatabaseArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL (transactional data).
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "postgres://postgres@127.0.0.1:5432/agenttrace"
    )]
    pub database_url: String,
    /// ClickHouse HTTP URL (analytical data).
    #[arg(
        long,
        env = "CLICKHOUSE_URL",
        global = true,
        default_value = "http://127.0.0.1:8123"
    )]
    pub clickhouse_url: String,
    #[arg(
        long,
        env = "CLICKHOUSE_DATABASE",
        global = true,
        default_value = "agenttrace"
    )]
    pub clickhouse_database: String,
    #[arg(long, env = "CLICKHOUSE_USER", global = true)]
    pub clickhouse_user: Option<String>,
    #[arg(long, env = "CLICKHOUSE_PASSWORD", global = true, hide_env_values = true)]
    pub clickhouse_password: Option<String>,
}

impl DatabaseArgs {
    pub fn clickhouse(&self) -> ClickHouse {
        ClickHouse::new(ClickHouseConfig {
            url: self.clickhouse_url.clone(),
            database: self.clickhouse_database.clone(),
            user: self.clickhouse_user.clone(),
            password: self.clickhouse_password.clone(),
        })
    }

    async fn postgres(&self) -> anyhow::Result<tokio_postgres::Client> {
        postgres::connect(&self.database_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact(&self.database_url)))
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WireFormatArg {
    /// Choose from the server version (ArrowStream on 21.x and later, Native before).
    Auto,
    Native,
    ArrowStream,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[arg(long, env = "AGENTTRACE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Secrets the edge signs batches with: `id:secret[,id:secret...]` (several during rotation).
    #[arg(long, env = "AGENTTRACE_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: String,
    /// How long API key answers are cached (0 disables the cache).
    #[arg(long, env = "AGENTTRACE_KEY_CACHE_TTL_SECS", default_value_t = 30)]
    pub key_cache_ttl_secs: u64,
    #[arg(long, default_value_t = 60)]
    pub price_refresh_secs: u64,
    #[arg(long, default_value_t = 16)]
    pub postgres_pool_size: usize,
    /// Most rows coalesced into one ClickHouse insert.
    #[arg(long, default_value_t = 200_000)]
    pub max_rows_per_insert: usize,
    /// Longest time rows wait for other requests' rows to share an insert, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub max_insert_wait_ms: u64,
    /// Concurrent inserts per table.
    #[arg(long, default_value_t = 2)]
    pub inserts_in_flight: usize,
    /// gzip level for insert bodies, 0 to send them uncompressed.
    #[arg(long, default_value_t = 1)]
    pub gzip_level: u32,
    #[arg(long, value_enum, default_value_t = WireFormatArg::Auto)]
    pub wire_format: WireFormatArg,
}

impl ServeArgs {
    pub fn config(&self, databases: &DatabaseArgs) -> anyhow::Result<agenttrace_etl::server::ServeConfig> {
        use agenttrace_etl::loader::{LoaderOptions, WireFormat};
        use std::time::Duration;
        Ok(agenttrace_etl::server::ServeConfig {
            database_url: databases.database_url.clone(),
            clickhouse: databases.clickhouse(),
            keyring: agenttrace_etl::auth::Keyring::parse(&self.signing_keys).map_err(anyhow::Error::msg)?,
            key_cache_ttl: Duration::from_secs(self.key_cache_ttl_secs),
            price_refresh: Duration::from_secs(self.price_refresh_secs),
            postgres_pool_size: self.postgres_pool_size,
            loader: LoaderOptions {
                max_rows_per_insert: self.max_rows_per_insert,
                max_insert_wait: Duration::from_millis(self.max_insert_wait_ms),
                inserts_in_flight: self.inserts_in_flight,
                gzip_level: (self.gzip_level > 0).then_some(self.gzip_level),
                format: match self.wire_format {
                    WireFormatArg::Auto => None,
                    WireFormatArg::Native => Some(WireFormat::Native),
                    WireFormatArg::ArrowStream => Some(WireFormat::ArrowStream),
                },
                ..LoaderOptions::default()
            },
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Send as an agent does, through the edge at this URL (with the key file's secret key).
    #[arg(long, env = "AGENTTRACE_EDGE_URL", conflicts_with = "etl_url")]
    pub edge_url: Option<String>,
    /// Or send signed batches straight to the ETL at this URL, as the edge does.
    #[arg(long, env = "AGENTTRACE_ETL_URL")]
    pub etl_url: Option<String>,
    /// The edge's signing key (`id:secret`), to send straight to the ETL.
    #[arg(long, env = "AGENTTRACE_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: Option<String>,
    /// JSON file with `project_id`, `public_key` and `secret_key` (what `project create
    /// --json` prints).
    #[arg(long)]
    pub key_file: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    #[arg(long, default_value_t = 6)]
    pub turns: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also run the demo dataset's two experiments (creates the dataset once).
    #[arg(long)]
    pub experiments: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ETL service (signed batches in, ClickHouse out).
    Serve(ServeArgs),
    /// Send realistic coding-agent sessions, then show what landed in ClickHouse.
    Demo(DemoArgs),
    /// Export a table of your project as Parquet or Arrow (through the ETL's export API).
    Export(analyst::ExportArgs),
    /// Run one read-only SELECT over your project's data (through the ETL's query API).
    Query(analyst::QueryArgs),
    /// Manage evaluators (what the evaluation job scores observations with).
    #[command(subcommand)]
    Evaluator(EvaluatorCommand),
    /// Scheduled jobs: run one now, or see recent runs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Benchmarks (run them with a release build).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Apply pending PostgreSQL and ClickHouse migrations (safe to run again).
    Migrate {
        /// Read migrations from this directory instead of those built into the binary.
        #[arg(long)]
        migrations_dir: Option<PathBuf>,
    },
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum EvaluatorCommand {
    /// Add an evaluator to a project (kept as is if one with that name exists).
    Add {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        /// regex, contains, not_contains, valid_json, json_schema, latency_threshold,
        /// cost_threshold, token_threshold, tool_call_failure, exact_match, fuzzy_match.
        #[arg(long)]
        kind: String,
        /// Kind-specific JSON, e.g. '{"pattern": "TODO"}', '{"max_ms": 5000}',
        /// '{"schema": {"type": "object"}}' or '{"threshold": 0.8}'.
        #[arg(long, default_value = "{}")]
        config: String,
        /// A cron schedule of its own (`sec min hour day month weekday`); without one the
        /// evaluator runs with the `evaluate` job.
        #[arg(long)]
        schedule: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run one job now (recorded like a scheduled run): evaluate, experiment_rollups,
    /// retention, daily_costs, or evaluate:<evaluator id> for an evaluator with its own schedule.
    Run { job: String },
    /// Run jobs on their cron schedules until stopped (several replicas are safe).
    Schedule {
        /// `JOB=CRON` with seconds (`sec min hour day month weekday`); repeat for several jobs.
        #[arg(long = "cron", default_values_t = vec![
            "evaluate=0 * * * * *".to_owned(),
            "experiment_rollups=30 */5 * * * *".to_owned(),
            "retention=0 0 3 * * *".to_owned(),
            "daily_costs=0 30 * * * *".to_owned(),
        ])]
        crons: Vec<String>,
    },
    /// Show the most recent runs of every job, failures first to catch the eye.
    Status {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load throughput: this loader vs JSONEachRow 1000-row inserts vs clickhouse-client Native.
    Load(bench::LoadBenchArgs),
    /// Export throughput and peak memory: N observations to Parquet and Arrow through the ETL.
    Export(bench::ExportBenchArgs),
    /// Evaluation throughput and peak memory: N observations through the evaluation job's
    /// per-chunk work (no database needed).
    Jobs(bench_jobs::JobsBenchArgs),
    /// Edge requests/s, events/s and CPU per 100-event request in workerd (needs ./dev.sh up).
    Edge(bench_edge::EdgeBenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and its first API key (the secret is printed once).
    Create {
        name: String,
        /// Organization name; created when missing.
        #[arg(long, default_value = "default")]
        organization: String,
        /// Delete events older than this many days (default: keep forever).
        #[arg(long)]
        retention_days: Option<i32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List active projects.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a project (the secret is printed once).
    Create {
        #[arg(long)]
        project: Uuid,
        /// Repeat for several: ingest, export, query, admin.
        #[arg(long = "scope", default_values_t = vec!["ingest".to_owned()])]
        scopes: Vec<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its public key; it stops working at once (within the cache TTL).
    Revoke { public_key: String },
    /// List a project's keys (never their secrets).
    List {
        #[arg(long)]
        project: Uuid,
    },
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Hides the password in a connection URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn print_key(out: &mut dyn Write, key: &keys::NewKey, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let value = json!({
            "project_id": key.project_id,
            "public_key": key.public_key,
            "secret_key": key.secret_key,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "project_id: {}", key.project_id)?;
        writeln!(out, "public_key: {}", key.public_key)?;
        writeln!(out, "secret_key: {}", key.secret_key)?;
        writeln!(out, "The secret key is shown only now; store it safely.")?;
    }
    Ok(())
}

/// Where the demo sends: through the edge, or straight to the ETL.
enum DemoTransport {
    Edge(send::EdgeClient),
    Etl(send::BatchClient, send::ProjectKey),
}

impl DemoTransport {
    /// Sends one request; (accepted, rejected) events.
    async fn send(&self, events: &[agenttrace_schemas::Event]) -> anyhow::Result<(usize, usize)> {
        match self {
            DemoTransport::Edge(client) => {
                let response = client.send(events).await?;
                Ok((response.accepted, response.rejected.len()))
            }
            DemoTransport::Etl(client, key) => {
                let response = client.send(key, events).await?.response()?;
                Ok((response.accepted as usize, response.rejected.len()))
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct DemoKey {
    project_id: Uuid,
    public_key: String,
    secret_key: Option<String>,
}

async fn run_demo(args: DemoArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let key: DemoKey = serde_json::from_slice(
        &std::fs::read(&args.key_file).with_context(|| format!("reading {}", args.key_file.display()))?,
    )
    .with_context(|| format!("{} must hold project_id and public_key", args.key_file.display()))?;
    let transport = match (&args.edge_url, &args.etl_url) {
        (Some(edge_url), _) => {
            let secret = key.secret_key.as_deref().with_context(|| {
                format!(
                    "{} has no secret_key to send through the edge",
                    args.key_file.display()
                )
            })?;
            DemoTransport::Edge(send::EdgeClient::new(edge_url, &key.public_key, secret))
        }
        (None, etl_url) => {
            let signing_keys = args
                .signing_keys
                .as_deref()
                .context("sending straight to the ETL needs --signing-keys (AGENTTRACE_SIGNING_KEYS)")?;
            let client = send::BatchClient::new(
                etl_url.as_deref().unwrap_or("http://127.0.0.1:8080"),
                signing_keys,
                "demo",
            )?;
            let project = send::ProjectKey {
                project_id: key.project_id,
                public_key: key.public_key.clone(),
            };
            DemoTransport::Etl(client, project)
        }
    };
    let mut generator = demo::SessionGenerator::new(args.seed);
    let (mut accepted, mut rejected) = (0, 0);
    for session in 0..args.sessions {
        let end = agenttrace_schemas::Timestamp::from_micros(
            agenttrace_schemas::Timestamp::now().as_micros() - (args.sessions - session) as i64 * 60_000_000,
        );
        let events = generator.session(end, args.turns);
        let (a, r) = transport.send(&events).await?;
        accepted += a;
        rejected += r;
    }
    writeln!(
        out,
        "sent {} sessions: {accepted} events accepted, {rejected} rejected",
        args.sessions
    )?;
    let mut total_accepted = accepted;
    if args.experiments {
        let pg = databases.postgres().await?;
        let (items, experiments) = demo_experiments(&pg, key.project_id).await?;
        let (mut accepted, mut rejected) = (0, 0);
        for (experiment_id, model, accuracy) in &experiments {
            let end = agenttrace_schemas::Timestamp::now();
            let events = generator.experiment_run(end, experiment_id, model, &items, *accuracy);
            let (a, r) = transport.send(&events).await?;
            accepted += a;
            rejected += r;
        }
        total_accepted += accepted;
        writeln!(
            out,
            "ran {} experiments over the {}-item demo dataset: {accepted} events accepted, {rejected} rejected",
            experiments.len(),
            items.len()
        )?;
    }
    if matches!(transport, DemoTransport::Edge(_)) {
        wait_until_loaded(databases, key.project_id, total_accepted).await?;
    }
    let clickhouse = databases.clickhouse();
    writeln!(out, "in ClickHouse for project {}:", key.project_id)?;
    for table in agenttrace_etl::tables::Table::events().map(|t| t.name()) {
        let count = clickhouse
            .query_text(&format!(
                "SELECT count() FROM {table} FINAL WHERE project_id = {} FORMAT TabSeparated",
                agenttrace_etl::clickhouse::quote(&key.project_id.to_string())
            ))
            .await?;
        writeln!(out, "  {table:<18} {}", count.trim())?;
    }
    let cost = clickhouse
        .query_text(&format!(
            "SELECT ifNull(model, '?'), count(), sum(input_tokens + cache_read_tokens), sum(output_tokens), \
             toString(sum(ifNull(total_cost, toDecimal64(0, 12)))) FROM observations FINAL \
             WHERE project_id = {} AND type = 'generation' GROUP BY model ORDER BY model FORMAT TabSeparated",
            agenttrace_etl::clickhouse::quote(&key.project_id.to_string())
        ))
        .await?;
    writeln!(
        out,
        "generations by model (calls, input tokens, output tokens, cost USD):"
    )?;
    for line in cost.lines() {
        writeln!(out, "  {}", line.replace('\t', "  "))?;
    }
    Ok(())
}

/// The edge buffers events for up to its flush age: waits until ClickHouse holds at least
/// `events` rows for the project (a re-run replaces rows, so the count is a lower bound).
async fn wait_until_loaded(databases: &DatabaseArgs, project: Uuid, events: usize) -> anyhow::Result<()> {
    let clickhouse = databases.clickhouse();
    let tables: Vec<String> = agenttrace_etl::tables::Table::events()
        .map(|t| {
            format!(
                "(SELECT count() FROM {} FINAL WHERE project_id = {})",
                t.name(),
                agenttrace_etl::clickhouse::quote(&project.to_string())
            )
        })
        .collect();
    let sql = format!("SELECT {} FORMAT TabSeparated", tables.join(" + "));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let loaded: usize = clickhouse.query_text(&sql).await?.trim().parse().unwrap_or(0);
        if loaded >= events {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "after 60 s ClickHouse holds {loaded} of the {events} events the edge accepted; is the ETL running?"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The demo dataset and its two experiments (a baseline and a better prompt), created once:
/// the items, and per experiment its id, model and how often it answers exactly.
async fn demo_experiments(
    pg: &tokio_postgres::Client,
    project: Uuid,
) -> anyhow::Result<(Vec<demo::DatasetItem>, Vec<(String, &'static str, f64)>)> {
    let describe = |e: tokio_postgres::Error| anyhow::anyhow!(agenttrace_etl::postgres::describe(&e));
    let dataset: Uuid = pg
        .query_one(
            "INSERT INTO datasets (project_id, name, description) VALUES ($1, 'coding-questions', $2)
             ON CONFLICT (project_id, name) DO UPDATE SET description = EXCLUDED.description RETURNING id",
            &[&project, &"Short questions a coding agent should answer exactly"],
        )
        .await
        .map_err(describe)?
        .get(0);
    let existing = pg
        .query(
            "SELECT id::text, input->>'question', expected_output #>> '{}' FROM dataset_items
             WHERE dataset_id = $1 ORDER BY created_at, id",
            &[&dataset],
        )
        .await
        .map_err(describe)?;
    let mut items: Vec<demo::DatasetItem> = existing
        .iter()
        .map(|row| demo::DatasetItem {
            id: row.get(0),
            question: row.get(1),
            answer: row.get(2),
        })
        .collect();
    if items.is_empty() {
        for (question, answer) in demo::DATASET_ITEMS {
            let id: Uuid = pg
                .query_one(
                    "INSERT INTO dataset_items (dataset_id, input, expected_output) VALUES ($1, $2, $3) RETURNING id",
                    &[&dataset, &serde_json::json!({ "question": question }), &serde_json::json!(answer)],
                )
                .await
                .map_err(describe)?
                .get(0);
            items.push(demo::DatasetItem {
                id: id.to_string(),
                question: (*question).to_owned(),
                answer: (*answer).to_owned(),
            });
        }
    }
    let mut experiments = Vec::new();
    for (name, model, accuracy) in [
        ("baseline-prompt", "gpt-4.1-mini", 0.55),
        ("few-shot-prompt", "gpt-4.1-mini", 0.8),
    ] {
        let id: Uuid = pg
            .query_one(
                "INSERT INTO experiments (project_id, dataset_id, name) VALUES ($1, $2, $3)
                 ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                &[&project, &dataset, &name],
            )
            .await
            .map_err(describe)?
            .get(0);
        experiments.push((id.to_string(), model, accuracy));
    }
    Ok((items, experiments))
}

async fn run_serve(args: ServeArgs, databases: &DatabaseArgs) -> anyhow::Result<()> {
    let server = agenttrace_etl::server::start(args.config(databases)?, args.listen)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight batches");
    server.shutdown().await?;
    Ok(())
}

pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => run_serve(args, &cli.databases).await?,
        Command::Demo(args) => run_demo(args, &cli.databases, out).await?,
        Command::Export(args) => analyst::export(args, out).await?,
        Command::Evaluator(EvaluatorCommand::Add {
            project,
            name,
            kind,
            config,
            schedule,
        }) => {
            let config: serde_json::Value =
                serde_json::from_str(&config).with_context(|| format!("--config is not JSON: {config}"))?;
            if let Some(schedule) = &schedule {
                agenttrace_jobs::schedule::parse_cron(schedule)
                    .map_err(|e| anyhow::anyhow!("--schedule: {e}"))?;
            }
            let pg = cli.databases.postgres().await?;
            let added = pg
                .execute(
                    "INSERT INTO evaluators (project_id, name, kind, config, schedule) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (project_id, name) DO NOTHING",
                    &[&project, &name, &kind, &config, &schedule],
                )
                .await
                .map_err(|e| anyhow::anyhow!(agenttrace_etl::postgres::describe(&e)))?;
            let state = if added == 1 { "added" } else { "exists" };
            writeln!(out, "{state}: evaluator {name} ({kind})")?;
        }
        Command::Jobs(JobsCommand::Run { job }) => {
            let pg = cli.databases.postgres().await?;
            match agenttrace_jobs::run_job(&job, &pg, &cli.databases.clickhouse(), None).await? {
                agenttrace_jobs::JobOutcome::Skipped => {
                    writeln!(out, "{job}: another runner is running it; skipped")?
                }
                agenttrace_jobs::JobOutcome::Succeeded { summary, .. } => writeln!(out, "{job}: {summary}")?,
            }
        }
        Command::Jobs(JobsCommand::Schedule { crons }) => {
            use agenttrace_jobs::schedule::{ScheduledJob, run_scheduler};
            let jobs = crons
                .iter()
                .map(|spec| ScheduledJob::parse(spec))
                .collect::<Result<Vec<_>, _>>();
            let jobs = jobs.map_err(anyhow::Error::msg)?;
            for job in &jobs {
                tracing::info!(job = %job.job, schedule = %job.schedule, "scheduled");
            }
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            };
            run_scheduler(
                jobs,
                cli.databases.database_url.clone(),
                cli.databases.clickhouse(),
                shutdown,
            )
            .await;
        }
        Command::Jobs(JobsCommand::Status { limit }) => {
            let pg = cli.databases.postgres().await?;
            let runs = agenttrace_jobs::runs::recent_runs(&pg, limit).await?;
            let failing: Vec<_> = runs.iter().filter(|r| r.status == "failed").collect();
            for run in failing
                .iter()
                .copied()
                .chain(runs.iter().filter(|r| r.status != "failed"))
            {
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
        Command::Query(args) => analyst::query(args, out).await?,
        Command::Bench(BenchCommand::Load(args)) => bench::run_load(args, &cli.databases, out).await?,
        Command::Bench(BenchCommand::Export(args)) => bench::run_export(args, &cli.databases, out).await?,
        Command::Bench(BenchCommand::Jobs(args)) => bench_jobs::run_jobs(args, out)?,
        Command::Bench(BenchCommand::Edge(args)) => bench_edge::run_edge(args, out).await?,
        Command::Migrate { migrations_dir } => {
            let set = match &migrations_dir {
                Some(dir) => migrate::MigrationSet::from_dir(dir)?,
                None => migrate::MigrationSet::embedded()?,
            };
            let mut pg = cli.databases.postgres().await?;
            let report = migrate::migrate(&mut pg, &cli.databases.clickhouse(), &set).await?;
            for (target, applied) in [
                ("PostgreSQL", &report.postgres),
                ("ClickHouse", &report.clickhouse),
            ] {
                if applied.is_empty() {
                    writeln!(out, "{target}: up to date")?;
                } else {
                    writeln!(out, "{target}: applied {}", applied.join(", "))?;
                }
            }
        }
        Command::Project(ProjectCommand::Create {
            name,
            organization,
            retention_days,
            json,
        }) => {
            let mut pg = cli.databases.postgres().await?;
            let tx = pg.transaction().await?;
            let organization_id = keys::ensure_organization(&tx, &organization).await?;
            let project = keys::create_project(&tx, organization_id, &name, retention_days).await?;
            let key = keys::create_key(
                &tx,
                project.id,
                &["ingest".to_owned()],
                Some("created with the project"),
            )
            .await?;
            tx.commit().await?;
            print_key(out, &key, json)?;
        }
        Command::Project(ProjectCommand::List) => {
            let pg = cli.databases.postgres().await?;
            for project in keys::list_projects(&pg).await? {
                let retention = project
                    .retention_days
                    .map_or("forever".to_owned(), |d| format!("{d} days"));
                writeln!(out, "{}\t{}\tretention {retention}", project.id, project.name)?;
            }
        }
        Command::Key(KeyCommand::Create {
            project,
            scopes,
            note,
            json,
        }) => {
            let pg = cli.databases.postgres().await?;
            let key = keys::create_key(&pg, project, &scopes, note.as_deref()).await?;
            print_key(out, &key, json)?;
        }
        Command::Key(KeyCommand::Revoke { public_key }) => {
            let pg = cli.databases.postgres().await?;
            keys::revoke_key(&pg, &public_key).await?;
            writeln!(out, "revoked {public_key}")?;
        }
        Command::Key(KeyCommand::List { project }) => {
            let pg = cli.databases.postgres().await?;
            for key in keys::list_keys(&pg, project).await? {
                let state = if key.revoked { "revoked" } else { "active" };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{state}\t{}",
                    key.public_key,
                    key.secret_hint,
                    key.scopes.join(","),
                    key.note.unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
