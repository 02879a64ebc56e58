//! Deletions (`/v1/projects/{project}/deletions`, and Langfuse's `DELETE /api/public/traces`):
//! each request starts a job ([`crate::deletion`]) and answers with it; the job's status says
//! when a read of every table finds none of the rows.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clickhouse::quote;
use crate::control::deletions::{self, DeletionJob, DeletionTarget};
use crate::http::auth::{KeyProject, Need, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{bad, json_body};
use crate::http::server::AppState;

/// What to delete: exactly one of `traceIds`, `sessionId`, `userId`, `project`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDeletion {
    /// Traces by id (at most 1000), with everything that belongs to them.
    trace_ids: Option<Vec<String>>,
    /// Every trace of the session, and the session's own comments and queue items.
    session_id: Option<String>,
    /// Every trace of the user id, and metric points that carry it.
    user_id: Option<String>,
    /// `true`: every event of the project, which must be archived first (admin role).
    project: Option<bool>,
    /// Also delete dataset items made from the deleted traces (default: keep them).
    #[serde(default)]
    dataset_items: bool,
}

impl NewDeletion {
    fn target(self) -> Result<(DeletionTarget, bool), ApiError> {
        let mut targets = Vec::new();
        if let Some(ids) = self.trace_ids {
            targets.push(DeletionTarget::Traces(ids));
        }
        if let Some(id) = self.session_id {
            targets.push(DeletionTarget::Session(id));
        }
        if let Some(id) = self.user_id {
            targets.push(DeletionTarget::User(id));
        }
        if self.project == Some(true) {
            targets.push(DeletionTarget::Project);
        }
        match targets.len() {
            1 => Ok((targets.remove(0), self.dataset_items)),
            0 => Err(bad(
                "traceIds",
                "say what to delete: `traceIds`, `sessionId`, `userId` or `project: true`",
            )),
            _ => Err(bad(
                "traceIds",
                "name one of `traceIds`, `sessionId`, `userId`, `project` per deletion",
            )),
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/deletions",
    summary = "Delete traces, a session, a user's data or the project's events",
    description = "`{traceIds | sessionId | userId | project: true, datasetItems?}` starts a deletion job and answers with it (202); the same request while that job runs answers with the same job. The job deletes the rows from every ClickHouse table (the time indexes, session index and daily costs the views fill included) and what PostgreSQL keeps of them (comments, annotation queue items, judgments, share links, run items, waiting patches; dataset items made from them when `datasetItems`), waits for every replica, and succeeds only when a read of every table finds none; events of the deleted traces that arrive later are refused. Member role, or `manage` scope; `project: true` needs the admin role or `admin` scope, and an archived project. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewDeletion,
    responses(
        (status = 202, description = "Accepted: the job runs now; poll it for its status", body = DeletionJob),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_deletion(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<DeletionJob>), ApiError> {
    let request: NewDeletion = json_body(&bytes)?;
    let (target, dataset_items) = request.target()?;
    if target == DeletionTarget::Project {
        project
            .caller
            .require(&state, project.id, Need::Administer)
            .await?;
    }
    let client = state.postgres.get().await?;
    let job = deletions::create(
        &**client,
        project.id,
        &target,
        dataset_items,
        &project.caller.label(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeletionList {
    /// At most this many, newest first (default 50, at most 500).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/deletions",
    summary = "The project's deletions",
    description = "Newest first, each with its status and rows per table. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DeletionList),
    responses(
        (status = 200, description = "OK", body = Vec<DeletionJob>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_deletions(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<DeletionList>,
) -> Result<Json<Vec<DeletionJob>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        deletions::list(&**client, project.id, query.limit.unwrap_or(50)).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeletionPath {
    /// The deletion's id.
    deletion: Uuid,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/deletions/{deletion}",
    summary = "A deletion and its status",
    description = "`status` is `succeeded` once a read of every table found none of the rows (`remaining`, all zero); `running` with an `error` while it retries. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DeletionPath),
    responses(
        (status = 200, description = "OK", body = DeletionJob),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_deletion(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(DeletionPath { deletion }): Path<DeletionPath>,
) -> Result<Json<DeletionJob>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(deletions::get(&**client, project.id, deletion).await?))
}

/// Langfuse's `DeleteTraceResponse`, with the job that does it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseDeleted {
    message: String,
    /// The deletion job (`GET /v1/projects/{project}/deletions/{id}`).
    deletion_id: Uuid,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseTracePath {
    /// The trace's id.
    trace_id: String,
}

async fn start(
    state: &AppState,
    project: Uuid,
    public_key: &str,
    ids: Vec<String>,
) -> Result<Uuid, ApiError> {
    let client = state.postgres.get().await?;
    let job = deletions::create(
        &**client,
        project,
        &DeletionTarget::Traces(ids),
        false,
        &format!("key:{public_key}"),
    )
    .await?;
    Ok(job.id)
}

#[utoipa::path(
    delete,
    path = "/api/public/traces/{traceId}",
    operation_id = "langfuse_delete_trace",
    summary = "Langfuse: delete a trace",
    description = "Langfuse-compatible (`langfuse.api.trace.delete`): starts the deletion job of `POST /v1/projects/{project}/deletions` for the trace (404 when the project has no such trace) and answers at once; `deletionId` tells when it is done. A project API key with `manage` scope (Basic auth).",
    security(("apiKey" = ["manage"])),
    params(LangfuseTracePath),
    responses(
        (status = 200, description = "The deletion is under way", body = LangfuseDeleted),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "No such trace in the key's project", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_trace(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(LangfuseTracePath { trace_id }): Path<LangfuseTracePath>,
) -> Result<Json<LangfuseDeleted>, ApiError> {
    // A trace the project does not have is a 404, as Langfuse answers (and as any id of
    // another project's must be); a list of ids may name traces still on their way.
    let (p, t) = (quote(&project.id.to_string()), quote(&trace_id));
    let known = state
        .reader
        .for_project(project.id)
        .query_text(&format!(
            "SELECT count() FROM (SELECT id FROM traces WHERE project_id = {p} AND id = {t} LIMIT 1 \
             UNION ALL SELECT trace_id AS id FROM observations WHERE project_id = {p} AND trace_id = {t} LIMIT 1) \
             FORMAT TabSeparated"
        ))
        .await
        .map_err(|e| ApiError::unavailable("ClickHouse", e.to_string()))?;
    if known.trim() == "0" {
        return Err(ApiError::not_found(format!(
            "no trace {trace_id:?} in this project"
        )));
    }
    let deletion_id = start(&state, project.id, &project.public_key, vec![trace_id]).await?;
    Ok(Json(LangfuseDeleted {
        message: "Trace deleted successfully".into(),
        deletion_id,
    }))
}

/// Langfuse's `DeleteTracesRequest`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LangfuseDeleteTraces {
    /// At most 1000.
    trace_ids: Vec<String>,
}

#[utoipa::path(
    delete,
    path = "/api/public/traces",
    operation_id = "langfuse_delete_traces",
    summary = "Langfuse: delete traces",
    description = "Langfuse-compatible (`langfuse.api.trace.delete_multiple`): `{traceIds}` (at most 1000) starts one deletion job for them. A project API key with `manage` scope (Basic auth).",
    security(("apiKey" = ["manage"])),
    request_body = LangfuseDeleteTraces,
    responses(
        (status = 200, description = "The deletion is under way", body = LangfuseDeleted),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_traces(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<LangfuseDeleted>, ApiError> {
    let request: LangfuseDeleteTraces = json_body(&bytes)?;
    let deletion_id = start(&state, project.id, &project.public_key, request.trace_ids).await?;
    Ok(Json(LangfuseDeleted {
        message: "Traces deleted successfully".into(),
        deletion_id,
    }))
}
