//! An organization's projects (`/v1/organizations/{organization}/projects`) and a project's
//! settings (`/v1/projects/{project}`): read by any member, changed by admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::control::projects::{self, Project};
use crate::http::auth::{OrganizationAccess, ProjectAccess, need, role};
use crate::http::control::present;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, bad, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    /// Unique in the organization.
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// Present and null: keep data forever.
    #[serde(default, deserialize_with = "present")]
    #[schema(minimum = 1)]
    retention_days: Option<Option<i32>>,
}

#[utoipa::path(
    get,
    path = "/v1/organizations/{organization}/projects",
    summary = "List projects",
    description = "Paged like datasets. Viewer and up. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Project>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_projects(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Viewer>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Project>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(
        projects::organization_projects(&**client, organization.id).await?,
        &page,
    )
}

#[utoipa::path(
    post,
    path = "/v1/organizations/{organization}/projects",
    summary = "Create a project",
    description = "`{name, retention_days}`; admin and up. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id")),
    request_body = ProjectSettings,
    responses(
        (status = 201, description = "OK", body = Project),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: another project of the organization has that name", body = ErrorBody),
    ),
)]
pub async fn create_project(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Project>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(project)))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}",
    summary = "Get a project",
    description = "Its name, organization and retention. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "OK", body = Project),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_project(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
) -> Result<Json<Project>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(projects::get_project(&**client, project.id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/projects/{project}",
    summary = "Rename a project or change its retention",
    description = "`{name, retention_days}` (null keeps data forever); admin role or `admin` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = ProjectSettings,
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: another project of the organization has that name", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}",
    summary = "Archive a project",
    description = "It accepts no more events; its data stays readable. Admin role or `admin` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn archive_project(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    projects::archive_project(&**client, project.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
