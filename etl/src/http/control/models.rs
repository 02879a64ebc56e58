//! Langfuse's model definitions (`langfuse.api.models`): `/api/public/models`, mapped onto the
//! project's prices (`/v1/projects/{project}/prices`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::control::models::{self, Model, NewModel};
use crate::http::auth::{KeyProject, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, paged};
use crate::http::server::AppState;

/// The `{id}` of a model's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// The model's id.
    id: Uuid,
}

#[utoipa::path(
    get,
    path = "/api/public/models",
    operation_id = "langfuse_list_models",
    summary = "List model definitions",
    description = "Langfuse-compatible (`langfuse.api.models.list`): the project's prices as models, its own first, then AgentTrace's defaults (`isLangfuseManaged`). Prices in USD per token. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(Page),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<Model>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_models(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Model>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = models::list(&**client, project.id, page, limit).await?;
    Ok(paged(found, page, limit, total))
}

#[utoipa::path(
    post,
    path = "/api/public/models",
    operation_id = "langfuse_create_model",
    summary = "Create a model definition",
    description = "Langfuse-compatible (`langfuse.api.models.create`): a project price from `startDate` (now by default), `inputPrice` and `outputPrice` in USD per token. `totalPrice`, `pricingTiers` and tokenizers are a 400. Generations loaded after it are priced by it. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = NewModel,
    responses(
        (status = 200, description = "Langfuse's shape", body = Model),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "The project holds the most prices it may", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_model(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Model>, ApiError> {
    let request: NewModel = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    Ok(Json(
        models::upsert(&mut client, project.id, None, request).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/public/models/{id}",
    operation_id = "langfuse_get_model",
    summary = "Get a model definition",
    description = "Langfuse-compatible (`langfuse.api.models.get`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(ModelPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Model),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_model(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<Json<Model>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(models::get(&**client, project.id, id).await?))
}

#[utoipa::path(
    put,
    path = "/api/public/models/{id}",
    operation_id = "langfuse_upsert_model",
    summary = "Create or replace a model definition",
    description = "Langfuse-compatible (`langfuse.api.models.upsert`): the project's model of that id, replaced or created; a default is a 403. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(ModelPath),
    request_body = NewModel,
    responses(
        (status = 200, description = "Langfuse's shape", body = Model),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "The project holds the most prices it may", body = ErrorBody),
    ),
)]
pub async fn langfuse_upsert_model(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(ModelPath { id }): Path<ModelPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Model>, ApiError> {
    let request: NewModel = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    Ok(Json(
        models::upsert(&mut client, project.id, Some(id), request).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/public/models/{id}",
    operation_id = "langfuse_delete_model",
    summary = "Delete a model definition",
    description = "Langfuse-compatible (`langfuse.api.models.delete`): one of the project's own; a default is a 403. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(ModelPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_model(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    models::delete(&**client, project.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
