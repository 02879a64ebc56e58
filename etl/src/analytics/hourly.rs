//! Exact hourly rollups of the observation metrics (migrations `0010_observation_rollups` and
//! `0012_keys_digests_score_times`).
//!
//! [`roll`] (the `metric_rollups` job) aggregates each settled, touched hour of each project
//! from the deduplicated rows into `observation_hourly` and records the second the rollup
//! stands for in `observation_hours`. Every insert into `observations` marks the hours it
//! touched (a view, stamped with the server's clock); deletions and retention mark theirs with
//! [`invalidate`]. [`current_hours`] is what a metrics query may take from the rollup: the
//! hours whose rollup is newer than their last touch. Everything else is read raw, so an answer
//! equals a full deduplicated scan while replays, partial updates and late events arrive.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::clickhouse::{ClickHouse, ClickHouseError, quote};

pub const HOUR_US: i64 = 3_600_000_000;
/// How long after ClickHouse stamps an insert's touch the insert is surely visible (a
/// quorum insert on a cluster waits at most 30 s; the loader's own timeout is shorter): an
/// hour touched more recently than this is not rolled up yet, and a rollup stands for the
/// second this long before it read the rows.
pub const SETTLE_SECONDS: i64 = 300;
/// Most hours one `INSERT … SELECT` rolls up (a week: its rows are read and grouped at once).
const HOURS_PER_STATEMENT: i64 = 168;

/// What one run rolled up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollReport {
    /// (project, hour) pairs touched since the last run.
    pub touched: u64,
    /// Of them, rolled up now.
    pub rolled: u64,
    /// Touched too recently to roll up; the next run takes them.
    pub unsettled: u64,
    /// The second this run's rollups stand for: the next run's watermark.
    pub watermark: i64,
}

fn tsv(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\t').collect())
}

/// The hours of `project` in `[from_us, to_us)` (hour-aligned) whose current rollup no
/// insert, deletion or retention has touched since: `(hour, rolled_second)`, in order.
pub async fn current_hours(
    clickhouse: &ClickHouse,
    project: Uuid,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<(i64, u32)>, ClickHouseError> {
    let range = format!(
        "project_id = {} AND hour_us >= {from_us} AND hour_us < {to_us}",
        quote(&project.to_string())
    );
    let text = clickhouse
        .query_text(&format!(
            "SELECT hour_us, rolled FROM (
                 SELECT hour_us, max(rolled_second) AS rolled FROM observation_hours WHERE {range} GROUP BY hour_us
             ) ANY LEFT JOIN (
                 SELECT hour_us, max(touched_second) AS touched FROM observation_hour_touches WHERE {range} GROUP BY hour_us
             ) USING hour_us
             WHERE touched < rolled ORDER BY hour_us FORMAT TabSeparated"
        ))
        .await?;
    Ok(tsv(&text)
        .filter_map(|f| Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?)))
        .collect())
}

/// Marks `project`'s rolled-up hours (those before `before_us`, if given) as touched now, so
/// that reads stop using their rollups until the next run rolls them up again: for changes
/// that insert nothing (a deletion's or retention's mutations), once those are done.
pub async fn invalidate(
    clickhouse: &ClickHouse,
    project: Uuid,
    before_us: Option<i64>,
) -> Result<(), ClickHouseError> {
    let mut condition = format!("project_id = {}", quote(&project.to_string()));
    if let Some(before) = before_us {
        condition.push_str(&format!(" AND hour_us < {before}"));
    }
    clickhouse
        .execute(&format!(
            "INSERT INTO observation_hour_touches
             SELECT project_id, hour_us, toUInt32(now()) FROM observation_hours WHERE {condition} GROUP BY project_id, hour_us"
        ))
        .await?;
    clickhouse
        .execute(&format!(
            "INSERT INTO observation_touch_log
             SELECT toUInt32(now()), project_id, hour_us FROM observation_hours WHERE {condition} GROUP BY project_id, hour_us"
        ))
        .await
}

/// Contiguous runs of `hours` (sorted), each at most [`HOURS_PER_STATEMENT`] long:
/// `[start, end)` in microseconds.
pub fn ranges(hours: &[i64], longest: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &hour in hours {
        match out.last_mut() {
            Some((start, end)) if *end == hour && (hour - *start) / HOUR_US < longest => {
                *end = hour + HOUR_US
            }
            _ => out.push((hour, hour + HOUR_US)),
        }
    }
    out
}

/// Rolls up every hour touched since `watermark` (the previous run's [`RollReport::watermark`];
/// `None` reads every touch) and settled for `settle_seconds`. Re-running is safe: an hour
/// whose rollup is already newer than its last touch is skipped.
pub async fn roll(
    clickhouse: &ClickHouse,
    watermark: Option<i64>,
    settle_seconds: i64,
) -> Result<RollReport, ClickHouseError> {
    let now = clickhouse
        .query_text("SELECT toUInt32(now()) FORMAT TabSeparated")
        .await?;
    let cutoff = now.trim().parse::<i64>().unwrap_or(0) - settle_seconds;
    let since = watermark.map_or(0, |w| (w - SETTLE_SECONDS).max(0));
    let touched = clickhouse
        .query_text(&format!(
            "SELECT project_id, hour_us, max(touched_second) FROM observation_touch_log
             WHERE touched_second >= {since} AND project_id != ''
             GROUP BY project_id, hour_us ORDER BY project_id, hour_us FORMAT TabSeparated"
        ))
        .await?;
    let mut report = RollReport {
        watermark: cutoff,
        ..RollReport::default()
    };
    // project → settled hours (with their last touch in the log).
    let mut settled: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for fields in tsv(&touched) {
        let (Some(project), Some(hour), Some(second)) = (
            fields.first(),
            fields.get(1).and_then(|h| h.parse::<i64>().ok()),
            fields.get(2).and_then(|s| s.parse::<i64>().ok()),
        ) else {
            continue;
        };
        report.touched += 1;
        if second < cutoff {
            settled
                .entry((*project).to_owned())
                .or_default()
                .push((hour, second));
        } else {
            report.unsettled += 1;
        }
    }
    for (project, hours) in settled {
        let rolled = rolled_seconds(clickhouse, &project, &hours).await?;
        let due: Vec<i64> = hours
            .iter()
            .filter(|(hour, touched)| rolled.get(hour).is_none_or(|r| *r <= *touched))
            .map(|(hour, _)| *hour)
            .collect();
        for (start, end) in ranges(&due, HOURS_PER_STATEMENT) {
            roll_range(clickhouse, &project, start, end, cutoff).await?;
        }
        report.rolled += due.len() as u64;
    }
    Ok(report)
}

/// The current rollup second of each of `hours` that has one.
async fn rolled_seconds(
    clickhouse: &ClickHouse,
    project: &str,
    hours: &[(i64, i64)],
) -> Result<BTreeMap<i64, i64>, ClickHouseError> {
    let mut rolled = BTreeMap::new();
    for chunk in hours.chunks(5_000) {
        let list: Vec<String> = chunk.iter().map(|(hour, _)| hour.to_string()).collect();
        let text = clickhouse
            .query_text(&format!(
                "SELECT hour_us, max(rolled_second) FROM observation_hours
                 WHERE project_id = {} AND hour_us IN ({}) GROUP BY hour_us FORMAT TabSeparated",
                quote(project),
                list.join(",")
            ))
            .await?;
        for fields in tsv(&text) {
            if let (Some(hour), Some(second)) = (
                fields.first().and_then(|h| h.parse().ok()),
                fields.get(1).and_then(|s| s.parse().ok()),
            ) {
                rolled.insert(hour, second);
            }
        }
    }
    Ok(rolled)
}

/// The rollup's columns from `observations_by_time` (in the table's order after its key):
/// shared by the job and by reads of the raw hours.
pub fn measures_from_raw() -> &'static str {
    "count() AS count, countIf(isNotNull(end_time_us)) AS timed, countIf(level = 'error') AS errors,
         sum(ifNull(total_cost, toDecimal64(0, 12))) AS total_cost,
         sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
         sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
         quantilesTDigestIfState(0.5, 0.95, 0.99)((ifNull(end_time_us, start_time_us) - start_time_us) / 1000, isNotNull(end_time_us)) AS latency"
}

/// Whether an observation is an LLM judge's own call, as the rollup's `judge` column (the
/// positive form of [`crate::judge::not_a_judge_call`]: a cluster's shards simplify a double
/// negation and would name the column differently from the initiator).
pub fn judge_flag() -> String {
    use crate::judge::{JUDGE_CALL_NAME, JUDGE_TRACE_PREFIX};
    format!(
        "toUInt8(startsWith(trace_id, {}) AND name = {})",
        quote(JUDGE_TRACE_PREFIX),
        quote(JUDGE_CALL_NAME)
    )
}

/// Rolls up `[start, end)` of `project` as of `cutoff`: the rows first, then the hours' record,
/// so a reader that finds the record finds the rows (an hour with no rows left is recorded too:
/// its rollup is empty).
async fn roll_range(
    clickhouse: &ClickHouse,
    project: &str,
    start: i64,
    end: i64,
    cutoff: i64,
) -> Result<(), ClickHouseError> {
    clickhouse
        .execute(&format!(
            "INSERT INTO observation_hourly
             SELECT project_id, intDiv(start_time_us, {HOUR_US}) * {HOUR_US} AS hour_us, toUInt32({cutoff}) AS rolled_second,
                    type, name, ifNull(model, '') AS model_name, ifNull(tool_name, '') AS tool, level, api_key,
                    {judge} AS judge, {measures}
             FROM observations_by_time FINAL
             WHERE project_id = {project} AND start_time_us >= {start} AND start_time_us < {end}
             GROUP BY project_id, hour_us, type, name, model_name, tool, level, api_key, judge",
            judge = judge_flag(),
            measures = measures_from_raw(),
            project = quote(project),
        ))
        .await?;
    let values: Vec<String> = (start..end)
        .step_by(HOUR_US as usize)
        .map(|hour| format!("({}, {hour}, {cutoff})", quote(project)))
        .collect();
    clickhouse
        .execute(&format!(
            "INSERT INTO observation_hours (project_id, hour_us, rolled_second) VALUES {}",
            values.join(", ")
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_coalesce_into_bounded_ranges() {
        let h = |n: i64| n * HOUR_US;
        assert_eq!(ranges(&[], 3), vec![]);
        assert_eq!(
            ranges(&[h(1), h(2), h(3), h(5), h(6), h(7), h(8)], 3),
            vec![(h(1), h(4)), (h(5), h(8)), (h(8), h(9))]
        );
    }
}
