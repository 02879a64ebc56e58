//! A project's experiments (`/v1/projects/{project}/experiments`): runs of a dataset, their
//! items, and two runs compared.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::analytics::experiments::{ItemComparison, Run, ScoreComparison, compare, traced_runs};
use crate::control::datasets::{self, DatasetItem};
use crate::control::experiments::{self, Experiment, NewRunItem, RunItem};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, page_of};
use crate::http::server::AppState;

/// The `{id}` of an experiment's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExperimentPath {
    id: Uuid,
}

/// `?a=&b=`: the two experiments to compare.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// The baseline experiment's id.
    a: Uuid,
    /// The candidate experiment's id.
    b: Uuid,
}

/// That a trace ran a dataset item in the run `run_name`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RunItemBody {
    run_name: String,
    run_description: Option<String>,
    metadata: Option<Value>,
    dataset_item_id: String,
    trace_id: String,
    observation_id: Option<String>,
}

/// An experiment and its run items.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExperimentRuns {
    experiment: Experiment,
    items: Vec<RunItem>,
}

/// Two experiments compared: per score and per dataset item.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Comparison {
    a: Experiment,
    b: Experiment,
    scores: Vec<ScoreComparison>,
    items: Vec<ComparedItem>,
}

/// A dataset item both experiments may have run, with its input and expected output.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ComparedItem {
    #[serde(flatten)]
    comparison: ItemComparison,
    input: Value,
    expected_output: Value,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/experiments",
    summary = "List experiments",
    description = "Paged like datasets. With their run-item counts. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Experiment>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_experiments(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Experiment>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(experiments::list(&**client, project.id).await?, &page)
}

/// An experiment and its run items.
#[utoipa::path(
    get,
    path = "/v1/projects/{project}/experiments/{id}",
    summary = "Get an experiment",
    description = "`{experiment, items}`: the run and which trace ran which dataset item. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ExperimentPath),
    responses(
        (status = 200, description = "OK", body = ExperimentRuns),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_experiment(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(ExperimentPath { id }): Path<ExperimentPath>,
) -> Result<Json<ExperimentRuns>, ApiError> {
    let client = state.postgres.get().await?;
    let (experiment, items) = experiments::get(&**client, project.id, id).await?;
    Ok(Json(ExperimentRuns { experiment, items }))
}

/// Two experiments side by side: per score each one's mean and the paired difference (B − A)
/// with its bootstrap 95% interval; per dataset item its input, expected output and scores.
#[utoipa::path(
    get,
    path = "/v1/projects/{project}/experiments/compare",
    summary = "Compare two experiments",
    description = "`{a, b, scores, items}`: per score each experiment's mean and the paired difference B − A over the dataset items both ran, with a bootstrap 95% confidence interval; per item its input, expected output, traces and scores in each. Viewer role, or `read` scope.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), CompareQuery),
    responses(
        (status = 200, description = "OK", body = Comparison),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn compare_experiments(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<CompareQuery>,
) -> Result<Json<Comparison>, ApiError> {
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
    let items = items
        .into_iter()
        .map(|comparison| {
            let found = stored.get(&comparison.dataset_item_id);
            ComparedItem {
                input: found.map_or(Value::Null, |f| f.input.clone()),
                expected_output: found
                    .and_then(|f| f.expected_output.clone())
                    .unwrap_or(Value::Null),
                comparison,
            }
        })
        .collect();
    Ok(Json(Comparison { a, b, scores, items }))
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
#[utoipa::path(
    post,
    path = "/v1/projects/{project}/run-items",
    summary = "Record a run item",
    description = "`{run_name, run_description, metadata, dataset_item_id, trace_id, observation_id}`: the run is created on first use, on the item's dataset; 409 when the run belongs to another dataset. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = RunItemBody,
    responses(
        (status = 200, description = "OK", body = RunItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn record_run_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<RunItem>, ApiError> {
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
    Ok(Json(item))
}
