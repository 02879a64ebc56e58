//! A project's experiments (`/v1/projects/{project}/experiments`): runs of a dataset, their
//! items, and two runs compared.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::experiments::{Run, compare, traced_runs};
use crate::control::datasets::{self, DatasetItem};
use crate::control::experiments::{self, Experiment, NewRunItem, RunItem};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::request::{Page, json_body, page_of};
use crate::http::server::AppState;

/// The `{id}` of an experiment's route.
#[derive(Deserialize)]
pub struct ExperimentPath {
    id: Uuid,
}

/// `?a=&b=`: the two experiments to compare.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    a: Uuid,
    b: Uuid,
}

/// That a trace ran a dataset item in the run `run_name`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunItemBody {
    run_name: String,
    run_description: Option<String>,
    metadata: Option<Value>,
    dataset_item_id: String,
    trace_id: String,
    observation_id: Option<String>,
}

pub async fn list_experiments(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(experiments::list(&**client, project.id).await?, &page)
}

/// An experiment and its run items.
pub async fn get_experiment(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(ExperimentPath { id }): Path<ExperimentPath>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    let (experiment, items) = experiments::get(&**client, project.id, id).await?;
    Ok(Json(json!({ "experiment": experiment, "items": items })))
}

/// Two experiments side by side: per score each one's mean and the paired difference (B − A)
/// with its bootstrap 95% interval; per dataset item its input, expected output and scores.
pub async fn compare_experiments(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<CompareQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    let client = state.postgres.get().await?;
    let (a, a_items) = experiments::get(&**client, project, query.a).await?;
    let (b, b_items) = experiments::get(&**client, project, query.b).await?;
    let a_runs = runs(&state, project, &a, &a_items).await?;
    let b_runs = runs(&state, project, &b, &b_items).await?;
    let (scores, items) = compare(&state.clickhouse, project, &a_runs, &b_runs).await?;
    let ids: Vec<String> = items.iter().map(|item| item.dataset_item_id.clone()).collect();
    let stored: HashMap<String, DatasetItem> = datasets::get_items(&**client, project, &ids)
        .await?
        .into_iter()
        .map(|item| (item.id.clone(), item))
        .collect();
    let items: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let found = stored.get(&item.dataset_item_id);
            let mut row = json!(item);
            row["input"] = found.map_or(Value::Null, |f| f.input.clone());
            row["expected_output"] = found
                .and_then(|f| f.expected_output.clone())
                .unwrap_or(Value::Null);
            row
        })
        .collect();
    Ok(Json(json!({ "a": a, "b": b, "scores": scores, "items": items })))
}

/// An experiment's runs: the run items recorded in PostgreSQL, and the traces that name the
/// experiment themselves.
async fn runs(
    state: &AppState,
    project: Uuid,
    experiment: &Experiment,
    items: &[RunItem],
) -> Result<Vec<Run>, ApiError> {
    let mut runs = traced_runs(&state.clickhouse, project, &experiment.trace_experiment_id).await?;
    runs.retain(|run| !items.iter().any(|item| item.trace_id == run.trace_id));
    runs.extend(items.iter().map(|item| Run {
        dataset_item_id: item.dataset_item_id.clone(),
        trace_id: item.trace_id.clone(),
    }));
    Ok(runs)
}

/// Records that a trace ran a dataset item in the run `run_name` (created on first use, on the
/// item's dataset).
pub async fn record_run_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: RunItemBody = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let item = experiments::record_run_item(
        &**client,
        project.id,
        &NewRunItem {
            run_name: request.run_name,
            run_description: request.run_description,
            metadata: request.metadata,
            dataset_item_id: request.dataset_item_id,
            trace_id: Some(request.trace_id),
            observation_id: request.observation_id,
        },
    )
    .await?;
    Ok(Json(json!(item)))
}
