//! An organization's projects (`/v1/organizations/{organization}/projects`) and a project's
//! settings (`/v1/projects/{project}`): read by any member, changed by admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::projects;
use crate::http::auth::{OrganizationAccess, ProjectAccess, need, role};
use crate::http::control::present;
use crate::http::error::ApiError;
use crate::http::request::{Page, bad, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    name: Option<String>,
    /// Present and null: keep data forever.
    #[serde(default, deserialize_with = "present")]
    retention_days: Option<Option<i32>>,
}

pub async fn list_projects(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Viewer>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(
        projects::organization_projects(&**client, organization.id).await?,
        &page,
    )
}

pub async fn create_project(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: ProjectSettings = json_body(&bytes)?;
    let name = request.name.ok_or_else(|| bad("name", "required"))?;
    let client = state.postgres.get().await?;
    let project = projects::create_project(
        &**client,
        organization.id,
        &name,
        request.retention_days.flatten(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(project))).into_response())
}

pub async fn get_project(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(json!(projects::get_project(&**client, project.id).await?)))
}

pub async fn update_project(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let request: ProjectSettings = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    projects::update_project(
        &**client,
        project.id,
        request.name.as_deref(),
        request.retention_days,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn archive_project(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    projects::archive_project(&**client, project.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
