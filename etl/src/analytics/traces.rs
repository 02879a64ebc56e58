//! Traces as a person reads them: a filtered, newest-first list with each trace's cost, tokens,
//! latency and observation count; a session's traces in order, as a conversation; and one trace with its observations as a tree and what was
//! recorded against it (scores, file operations, terminal commands, git links). Every row is
//! deduplicated and confined to the caller's project.

use std::collections::{HashMap, HashSet};

use agenttrace_schemas::Timestamp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::clickhouse::catalog::Table;
use crate::clickhouse::{ClickHouse, quote};

/// A trace's observations are read up to this many (the answer says when there were more), so
/// one request's memory stays bounded whatever an agent sent.
pub const MAX_OBSERVATIONS: usize = 10_000;
/// The same bound for each kind of record attached to a trace.
pub const MAX_RECORDS: usize = 10_000;

/// The trace `trace_id` of `project`, or `None` when the project has nothing under that id.
pub async fn trace_detail(
    clickhouse: &ClickHouse,
    project: Uuid,
    trace_id: &str,
) -> Result<Option<Value>, AnalyticsError> {
    let project = quote(&project.to_string());
    let trace_key = quote(trace_id);
    let by_id = format!("project_id = {project} AND id = {trace_key}");
    let by_trace = format!("project_id = {project} AND trace_id = {trace_key}");
    // Independent reads, sent together.
    let (traces, mut observations, scores, file_operations, terminal_commands, git_links) = tokio::try_join!(
        rows(clickhouse, Table::Traces, &by_id, 1),
        rows(clickhouse, Table::Observations, &by_trace, MAX_OBSERVATIONS + 1),
        rows(clickhouse, Table::Scores, &by_trace, MAX_RECORDS),
        rows(clickhouse, Table::FileOperations, &by_trace, MAX_RECORDS),
        rows(clickhouse, Table::TerminalCommands, &by_trace, MAX_RECORDS),
        rows(clickhouse, Table::GitLinks, &by_trace, MAX_RECORDS),
    )?;
    let records = [
        ("scores", scores),
        ("file_operations", file_operations),
        ("terminal_commands", terminal_commands),
        ("git_links", git_links),
    ];
    if traces.is_empty() && observations.is_empty() && records.iter().all(|(_, found)| found.is_empty()) {
        return Ok(None);
    }
    let truncated = observations.len() > MAX_OBSERVATIONS;
    observations.truncate(MAX_OBSERVATIONS);
    let trace = traces.into_iter().next();
    let mut answer = Map::new();
    answer.insert("id".into(), Value::String(trace_id.to_owned()));
    // Observations can arrive before their trace does; the tree is shown meanwhile.
    answer.insert("trace".into(), trace.unwrap_or(Value::Null));
    answer.insert("observation_count".into(), observations.len().into());
    answer.insert("observations_truncated".into(), truncated.into());
    answer.insert("observations".into(), Value::Array(tree(observations)));
    for (key, found) in records {
        answer.insert(key.to_owned(), Value::Array(found));
    }
    Ok(Some(Value::Object(answer)))
}

/// `GET /v1/traces`'s filters; every one is optional.
#[derive(Debug, Clone, Default, Deserialize)]
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

fn invalid(field: &'static str, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::InvalidParameter {
        field,
        message: message.into(),
    }
}

fn time_bound(value: Option<&str>, field: &'static str) -> Result<Option<i64>, AnalyticsError> {
    value
        .map(|text| {
            Timestamp::parse(text)
                .map(Timestamp::as_micros)
                .map_err(|e| invalid(field, format!("{e}; use RFC 3339, e.g. 2026-11-30T12:00:00Z")))
        })
        .transpose()
}

/// A page position: the (start time, id) of the last trace shown, opaque to callers.
fn encode_cursor(time_us: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{time_us}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), AnalyticsError> {
    let bad = || {
        invalid(
            "cursor",
            "not a cursor this API gave out; pass `next_cursor` as it came",
        )
    };
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (time, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((time.parse().map_err(|_| bad())?, id.to_owned()))
}

/// One page of the project's traces, newest first, with `next_cursor` while more remain.
/// Pages are keyed by (start time, id), so rows inserted meanwhile never shift a page.
pub async fn trace_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &TraceFilter,
) -> Result<Value, AnalyticsError> {
    let (rows, next_cursor) = traces_page(clickhouse, project, filter, Order::NewestFirst).await?;
    Ok(json!({ "data": rows, "next_cursor": next_cursor }))
}

/// A session as a conversation: its traces oldest first, each with its summary, by cursor;
/// `None` when the project has no trace in that session.
pub async fn session_detail(
    clickhouse: &ClickHouse,
    project: Uuid,
    session_id: &str,
    cursor: Option<String>,
    limit: Option<usize>,
) -> Result<Option<Value>, AnalyticsError> {
    let first_page = cursor.is_none();
    let filter = TraceFilter {
        session_id: Some(session_id.to_owned()),
        cursor,
        limit,
        ..TraceFilter::default()
    };
    let (rows, next_cursor) = traces_page(clickhouse, project, &filter, Order::OldestFirst).await?;
    if first_page && rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        json!({ "session_id": session_id, "data": rows, "next_cursor": next_cursor }),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    NewestFirst,
    OldestFirst,
}

async fn traces_page(
    clickhouse: &ClickHouse,
    project: Uuid,
    filter: &TraceFilter,
    order: Order,
) -> Result<(Vec<Value>, Option<String>), AnalyticsError> {
    let (after, direction) = match order {
        Order::NewestFirst => ("<", "DESC"),
        Order::OldestFirst => (">", "ASC"),
    };
    let limit = filter.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 1000"));
    }
    let project = quote(&project.to_string());
    let mut trace_conditions = vec![format!("project_id = {project}")];
    if let Some(from) = time_bound(filter.from.as_deref(), "from")? {
        trace_conditions.push(format!("timestamp_us >= {from}"));
    }
    if let Some(to) = time_bound(filter.to.as_deref(), "to")? {
        trace_conditions.push(format!("timestamp_us < {to}"));
    }
    for (column, value) in [
        ("name", &filter.name),
        ("user_id", &filter.user_id),
        ("session_id", &filter.session_id),
        ("environment", &filter.environment),
        ("release", &filter.release),
    ] {
        if let Some(value) = value {
            trace_conditions.push(format!("{column} = {}", quote(value)));
        }
    }
    if let Some(tags) = &filter.tags {
        let tags: Vec<String> = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(quote)
            .collect();
        trace_conditions.push(format!("hasAll(tags, [{}])", tags.join(", ")));
    }
    if let Some(score) = &filter.score_name {
        trace_conditions.push(format!(
            "id IN (SELECT trace_id FROM scores FINAL WHERE project_id = {project} AND name = {})",
            quote(score)
        ));
    }
    if let Some(cursor) = &filter.cursor {
        let (time, id) = decode_cursor(cursor)?;
        trace_conditions.push(format!(
            "(timestamp_us {after} {time} OR (timestamp_us = {time} AND id {after} {}))",
            quote(&id)
        ));
    }
    let mut summary_conditions = Vec::new();
    match filter.level.as_deref() {
        None => {}
        Some("warning") => summary_conditions.push("worst_level >= 2".to_owned()),
        Some("error") => summary_conditions.push("worst_level >= 3".to_owned()),
        Some(other) => return Err(invalid("level", format!("{other:?}: use warning or error"))),
    }
    for (field, column, value) in [
        ("min_cost", "total_cost", filter.min_cost),
        ("min_latency_ms", "latency_ms", filter.min_latency_ms),
    ] {
        match value {
            Some(v) if !v.is_finite() => return Err(invalid(field, "must be a number")),
            Some(v) => summary_conditions.push(format!("{column} >= {v}")),
            None => {}
        }
    }
    let trace_where = trace_conditions.join(" AND ");
    let summary_where = if summary_conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", summary_conditions.join(" AND "))
    };
    // The traces matching first, then their observations' summary (18.16 joins by USING).
    let sql = format!(
        "SELECT id, name, timestamp_us, user_id, session_id, tags, environment, release,
                observation_count, total_cost, input_tokens, output_tokens, latency_ms, worst_level
         FROM (SELECT id, name, timestamp_us, user_id, session_id, tags, environment, release
               FROM traces FINAL WHERE {trace_where})
         ANY LEFT JOIN (
               SELECT trace_id AS id, count() AS observation_count,
                      ifNull(toFloat64(sum(total_cost)), 0.) AS total_cost,
                      sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                      (max(ifNull(end_time_us, start_time_us)) - min(start_time_us)) / 1000 AS latency_ms,
                      max(multiIf(level = 'error', 3, level = 'warning', 2, 1)) AS worst_level
               FROM observations FINAL
               WHERE project_id = {project}
                 AND trace_id IN (SELECT id FROM traces FINAL WHERE {trace_where})
               GROUP BY trace_id) USING id
         {summary_where}
         ORDER BY timestamp_us {direction}, id {direction}
         LIMIT {} FORMAT JSONEachRow",
        limit + 1
    );
    let settings = [
        ("output_format_json_quote_64bit_integers", "0"),
        ("max_execution_time", "30"),
        ("readonly", "1"),
    ];
    let body = clickhouse.query_with_settings(&sql, &settings).await?;
    let mut rows = parse_rows(&body)?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| {
            encode_cursor(
                last["timestamp_us"].as_i64().unwrap_or_default(),
                last["id"].as_str().unwrap_or_default(),
            )
        })
    } else {
        None
    };
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
    Ok((rows, next_cursor))
}

fn parse_rows(body: &[u8]) -> Result<Vec<Value>, AnalyticsError> {
    body.split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let row: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
                AnalyticsError::InvalidFormat(format!("ClickHouse sent a row that is not JSON: {e}"))
            })?;
            Ok(readable(row))
        })
        .collect()
}

/// The deduplicated rows of `table` matching `condition`, in time order, as JSON objects.
async fn rows(
    clickhouse: &ClickHouse,
    table: Table,
    condition: &str,
    limit: usize,
) -> Result<Vec<Value>, AnalyticsError> {
    let sql = format!(
        "SELECT * FROM {name} FINAL WHERE {condition} ORDER BY {time}, id LIMIT {limit} FORMAT JSONEachRow",
        name = table.name(),
        time = table.time_column(),
    );
    // Integers as numbers, not strings (ClickHouse quotes 64-bit ones by default).
    let settings = [
        ("output_format_json_quote_64bit_integers", "0"),
        ("readonly", "1"),
    ];
    let body = clickhouse.query_with_settings(&sql, &settings).await?;
    parse_rows(&body)
}

/// A stored row as people read it: no storage bookkeeping, metadata as an object, and input,
/// output and attributes as the JSON they were sent as.
fn readable(mut row: Map<String, Value>) -> Value {
    for internal in ["project_id", "project_name", "version", "event_id"] {
        row.remove(internal);
    }
    if let (Some(Value::Array(keys)), Some(Value::Array(values))) =
        (row.remove("metadata_keys"), row.remove("metadata_values"))
    {
        let metadata: Map<String, Value> = keys
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), value)))
            .collect();
        row.insert("metadata".into(), Value::Object(metadata));
    }
    for field in ["input", "output", "model_parameters"] {
        if let Some(Value::String(text)) = row.get(field)
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            row.insert(field.into(), parsed);
        }
    }
    Value::Object(row)
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

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let cursor = encode_cursor(1_796_069_037_754_586, "trace:with:colons");
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            (1_796_069_037_754_586, "trace:with:colons".to_owned())
        );
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("no-colon"),
            &URL_SAFE_NO_PAD.encode("x:id"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_read_as_sent() {
        let row = readable(
            json!({"id": "o", "project_id": "p", "version": 3, "metadata_keys": ["k"], "metadata_values": ["v"],
                   "input": "{\"q\":1}", "output": "plain text"})
            .as_object()
            .unwrap()
            .clone(),
        );
        assert_eq!(
            row,
            json!({"id": "o", "input": {"q": 1}, "output": "plain text", "metadata": {"k": "v"}})
        );
    }
}
