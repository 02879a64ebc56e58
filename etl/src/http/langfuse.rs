//! Langfuse's control-plane routes with Langfuse's request and response shapes and status
//! codes, as its SDKs call them (`../shared/reference/langfuse-api.md`). No logic of their own:
//! each handler translates and calls `control`. A project API key names the project; reads need
//! the `read` scope, writes `manage`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::answers::{LangfuseMetrics, LangfuseObservations};
use crate::analytics::langfuse::{self as langfuse_reads, ObservationsV2Params};
use crate::control::datasets::{self, Dataset, DatasetItem, ItemFilter, NewDataset, NewItem};
use crate::control::experiments::{self, NewRunItem};
use crate::control::projects;
use crate::control::prompts::{self, NewPromptVersion, PromptFilter, PromptType, PromptVersion, Selector};
use crate::http::auth::{KeyProject, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, PromptQuery, bad, json_body, paged};
use crate::http::server::AppState;

/// `GET /api/public/health`'s answer (with 200, or 503 when PostgreSQL does not answer).
#[derive(Serialize, utoipa::ToSchema)]
pub struct LangfuseHealth {
    /// `OK` or `database unavailable`.
    status: &'static str,
    version: &'static str,
}

/// `GET /api/public/projects`'s answer: the key's one project.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LangfuseProjects {
    data: Vec<LangfuseProject>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseProject {
    id: Uuid,
    name: String,
    organization: LangfuseOrganization,
    /// Always empty.
    metadata: BTreeMap<String, Value>,
    /// Absent when data is kept forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_days: Option<i32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LangfuseOrganization {
    id: Uuid,
    name: String,
}

/// A prompt version in Langfuse's shape.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfusePrompt {
    id: Uuid,
    created_at: String,
    updated_at: String,
    project_id: Uuid,
    /// Always `API`.
    created_by: &'static str,
    name: String,
    version: i32,
    #[serde(rename = "type")]
    kind: PromptType,
    prompt: Value,
    config: Value,
    labels: Vec<String>,
    tags: Vec<String>,
    #[schema(required = true)]
    commit_message: Option<String>,
    /// Always null: AgentTrace does not resolve prompt references.
    #[schema(required = true)]
    resolution_graph: Option<Value>,
    /// Whether the version has the `production` label.
    is_active: bool,
}

/// A prompt with its versions and labels, as Langfuse lists it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfusePromptSummary {
    name: String,
    #[serde(rename = "type")]
    kind: PromptType,
    versions: Vec<i32>,
    labels: Vec<String>,
    tags: Vec<String>,
    last_updated_at: String,
    last_config: Value,
}

/// A dataset in Langfuse's shape.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseDataset {
    id: Uuid,
    name: String,
    #[schema(required = true)]
    description: Option<String>,
    metadata: Value,
    #[schema(required = true)]
    input_schema: Option<Value>,
    #[schema(required = true)]
    expected_output_schema: Option<Value>,
    project_id: Uuid,
    created_at: String,
    updated_at: String,
}

/// A dataset item in Langfuse's shape.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseDatasetItem {
    id: String,
    /// `ACTIVE` or `ARCHIVED`.
    status: String,
    input: Value,
    #[schema(required = true)]
    expected_output: Option<Value>,
    metadata: Value,
    #[schema(required = true)]
    source_trace_id: Option<String>,
    #[schema(required = true)]
    source_observation_id: Option<String>,
    dataset_id: Uuid,
    dataset_name: String,
    created_at: String,
    updated_at: String,
    /// Always empty: Langfuse resolves media uploads into these; AgentTrace stores media inline.
    media_references: Vec<Value>,
}

/// A dataset run item in Langfuse's shape.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseRunItem {
    id: Uuid,
    dataset_run_id: Uuid,
    dataset_run_name: String,
    dataset_item_id: String,
    trace_id: String,
    #[schema(required = true)]
    observation_id: Option<String>,
    created_at: String,
    updated_at: String,
}

/// What a delete answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LangfuseMessage {
    message: &'static str,
}

#[utoipa::path(
    get,
    path = "/api/public/health",
    operation_id = "langfuse_health",
    summary = "Liveness of the control plane (Langfuse's shape)",
    description = "Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    responses(
        (status = 200, description = "{status: OK, version}", body = LangfuseHealth),
        (status = 503, description = "PostgreSQL does not answer", body = LangfuseHealth),
    ),
)]
pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<LangfuseHealth>) {
    let database = match state.postgres.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = LangfuseHealth {
        status: if database { "OK" } else { "database unavailable" },
        version: env!("CARGO_PKG_VERSION"),
    };
    (status, Json(body))
}

/// The calling key's project (Langfuse's SDKs check their credentials this way). Like every
/// other `/api/public` route but the health check, it needs its scope: `read`.
#[utoipa::path(
    get,
    path = "/api/public/projects",
    operation_id = "langfuse_projects",
    summary = "The key's project",
    description = "The project the API key belongs to, with its organization. Needs the `read` scope. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseProjects),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn projects(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
) -> Result<Json<LangfuseProjects>, ApiError> {
    let client = state.postgres.get().await?;
    let (project, organization_name) = projects::project_with_organization(&**client, project.id).await?;
    let project = LangfuseProject {
        id: project.id,
        name: project.name,
        organization: LangfuseOrganization {
            id: project.organization_id,
            name: organization_name,
        },
        metadata: BTreeMap::new(),
        retention_days: project.retention_days,
    };
    Ok(Json(LangfuseProjects { data: vec![project] }))
}

fn prompt_json(version: &PromptVersion) -> LangfusePrompt {
    LangfusePrompt {
        id: version.id,
        created_at: version.created_at.clone(),
        updated_at: version.updated_at.clone(),
        project_id: version.project_id,
        created_by: "API",
        name: version.name.clone(),
        version: version.version,
        kind: version.kind,
        prompt: version.prompt.clone(),
        config: version.config.clone(),
        labels: version.labels.clone(),
        tags: version.tags.clone(),
        commit_message: version.commit_message.clone(),
        resolution_graph: None,
        is_active: version.labels.iter().any(|l| l == prompts::PRODUCTION),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePrompt {
    name: String,
    prompt: Value,
    #[serde(rename = "type")]
    kind: Option<PromptType>,
    config: Option<Value>,
    labels: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    commit_message: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/public/v2/prompts",
    operation_id = "langfuse_create_prompt",
    summary = "Create a prompt version",
    description = "Text or chat; the next version number (gap-free under concurrent creates); labels move onto it; `latest` is reserved. 201. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreatePrompt,
    responses(
        (status = 201, description = "Langfuse's shape", body = LangfusePrompt),
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
) -> Result<(StatusCode, Json<LangfusePrompt>), ApiError> {
    let project_id = project.id;
    let request: CreatePrompt = json_body(&bytes)?;
    let new = NewPromptVersion {
        name: request.name,
        kind: request.kind.unwrap_or_default(),
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
    Ok((StatusCode::CREATED, Json(prompt_json(&version))))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/prompts/{name}",
    operation_id = "langfuse_get_prompt",
    summary = "Get a prompt version",
    description = "By `version` or `label` (not both); neither means label `production`. Folder names are URL-encoded. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(PromptQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfusePrompt),
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
) -> Result<Json<LangfusePrompt>, ApiError> {
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
    operation_id = "langfuse_list_prompts",
    summary = "List prompts",
    description = "Names with versions and labels; filters name, label, tag; page and limit. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(PromptListQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<LangfusePromptSummary>),
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
) -> Result<Json<Paged<LangfusePromptSummary>>, ApiError> {
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
        .map(|p| LangfusePromptSummary {
            name: p.name.clone(),
            kind: p.kind,
            versions: p.versions.clone(),
            labels: p.labels.clone(),
            tags: p.tags.clone(),
            last_updated_at: p.last_updated_at.clone(),
            last_config: p.last_config.clone(),
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
    operation_id = "langfuse_set_prompt_labels",
    summary = "Move labels onto a version",
    description = "`{newLabels}`: each label leaves the version that had it, in one transaction. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = NewLabels,
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfusePrompt),
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
) -> Result<Json<LangfusePrompt>, ApiError> {
    let project_id = project.id;
    let request: NewLabels = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let version = prompts::set_labels(&mut client, project_id, &name, version, &request.new_labels).await?;
    Ok(Json(prompt_json(&version)))
}

#[utoipa::path(
    delete,
    path = "/api/public/v2/prompts/{name}",
    operation_id = "langfuse_delete_prompt",
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

fn dataset_json(dataset: &Dataset) -> LangfuseDataset {
    LangfuseDataset {
        id: dataset.id,
        name: dataset.name.clone(),
        description: dataset.description.clone(),
        metadata: dataset.metadata.clone(),
        input_schema: dataset.input_schema.clone(),
        expected_output_schema: dataset.expected_output_schema.clone(),
        project_id: dataset.project_id,
        created_at: dataset.created_at.clone(),
        updated_at: dataset.updated_at.clone(),
    }
}

fn item_json(item: &DatasetItem) -> LangfuseDatasetItem {
    LangfuseDatasetItem {
        id: item.id.clone(),
        status: item.status.to_ascii_uppercase(),
        input: item.input.clone(),
        expected_output: item.expected_output.clone(),
        metadata: item.metadata.clone(),
        source_trace_id: item.source_trace_id.clone(),
        source_observation_id: item.source_observation_id.clone(),
        dataset_id: item.dataset_id,
        dataset_name: item.dataset_name.clone(),
        created_at: item.created_at.clone(),
        updated_at: item.updated_at.clone(),
        media_references: Vec::new(),
    }
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
    operation_id = "langfuse_create_dataset",
    summary = "Create or update a dataset",
    description = "Optional JSON Schemas for items' input and expected output. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateDataset,
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseDataset),
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
) -> Result<Json<LangfuseDataset>, ApiError> {
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
    operation_id = "langfuse_get_dataset",
    summary = "Get a dataset",
    description = "Items are listed by /api/public/dataset-items. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseDataset),
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
) -> Result<Json<LangfuseDataset>, ApiError> {
    let project_id = project.id;
    let client = state.postgres.get().await?;
    Ok(Json(dataset_json(
        &datasets::get(&**client, project_id, &name).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/datasets",
    operation_id = "langfuse_list_datasets",
    summary = "List datasets",
    description = "Newest first; page and limit. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(Page),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<LangfuseDataset>),
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
) -> Result<Json<Paged<LangfuseDataset>>, ApiError> {
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
    operation_id = "langfuse_create_item",
    summary = "Create or replace a dataset item",
    description = "Upsert by `id`; checked against the dataset's schemas; status ACTIVE or ARCHIVED. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateItem,
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseDatasetItem),
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
) -> Result<Json<LangfuseDatasetItem>, ApiError> {
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
    operation_id = "langfuse_list_items",
    summary = "List dataset items",
    description = "Filters datasetName, sourceTraceId, sourceObservationId; page and limit. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(ItemQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<LangfuseDatasetItem>),
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
) -> Result<Json<Paged<LangfuseDatasetItem>>, ApiError> {
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
    operation_id = "langfuse_get_item",
    summary = "Get a dataset item",
    description = "Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseDatasetItem),
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
) -> Result<Json<LangfuseDatasetItem>, ApiError> {
    let project_id = project.id;
    let client = state.postgres.get().await?;
    Ok(Json(item_json(
        &datasets::get_item(&**client, project_id, &id).await?,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/public/dataset-items/{id}",
    operation_id = "langfuse_delete_item",
    summary = "Delete a dataset item",
    description = "Refused (409) while an experiment refers to it: archive it instead. Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseMessage),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: an experiment refers to the item; archive it instead", body = ErrorBody),
    ),
)]
pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(id): Path<String>,
) -> Result<Json<LangfuseMessage>, ApiError> {
    let project_id = project.id;
    let client = state.postgres.get().await?;
    datasets::delete_item(&**client, project_id, &id).await?;
    Ok(Json(LangfuseMessage {
        message: "Dataset item successfully deleted",
    }))
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
    operation_id = "langfuse_create_run_item",
    summary = "Record a run item",
    description = "Links a trace (and optionally an observation) to the dataset item it ran, in the run `runName` (created on first use). Langfuse-compatible (its SDKs call it); authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateRunItem,
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseRunItem),
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
) -> Result<Json<LangfuseRunItem>, ApiError> {
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
    Ok(Json(LangfuseRunItem {
        id: item.id,
        dataset_run_id: item.experiment_id,
        dataset_run_name: item.experiment_name,
        dataset_item_id: item.dataset_item_id,
        trace_id: item.trace_id,
        observation_id: item.observation_id,
        updated_at: item.created_at.clone(),
        created_at: item.created_at,
    }))
}

/// `GET /api/public/v2/observations`: a page of observations in Langfuse's v2 shape.
#[utoipa::path(
    get,
    path = "/api/public/v2/observations",
    operation_id = "langfuse_observations_v2",
    summary = "Langfuse: list observations (v2)",
    description = "Langfuse’s observations v2 read: `fields` (core, basic, time, io, metadata, model, usage, prompt, metrics, trace_context), `limit` (50, at most 1000), `cursor` (`meta.cursor` of the previous page), `type`, `name`, `traceId`, `level` (exact), `fromStartTime`, `toStartTime`, `expandMetadata`. `{data, meta: {cursor}}`. Filters AgentTrace does not support (`filter`, `userId`, `sessionId`, `parentObservationId`, `isRootObservation`, `version`, `environment`) are a 400 naming them. A project API key with `read` scope (Basic auth).",
    security(("apiKey" = ["read"])),
    params(ObservationsV2Params),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseObservations),
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
) -> Result<Json<LangfuseObservations>, ApiError> {
    let project = project.id;
    Ok(Json(
        langfuse_reads::observations_v2(&state.reader.for_project(project), project, &params).await?,
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
    operation_id = "langfuse_metrics_v2",
    summary = "Langfuse: metrics query (v2)",
    description = "`query`: URL-encoded JSON `{view, dimensions, metrics, filters, timeDimension, fromTimestamp, toTimestamp, config}`. Views `observations`, `scores-numeric`, `scores-boolean`, `scores-categorical`; answers `{data: [{<dimension>…, time_dimension?, <aggregation>_<measure>…}]}`; at most `config.row_limit` (1000) rows, else 400. A project API key with `read` scope (Basic auth).",
    security(("apiKey" = ["read"])),
    params(MetricsV2Params),
    responses(
        (status = 200, description = "Langfuse's shape", body = LangfuseMetrics),
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
) -> Result<Json<LangfuseMetrics>, ApiError> {
    let project = project.id;
    let query = params
        .query
        .ok_or_else(|| bad("query", "required: the metrics query as URL-encoded JSON"))?;
    Ok(Json(
        langfuse_reads::metrics_v2(&state.reader.for_project(project), project, &query).await?,
    ))
}
