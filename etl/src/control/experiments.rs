//! Experiments (Langfuse's dataset runs): named runs of a dataset. Their traces carry the
//! experiment's id and the dataset item they ran; run items record which trace ran which item.
//! The rollup job compares experiments of one dataset item by item.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::control::ControlError;

const TIME: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

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
        .get(0))
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
        .get(0);
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
    let (experiment_id, run_dataset): (Uuid, Uuid) = (experiment.get(0), experiment.get(1));
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
                    RETURNING id, observation_id, created_at)
                 SELECT id, observation_id, to_char(created_at AT TIME ZONE 'UTC', {TIME}) FROM inserted
                 UNION ALL
                 SELECT id, observation_id, to_char(created_at AT TIME ZONE 'UTC', {TIME}) FROM experiment_items
                 WHERE experiment_id = $1 AND dataset_item_id = $2 AND trace_id = $3
                 LIMIT 1"
            ),
            &[&experiment_id, &new.dataset_item_id, &trace_id, &new.observation_id],
        )
        .await?;
    Ok(RunItem {
        id: row.get(0),
        experiment_id,
        experiment_name: new.run_name.clone(),
        dataset_item_id: new.dataset_item_id.clone(),
        trace_id,
        observation_id: row.get(1),
        created_at: row.get(2),
    })
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
    let dataset_id: Uuid = dataset.get(0);
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
        .get(0);
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

fn experiment_columns() -> String {
    format!(
        "e.id, coalesce(e.external_id, e.id::text), e.dataset_id, e.name, e.description, e.metadata,
         (SELECT count(*) FROM experiment_items i WHERE i.experiment_id = e.id),
         to_char(e.created_at AT TIME ZONE 'UTC', {TIME})"
    )
}

fn experiment_from_row(row: &tokio_postgres::Row) -> Experiment {
    Experiment {
        id: row.get(0),
        trace_experiment_id: row.get(1),
        dataset_id: row.get(2),
        name: row.get(3),
        description: row.get(4),
        metadata: row.get(5),
        items: row.get(6),
        created_at: row.get(7),
    }
}

/// The project's experiments, newest first, with how many run items each has.
pub async fn list(client: &impl GenericClient, project_id: Uuid) -> Result<Vec<Experiment>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM experiments e WHERE e.project_id = $1 ORDER BY e.created_at DESC, e.name",
                experiment_columns()
            ),
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(experiment_from_row).collect())
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
                experiment_columns()
            ),
            &[&project_id, &id],
        )
        .await?
        .map(|row| experiment_from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("experiment {id}")))?;
    let items = client
        .query(
            &format!(
                "SELECT id, dataset_item_id, trace_id, observation_id, to_char(created_at AT TIME ZONE 'UTC', {TIME})
                 FROM experiment_items WHERE experiment_id = $1 ORDER BY created_at, id"
            ),
            &[&id],
        )
        .await?
        .iter()
        .map(|row| RunItem {
            id: row.get(0),
            experiment_id: id,
            experiment_name: experiment.name.clone(),
            dataset_item_id: row.get(1),
            trace_id: row.get(2),
            observation_id: row.get(3),
            created_at: row.get(4),
        })
        .collect();
    Ok((experiment, items))
}
