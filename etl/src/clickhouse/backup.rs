//! ClickHouse's half of `agenttrace backup` and `restore`: each base table exported partition by
//! partition in the Native format, with each file's SHA-256 and each table's row count and
//! content checksum, and imported again into a migrated, empty database, whose views then fill
//! the derived tables (time indexes, daily costs) as they did at ingest.
//!
//! A partition is read by one query, which sees one snapshot of its parts, so merges running
//! meanwhile neither lose nor repeat rows. Memory on restore is one partition file at a time.
//! On a cluster the tables are read and written through their Distributed tables: a backup
//! holds each row once (from one replica of its shard), and a restore into a migrated cluster
//! places every row on its shard again, with the quorum.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::clickhouse::compression::Compression;
use crate::clickhouse::{ClickHouse, ClickHouseError, quote};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One exported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFile {
    /// Relative to the backup's `clickhouse/` folder.
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One table as backed up: its rows as stored (every version), their checksum, its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDump {
    pub table: String,
    pub rows: u64,
    /// The sum of every stored row's `cityHash64` over its stored columns (order-free), as text.
    pub checksum: String,
    pub files: Vec<DumpFile>,
}

/// Tables the jobs rebuild from the data (the hourly rollups and per-trace summaries): left out
/// of backups; after a restore, the restored rows are touched anew and the jobs rebuild them,
/// while reads use the rows themselves meanwhile.
const REBUILT_BY_JOBS: [&str; 4] = [
    "observation_hourly",
    "observation_hours",
    "trace_summaries",
    "trace_summary_runs",
];

/// The tables whose rows are the data: MergeTree tables that no view fills from another
/// table's rows and that are not the migration history (a restore migrates first, which writes
/// its own), nor rebuilt by the jobs. A view over a table that stores nothing (`search_terms`,
/// a `Null` table) is how its target is written, so that target is data.
pub async fn base_tables(clickhouse: &ClickHouse) -> Result<Vec<String>, BackupError> {
    let database = quote(clickhouse.database());
    let listing = clickhouse
        .query_text(&format!(
            "SELECT name, engine, create_table_query FROM system.tables WHERE database = {database} FORMAT JSONEachRow"
        ))
        .await?;
    let mut tables = Vec::new();
    let mut views = Vec::new();
    let mut stores_nothing = Vec::new();
    for line in listing.lines().filter(|l| !l.is_empty()) {
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| BackupError::Refused(format!("system.tables: {e}")))?;
        let (name, engine, create) = (
            row["name"].as_str().unwrap_or_default(),
            row["engine"].as_str().unwrap_or_default(),
            row["create_table_query"].as_str().unwrap_or_default(),
        );
        if engine == "MaterializedView" {
            let target = view_target(create)
                .ok_or_else(|| BackupError::Refused(format!("view {name} has no TO table: {create}")))?;
            views.push((view_source(create), target));
        } else if engine == "Null" {
            stores_nothing.push(name.to_owned());
        } else if engine.ends_with("MergeTree") && name != "schema_migrations" {
            tables.push(name.to_owned());
        }
    }
    let filled: Vec<String> = views
        .into_iter()
        .filter(|(source, _)| !source.as_ref().is_some_and(|s| stores_nothing.contains(s)))
        .map(|(_, target)| target)
        .collect();
    tables.retain(|table| {
        let base = table.strip_suffix("_local").unwrap_or(table);
        !filled.contains(table) && !REBUILT_BY_JOBS.contains(&base)
    });
    if clickhouse.cluster().is_some() {
        // A cluster's data tables are `t_local`; they are read and written through `t`.
        tables = tables
            .into_iter()
            .filter_map(|table| table.strip_suffix("_local").map(str::to_owned))
            .collect();
    }
    tables.sort();
    Ok(tables)
}

/// The partitions `table` holds, with the condition that selects each one's rows. Partition
/// ids of `toYYYYMM(...)` partitions are the expression's value, so `expression = id` selects
/// a partition through a Distributed table as well as on one server.
async fn partitions(clickhouse: &ClickHouse, table: &str) -> Result<Vec<(String, String)>, BackupError> {
    let stored = match clickhouse.cluster() {
        Some(_) => format!("{table}_local"),
        None => table.to_owned(),
    };
    let database = quote(clickhouse.database());
    let key = clickhouse
        .query_text(&format!(
            "SELECT partition_key FROM system.tables WHERE database = {database} AND name = {} FORMAT TabSeparated",
            quote(&stored)
        ))
        .await?;
    let key = key.trim().to_owned();
    let parts = format!(
        "SELECT partition_id FROM system.parts WHERE database = {database} AND table = {} AND active",
        quote(&stored)
    );
    let ids = match clickhouse.cluster() {
        Some(cluster) => {
            let everywhere = crate::clickhouse::cluster::on_every_replica(
                clickhouse,
                cluster,
                &parts.replace("system.parts", "{system}.parts"),
            )
            .await?;
            clickhouse
                .query_text(&format!(
                    "SELECT DISTINCT partition_id FROM ({everywhere}) ORDER BY partition_id FORMAT TabSeparated"
                ))
                .await?
        }
        None => {
            clickhouse
                .query_text(&format!(
                    "SELECT DISTINCT partition_id FROM ({parts}) ORDER BY partition_id FORMAT TabSeparated"
                ))
                .await?
        }
    };
    ids.lines()
        .filter(|id| !id.is_empty())
        .map(|id| {
            let condition = if key.is_empty() || id == "all" {
                "1".to_owned()
            } else if id.chars().all(|c| c.is_ascii_digit()) {
                format!("{key} = {id}")
            } else {
                return Err(BackupError::Refused(format!(
                    "{table}: partition {id:?} of {key} cannot be selected by value"
                )));
            };
            Ok((id.to_owned(), condition))
        })
        .collect()
}

/// The table a `CREATE MATERIALIZED VIEW ... TO db.target ...` writes to.
fn view_target(create: &str) -> Option<String> {
    table_after(create, " TO ")
}

/// The table a view reads (its first `FROM`), unqualified.
fn view_source(create: &str) -> Option<String> {
    table_after(create, " FROM ")
}

/// The unqualified table named right after `keyword` in a view's definition.
fn table_after(create: &str, keyword: &str) -> Option<String> {
    let at = create.find(keyword)?;
    let name = create[at + keyword.len()..].split_whitespace().next()?;
    let name = name.rsplit('.').next()?.trim_matches('`');
    Some(name.to_owned())
}

/// `(rows, checksum)` of `table` as stored: every row, every version.
pub async fn fingerprint(clickhouse: &ClickHouse, table: &str) -> Result<(u64, String), BackupError> {
    let listing = clickhouse
        .query_text(&format!(
            "SELECT name, type FROM system.columns WHERE database = {} AND table = {} \
             AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') FORMAT TabSeparated",
            quote(clickhouse.database()),
            quote(table)
        ))
        .await?;
    let hashed: Vec<String> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(name, kind)| hashable(name, kind))
        .collect();
    let answer = clickhouse
        .query_text(&format!(
            "SELECT count(), toString(sum(cityHash64({}))) FROM {table} FORMAT TabSeparated",
            hashed.join(", ")
        ))
        .await?;
    let (rows, checksum) = answer
        .trim()
        .split_once('\t')
        .ok_or_else(|| BackupError::Refused(format!("{table}: unexpected fingerprint {answer:?}")))?;
    Ok((rows.parse().unwrap_or(0), checksum.to_owned()))
}

/// A column as `cityHash64` takes it on 18.16: decimals as text, and a NULL as a marker (a
/// NULL argument would make the whole row's hash NULL, which `sum` skips).
fn hashable(name: &str, kind: &str) -> String {
    if kind.starts_with("Nullable(") {
        format!("ifNull(toString(`{name}`), '\\N')")
    } else if kind.starts_with("Decimal") {
        format!("toString(`{name}`)")
    } else {
        format!("`{name}`")
    }
}

/// The columns an `INSERT` takes (not MATERIALIZED or ALIAS), in order.
async fn stored_columns(clickhouse: &ClickHouse, table: &str) -> Result<Vec<String>, BackupError> {
    let listing = clickhouse
        .query_text(&format!(
            "SELECT name FROM system.columns WHERE database = {} AND table = {} \
             AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') FORMAT TabSeparated",
            quote(clickhouse.database()),
            quote(table)
        ))
        .await?;
    let columns: Vec<String> = listing.lines().map(|c| format!("`{c}`")).collect();
    if columns.is_empty() {
        return Err(BackupError::Refused(format!("{table} has no columns")));
    }
    Ok(columns)
}

/// Exports every base table into `dir` (created), one Native file per partition.
pub async fn dump(clickhouse: &ClickHouse, dir: &Path) -> Result<Vec<TableDump>, BackupError> {
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    let mut dumps = Vec::new();
    for table in base_tables(clickhouse).await? {
        let columns = stored_columns(clickhouse, &table).await?.join(", ");
        let (rows, checksum) = fingerprint(clickhouse, &table).await?;
        let mut files = Vec::new();
        for (partition, condition) in partitions(clickhouse, &table).await? {
            let name = format!("{table}.{partition}.native");
            let path = dir.join(&name);
            let mut response = clickhouse
                .query_streaming(
                    &format!("SELECT {columns} FROM {table} WHERE {condition} FORMAT Native"),
                    &[],
                )
                .await?;
            let mut file = tokio::fs::File::create(&path).await.map_err(io(&path))?;
            let mut hash = Sha256::new();
            let mut bytes = 0u64;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| BackupError::Refused(format!("reading {table}: {e}")))?
            {
                hash.update(&chunk);
                bytes += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(io(&path))?;
            }
            file.sync_all().await.map_err(io(&path))?;
            files.push(DumpFile {
                name,
                bytes,
                sha256: hex::encode(hash.finalize()),
            });
        }
        dumps.push(TableDump {
            table,
            rows,
            checksum,
            files,
        });
    }
    Ok(dumps)
}

/// Checks every file of `dumps` in `dir` against its recorded SHA-256.
pub async fn verify(dir: &Path, dumps: &[TableDump]) -> Result<(), BackupError> {
    for file in dumps.iter().flat_map(|dump| &dump.files) {
        let path = dir.join(&file.name);
        let bytes = tokio::fs::read(&path).await.map_err(io(&path))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 != file.sha256 {
            return Err(BackupError::Refused(format!(
                "{} is damaged: its SHA-256 is {sha256}, the backup recorded {}",
                path.display(),
                file.sha256
            )));
        }
    }
    Ok(())
}

/// Checks every file, then imports the tables into this (migrated, empty) database and checks
/// each one's rows and checksum against the backup's.
pub async fn restore(clickhouse: &ClickHouse, dir: &Path, dumps: &[TableDump]) -> Result<(), BackupError> {
    verify(dir, dumps).await?;
    for dump in dumps {
        let (rows, _) = fingerprint(clickhouse, &dump.table).await?;
        if rows != 0 {
            return Err(BackupError::Refused(format!(
                "{} already holds {rows} rows: restore into an empty database",
                dump.table
            )));
        }
    }
    for dump in dumps {
        let columns = stored_columns(clickhouse, &dump.table).await?.join(", ");
        for file in &dump.files {
            let path = dir.join(&file.name);
            let bytes = tokio::fs::read(&path).await.map_err(io(&path))?;
            clickhouse
                .insert(
                    &format!("INSERT INTO {} ({columns}) FORMAT Native", dump.table),
                    bytes.into(),
                    Compression::None,
                )
                .await?;
        }
        let (rows, checksum) = fingerprint(clickhouse, &dump.table).await?;
        if (rows, &checksum) != (dump.rows, &dump.checksum) {
            return Err(BackupError::Refused(format!(
                "{} restored {rows} rows with checksum {checksum}; the backup holds {} rows with {}",
                dump.table, dump.rows, dump.checksum
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{hashable, view_source, view_target};

    #[test]
    fn nulls_and_decimals_hash_as_text() {
        assert_eq!(
            hashable("cost", "Nullable(Decimal(18, 12))"),
            "ifNull(toString(`cost`), '\\N')"
        );
        assert_eq!(hashable("total", "Decimal(38, 12)"), "toString(`total`)");
        assert_eq!(hashable("tags", "Array(String)"), "`tags`");
    }

    #[test]
    fn a_views_target_is_read_from_its_definition() {
        assert_eq!(
            view_target(
                "CREATE MATERIALIZED VIEW db.traces_by_time_mv TO db.traces_by_time (id String) AS SELECT"
            ),
            Some("traces_by_time".into())
        );
        assert_eq!(
            view_target("CREATE MATERIALIZED VIEW db.v (x UInt8) ENGINE = Memory AS SELECT 1"),
            None
        );
        assert_eq!(
            view_source(
                "CREATE MATERIALIZED VIEW db.search_terms_postings TO db.search_postings (term String) AS SELECT project_id, term FROM db.search_terms_local ARRAY JOIN terms AS term"
            ),
            Some("search_terms_local".into())
        );
    }
}
