//! `GET /v1/scores`: the project's scores newest first, filtered, by cursor.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::paging::{
    READ_SETTINGS, before_cursor, invalid, next_page, page_limit, parse_rows, time_bound,
};
use crate::clickhouse::{ClickHouse, quote};

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScoreFilter {
    pub project_id: Option<Uuid>,
    /// RFC 3339: scores given at or after it.
    pub from: Option<String>,
    /// RFC 3339: scores given before it.
    pub to: Option<String>,
    pub name: Option<String>,
    /// `api`, `eval`, `annotation`.
    pub source: Option<String>,
    /// `numeric`, `boolean`, `categorical`.
    pub data_type: Option<String>,
    pub trace_id: Option<String>,
    pub observation_id: Option<String>,
    pub evaluator_id: Option<String>,
    /// Numeric and boolean scores at or below this value (`0`: an evaluator's failures).
    pub max_value: Option<f64>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// One page of scores, newest first, with `next_cursor` while more remain. A trace's scores
/// are a key range; other filters read the project's scores in the time range.
pub async fn score_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ScoreFilter,
) -> Result<Value, AnalyticsError> {
    let limit = page_limit(filter.limit, 50, 1000)?;
    let mut conditions = vec![format!("project_id = {}", quote(&project.to_string()))];
    if let Some(from) = time_bound(filter.from.as_deref(), "from")? {
        conditions.push(format!("timestamp_us >= {from}"));
    }
    if let Some(to) = time_bound(filter.to.as_deref(), "to")? {
        conditions.push(format!("timestamp_us < {to}"));
    }
    for (column, value) in [
        ("name", &filter.name),
        ("source", &filter.source),
        ("data_type", &filter.data_type),
        ("trace_id", &filter.trace_id),
        ("observation_id", &filter.observation_id),
        ("evaluator_id", &filter.evaluator_id),
    ] {
        if let Some(value) = value {
            conditions.push(format!("{column} = {}", quote(value)));
        }
    }
    if let Some(max) = filter.max_value {
        if !max.is_finite() {
            return Err(invalid("max_value", "must be a finite number".to_owned()));
        }
        conditions.push(format!("data_type != 'categorical' AND value <= {max:?}"));
    }
    conditions.extend(before_cursor(filter.cursor.as_deref(), "timestamp_us", "id")?);
    let sql = format!(
        "SELECT * FROM scores FINAL WHERE {} ORDER BY timestamp_us DESC, id DESC LIMIT {} FORMAT JSONEachRow",
        conditions.join(" AND "),
        limit + 1
    );
    let body = clickhouse.query_with_settings(&sql, &READ_SETTINGS).await?;
    let mut rows = parse_rows(&body)?;
    let next_cursor = next_page(&mut rows, limit, "timestamp_us");
    Ok(json!({ "data": rows, "next_cursor": next_cursor }))
}
