//! Retention: delete each project's rows older than its `retention_days`.
//!
//! ClickHouse 18.16 has no TTL, so the job issues `ALTER TABLE ... DELETE` mutations scoped to
//! one project and a time bound, counts what they will remove first, and waits until ClickHouse
//! reports them done, so a run's record says exactly what it deleted. It also prunes the
//! ETL's `accepted_batches` ledger: a batch re-delivered after that is loaded again and
//! deduplicated by the tables' ReplacingMergeTree keys.

use std::time::Duration;

use agenttrace_etl::clickhouse::cluster::{mutate, wait_for_mutations};
use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseError, Table, quote};
use tokio_postgres::Client;
use uuid::Uuid;

/// How long `accepted_batches` remembers a batch id.
pub const BATCH_LEDGER_DAYS: i32 = 30;
const DAY_US: i64 = 86_400 * 1_000_000;
/// How long one table's deletion may take before the run fails (and the next run tries again).
const MUTATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error("ClickHouse did not finish deleting from {table} within {seconds} s")]
    MutationTimeout { table: &'static str, seconds: u64 },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Projects with a retention setting.
    pub projects: u64,
    /// ClickHouse rows deleted.
    pub rows_deleted: u64,
    /// `accepted_batches` entries pruned.
    pub batches_pruned: u64,
}

/// Deletes rows past each project's retention (relative to `now_us`) and prunes the batch ledger.
pub async fn run(
    pg: &Client,
    clickhouse: &ClickHouse,
    now_us: i64,
) -> Result<RetentionReport, RetentionError> {
    let projects = pg
        .query(
            "SELECT id, retention_days FROM projects WHERE retention_days IS NOT NULL ORDER BY id",
            &[],
        )
        .await?;
    let mut report = RetentionReport {
        projects: projects.len() as u64,
        ..RetentionReport::default()
    };
    for row in &projects {
        let project: Uuid = row.get("id");
        let days: i32 = row.get("retention_days");
        let cutoff = now_us - i64::from(days) * DAY_US;
        for table in Table::ALL {
            let condition = format!(
                "project_id = {} AND {} < {cutoff}",
                quote(&project.to_string()),
                table.time_column()
            );
            let doomed = clickhouse
                .query_text(&format!(
                    "SELECT count() FROM {} WHERE {condition} FORMAT TabSeparated",
                    table.name()
                ))
                .await?;
            let doomed: u64 = doomed.trim().parse().unwrap_or(0);
            if doomed == 0 {
                continue;
            }
            for name in std::iter::once(table.name()).chain(table.derived_tables().iter().copied()) {
                mutate(clickhouse, name, &format!("DELETE WHERE {condition}")).await?;
                if !wait_for_mutations(clickhouse, name, MUTATION_TIMEOUT).await? {
                    return Err(RetentionError::MutationTimeout {
                        table: name,
                        seconds: MUTATION_TIMEOUT.as_secs(),
                    });
                }
            }
            if table == Table::Observations {
                // The hours the cutoff falls in or before no longer match their rollups.
                let hour = agenttrace_etl::analytics::hourly::HOUR_US;
                agenttrace_etl::analytics::hourly::invalidate(clickhouse, project, Some(cutoff + hour))
                    .await?;
            }
            tracing::info!(%project, table = table.name(), rows = doomed, "retention deleted rows");
            report.rows_deleted += doomed;
        }
    }
    report.batches_pruned = pg
        .execute(
            "DELETE FROM accepted_batches WHERE accepted_at < now() - make_interval(days => $1)",
            &[&BATCH_LEDGER_DAYS],
        )
        .await?;
    Ok(report)
}
