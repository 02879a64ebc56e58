//! `agenttrace migrate`: pending PostgreSQL and ClickHouse migrations (safe to run again).

use std::io::Write;
use std::path::Path;

use agenttrace_etl::migrate::{MigrationSet, migrate};

use crate::DatabaseArgs;

pub async fn run(
    migrations_dir: Option<&Path>,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let set = match migrations_dir {
        Some(dir) => MigrationSet::from_dir(dir)?,
        None => MigrationSet::embedded()?,
    };
    let mut pg = databases.postgres().await?;
    let report = migrate(&mut pg, &databases.clickhouse(), &set).await?;
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
    Ok(())
}
