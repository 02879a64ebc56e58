//! Per-trace summaries (migration `0011_trace_summaries`): [`summarize`] (the
//! `trace_summaries` job) writes the summary of every trace whose observations or row arrived
//! since its last run, from deduplicated rows, and records the second it stands for. Trace
//! lists filtered by level, cost or latency read the summaries of the traces that arrived
//! before that second and summarize the few that arrived since ([`fresh_traces`]) themselves.

use crate::analytics::hourly::SETTLE_SECONDS;
use crate::clickhouse::{ClickHouse, ClickHouseError, quote};

/// What one run summarized.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SummaryReport {
    pub projects: u64,
    /// Traces summarized (new or changed).
    pub traces: u64,
    /// The second every trace that arrived before is summarized as of.
    pub watermark: i64,
}

/// The summary columns of a trace from `observations` rows (deduplicated by the caller),
/// grouped by `trace_id`; in `trace_summaries`' order after its key.
pub const SUMMARY_COLUMNS: &str = "count() AS observation_count,
    ifNull(toFloat64(sum(total_cost)), 0.) AS total_cost,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    (max(ifNull(end_time_us, start_time_us)) - min(start_time_us)) / 1000 AS latency_ms,
    max(multiIf(level = 'error', 3, level = 'warning', 2, 1)) AS worst_level";

/// The second the last run's summaries stand for (0 before any).
pub async fn summarized_second(clickhouse: &ClickHouse) -> Result<i64, ClickHouseError> {
    let text = clickhouse
        .query_text("SELECT max(summarized_second) FROM trace_summary_runs FORMAT TabSeparated")
        .await?;
    Ok(text.trim().parse().unwrap_or(0))
}

/// SQL for the ids of `project`'s traces whose observations or row arrived in
/// `[since, until)` (seconds of ClickHouse's clock; `until` open when `None`): the traces
/// whose summary is missing or stale. `project` is quoted.
pub fn fresh_traces(project: &str, since: i64, until: Option<i64>) -> String {
    let until = until.map_or(String::new(), |u| format!(" AND ingested_second < {u}"));
    format!(
        "SELECT trace_id FROM observations_by_ingest WHERE ingested_second >= {since}{until} AND project_id = {project}
         UNION ALL
         SELECT id AS trace_id FROM traces_by_ingest WHERE ingested_second >= {since}{until} AND project_id = {project}"
    )
}

/// Summarizes every trace that arrived since the last run and settled (`settle_seconds` ago),
/// project by project, then records the run.
pub async fn summarize(
    clickhouse: &ClickHouse,
    settle_seconds: i64,
) -> Result<SummaryReport, ClickHouseError> {
    let now: i64 = clickhouse
        .query_text("SELECT toUInt32(now()) FORMAT TabSeparated")
        .await?
        .trim()
        .parse()
        .unwrap_or(0);
    let until = now - settle_seconds;
    let since = summarized_second(clickhouse).await?;
    let mut report = SummaryReport {
        watermark: until.max(since),
        ..SummaryReport::default()
    };
    if until <= since {
        return Ok(report);
    }
    let projects = clickhouse
        .query_text(&format!(
            "SELECT DISTINCT project_id FROM (
                 SELECT project_id FROM observations_by_ingest WHERE ingested_second >= {since} AND ingested_second < {until}
                 UNION ALL
                 SELECT project_id FROM traces_by_ingest WHERE ingested_second >= {since} AND ingested_second < {until}
             ) WHERE project_id != '' FORMAT TabSeparated"
        ))
        .await?;
    for project in projects.lines().filter(|p| !p.is_empty()) {
        let project = quote(project);
        let fresh = fresh_traces(&project, since, Some(until));
        clickhouse
            .execute(&format!(
                "INSERT INTO trace_summaries
                 SELECT project_id, timestamp_us, trace_id, observation_count, total_cost, input_tokens, output_tokens,
                        latency_ms, worst_level, toUInt32({until})
                 FROM (
                     SELECT project_id, id AS trace_id, timestamp_us FROM traces FINAL
                     WHERE project_id = {project} AND id IN ({fresh})
                 ) ANY INNER JOIN (
                     SELECT trace_id, {SUMMARY_COLUMNS} FROM observations FINAL
                     WHERE project_id = {project} AND trace_id IN ({fresh}) GROUP BY trace_id
                 ) USING trace_id"
            ))
            .await?;
        let written = clickhouse
            .query_text(&format!(
                "SELECT count() FROM trace_summaries WHERE project_id = {project} AND summarized_second = {until}
                 FORMAT TabSeparated"
            ))
            .await?;
        report.traces += written.trim().parse::<u64>().unwrap_or(0);
        report.projects += 1;
    }
    clickhouse
        .execute(&format!("INSERT INTO trace_summary_runs VALUES ({until})"))
        .await?;
    Ok(report)
}

/// [`summarize`] as the scheduler runs it: traces that arrived in the last
/// [`SETTLE_SECONDS`] wait for the next run (readers summarize them meanwhile).
pub async fn scheduled(clickhouse: &ClickHouse) -> Result<SummaryReport, ClickHouseError> {
    summarize(clickhouse, SETTLE_SECONDS).await
}
