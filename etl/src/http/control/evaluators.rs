//! A project's evaluators (`/v1/projects/{project}/evaluators`): what the evaluation job scores
//! observations with, and when.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::evaluators::{self, NewEvaluator};
use crate::http::auth::{ProjectAccess, need};
use crate::http::control::present;
use crate::http::error::ApiError;
use crate::http::request::{Page, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvaluatorBody {
    name: String,
    kind: String,
    config: Option<Value>,
    schedule: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluatorChanges {
    config: Option<Value>,
    /// Present and null: back to the evaluation job's own schedule.
    #[serde(default, deserialize_with = "present")]
    schedule: Option<Option<String>>,
    active: Option<bool>,
}

/// The `{id}` of an evaluator's route.
#[derive(Deserialize)]
pub struct EvaluatorPath {
    id: Uuid,
}

pub async fn list_evaluators(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(evaluators::list(&**client, project.id).await?, &page)
}

/// Adds an evaluator: 201 when new, 200 when one of that name exists already.
pub async fn create_evaluator(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
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
        Json(json!({ "created": added == evaluators::Added::Created })),
    )
        .into_response())
}

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

pub async fn delete_evaluator(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(EvaluatorPath { id }): Path<EvaluatorPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    evaluators::delete(&**client, project.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
