//! One trace as a person reads it: the trace, its observations as a tree, and what was recorded
//! against it (scores, file operations, terminal commands, git links), each row deduplicated.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
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
    let scope = format!(
        "project_id = {} AND {{column}} = {}",
        quote(&project.to_string()),
        quote(trace_id)
    );
    let traces = rows(clickhouse, Table::Traces, &scope.replace("{column}", "id"), 1).await?;
    let mut observations = rows(
        clickhouse,
        Table::Observations,
        &scope.replace("{column}", "trace_id"),
        MAX_OBSERVATIONS + 1,
    )
    .await?;
    let truncated = observations.len() > MAX_OBSERVATIONS;
    observations.truncate(MAX_OBSERVATIONS);
    let mut attached = Map::new();
    for (key, table) in [
        ("scores", Table::Scores),
        ("file_operations", Table::FileOperations),
        ("terminal_commands", Table::TerminalCommands),
        ("git_links", Table::GitLinks),
    ] {
        let found = rows(
            clickhouse,
            table,
            &scope.replace("{column}", "trace_id"),
            MAX_RECORDS,
        )
        .await?;
        attached.insert(key.to_owned(), Value::Array(found));
    }
    let trace = traces.into_iter().next();
    if trace.is_none() && observations.is_empty() && attached.values().all(is_empty_array) {
        return Ok(None);
    }
    let mut answer = Map::new();
    answer.insert("id".into(), Value::String(trace_id.to_owned()));
    // Observations can arrive before their trace does; the tree is shown meanwhile.
    answer.insert("trace".into(), trace.unwrap_or(Value::Null));
    answer.insert("observation_count".into(), observations.len().into());
    answer.insert("observations_truncated".into(), truncated.into());
    answer.insert("observations".into(), Value::Array(tree(observations)));
    answer.extend(attached);
    Ok(Some(Value::Object(answer)))
}

fn is_empty_array(value: &Value) -> bool {
    value.as_array().is_some_and(Vec::is_empty)
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
    let id_of = |o: &Value| o["id"].as_str().unwrap_or_default().to_owned();
    let ids: HashSet<String> = observations.iter().map(id_of).collect();
    let mut children: HashMap<String, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (index, observation) in observations.iter().enumerate() {
        match observation["parent_observation_id"].as_str() {
            Some(parent) if ids.contains(parent) && parent != id_of(observation) => {
                children.entry(parent.to_owned()).or_default().push(index);
            }
            _ => roots.push(index),
        }
    }
    // Depth-first from the roots; what is never reached sits in a cycle and becomes a root.
    let mut order = Vec::with_capacity(observations.len());
    let mut parent_of = vec![None; observations.len()];
    let mut reached = vec![false; observations.len()];
    let mut start = 0;
    let mut pending: Vec<usize> = roots.iter().rev().copied().collect();
    loop {
        while let Some(index) = pending.pop() {
            if reached[index] {
                continue;
            }
            reached[index] = true;
            order.push(index);
            for &child in children
                .get(&id_of(&observations[index]))
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
                roots.push(orphan);
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
