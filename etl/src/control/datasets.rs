//! Datasets and their items: inputs with the outputs expected of them, which experiments run
//! and the `exact_match` / `fuzzy_match` evaluators compare with. A dataset may carry JSON
//! Schemas that every item's input and expected output must satisfy. Items are upserted by an
//! id the client may choose, and archived rather than deleted while runs refer to them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, time};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Dataset {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub metadata: Value,
    #[schema(required = true)]
    pub input_schema: Option<Value>,
    #[schema(required = true)]
    pub expected_output_schema: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    pub name: String,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    pub input_schema: Option<Value>,
    pub expected_output_schema: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DatasetItem {
    pub id: String,
    pub dataset_id: Uuid,
    pub dataset_name: String,
    pub status: String,
    pub input: Value,
    #[schema(required = true)]
    pub expected_output: Option<Value>,
    pub metadata: Value,
    #[schema(required = true)]
    pub source_trace_id: Option<String>,
    #[schema(required = true)]
    pub source_observation_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An item to create or replace (by `id`, when given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewItem {
    pub id: Option<String>,
    pub dataset_name: String,
    pub input: Option<Value>,
    pub expected_output: Option<Value>,
    pub metadata: Option<Value>,
    pub source_trace_id: Option<String>,
    pub source_observation_id: Option<String>,
    /// `active` or `archived`.
    pub status: Option<String>,
}

impl Dataset {
    /// What [`Dataset::from_row`] reads, selected from `datasets`.
    pub const COLUMNS: &'static str = "id, project_id, name, description, metadata, input_schema, \
        expected_output_schema, created_at, updated_at";

    pub fn from_row(row: &Row) -> Self {
        Dataset {
            id: row.get("id"),
            project_id: row.get("project_id"),
            name: row.get("name"),
            description: row.get("description"),
            metadata: row.get("metadata"),
            input_schema: row.get("input_schema"),
            expected_output_schema: row.get("expected_output_schema"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }
}

fn compile_schema(field: &'static str, schema: &Value) -> Result<jsonschema::Validator, ControlError> {
    jsonschema::validator_for(schema).map_err(|e| ControlError::Invalid {
        field,
        message: format!("not a valid JSON Schema: {e}"),
    })
}

/// Creates the project's dataset `name`, or updates the one that exists.
pub async fn upsert(
    client: &impl GenericClient,
    project_id: Uuid,
    new: &NewDataset,
) -> Result<Dataset, ControlError> {
    if new.name.is_empty() || new.name.len() > 200 {
        return Err(ControlError::Invalid {
            field: "name",
            message: "must be 1 to 200 characters".into(),
        });
    }
    if let Some(schema) = &new.input_schema {
        compile_schema("inputSchema", schema)?;
    }
    if let Some(schema) = &new.expected_output_schema {
        compile_schema("expectedOutputSchema", schema)?;
    }
    let metadata = new
        .metadata
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let row = client
        .query_one(
            &format!(
                "INSERT INTO datasets (project_id, name, description, metadata, input_schema, expected_output_schema)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project_id, name) DO UPDATE SET
                    description = coalesce(EXCLUDED.description, datasets.description),
                    metadata = EXCLUDED.metadata,
                    input_schema = coalesce(EXCLUDED.input_schema, datasets.input_schema),
                    expected_output_schema = coalesce(EXCLUDED.expected_output_schema, datasets.expected_output_schema),
                    updated_at = now()
                 RETURNING {}",
                Dataset::COLUMNS
            ),
            &[
                &project_id,
                &new.name,
                &new.description,
                &metadata,
                &new.input_schema,
                &new.expected_output_schema,
            ],
        )
        .await?;
    Ok(Dataset::from_row(&row))
}

pub async fn get(client: &impl GenericClient, project_id: Uuid, name: &str) -> Result<Dataset, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM datasets WHERE project_id = $1 AND name = $2",
                Dataset::COLUMNS
            ),
            &[&project_id, &name],
        )
        .await?
        .map(|row| Dataset::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("dataset {name:?}")))
}

/// Deletes a dataset and its items; refused while an experiment ran over it (the experiments
/// and their results would go with it).
pub async fn delete(client: &impl GenericClient, project_id: Uuid, name: &str) -> Result<(), ControlError> {
    let dataset = get(client, project_id, name).await?;
    let experiments: i64 = client
        .query_one(
            "SELECT count(*) AS experiments FROM experiments WHERE dataset_id = $1",
            &[&dataset.id],
        )
        .await?
        .get("experiments");
    if experiments > 0 {
        return Err(ControlError::Conflict(format!(
            "dataset {name:?} has {experiments} experiment(s); delete is refused to keep their results"
        )));
    }
    client
        .execute("DELETE FROM datasets WHERE id = $1", &[&dataset.id])
        .await?;
    Ok(())
}

/// A page of the project's datasets, newest first; and how many there are.
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    page: i64,
    limit: i64,
) -> Result<(Vec<Dataset>, i64), ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, count(*) OVER () AS total FROM datasets WHERE project_id = $1
                 ORDER BY created_at DESC, name LIMIT $2 OFFSET $3",
                Dataset::COLUMNS
            ),
            &[&project_id, &limit, &crate::control::offset(page, limit)],
        )
        .await?;
    let total = match rows.first() {
        Some(row) => row.get("total"),
        None => {
            count(
                client,
                "SELECT count(*) AS total FROM datasets WHERE project_id = $1",
                project_id,
            )
            .await?
        }
    };
    Ok((rows.iter().map(Dataset::from_row).collect(), total))
}

/// The `total` a counting statement selects.
async fn count(client: &impl GenericClient, sql: &str, project_id: Uuid) -> Result<i64, ControlError> {
    Ok(client.query_one(sql, &[&project_id]).await?.get("total"))
}

impl DatasetItem {
    /// What [`DatasetItem::from_row`] reads, selected from `dataset_items i JOIN datasets d`.
    pub const COLUMNS: &'static str = "i.id, i.dataset_id, d.name AS dataset_name, i.status, i.input, \
        i.expected_output, i.metadata, i.source_trace_id, i.source_observation_id, i.created_at, i.updated_at";

    pub fn from_row(row: &Row) -> Self {
        DatasetItem {
            id: row.get("id"),
            dataset_id: row.get("dataset_id"),
            dataset_name: row.get("dataset_name"),
            status: row.get("status"),
            input: row.get("input"),
            expected_output: row.get("expected_output"),
            metadata: row.get("metadata"),
            source_trace_id: row.get("source_trace_id"),
            source_observation_id: row.get("source_observation_id"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }
}

/// Creates or replaces an item (by id), after checking it against the dataset's schemas. An id
/// used by another project's item is refused.
pub async fn upsert_item(
    client: &impl GenericClient,
    project_id: Uuid,
    new: &NewItem,
) -> Result<DatasetItem, ControlError> {
    let dataset = get(client, project_id, &new.dataset_name).await?;
    let input = new.input.clone().unwrap_or(Value::Null);
    for (field, schema, value) in [
        ("input", &dataset.input_schema, Some(&input)),
        (
            "expectedOutput",
            &dataset.expected_output_schema,
            new.expected_output.as_ref(),
        ),
    ] {
        let (Some(schema), Some(value)) = (schema, value) else {
            continue;
        };
        let validator = compile_schema(field, schema)?;
        if let Some(error) = validator.iter_errors(value).next() {
            return Err(ControlError::Invalid {
                field,
                message: format!(
                    "does not match the dataset's schema at {}: {error}",
                    if error.instance_path().as_str().is_empty() {
                        "/"
                    } else {
                        error.instance_path().as_str()
                    }
                ),
            });
        }
    }
    let status = new.status.as_deref().unwrap_or("active").to_ascii_lowercase();
    if !matches!(status.as_str(), "active" | "archived") {
        return Err(ControlError::Invalid {
            field: "status",
            message: format!("must be ACTIVE or ARCHIVED, not {status:?}"),
        });
    }
    let id = new.id.clone().unwrap_or_else(|| Uuid::now_v7().to_string());
    if id.is_empty() || id.len() > 255 {
        return Err(ControlError::Invalid {
            field: "id",
            message: "must be 1 to 255 characters".into(),
        });
    }
    let metadata = new
        .metadata
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    // Ids are the project's own (the key is (project_id, id), the project set from the
    // dataset by trigger): an id already in the project is that item, updated.
    client
        .execute(
            "INSERT INTO dataset_items (id, dataset_id, input, expected_output, metadata, source_trace_id, source_observation_id, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (project_id, id) DO UPDATE SET
                input = EXCLUDED.input, expected_output = EXCLUDED.expected_output, metadata = EXCLUDED.metadata,
                source_trace_id = EXCLUDED.source_trace_id, source_observation_id = EXCLUDED.source_observation_id,
                status = EXCLUDED.status, dataset_id = EXCLUDED.dataset_id, updated_at = now()",
            &[
                &id,
                &dataset.id,
                &input,
                &new.expected_output,
                &metadata,
                &new.source_trace_id,
                &new.source_observation_id,
                &status,
            ],
        )
        .await?;
    get_item(client, project_id, &id).await
}

pub async fn get_item(
    client: &impl GenericClient,
    project_id: Uuid,
    id: &str,
) -> Result<DatasetItem, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id WHERE d.project_id = $1 AND i.id = $2",
                DatasetItem::COLUMNS
            ),
            &[&project_id, &id],
        )
        .await?
        .map(|row| DatasetItem::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("dataset item {id:?}")))
}

/// The project's items among `ids` (missing ones are left out), in no particular order.
pub async fn get_items(
    client: &impl GenericClient,
    project_id: Uuid,
    ids: &[String],
) -> Result<Vec<DatasetItem>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id WHERE d.project_id = $1 AND i.id = ANY($2)",
                DatasetItem::COLUMNS
            ),
            &[&project_id, &ids],
        )
        .await?;
    Ok(rows.iter().map(DatasetItem::from_row).collect())
}

/// Filters of an item listing.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub dataset_name: Option<String>,
    pub source_trace_id: Option<String>,
    pub source_observation_id: Option<String>,
}

/// A page of items, oldest first; and how many match.
pub async fn list_items(
    client: &impl GenericClient,
    project_id: Uuid,
    filter: &ItemFilter,
    page: i64,
    limit: i64,
) -> Result<(Vec<DatasetItem>, i64), ControlError> {
    let condition = "d.project_id = $1 AND ($2::text IS NULL OR d.name = $2) \
         AND ($3::text IS NULL OR i.source_trace_id = $3) AND ($4::text IS NULL OR i.source_observation_id = $4)";
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id WHERE {condition}
                 ORDER BY i.created_at, i.id LIMIT $5 OFFSET $6",
                DatasetItem::COLUMNS
            ),
            &[
                &project_id,
                &filter.dataset_name,
                &filter.source_trace_id,
                &filter.source_observation_id,
                &limit,
                &crate::control::offset(page, limit),
            ],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) AS total FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id WHERE {condition}"
            ),
            &[&project_id, &filter.dataset_name, &filter.source_trace_id, &filter.source_observation_id],
        )
        .await?
        .get("total");
    Ok((rows.iter().map(DatasetItem::from_row).collect(), total))
}

/// Deletes an item; refused while an experiment refers to it (archive it instead).
pub async fn delete_item(
    client: &impl GenericClient,
    project_id: Uuid,
    id: &str,
) -> Result<DatasetItem, ControlError> {
    let item = get_item(client, project_id, id).await?;
    let used: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM experiment_items WHERE project_id = $2 AND dataset_item_id = $1) AS used",
            &[&id, &project_id],
        )
        .await?
        .get("used");
    if used {
        return Err(ControlError::Conflict(format!(
            "dataset item {id:?} is part of an experiment; archive it (status ARCHIVED) instead"
        )));
    }
    client
        .execute(
            "DELETE FROM dataset_items WHERE project_id = $2 AND id = $1",
            &[&id, &project_id],
        )
        .await?;
    Ok(item)
}

/// Imports JSONL (one item object per line: `input`, `expected_output`/`expectedOutput`,
/// `metadata`, `id`) into a dataset; the number imported, or the first bad line.
pub async fn import_jsonl(
    client: &impl GenericClient,
    project_id: Uuid,
    dataset_name: &str,
    jsonl: &str,
) -> Result<usize, ControlError> {
    let mut imported = 0;
    for (number, line) in jsonl.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |message: String| ControlError::Invalid {
            field: "jsonl",
            message: format!("line {}: {message}", number + 1),
        };
        let value: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected an object".into()))?;
        let get = |keys: &[&str]| keys.iter().find_map(|k| object.get(*k).cloned());
        let item = NewItem {
            id: get(&["id"]).and_then(|v| v.as_str().map(str::to_owned)),
            dataset_name: dataset_name.to_owned(),
            input: get(&["input"]),
            expected_output: get(&["expected_output", "expectedOutput"]),
            metadata: get(&["metadata"]),
            ..NewItem::default()
        };
        upsert_item(client, project_id, &item)
            .await
            .map_err(|e| bad(e.to_string()))?;
        imported += 1;
    }
    Ok(imported)
}
