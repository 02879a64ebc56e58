//! Experiments (Langfuse's dataset runs): named runs of a dataset. Their traces carry the
//! experiment's id and the dataset item they ran; run items record which trace ran which item.
//! The rollup job compares experiments of one dataset item by item.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, time};

/// The project's experiment named `name` over `dataset_id`, created when missing.
pub async fn upsert(
    client: &impl GenericClient,
    project_id: Uuid,
    dataset_id: Uuid,
    name: &str,
) -> Result<Uuid, ControlError> {
    Ok(client
        .query_one(
            "INSERT INTO experiments (project_id, dataset_id, name) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            &[&project_id, &dataset_id, &name],
        )
        .await?
        .get("id"))
}

/// A run item to record (Langfuse's `POST /api/public/dataset-run-items`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRunItem {
    pub run_name: String,
    pub run_description: Option<String>,
    pub metadata: Option<Value>,
    pub dataset_item_id: String,
    pub trace_id: Option<String>,
    pub observation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunItem {
    pub id: Uuid,
    pub experiment_id: Uuid,
    pub experiment_name: String,
    pub dataset_item_id: String,
    pub trace_id: String,
    #[schema(required = true)]
    pub observation_id: Option<String>,
    pub created_at: String,
}

impl RunItem {
    /// What [`RunItem::from_row`] reads, selected from `experiment_items i JOIN experiments e`.
    pub const COLUMNS: &'static str = "i.id, i.experiment_id, e.name AS experiment_name, i.dataset_item_id, \
        i.trace_id, i.observation_id, i.created_at";

    pub fn from_row(row: &Row) -> Self {
        RunItem {
            id: row.get("id"),
            experiment_id: row.get("experiment_id"),
            experiment_name: row.get("experiment_name"),
            dataset_item_id: row.get("dataset_item_id"),
            trace_id: row.get("trace_id"),
            observation_id: row.get("observation_id"),
            created_at: time(row, "created_at", Precision::Millis),
        }
    }
}

/// Records that a trace ran a dataset item in the run `run_name` (created on first use, on the
/// item's dataset). Recording the same trace and item again returns the first record.
pub async fn record_run_item(
    client: &impl GenericClient,
    project_id: Uuid,
    new: &NewRunItem,
) -> Result<RunItem, ControlError> {
    let trace_id = new.trace_id.clone().ok_or_else(|| ControlError::Invalid {
        field: "traceId",
        message: "required: the trace that ran the item".into(),
    })?;
    if new.run_name.is_empty() || new.run_name.len() > 200 {
        return Err(ControlError::Invalid {
            field: "runName",
            message: "must be 1 to 200 characters".into(),
        });
    }
    let dataset_id: Uuid = client
        .query_opt(
            "SELECT d.id FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id WHERE d.project_id = $1 AND i.id = $2",
            &[&project_id, &new.dataset_item_id],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("dataset item {:?}", new.dataset_item_id)))?
        .get("id");
    let metadata = new
        .metadata
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let experiment = client
        .query_one(
            "INSERT INTO experiments (project_id, dataset_id, name, description, metadata) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (project_id, name) DO UPDATE SET
                description = coalesce(EXCLUDED.description, experiments.description), updated_at = now()
             RETURNING id, dataset_id",
            &[&project_id, &dataset_id, &new.run_name, &new.run_description, &metadata],
        )
        .await?;
    let (experiment_id, run_dataset): (Uuid, Uuid) = (experiment.get("id"), experiment.get("dataset_id"));
    if run_dataset != dataset_id {
        return Err(ControlError::Conflict(format!(
            "run {:?} belongs to another dataset than item {:?}",
            new.run_name, new.dataset_item_id
        )));
    }
    let row = client
        .query_one(
            &format!(
                "WITH inserted AS (
                    INSERT INTO experiment_items (experiment_id, dataset_item_id, trace_id, observation_id)
                    VALUES ($1, $2, $3, $4) ON CONFLICT (experiment_id, dataset_item_id, trace_id) DO NOTHING
                    RETURNING *),
                 i AS (
                    SELECT * FROM inserted
                    UNION ALL
                    SELECT * FROM experiment_items WHERE experiment_id = $1 AND dataset_item_id = $2 AND trace_id = $3
                    LIMIT 1)
                 SELECT {} FROM i JOIN experiments e ON e.id = i.experiment_id",
                RunItem::COLUMNS
            ),
            &[&experiment_id, &new.dataset_item_id, &trace_id, &new.observation_id],
        )
        .await?;
    Ok(RunItem::from_row(&row))
}

/// Links a trace that says it ran `item_id` in the experiment the client calls `external_id`
/// (the Langfuse SDK's `langfuse.experiment.*` attributes): the experiment is created on the
/// item's dataset on first sight. Nothing happens when the item is not the project's.
pub async fn link_trace(
    client: &impl GenericClient,
    project_id: Uuid,
    external_id: &str,
    name: Option<&str>,
    item_id: &str,
    trace_id: &str,
) -> Result<(), ControlError> {
    let Some(dataset) = client
        .query_opt(
            "SELECT d.id FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id WHERE d.project_id = $1 AND i.id = $2",
            &[&project_id, &item_id],
        )
        .await?
    else {
        return Ok(());
    };
    let dataset_id: Uuid = dataset.get("id");
    let name = name.unwrap_or(external_id);
    let experiment: Uuid = client
        .query_one(
            "INSERT INTO experiments (project_id, dataset_id, name, external_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, external_id) DO UPDATE SET updated_at = now() RETURNING id",
            &[
                &project_id,
                &dataset_id,
                &format!("{name} ({external_id})"),
                &external_id,
            ],
        )
        .await?
        .get("id");
    client
        .execute(
            "INSERT INTO experiment_items (experiment_id, dataset_item_id, trace_id) VALUES ($1, $2, $3)
             ON CONFLICT (experiment_id, dataset_item_id, trace_id) DO NOTHING",
            &[&experiment, &item_id, &trace_id],
        )
        .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub id: Uuid,
    /// What traces carry as their experiment id (a client's own id, else `id`).
    pub trace_experiment_id: String,
    pub dataset_id: Uuid,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub metadata: Value,
    pub items: i64,
    pub created_at: String,
}

impl Experiment {
    /// What [`Experiment::from_row`] reads, selected from `experiments e`.
    pub const COLUMNS: &'static str = "e.id, coalesce(e.external_id, e.id::text) AS trace_experiment_id, \
        e.dataset_id, e.name, e.description, e.metadata, \
        (SELECT count(*) FROM experiment_items i WHERE i.experiment_id = e.id) AS items, e.created_at";

    pub fn from_row(row: &Row) -> Self {
        Experiment {
            id: row.get("id"),
            trace_experiment_id: row.get("trace_experiment_id"),
            dataset_id: row.get("dataset_id"),
            name: row.get("name"),
            description: row.get("description"),
            metadata: row.get("metadata"),
            items: row.get("items"),
            created_at: time(row, "created_at", Precision::Millis),
        }
    }
}

/// The project's experiments, newest first, with how many run items each has.
pub async fn list(client: &impl GenericClient, project_id: Uuid) -> Result<Vec<Experiment>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM experiments e WHERE e.project_id = $1 ORDER BY e.created_at DESC, e.name",
                Experiment::COLUMNS
            ),
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(Experiment::from_row).collect())
}

/// One experiment of the project and its run items (which trace ran which dataset item).
pub async fn get(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
) -> Result<(Experiment, Vec<RunItem>), ControlError> {
    let experiment = client
        .query_opt(
            &format!(
                "SELECT {} FROM experiments e WHERE e.project_id = $1 AND e.id = $2",
                Experiment::COLUMNS
            ),
            &[&project_id, &id],
        )
        .await?
        .map(|row| Experiment::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("experiment {id}")))?;
    let items = client
        .query(
            &format!(
                "SELECT {} FROM experiment_items i JOIN experiments e ON e.id = i.experiment_id
                 WHERE i.experiment_id = $1 ORDER BY i.created_at, i.id",
                RunItem::COLUMNS
            ),
            &[&id],
        )
        .await?
        .iter()
        .map(RunItem::from_row)
        .collect();
    Ok((experiment, items))
}
