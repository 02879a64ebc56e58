//! The `agenttrace` command: a thin dispatcher. Each command group lives in `commands/`, each
//! benchmark in `bench/`; domain work is done by the `etl` and `jobs` libraries. A library as
//! well, so tests run the real commands in-process.
//!
//! - `agent`: a simulated coding agent (realistic sessions and experiment runs).
//! - `send`: clients that send events as an agent (to the edge) or as the edge (to the ETL).

pub mod agent;
pub mod bench;
pub mod commands;
pub mod send;
pub mod settings;

use std::io::Write;
use std::path::PathBuf;

use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
use agenttrace_etl::postgres;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use bench::BenchCommand;
use commands::evaluator::EvaluatorCommand;
use commands::jobs::JobsCommand;
use commands::key::KeyCommand;
use commands::project::ProjectCommand;

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
    /// The arguments as given (without the program's name), for the audit log's entry of a
    /// command that changes something.
    #[arg(skip)]
    pub args: Vec<String>,
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
    /// The ClickHouse user the service reads with for callers (read routes, `/v1/query`,
    /// exports): confined to the database, with the read profile's limits (the docs and
    /// `scripts/stack.sh` set it up). Unset: reads use `--clickhouse-user`.
    #[arg(long, env = "CLICKHOUSE_READER_USER", global = true)]
    pub clickhouse_reader_user: Option<String>,
    #[arg(
        long,
        env = "CLICKHOUSE_READER_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub clickhouse_reader_password: Option<String>,
    /// On a server with row policies (ClickHouse 20.4+): the custom setting the policy on
    /// `project_id` reads (`agenttrace_project`, with `custom_settings_prefixes` allowing it;
    /// `docs/security.md`). Every read then sends the caller's project in it. ClickHouse 18.16
    /// has no row policies and refuses unknown settings: leave unset there.
    #[arg(long, env = "CLICKHOUSE_PROJECT_SETTING", global = true)]
    pub clickhouse_project_setting: Option<String>,
    /// ClickHouse is a cluster of this name (`scripts/cluster.sh`): migrations create the
    /// clustered schema, mutations run on every shard.
    #[arg(long, env = "CLICKHOUSE_CLUSTER", global = true)]
    pub clickhouse_cluster: Option<String>,
    /// The HTTP URLs of the cluster's nodes, comma-separated, at least one per shard:
    /// `ALTER`s of replicated tables run on one node of each shard.
    #[arg(long, env = "CLICKHOUSE_CLUSTER_URLS", global = true, value_delimiter = ',')]
    pub clickhouse_cluster_urls: Vec<String>,
    /// The key provider API keys are sealed with (AES-256-GCM, 64 hex characters; `dev.sh` makes
    /// one per machine). Unset: model connections cannot be stored or used.
    #[arg(
        long,
        env = "AGENTTRACE_ENCRYPTION_KEY",
        global = true,
        hide_env_values = true
    )]
    pub encryption_key: Option<String>,
}

impl DatabaseArgs {
    pub fn clickhouse(&self) -> ClickHouse {
        ClickHouse::new(ClickHouseConfig {
            url: self.clickhouse_url.clone(),
            database: self.clickhouse_database.clone(),
            user: self.clickhouse_user.clone(),
            password: self.clickhouse_password.clone(),
            cluster: self.clickhouse_cluster.clone(),
            // An empty variable (a script passing it through unset) lists no node.
            node_urls: self
                .clickhouse_cluster_urls
                .iter()
                .filter(|url| !url.is_empty())
                .cloned()
                .collect(),
        })
    }

    /// What seals and opens provider keys, when a key is set.
    pub fn sealer(&self) -> anyhow::Result<Option<agenttrace_etl::control::sealing::Sealer>> {
        match self
            .encryption_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            Some(key) => Ok(Some(agenttrace_etl::control::sealing::Sealer::from_hex(key)?)),
            None => Ok(None),
        }
    }

    /// The connection callers' reads go through: the reader user when one is configured.
    pub fn clickhouse_reader(&self) -> ClickHouse {
        let credentials = self
            .clickhouse_reader_user
            .as_deref()
            .filter(|user| !user.is_empty())
            .map(|user| (user, self.clickhouse_reader_password.as_deref()));
        self.clickhouse()
            .reader(credentials)
            .with_project_setting(self.clickhouse_project_setting.as_deref())
    }

    pub(crate) async fn postgres(&self) -> anyhow::Result<tokio_postgres::Client> {
        postgres::connect(&self.database_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact(&self.database_url)))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ETL service (signed batches in, ClickHouse out).
    Serve(commands::serve::ServeArgs),
    /// Send realistic coding-agent sessions, then show what landed in ClickHouse.
    Demo(commands::demo::DemoArgs),
    /// Export a table of your project as Parquet or Arrow (through the ETL's export API).
    Export(commands::analyst::ExportArgs),
    /// Run one read-only SELECT over your project's data (through the ETL's query API).
    Query(commands::analyst::QueryArgs),
    /// Search what agents said and did (words, "phrases", field: prefixes, -exclusions), in
    /// every language; prints each hit with its snippets and the trace tree around it.
    Search(commands::search::SearchArgs),
    /// Print a trace as a tree: each observation's type, name, duration, cost and level.
    Trace(commands::search::TraceArgs),
    /// Manage model connections (where LLM judges send their calls; keys sealed).
    #[command(subcommand)]
    Connection(commands::connection::ConnectionCommand),
    /// Manage evaluators (what the evaluation job scores observations with).
    #[command(subcommand)]
    Evaluator(EvaluatorCommand),
    /// Scheduled jobs: run one now, or see recent runs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Benchmarks (run them with a release build).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Back up both databases into a new directory (PostgreSQL with pg_dump, ClickHouse as
    /// Native files with SHA-256 and per-table row counts and checksums).
    Backup(commands::backup::BackupArgs),
    /// Restore a backup into empty databases, checking every file and table.
    Restore(commands::backup::RestoreArgs),
    /// Check a deployment: databases reachable and supported, migrations applied, the read-only
    /// ClickHouse user, clocks, the encryption key, the ETL and the edge; says what is wrong.
    Doctor(commands::doctor::DoctorArgs),
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
    /// Manage users (and create the first owner of a new install).
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// Manage organization members and their roles.
    #[command(subcommand)]
    Member(commands::user::MemberCommand),
    /// Manage model prices (per project, from a date on).
    #[command(subcommand)]
    Price(commands::price::PriceCommand),
    /// Manage organizations and their keys.
    #[command(subcommand)]
    Org(commands::org::OrgCommand),
    /// Manage prompts: versions, labels, compiling.
    #[command(subcommand)]
    Prompt(commands::prompt::PromptCommand),
    /// Manage datasets and their items.
    #[command(subcommand)]
    Dataset(commands::dataset::DatasetCommand),
    /// Experiments (dataset runs).
    #[command(subcommand)]
    Experiment(commands::dataset::ExperimentCommand),
    /// Delete traces, a session, everything of a user id, or an archived project's events: a
    /// job that runs until a read of every table finds none of them (`--wait` runs it here).
    Delete(commands::deletion::DeleteArgs),
    /// A project's deletion jobs, or one with its rows per table.
    Deletions(commands::deletion::DeletionsArgs),
    /// An organization's audit log: who changed what, when, from where.
    Audit(commands::audit::AuditArgs),
    /// Alert rules, channels, what fired and what was sent.
    #[command(subcommand)]
    Alerts(commands::alerts::AlertsCommand),
    /// Print the ETL's OpenAPI document (what `etl/api/openapi.json` holds), generated from its
    /// routes.
    Openapi,
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
pub(crate) fn redact(url: &str) -> String {
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

/// Resolves on Ctrl-C or SIGTERM: how long-running commands learn to stop.
pub(crate) async fn until_stopped() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let (databases, args) = (&cli.databases, &cli.args);
    let changes = commands::audit::change_words(args).is_some();
    let done = run_command(cli.command, databases, out).await;
    if done.is_ok() && changes {
        commands::audit::record(databases, args)
            .await
            .context("the change is made, but the audit log could not record it")?;
    }
    done
}

async fn run_command(command: Command, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => commands::serve::run(args, databases).await,
        Command::Demo(args) => commands::demo::run(args, databases, out).await,
        Command::Export(args) => commands::analyst::export(args, out).await,
        Command::Query(args) => commands::analyst::query(args, out).await,
        Command::Search(args) => commands::search::search(args, out).await,
        Command::Trace(args) => commands::search::trace(args, out).await,
        Command::Evaluator(command) => commands::evaluator::run(command, databases, out).await,
        Command::Connection(command) => commands::connection::run(command, databases, out).await,
        Command::Jobs(command) => commands::jobs::run(command, databases, out).await,
        Command::Bench(command) => bench::run(command, databases, out).await,
        Command::Backup(args) => commands::backup::backup(args, databases, out).await,
        Command::Restore(args) => commands::backup::restore(args, databases, out).await,
        Command::Doctor(args) => commands::doctor::doctor(args, databases, out).await,
        Command::Migrate { migrations_dir } => {
            commands::migrate::run(migrations_dir.as_deref(), databases, out).await
        }
        Command::Project(command) => commands::project::run(command, databases, out).await,
        Command::Key(command) => commands::key::run(command, databases, out).await,
        Command::Delete(args) => commands::deletion::delete(args, databases, out).await,
        Command::Deletions(args) => commands::deletion::list(args, databases, out).await,
        Command::Audit(args) => commands::audit::list(args, databases, out).await,
        Command::Alerts(command) => commands::alerts::run(command, databases, out).await,
        Command::User(command) => commands::user::run_user(command, databases, out).await,
        Command::Member(command) => commands::user::run_member(command, databases, out).await,
        Command::Price(command) => commands::price::run(command, databases, out).await,
        Command::Org(command) => commands::org::run(command, databases, out).await,
        Command::Prompt(command) => commands::prompt::run(command, databases, out).await,
        Command::Dataset(command) => commands::dataset::run(command, databases, out).await,
        Command::Experiment(command) => commands::dataset::run_experiments(command, databases, out).await,
        Command::Openapi => Ok(out.write_all(agenttrace_etl::http::openapi::document().as_bytes())?),
    }
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
