//! Retention: delete each project's rows older than its `retention_days`.
//!
//! ClickHouse 18.16 has no TTL, so the job issues `ALTER TABLE ... DELETE` mutations scoped to
//! one project and a time bound, counts what they will remove first, and waits until ClickHouse
//! reports them done, so a run's record says exactly what it deleted. It also prunes the
//! ETL's `accepted_batches` ledger: a batch re-delivered after that is loaded again and
//! deduplicated by the tables' ReplacingMergeTree keys.

use std::time::Duration;

use agenttrace_etl::clickhouse::cluster::{mutate, nudge_mutations, pending_mutations};
use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseError, Table, quote};
use tokio_postgres::Client;
use uuid::Uuid;

/// How long `accepted_batches` remembers a batch id.
pub const BATCH_LEDGER_DAYS: i32 = 30;
const DAY_US: i64 = 86_400 * 1_000_000;

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

/// Waits until `table`'s mutations are done on every replica. On a cluster a mutation still
/// pending after a moment is nudged (`nudge_mutations`: 18.16 holds back a partition's last
/// quorum-inserted part), and again every few seconds while it waits.
async fn wait_for_mutations(
    clickhouse: &ClickHouse,
    table: &'static str,
    time_column: &str,
) -> Result<(), RetentionError> {
    const TIMEOUT: Duration = Duration::from_secs(300);
    const NUDGE_AFTER: Duration = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let mut nudged_at: Option<std::time::Instant> = None;
    loop {
        if pending_mutations(clickhouse, table).await? == 0 {
            return Ok(());
        }
        let due = match nudged_at {
            None => started.elapsed() > NUDGE_AFTER,
            Some(at) => at.elapsed() > 3 * NUDGE_AFTER,
        };
        if due {
            nudge_mutations(clickhouse, table, time_column).await?;
            nudged_at = Some(std::time::Instant::now());
        }
        if started.elapsed() > TIMEOUT {
            return Err(RetentionError::MutationTimeout {
                table,
                seconds: TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
                wait_for_mutations(clickhouse, name, table.time_column()).await?;
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
