//! Schema migrations for PostgreSQL and ClickHouse, applied by `agenttrace migrate`.
//!
//! Files are `migrations/<target>/NNNN_name.sql`, applied in order and recorded with their
//! SHA-256 in a `schema_migrations` table in each database. A run is safe to repeat; it refuses
//! to continue when an applied file changed or disappeared, or when a new file is numbered
//! below one already applied. One PostgreSQL advisory lock serialises concurrent runs for both
//! databases. Refinery would cover PostgreSQL only; one mechanism for both keeps the rules
//! identical.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::clickhouse::cluster::{self, ClusterSchema, Step};
use crate::clickhouse::{ClickHouse, ClickHouseError, quote_identifier};

/// Arbitrary constant naming the migration lock among PostgreSQL advisory locks.
const MIGRATION_LOCK_ID: i64 = 0x4147_5452_4d49_4752; // "AGTRMIGR"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Postgres,
    ClickHouse,
}

impl Target {
    fn dir_name(self) -> &'static str {
        match self {
            Target::Postgres => "postgres",
            Target::ClickHouse => "clickhouse",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Postgres => "PostgreSQL",
            Target::ClickHouse => "ClickHouse",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    /// File name, e.g. `0001_core.sql`.
    pub name: String,
    pub sql: String,
    /// Hex SHA-256 of the file's bytes.
    pub checksum: String,
}

impl Migration {
    pub fn new(name: &str, sql: &str) -> Result<Self, MigrateError> {
        let bad = || MigrateError::BadFileName(name.to_owned());
        let stem = name.strip_suffix(".sql").ok_or_else(bad)?;
        let (number, label) = stem.split_once('_').ok_or_else(bad)?;
        let well_formed = number.len() == 4
            && number.bytes().all(|b| b.is_ascii_digit())
            && !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            return Err(bad());
        }
        Ok(Migration {
            version: number.parse().map_err(|_| bad())?,
            name: name.to_owned(),
            sql: sql.to_owned(),
            checksum: hex::encode(Sha256::digest(sql.as_bytes())),
        })
    }
}

/// What a database says it has applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: u32,
    pub name: String,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration file name {0:?} must look like 0001_lowercase_name.sql")]
    BadFileName(String),
    #[error("two {target} migrations have version {version}: {first} and {second}")]
    DuplicateVersion {
        target: Target,
        version: u32,
        first: String,
        second: String,
    },
    #[error(
        "{target} migration {name} changed after it was applied (applied sha256 {applied}, file sha256 {file}); \
         restore the file and put the change in a new migration"
    )]
    Changed {
        target: Target,
        name: String,
        applied: String,
        file: String,
    },
    #[error("{target} migration {name} (version {version}) was applied but its file is missing")]
    Missing {
        target: Target,
        version: u32,
        name: String,
    },
    #[error(
        "{target} migration {name} is numbered below {latest}, which is already applied; \
         give it a number above {latest}"
    )]
    OutOfOrder {
        target: Target,
        name: String,
        latest: String,
    },
    #[error("{target} migration {name} failed: {message}")]
    Failed {
        target: Target,
        name: String,
        message: String,
    },
    #[error("reading migrations from {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(error: tokio_postgres::Error) -> Self {
        MigrateError::Postgres(crate::postgres::describe(&error))
    }
}

/// The migrations of both databases.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub postgres: Vec<Migration>,
    pub clickhouse: Vec<Migration>,
}

impl MigrationSet {
    /// The migrations compiled into this binary.
    pub fn embedded() -> Result<Self, MigrateError> {
        const FILES: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
        let pick = |target: Target| {
            FILES
                .iter()
                .filter(|(dir, _, _)| *dir == target.dir_name())
                .map(|(_, name, sql)| Migration::new(name, sql))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|list| sorted_unique(target, list))
        };
        Ok(MigrationSet {
            postgres: pick(Target::Postgres)?,
            clickhouse: pick(Target::ClickHouse)?,
        })
    }

    /// Reads `<dir>/postgres/*.sql` and `<dir>/clickhouse/*.sql`.
    pub fn from_dir(dir: &Path) -> Result<Self, MigrateError> {
        let read = |target: Target| {
            let path = dir.join(target.dir_name());
            let io = |source| MigrateError::Io {
                path: path.display().to_string(),
                source,
            };
            let mut list = Vec::new();
            for entry in std::fs::read_dir(&path).map_err(io)? {
                let file = entry.map_err(io)?.path();
                if file.extension().is_some_and(|ext| ext == "sql") {
                    let name = file
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_owned();
                    let sql = std::fs::read_to_string(&file).map_err(io)?;
                    list.push(Migration::new(&name, &sql)?);
                }
            }
            sorted_unique(target, list)
        };
        Ok(MigrationSet {
            postgres: read(Target::Postgres)?,
            clickhouse: read(Target::ClickHouse)?,
        })
    }
}

fn sorted_unique(target: Target, mut list: Vec<Migration>) -> Result<Vec<Migration>, MigrateError> {
    list.sort_by_key(|m| m.version);
    if let Some(pair) = list.windows(2).find(|pair| pair[0].version == pair[1].version) {
        return Err(MigrateError::DuplicateVersion {
            target,
            version: pair[0].version,
            first: pair[0].name.clone(),
            second: pair[1].name.clone(),
        });
    }
    Ok(list)
}

/// Decides which migrations to apply, refusing divergence from what was applied.
pub fn plan<'a>(
    target: Target,
    applied: &[AppliedMigration],
    files: &'a [Migration],
) -> Result<Vec<&'a Migration>, MigrateError> {
    let by_version: BTreeMap<u32, &Migration> = files.iter().map(|m| (m.version, m)).collect();
    for done in applied {
        match by_version.get(&done.version) {
            None => {
                return Err(MigrateError::Missing {
                    target,
                    version: done.version,
                    name: done.name.clone(),
                });
            }
            Some(file) if file.checksum != done.checksum => {
                return Err(MigrateError::Changed {
                    target,
                    name: file.name.clone(),
                    applied: done.checksum.clone(),
                    file: file.checksum.clone(),
                });
            }
            Some(_) => {}
        }
    }
    let latest = applied.iter().max_by_key(|m| m.version);
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|m| !applied.iter().any(|done| done.version == m.version))
        .collect();
    if let (Some(latest), Some(first)) = (latest, pending.first())
        && first.version < latest.version
    {
        return Err(MigrateError::OutOfOrder {
            target,
            name: first.name.clone(),
            latest: latest.name.clone(),
        });
    }
    Ok(pending)
}

/// What a run did, per database: the file names it applied (empty when up to date).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub postgres: Vec<String>,
    pub clickhouse: Vec<String>,
}

/// PostgreSQL's record of applied migrations.
async fn postgres_applied(pg: &Client) -> Result<Vec<AppliedMigration>, MigrateError> {
    Ok(pg
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|row| AppliedMigration {
            version: row.get::<_, i32>("version") as u32,
            name: row.get("name"),
            checksum: row.get("checksum"),
        })
        .collect())
}

/// ClickHouse's record of applied migrations.
async fn clickhouse_applied(clickhouse: &ClickHouse) -> Result<Vec<AppliedMigration>, MigrateError> {
    let listing = clickhouse
        .query_text("SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version FORMAT TabSeparated")
        .await?;
    Ok(listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            Some(AppliedMigration {
                version: fields.next()?.parse().ok()?,
                name: fields.next()?.to_owned(),
                checksum: fields.next()?.to_owned(),
            })
        })
        .collect())
}

/// The migrations each database has not applied, read without changing anything (a database
/// without a record of them has applied none); an error when a database's record diverges from
/// the files (an applied file changed or missing).
pub async fn pending(
    pg: &Client,
    clickhouse: &ClickHouse,
    set: &MigrationSet,
) -> Result<MigrationReport, MigrateError> {
    let recorded = pg
        .query_opt(
            "SELECT to_regclass('schema_migrations') IS NOT NULL AS recorded",
            &[],
        )
        .await?
        .is_some_and(|row| row.get::<_, bool>("recorded"));
    let postgres_applied = if recorded {
        postgres_applied(pg).await?
    } else {
        Vec::new()
    };
    let exists = clickhouse
        .query_on_server(&format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name = 'schema_migrations' FORMAT TabSeparated",
            crate::clickhouse::quote(clickhouse.database())
        ))
        .await?;
    let clickhouse_applied = if exists.trim() == "0" {
        Vec::new()
    } else {
        clickhouse_applied(clickhouse).await?
    };
    let names = |pending: Vec<&Migration>| pending.into_iter().map(|m| m.name.clone()).collect();
    Ok(MigrationReport {
        postgres: names(plan(Target::Postgres, &postgres_applied, &set.postgres)?),
        clickhouse: names(plan(Target::ClickHouse, &clickhouse_applied, &set.clickhouse)?),
    })
}

/// Applies pending migrations to both databases (PostgreSQL first) under one advisory lock.
pub async fn migrate(
    pg: &mut Client,
    clickhouse: &ClickHouse,
    set: &MigrationSet,
) -> Result<MigrationReport, MigrateError> {
    pg.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_ID])
        .await?;
    let result = async {
        Ok(MigrationReport {
            postgres: migrate_postgres(pg, &set.postgres).await?,
            clickhouse: migrate_clickhouse(clickhouse, &set.clickhouse).await?,
        })
    }
    .await;
    // Released with the session in any case; unlock now so a long-lived client can go on.
    pg.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_ID])
        .await?;
    result
}

async fn migrate_postgres(pg: &mut Client, files: &[Migration]) -> Result<Vec<String>, MigrateError> {
    pg.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied = postgres_applied(pg).await?;
    let mut done = Vec::new();
    for migration in plan(Target::Postgres, &applied, files)? {
        // DDL is transactional in PostgreSQL: a migration and its record commit together.
        let failed = |e: tokio_postgres::Error| MigrateError::Failed {
            target: Target::Postgres,
            name: migration.name.clone(),
            message: crate::postgres::describe(&e),
        };
        let tx = pg.transaction().await?;
        tx.batch_execute(&migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&(migration.version as i32), &migration.name, &migration.checksum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = %migration.name, "applied PostgreSQL migration");
        done.push(migration.name.clone());
    }
    Ok(done)
}

async fn migrate_clickhouse(
    clickhouse: &ClickHouse,
    files: &[Migration],
) -> Result<Vec<String>, MigrateError> {
    let mut cluster = clickhouse
        .cluster()
        .map(|name| ClusterSchema::new(name, clickhouse.database()));
    match &cluster {
        Some(schema) => {
            clickhouse.execute_on_server(&schema.create_database()).await?;
            clickhouse.execute(&schema.migrations_table()).await?;
        }
        None => {
            clickhouse
                .execute_on_server(&format!(
                    "CREATE DATABASE IF NOT EXISTS {}",
                    quote_identifier(clickhouse.database())
                ))
                .await?;
            clickhouse
                .execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                        version UInt32, name String, checksum String, applied_at DateTime
                    ) ENGINE = ReplacingMergeTree() ORDER BY version",
                )
                .await?;
        }
    }
    let applied = clickhouse_applied(clickhouse).await?;
    let pending = plan(Target::ClickHouse, &applied, files)?;
    let mut done = Vec::new();
    for migration in files {
        let is_pending = pending.iter().any(|p| p.version == migration.version);
        let failed = |message: String| MigrateError::Failed {
            target: Target::ClickHouse,
            name: migration.name.clone(),
            message,
        };
        // On a cluster each statement becomes its clustered form; applied migrations are
        // replayed through the transformation too, so it knows the tables they made.
        let mut steps = Vec::new();
        for statement in split_statements(&migration.sql) {
            match cluster.as_mut() {
                Some(schema) => steps.extend(schema.transform(&statement).map_err(failed)?),
                None => steps.push(Step::Sql(statement)),
            }
        }
        if !is_pending {
            continue;
        }
        // No transactions in ClickHouse: statements are written to be re-runnable
        // (IF NOT EXISTS; an ADD COLUMN already made counts as done), and the record is
        // written only after all of them succeeded.
        for step in steps {
            let statement = match (step, &cluster) {
                (Step::Sql(statement), _) => statement,
                (Step::OnEachShard(statement), _) => {
                    cluster::on_each_shard(clickhouse, &statement)
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    continue;
                }
                (Step::Distributed(table), Some(schema)) => {
                    let columns = clickhouse
                        .query_text(&schema.columns_query(&table))
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    schema.distributed_table(&table, &columns).map_err(failed)?
                }
                (Step::Distributed(table), None) => {
                    unreachable!("{table}: only a cluster has Distributed steps")
                }
            };
            clickhouse
                .execute_rerunnable(&statement)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        clickhouse
            .execute(&format!(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ({}, '{}', '{}', now())",
                migration.version, migration.name, migration.checksum
            ))
            .await?;
        tracing::info!(migration = %migration.name, "applied ClickHouse migration");
        done.push(migration.name.clone());
    }
    Ok(done)
}

/// Splits a SQL script into statements at `;`, outside strings, quoted names and comments.
/// Comments are dropped (ClickHouse's HTTP interface takes one statement per request).
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                while let Some(inner) = chars.next() {
                    current.push(inner);
                    if inner == '\\' {
                        if let Some(escaped) = chars.next() {
                            current.push(escaped);
                        }
                    } else if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = '\0';
                for skipped in chars.by_ref() {
                    if previous == '*' && skipped == '/' {
                        break;
                    }
                    previous = skipped;
                }
                current.push(' ');
            }
            ';' => {
                let statement = current.trim();
                if !statement.is_empty() {
                    statements.push(statement.to_owned());
                }
                current.clear();
            }
            _ => current.push(c),
        }
    }
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(m: &Migration) -> AppliedMigration {
        AppliedMigration {
            version: m.version,
            name: m.name.clone(),
            checksum: m.checksum.clone(),
        }
    }

    #[test]
    fn file_names_are_checked() {
        assert_eq!(Migration::new("0007_add_index.sql", "").unwrap().version, 7);
        for bad in ["7_x.sql", "0001-x.sql", "0001_X.sql", "0001_.sql", "0001_x.txt"] {
            assert!(
                matches!(Migration::new(bad, ""), Err(MigrateError::BadFileName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn plans_only_pending_and_refuses_divergence() {
        let one = Migration::new("0001_a.sql", "select 1").unwrap();
        let two = Migration::new("0002_b.sql", "select 2").unwrap();
        let files = vec![one.clone(), two.clone()];

        let pending = plan(Target::Postgres, &[applied(&one)], &files).unwrap();
        assert_eq!(pending, vec![&two]);
        assert!(
            plan(Target::Postgres, &[applied(&one), applied(&two)], &files)
                .unwrap()
                .is_empty()
        );

        let edited = vec![Migration::new("0001_a.sql", "select 10").unwrap(), two.clone()];
        let err = plan(Target::Postgres, &[applied(&one)], &edited).unwrap_err();
        assert!(
            err.to_string()
                .contains("0001_a.sql changed after it was applied"),
            "{err}"
        );

        let err = plan(Target::ClickHouse, &[applied(&one)], std::slice::from_ref(&two)).unwrap_err();
        assert!(matches!(err, MigrateError::Missing { version: 1, .. }), "{err}");

        let err = plan(Target::ClickHouse, &[applied(&two)], &files).unwrap_err();
        assert!(matches!(err, MigrateError::OutOfOrder { .. }), "{err}");
    }

    #[test]
    fn embedded_set_has_both_targets_in_order() {
        let set = MigrationSet::embedded().unwrap();
        assert_eq!(set.postgres.first().unwrap().name, "0001_core.sql");
        assert_eq!(set.clickhouse.first().unwrap().name, "0001_event_tables.sql");
        assert!(set.clickhouse.windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn splits_statements_outside_quotes_and_comments() {
        let sql = "-- header; not a statement\nCREATE TABLE a (x String DEFAULT ';');\n\
                   /* block; comment */ SELECT 'it\\'s; fine', `we;ird`;\n\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE a (x String DEFAULT ';')",
                "SELECT 'it\\'s; fine', `we;ird`"
            ]
        );
    }
}
