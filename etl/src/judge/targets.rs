//! What a judge reads of its targets: an observation's, a whole trace's or a session's fields
//! as prompts name them, and the expected output of the dataset item a trace ran. Every read
//! is scoped to one project.

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::clickhouse::ClickHouse;
use crate::clickhouse::client::{quote, quote_list};

/// A target's fields by name: `input`, `output`, `metadata` (JSON), `name`, `model` (text),
/// `tool_calls` and `conversation` (lists) and, when its trace ran a dataset item with one,
/// `expected_output`.
pub type Fields = HashMap<String, Value>;

/// Tool calls a trace or session target reads (the first ones, in order).
const MAX_TOOL_CALLS: usize = 200;
/// Traces a session target reads (its first ones, in order).
const MAX_SESSION_TRACES: usize = 500;

/// A stored JSON payload as a value: JSON text is read, other text kept as a string, empty as none.
fn stored(row: &Value, name: &str) -> Option<Value> {
    row[name]
        .as_str()
        .filter(|text| !text.is_empty())
        .map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
}

/// Parallel metadata arrays as one object.
fn metadata_of(row: &Value) -> Value {
    let names = row["metadata_keys"].as_array().cloned().unwrap_or_default();
    let values = row["metadata_values"].as_array().cloned().unwrap_or_default();
    Value::Object(
        names
            .iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
            .collect(),
    )
}

/// The fields of `project`'s observations named by (trace id, observation id), by observation id.
pub async fn observation_fields(
    pg: &impl GenericClient,
    clickhouse: &ClickHouse,
    project: Uuid,
    keys: &[(&str, &str)],
) -> Result<HashMap<String, Fields>, String> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let listed = keys
        .iter()
        .map(|(trace, id)| format!("({}, {})", quote(trace), quote(id)))
        .collect::<Vec<_>>()
        .join(", ");
    let text = clickhouse
        .query_text(&format!(
            "SELECT id, trace_id, name, ifNull(model, '') AS model, input, output, metadata_keys, metadata_values \
             FROM observations FINAL WHERE project_id = {project} AND (trace_id, id) IN ({listed}) \
             FORMAT JSONEachRow",
            project = quote(&project.to_string()),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let traces: Vec<&str> = keys.iter().map(|(trace, _)| *trace).collect();
    let items = dataset_items_of(pg, clickhouse, &project.to_string(), &traces).await?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("target row: {e}"))?;
        let mut fields = Fields::new();
        for name in ["input", "output"] {
            if let Some(value) = stored(&row, name) {
                fields.insert(name.to_owned(), value);
            }
        }
        for name in ["name", "model"] {
            if let Some(text) = row[name].as_str().filter(|t| !t.is_empty()) {
                fields.insert(name.to_owned(), Value::String(text.to_owned()));
            }
        }
        fields.insert("metadata".to_owned(), metadata_of(&row));
        let calls = fields.get("output").map(tool_calls_in).unwrap_or_default();
        fields.insert("tool_calls".to_owned(), Value::Array(calls));
        add_item(
            &mut fields,
            row["trace_id"].as_str().and_then(|trace| items.get(trace)),
        );
        out.insert(row["id"].as_str().unwrap_or_default().to_owned(), fields);
    }
    Ok(out)
}

/// The fields of `project`'s whole traces, by trace id: the trace's name, input, output and
/// metadata (input and output from its root observation when the trace has none), its tool
/// calls in order (`[{name, input, output}]`), and the expected output of the dataset item it
/// ran. A trace with neither a trace row nor observations is absent.
pub async fn trace_fields(
    pg: &impl GenericClient,
    clickhouse: &ClickHouse,
    project: Uuid,
    trace_ids: &[&str],
) -> Result<HashMap<String, Fields>, String> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let project_text = project.to_string();
    let listed = quote_list(trace_ids.iter().copied());
    let query = |sql: String| async move { clickhouse.query_text(&sql).await.map_err(|e| e.to_string()) };
    let traces = query(format!(
        "SELECT id, ifNull(name, '') AS name, input, output, metadata_keys, metadata_values          FROM traces FINAL WHERE project_id = {p} AND id IN ({listed}) FORMAT JSONEachRow",
        p = quote(&project_text),
    ))
    .await?;
    // Root observations (a trace without its own input and output reads theirs) and tool calls.
    let parts = query(format!(
        "SELECT trace_id, type, name, ifNull(tool_name, '') AS tool_name, input, output,          isNull(parent_observation_id) AS root          FROM observations FINAL WHERE project_id = {p} AND trace_id IN ({listed})          AND (type IN ('tool', 'tool_call') OR isNull(parent_observation_id))          ORDER BY trace_id, start_time_us, id FORMAT JSONEachRow",
        p = quote(&project_text),
    ))
    .await?;
    let items = dataset_items_of(pg, clickhouse, &project_text, trace_ids).await?;
    let mut out: HashMap<String, Fields> = HashMap::new();
    for line in traces.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("trace row: {e}"))?;
        let mut fields = Fields::new();
        for name in ["input", "output"] {
            if let Some(value) = stored(&row, name) {
                fields.insert(name.to_owned(), value);
            }
        }
        if let Some(name) = row["name"].as_str().filter(|n| !n.is_empty()) {
            fields.insert("name".to_owned(), Value::String(name.to_owned()));
        }
        fields.insert("metadata".to_owned(), metadata_of(&row));
        out.insert(row["id"].as_str().unwrap_or_default().to_owned(), fields);
    }
    for line in parts.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("observation row: {e}"))?;
        let trace = row["trace_id"].as_str().unwrap_or_default().to_owned();
        let fields = out
            .entry(trace)
            .or_insert_with(|| Fields::from([("metadata".to_owned(), Value::Object(Default::default()))]));
        if row["root"] == json!(1) {
            for name in ["input", "output"] {
                if !fields.contains_key(name)
                    && let Some(value) = stored(&row, name)
                {
                    fields.insert(name.to_owned(), value);
                }
            }
            if !fields.contains_key("name")
                && let Some(name) = row["name"].as_str()
            {
                fields.insert("name".to_owned(), Value::String(name.to_owned()));
            }
        }
        if matches!(row["type"].as_str(), Some("tool" | "tool_call")) {
            let calls = fields
                .entry("tool_calls".to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(calls) = calls
                && calls.len() < MAX_TOOL_CALLS
            {
                let name = row["tool_name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .or(row["name"].as_str())
                    .unwrap_or_default();
                calls.push(json!({
                    "name": name,
                    "input": stored(&row, "input"),
                    "output": stored(&row, "output"),
                }));
            }
        }
    }
    for (trace, fields) in &mut out {
        fields.entry("tool_calls".to_owned()).or_insert_with(|| json!([]));
        add_item(fields, items.get(trace));
    }
    Ok(out)
}

/// The fields of `project`'s sessions, by session id: `conversation` (each trace in order:
/// `{trace_id, name, input, output}`), `input` of the first trace and `output` of the last,
/// the first trace's `metadata`, every `tool_calls` in order, and `name` (the session id).
pub async fn session_fields(
    pg: &impl GenericClient,
    clickhouse: &ClickHouse,
    project: Uuid,
    session_ids: &[&str],
) -> Result<HashMap<String, Fields>, String> {
    if session_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let text = clickhouse
        .query_text(&format!(
            "SELECT session_id, trace_id FROM session_traces FINAL              WHERE project_id = {p} AND session_id IN ({listed})              ORDER BY session_id, timestamp_us, trace_id LIMIT {MAX_SESSION_TRACES} BY session_id              FORMAT JSONEachRow",
            p = quote(&project.to_string()),
            listed = quote_list(session_ids.iter().copied()),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut sessions: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("session row: {e}"))?;
        let session = row["session_id"].as_str().unwrap_or_default();
        let trace = row["trace_id"].as_str().unwrap_or_default().to_owned();
        match sessions.last_mut() {
            Some((last, traces)) if last == session => traces.push(trace),
            _ => sessions.push((session.to_owned(), vec![trace])),
        }
    }
    let all: Vec<&str> = sessions
        .iter()
        .flat_map(|(_, traces)| traces.iter().map(String::as_str))
        .collect();
    let traces = trace_fields(pg, clickhouse, project, &all).await?;
    let mut out = HashMap::new();
    for (session, ids) in sessions {
        let mut conversation = Vec::new();
        let mut tool_calls = Vec::new();
        for id in &ids {
            let Some(trace) = traces.get(id) else { continue };
            let field = |name: &str| trace.get(name).cloned().unwrap_or(Value::Null);
            conversation.push(json!({
                "trace_id": id, "name": field("name"), "input": field("input"), "output": field("output"),
            }));
            if let Some(Value::Array(calls)) = trace.get("tool_calls") {
                let room = MAX_TOOL_CALLS.saturating_sub(tool_calls.len());
                tool_calls.extend(calls.iter().take(room).cloned());
            }
        }
        let first = ids.first().and_then(|id| traces.get(id));
        let last = ids.last().and_then(|id| traces.get(id));
        let mut fields = Fields::new();
        if let Some(input) = first.and_then(|t| t.get("input")) {
            fields.insert("input".to_owned(), input.clone());
        }
        if let Some(output) = last.and_then(|t| t.get("output")) {
            fields.insert("output".to_owned(), output.clone());
        }
        fields.insert(
            "metadata".to_owned(),
            first
                .and_then(|t| t.get("metadata"))
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        fields.insert("name".to_owned(), Value::String(session.clone()));
        fields.insert("conversation".to_owned(), Value::Array(conversation));
        fields.insert("tool_calls".to_owned(), Value::Array(tool_calls));
        out.insert(session, fields);
    }
    Ok(out)
}

/// The dataset item each given trace ran, by trace id: its expected output (when it has one)
/// and its metadata. Both lookups are scoped to the project: a trace naming another project's
/// dataset item gets nothing.
pub async fn dataset_items_of(
    pg: &impl GenericClient,
    clickhouse: &ClickHouse,
    project_id: &str,
    trace_ids: &[&str],
) -> Result<HashMap<String, (Option<Value>, Value)>, String> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let text = clickhouse
        .query_text(&format!(
            "SELECT id, assumeNotNull(dataset_item_id) AS item FROM traces FINAL WHERE project_id = {} \
             AND dataset_item_id IS NOT NULL AND id IN ({}) FORMAT JSONEachRow",
            quote(project_id),
            quote_list(trace_ids.iter().copied())
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut item_of = HashMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("trace row: {e}"))?;
        if let (Some(trace), Some(item)) = (row["id"].as_str(), row["item"].as_str()) {
            item_of.insert(trace.to_owned(), item.to_owned());
        }
    }
    if item_of.is_empty() {
        return Ok(HashMap::new());
    }
    let items: Vec<&str> = item_of.values().map(String::as_str).collect();
    let Ok(project) = Uuid::parse_str(project_id) else {
        return Ok(HashMap::new());
    };
    let rows = pg
        .query(
            "SELECT i.id, i.expected_output, i.metadata FROM dataset_items i
             WHERE i.project_id = $1 AND i.id = ANY($2)",
            &[&project, &items],
        )
        .await
        .map_err(|e| e.to_string())?;
    let found: HashMap<String, (Option<Value>, Value)> = rows
        .iter()
        .map(|row| (row.get("id"), (row.get("expected_output"), row.get("metadata"))))
        .collect();
    Ok(item_of
        .into_iter()
        .filter_map(|(trace, item)| found.get(&item).map(|facts| (trace, facts.clone())))
        .collect())
}

/// Adds `expected_output` and `experiment_item_metadata` from the dataset item a trace ran.
fn add_item(fields: &mut Fields, item: Option<&(Option<Value>, Value)>) {
    if let Some((expected, metadata)) = item {
        if let Some(expected) = expected {
            fields.insert("expected_output".to_owned(), expected.clone());
        }
        fields.insert("experiment_item_metadata".to_owned(), metadata.clone());
    }
}

/// The tool calls a model's answer asked for, in Langfuse's shape (`{id, name, arguments,
/// type, index}`): OpenAI's `tool_calls` (in a message, a list of messages or `choices`) and
/// Anthropic's `tool_use` content blocks.
pub fn tool_calls_in(output: &Value) -> Vec<Value> {
    let mut calls = Vec::new();
    collect_tool_calls(output, &mut calls, 0);
    calls
}

fn collect_tool_calls(value: &Value, calls: &mut Vec<Value>, depth: usize) {
    if depth > 4 || calls.len() >= MAX_TOOL_CALLS {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                collect_tool_calls(item, calls, depth + 1);
            }
        }
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("tool_use") {
                calls.push(json!({
                    "id": map.get("id"), "name": map.get("name"), "arguments": map.get("input"),
                    "type": "tool_use", "index": calls.len(),
                }));
                return;
            }
            if let Some(Value::Array(asked)) = map.get("tool_calls") {
                for call in asked.iter().take(MAX_TOOL_CALLS.saturating_sub(calls.len())) {
                    let function = &call["function"];
                    calls.push(json!({
                        "id": call.get("id"),
                        "name": function.get("name").or(call.get("name")),
                        "arguments": function.get("arguments").or(call.get("arguments")),
                        "type": call.get("type").cloned().unwrap_or(json!("function")),
                        "index": call.get("index").cloned().unwrap_or(json!(calls.len())),
                    }));
                }
            }
            for key in ["choices", "message", "messages", "content", "output"] {
                if let Some(inner) = map.get(key) {
                    collect_tool_calls(inner, calls, depth + 1);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_read_from_either_provider_format() {
        let openai = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}},
        ]});
        assert_eq!(
            tool_calls_in(&openai),
            vec![
                json!({"id": "call_1", "name": "read_file", "arguments": "{\"path\":\"a\"}", "type": "function", "index": 0})
            ]
        );
        let completion = json!({"choices": [{"message": openai}]});
        assert_eq!(tool_calls_in(&completion).len(), 1);
        let anthropic = json!({"content": [{"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}]});
        assert_eq!(
            tool_calls_in(&anthropic),
            vec![
                json!({"id": "toolu_1", "name": "bash", "arguments": {"command": "ls"}, "type": "tool_use", "index": 0})
            ]
        );
        assert!(tool_calls_in(&json!("plain text")).is_empty());
    }
}
