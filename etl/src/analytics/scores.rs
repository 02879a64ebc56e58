//! `GET /v1/scores`: the project's scores newest first, filtered, by cursor.

use serde::Deserialize;
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::CursorPage;
use crate::analytics::conditions::Conditions;
use crate::analytics::paging::{cursor_at, invalid, next_page, page_limit, parse_rows, read, time_bound};
use crate::analytics::rows::Row;
use crate::clickhouse::ClickHouse;
use crate::clickhouse::catalog::Table;
use crate::row_schema;

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

row_schema!(
    /// A score as stored.
    StoredScore => Row::readable(Table::Scores).build("A score as stored, metadata as an object.")
);

/// One page of scores, newest first, with `next_cursor` while more remain. A trace's scores
/// are a key range; other filters read the project's scores in the time range.
pub async fn score_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &ScoreFilter,
) -> Result<CursorPage<StoredScore>, AnalyticsError> {
    let limit = page_limit(filter.limit, 50, 1000)?;
    let mut conditions = Conditions::project(project);
    conditions
        .time_range(
            "timestamp_us",
            time_bound(filter.from.as_deref(), "from")?,
            time_bound(filter.to.as_deref(), "to")?,
        )
        .eq_opt("name", filter.name.as_deref())
        .eq_opt("source", filter.source.as_deref())
        .eq_opt("data_type", filter.data_type.as_deref())
        .eq_opt("trace_id", filter.trace_id.as_deref())
        .eq_opt("observation_id", filter.observation_id.as_deref())
        .eq_opt("evaluator_id", filter.evaluator_id.as_deref());
    if let Some(max) = filter.max_value {
        if !max.is_finite() {
            return Err(invalid("max_value", "must be a finite number".to_owned()));
        }
        conditions.raw("data_type != 'categorical'").at_most("value", max);
    }
    conditions.before(
        "timestamp_us",
        "id",
        cursor_at(filter.cursor.as_deref())?.as_ref(),
    );
    let sql = format!(
        "SELECT * FROM scores FINAL {} ORDER BY timestamp_us DESC, id DESC LIMIT {} FORMAT JSONEachRow",
        conditions.render(),
        limit + 1
    );
    let body = read(clickhouse, &sql).await?;
    let mut rows = parse_rows(&body)?;
    let next_cursor = next_page(&mut rows, limit, "timestamp_us");
    Ok(CursorPage::new(rows, next_cursor))
}
