//! Langfuse's read routes over the read layout, in Langfuse's shapes
//! (`../shared/reference/langfuse-api.md`, and the Langfuse Python SDK's `observations` and
//! `metrics` clients): `GET /api/public/v2/observations` and `GET /api/public/v2/metrics`.
//! What Langfuse offers that AgentTrace does not store is refused with a 400 naming it.

use std::collections::{HashMap, HashSet};

use agenttrace_schemas::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::{LangfuseCursor, LangfuseMetrics, LangfuseObservations};
use crate::analytics::conditions::Conditions;
use crate::analytics::metrics::{Bucket, Dimension, MetricsQuery, View};
use crate::analytics::observations::{ObservationFilter, observation_page};
use crate::analytics::paging::{
    encode_cursor, invalid, next_page, page_limit, parse_json_rows, read, time_bound,
};
use crate::analytics::rows::{self, Row};
use crate::clickhouse::ClickHouse;
use crate::row_schema;
use utoipa::openapi::schema::Schema;

/// `GET /api/public/v2/observations`'s query parameters, as the SDKs send them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservationsV2Params {
    pub fields: Option<String>,
    pub expand_metadata: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub parse_io_as_json: Option<bool>,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub trace_id: Option<String>,
    pub level: Option<String>,
    pub parent_observation_id: Option<String>,
    pub is_root_observation: Option<bool>,
    pub environment: Option<String>,
    pub from_start_time: Option<String>,
    pub to_start_time: Option<String>,
    pub version: Option<String>,
    pub filter: Option<String>,
}

const FIELD_GROUPS: [&str; 10] = [
    "core",
    "basic",
    "time",
    "io",
    "metadata",
    "model",
    "usage",
    "prompt",
    "metrics",
    "trace_context",
];
/// Metadata values longer than this are cut, unless their key is in `expandMetadata`.
const METADATA_CUT: usize = 200;

fn unsupported(field: &'static str, what: &str) -> AnalyticsError {
    invalid(field, format!("{what} is not supported by AgentTrace"))
}

/// A page of observations in Langfuse's v2 shape: `{data, meta: {cursor}}`.
pub async fn observations_v2(
    clickhouse: &ClickHouse,
    project: Uuid,
    params: &ObservationsV2Params,
) -> Result<LangfuseObservations, AnalyticsError> {
    if params.parse_io_as_json == Some(true) {
        return Err(invalid(
            "parseIoAsJson",
            "deprecated: input and output are returned as raw strings; remove it",
        ));
    }
    for (field, value) in [
        ("filter", params.filter.is_some()),
        ("userId", params.user_id.is_some()),
        ("sessionId", params.session_id.is_some()),
        ("parentObservationId", params.parent_observation_id.is_some()),
        ("isRootObservation", params.is_root_observation.is_some()),
        ("version", params.version.is_some()),
        ("environment", params.environment.is_some()),
    ] {
        if value {
            return Err(unsupported(field, "this filter"));
        }
    }
    let groups: HashSet<&str> = match params.fields.as_deref() {
        None => HashSet::from(["core", "basic"]),
        Some(list) => {
            let mut groups = HashSet::from(["core"]);
            for group in list.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                if !FIELD_GROUPS.contains(&group) {
                    return Err(invalid(
                        "fields",
                        format!("{group:?}: use any of {}", FIELD_GROUPS.join(", ")),
                    ));
                }
                groups.insert(group);
            }
            groups
        }
    };
    let level = params
        .level
        .as_deref()
        .map(|level| match level {
            "DEBUG" | "DEFAULT" | "WARNING" | "ERROR" => Ok(level.to_lowercase()),
            other => Err(invalid(
                "level",
                format!("{other:?}: use DEBUG, DEFAULT, WARNING or ERROR"),
            )),
        })
        .transpose()?;
    let limit = page_limit(params.limit, 50, 1000)?;
    let filter = ObservationFilter {
        from: params.from_start_time.clone(),
        to: params.to_start_time.clone(),
        kind: params.kind.as_deref().map(str::to_lowercase),
        name: params.name.clone(),
        trace_id: params.trace_id.clone(),
        cursor: params.cursor.clone(),
        ..ObservationFilter::default()
    };
    // Langfuse's `level` is an exact level, ours "at least": filter the exact one after.
    let (mut rows, resume) = match &level {
        Some(level) => exact_level_page(clickhouse, project, &filter, level, limit + 1).await?,
        None => (
            observation_page(clickhouse, project, &filter, limit + 1).await?,
            None,
        ),
    };
    let cursor = resume.or_else(|| next_page(&mut rows, limit, "start_time_us"));
    let details = if groups
        .iter()
        .any(|g| ["time", "io", "metadata", "model", "prompt", "basic"].contains(g))
    {
        full_rows(clickhouse, project, &rows).await?
    } else {
        HashMap::new()
    };
    let traces = if groups.contains("trace_context") || groups.contains("basic") {
        trace_context(clickhouse, project, &rows).await?
    } else {
        HashMap::new()
    };
    let expanded: HashSet<&str> = params
        .expand_metadata
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            let id = row["id"].as_str().unwrap_or_default();
            let trace = row["trace_id"].as_str().unwrap_or_default();
            shape_observation(
                project,
                row,
                details.get(id).unwrap_or(&Value::Null),
                traces.get(trace).unwrap_or(&Value::Null),
                &groups,
                &expanded,
            )
        })
        .collect();
    Ok(LangfuseObservations {
        data,
        meta: LangfuseCursor { cursor },
    })
}

/// Pages of 1,000 observations one answer may read on the caller's behalf while looking for
/// an exact level: past them the answer is short, with a cursor where the search stopped.
const MAX_SCANNED_PAGES: usize = 20;

/// A page of observations at exactly `level`, newest first, and the cursor to resume from when
/// [`MAX_SCANNED_PAGES`] were read before the page filled.
async fn exact_level_page(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ObservationFilter,
    level: &str,
    wanted: usize,
) -> Result<(Vec<Value>, Option<String>), AnalyticsError> {
    // `warning` and `error` narrow the index read; the exact level is kept below.
    let at_least = match level {
        "warning" | "error" => Some(level.to_owned()),
        _ => None,
    };
    let narrowed = ObservationFilter {
        level: at_least,
        ..filter.clone()
    };
    let mut kept = Vec::new();
    let mut cursor = filter.cursor.clone();
    for _ in 0..MAX_SCANNED_PAGES {
        let page_filter = ObservationFilter {
            cursor: cursor.clone(),
            ..narrowed.clone()
        };
        let page = observation_page(clickhouse, project, &page_filter, 1000).await?;
        let exhausted = page.len() < 1000;
        cursor = page.last().map(|last| {
            encode_cursor(
                last["start_time_us"].as_i64().unwrap_or_default(),
                last["id"].as_str().unwrap_or_default(),
            )
        });
        kept.extend(page.into_iter().filter(|row| row["level"] == level));
        if kept.len() >= wanted || exhausted {
            kept.truncate(wanted);
            return Ok((kept, None));
        }
    }
    Ok((kept, cursor))
}

/// The page's stored rows (input, output, metadata, parameters, prompt), by their traces' keys.
async fn full_rows(
    clickhouse: &ClickHouse,
    project: Uuid,
    rows: &[Value],
) -> Result<HashMap<String, Value>, AnalyticsError> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let distinct = |key: &str| -> HashSet<&str> { rows.iter().filter_map(|r| r[key].as_str()).collect() };
    let mut conditions = Conditions::project(project);
    conditions
        .in_list("trace_id", distinct("trace_id"))
        .in_list("id", distinct("id"));
    let sql = format!(
        "SELECT id, status_message, input, output, metadata_keys, metadata_values, model_parameters,
                completion_start_time_us, prompt_name, prompt_version, ingested_at
         FROM observations FINAL
         {} FORMAT JSONEachRow",
        conditions.render()
    );
    let body = read(clickhouse, &sql).await?;
    Ok(parse_json_rows(&body)?
        .into_iter()
        .filter_map(|row| Some((row["id"].as_str()?.to_owned(), row)))
        .collect())
}

/// Each of the page's traces' name, user, session, tags, release and environment.
async fn trace_context(
    clickhouse: &ClickHouse,
    project: Uuid,
    rows: &[Value],
) -> Result<HashMap<String, Value>, AnalyticsError> {
    let ids: HashSet<&str> = rows.iter().filter_map(|r| r["trace_id"].as_str()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conditions = Conditions::project(project);
    conditions.in_list("id", ids);
    let sql = format!(
        "SELECT id, name, user_id, session_id, tags, release, environment, public FROM traces FINAL
         {} FORMAT JSONEachRow",
        conditions.render()
    );
    let body = read(clickhouse, &sql).await?;
    Ok(parse_json_rows(&body)?
        .into_iter()
        .filter_map(|row| Some((row["id"].as_str()?.to_owned(), row)))
        .collect())
}

fn iso(micros: &Value) -> Value {
    micros.as_i64().map_or(Value::Null, |us| {
        Value::String(Timestamp::from_micros(us).to_string())
    })
}

fn seconds(micros: Option<i64>) -> Value {
    micros.map_or(Value::Null, |us| json!(us as f64 / 1e6))
}

row_schema!(
    /// An observation in Langfuse's v2 shape: the core fields, then each field group asked
    /// for (`fields`), as [`shape_observation`] writes them.
    LangfuseObservation => {
        use rows::{any, boolean, integer, null, number, string};
        let usage = Row::default()
            .field("input", integer(false))
            .field("output", integer(false))
            .field("input_cache_read", integer(false))
            .field("input_cache_creation", integer(false))
            .field("total", integer(false))
            .build("Tokens by kind.");
        let cost = Row::default()
            .optional("total", number(false))
            .build("USD; empty when unknown.");
        let core = Row::default()
            .field("id", string(false))
            .field("traceId", string(false))
            .field("startTime", string(false))
            .field("endTime", string(true))
            .field("projectId", string(false))
            .field("parentObservationId", string(true))
            .field("type", string(false));
        let groups: [(&str, Schema); 31] = [
            ("name", string(true)),
            ("level", string(false)),
            ("statusMessage", string(true)),
            ("version", null()),
            ("environment", string(true)),
            ("bookmarked", boolean()),
            ("public", boolean()),
            ("userId", string(true)),
            ("sessionId", string(true)),
            ("isRootObservation", boolean()),
            ("completionStartTime", string(true)),
            ("createdAt", string(true)),
            ("updatedAt", string(true)),
            ("input", any()),
            ("output", any()),
            ("metadata", rows::metadata()),
            ("model", string(true)),
            ("internalModelId", null()),
            ("modelParameters", any()),
            ("usageDetails", usage),
            ("costDetails", cost),
            ("totalCost", number(true)),
            ("usagePricingTierName", null()),
            ("promptId", null()),
            ("promptName", string(true)),
            ("promptVersion", integer(true)),
            ("latency", number(true)),
            ("timeToFirstToken", number(true)),
            ("traceName", string(true)),
            ("tags", rows::strings()),
            ("release", string(true)),
        ];
        groups
            .into_iter()
            .fold(core, |row, (name, schema)| row.optional(name, schema))
            .build("An observation in Langfuse's v2 shape; the fields beyond the core ones come with their group (`fields`).")
    }
);

row_schema!(
    /// A row of Langfuse's v2 metrics: each dimension by its Langfuse name, `time_dimension`
    /// when bucketed, and `<aggregation>_<measure>` per metric.
    LangfuseMetricsRow => rows::open_row(
        "Each dimension by name, `time_dimension` (ISO 8601) when bucketed, and `<aggregation>_<measure>` per metric asked for."
    )
);

/// One observation in Langfuse's v2 shape, with the field groups asked for.
fn shape_observation(
    project: Uuid,
    row: &Value,
    stored: &Value,
    trace: &Value,
    groups: &HashSet<&str>,
    expanded: &HashSet<&str>,
) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    let start = row["start_time_us"].as_i64();
    let end = row["end_time_us"].as_i64();
    put("id", row["id"].clone());
    put("traceId", row["trace_id"].clone());
    put("startTime", iso(&row["start_time_us"]));
    put("endTime", iso(&row["end_time_us"]));
    put("projectId", Value::String(project.to_string()));
    put("parentObservationId", row["parent_observation_id"].clone());
    put(
        "type",
        Value::String(row["type"].as_str().unwrap_or_default().to_uppercase()),
    );
    if groups.contains("basic") {
        put("name", row["name"].clone());
        put(
            "level",
            Value::String(row["level"].as_str().unwrap_or("default").to_uppercase()),
        );
        put("statusMessage", stored["status_message"].clone());
        put("version", Value::Null);
        put("environment", trace["environment"].clone());
        put("bookmarked", Value::Bool(false));
        put("public", Value::Bool(trace["public"].as_u64() == Some(1)));
        put("userId", trace["user_id"].clone());
        put("sessionId", trace["session_id"].clone());
        put(
            "isRootObservation",
            Value::Bool(row["parent_observation_id"].is_null()),
        );
    }
    if groups.contains("time") {
        put("completionStartTime", iso(&row["completion_start_time_us"]));
        let ingested = stored["ingested_at"]
            .as_str()
            .map(|t| Value::String(format!("{}Z", t.replace(' ', "T"))))
            .unwrap_or(Value::Null);
        put("createdAt", ingested.clone());
        put("updatedAt", ingested);
    }
    if groups.contains("io") {
        put("input", stored["input"].clone());
        put("output", stored["output"].clone());
    }
    if groups.contains("metadata") {
        let mut metadata = Map::new();
        if let (Some(keys), Some(values)) = (
            stored["metadata_keys"].as_array(),
            stored["metadata_values"].as_array(),
        ) {
            for (key, value) in keys.iter().zip(values) {
                let key = key.as_str().unwrap_or_default();
                let text = value.as_str().unwrap_or_default();
                let shown = if text.chars().count() > METADATA_CUT && !expanded.contains(key) {
                    text.chars().take(METADATA_CUT).collect::<String>()
                } else {
                    text.to_owned()
                };
                metadata.insert(key.to_owned(), Value::String(shown));
            }
        }
        put("metadata", Value::Object(metadata));
    }
    if groups.contains("model") {
        put("model", row["model"].clone());
        put("internalModelId", Value::Null);
        let parameters = stored["model_parameters"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        put("modelParameters", parameters);
    }
    if groups.contains("usage") {
        let count = |key: &str| row[key].as_u64().unwrap_or(0);
        let (input, output) = (count("input_tokens"), count("output_tokens"));
        let (cache_read, cache_write) = (count("cache_read_tokens"), count("cache_write_tokens"));
        put(
            "usageDetails",
            json!({
                "input": input, "output": output,
                "input_cache_read": cache_read, "input_cache_creation": cache_write,
                "total": input + output + cache_read + cache_write,
            }),
        );
        let total = row["total_cost"].as_f64();
        put(
            "costDetails",
            total.map_or(json!({}), |total| json!({ "total": total })),
        );
        put("totalCost", total.map_or(Value::Null, |t| json!(t)));
        put("usagePricingTierName", Value::Null);
    }
    if groups.contains("prompt") {
        put("promptId", Value::Null);
        put("promptName", stored["prompt_name"].clone());
        put("promptVersion", stored["prompt_version"].clone());
    }
    if groups.contains("metrics") {
        put("latency", seconds(start.zip(end).map(|(s, e)| e - s)));
        put(
            "timeToFirstToken",
            seconds(
                start
                    .zip(row["completion_start_time_us"].as_i64())
                    .map(|(s, c)| c - s),
            ),
        );
    }
    if groups.contains("trace_context") {
        put("traceName", trace["name"].clone());
        put("tags", trace.get("tags").cloned().unwrap_or(json!([])));
        put("release", trace["release"].clone());
    }
    Value::Object(out)
}

/// `GET /api/public/v2/metrics?query=`'s JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsV2Query {
    pub view: String,
    #[serde(default)]
    pub dimensions: Vec<FieldRef>,
    pub metrics: Vec<MetricRef>,
    #[serde(default)]
    pub filters: Vec<FilterV2>,
    pub time_dimension: Option<TimeDimension>,
    pub from_timestamp: String,
    pub to_timestamp: String,
    pub config: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldRef {
    pub field: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricRef {
    pub measure: String,
    pub aggregation: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FilterV2 {
    pub column: String,
    pub operator: String,
    pub value: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimeDimension {
    pub granularity: String,
}

/// Langfuse's dimension names and ours, per view.
fn dimension(view: View, field: &str) -> Result<Dimension, AnalyticsError> {
    let ours = match (view, field) {
        (View::Observations, "providedModelName") => "model",
        (View::Observations, "type" | "name") => field,
        (View::Observations, "toolName") => "tool",
        (View::Observations, "level") => "level",
        (View::Scores, "name" | "source") => field,
        (View::Scores, "dataType") => "data_type",
        (_, "id" | "traceId" | "userId" | "sessionId" | "observationId" | "parentObservationId") => {
            return Err(invalid(
                "dimensions",
                format!("{field} is a high-cardinality dimension; filter by it instead"),
            ));
        }
        _ => {
            return Err(unsupported(
                "dimensions",
                &format!("dimension {field:?} in this view"),
            ));
        }
    };
    MetricsQuery::dimension(view, ours)
}

/// A measure's SQL over one row, per view.
fn measure(view: View, name: &str) -> Result<&'static str, AnalyticsError> {
    Ok(match (view, name) {
        (_, "count") => "1",
        (View::Observations, "latency") => {
            "if(isNull(end_time_us), NULL, (assumeNotNull(end_time_us) - start_time_us) / 1000)"
        }
        (View::Observations, "inputTokens") => "input_tokens",
        (View::Observations, "outputTokens") => "output_tokens",
        (View::Observations, "totalTokens") => {
            "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens"
        }
        (View::Observations, "totalCost") => "toFloat64(total_cost)",
        (View::Scores, "value") => "value",
        _ => return Err(unsupported("metrics", &format!("measure {name:?} in this view"))),
    })
}

fn aggregation(name: &str, expression: &str) -> Result<String, AnalyticsError> {
    let quantile = |q: &str| format!("quantile({q})({expression})");
    Ok(match name {
        "sum" => format!("sum({expression})"),
        "avg" => format!("avg({expression})"),
        "count" => format!("count({expression})"),
        "max" => format!("max({expression})"),
        "min" => format!("min({expression})"),
        "p50" => quantile("0.5"),
        "p75" => quantile("0.75"),
        "p90" => quantile("0.9"),
        "p95" => quantile("0.95"),
        "p99" => quantile("0.99"),
        "histogram" => return Err(unsupported("metrics", "the histogram aggregation")),
        other => {
            return Err(invalid(
                "metrics",
                format!("aggregation {other:?}: use sum, avg, count, max, min, p50, p75, p90, p95 or p99"),
            ));
        }
    })
}

/// Langfuse's metrics v2 over the read layout: `{data: [{dimension…, time_dimension?,
/// <aggregation>_<measure>…}]}`.
pub async fn metrics_v2(
    clickhouse: &ClickHouse,
    project: Uuid,
    query_json: &str,
) -> Result<LangfuseMetrics, AnalyticsError> {
    let query: MetricsV2Query = serde_json::from_str(query_json)
        .map_err(|e| invalid("query", format!("not a metrics query: {e}")))?;
    let (view, source) = match query.view.as_str() {
        "observations" => (View::Observations, "observations_by_time"),
        "scores-numeric" | "scores-boolean" | "scores-categorical" => (View::Scores, "scores"),
        other => {
            return Err(invalid(
                "query",
                format!(
                    "view {other:?}: use observations, scores-numeric, scores-boolean or scores-categorical"
                ),
            ));
        }
    };
    if query.metrics.is_empty() {
        return Err(invalid("query", "metrics: at least one is required"));
    }
    let from_us = time_bound(Some(&query.from_timestamp), "fromTimestamp")?.unwrap_or_default();
    let to_us = time_bound(Some(&query.to_timestamp), "toTimestamp")?.unwrap_or_default();
    if to_us <= from_us {
        return Err(invalid("toTimestamp", "must be after fromTimestamp"));
    }
    let time = if view == View::Observations {
        "start_time_us"
    } else {
        "timestamp_us"
    };
    let row_limit = query
        .config
        .as_ref()
        .and_then(|c| c["row_limit"].as_u64())
        .unwrap_or(1000)
        .min(1000);
    let mut conditions = Conditions::project(project);
    conditions.time_range(time, Some(from_us), Some(to_us));
    match query.view.as_str() {
        "scores-numeric" => {
            conditions.in_list("data_type", ["numeric", "boolean"]);
        }
        "scores-boolean" => {
            conditions.eq("data_type", "boolean");
        }
        "scores-categorical" => {
            conditions.eq("data_type", "categorical");
        }
        _ => {}
    }
    for filter in &query.filters {
        let column = dimension(view, &filter.column)
            .map_err(|_| unsupported("filters", &format!("filtering on {:?}", filter.column)))?;
        let values: Vec<String> = match &filter.value {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|v| stored_value(&filter.column, v))
                .collect(),
            Value::String(one) => vec![stored_value(&filter.column, one)],
            other => {
                return Err(invalid(
                    "filters",
                    format!("{}: value {other} must be a string or a list", filter.column),
                ));
            }
        };
        match filter.operator.as_str() {
            // Nothing to compare with is the caller's mistake, said as such.
            "=" | "any of" | "none of" if values.is_empty() => {
                return Err(invalid(
                    "filters",
                    format!("{}: {:?} needs a string value", filter.column, filter.operator),
                ));
            }
            "=" => conditions.eq(column.sql, &values[0]),
            "any of" => conditions.in_list(column.sql, &values),
            "none of" => conditions.not_in_list(column.sql, &values),
            other => return Err(unsupported("filters", &format!("operator {other:?}"))),
        };
    }
    let bucket = match &query.time_dimension {
        None => None,
        Some(t) => Some(match t.granularity.as_str() {
            "auto" => auto_bucket(to_us - from_us),
            "month" => return Err(unsupported("timeDimension", "the month granularity")),
            other => Bucket::parse(other).map_err(|_| {
                invalid(
                    "timeDimension",
                    format!("granularity {other:?}: use auto, minute, hour, day or week"),
                )
            })?,
        }),
    };
    let dimensions = query
        .dimensions
        .iter()
        .map(|d| dimension(view, &d.field).map(|ours| (d.field.clone(), ours)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut select = Vec::new();
    let mut keys = Vec::new();
    for (index, (_, ours)) in dimensions.iter().enumerate() {
        select.push(format!("{} AS d{index}", ours.sql));
        keys.push(format!("d{index}"));
    }
    if let Some(bucket) = bucket {
        select.push(format!("{} AS time_dimension", bucket.sql(time, from_us)));
        keys.push("time_dimension".into());
    }
    for (index, metric) in query.metrics.iter().enumerate() {
        select.push(format!(
            "{} AS m{index}",
            aggregation(&metric.aggregation, measure(view, &metric.measure)?)?
        ));
    }
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {}", keys.join(", "))
    };
    let order = if keys.is_empty() {
        String::new()
    } else {
        format!("ORDER BY {}", keys.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM {source} FINAL {} {group} {order} LIMIT {} FORMAT JSONEachRow",
        select.join(", "),
        conditions.render(),
        row_limit + 1,
    );
    let body = read(clickhouse, &sql).await?;
    let rows = parse_json_rows(&body)?;
    if rows.len() as u64 > row_limit {
        return Err(invalid(
            "query",
            format!(
                "more than {row_limit} rows; narrow the range, drop a dimension or raise config.row_limit (at most 1000)"
            ),
        ));
    }
    let data: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let mut out = Map::new();
            for (index, (field, _)) in dimensions.iter().enumerate() {
                let value = row[format!("d{index}")].clone();
                let value = match (field.as_str(), value) {
                    ("type" | "level" | "dataType" | "source", Value::String(text)) => {
                        Value::String(text.to_uppercase())
                    }
                    (_, value) => value,
                };
                out.insert(field.clone(), value);
            }
            if bucket.is_some() {
                out.insert("time_dimension".into(), iso(&row["time_dimension"]));
            }
            for (index, metric) in query.metrics.iter().enumerate() {
                let value = row[format!("m{index}")].clone();
                let value = match value.as_f64() {
                    Some(number) if !number.is_finite() => Value::Null,
                    _ => value,
                };
                out.insert(format!("{}_{}", metric.aggregation, metric.measure), value);
            }
            Value::Object(out)
        })
        .collect();
    Ok(LangfuseMetrics { data })
}

/// Langfuse spells types, levels, sources and data types in capitals; AgentTrace stores them in
/// lower case.
fn stored_value(column: &str, value: &str) -> String {
    match column {
        "type" | "level" | "dataType" | "source" => value.to_lowercase(),
        _ => value.to_owned(),
    }
}

/// About 50 buckets over `range_us`, at the nearest granularity.
fn auto_bucket(range_us: i64) -> Bucket {
    const HOUR_US: i64 = 3_600_000_000;
    match range_us / 50 {
        per if per <= 60_000_000 => Bucket::Minute,
        per if per <= HOUR_US => Bucket::Hour,
        per if per <= 24 * HOUR_US => Bucket::Day,
        _ => Bucket::Week,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn langfuse_names_map_to_ours_and_the_rest_is_refused_by_name() {
        assert_eq!(
            dimension(View::Observations, "providedModelName").unwrap().name,
            "model"
        );
        assert_eq!(dimension(View::Scores, "dataType").unwrap().name, "data_type");
        for (view, field) in [
            (View::Observations, "userId"),
            (View::Observations, "environment"),
        ] {
            match dimension(view, field) {
                Err(AnalyticsError::InvalidParameter {
                    field: "dimensions",
                    message,
                }) => {
                    assert!(message.contains(field), "{message}")
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(aggregation("p95", "x").unwrap(), "quantile(0.95)(x)");
        assert!(aggregation("histogram", "x").is_err());
        assert!(measure(View::Scores, "totalCost").is_err());
    }

    #[test]
    fn auto_granularity_gives_about_fifty_buckets() {
        let hour = 3_600_000_000;
        assert_eq!(auto_bucket(30 * 60_000_000), Bucket::Minute);
        assert_eq!(auto_bucket(2 * 24 * hour), Bucket::Hour);
        assert_eq!(auto_bucket(30 * 24 * hour), Bucket::Day);
        assert_eq!(auto_bucket(365 * 24 * hour), Bucket::Week);
    }
}
