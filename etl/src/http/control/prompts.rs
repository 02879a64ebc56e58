//! A project's prompts (`/v1/projects/{project}/prompts`): versions are immutable, labels move.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::prompts::{self, NewPromptVersion, PromptFilter, PromptType};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::request::{Page, PromptQuery, json_body, paged};
use crate::http::server::AppState;

#[derive(Deserialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Labels {
    labels: Vec<String>,
}

/// `?name=&label=&tag=` of the prompt list.
#[derive(Deserialize)]
pub struct PromptListQuery {
    name: Option<String>,
    label: Option<String>,
    tag: Option<String>,
}

/// The `{name}` of a prompt's route.
#[derive(Deserialize)]
pub struct PromptPath {
    name: String,
}

/// The `{name}` and `{version}` of a prompt version's route.
#[derive(Deserialize)]
pub struct VersionPath {
    name: String,
    version: i32,
}

pub async fn create_prompt(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
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
    Ok((StatusCode::CREATED, Json(json!(version))).into_response())
}

pub async fn get_prompt(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(PromptPath { name }): Path<PromptPath>,
    Query(query): Query<PromptQuery>,
) -> Result<Json<Value>, ApiError> {
    let selector = query.selector()?;
    let client = state.postgres.get().await?;
    Ok(Json(json!(
        prompts::get(&**client, project.id, &name, &selector).await?
    )))
}

pub async fn set_prompt_labels(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(VersionPath { name, version }): Path<VersionPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Labels = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    Ok(Json(json!(
        prompts::set_labels(&mut client, project.id, &name, version, &request.labels).await?
    )))
}

pub async fn list_prompts(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<PromptListQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (page, limit) = page.resolve()?;
    let filter = PromptFilter {
        name: query.name,
        label: query.label,
        tag: query.tag,
    };
    let client = state.postgres.get().await?;
    let (found, total) = prompts::list(&**client, project.id, &filter, page, limit).await?;
    Ok(paged(
        found.iter().map(|p| json!(p)).collect(),
        page,
        limit,
        total,
    ))
}

/// Deletes a prompt, or only the version `?version=` or `?label=` names.
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
