//! One attempt at a deletion job, step by step; every step is safe to run again, and each one
//! finished is recorded, so an attempt cut short (a crash, ClickHouse down) resumes where it
//! stopped. The job succeeds only when a final read of every table finds none of its rows.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::clickhouse::cluster::{mutate, wait_for_mutations};
use crate::clickhouse::{ClickHouse, ClickHouseError, quote};
use crate::control::ControlError;
use crate::control::deletions::{self, DeletionJob, DeletionTarget};
use crate::deletion::plan::{chunks, plan};

/// How long one table's mutations may take before the attempt fails (and is tried again).
const MUTATION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a batch checked against the tombstones just before they were written may take to
/// load (the loader flushes within a second or two; a retry within its attempts).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] ClickHouseError),
    #[error("ClickHouse did not finish deleting from {table} within {seconds} s")]
    MutationTimeout { table: &'static str, seconds: u64 },
    #[error("rows still found after deleting: {0}")]
    Remaining(String),
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

/// The ids one query returns (`SELECT … AS id … FORMAT JSONEachRow`).
async fn ids(clickhouse: &ClickHouse, select: &str) -> Result<Vec<String>, ClickHouseError> {
    let text = clickhouse
        .query_text(&format!("{select} FORMAT JSONEachRow"))
        .await?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<Id>(line).ok())
        .map(|row| row.id)
        .collect())
}

async fn count(clickhouse: &ClickHouse, table: &str, condition: &str) -> Result<u64, ClickHouseError> {
    let text = clickhouse
        .query_text(&format!(
            "SELECT count() FROM {table} WHERE {condition} FORMAT TabSeparated"
        ))
        .await?;
    Ok(text.trim().parse().unwrap_or(0))
}

/// The traces a session or user id names now (a trace deletion names its own).
async fn resolve(
    clickhouse: &ClickHouse,
    project: Uuid,
    target: &DeletionTarget,
) -> Result<Vec<String>, ClickHouseError> {
    let project = quote(&project.to_string());
    Ok(match target {
        DeletionTarget::Traces(ids) => ids.clone(),
        DeletionTarget::Session(session) => {
            let session = quote(session);
            ids(
                clickhouse,
                &format!(
                    "SELECT DISTINCT id FROM traces WHERE project_id = {project} AND session_id = {session} \
                     UNION ALL SELECT DISTINCT trace_id AS id FROM session_traces \
                     WHERE project_id = {project} AND session_id = {session}"
                ),
            )
            .await?
        }
        DeletionTarget::User(user) => {
            ids(
                clickhouse,
                &format!(
                    "SELECT DISTINCT id FROM traces WHERE project_id = {project} AND user_id = {}",
                    quote(user)
                ),
            )
            .await?
        }
        DeletionTarget::Project | DeletionTarget::Scores(_) => Vec::new(),
    })
}

/// The observations of the traces (their comments and queue items name them).
async fn observation_ids(
    clickhouse: &ClickHouse,
    project: Uuid,
    traces: &[String],
) -> Result<Vec<String>, ClickHouseError> {
    let mut found = Vec::new();
    for chunk in chunks(traces) {
        let list: Vec<String> = chunk.iter().map(|id| quote(id)).collect();
        found.extend(
            ids(
                clickhouse,
                &format!(
                    "SELECT DISTINCT id FROM observations WHERE project_id = {} AND trace_id IN ({})",
                    quote(&project.to_string()),
                    list.join(", ")
                ),
            )
            .await?,
        );
    }
    Ok(found)
}

/// Deletes what PostgreSQL keeps of the traces (comments, queue items, judges' prompts and
/// answers, share links, run items, waiting patches; dataset items made from them if asked), in
/// one transaction; rows deleted per table.
async fn delete_from_postgres(
    pg: &mut Client,
    project: Uuid,
    target: &DeletionTarget,
    traces: &[String],
    observations: &[String],
    dataset_items: bool,
) -> Result<BTreeMap<String, u64>, ControlError> {
    let whole = *target == DeletionTarget::Project;
    let session: Option<&str> = match target {
        DeletionTarget::Session(id) => Some(id),
        _ => None,
    };
    let (t, o, whole_ref) = (&traces, &observations, &whole);
    type Params<'a> = Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>;
    let statements: Vec<(&str, &str, Params)> = vec![
        (
            "comments",
            "DELETE FROM comments WHERE project_id = $1 AND object_type <> 'PROMPT' AND ($5 OR \
             (object_type = 'TRACE' AND object_id = ANY($2)) OR \
             (object_type = 'OBSERVATION' AND object_id = ANY($3)) OR \
             (object_type = 'SESSION' AND object_id = $4))",
            vec![&project, t, o, &session, whole_ref],
        ),
        (
            "annotation_queue_items",
            "DELETE FROM annotation_queue_items WHERE project_id = $1 AND ($5 OR trace_id = ANY($2) OR \
             (object_type = 'TRACE' AND object_id = ANY($2)) OR \
             (object_type = 'OBSERVATION' AND object_id = ANY($3)) OR \
             (object_type = 'SESSION' AND object_id = $4))",
            vec![&project, t, o, &session, whole_ref],
        ),
        (
            "judgments",
            "DELETE FROM judgments WHERE project_id = $1 AND ($3 OR trace_id = ANY($2) OR \
             (target_kind = 'session' AND target_id = $4))",
            vec![&project, t, whole_ref, &session],
        ),
        (
            "trace_shares",
            "DELETE FROM trace_shares WHERE project_id = $1 AND ($3 OR trace_id = ANY($2))",
            vec![&project, t, whole_ref],
        ),
        (
            "experiment_items",
            "DELETE FROM experiment_items WHERE experiment_id IN (SELECT id FROM experiments WHERE project_id = $1) \
             AND ($3 OR trace_id = ANY($2))",
            vec![&project, t, whole_ref],
        ),
        (
            "pending_patches",
            "DELETE FROM pending_patches WHERE project_id = $1 AND ($4 OR entity_id = ANY($2) OR \
             entity_id = ANY($3) OR patch->>'trace_id' = ANY($2))",
            vec![&project, t, o, whole_ref],
        ),
    ];
    let tx = pg.transaction().await?;
    let mut found = BTreeMap::new();
    for (table, sql, params) in &statements {
        let rows = tx.execute(*sql, params).await?;
        found.insert(format!("postgres.{table}"), rows);
    }
    if dataset_items {
        let rows = tx
            .execute(
                "DELETE FROM dataset_items WHERE dataset_id IN (SELECT id FROM datasets WHERE project_id = $1) \
                 AND source_trace_id IS NOT NULL AND ($3 OR source_trace_id = ANY($2))",
                &[&project, &traces, &whole],
            )
            .await?;
        found.insert("postgres.dataset_items".into(), rows);
    }
    tx.commit().await?;
    Ok(found)
}

/// Takes the traces' generations out of `daily_costs` (a SummingMergeTree filled by a view, so
/// a mutation there cannot tell them apart): per chunk of traces, one row per day and model with
/// their counts and costs negated, which the sums absorb. Unsigned counts wrap modulo 2⁶⁴ as
/// they are summed, so the sums come out right. Each chunk is recorded as a step
/// (`daily_costs.subtracted.<n>`) once inserted, so a resumed job does not subtract it twice.
async fn subtract_daily_costs(
    pg: &Client,
    clickhouse: &ClickHouse,
    job: &DeletionJob,
    traces: &[String],
    lease: Duration,
) -> Result<(), DeletionError> {
    for (n, chunk) in chunks(traces).into_iter().enumerate() {
        let step = format!("daily_costs.subtracted.{n}");
        if job.is_done(&step) {
            continue;
        }
        let list: Vec<String> = chunk.iter().map(|id| quote(id)).collect();
        let which = format!(
            "project_id = {} AND type = 'generation' AND trace_id IN ({})",
            quote(&job.project_id.to_string()),
            list.join(", ")
        );
        let generations = count(clickhouse, "observations FINAL", &which).await?;
        if generations > 0 {
            // Not deduplicated: on a cluster, an insert identical to a recent one (another
            // chunk's, another job's compensation of as many generations) would be dropped as
            // a retry.
            clickhouse
                .query_with_settings(
                    &format!(
                        "INSERT INTO daily_costs (project_id, day, model, generations, input_tokens, output_tokens, \
                         cache_read_tokens, cache_write_tokens, total_cost) \
                         SELECT project_id, toDate(toDateTime(intDiv(start_time_us, 1000000))) AS day, \
                         ifNull(model, '') AS model, toUInt64(0 - count()), toUInt64(0 - sum(input_tokens)), \
                         toUInt64(0 - sum(output_tokens)), toUInt64(0 - sum(cache_read_tokens)), \
                         toUInt64(0 - sum(cache_write_tokens)), \
                         toDecimal128(0, 12) - sum(ifNull(total_cost, toDecimal64(0, 12))) \
                         FROM observations FINAL WHERE {which} GROUP BY project_id, day, model"
                    ),
                    &[("insert_deduplicate", "0")],
                )
                .await?;
        }
        let mut found = BTreeMap::new();
        found.insert(format!("daily_costs.generations.{n}"), generations);
        deletions::step_done(pg, job.id, &step, &found, lease).await?;
    }
    Ok(())
}

/// Runs the mutations of one table (one per condition) and waits for them on every replica;
/// rows found.
async fn delete_from_table(
    clickhouse: &ClickHouse,
    table: &'static str,
    conditions: &[String],
) -> Result<u64, DeletionError> {
    // An earlier attempt's mutations first: counted while they still run, the rows would be
    // found again and deleted twice over (each mutation rewrites what it touches).
    wait_for_table(clickhouse, table).await?;
    let mut found = 0;
    for condition in conditions {
        // Counting first also checks the condition: on 18.16 a mutation that fails blocks its
        // table for good, so none is sent that a SELECT would not run.
        let n = count(clickhouse, table, condition).await?;
        if n > 0 {
            mutate(clickhouse, table, &format!("DELETE WHERE {condition}")).await?;
        }
        found += n;
    }
    if found > 0 {
        wait_for_table(clickhouse, table).await?;
    }
    Ok(found)
}

/// Waits for `table`'s mutations on every replica, at most [`MUTATION_TIMEOUT`].
async fn wait_for_table(clickhouse: &ClickHouse, table: &'static str) -> Result<(), DeletionError> {
    if wait_for_mutations(clickhouse, table, MUTATION_TIMEOUT).await? {
        return Ok(());
    }
    Err(DeletionError::MutationTimeout {
        table,
        seconds: MUTATION_TIMEOUT.as_secs(),
    })
}

/// Advances `job` as far as it goes: tombstones first (so nothing deleted is loaded again from
/// then on), PostgreSQL, the cost sums, then every ClickHouse table; finally a read of every
/// table. `lease` is renewed at each step (and by the worker's heartbeat between them). What
/// the final read found, all zero, on success.
pub async fn run(
    pg: &mut Client,
    clickhouse: &ClickHouse,
    job: &DeletionJob,
    lease: Duration,
) -> Result<BTreeMap<String, u64>, DeletionError> {
    let target = job.target()?;
    let project = job.project_id;
    let mut traces = resolve(clickhouse, project, &target).await?;
    if matches!(target, DeletionTarget::Session(_) | DeletionTarget::User(_)) {
        // What an earlier attempt found and may since have deleted.
        traces.extend(deletions::tombstoned_by(&*pg, job.id).await?);
        traces.sort();
        traces.dedup();
    }
    // What the ledger keeps and the mutations name: the traces, or the scores themselves.
    let keyed: &[String] = match &target {
        DeletionTarget::Scores(ids) => ids,
        _ => &traces,
    };
    let mut tombstoned_now = None;
    if !job.is_done("tombstones") && target != DeletionTarget::Project {
        let kind = target.tombstone_kind();
        deletions::tombstone(&*pg, project, job.id, kind, keyed).await?;
        tombstoned_now = Some(std::time::Instant::now());
        let mut found = BTreeMap::new();
        found.insert(format!("{kind}s.found"), keyed.len() as u64);
        deletions::step_done(&*pg, job.id, "tombstones", &found, lease).await?;
    }
    // PostgreSQL keeps nothing of a score.
    if !job.is_done("postgres") && !matches!(target, DeletionTarget::Scores(_)) {
        let observations = observation_ids(clickhouse, project, &traces).await?;
        let found =
            delete_from_postgres(pg, project, &target, &traces, &observations, job.dataset_items).await?;
        deletions::step_done(&*pg, job.id, "postgres", &found, lease).await?;
    }
    if target != DeletionTarget::Project {
        subtract_daily_costs(&*pg, clickhouse, job, &traces, lease).await?;
    }
    // Each table's conditions are made when its turn comes: a deletion of many traces holds
    // one table's at a time.
    let plan = plan(project, &target, keyed);
    for table in plan.tables() {
        if job.is_done(table) {
            continue;
        }
        let found = delete_from_table(clickhouse, table, &plan.conditions(table)).await?;
        let mut counts = BTreeMap::new();
        counts.insert(table.to_owned(), found);
        deletions::step_done(&*pg, job.id, table, &counts, lease).await?;
    }
    // A batch that passed the tombstone check just before the tombstones were written may
    // still be loading: the final read waits until such a batch has landed, so that it finds it.
    if let Some(at) = tombstoned_now {
        tokio::time::sleep(IN_FLIGHT_GRACE.saturating_sub(at.elapsed())).await;
    }
    let mut remaining = BTreeMap::new();
    for table in plan.tables() {
        let mut left = 0;
        for condition in plan.conditions(table) {
            left += count(clickhouse, table, &condition).await?;
        }
        remaining.insert(table.to_owned(), left);
    }
    let again: Vec<String> = remaining
        .iter()
        .filter(|(_, left)| **left > 0)
        .map(|(table, _)| table.clone())
        .collect();
    if !again.is_empty() {
        // Rows loaded while the mutations ran (a batch past its tombstone check): those
        // tables run again on the next attempt.
        deletions::redo_steps(&*pg, job.id, &again).await?;
        let left: Vec<String> = again
            .iter()
            .map(|table| format!("{table}: {}", remaining[table]))
            .collect();
        return Err(DeletionError::Remaining(left.join(", ")));
    }
    if target != DeletionTarget::Project {
        // The project's hourly rollups still count what was deleted: they are read raw until
        // rolled up again.
        crate::analytics::hourly::invalidate(clickhouse, project, None).await?;
    }
    Ok(remaining)
}
