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

use crate::analytics::langfuse::{self as langfuse_reads, ObservationsV2Params};
use crate::control::datasets::{self, Dataset, DatasetItem, ItemFilter, NewDataset, NewItem};
use crate::control::experiments::{self, NewRunItem};
use crate::control::projects;
use crate::control::prompts::{self, NewPromptVersion, PromptFilter, PromptType, PromptVersion, Selector};
use crate::http::auth::{Caller, KeyProject, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, PromptQuery, bad, json_body, paged};
use crate::http::server::AppState;

#[utoipa::path(
    get,
    path = "/api/public/health",
    summary = "Liveness of the control plane (Langfuse's shape)",
    description = "Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    responses(
        (status = 200, description = "{status: OK, version}"),
        (status = 503, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
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

/// The calling key's project. Any key may ask which project it belongs to (Langfuse's SDKs
/// check their credentials this way), whatever its scopes.
#[utoipa::path(
    get,
    path = "/api/public/projects",
    summary = "The key's project",
    description = "The project the API key belongs to, with its organization. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn projects(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let Caller::Key(key) = &caller else {
        return Err(ApiError::bad_request(
            "project_key_required",
            "use a project API key",
        ));
    };
    let client = state.postgres.get().await?;
    let (project, organization_name) = projects::project_with_organization(&**client, key.project_id).await?;
    let mut body = json!({
        "id": project.id, "name": project.name,
        "organization": { "id": project.organization_id, "name": organization_name },
        "metadata": {},
    });
    if let Some(days) = project.retention_days {
        body["retentionDays"] = json!(days);
    }
    Ok(Json(json!({ "data": [body] })))
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

#[derive(Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/api/public/v2/prompts",
    summary = "Create a prompt version",
    description = "Text or chat; the next version number (gap-free under concurrent creates); labels move onto it; `latest` is reserved. 201. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreatePrompt,
    responses(
        (status = 201, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_prompt(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let project_id = project.id;
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

#[utoipa::path(
    get,
    path = "/api/public/v2/prompts/{name}",
    summary = "Get a prompt version",
    description = "By `version` or `label` (not both); neither means label `production`. Folder names are URL-encoded. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(PromptQuery),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_prompt(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(name): Path<String>,
    Query(query): Query<PromptQuery>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromptListQuery {
    name: Option<String>,
    label: Option<String>,
    tag: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/public/v2/prompts",
    summary = "List prompts",
    description = "Names with versions and labels; filters name, label, tag; page and limit. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(PromptListQuery),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_prompts(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(query): Query<PromptListQuery>,
) -> Result<Json<Paged<Value>>, ApiError> {
    let project_id = project.id;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewLabels {
    new_labels: Vec<String>,
}

#[utoipa::path(
    patch,
    path = "/api/public/v2/prompts/{name}/versions/{version}",
    summary = "Move labels onto a version",
    description = "`{newLabels}`: each label leaves the version that had it, in one transaction. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = NewLabels,
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn set_prompt_labels(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path((name, version)): Path<(String, i32)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
    let request: NewLabels = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let version = prompts::set_labels(&mut client, project_id, &name, version, &request.new_labels).await?;
    Ok(Json(prompt_json(&version)))
}

#[utoipa::path(
    delete,
    path = "/api/public/v2/prompts/{name}",
    summary = "Delete a prompt",
    description = "Every version, or the one `version` or `label` names. 204. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(PromptQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_prompt(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(name): Path<String>,
    Query(query): Query<PromptQuery>,
) -> Result<StatusCode, ApiError> {
    let project_id = project.id;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDataset {
    name: String,
    description: Option<String>,
    metadata: Option<Value>,
    input_schema: Option<Value>,
    expected_output_schema: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/api/public/v2/datasets",
    summary = "Create or update a dataset",
    description = "Optional JSON Schemas for items' input and expected output. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateDataset,
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_dataset(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
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

#[utoipa::path(
    get,
    path = "/api/public/v2/datasets/{name}",
    summary = "Get a dataset",
    description = "Items are listed by /api/public/dataset-items. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_dataset(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
    let client = state.postgres.get().await?;
    Ok(Json(dataset_json(
        &datasets::get(&**client, project_id, &name).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/datasets",
    summary = "List datasets",
    description = "Newest first; page and limit. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(Page),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_datasets(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Value>>, ApiError> {
    let project_id = project.id;
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

#[derive(Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/api/public/dataset-items",
    summary = "Create or replace a dataset item",
    description = "Upsert by `id`; checked against the dataset's schemas; status ACTIVE or ARCHIVED. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateItem,
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ItemQuery {
    dataset_name: Option<String>,
    source_trace_id: Option<String>,
    source_observation_id: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/public/dataset-items",
    summary = "List dataset items",
    description = "Filters datasetName, sourceTraceId, sourceObservationId; page and limit. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(ItemQuery),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_items(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(query): Query<ItemQuery>,
) -> Result<Json<Paged<Value>>, ApiError> {
    let project_id = project.id;
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

#[utoipa::path(
    get,
    path = "/api/public/dataset-items/{id}",
    summary = "Get a dataset item",
    description = "Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
    let client = state.postgres.get().await?;
    Ok(Json(item_json(
        &datasets::get_item(&**client, project_id, &id).await?,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/public/dataset-items/{id}",
    summary = "Delete a dataset item",
    description = "Refused (409) while an experiment refers to it: archive it instead. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
    let client = state.postgres.get().await?;
    datasets::delete_item(&**client, project_id, &id).await?;
    Ok(Json(json!({ "message": "Dataset item successfully deleted" })))
}

#[derive(Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/api/public/dataset-run-items",
    summary = "Record a run item",
    description = "Links a trace (and optionally an observation) to the dataset item it ran, in the run `runName` (created on first use). Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateRunItem,
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_run_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project_id = project.id;
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
#[utoipa::path(
    get,
    path = "/api/public/v2/observations",
    summary = "Langfuse: list observations (v2)",
    description = "Langfuse’s observations v2 read: `fields` (core, basic, time, io, metadata, model, usage, prompt, metrics, trace_context), `limit` (50, at most 1000), `cursor` (`meta.cursor` of the previous page), `type`, `name`, `traceId`, `level` (exact), `fromStartTime`, `toStartTime`, `expandMetadata`. `{data, meta: {cursor}}`. Filters AgentTrace does not support (`filter`, `userId`, `sessionId`, `parentObservationId`, `isRootObservation`, `version`, `environment`) are a 400 naming them. A project API key with `read` scope (Basic auth).",
    security(("apiKey" = ["read"])),
    params(ObservationsV2Params),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn observations_v2(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(params): Query<ObservationsV2Params>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    Ok(Json(
        langfuse_reads::observations_v2(&state.clickhouse, project, &params).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsV2Params {
    query: Option<String>,
}

/// `GET /api/public/v2/metrics?query=`: Langfuse's metrics query over the read layout.
#[utoipa::path(
    get,
    path = "/api/public/v2/metrics",
    summary = "Langfuse: metrics query (v2)",
    description = "`query`: URL-encoded JSON `{view, dimensions, metrics, filters, timeDimension, fromTimestamp, toTimestamp, config}`. Views `observations`, `scores-numeric`, `scores-boolean`, `scores-categorical`; answers `{data: [{<dimension>…, time_dimension?, <aggregation>_<measure>…}]}`; at most `config.row_limit` (1000) rows, else 400. A project API key with `read` scope (Basic auth).",
    security(("apiKey" = ["read"])),
    params(MetricsV2Params),
    responses(
        (status = 200, description = "Langfuse's shape"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn metrics_v2(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(params): Query<MetricsV2Params>,
) -> Result<Json<Value>, ApiError> {
    let project = project.id;
    let query = params
        .query
        .ok_or_else(|| bad("query", "required: the metrics query as URL-encoded JSON"))?;
    Ok(Json(
        langfuse_reads::metrics_v2(&state.clickhouse, project, &query).await?,
    ))
}
