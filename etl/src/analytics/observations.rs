//! `GET /v1/observations`: the project's observations newest first, filtered by type, model,
//! tool, name, level and time, by cursor. Read from `observations_by_time` (narrow columns,
//! ordered by type and start) one time window at a time; input and output stay in the trace.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::CursorPage;
use crate::analytics::conditions::{Conditions, Level};
use crate::analytics::paging::{
    Windows, cursor_at, next_page, page_limit, parse_rows, read, time_bound, time_span,
};
use crate::analytics::rows::{self, Row};
use crate::clickhouse::ClickHouse;
use crate::clickhouse::catalog::Table;
use crate::row_schema;

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

/// The stored columns of a listed observation: no input, output or metadata (the trace has them).
const LISTED_STORED: [&str; 15] = [
    "id",
    "trace_id",
    "parent_observation_id",
    "type",
    "name",
    "start_time_us",
    "end_time_us",
    "completion_start_time_us",
    "level",
    "model",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
];

/// What a listed observation computes: (SQL, name).
const LISTED_COMPUTED: [(&str, &str); 2] = [
    ("toFloat64(total_cost)", "total_cost"),
    (
        "if(isNull(end_time_us), NULL, (end_time_us - start_time_us) / 1000)",
        "latency_ms",
    ),
];

/// The SELECT list of a listed observation.
fn listed_columns() -> String {
    LISTED_STORED
        .iter()
        .map(|c| (*c).to_owned())
        .chain(
            LISTED_COMPUTED
                .iter()
                .map(|(sql, name)| format!("{sql} AS {name}")),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

row_schema!(
    /// An observation in a list: no payloads, with its cost and latency.
    ListedObservation => Row::stored(Table::Observations, &LISTED_STORED)
        .field("total_cost", rows::number(true))
        .field("latency_ms", rows::number(true))
        .build("An observation without its payloads, with cost (USD) and latency.")
);

/// The conditions `filter` sets beyond the project, time and type, which
/// [`observation_page`] bounds the span by.
fn filters(filter: &ObservationFilter) -> Result<Conditions, AnalyticsError> {
    let mut filters = Conditions::new();
    filters
        .eq_opt("model", filter.model.as_deref())
        .eq_opt("tool_name", filter.tool.as_deref())
        .eq_opt("name", filter.name.as_deref())
        .eq_opt("trace_id", filter.trace_id.as_deref())
        .level_at_least("level", Level::parse(filter.level.as_deref())?);
    Ok(filters)
}

/// One page of observations, newest first, with `next_cursor` while more remain.
pub async fn observation_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ObservationFilter,
) -> Result<CursorPage<ListedObservation>, AnalyticsError> {
    let limit = page_limit(filter.limit, 50, 1000)?;
    let mut rows = observation_page(clickhouse, project, filter, limit + 1).await?;
    let next_cursor = next_page(&mut rows, limit, "start_time_us");
    Ok(CursorPage::new(rows, next_cursor))
}

/// Up to `wanted` observations matching `filter`, newest first, as people read them.
pub async fn observation_page(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ObservationFilter,
    wanted: usize,
) -> Result<Vec<Value>, AnalyticsError> {
    let mut bounds = Conditions::project(project);
    bounds.time_range(
        "start_time_us",
        time_bound(filter.from.as_deref(), "from")?,
        time_bound(filter.to.as_deref(), "to")?,
    );
    let cursor = cursor_at(filter.cursor.as_deref())?;
    if let Some((at, _)) = &cursor {
        bounds.at_most("start_time_us", *at);
    }
    // The type leads the index's key after the project: the span comes from that range.
    bounds.eq_opt("type", filter.kind.as_deref());
    bounds.and(&filters(filter)?);
    let mut conditions = bounds.clone();
    conditions.before("start_time_us", "id", cursor.as_ref());
    let order = "ORDER BY start_time_us DESC, id DESC";
    let mut rows = Vec::new();
    // One trace's observations are a key range of `observations` itself.
    if filter.trace_id.is_some() {
        let sql = format!(
            "SELECT {} FROM observations FINAL {} {order} LIMIT {wanted} FORMAT JSONEachRow",
            listed_columns(),
            conditions.render()
        );
        return parse_rows(&read(clickhouse, &sql).await?);
    }
    let Some(span) = time_span(clickhouse, "observations_by_time", "start_time_us", &bounds).await? else {
        return Ok(rows);
    };
    for (low, high) in Windows::over(span, wanted) {
        let mut window = conditions.clone();
        window.time_range("start_time_us", Some(low), Some(high));
        let sql = format!(
            "SELECT {} FROM observations_by_time FINAL
             {} {order} LIMIT {} FORMAT JSONEachRow",
            listed_columns(),
            window.render(),
            wanted - rows.len()
        );
        rows.extend(parse_rows(&read(clickhouse, &sql).await?)?);
        if rows.len() >= wanted {
            break;
        }
    }
    Ok(rows)
}
