//! Traces as a person reads them: a filtered, newest-first list with each trace's cost, tokens,
//! latency and observation count; a session's traces in order, as a conversation; and one trace with its observations as a tree and what was
//! recorded against it (scores, file operations, terminal commands, git links). Every row is
//! deduplicated and confined to the caller's project.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::{CursorPage, SessionPage, TraceDetail};
use crate::analytics::conditions::{Conditions, Level};
use crate::analytics::paging::{
    Windows, cursor_at, invalid, next_page, page_limit, parse_json_rows, parse_rows, read, readable,
    time_bound, time_span,
};
use crate::analytics::rows::{self, Row};
use crate::analytics::summaries::fresh_traces;
use crate::clickhouse::ClickHouse;
use crate::clickhouse::catalog::Table;
use crate::clickhouse::{quote, quote_list};
use crate::row_schema;
use utoipa::openapi::schema::Schema;

/// A trace's observations are read up to this many (the answer says when there were more), so
/// one request's memory stays bounded whatever an agent sent.
pub const MAX_OBSERVATIONS: usize = 10_000;
/// The same bound for each kind of record attached to a trace.
pub const MAX_RECORDS: usize = 10_000;
/// Characters of each observation payload (input, output, model parameters, each metadata
/// value) a trace's detail carries; the whole observation is read by itself
/// ([`observation_detail`]), so a trace's answer stays small whatever its payloads weigh.
pub const PREVIEW_CHARS: usize = 1_000;
/// The observation payload columns [`PREVIEW_CHARS`] bounds.
const PAYLOADS: [&str; 3] = ["input", "output", "model_parameters"];

/// The trace `trace_id` of `project`, or `None` when the project has nothing under that id.
pub async fn trace_detail(
    clickhouse: &ClickHouse,
    project: Uuid,
    trace_id: &str,
) -> Result<Option<TraceDetail>, AnalyticsError> {
    let mut by_id = Conditions::project(project);
    by_id.eq("id", trace_id);
    let mut by_trace = Conditions::project(project);
    by_trace.eq("trace_id", trace_id);
    // Independent reads, sent together.
    let (traces, mut observations, scores, file_operations, terminal_commands, git_links) = tokio::try_join!(
        rows(clickhouse, Table::Traces, &by_id, 1),
        observation_previews(clickhouse, &by_trace, MAX_OBSERVATIONS + 1),
        rows(clickhouse, Table::Scores, &by_trace, MAX_RECORDS),
        rows(clickhouse, Table::FileOperations, &by_trace, MAX_RECORDS),
        rows(clickhouse, Table::TerminalCommands, &by_trace, MAX_RECORDS),
        rows(clickhouse, Table::GitLinks, &by_trace, MAX_RECORDS),
    )?;
    let records = [&scores, &file_operations, &terminal_commands, &git_links];
    if traces.is_empty() && observations.is_empty() && records.iter().all(|found| found.is_empty()) {
        return Ok(None);
    }
    let truncated = observations.len() > MAX_OBSERVATIONS;
    observations.truncate(MAX_OBSERVATIONS);
    let mut trace = traces.into_iter().next();
    // A trace whose root span carried its input and output (OpenTelemetry GenAI instrumentations
    // send a chat's content as log events of its span) shows them, as a session does.
    if let Some(row) = trace.as_mut() {
        let roots = root_payloads(clickhouse, project, std::slice::from_ref(row)).await?;
        fill_from_roots(row, &roots);
    }
    Ok(Some(TraceDetail {
        id: trace_id.to_owned(),
        // Observations can arrive before their trace does; the tree is shown meanwhile.
        trace,
        observation_count: observations.len(),
        observations_truncated: truncated,
        observations: tree(observations),
        scores,
        file_operations,
        terminal_commands,
        git_links,
    }))
}

/// `GET /v1/traces`'s filters; every one is optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceFilter {
    /// Which project, for a signed-in user (a project key implies it); the HTTP layer reads it.
    pub project_id: Option<Uuid>,
    /// RFC 3339; traces that started at or after it.
    pub from: Option<String>,
    /// RFC 3339; traces that started before it.
    pub to: Option<String>,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// Comma-separated; a trace must carry every one.
    pub tags: Option<String>,
    /// Traces of this environment only; without it, every environment but the LLM judges' own
    /// (`agenttrace-judge`).
    pub environment: Option<String>,
    pub release: Option<String>,
    /// `warning` or `error`: traces with an observation at that level or above.
    pub level: Option<String>,
    /// USD, summed over the trace's observations.
    pub min_cost: Option<f64>,
    /// From the first observation's start to the last one's end.
    pub min_latency_ms: Option<f64>,
    /// Traces with a score of this name.
    pub score_name: Option<String>,
    /// Rows per page: 50 by default, 1000 at most.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// How a summary keeps each observation's newest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dedup {
    /// `FINAL`: as fast as sorting for a session's few traces (24–35 ms against 34–36 ms at
    /// 20M observations).
    Final,
    /// Sorting the rows read and keeping each id's newest: faster for a list's many traces
    /// (trace-list p50 110 ms against 168 ms, p95 343 against 664 ms, `bench read` at 100M).
    Sorted,
}

/// The observation summary columns a trace row carries, read from `observations` for the
/// traces `ids_sql` selects (a primary-key range per trace), the trace's id named `key`;
/// `project` is quoted.
fn summary_sql(project: &str, ids_sql: &str, key: &str, dedup: Dedup) -> String {
    let key = match key {
        "trace_id" => "trace_id".to_owned(),
        alias => format!("trace_id AS {alias}"),
    };
    let source = match dedup {
        Dedup::Final => {
            format!("observations FINAL WHERE project_id = {project} AND trace_id IN ({ids_sql})")
        }
        Dedup::Sorted => format!(
            "(SELECT trace_id, id AS observation_id, version, total_cost, input_tokens, output_tokens,
                     start_time_us, end_time_us, level
              FROM observations
              WHERE project_id = {project} AND trace_id IN ({ids_sql})
              ORDER BY trace_id, observation_id, version DESC LIMIT 1 BY trace_id, observation_id)"
        ),
    };
    format!(
        "SELECT {key}, count() AS observation_count,
                ifNull(toFloat64(sum(total_cost)), 0.) AS total_cost,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                (max(ifNull(end_time_us, start_time_us)) - min(start_time_us)) / 1000 AS latency_ms,
                max(multiIf(level = 'error', 3, level = 'warning', 2, 1)) AS worst_level
         FROM {source}
         GROUP BY trace_id"
    )
}

/// The trace columns a listed trace carries.
const TRACE_ROW_COLUMNS: [&str; 8] = [
    "id",
    "name",
    "timestamp_us",
    "user_id",
    "session_id",
    "tags",
    "environment",
    "release",
];

/// The trace-list row: the trace's own columns, then its observations' summary.
fn trace_row() -> Row {
    Row::stored(Table::Traces, &TRACE_ROW_COLUMNS)
        .field("observation_count", rows::integer(false))
        .field("total_cost", rows::number(false))
        .field("input_tokens", rows::integer(false))
        .field("output_tokens", rows::integer(false))
        .field("latency_ms", rows::number(false))
        .field("level", worst_level())
}

/// The worst level among a trace's observations (`debug` counts as `default`).
fn worst_level() -> Schema {
    rows::text_of(&["default", "warning", "error"], false)
}

row_schema!(
    /// A trace in a list: its columns and its observations' count, cost, tokens, latency and
    /// worst level.
    TraceRow => trace_row().build("A trace with its observations' summary.")
);

row_schema!(
    /// A trace in a session's conversation: a [`TraceRow`] with what it was asked and answered.
    SessionTrace => trace_row()
        .field("input", rows::any())
        .field("output", rows::any())
        .build("A trace of a session, with its input and output.")
);

row_schema!(
    /// A whole stored trace.
    StoredTrace => Row::readable(Table::Traces).build("A trace as stored, metadata as an object.")
);

row_schema!(
    /// A whole stored observation, payloads uncut.
    StoredObservation => Row::readable(Table::Observations).build("An observation as stored, payloads whole.")
);

row_schema!(
    /// An observation in a trace's tree: payloads cut to [`PREVIEW_CHARS`] characters, flags
    /// saying which were, and its children.
    ObservationNode => {
        let mut node = Row::readable(Table::Observations);
        for payload in PAYLOADS {
            node = node.field(&format!("{payload}_truncated"), rows::boolean());
        }
        node.field("metadata_truncated", rows::boolean())
            .field("children", rows::array(rows::reference("ObservationNode")))
            .build("An observation of a trace's tree, payloads cut to their first 1,000 characters.")
    }
);

row_schema!(
    /// A file operation as stored.
    FileOperation => Row::readable(Table::FileOperations).build("A file an agent read or changed.")
);

row_schema!(
    /// A terminal command as stored.
    TerminalCommand => Row::readable(Table::TerminalCommands).build("A command an agent ran.")
);

row_schema!(
    /// A git link as stored.
    GitLink => Row::readable(Table::GitLinks).build("A commit or pull request an agent made.")
);

row_schema!(
    /// A session in the list: its span, traces, users and their observations' totals.
    SessionSummary => Row::default()
        .field("id", rows::string(false))
        .field("first_us", rows::integer(false))
        .field("last_us", rows::integer(false))
        .field("trace_count", rows::integer(false))
        .field("user_ids", rows::strings())
        .field("observation_count", rows::integer(false))
        .field("total_cost", rows::number(false))
        .field("input_tokens", rows::integer(false))
        .field("output_tokens", rows::integer(false))
        .build("A session: first and last trace time (µs), traces, users, and totals.")
);

/// Traces from `source` (`traces` or `traces_by_time`) matching `trace_where`, joined with
/// their summaries and kept when `summary_where` holds, ordered by `direction`, at most `limit`.
/// Without summary conditions only the page's traces are summarized. `columns` are the trace
/// columns each row carries; `project` is quoted. `known_ids`: the traces' ids when the caller
/// has them (search's found traces).
#[allow(clippy::too_many_arguments)]
async fn summarized_traces(
    clickhouse: &ClickHouse,
    project: &str,
    source: &str,
    columns: &str,
    trace_where: &Conditions,
    summary_where: &Conditions,
    direction: &str,
    limit: usize,
    known_ids: Option<&[String]>,
) -> Result<Vec<Value>, AnalyticsError> {
    let order = format!("ORDER BY timestamp_us {direction}, id {direction}");
    // A list's window summarizes many traces, and so do search's found traces (scattered over
    // a project of 20M observations, `FINAL` over their ranges took 0.2–0.3 s where the same
    // aggregate without it took 0.08); a session's, a few.
    let dedup = if source == "traces_by_time" || known_ids.is_some() {
        Dedup::Sorted
    } else {
        Dedup::Final
    };
    let trace_where = trace_where.render();
    let (traces, ids) = if summary_where.is_empty() {
        let page = format!("SELECT {columns} FROM {source} FINAL {trace_where} {order} LIMIT {limit}");
        let ids = format!("SELECT id FROM ({page})");
        (page, ids)
    } else {
        (
            format!("SELECT {columns} FROM {source} FINAL {trace_where}"),
            format!("SELECT id FROM {source} FINAL {trace_where}"),
        )
    };
    // Known ids are summarized as they are, rather than by reading the traces a second time.
    let ids = match known_ids {
        Some(known) => quote_list(known),
        None => ids,
    };
    // 18.16 joins by USING only.
    let sql = format!(
        "SELECT {columns}, observation_count, total_cost, input_tokens, output_tokens, latency_ms, worst_level
         FROM ({traces}) ANY LEFT JOIN ({summary}) USING id
         {summary_where} {order} LIMIT {limit} FORMAT JSONEachRow",
        summary = summary_sql(project, &ids, "id", dedup),
        summary_where = summary_where.render(),
    );
    let mut rows = parse_rows(&read(clickhouse, &sql).await?)?;
    for row in &mut rows {
        if let Some(row) = row.as_object_mut() {
            let level = match row.remove("worst_level").and_then(|l| l.as_u64()) {
                Some(3) => "error",
                Some(2) => "warning",
                _ => "default",
            };
            row.insert("level".into(), level.into());
        }
    }
    Ok(rows)
}

/// The trace list's filters, time range and page aside: conditions on the trace's own columns,
/// the select of the traces with the score asked for (when one is), and conditions on the
/// trace's summary.
pub(crate) fn list_filters(
    project: Uuid,
    filter: &TraceFilter,
) -> Result<(Conditions, Option<String>, Conditions), AnalyticsError> {
    let mut filters = Conditions::new();
    filters
        .eq_opt("name", filter.name.as_deref())
        .eq_opt("user_id", filter.user_id.as_deref())
        .eq_opt("session_id", filter.session_id.as_deref())
        .eq_opt("environment", filter.environment.as_deref())
        .eq_opt("release", filter.release.as_deref());
    // The judges' own traces are shown only when asked for by their environment.
    if filter.environment.is_none() {
        filters.raw(format!(
            "environment != {}",
            crate::clickhouse::client::quote(crate::judge::JUDGE_ENVIRONMENT)
        ));
    }
    if let Some(tags) = &filter.tags {
        filters.has_all("tags", tags.split(',').map(str::trim).filter(|t| !t.is_empty()));
    }
    let scored = filter.score_name.as_ref().map(|score| {
        let mut scored = Conditions::project(project);
        scored.eq("name", score);
        format!("SELECT trace_id FROM scores FINAL {}", scored.render())
    });
    let mut summary_where = Conditions::new();
    if let Some(level) = Level::parse(filter.level.as_deref())? {
        summary_where.at_least("worst_level", level.rank());
    }
    for (field, column, value) in [
        ("min_cost", "total_cost", filter.min_cost),
        ("min_latency_ms", "latency_ms", filter.min_latency_ms),
    ] {
        match value {
            Some(v) if !v.is_finite() => return Err(invalid(field, "must be a number")),
            Some(v) => {
                summary_where.at_least(column, v);
            }
            None => {}
        }
    }
    Ok((filters, scored, summary_where))
}

/// The trace-list rows of those of the traces `ids` that pass `filter` (its time range, page
/// and cursor aside), in no particular order. Search reads the traces it found with it.
pub async fn listed_traces(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &TraceFilter,
    ids: &[String],
) -> Result<Vec<Value>, AnalyticsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let project_sql = quote(&project.to_string());
    let (filters, scored, summary_where) = list_filters(project, filter)?;
    let mut conditions = Conditions::project(project);
    conditions.in_list("id", ids).and(&filters);
    if let Some(select) = &scored {
        conditions.in_select("id", select);
    }
    summarized_traces(
        clickhouse,
        &project_sql,
        "traces",
        &TRACE_ROW_COLUMNS.join(", "),
        &conditions,
        &summary_where,
        "DESC",
        ids.len(),
        Some(ids),
    )
    .await
}

/// One page of the project's traces, newest first, with `next_cursor` while more remain.
/// Pages are keyed by (start time, id), so rows inserted meanwhile never shift a page. The
/// page reads `traces_by_time` one time window at a time, newest first, until it is full.
pub async fn trace_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &TraceFilter,
) -> Result<CursorPage<TraceRow>, AnalyticsError> {
    let limit = page_limit(filter.limit, 50, 1000)?;
    let mut range = Conditions::project(project);
    range.time_range(
        "timestamp_us",
        time_bound(filter.from.as_deref(), "from")?,
        time_bound(filter.to.as_deref(), "to")?,
    );
    let cursor = cursor_at(filter.cursor.as_deref())?;
    let (filters, scored, summary_where) = list_filters(project, filter)?;
    let mut conditions = range.clone();
    conditions
        .before("timestamp_us", "id", cursor.as_ref())
        .and(&filters);
    if let Some(select) = &scored {
        conditions.in_select("id", select);
    }
    // Summary filters read the kept summaries, unless the filter also matches a trace with no
    // observations (which has none) or no summary was kept yet.
    let empty_matches = [filter.min_cost, filter.min_latency_ms]
        .iter()
        .any(|v| v.is_some_and(|v| v <= 0.0));
    if !summary_where.is_empty() && !empty_matches {
        let kept = crate::analytics::summaries::summarized_second(clickhouse)
            .await
            .map_err(|e| AnalyticsError::built("the summaries' second", e))?;
        if kept > 0 {
            let mut rows = summary_filtered(
                clickhouse,
                &quote(&project.to_string()),
                &range,
                cursor.as_ref(),
                &conditions,
                &summary_where,
                kept,
                limit + 1,
            )
            .await?;
            let next_cursor = next_page(&mut rows, limit, "timestamp_us");
            return Ok(CursorPage::new(rows, next_cursor));
        }
    }
    let mut rows = Vec::new();
    // The span is estimated with the trace's own conditions (not the cursor's tie-break nor
    // the score's subquery).
    let mut bounds = range;
    if let Some((at, _)) = &cursor {
        bounds.at_most("timestamp_us", *at);
    }
    bounds.and(&filters);
    let project_sql = quote(&project.to_string());
    if let Some(span) = time_span(clickhouse, "traces_by_time", "timestamp_us", &bounds).await? {
        for (low, high) in Windows::over(span, limit + 1) {
            let mut window = conditions.clone();
            window.time_range("timestamp_us", Some(low), Some(high));
            let wanted = limit + 1 - rows.len();
            rows.extend(
                summarized_traces(
                    clickhouse,
                    &project_sql,
                    "traces_by_time",
                    &TRACE_ROW_COLUMNS.join(", "),
                    &window,
                    &summary_where,
                    "DESC",
                    wanted,
                    None,
                )
                .await?,
            );
            if rows.len() > limit {
                break;
            }
        }
    }
    let next_cursor = next_page(&mut rows, limit, "timestamp_us");
    Ok(CursorPage::new(rows, next_cursor))
}

/// A trace-list page (`wanted` rows, newest first) of the traces matching `conditions` (the
/// trace's own columns, range and cursor included) whose summary matches `summary_where`: the
/// summaries kept as of `kept` (a second) for the traces that arrived before it, the traces that
/// arrived since summarized here. Candidates are read from the narrow summaries first, newest
/// first, a batch at a time; then their trace rows, where the trace's own filters apply. A
/// filter nothing matches costs one read of the summaries' range.
#[allow(clippy::too_many_arguments)]
async fn summary_filtered(
    clickhouse: &ClickHouse,
    project: &str,
    range: &Conditions,
    cursor: Option<&(i64, String)>,
    conditions: &Conditions,
    summary_where: &Conditions,
    kept: i64,
    wanted: usize,
) -> Result<Vec<Value>, AnalyticsError> {
    let fresh = fresh_traces(project, kept, None);
    let measures = "observation_count, total_cost, input_tokens, output_tokens, latency_ms, worst_level";
    let mut rows: Vec<Value> = Vec::new();
    let mut after = cursor.cloned();
    let mut batch = (wanted * 4).max(64);
    loop {
        let mut stored = range.clone();
        stored
            .before("timestamp_us", "trace_id", after.as_ref())
            .raw(format!("trace_id NOT IN ({fresh})"));
        let mut recent = range.clone();
        recent
            .before("timestamp_us", "id", after.as_ref())
            .raw(format!("id IN ({fresh})"));
        // Stored summaries are read without `FINAL` (merging every part of the range cost more
        // than the rest of the read): any version that meets the filter is a candidate, and the
        // candidates' current versions decide below. The current version of a summary that
        // meets it is always among them.
        let candidates_sql = format!(
            "SELECT trace_id, timestamp_us, {measures}, live FROM (
                 SELECT trace_id, timestamp_us, {measures}, 0 AS live FROM trace_summaries {stored}
                 UNION ALL
                 SELECT trace_id, timestamp_us, {measures}, 1 AS live FROM (
                     SELECT id AS trace_id, timestamp_us FROM traces_by_time FINAL {recent}
                 ) ANY INNER JOIN ({live}) USING trace_id
             ) {summary_where}
             ORDER BY timestamp_us DESC, trace_id DESC LIMIT {batch} FORMAT JSONEachRow",
            stored = stored.render(),
            recent = recent.render(),
            live = summary_sql(project, &fresh, "trace_id", Dedup::Final),
            summary_where = summary_where.render(),
        );
        let candidates = parse_rows(&read(clickhouse, &candidates_sql).await?)?;
        let Some(last) = candidates.last() else {
            break;
        };
        let last = (
            last["timestamp_us"].as_i64().unwrap_or_default(),
            last["trace_id"].as_str().unwrap_or_default().to_owned(),
        );
        let oldest = last.0;
        let newest = candidates[0]["timestamp_us"].as_i64().unwrap_or_default();
        let mut summaries: HashMap<String, Value> = HashMap::new();
        let mut stored_ids: Vec<&str> = Vec::new();
        for candidate in candidates.iter() {
            let Some(id) = candidate["trace_id"].as_str() else {
                continue;
            };
            if candidate["live"].as_u64() == Some(1) {
                summaries.insert(id.to_owned(), candidate.clone());
            } else {
                stored_ids.push(id);
            }
        }
        if !stored_ids.is_empty() {
            let mut current = range.clone();
            current
                .time_range("timestamp_us", Some(oldest), Some(newest + 1))
                .in_list("trace_id", stored_ids.iter().copied());
            let current_sql = format!(
                "SELECT trace_id, timestamp_us, {measures} FROM (
                     SELECT trace_id, timestamp_us, {measures} FROM trace_summaries FINAL {current}
                 ) {summary_where} FORMAT JSONEachRow",
                current = current.render(),
                summary_where = summary_where.render(),
            );
            for row in parse_rows(&read(clickhouse, &current_sql).await?)? {
                if let Some(id) = row["trace_id"].as_str() {
                    summaries.insert(id.to_owned(), row.clone());
                }
            }
        }
        let mut traces = conditions.clone();
        traces
            .time_range("timestamp_us", Some(oldest), Some(newest + 1))
            .in_list("id", summaries.keys());
        let traces_sql = format!(
            "SELECT {} FROM traces_by_time FINAL {} ORDER BY timestamp_us DESC, id DESC FORMAT JSONEachRow",
            TRACE_ROW_COLUMNS.join(", "),
            traces.render()
        );
        for mut row in parse_rows(&read(clickhouse, &traces_sql).await?)? {
            let Some(summary) = row["id"].as_str().and_then(|id| summaries.get(id)) else {
                continue;
            };
            if let Some(object) = row.as_object_mut() {
                for key in [
                    "observation_count",
                    "total_cost",
                    "input_tokens",
                    "output_tokens",
                    "latency_ms",
                ] {
                    object.insert(key.into(), summary[key].clone());
                }
                let level = match summary["worst_level"].as_u64() {
                    Some(3) => "error",
                    Some(2) => "warning",
                    _ => "default",
                };
                object.insert("level".into(), level.into());
            }
            rows.push(row);
            if rows.len() >= wanted {
                return Ok(rows);
            }
        }
        if candidates.len() < batch {
            break;
        }
        after = Some(last);
        batch = batch.saturating_mul(4).min(100_000);
    }
    Ok(rows)
}

/// A session as a conversation: its traces oldest first, each with its summary, by cursor;
/// `None` when the project has no trace in that session. `session_traces` names the
/// candidates by key; `traces` confirms each is still in the session (a later update can move
/// a trace to another one).
pub async fn session_detail(
    clickhouse: &ClickHouse,
    project: Uuid,
    session_id: &str,
    cursor: Option<String>,
    limit: Option<usize>,
) -> Result<Option<SessionPage>, AnalyticsError> {
    let limit = page_limit(limit, 50, 1000)?;
    let first_page = cursor.is_none();
    let mut in_session = Conditions::project(project);
    in_session.eq("session_id", session_id);
    let mut trace_where = Conditions::project(project);
    trace_where
        .in_select(
            "id",
            &format!(
                "SELECT trace_id FROM session_traces FINAL {}",
                in_session.render()
            ),
        )
        .eq("session_id", session_id)
        .after("timestamp_us", "id", cursor_at(cursor.as_deref())?.as_ref());
    // A conversation shows what each turn was asked and answered.
    let mut rows = summarized_traces(
        clickhouse,
        &quote(&project.to_string()),
        "traces",
        &format!("{}, input, output", TRACE_ROW_COLUMNS.join(", ")),
        &trace_where,
        &Conditions::new(),
        "ASC",
        limit + 1,
        None,
    )
    .await?;
    if first_page && rows.is_empty() {
        return Ok(None);
    }
    let next_cursor = next_page(&mut rows, limit, "timestamp_us");
    // Coding agents send a turn's prompt on its root span, not on the trace.
    let roots = root_payloads(clickhouse, project, &rows).await?;
    for row in &mut rows {
        fill_from_roots(row, &roots);
    }
    Ok(Some(SessionPage {
        session_id: session_id.to_owned(),
        data: rows,
        next_cursor,
    }))
}

/// `GET /v1/sessions`'s parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionFilter {
    pub project_id: Option<Uuid>,
    /// RFC 3339: sessions active at or after it.
    pub from: Option<String>,
    /// RFC 3339: sessions whose last trace started before it.
    pub to: Option<String>,
    pub user_id: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// One page of the project's sessions, most recently active first, each with its first and
/// last trace time, trace count, users, cost, tokens and observation count. A window of
/// `traces_by_time` names the sessions active in it; `session_traces` (by key, each trace
/// confirmed still in that session by `traces`) gives their span, and those whose last trace
/// falls in the window (and before the cursor) are the window's rows.
pub async fn session_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &SessionFilter,
) -> Result<CursorPage<SessionSummary>, AnalyticsError> {
    let limit = page_limit(filter.limit, 50, 1000)?;
    let mut bounds = Conditions::project(project);
    bounds.raw("isNotNull(session_id)");
    let from = time_bound(filter.from.as_deref(), "from")?;
    let to = time_bound(filter.to.as_deref(), "to")?;
    bounds.time_range("timestamp_us", from, to);
    let cursor = cursor_at(filter.cursor.as_deref())?;
    if let Some((at, _)) = &cursor {
        bounds.at_most("timestamp_us", *at);
    }
    bounds.eq_opt("user_id", filter.user_id.as_deref());
    let mut rows: Vec<Value> = Vec::new();
    let Some(span) = time_span(clickhouse, "traces_by_time", "timestamp_us", &bounds).await? else {
        return Ok(CursorPage::new(rows, None));
    };
    let project = quote(&project.to_string());
    // About five traces to a session: enough traces for the page's sessions.
    for (low, high) in Windows::over(span, 5 * (limit + 1)) {
        let mut in_window = bounds.clone();
        in_window.time_range("timestamp_us", Some(low), Some(high));
        let active = format!(
            "SELECT DISTINCT assumeNotNull(session_id) FROM traces_by_time {}",
            in_window.render()
        );
        // The sessions whose last trace is in the window, before `to` and after the cursor.
        let mut last = Conditions::new();
        last.time_range("last_us", Some(low), Some(high))
            .time_range("last_us", None, to)
            .before("last_us", "id", cursor.as_ref());
        let sql = format!(
            "SELECT session_id AS id, min(timestamp_us) AS first_us, max(timestamp_us) AS last_us,
                    count() AS trace_count,
                    arrayFilter(u -> u != '', groupUniqArray(ifNull(user_id, ''))) AS user_ids
             FROM session_traces FINAL
             WHERE project_id = {project} AND session_id IN ({active})
               AND (session_id, trace_id) IN ({current})
             GROUP BY session_id
             HAVING {last}
             ORDER BY last_us DESC, id DESC
             LIMIT {wanted} FORMAT JSONEachRow",
            current = current_memberships(&project, &active),
            last = last.sql(),
            wanted = limit + 1 - rows.len(),
        );
        rows.extend(parse_json_rows(&read(clickhouse, &sql).await?)?);
        if rows.len() > limit {
            break;
        }
    }
    let next_cursor = next_page(&mut rows, limit, "last_us");
    add_session_summaries(clickhouse, &project, &mut rows).await?;
    Ok(CursorPage::new(rows, next_cursor))
}

/// SQL for the `(session_id, trace_id)` pairs that still hold for the traces of the sessions
/// `sessions` (SQL) names: `session_traces` keeps every session a trace was ever in, and the
/// trace's newest row says which is current. The trace rows are read from `traces_by_time` at
/// the traces' own start times (which every version shares), a few key ranges, rather than
/// by id from `traces`, whose ids scatter them over the whole project (5× the time at 100M
/// rows). `project` is quoted.
fn current_memberships(project: &str, sessions: &str) -> String {
    let members = format!("FROM session_traces WHERE project_id = {project} AND session_id IN ({sessions})");
    format!(
        "SELECT assumeNotNull(session_id), id FROM traces_by_time FINAL
         WHERE project_id = {project} AND timestamp_us IN (SELECT timestamp_us {members})
           AND id IN (SELECT trace_id {members})"
    )
}

/// Each listed session's observation count, cost and tokens: the sum of its current traces'
/// summaries, read from `trace_summaries` (at the traces' start times: a few key ranges) for the
/// traces summarized as of the last run, and summarized on the spot for those that arrived
/// since. `project` is quoted.
async fn add_session_summaries(
    clickhouse: &ClickHouse,
    project: &str,
    sessions: &mut [Value],
) -> Result<(), AnalyticsError> {
    if sessions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = sessions.iter().filter_map(|s| s["id"].as_str()).collect();
    let mut listed = Conditions::new();
    listed.in_list("session_id", ids.iter().copied());
    let quoted = quote_list(&ids);
    let members_sql = format!(
        "SELECT session_id, trace_id, timestamp_us FROM session_traces FINAL
         WHERE project_id = {project} AND {listed} AND (session_id, trace_id) IN ({current})
         FORMAT JSONEachRow",
        listed = listed.sql(),
        current = current_memberships(project, &quoted),
    );
    let members = parse_json_rows(&read(clickhouse, &members_sql).await?)?;
    let kept = crate::analytics::summaries::summarized_second(clickhouse)
        .await
        .map_err(|e| AnalyticsError::built("the summaries' last run", e))?;
    // (observations, cost, input tokens, output tokens) per session.
    let mut totals: HashMap<&str, (u64, f64, u64, u64)> = HashMap::new();
    let measures = "observation_count, total_cost, input_tokens, output_tokens";
    // In chunks, so a session of many traces stays within a statement's size.
    for chunk in members.chunks(2_000) {
        let trace_ids = || chunk.iter().filter_map(|m| m["trace_id"].as_str());
        let mut page = Conditions::new();
        page.in_list("trace_id", trace_ids());
        let times: Vec<String> = chunk
            .iter()
            .filter_map(|m| m["timestamp_us"].as_i64())
            .map(|t| t.to_string())
            .collect();
        let fresh = format!(
            "SELECT trace_id FROM ({}) WHERE {}",
            fresh_traces(project, kept, None),
            page.sql()
        );
        let sql = format!(
            "SELECT trace_id, {measures} FROM trace_summaries FINAL
             WHERE project_id = {project} AND timestamp_us IN ({times}) AND {page}
               AND trace_id NOT IN ({fresh})
             UNION ALL
             SELECT trace_id, {measures} FROM ({live})
             FORMAT JSONEachRow",
            times = times.join(", "),
            page = page.sql(),
            live = summary_sql(project, &fresh, "trace_id", Dedup::Final),
        );
        let summaries: HashMap<String, Value> = parse_json_rows(&read(clickhouse, &sql).await?)?
            .into_iter()
            .filter_map(|row| Some((row["trace_id"].as_str()?.to_owned(), row)))
            .collect();
        for member in chunk {
            let (Some(session), Some(s)) = (
                member["session_id"].as_str(),
                member["trace_id"].as_str().and_then(|t| summaries.get(t)),
            ) else {
                continue;
            };
            let total = totals.entry(session).or_default();
            total.0 += s["observation_count"].as_u64().unwrap_or(0);
            total.1 += s["total_cost"].as_f64().unwrap_or(0.0);
            total.2 += s["input_tokens"].as_u64().unwrap_or(0);
            total.3 += s["output_tokens"].as_u64().unwrap_or(0);
        }
    }
    for session in sessions.iter_mut() {
        let total = session["id"].as_str().and_then(|id| totals.get(id)).copied();
        let (observations, cost, input, output) = total.unwrap_or_default();
        session["observation_count"] = json!(observations);
        // A session with nothing summarized shows a cost of 0, as an integer, like before.
        session["total_cost"] = total.map_or(json!(0), |_| json!(cost));
        session["input_tokens"] = json!(input);
        session["output_tokens"] = json!(output);
    }
    Ok(())
}

/// The deduplicated rows of `table` matching `conditions`, in time order, as JSON objects.
/// `conditions` are a key range of a few rows: sorting them and keeping each id's newest version
/// costs half what `FINAL`'s merge of every part's granule does (and also collapses copies
/// that sit in different partitions).
/// A trace's observations with their payloads cut to [`PREVIEW_CHARS`]; `<payload>_truncated`
/// (and `metadata_truncated`) say which were cut.
async fn observation_previews(
    clickhouse: &ClickHouse,
    conditions: &Conditions,
    limit: usize,
) -> Result<Vec<Value>, AnalyticsError> {
    let mut columns = Vec::new();
    for field in Table::Observations.schema().fields() {
        let name = field.name().as_str();
        // Previews under names of their own: a ClickHouse alias shadows the column it names
        // everywhere in the SELECT, so `… AS input` would make the length check read the cut.
        if PAYLOADS.contains(&name) {
            columns.push(format!(
                "substringUTF8({name}, 1, {PREVIEW_CHARS}) AS {name}_preview"
            ));
            columns.push(format!(
                "ifNull(lengthUTF8({name}), 0) > {PREVIEW_CHARS} AS {name}_truncated"
            ));
        } else if name == "metadata_values" {
            columns.push(format!(
                "arrayMap(v -> substringUTF8(v, 1, {PREVIEW_CHARS}), metadata_values) AS metadata_values_preview"
            ));
            columns.push(format!(
                "arrayExists(v -> lengthUTF8(v) > {PREVIEW_CHARS}, metadata_values) AS metadata_truncated"
            ));
        } else {
            columns.push(name.to_owned());
        }
    }
    // What `SELECT *` gives the whole observation, so that a node is that row, cut.
    columns.extend(Table::Observations.insert_time_column().map(str::to_owned));
    let sql = format!(
        "SELECT {columns} FROM observations {where_} ORDER BY start_time_us, id, version DESC LIMIT 1 BY id \
         LIMIT {limit} FORMAT JSONEachRow",
        columns = columns.join(", "),
        where_ = conditions.render(),
    );
    let flags = PAYLOADS
        .map(|payload| format!("{payload}_truncated"))
        .into_iter()
        .chain(["metadata_truncated".to_owned()]);
    let flags: Vec<String> = flags.collect();
    parse_json_rows(&read(clickhouse, &sql).await?)?
        .into_iter()
        .map(|row| {
            let Value::Object(mut row) = row else {
                return Err(AnalyticsError::InvalidFormat(format!(
                    "ClickHouse sent a row that is not an object: {row}"
                )));
            };
            for column in PAYLOADS.iter().chain(&["metadata_values"]) {
                if let Some(preview) = row.remove(&format!("{column}_preview")) {
                    row.insert((*column).to_owned(), preview);
                }
            }
            for flag in &flags {
                let cut = row.get(flag) == Some(&Value::from(1));
                row.insert(flag.clone(), Value::Bool(cut));
            }
            Ok(readable(row))
        })
        .collect()
}

/// One observation of a trace, whole (payloads uncut), or `None` when the project has none.
pub async fn observation_detail(
    clickhouse: &ClickHouse,
    project: Uuid,
    trace_id: &str,
    observation_id: &str,
) -> Result<Option<Value>, AnalyticsError> {
    let mut conditions = Conditions::project(project);
    conditions.eq("trace_id", trace_id).eq("id", observation_id);
    Ok(rows(clickhouse, Table::Observations, &conditions, 1)
        .await?
        .into_iter()
        .next())
}

async fn rows(
    clickhouse: &ClickHouse,
    table: Table,
    conditions: &Conditions,
    limit: usize,
) -> Result<Vec<Value>, AnalyticsError> {
    let sql = format!(
        "SELECT * FROM {name} {where_} ORDER BY {time}, id, version DESC LIMIT 1 BY id LIMIT {limit} \
         FORMAT JSONEachRow",
        name = table.name(),
        where_ = conditions.render(),
        time = table.time_column(),
    );
    parse_rows(&read(clickhouse, &sql).await?)
}

/// Nests observations under their parents (`children`), keeping time order among siblings.
/// An observation whose parent is missing, or that is caught in a parent cycle, is a root.
fn tree(observations: Vec<Value>) -> Vec<Value> {
    fn id_of(observation: &Value) -> &str {
        observation["id"].as_str().unwrap_or_default()
    }
    let ids: HashSet<&str> = observations.iter().map(id_of).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (index, observation) in observations.iter().enumerate() {
        match observation["parent_observation_id"].as_str() {
            Some(parent) if ids.contains(parent) && parent != id_of(observation) => {
                children.entry(parent).or_default().push(index);
            }
            _ => roots.push(index),
        }
    }
    // Depth-first from the roots; what is never reached sits in a cycle and becomes a root.
    let mut order = Vec::with_capacity(observations.len());
    let mut parent_of = vec![None; observations.len()];
    let mut reached = vec![false; observations.len()];
    let mut start = 0;
    let mut pending: Vec<usize> = roots.into_iter().rev().collect();
    loop {
        while let Some(index) = pending.pop() {
            if reached[index] {
                continue;
            }
            reached[index] = true;
            order.push(index);
            for &child in children
                .get(id_of(&observations[index]))
                .into_iter()
                .flatten()
                .rev()
            {
                if !reached[child] {
                    parent_of[child] = Some(index);
                    pending.push(child);
                }
            }
        }
        match (start..observations.len()).find(|&i| !reached[i]) {
            Some(orphan) => {
                pending.push(orphan);
                start = orphan + 1;
            }
            None => break,
        }
    }
    // Leaves first: each finished node moves into its parent's `children`.
    let mut nodes: Vec<Option<Value>> = observations.into_iter().map(Some).collect();
    let mut finished: Vec<Vec<Value>> = vec![Vec::new(); nodes.len()];
    let mut top = Vec::new();
    for &index in order.iter().rev() {
        let mut node = nodes[index].take().expect("each observation is visited once");
        let mut kids = std::mem::take(&mut finished[index]);
        kids.reverse();
        node["children"] = Value::Array(kids);
        match parent_of[index] {
            Some(parent) => finished[parent].push(node),
            None => top.push(node),
        }
    }
    top.reverse();
    top
}

/// The trace of each of `observations` (of the project), by observation id.
pub async fn observation_traces(
    clickhouse: &ClickHouse,
    project: Uuid,
    observations: &[&str],
) -> Result<std::collections::HashMap<String, String>, AnalyticsError> {
    keyed_pairs(
        clickhouse,
        "SELECT id AS key, any(trace_id) AS value FROM observations",
        project,
        "id",
        observations,
    )
    .await
}

/// The first trace of each of `sessions` (of the project), by session id.
pub async fn first_traces(
    clickhouse: &ClickHouse,
    project: Uuid,
    sessions: &[&str],
) -> Result<std::collections::HashMap<String, String>, AnalyticsError> {
    keyed_pairs(
        clickhouse,
        "SELECT session_id AS key, argMin(id, timestamp_us) AS value FROM traces FINAL",
        project,
        "session_id",
        sessions,
    )
    .await
}

/// `select` (giving `key` and `value`) over the project's rows whose `column` is one of `keys`,
/// grouped by `column`.
async fn keyed_pairs(
    clickhouse: &ClickHouse,
    select: &str,
    project: Uuid,
    column: &str,
    keys: &[&str],
) -> Result<std::collections::HashMap<String, String>, AnalyticsError> {
    if keys.is_empty() {
        return Ok(Default::default());
    }
    let mut conditions = Conditions::project(project);
    conditions.in_list(column, keys);
    let sql = format!(
        "{select} {} GROUP BY {column} FORMAT JSONEachRow",
        conditions.render()
    );
    let body = crate::analytics::paging::read(clickhouse, &sql).await?;
    Ok(crate::analytics::paging::parse_json_rows(&body)?
        .into_iter()
        .filter_map(|row| Some((row["key"].as_str()?.to_owned(), row["value"].as_str()?.to_owned())))
        .collect())
}

/// No payload: null, or blank text.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

/// For each of the trace rows `rows` (of the project) that lacks an input or an output and has
/// root observations, the input of its first root with one and the output of its last root with
/// one (as the JSON they were sent as, else text): what a trace that carries neither itself
/// (Claude Code's and Codex's turns) was asked and answered.
async fn root_payloads(
    clickhouse: &ClickHouse,
    project: Uuid,
    rows: &[Value],
) -> Result<HashMap<String, (Value, Value)>, AnalyticsError> {
    let traces: Vec<&str> = rows
        .iter()
        .filter(|row| is_blank(&row["input"]) || is_blank(&row["output"]))
        .filter_map(|row| row["id"].as_str())
        .collect();
    if traces.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conditions = Conditions::project(project);
    conditions
        .in_list("trace_id", traces)
        .raw("isNull(parent_observation_id)");
    let sql = format!(
        "SELECT trace_id, \
         argMinIf(input, start_time_us, notEmpty(ifNull(input, ''))) AS first_input, \
         argMaxIf(output, start_time_us, notEmpty(ifNull(output, ''))) AS last_output \
         FROM observations FINAL {} GROUP BY trace_id FORMAT JSONEachRow",
        conditions.render()
    );
    Ok(parse_json_rows(&read(clickhouse, &sql).await?)?
        .into_iter()
        .filter_map(|row| {
            Some((
                row["trace_id"].as_str()?.to_owned(),
                (as_sent(&row["first_input"]), as_sent(&row["last_output"])),
            ))
        })
        .collect())
}

/// Fills a trace row's blank input and output from its roots' (see [`root_payloads`]).
fn fill_from_roots(row: &mut Value, roots: &HashMap<String, (Value, Value)>) {
    let Some((input, output)) = row["id"].as_str().and_then(|id| roots.get(id)).cloned() else {
        return;
    };
    for (name, value) in [("input", input), ("output", output)] {
        if is_blank(&row[name]) && !is_blank(&value) {
            row[name] = value;
        }
    }
}

/// A stored payload as the JSON it was sent as, else as its text.
fn as_sent(stored: &Value) -> Value {
    match stored.as_str() {
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        None => stored.clone(),
    }
}

/// The input and output of each of `traces` (of the project), by trace id, from its root
/// observations where the trace has none; a payload that is JSON as its value, else as text.
pub async fn trace_payloads(
    clickhouse: &ClickHouse,
    project: Uuid,
    traces: &[&str],
) -> Result<std::collections::HashMap<String, (Value, Value)>, AnalyticsError> {
    if traces.is_empty() {
        return Ok(Default::default());
    }
    let mut conditions = Conditions::project(project);
    conditions.in_list("id", traces);
    let sql = format!(
        "SELECT id, input, output FROM traces FINAL {} FORMAT JSONEachRow",
        conditions.render()
    );
    let body = crate::analytics::paging::read(clickhouse, &sql).await?;
    let rows = crate::analytics::paging::parse_json_rows(&body)?;
    let roots = root_payloads(clickhouse, project, &rows).await?;
    let payload = |stored: &Value, root: Option<&Value>| match root {
        Some(root) if is_blank(stored) && !is_blank(root) => root.clone(),
        _ => as_sent(stored),
    };
    Ok(rows
        .iter()
        .filter_map(|row| {
            let id = row["id"].as_str()?;
            let root = roots.get(id);
            Some((
                id.to_owned(),
                (
                    payload(&row["input"], root.map(|(input, _)| input)),
                    payload(&row["output"], root.map(|(_, output)| output)),
                ),
            ))
        })
        .collect())
}

/// Whether the project holds anything of trace `trace_id`: its row, or an observation of it
/// (observations can arrive before their trace).
pub async fn exists(clickhouse: &ClickHouse, project: Uuid, trace_id: &str) -> Result<bool, AnalyticsError> {
    let mut by_id = Conditions::project(project);
    by_id.eq("id", trace_id);
    let mut by_trace = Conditions::project(project);
    by_trace.eq("trace_id", trace_id);
    for sql in [
        format!(
            "SELECT 1 FROM traces {} LIMIT 1 FORMAT JSONEachRow",
            by_id.render()
        ),
        format!(
            "SELECT 1 FROM observations {} LIMIT 1 FORMAT JSONEachRow",
            by_trace.render()
        ),
    ] {
        if !crate::analytics::paging::read(clickhouse, &sql).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(nodes: &[Value]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| {
                let kids = shape(n["children"].as_array().unwrap());
                if kids.is_empty() {
                    n["id"].as_str().unwrap().to_owned()
                } else {
                    format!("{}({})", n["id"].as_str().unwrap(), kids.join(","))
                }
            })
            .collect()
    }

    fn obs(id: &str, parent: Option<&str>) -> Value {
        json!({"id": id, "parent_observation_id": parent})
    }

    #[test]
    fn nests_children_in_time_order_and_keeps_orphans_and_cycles_as_roots() {
        let nested = tree(vec![
            obs("root", None),
            obs("a", Some("root")),
            obs("a1", Some("a")),
            obs("b", Some("root")),
            obs("orphan", Some("missing")),
            obs("x", Some("y")),
            obs("y", Some("x")),
            obs("self", Some("self")),
        ]);
        assert_eq!(shape(&nested), ["root(a(a1),b)", "orphan", "self", "x(y)"]);
    }
}
