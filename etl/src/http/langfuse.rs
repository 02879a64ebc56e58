//! Langfuse's control-plane routes with Langfuse's request and response shapes and status
//! codes, as its SDKs call them (`../shared/reference/langfuse-api.md`). No logic of their own:
//! each handler translates and calls `control`. A project API key names the project; reads need
//! the `read` scope, writes `manage`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::langfuse::{self as langfuse_reads, ObservationsV2Params};
use crate::control::datasets::{self, Dataset, DatasetItem, ItemFilter, NewDataset, NewItem};
use crate::control::experiments::{self, NewRunItem};
use crate::control::prompts::{self, NewPromptVersion, PromptFilter, PromptType, PromptVersion, Selector};
use crate::http::auth::{Caller, Need};
use crate::http::error::ApiError;
use crate::http::request::{Page, PromptQuery, bad, json_body, paged};
use crate::http::server::AppState;

/// The project a Langfuse route acts on: the API key's, after checking it may do `need`.
async fn project(state: &AppState, caller: &Caller, need: Need) -> Result<Uuid, ApiError> {
    let Caller::Key(key) = caller else {
        return Err(ApiError::bad_request(
            "project_key_required",
            "Langfuse routes act on one project: authenticate with that project's API key (Basic public:secret)",
        ));
    };
    caller.require(state, key.project_id, need).await?;
    Ok(key.project_id)
}

pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let database = match state.postgres.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if database { "OK" } else { "database unavailable" }, "version": env!("CARGO_PKG_VERSION") });
    (status, Json(body)).into_response()
}

pub async fn projects(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let Caller::Key(key) = &caller else {
        return Err(ApiError::bad_request(
            "project_key_required",
            "use a project API key",
        ));
    };
    let client = state.postgres.get().await?;
    let row = client
        .query_one(
            "SELECT p.id, p.name, o.id, o.name, p.retention_days FROM projects p
             JOIN organizations o ON o.id = p.organization_id WHERE p.id = $1",
            &[&key.project_id],
        )
        .await
        .map_err(ApiError::unavailable)?;
    let mut project = json!({
        "id": row.get::<_, Uuid>(0), "name": row.get::<_, String>(1),
        "organization": { "id": row.get::<_, Uuid>(2), "name": row.get::<_, String>(3) },
        "metadata": {},
    });
    if let Some(days) = row.get::<_, Option<i32>>(4) {
        project["retentionDays"] = json!(days);
    }
    Ok(Json(json!({ "data": [project] })))
}

fn prompt_json(version: &PromptVersion) -> Value {
    json!({
        "id": version.id, "createdAt": version.created_at, "updatedAt": version.updated_at,
        "projectId": version.project_id, "createdBy": "API", "name": version.name, "version": version.version,
        "type": version.kind, "prompt": version.prompt, "config": version.config, "labels": version.labels,
        "tags": version.tags, "commitMessage": version.commit_message, "resolutionGraph": null,
        "isActive": version.labels.iter().any(|l| l == prompts::PRODUCTION),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePrompt {
    name: String,
    prompt: Value,
    #[serde(rename = "type")]
    kind: Option<String>,
    config: Option<Value>,
    labels: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    commit_message: Option<String>,
}

pub async fn create_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let request: CreatePrompt = json_body(&bytes)?;
    let kind = match request.kind.as_deref() {
        None | Some("text") => PromptType::Text,
        Some("chat") => PromptType::Chat,
        Some(other) => return Err(bad("type", format!("must be text or chat, not {other:?}"))),
    };
    let new = NewPromptVersion {
        name: request.name,
        kind,
        prompt: request.prompt,
        config: request
            .config
            .filter(|c| !c.is_null())
            .unwrap_or_else(|| json!({})),
        labels: request.labels.unwrap_or_default(),
        tags: request.tags.unwrap_or_default(),
        commit_message: request.commit_message,
    };
    let mut client = state.postgres.get().await?;
    let version = prompts::create_version(&mut client, project_id, &new).await?;
    Ok((StatusCode::CREATED, Json(prompt_json(&version))).into_response())
}

pub async fn get_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<PromptQuery>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Read).await?;
    let selector = query.selector()?;
    let client = state.postgres.get().await?;
    let version = prompts::get(&**client, project_id, &name, &selector)
        .await
        .map_err(|error| match error {
            crate::control::ControlError::NotFound(_) => {
                let which = match &selector {
                    Selector::Version(v) => format!("version {v}"),
                    Selector::Label(l) => format!("label '{l}'"),
                };
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "LangfuseNotFoundError",
                    format!("Prompt not found: '{name}' with {which}"),
                )
            }
            other => other.into(),
        })?;
    Ok(Json(prompt_json(&version)))
}

#[derive(Deserialize)]
pub struct PromptListQuery {
    name: Option<String>,
    label: Option<String>,
    tag: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

pub async fn list_prompts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<PromptListQuery>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Read).await?;
    let (page, limit) = Page {
        page: query.page,
        limit: query.limit,
    }
    .resolve()?;
    let filter = PromptFilter {
        name: query.name,
        label: query.label,
        tag: query.tag,
    };
    let client = state.postgres.get().await?;
    let (prompts, total) = prompts::list(&**client, project_id, &filter, page, limit).await?;
    let data = prompts
        .iter()
        .map(|p| {
            json!({"name": p.name, "type": p.kind, "versions": p.versions, "labels": p.labels, "tags": p.tags,
                   "lastUpdatedAt": p.last_updated_at, "lastConfig": p.last_config})
        })
        .collect();
    Ok(paged(data, page, limit, total))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewLabels {
    new_labels: Vec<String>,
}

pub async fn set_prompt_labels(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((name, version)): Path<(String, i32)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let request: NewLabels = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let version = prompts::set_labels(&mut client, project_id, &name, version, &request.new_labels).await?;
    Ok(Json(prompt_json(&version)))
}

pub async fn delete_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<PromptQuery>,
) -> Result<StatusCode, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let selector = query.given()?;
    let client = state.postgres.get().await?;
    prompts::delete(&**client, project_id, &name, selector.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn dataset_json(dataset: &Dataset) -> Value {
    json!({
        "id": dataset.id, "name": dataset.name, "description": dataset.description, "metadata": dataset.metadata,
        "inputSchema": dataset.input_schema, "expectedOutputSchema": dataset.expected_output_schema,
        "projectId": dataset.project_id, "createdAt": dataset.created_at, "updatedAt": dataset.updated_at,
    })
}

fn item_json(item: &DatasetItem) -> Value {
    json!({
        "id": item.id, "status": item.status.to_ascii_uppercase(), "input": item.input,
        "expectedOutput": item.expected_output, "metadata": item.metadata, "sourceTraceId": item.source_trace_id,
        "sourceObservationId": item.source_observation_id, "datasetId": item.dataset_id,
        "datasetName": item.dataset_name, "createdAt": item.created_at, "updatedAt": item.updated_at,
        // Langfuse resolves media uploads into these; AgentTrace stores media inline.
        "mediaReferences": [],
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDataset {
    name: String,
    description: Option<String>,
    metadata: Option<Value>,
    input_schema: Option<Value>,
    expected_output_schema: Option<Value>,
}

pub async fn create_dataset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let request: CreateDataset = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let dataset = datasets::upsert(
        &**client,
        project_id,
        &NewDataset {
            name: request.name,
            description: request.description,
            metadata: request.metadata,
            input_schema: request.input_schema,
            expected_output_schema: request.expected_output_schema,
        },
    )
    .await?;
    Ok(Json(dataset_json(&dataset)))
}

pub async fn get_dataset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Read).await?;
    let client = state.postgres.get().await?;
    Ok(Json(dataset_json(
        &datasets::get(&**client, project_id, &name).await?,
    )))
}

pub async fn list_datasets(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Read).await?;
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = datasets::list(&**client, project_id, page, limit).await?;
    Ok(paged(
        found.iter().map(dataset_json).collect(),
        page,
        limit,
        total,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateItem {
    dataset_name: String,
    id: Option<String>,
    input: Option<Value>,
    expected_output: Option<Value>,
    metadata: Option<Value>,
    source_trace_id: Option<String>,
    source_observation_id: Option<String>,
    status: Option<String>,
}

pub async fn create_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let request: CreateItem = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let item = datasets::upsert_item(
        &**client,
        project_id,
        &NewItem {
            id: request.id,
            dataset_name: request.dataset_name,
            input: request.input,
            expected_output: request.expected_output,
            metadata: request.metadata,
            source_trace_id: request.source_trace_id,
            source_observation_id: request.source_observation_id,
            status: request.status,
        },
    )
    .await?;
    Ok(Json(item_json(&item)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemQuery {
    dataset_name: Option<String>,
    source_trace_id: Option<String>,
    source_observation_id: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

pub async fn list_items(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<ItemQuery>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Read).await?;
    let (page, limit) = Page {
        page: query.page,
        limit: query.limit,
    }
    .resolve()?;
    let filter = ItemFilter {
        dataset_name: query.dataset_name,
        source_trace_id: query.source_trace_id,
        source_observation_id: query.source_observation_id,
    };
    let client = state.postgres.get().await?;
    let (items, total) = datasets::list_items(&**client, project_id, &filter, page, limit).await?;
    Ok(paged(items.iter().map(item_json).collect(), page, limit, total))
}

pub async fn get_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Read).await?;
    let client = state.postgres.get().await?;
    Ok(Json(item_json(
        &datasets::get_item(&**client, project_id, &id).await?,
    )))
}

pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let client = state.postgres.get().await?;
    datasets::delete_item(&**client, project_id, &id).await?;
    Ok(Json(json!({ "message": "Dataset item successfully deleted" })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRunItem {
    run_name: String,
    run_description: Option<String>,
    metadata: Option<Value>,
    dataset_item_id: String,
    observation_id: Option<String>,
    trace_id: Option<String>,
    /// Accepted as Langfuse's SDKs send them; items here are not versioned and a run item is
    /// stamped when it is recorded.
    #[serde(rename = "datasetVersion")]
    _dataset_version: Option<Value>,
    #[serde(rename = "createdAt")]
    _created_at: Option<Value>,
}

pub async fn create_run_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project(&state, &caller, Need::Write).await?;
    let request: CreateRunItem = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let item = experiments::record_run_item(
        &**client,
        project_id,
        &NewRunItem {
            run_name: request.run_name,
            run_description: request.run_description,
            metadata: request.metadata,
            dataset_item_id: request.dataset_item_id,
            trace_id: request.trace_id,
            observation_id: request.observation_id,
        },
    )
    .await?;
    Ok(Json(json!({
        "id": item.id, "datasetRunId": item.experiment_id, "datasetRunName": item.experiment_name,
        "datasetItemId": item.dataset_item_id, "traceId": item.trace_id, "observationId": item.observation_id,
        "createdAt": item.created_at, "updatedAt": item.created_at,
    })))
}

/// `GET /api/public/v2/observations`: a page of observations in Langfuse's v2 shape.
pub async fn observations_v2(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<ObservationsV2Params>,
) -> Result<Json<Value>, ApiError> {
    let project = project(&state, &caller, Need::Read).await?;
    Ok(Json(
        langfuse_reads::observations_v2(&state.clickhouse, project, &params).await?,
    ))
}

#[derive(Deserialize)]
pub struct MetricsV2Params {
    query: Option<String>,
}

/// `GET /api/public/v2/metrics?query=`: Langfuse's metrics query over the read layout.
pub async fn metrics_v2(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<MetricsV2Params>,
) -> Result<Json<Value>, ApiError> {
    let project = project(&state, &caller, Need::Read).await?;
    let query = params
        .query
        .ok_or_else(|| bad("query", "required: the metrics query as URL-encoded JSON"))?;
    Ok(Json(
        langfuse_reads::metrics_v2(&state.clickhouse, project, &query).await?,
    ))
}
