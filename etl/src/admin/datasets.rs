//! Datasets and their items: inputs with the outputs expected of them, which experiments run
//! and the `exact_match` / `fuzzy_match` evaluators compare with.

use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::admin::AdminError;

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetItem {
    pub id: Uuid,
    pub input: Value,
    pub expected_output: Option<Value>,
}

/// The project's dataset named `name`, created when missing (the description is updated).
pub async fn upsert(
    client: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> Result<Uuid, AdminError> {
    Ok(client
        .query_one(
            "INSERT INTO datasets (project_id, name, description) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO UPDATE SET description = EXCLUDED.description RETURNING id",
            &[&project_id, &name, &description],
        )
        .await?
        .get(0))
}

/// A dataset's items, oldest first.
pub async fn items(client: &impl GenericClient, dataset_id: Uuid) -> Result<Vec<DatasetItem>, AdminError> {
    let rows = client
        .query(
            "SELECT id, input, expected_output FROM dataset_items WHERE dataset_id = $1 ORDER BY created_at, id",
            &[&dataset_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| DatasetItem {
            id: row.get(0),
            input: row.get(1),
            expected_output: row.get(2),
        })
        .collect())
}

pub async fn add_item(
    client: &impl GenericClient,
    dataset_id: Uuid,
    input: &Value,
    expected_output: Option<&Value>,
) -> Result<DatasetItem, AdminError> {
    let id = client
        .query_one(
            "INSERT INTO dataset_items (dataset_id, input, expected_output) VALUES ($1, $2, $3) RETURNING id",
            &[&dataset_id, input, &expected_output],
        )
        .await?
        .get(0);
    Ok(DatasetItem {
        id,
        input: input.clone(),
        expected_output: expected_output.cloned(),
    })
}
