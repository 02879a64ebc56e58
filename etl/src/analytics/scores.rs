//! `GET /v1/scores`: the project's scores newest first, filtered, by cursor; and Langfuse's v3
//! score reads (`GET /api/public/v3/scores`, `GET /api/public/scores/{id}`).

use agenttrace_schemas::score_config::CONFIG_ID_KEY;
use serde::Deserialize;
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::CursorPage;
use crate::analytics::conditions::Conditions;
use crate::analytics::paging::{
    Windows, cursor_at, invalid, next_page, page_limit, parse_rows, read, time_bound, time_span,
};
use crate::analytics::rows::Row;
use crate::clickhouse::catalog::Table;
use crate::clickhouse::{ClickHouse, quote, quote_list};
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
    // What `scores_by_time` can check narrows its windows; the rest is checked on the scores.
    let mut narrow = Conditions::project(project);
    narrow
        .time_range(
            "timestamp_us",
            time_bound(filter.from.as_deref(), "from")?,
            time_bound(filter.to.as_deref(), "to")?,
        )
        .eq_opt("name", filter.name.as_deref())
        .eq_opt("source", filter.source.as_deref())
        .eq_opt("data_type", filter.data_type.as_deref())
        .eq_opt("trace_id", filter.trace_id.as_deref())
        .eq_opt("evaluator_id", filter.evaluator_id.as_deref());
    if let Some(max) = filter.max_value {
        if !max.is_finite() {
            return Err(invalid("max_value", "must be a finite number".to_owned()));
        }
        narrow.raw("data_type != 'categorical'").at_most("value", max);
    }
    let mut conditions = narrow.clone();
    conditions.eq_opt("observation_id", filter.observation_id.as_deref());
    let (rows, next_cursor) = newest_first(
        clickhouse,
        project,
        conditions,
        narrow,
        filter.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(CursorPage::new(rows, next_cursor))
}

/// A page of the scores `conditions` pick, newest first, after `cursor`; and the next page's
/// cursor while more remain. `narrow` (a subset of `conditions` on `scores_by_time`'s columns)
/// picks time windows of `scores_by_time`, newest first; each window's scores are read from
/// `scores` by key and deduplicated by sorting (`FINAL` merged every column of every granule
/// the keys touch: twice the time), and `conditions` decide on the newest version. A score's
/// newest version is in `scores_by_time` at its own time, so every match of a window is found.
async fn newest_first(
    clickhouse: &ClickHouse,
    project: Uuid,
    mut conditions: Conditions,
    mut narrow: Conditions,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<serde_json::Value>, Option<String>), AnalyticsError> {
    let cursor = cursor_at(cursor)?;
    conditions.before("timestamp_us", "id", cursor.as_ref());
    narrow.before("timestamp_us", "id", cursor.as_ref());
    let mut rows = Vec::new();
    let Some(span) = time_span(clickhouse, "scores_by_time", "timestamp_us", &narrow).await? else {
        return Ok((rows, None));
    };
    for (low, high) in Windows::over(span, limit + 1) {
        let mut window = narrow.clone();
        window.time_range("timestamp_us", Some(low), Some(high));
        let mut in_window = conditions.clone();
        in_window.time_range("timestamp_us", Some(low), Some(high));
        let candidates = format!(
            "SELECT trace_id, id FROM scores_by_time FINAL {}",
            window.render()
        );
        let sql = format!(
            "SELECT * FROM (
                 SELECT * FROM scores
                 WHERE project_id = {project} AND trace_id IN (SELECT trace_id FROM ({candidates}))
                   AND (trace_id, id) IN ({candidates})
                 ORDER BY trace_id, id, version DESC LIMIT 1 BY trace_id, id
             ) {in_window} ORDER BY timestamp_us DESC, id DESC LIMIT {wanted} FORMAT JSONEachRow",
            project = quote(&project.to_string()),
            in_window = in_window.render(),
            wanted = limit + 1 - rows.len()
        );
        rows.extend(parse_rows(&read(clickhouse, &sql).await?)?);
        if rows.len() > limit {
            break;
        }
    }
    let next = next_page(&mut rows, limit, "timestamp_us");
    Ok((rows, next))
}

/// Where a Langfuse score keeps what AgentTrace has no column for (the edge writes them).
const ENVIRONMENT_KEY: &str = "langfuse.environment";
const QUEUE_KEY: &str = "langfuse.queueId";
/// Who gave an annotation score (a user id), written by AgentTrace's annotation routes.
pub const AUTHOR_KEY: &str = "langfuse.authorUserId";

/// `GET /api/public/v3/scores`'s query parameters, as Langfuse's SDKs send them. Lists are
/// comma-separated, ORed within a parameter and ANDed across them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoresV3Params {
    /// 1 to 100 (50).
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Field groups beyond the core: `details`, `subject`, `annotation`.
    pub fields: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    /// `API`, `ANNOTATION`, `EVAL` (any case).
    pub source: Option<String>,
    /// `NUMERIC`, `BOOLEAN`, `CATEGORICAL`, `TEXT` (any case).
    pub data_type: Option<String>,
    pub environment: Option<String>,
    pub config_id: Option<String>,
    pub queue_id: Option<String>,
    pub author_user_id: Option<String>,
    /// Exact values; needs a single `dataType` of `NUMERIC`, `BOOLEAN` or `CATEGORICAL`.
    pub value: Option<String>,
    /// Needs `dataType=NUMERIC`.
    pub value_min: Option<f64>,
    /// Needs `dataType=NUMERIC`.
    pub value_max: Option<f64>,
    pub trace_id: Option<String>,
    /// Needs `traceId`.
    pub observation_id: Option<String>,
    /// Not supported: AgentTrace keeps scores of traces and observations.
    pub session_id: Option<String>,
    /// Not supported: AgentTrace keeps scores of traces and observations.
    pub experiment_id: Option<String>,
    pub from_timestamp: Option<String>,
    pub to_timestamp: Option<String>,
}

/// A page of scores in Langfuse's v3 shape.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LangfuseScores {
    /// Langfuse's `ScoreV3`: `value` a number, a boolean or a string by `dataType`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<serde_json::Value>,
    pub meta: LangfuseScoresMeta,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LangfuseScoresMeta {
    pub limit: usize,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

const FIELD_GROUPS: [&str; 3] = ["details", "subject", "annotation"];

/// The values of a comma-separated list parameter.
fn values(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).filter(|v| !v.is_empty()).collect()
}

/// The metadata value at `key` of a score row, as SQL.
fn metadata_at(key: &str) -> String {
    format!("metadata_values[indexOf(metadata_keys, '{key}')]")
}

/// One page of the project's scores, newest first, in Langfuse's v3 shape.
pub async fn scores_v3(
    clickhouse: &ClickHouse,
    project: Uuid,
    params: &ScoresV3Params,
) -> Result<LangfuseScores, AnalyticsError> {
    for (field, given) in [
        ("sessionId", params.session_id.is_some()),
        ("experimentId", params.experiment_id.is_some()),
    ] {
        if given {
            return Err(invalid(
                field,
                "AgentTrace keeps scores of traces and observations only: filter by traceId".to_owned(),
            ));
        }
    }
    let mut groups = Vec::new();
    for group in params.fields.as_deref().map(values).unwrap_or_default() {
        if !FIELD_GROUPS.contains(&group) {
            return Err(invalid(
                "fields",
                format!("{group:?}: use any of {}", FIELD_GROUPS.join(", ")),
            ));
        }
        groups.push(group);
    }
    let limit = page_limit(params.limit, 50, 100)?;
    // `narrow`: what `scores_by_time` can check; `rest`: what only the scores can.
    let mut narrow = Conditions::project(project);
    let mut rest = Conditions::new();
    narrow.time_range(
        "timestamp_us",
        time_bound(params.from_timestamp.as_deref(), "fromTimestamp")?,
        time_bound(params.to_timestamp.as_deref(), "toTimestamp")?,
    );
    let lower = |list: &str| -> Vec<String> { values(list).iter().map(|v| v.to_lowercase()).collect() };
    let data_types: Vec<String> = params
        .data_type
        .as_deref()
        .map(lower)
        .unwrap_or_default()
        .into_iter()
        .map(|t| if t == "correction" { "text".to_owned() } else { t })
        .collect();
    for (column, list) in [
        ("id", params.id.as_deref().map(values)),
        ("name", params.name.as_deref().map(values)),
        ("trace_id", params.trace_id.as_deref().map(values)),
    ] {
        if let Some(list) = list {
            narrow.in_list(column, list);
        }
    }
    if let Some(list) = params.observation_id.as_deref().map(values) {
        rest.in_list("observation_id", list);
    }
    if params.observation_id.is_some() && params.trace_id.is_none() {
        return Err(invalid(
            "observationId",
            "needs traceId: observation ids are scoped to a trace".to_owned(),
        ));
    }
    if let Some(sources) = params.source.as_deref() {
        narrow.in_list("source", lower(sources));
    }
    if params.data_type.is_some() {
        narrow.in_list("data_type", &data_types);
    }
    for (key, list) in [
        (ENVIRONMENT_KEY, &params.environment),
        (CONFIG_ID_KEY, &params.config_id),
        (QUEUE_KEY, &params.queue_id),
        (AUTHOR_KEY, &params.author_user_id),
    ] {
        if let Some(list) = list {
            rest.in_list(&metadata_at(key), values(list));
        }
    }
    let single = || match data_types.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    };
    if params.value_min.is_some() || params.value_max.is_some() {
        if single() != Some("numeric") {
            return Err(invalid(
                "valueMin",
                "valueMin and valueMax need dataType=NUMERIC".to_owned(),
            ));
        }
        for (field, bound) in [("valueMin", params.value_min), ("valueMax", params.value_max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                return Err(invalid(field, "must be a finite number".to_owned()));
            }
        }
        if let Some(min) = params.value_min {
            narrow.at_least("value", min);
        }
        if let Some(max) = params.value_max {
            narrow.at_most("value", max);
        }
    }
    if let Some(list) = params.value.as_deref() {
        let exact = values(list);
        match single() {
            Some("numeric") => {
                let mut numbers = Vec::new();
                for v in &exact {
                    match v.parse::<f64>() {
                        Ok(n) if n.is_finite() => numbers.push(n.to_string()),
                        _ => return Err(invalid("value", format!("{v:?} is not a finite number"))),
                    }
                }
                narrow.raw(format!("toString(value) IN ({})", quote_list(&numbers)));
            }
            Some("boolean") => {
                let mut flags = Vec::new();
                for v in &exact {
                    match *v {
                        "true" => flags.push("1".to_owned()),
                        "false" => flags.push("0".to_owned()),
                        other => {
                            return Err(invalid(
                                "value",
                                format!("{other:?}: a BOOLEAN value is true or false"),
                            ));
                        }
                    }
                }
                narrow.raw(format!("toString(value) IN ({})", quote_list(&flags)));
            }
            Some("categorical") => {
                rest.in_list("string_value", exact);
            }
            _ => {
                return Err(invalid(
                    "value",
                    "needs a single dataType of NUMERIC, BOOLEAN or CATEGORICAL".to_owned(),
                ));
            }
        }
    }
    let mut conditions = narrow.clone();
    conditions.and(&rest);
    let (rows, cursor) = newest_first(
        clickhouse,
        project,
        conditions,
        narrow,
        params.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(LangfuseScores {
        data: rows
            .iter()
            .map(|row| langfuse_score(project, row, &groups))
            .collect(),
        meta: LangfuseScoresMeta { limit, cursor },
    })
}

/// The score `id` of the project in Langfuse's v3 shape, with every field group; `None` when
/// the project has no such score.
pub async fn score_v3(
    clickhouse: &ClickHouse,
    project: Uuid,
    id: &str,
) -> Result<Option<serde_json::Value>, AnalyticsError> {
    let mut conditions = Conditions::project(project);
    conditions.eq("id", id);
    let sql = format!(
        "SELECT * FROM scores FINAL {} LIMIT 1 FORMAT JSONEachRow",
        conditions.render()
    );
    let rows = parse_rows(&read(clickhouse, &sql).await?)?;
    Ok(rows
        .first()
        .map(|row| langfuse_score(project, row, &FIELD_GROUPS)))
}

/// A stored score as Langfuse's `ScoreV3`: the core fields, and those of `groups`.
fn langfuse_score(project: Uuid, row: &serde_json::Value, groups: &[&str]) -> serde_json::Value {
    use serde_json::json;
    let metadata = row["metadata"].as_object().cloned().unwrap_or_default();
    let meta = |key: &str| metadata.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let at = row["timestamp_us"]
        .as_i64()
        .map(|us| agenttrace_schemas::Timestamp::from_micros(us).to_string());
    let data_type = row["data_type"].as_str().unwrap_or("numeric").to_uppercase();
    let value = match data_type.as_str() {
        "BOOLEAN" => json!(row["value"].as_f64() == Some(1.0)),
        "CATEGORICAL" | "TEXT" => row["string_value"].clone(),
        _ => row["value"].clone(),
    };
    let mut score = json!({
        "id": row["id"], "projectId": project.to_string(), "name": row["name"],
        "source": row["source"].as_str().unwrap_or("api").to_uppercase(),
        "timestamp": at, "createdAt": at, "updatedAt": at,
        "environment": meta(ENVIRONMENT_KEY).unwrap_or_else(|| "default".to_owned()),
        "dataType": data_type, "value": value,
    });
    if groups.contains(&"details") {
        let own: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .filter(|(key, _)| !key.starts_with("langfuse."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        score["comment"] = row["comment"].clone();
        score["configId"] = json!(meta(CONFIG_ID_KEY));
        score["metadata"] = json!(own);
    }
    if groups.contains(&"annotation") {
        score["authorUserId"] = json!(meta(AUTHOR_KEY));
        score["queueId"] = json!(meta(QUEUE_KEY));
    }
    if groups.contains(&"subject") {
        score["subject"] = match row["observation_id"].as_str() {
            Some(observation) => {
                json!({"kind": "observation", "id": observation, "traceId": row["trace_id"]})
            }
            None => json!({"kind": "trace", "id": row["trace_id"]}),
        };
    }
    score
}
