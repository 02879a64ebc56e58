//! `GET /v1/observations`: the project's observations newest first, filtered by type, model,
//! tool, name, level and time, by cursor. Read from `observations_by_time` (narrow columns,
//! ordered by type and start) one time window at a time; input and output stay in the trace.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::paging::{
    READ_SETTINGS, Windows, before_cursor, decode_cursor, invalid, next_page, page_limit, parse_rows,
    time_bound, time_span,
};
use crate::clickhouse::{ClickHouse, quote};

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ObservationFilter {
    pub project_id: Option<Uuid>,
    /// RFC 3339: observations that started at or after it.
    pub from: Option<String>,
    /// RFC 3339: observations that started before it.
    pub to: Option<String>,
    /// `generation`, `tool_call`, `span`, … as stored.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub model: Option<String>,
    /// The tool a tool call ran.
    pub tool: Option<String>,
    pub name: Option<String>,
    pub trace_id: Option<String>,
    /// `warning` or `error`: observations at that level or above.
    pub level: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Columns of a listed observation: no input, output or metadata (the trace has them).
pub const LISTED_COLUMNS: &str = "id, trace_id, parent_observation_id, type, name, start_time_us, end_time_us, \
    completion_start_time_us, level, model, tool_name, input_tokens, output_tokens, cache_read_tokens, \
    cache_write_tokens, toFloat64(total_cost) AS total_cost, \
    if(isNull(end_time_us), NULL, (end_time_us - start_time_us) / 1000) AS latency_ms";

/// The SQL conditions `filter` sets beyond the project and time.
fn conditions(filter: &ObservationFilter) -> Result<Vec<String>, AnalyticsError> {
    let mut conditions = Vec::new();
    for (column, value) in [
        ("type", &filter.kind),
        ("model", &filter.model),
        ("tool_name", &filter.tool),
        ("name", &filter.name),
        ("trace_id", &filter.trace_id),
    ] {
        if let Some(value) = value {
            conditions.push(format!("{column} = {}", quote(value)));
        }
    }
    match filter.level.as_deref() {
        None => {}
        Some("warning") => conditions.push("level IN ('warning', 'error')".to_owned()),
        Some("error") => conditions.push("level = 'error'".to_owned()),
        Some(other) => return Err(invalid("level", format!("{other:?}: use warning or error"))),
    }
    Ok(conditions)
}

/// One page of observations, newest first, with `next_cursor` while more remain.
pub async fn observation_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ObservationFilter,
) -> Result<Value, AnalyticsError> {
    let limit = page_limit(filter.limit, 50, 1000)?;
    let mut rows = observation_page(clickhouse, project, filter, limit + 1).await?;
    let next_cursor = next_page(&mut rows, limit, "start_time_us");
    Ok(json!({ "data": rows, "next_cursor": next_cursor }))
}

/// Up to `wanted` observations matching `filter`, newest first, as people read them.
pub async fn observation_page(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ObservationFilter,
    wanted: usize,
) -> Result<Vec<Value>, AnalyticsError> {
    let mut bounds = vec![format!("project_id = {}", quote(&project.to_string()))];
    if let Some(from) = time_bound(filter.from.as_deref(), "from")? {
        bounds.push(format!("start_time_us >= {from}"));
    }
    if let Some(to) = time_bound(filter.to.as_deref(), "to")? {
        bounds.push(format!("start_time_us < {to}"));
    }
    if let Some(cursor) = &filter.cursor {
        let (at, _) = decode_cursor(cursor)?;
        bounds.push(format!("start_time_us <= {at}"));
    }
    // The type leads the index's key after the project: the span comes from that range.
    if let Some(kind) = &filter.kind {
        bounds.push(format!("type = {}", quote(kind)));
    }
    let filters = conditions_after_bounds(filter)?;
    let mut conditions = bounds.clone();
    conditions.extend(filters.iter().cloned());
    conditions.extend(before_cursor(filter.cursor.as_deref(), "start_time_us", "id")?);
    let order = "ORDER BY start_time_us DESC, id DESC";
    let mut rows = Vec::new();
    // One trace's observations are a key range of `observations` itself.
    if filter.trace_id.is_some() {
        let sql = format!(
            "SELECT {LISTED_COLUMNS} FROM observations FINAL WHERE {} {order} LIMIT {wanted} FORMAT JSONEachRow",
            conditions.join(" AND ")
        );
        let body = clickhouse.query_with_settings(&sql, &READ_SETTINGS).await?;
        return parse_rows(&body);
    }
    let span_conditions: Vec<String> = bounds.iter().chain(&filters).cloned().collect();
    let Some(span) = time_span(
        clickhouse,
        "observations_by_time",
        "start_time_us",
        &span_conditions.join(" AND "),
    )
    .await?
    else {
        return Ok(rows);
    };
    for (low, high) in Windows::over(span, wanted) {
        let sql = format!(
            "SELECT {LISTED_COLUMNS} FROM observations_by_time FINAL
             WHERE {} AND start_time_us >= {low} AND start_time_us < {high}
             {order} LIMIT {} FORMAT JSONEachRow",
            conditions.join(" AND "),
            wanted - rows.len()
        );
        let body = clickhouse.query_with_settings(&sql, &READ_SETTINGS).await?;
        rows.extend(parse_rows(&body)?);
        if rows.len() >= wanted {
            break;
        }
    }
    Ok(rows)
}

/// The filter's conditions other than the type, which [`observation_page`] bounds the span by.
fn conditions_after_bounds(filter: &ObservationFilter) -> Result<Vec<String>, AnalyticsError> {
    let without_type = ObservationFilter {
        kind: None,
        ..filter.clone()
    };
    conditions(&without_type)
}
