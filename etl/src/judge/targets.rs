//! What a judge reads of its targets: an observation's fields as prompts name them, and the
//! expected output of the dataset item its trace ran. Every read is scoped to one project.

use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::clickhouse::ClickHouse;
use crate::clickhouse::client::quote;

/// A target's fields by name: `input`, `output`, `metadata` (JSON), `name`, `model` (text) and,
/// when its trace ran a dataset item with one, `expected_output`.
pub type Fields = HashMap<String, Value>;

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
    let expected = expected_outputs(pg, clickhouse, &project.to_string(), &traces).await?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("target row: {e}"))?;
        // Stored payloads are JSON text; a text that is not JSON is kept as a string.
        let stored = |name: &str| {
            row[name]
                .as_str()
                .filter(|text| !text.is_empty())
                .map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
        };
        let mut fields = Fields::new();
        for name in ["input", "output"] {
            if let Some(value) = stored(name) {
                fields.insert(name.to_owned(), value);
            }
        }
        for name in ["name", "model"] {
            if let Some(text) = row[name].as_str().filter(|t| !t.is_empty()) {
                fields.insert(name.to_owned(), Value::String(text.to_owned()));
            }
        }
        let names = row["metadata_keys"].as_array().cloned().unwrap_or_default();
        let values = row["metadata_values"].as_array().cloned().unwrap_or_default();
        let metadata: serde_json::Map<String, Value> = names
            .iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
            .collect();
        fields.insert("metadata".to_owned(), Value::Object(metadata));
        if let Some(value) = row["trace_id"].as_str().and_then(|trace| expected.get(trace)) {
            fields.insert("expected_output".to_owned(), value.clone());
        }
        out.insert(row["id"].as_str().unwrap_or_default().to_owned(), fields);
    }
    Ok(out)
}

/// Expected outputs of the dataset items that the given traces ran, by trace id. Both lookups
/// are scoped to the project: a trace naming another project's dataset item gets nothing.
pub async fn expected_outputs(
    pg: &impl GenericClient,
    clickhouse: &ClickHouse,
    project_id: &str,
    trace_ids: &[&str],
) -> Result<HashMap<String, Value>, String> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = trace_ids.iter().map(|id| quote(id)).collect();
    let text = clickhouse
        .query_text(&format!(
            "SELECT id, assumeNotNull(dataset_item_id) AS item FROM traces FINAL WHERE project_id = {} \
             AND dataset_item_id IS NOT NULL AND id IN ({}) FORMAT JSONEachRow",
            quote(project_id),
            ids.join(",")
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
    let rows = pg
        .query(
            "SELECT i.id::text AS id, i.expected_output FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id
             WHERE d.project_id::text = $1 AND i.id::text = ANY($2) AND i.expected_output IS NOT NULL",
            &[&project_id, &items],
        )
        .await
        .map_err(|e| e.to_string())?;
    let expected: HashMap<String, Value> = rows
        .iter()
        .map(|row| (row.get("id"), row.get("expected_output")))
        .collect();
    Ok(item_of
        .into_iter()
        .filter_map(|(trace, item)| expected.get(&item).map(|value| (trace, value.clone())))
        .collect())
}
