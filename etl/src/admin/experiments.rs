//! Experiments: named runs of a dataset. Their traces carry `experiment_id` and
//! `dataset_item_id`; the rollup job compares experiments of one dataset item by item.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::admin::AdminError;

/// The project's experiment named `name` over `dataset_id`, created when missing.
pub async fn upsert(
    client: &impl GenericClient,
    project_id: Uuid,
    dataset_id: Uuid,
    name: &str,
) -> Result<Uuid, AdminError> {
    Ok(client
        .query_one(
            "INSERT INTO experiments (project_id, dataset_id, name) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            &[&project_id, &dataset_id, &name],
        )
        .await?
        .get(0))
}
