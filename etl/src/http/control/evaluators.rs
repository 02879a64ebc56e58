//! A project's evaluators (`/v1/projects/{project}/evaluators`): what the evaluation job scores
//! observations with, and when.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::evaluators::{self, Evaluator, NewEvaluator};
use crate::http::auth::{ProjectAccess, need};
use crate::http::control::present;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEvaluatorBody {
    name: String,
    kind: String,
    config: Option<Value>,
    schedule: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EvaluatorChanges {
    config: Option<Value>,
    /// Present and null: back to the evaluation job's own schedule.
    #[serde(default, deserialize_with = "present")]
    schedule: Option<Option<String>>,
    active: Option<bool>,
}

/// Whether `POST .../evaluators` added the evaluator (or one of that name was there).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EvaluatorCreated {
    created: bool,
}

/// The `{id}` of an evaluator's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EvaluatorPath {
    pub id: Uuid,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/evaluators",
    summary = "List evaluators",
    description = "Paged like datasets. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Evaluator>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_evaluators(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Evaluator>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(evaluators::list(&**client, project.id).await?, &page)
}

/// Adds an evaluator: 201 when new, 200 when one of that name exists already.
#[utoipa::path(
    post,
    path = "/v1/projects/{project}/evaluators",
    summary = "Add an evaluator",
    description = "`{name, kind, config, schedule}`: config validated by kind, schedule as cron with seconds. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewEvaluatorBody,
    responses(
        (status = 201, description = "OK", body = EvaluatorCreated),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_evaluator(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<EvaluatorCreated>), ApiError> {
    let request: NewEvaluatorBody = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let added = evaluators::add(
        &**client,
        &NewEvaluator {
            project_id: project.id,
            name: request.name,
            kind: request.kind,
            config: request.config.unwrap_or_else(|| json!({})),
            schedule: request.schedule,
        },
    )
    .await?;
    let status = match added {
        evaluators::Added::Created => StatusCode::CREATED,
        evaluators::Added::Exists => StatusCode::OK,
    };
    Ok((
        status,
        Json(EvaluatorCreated {
            created: added == evaluators::Added::Created,
        }),
    ))
}

#[utoipa::path(
    patch,
    path = "/v1/projects/{project}/evaluators/{id}",
    summary = "Change an evaluator",
    description = "`{config, schedule, active}`. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), EvaluatorPath),
    request_body = EvaluatorChanges,
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: an evaluation rule runs this judge; change the rule", body = ErrorBody),
    ),
)]
pub async fn update_evaluator(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(EvaluatorPath { id }): Path<EvaluatorPath>,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let request: EvaluatorChanges = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    evaluators::update(
        &**client,
        project.id,
        id,
        request.config.as_ref(),
        request.schedule.as_ref().map(|s| s.as_deref()),
        request.active,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/evaluators/{id}",
    summary = "Delete an evaluator",
    description = "Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), EvaluatorPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: an evaluation rule runs this judge; change the rule", body = ErrorBody),
    ),
)]
pub async fn delete_evaluator(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(EvaluatorPath { id }): Path<EvaluatorPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    evaluators::delete(&**client, project.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
