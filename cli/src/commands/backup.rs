//! `agenttrace backup --to DIR` and `agenttrace restore --from DIR`: both databases.
//!
//! PostgreSQL with its own tools (`pg_dump --format=custom`, `pg_restore`), ClickHouse with
//! `agenttrace_etl::clickhouse::backup` (Native files per partition with SHA-256 and per-table
//! row counts and checksums). PostgreSQL is dumped first: its batch ledger then never names a
//! batch whose rows the ClickHouse files lack, so a batch sent again after a restore is either
//! answered `already_accepted` or loaded, and a row the files already hold is replaced by its
//! copy (same version), never shown twice.

use std::io::Write;
use std::path::{Path, PathBuf};

use agenttrace_etl::clickhouse::backup::{self, TableDump};
use agenttrace_etl::migrate::{MigrationSet, migrate};
use agenttrace_schemas::Timestamp;
use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DatabaseArgs;

const MANIFEST: &str = "manifest.json";
const POSTGRES_DUMP: &str = "postgres.dump";

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// A new or empty directory.
    #[arg(long)]
    pub to: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A directory `agenttrace backup` wrote.
    #[arg(long)]
    pub from: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    created_at: String,
    postgres: PostgresDump,
    clickhouse: Vec<TableDump>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PostgresDump {
    file: String,
    bytes: u64,
    sha256: String,
}

fn sha256_of(path: &Path) -> anyhow::Result<(u64, String)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((bytes.len() as u64, hex::encode(Sha256::digest(&bytes))))
}

async fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {program} (Debian's postgresql-client has it)"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

pub async fn backup(args: BackupArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.to.exists() && std::fs::read_dir(&args.to)?.next().is_some() {
        anyhow::bail!("{} is not empty: back up into a new directory", args.to.display());
    }
    std::fs::create_dir_all(&args.to)?;
    let created_at = Timestamp::now().to_string();
    let dump = args.to.join(POSTGRES_DUMP);
    run_tool(
        "pg_dump",
        &[
            "--format=custom",
            "--no-owner",
            "--file",
            dump.to_str().context("a UTF-8 path")?,
            &databases.database_url,
        ],
    )
    .await?;
    let (bytes, sha256) = sha256_of(&dump)?;
    writeln!(out, "PostgreSQL  {POSTGRES_DUMP}  {bytes} bytes")?;
    let clickhouse_dir = args.to.join("clickhouse");
    let tables = backup::dump(&databases.clickhouse(), &clickhouse_dir).await?;
    for table in &tables {
        writeln!(
            out,
            "ClickHouse  {:<20} {:>10} rows  checksum {}  {} files",
            table.table,
            table.rows,
            table.checksum,
            table.files.len()
        )?;
    }
    let manifest = Manifest {
        format: 1,
        created_at,
        postgres: PostgresDump {
            file: POSTGRES_DUMP.into(),
            bytes,
            sha256,
        },
        clickhouse: tables,
    };
    std::fs::write(args.to.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    writeln!(out, "backed up to {}", args.to.display())?;
    Ok(())
}

pub async fn restore(args: RestoreArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(args.from.join(MANIFEST))
            .with_context(|| format!("{} has no {MANIFEST}: is it a backup?", args.from.display()))?,
    )?;
    anyhow::ensure!(
        manifest.format == 1,
        "backup format {} is not known",
        manifest.format
    );
    let dump = args.from.join(&manifest.postgres.file);
    let (_, sha256) = sha256_of(&dump)?;
    anyhow::ensure!(
        sha256 == manifest.postgres.sha256,
        "{} is damaged: its SHA-256 is {sha256}, the backup recorded {}",
        dump.display(),
        manifest.postgres.sha256
    );
    // Every file is checked before anything is written.
    backup::verify(&args.from.join("clickhouse"), &manifest.clickhouse).await?;
    // Into an empty database only: the restore must not merge with what is there.
    let pg = databases.postgres().await?;
    let tables: i64 = pg
        .query_one(
            "SELECT count(*) AS tables FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await?
        .get("tables");
    anyhow::ensure!(
        tables == 0,
        "the PostgreSQL database already has {tables} tables: restore into an empty one"
    );
    run_tool(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            &databases.database_url,
            dump.to_str().context("a UTF-8 path")?,
        ],
    )
    .await?;
    writeln!(out, "PostgreSQL  restored from {}", manifest.postgres.file)?;
    // ClickHouse: the schema from the migrations (PostgreSQL's are already recorded), then rows.
    let mut pg = databases.postgres().await?;
    let clickhouse = databases.clickhouse();
    migrate(&mut pg, &clickhouse, &MigrationSet::embedded()?).await?;
    backup::restore(&clickhouse, &args.from.join("clickhouse"), &manifest.clickhouse).await?;
    for table in &manifest.clickhouse {
        writeln!(
            out,
            "ClickHouse  {:<20} {:>10} rows  checksum {}  (equal to the backup's)",
            table.table, table.rows, table.checksum
        )?;
    }
    writeln!(out, "restored the backup of {}", manifest.created_at)?;
    Ok(())
}
