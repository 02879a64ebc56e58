//! `GET /v1/metrics`: cost, tokens, count, latency percentiles and error rate of observations
//! (or count, mean and percentiles of score values) by time bucket and up to two dimensions.
//! Observations come from `observations_by_time`, whose key (project, type, start) makes a
//! time range of one type a key range; deduplicated like every read.

use agenttrace_schemas::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::MetricsAnswer;
use crate::analytics::conditions::Conditions;
use crate::analytics::paging::{invalid, parse_json_rows, read, time_bound};
use crate::analytics::rows::{self, Row};
use crate::clickhouse::ClickHouse;
use crate::row_schema;
use utoipa::openapi::schema::Schema;

/// Groups one answer may hold; a query with more is refused (narrow it or bucket coarser).
pub const MAX_GROUPS: usize = 10_000;

const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 60 * MINUTE_US;
const DAY_US: i64 = 24 * HOUR_US;
/// 1970-01-01 was a Thursday: weeks start on Monday, four days later.
const FIRST_MONDAY_US: i64 = 4 * DAY_US;

/// `GET /v1/metrics`'s parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    pub project_id: Option<Uuid>,
    /// `observations` (the default) or `scores`.
    pub view: Option<String>,
    /// RFC 3339, required.
    pub from: Option<String>,
    /// RFC 3339, required.
    pub to: Option<String>,
    /// `minute`, `hour`, `day` (the default), `week` or `none`.
    pub bucket: Option<String>,
    /// Comma-separated, at most two: `model`, `name`, `tool`, `type`, `user`, `level`,
    /// `environment`, `tag` (a trace with several tags counts under each), `api_key` (the
    /// public key that sent the observation) for observations;
    /// `name`, `evaluator`, `source`, `data_type` for scores.
    pub dimensions: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub model: Option<String>,
    pub name: Option<String>,
    pub tool: Option<String>,
    /// A public key (`pk-…`): observations that key sent.
    pub api_key: Option<String>,
    pub evaluator: Option<String>,
    pub source: Option<String>,
    /// `true` counts the LLM judges' own model calls too; they are left out by default.
    pub include_judges: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Observations,
    Scores,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
    Week,
    None,
}

impl Bucket {
    pub fn parse(text: &str) -> Result<Bucket, AnalyticsError> {
        Ok(match text {
            "minute" => Bucket::Minute,
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "week" => Bucket::Week,
            "none" => Bucket::None,
            other => {
                return Err(invalid(
                    "bucket",
                    format!("{other:?}: use minute, hour, day, week or none"),
                ));
            }
        })
    }

    /// SQL for the bucket's start (µs) of time column `time`.
    pub fn sql(self, time: &str, from_us: i64) -> String {
        let width = match self {
            Bucket::Minute => MINUTE_US,
            Bucket::Hour => HOUR_US,
            Bucket::Day => DAY_US,
            Bucket::Week => {
                let week = 7 * DAY_US;
                return format!("intDiv({time} - {FIRST_MONDAY_US}, {week}) * {week} + {FIRST_MONDAY_US}");
            }
            Bucket::None => return from_us.to_string(),
        };
        format!("intDiv({time}, {width}) * {width}")
    }
}

/// A grouping column: its name in the answer and its SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimension {
    pub name: &'static str,
    pub sql: &'static str,
}

const OBSERVATION_DIMENSIONS: [Dimension; 9] = [
    Dimension {
        name: "model",
        sql: "ifNull(model, '')",
    },
    Dimension {
        name: "name",
        sql: "name",
    },
    Dimension {
        name: "tool",
        sql: "ifNull(tool_name, '')",
    },
    Dimension {
        name: "type",
        sql: "type",
    },
    Dimension {
        name: "user",
        sql: "user",
    },
    Dimension {
        name: "level",
        sql: "level",
    },
    Dimension {
        name: "environment",
        sql: "environment",
    },
    // A trace with several tags counts under each; one without, under "".
    Dimension {
        name: "tag",
        sql: "arrayJoin(if(empty(tags), [''], tags))",
    },
    // The public key of the API key that sent the observation ('' for AgentTrace's own rows).
    Dimension {
        name: "api_key",
        sql: "api_key",
    },
];

const SCORE_DIMENSIONS: [Dimension; 4] = [
    Dimension {
        name: "name",
        sql: "name",
    },
    Dimension {
        name: "evaluator",
        sql: "ifNull(evaluator_id, '')",
    },
    Dimension {
        name: "source",
        sql: "source",
    },
    Dimension {
        name: "data_type",
        sql: "data_type",
    },
];

/// A checked metrics query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    pub view: View,
    pub from_us: i64,
    pub to_us: i64,
    pub bucket: Bucket,
    pub dimensions: Vec<Dimension>,
    /// (dimension, value): only rows where the dimension has that value.
    pub filters: Vec<(Dimension, String)>,
    /// Count the LLM judges' own model calls (observations view).
    pub include_judges: bool,
}

impl MetricsQuery {
    pub fn dimension(view: View, name: &str) -> Result<Dimension, AnalyticsError> {
        let known: &[Dimension] = match view {
            View::Observations => &OBSERVATION_DIMENSIONS,
            View::Scores => &SCORE_DIMENSIONS,
        };
        known.iter().copied().find(|d| d.name == name).ok_or_else(|| {
            let names: Vec<&str> = known.iter().map(|d| d.name).collect();
            invalid(
                "dimensions",
                format!(
                    "{name:?} is not a dimension of this view; use {}",
                    names.join(", ")
                ),
            )
        })
    }

    pub fn from_params(params: &MetricsParams) -> Result<MetricsQuery, AnalyticsError> {
        let view = match params.view.as_deref().unwrap_or("observations") {
            "observations" => View::Observations,
            "scores" => View::Scores,
            other => return Err(invalid("view", format!("{other:?}: use observations or scores"))),
        };
        let from_us = time_bound(params.from.as_deref(), "from")?
            .ok_or_else(|| invalid("from", "required: the start of the range, RFC 3339"))?;
        let to_us = time_bound(params.to.as_deref(), "to")?
            .ok_or_else(|| invalid("to", "required: the end of the range, RFC 3339"))?;
        if to_us <= from_us {
            return Err(invalid("to", "must be after `from`"));
        }
        let bucket = Bucket::parse(params.bucket.as_deref().unwrap_or("day"))?;
        let dimensions = params
            .dimensions
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| MetricsQuery::dimension(view, d))
            .collect::<Result<Vec<_>, _>>()?;
        if dimensions.len() > 2 {
            return Err(invalid("dimensions", "at most two"));
        }
        let mut filters = Vec::new();
        for (name, value) in [
            ("type", &params.kind),
            ("model", &params.model),
            ("name", &params.name),
            ("tool", &params.tool),
            ("api_key", &params.api_key),
            ("evaluator", &params.evaluator),
            ("source", &params.source),
        ] {
            if let Some(value) = value {
                let dimension = MetricsQuery::dimension(view, name)
                    .map_err(|_| invalid("filter", format!("{name} does not apply to the {view:?} view")))?;
                filters.push((dimension, value.clone()));
            }
        }
        Ok(MetricsQuery {
            view,
            from_us,
            to_us,
            bucket,
            dimensions,
            filters,
            include_judges: params.include_judges.unwrap_or(false),
        })
    }

    /// Whether the hourly rollup can answer (part of) this query: observations, grouped and
    /// filtered by the rollup's own columns, in buckets of whole hours.
    pub fn rollup_eligible(&self) -> bool {
        self.view == View::Observations
            && self.bucket != Bucket::Minute
            && self
                .dimensions
                .iter()
                .chain(self.filters.iter().map(|(d, _)| d))
                .all(|d| ROLLUP_DIMENSIONS.contains(&d.name))
    }

    /// The query over the rollup's `current` hours `(hour, rolled_second)` and the raw rows of
    /// the rest of the range.
    fn rollup_sql(&self, project: Uuid, current: &[(i64, u32)]) -> String {
        let mut rolled = Conditions::project(project);
        rolled.raw(current_rollups(current));
        let mut raw = Conditions::project(project);
        let ranges = raw_ranges(self.from_us, self.to_us, current);
        let mut raw_part = String::new();
        if !ranges.is_empty() {
            let spans: Vec<String> = ranges
                .iter()
                .map(|(a, b)| format!("(start_time_us >= {a} AND start_time_us < {b})"))
                .collect();
            raw.raw(format!("({})", spans.join(" OR ")));
        }
        for (dimension, value) in &self.filters {
            rolled.eq(dimension.sql, value);
            raw.eq(dimension.sql, value);
        }
        if !self.include_judges {
            rolled.raw("judge = 0");
            raw.raw(crate::judge::not_a_judge_call());
        }
        // Renamed so that the sums outside, named as the answer names them, refer to these.
        let columns =
            "type, name, model, tool AS tool_name, level, api_key, count AS n_count, timed AS n_timed,
                       errors AS n_errors, total_cost AS n_cost, input_tokens AS n_input,
                       output_tokens AS n_output, cache_read_tokens AS n_cache_read,
                       cache_write_tokens AS n_cache_write, latency AS n_latency";
        if !ranges.is_empty() {
            raw_part = format!(
                "UNION ALL
                 SELECT toInt64({bucket}) AS t, type, name, ifNull(model, '') AS model_name, ifNull(tool_name, '') AS tool, level,
                        api_key, {measures}
                 FROM observations_by_time FINAL {conditions}
                 GROUP BY t, type, name, model_name, tool, level, api_key",
                bucket = self.bucket.sql("start_time_us", self.from_us),
                measures = crate::analytics::hourly::measures_from_raw(),
                conditions = raw.render(),
            );
        }
        let mut groups = vec![format!("{} AS bucket_us", self.bucket.sql("t", self.from_us))];
        groups.extend(
            self.dimensions
                .iter()
                .map(|d| format!("{} AS dimension_{}", d.sql, d.name)),
        );
        let keys: Vec<String> = std::iter::once("bucket_us".to_owned())
            .chain(self.dimensions.iter().map(|d| format!("dimension_{}", d.name)))
            .collect();
        format!(
            "SELECT {groups}, sum(n_count) AS count, ifNull(toFloat64(sum(n_cost)), 0.) AS total_cost,
                    sum(n_input) AS input_tokens, sum(n_output) AS output_tokens,
                    sum(n_cache_read) AS cache_read_tokens, sum(n_cache_write) AS cache_write_tokens,
                    sum(n_timed) AS timed, quantilesTDigestIfMerge(0.5, 0.95, 0.99)(n_latency) AS latency_ms,
                    sum(n_errors) / sum(n_count) AS error_rate
             FROM (
                 SELECT hour_us AS t, {columns} FROM observation_hourly {rolled}
                 {raw_part}
             )
             GROUP BY {keys} ORDER BY {keys} LIMIT {limit} FORMAT JSONEachRow",
            groups = groups.join(", "),
            rolled = rolled.render(),
            keys = keys.join(", "),
            limit = MAX_GROUPS + 1
        )
    }

    fn sql(&self, project: Uuid) -> String {
        let time = match self.view {
            View::Observations => "start_time_us",
            View::Scores => "timestamp_us",
        };
        // Filters on the table's own columns go inside the deduplicating read, so it merges
        // only the rows they keep (the type leads the index's key); the user is joined later.
        let mut inner = Conditions::project(project);
        inner.time_range(time, Some(self.from_us), Some(self.to_us));
        let mut outer = Conditions::new();
        for (dimension, value) in &self.filters {
            let side = if TRACE_DIMENSIONS.contains(&dimension.name) {
                &mut outer
            } else {
                &mut inner
            };
            side.eq(dimension.sql, value);
        }
        if self.view == View::Observations && !self.include_judges {
            inner.raw(crate::judge::not_a_judge_call());
        }
        let (measures, source) = match self.view {
            View::Observations => (OBSERVATION_MEASURES, self.observation_source(project, &inner)),
            View::Scores => (
                SCORE_MEASURES,
                format!("SELECT * FROM scores FINAL {}", inner.render()),
            ),
        };
        let mut groups = vec![format!("{} AS bucket_us", self.bucket.sql(time, self.from_us))];
        groups.extend(
            self.dimensions
                .iter()
                .map(|d| format!("{} AS dimension_{}", d.sql, d.name)),
        );
        let keys: Vec<String> = std::iter::once("bucket_us".to_owned())
            .chain(self.dimensions.iter().map(|d| format!("dimension_{}", d.name)))
            .collect();
        format!(
            "SELECT {groups}, {measures} FROM ({source}) {outer}
             GROUP BY {keys} ORDER BY {keys} LIMIT {limit} FORMAT JSONEachRow",
            groups = groups.join(", "),
            outer = outer.render(),
            keys = keys.join(", "),
            limit = MAX_GROUPS + 1
        )
    }

    /// Observations matching `conditions`; with the trace's user joined when a dimension
    /// needs it.
    fn observation_source(&self, project: Uuid, conditions: &Conditions) -> String {
        let observations = format!(
            "SELECT trace_id, type, name, model, tool_name, level, api_key, start_time_us, end_time_us, total_cost,
                    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
             FROM observations_by_time FINAL {}",
            conditions.render()
        );
        let needs_trace = self
            .dimensions
            .iter()
            .chain(self.filters.iter().map(|(d, _)| d))
            .any(|d| TRACE_DIMENSIONS.contains(&d.name));
        if !needs_trace {
            return observations;
        }
        let mut in_range = Conditions::project(project);
        in_range.time_range("start_time_us", Some(self.from_us), Some(self.to_us));
        let mut traces = Conditions::project(project);
        traces.in_select(
            "id",
            &format!("SELECT trace_id FROM observations_by_time {}", in_range.render()),
        );
        format!(
            "SELECT * FROM ({observations}) ANY LEFT JOIN (
                 SELECT id AS trace_id, ifNull(user_id, '') AS user, environment, tags FROM traces FINAL {}
             ) USING trace_id",
            traces.render()
        )
    }
}

const OBSERVATION_MEASURES: &str = "count() AS count,
    ifNull(toFloat64(sum(total_cost)), 0.) AS total_cost,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
    countIf(isNotNull(end_time_us)) AS timed,
    quantilesTDigestIf(0.5, 0.95, 0.99)((ifNull(end_time_us, start_time_us) - start_time_us) / 1000, isNotNull(end_time_us)) AS latency_ms,
    countIf(level = 'error') / count() AS error_rate";

/// Categorical scores count, but carry no number (their value is the string).
const SCORE_MEASURES: &str = "count() AS count, countIf(data_type != 'categorical') AS valued,
    avgIf(value, data_type != 'categorical') AS mean, minIf(value, data_type != 'categorical') AS min,
    maxIf(value, data_type != 'categorical') AS max,
    quantilesIf(0.5, 0.95, 0.99)(value, data_type != 'categorical') AS value_quantiles";

/// A metrics row's bucket and the dimensions of `dimensions` (those asked for), before its
/// measures.
fn grouped(dimensions: &[Dimension]) -> Row {
    let mut row = Row::default().optional("bucket", rows::string(false));
    for dimension in dimensions {
        row = row.optional(dimension.name, rows::string(false));
    }
    row
}

/// `(name, schema)` of each measure in `names`.
fn measures(row: Row, names: &[&str], schema: fn(bool) -> Schema, nullable: bool) -> Row {
    names
        .iter()
        .fold(row, |row, name| row.field(name, schema(nullable)))
}

row_schema!(
    /// A row of the observations view.
    ObservationMetrics => {
        let row = grouped(&OBSERVATION_DIMENSIONS);
        let row = measures(row, &["count"], rows::integer, false);
        let row = measures(row, &["total_cost"], rows::number, false);
        let tokens = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"];
        let row = measures(row, &tokens, rows::integer, false);
        let latency = ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"];
        let row = measures(row, &latency, rows::number, true);
        measures(row, &["error_rate"], rows::number, false).build(
            "Observations of a bucket and group: count, cost (USD), tokens, latency percentiles (null when none was timed), error rate.",
        )
    }
);

row_schema!(
    /// A row of the scores view.
    ScoreMetrics => {
        let row = measures(grouped(&SCORE_DIMENSIONS), &["count"], rows::integer, false);
        let values = ["mean", "min", "max", "value_p50", "value_p95", "value_p99"];
        measures(row, &values, rows::number, true).build(
            "Scores of a bucket and group: count, and the values' mean, min, max and percentiles (null when none has a number).",
        )
    }
);

/// The dimensions that are the trace's, joined from `traces`.
const TRACE_DIMENSIONS: [&str; 3] = ["user", "environment", "tag"];

/// The dimensions the hourly rollup keeps (the user is the trace's, which can change without
/// touching an observation: read raw).
const ROLLUP_DIMENSIONS: [&str; 6] = ["model", "name", "tool", "type", "level", "api_key"];

/// The condition that selects the `current` rollups' rows (hours sorted): runs of consecutive
/// hours rolled up by the same run become one range, so a year of hours stays a short query.
fn current_rollups(current: &[(i64, u32)]) -> String {
    let mut runs: Vec<(i64, i64, u32)> = Vec::new();
    for &(hour, rolled) in current {
        match runs.last_mut() {
            Some((_, end, same)) if *end == hour && *same == rolled => *end = hour + HOUR_US,
            _ => runs.push((hour, hour + HOUR_US, rolled)),
        }
    }
    let terms: Vec<String> = runs
        .iter()
        .map(|(start, end, rolled)| {
            format!("(rolled_second = {rolled} AND hour_us >= {start} AND hour_us < {end})")
        })
        .collect();
    format!("({})", terms.join(" OR "))
}

/// The parts of `[from_us, to_us)` the rollup's `current` hours (sorted) do not cover.
fn raw_ranges(from_us: i64, to_us: i64, current: &[(i64, u32)]) -> Vec<(i64, i64)> {
    let mut ranges = Vec::new();
    let mut at = from_us;
    for &(hour, _) in current {
        if hour > at {
            ranges.push((at, hour));
        }
        at = at.max(hour + HOUR_US);
    }
    if at < to_us {
        ranges.push((at, to_us));
    }
    ranges
}

/// The metrics `query` asks for, over `project`'s rows: from the hourly rollup where it is
/// current, the raw rows elsewhere.
pub async fn metrics(
    clickhouse: &ClickHouse,
    project: Uuid,
    query: &MetricsQuery,
) -> Result<MetricsAnswer, AnalyticsError> {
    let mut current = Vec::new();
    if query.rollup_eligible() {
        let first = (query.from_us + HOUR_US - 1).div_euclid(HOUR_US) * HOUR_US;
        let last = query.to_us.div_euclid(HOUR_US) * HOUR_US;
        if last > first {
            current = crate::analytics::hourly::current_hours(clickhouse, project, first, last)
                .await
                .map_err(|e| AnalyticsError::built("current hourly rollups", e))?;
        }
    }
    metrics_from(clickhouse, project, query, &current).await
}

/// [`metrics`] from the rollup's `current` hours and the raw rows of the rest; with none, a
/// full deduplicated scan (what the rollup is checked against).
pub async fn metrics_from(
    clickhouse: &ClickHouse,
    project: Uuid,
    query: &MetricsQuery,
    current: &[(i64, u32)],
) -> Result<MetricsAnswer, AnalyticsError> {
    let sql = if current.is_empty() {
        query.sql(project)
    } else {
        query.rollup_sql(project, current)
    };
    let rows = parse_json_rows(&read(clickhouse, &sql).await?)?;
    if rows.len() > MAX_GROUPS {
        return Err(invalid(
            "dimensions",
            format!(
                "more than {MAX_GROUPS} groups; narrow the range, bucket more coarsely or drop a dimension"
            ),
        ));
    }
    let data: Vec<Value> = rows.into_iter().map(|row| shape(query, row)).collect();
    Ok(MetricsAnswer {
        view: match query.view {
            View::Observations => "observations",
            View::Scores => "scores",
        },
        dimensions: query.dimensions.iter().map(|d| d.name).collect(),
        data,
    })
}

/// A result row as the API answers it: the bucket as RFC 3339, dimensions by name, percentiles
/// as named fields, and no number where there was nothing to measure.
fn shape(query: &MetricsQuery, row: Value) -> Value {
    let Value::Object(row) = row else { return row };
    let mut out = Map::new();
    for (key, value) in row {
        if key == "bucket_us" {
            if query.bucket != Bucket::None {
                let at = value.as_i64().map(|us| Timestamp::from_micros(us).to_string());
                out.insert("bucket".into(), at.map_or(Value::Null, Value::String));
            }
        } else if let Some(name) = key.strip_prefix("dimension_") {
            out.insert(name.to_owned(), value);
        } else if key == "latency_ms" || key == "value_quantiles" {
            let prefix = if key == "latency_ms" { "latency" } else { "value" };
            let quantiles = value.as_array().cloned().unwrap_or_default();
            for (label, quantile) in ["p50", "p95", "p99"].iter().zip(quantiles) {
                let suffix = if prefix == "latency" { "_ms" } else { "" };
                out.insert(format!("{prefix}_{label}{suffix}"), finite(quantile));
            }
        } else {
            out.insert(key, finite(value));
        }
    }
    // Nothing measured: no number, rather than ClickHouse's zero or NaN.
    for (count, keys) in [
        (
            "timed",
            ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"].as_slice(),
        ),
        (
            "valued",
            ["mean", "min", "max", "value_p50", "value_p95", "value_p99"].as_slice(),
        ),
    ] {
        if let Some(measured) = out.remove(count)
            && measured.as_u64() == Some(0)
        {
            for key in keys {
                out.insert((*key).into(), Value::Null);
            }
        }
    }
    Value::Object(out)
}

fn finite(value: Value) -> Value {
    match value.as_f64() {
        Some(number) if !number.is_finite() => Value::Null,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> MetricsParams {
        let object: Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        serde_json::from_value(Value::Object(object)).unwrap()
    }

    #[test]
    fn queries_are_checked_field_by_field() {
        let ok = MetricsQuery::from_params(&params(&[
            ("from", "2026-11-01T00:00:00Z"),
            ("to", "2026-11-30T00:00:00Z"),
            ("dimensions", "model,tool"),
            ("type", "generation"),
        ]))
        .unwrap();
        assert_eq!(ok.bucket, Bucket::Day);
        assert_eq!(ok.dimensions.len(), 2);
        for (pairs, field) in [
            (vec![("to", "2026-11-30T00:00:00Z")], "from"),
            (
                vec![("from", "2026-11-30T00:00:00Z"), ("to", "2026-11-01T00:00:00Z")],
                "to",
            ),
            (
                vec![
                    ("from", "2026-11-01T00:00:00Z"),
                    ("to", "2026-11-30T00:00:00Z"),
                    ("dimensions", "model,tool,name"),
                ],
                "dimensions",
            ),
            (
                vec![
                    ("from", "2026-11-01T00:00:00Z"),
                    ("to", "2026-11-30T00:00:00Z"),
                    ("dimensions", "evaluator"),
                ],
                "dimensions",
            ),
            (
                vec![
                    ("from", "2026-11-01T00:00:00Z"),
                    ("to", "2026-11-30T00:00:00Z"),
                    ("bucket", "fortnight"),
                ],
                "bucket",
            ),
        ] {
            match MetricsQuery::from_params(&params(&pairs)) {
                Err(AnalyticsError::InvalidParameter { field: got, .. }) => {
                    assert_eq!(got, field, "{pairs:?}")
                }
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn current_rollups_are_ranges_and_the_rest_is_read_raw() {
        let h = |n: i64| n * HOUR_US;
        let current = [(h(1), 7), (h(2), 7), (h(3), 9), (h(5), 9)];
        assert_eq!(
            current_rollups(&current),
            format!(
                "((rolled_second = 7 AND hour_us >= {} AND hour_us < {}) OR (rolled_second = 9 AND hour_us >= {} AND hour_us < {}) OR (rolled_second = 9 AND hour_us >= {} AND hour_us < {}))",
                h(1),
                h(3),
                h(3),
                h(4),
                h(5),
                h(6)
            )
        );
        assert_eq!(
            raw_ranges(h(0) + 5, h(7), &current),
            vec![(h(0) + 5, h(1)), (h(4), h(5)), (h(6), h(7))]
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-30 is a Monday.
        let monday = Timestamp::parse("2026-11-30T00:00:00Z").unwrap().as_micros();
        let week = 7 * DAY_US;
        let bucket = |t: i64| (t - FIRST_MONDAY_US).div_euclid(week) * week + FIRST_MONDAY_US;
        assert_eq!(bucket(monday + 3 * DAY_US), monday);
        assert_eq!(bucket(monday - 1), monday - week);
    }
}
