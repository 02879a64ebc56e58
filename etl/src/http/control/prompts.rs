//! A project's prompts (`/v1/projects/{project}/prompts`): versions are immutable, labels move.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::prompts::{
    self, NewPromptVersion, PromptFilter, PromptSummary, PromptType, PromptVersion,
};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, PromptQuery, json_body, paged};
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPrompt {
    name: String,
    #[serde(rename = "type", default)]
    kind: Option<PromptType>,
    prompt: Value,
    config: Option<Value>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    commit_message: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Labels {
    labels: Vec<String>,
}

/// `?name=&label=&tag=` of the prompt list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromptListQuery {
    name: Option<String>,
    label: Option<String>,
    tag: Option<String>,
}

/// The `{name}` of a prompt's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PromptPath {
    name: String,
}

/// The `{name}` and `{version}` of a prompt version's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    name: String,
    version: i32,
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/prompts",
    summary = "Create a prompt version",
    description = "Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewPrompt,
    responses(
        (status = 201, description = "OK", body = PromptVersion),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_prompt(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<PromptVersion>), ApiError> {
    let request: NewPrompt = json_body(&bytes)?;
    let new = NewPromptVersion {
        name: request.name,
        kind: request.kind.unwrap_or_default(),
        prompt: request.prompt,
        config: request.config.unwrap_or_else(|| json!({})),
        labels: request.labels,
        tags: request.tags,
        commit_message: request.commit_message,
    };
    let mut client = state.postgres.get().await?;
    let version = prompts::create_version(&mut client, project.id, &new).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/prompts/{name}",
    summary = "Get a prompt version",
    description = "`version` or `label` (default production). Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), PromptPath, PromptQuery),
    responses(
        (status = 200, description = "OK", body = PromptVersion),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_prompt(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(PromptPath { name }): Path<PromptPath>,
    Query(query): Query<PromptQuery>,
) -> Result<Json<PromptVersion>, ApiError> {
    let selector = query.selector()?;
    let client = state.postgres.get().await?;
    Ok(Json(prompts::get(&**client, project.id, &name, &selector).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/projects/{project}/prompts/{name}/versions/{version}",
    summary = "Move labels onto a version",
    description = "`{labels}`. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), VersionPath),
    request_body = Labels,
    responses(
        (status = 200, description = "OK", body = PromptVersion),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn set_prompt_labels(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(VersionPath { name, version }): Path<VersionPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<PromptVersion>, ApiError> {
    let request: Labels = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    Ok(Json(
        prompts::set_labels(&mut client, project.id, &name, version, &request.labels).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/prompts",
    summary = "List prompts",
    description = "Each prompt with its versions, labels and tags; filters `name`, `label`, `tag`; paged like datasets. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), PromptListQuery, Page),
    responses(
        (status = 200, description = "OK", body = Paged<PromptSummary>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_prompts(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<PromptListQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<PromptSummary>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let filter = PromptFilter {
        name: query.name,
        label: query.label,
        tag: query.tag,
    };
    let client = state.postgres.get().await?;
    let (found, total) = prompts::list(&**client, project.id, &filter, page, limit).await?;
    Ok(paged(found, page, limit, total))
}

/// Deletes a prompt, or only the version `?version=` or `?label=` names.
#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/prompts/{name}",
    summary = "Delete a prompt",
    description = "Every version, or only the one `version` or `label` names. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), PromptPath, PromptQuery),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_prompt(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(PromptPath { name }): Path<PromptPath>,
    Query(query): Query<PromptQuery>,
) -> Result<StatusCode, ApiError> {
    let selector = query.given()?;
    let client = state.postgres.get().await?;
    prompts::delete(&**client, project.id, &name, selector.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
