//! Sharing a trace: a member makes it public (`PUT /v1/projects/{project}/traces/{id}/sharing`)
//! and anyone reads it, and only it, signed out (`GET /v1/shared/{project}/traces/{id}`),
//! until a member makes it private again.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use uuid::Uuid;

use crate::analytics::answers::TraceDetail;
use crate::analytics::traces;
use crate::control::shares::{self, Sharing};
use crate::http::auth::{Caller, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::json_body;
use crate::http::server::AppState;

/// Whether a trace is to be public.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingChange {
    public: bool,
}

/// The `{id}` of a trace's sharing route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TracePath {
    /// The trace's id.
    id: String,
}

/// The `{project}` and `{id}` of a shared trace's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SharedPath {
    /// The trace's project.
    project: Uuid,
    /// The trace's id.
    id: String,
}

/// The `{project}`, `{id}` and `{observation_id}` of a shared observation's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SharedObservationPath {
    project: Uuid,
    id: String,
    observation_id: String,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/traces/{id}/sharing",
    summary = "Whether a trace is public",
    description = "`public`: true, or false (also when no member set it); `share_path`: the link's path in the web UI. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), TracePath),
    responses(
        (status = 200, description = "OK", body = Sharing),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_sharing(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(TracePath { id }): Path<TracePath>,
) -> Result<Json<Sharing>, ApiError> {
    require_trace(&state, project.id, &id).await?;
    let client = state.postgres.get().await?;
    Ok(Json(shares::get(&**client, project.id, &id).await?))
}

#[utoipa::path(
    put,
    path = "/v1/projects/{project}/traces/{id}/sharing",
    summary = "Make a trace public or private",
    description = "`{public: true}`: anyone with the link reads this trace (and nothing else) signed out; `{public: false}`: the link stops working. The SDK's `public` flag is stored with the trace but opens nothing: only a member makes a trace public. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), TracePath),
    request_body = SharingChange,
    responses(
        (status = 200, description = "OK", body = Sharing),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn set_sharing(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(TracePath { id }): Path<TracePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Sharing>, ApiError> {
    let change: SharingChange = json_body(&bytes)?;
    require_trace(&state, project.id, &id).await?;
    let by = match &project.caller {
        Caller::User(user) => Some(user.id),
        _ => None,
    };
    let client = state.postgres.get().await?;
    Ok(Json(
        shares::set(&**client, project.id, &id, change.public, by).await?,
    ))
}

/// A trace of the project, or a 404: sharing is set for what the project holds.
async fn require_trace(state: &AppState, project: Uuid, id: &str) -> Result<(), ApiError> {
    if traces::exists(&state.reader.for_project(project), project, id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no trace {id:?} in this project")))
    }
}

/// Whether anyone may read the trace: a member made it public. Not the SDK's `public` flag: an
/// ingest-only key (write-only) could set it on any trace id and open it to everyone. What is
/// not public is a 404, as if it did not exist.
async fn require_public(state: &AppState, project: Uuid, id: &str) -> Result<(), ApiError> {
    let client = state.postgres.get().await?;
    match shares::get(&**client, project, id).await?.public {
        Some(true) => Ok(()),
        _ => Err(ApiError::not_found(format!(
            "no public trace {id:?} in project {project}"
        ))),
    }
}

#[utoipa::path(
    get,
    path = "/v1/shared/{project}/traces/{id}",
    summary = "Read a public trace, signed out",
    description = "What `GET /v1/traces/{id}` answers, for a trace a member made public. No authentication. Any other trace is a 404.",
    params(SharedPath),
    responses(
        (status = 200, description = "OK", body = TraceDetail),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn shared_trace(
    State(state): State<Arc<AppState>>,
    Path(SharedPath { project, id }): Path<SharedPath>,
) -> Result<Json<TraceDetail>, ApiError> {
    require_public(&state, project, &id).await?;
    traces::trace_detail(&state.reader.for_project(project), project, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no public trace {id:?} in project {project}")))
}

#[utoipa::path(
    get,
    path = "/v1/shared/{project}/traces/{id}/observations/{observation_id}",
    summary = "Read one observation of a public trace, signed out",
    description = "What `GET /v1/traces/{id}/observations/{observation_id}` answers, for a public trace. No authentication.",
    params(SharedObservationPath),
    responses(
        (status = 200, description = "OK", body = Object),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn shared_observation(
    State(state): State<Arc<AppState>>,
    Path(SharedObservationPath {
        project,
        id,
        observation_id,
    }): Path<SharedObservationPath>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_public(&state, project, &id).await?;
    traces::observation_detail(&state.reader.for_project(project), project, &id, &observation_id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no observation {observation_id:?} in public trace {id:?}"
            ))
        })
}
