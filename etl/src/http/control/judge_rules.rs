//! Langfuse's v2 evaluators (`/api/public/v2/evaluators`, with their versions) and evaluation
//! rules (`/api/public/v2/evaluation-rules`), as its Python SDK's `langfuse.api.evaluators` and
//! `langfuse.api.evaluation_rules` call them. The logic is [`crate::control::judge_rules`];
//! every change runs in one transaction, so a rule that cannot run changes nothing. The
//! request bodies are read as JSON by the logic, which tells a field given as null from one
//! left out; the `*Body` types below describe them for the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::control::judge_rules::{
    self, ChatMessage, CursorPage, EvaluationRule, EvaluatorAssignment, JudgeDefinition,
    JudgeDefinitionVersion, ModelConfig, VariableMapping,
};
use crate::http::auth::{KeyProject, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::json_body;
use crate::http::server::AppState;

/// A list's page: up to `limit` (50 by default, at most 100) from `cursor`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    limit: Option<i64>,
    /// `meta.cursor` of the previous page, unchanged.
    cursor: Option<String>,
}

/// The `{id}` of an evaluator's or a rule's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    id: Uuid,
}

/// Langfuse's `CreateEvaluatorRequest` (type `llm_as_judge`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateEvaluatorBody {
    pub name: String,
    pub description: Option<String>,
    /// `llm_as_judge` (the default); `code` is refused.
    #[schema(rename = "type")]
    pub kind: Option<String>,
    /// A user message, or `[{role, content}]` (`system` messages become the judge's system prompt).
    #[schema(value_type = Object)]
    pub prompt: Value,
    /// `{provider, model}`: a model connection's `provider` name; null: the project's first connection.
    pub model_config: Option<ModelConfig>,
    pub variable_mapping: Option<Vec<VariableMapping>>,
    /// `{dataType: NUMERIC|BOOLEAN|CATEGORICAL, minValue, maxValue, categories, scoreReasoningInstructions, scoreValueInstructions}`.
    #[schema(value_type = Object)]
    pub output_definition: Value,
}

/// Langfuse's `UpdateEvaluatorRequest`: `name`/`description` alone change it in place; the
/// definition fields (`prompt` and `outputDefinition` at least) make a new version.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpdateEvaluatorBody {
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(rename = "type")]
    pub kind: Option<String>,
    pub prompt: Option<Vec<ChatMessage>>,
    pub model_config: Option<ModelConfig>,
    pub variable_mapping: Option<Vec<VariableMapping>>,
    #[schema(value_type = Option<Object>)]
    pub output_definition: Option<Value>,
}

/// Langfuse's `CreateEvaluationRuleRequest`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateRuleBody {
    pub name: String,
    pub enabled: bool,
    /// Share of matching observations judged, above 0 and at most 1 (1 by default).
    pub sampling: Option<f64>,
    /// Langfuse's filters (`{type, column, operator, value, key}`); every one must hold.
    #[schema(value_type = Option<Vec<Object>>)]
    pub filter: Option<Value>,
    pub evaluator_assignments: Vec<EvaluatorAssignment>,
}

/// Langfuse's `UpdateEvaluationRuleRequest`: the fields given replace the rule's.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpdateRuleBody {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub sampling: Option<f64>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub filter: Option<Value>,
    pub evaluator_assignments: Option<Vec<EvaluatorAssignment>>,
}

/// Langfuse's `DeletedEvaluator` and `DeletedEvaluationRule`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    id: Uuid,
}

#[utoipa::path(
    post,
    path = "/api/public/v2/evaluators",
    operation_id = "langfuse_create_evaluator",
    summary = "Create an LLM-as-judge evaluator",
    description = "Langfuse-compatible (`langfuse.api.evaluators.create`): a prompt with `{{variables}}`, an output definition and a model, at version 1. It judges nothing until an evaluation rule assigns it. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateEvaluatorBody,
    responses(
        (status = 200, description = "Langfuse's shape", body = JudgeDefinition),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_evaluator(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<JudgeDefinition>, ApiError> {
    let body: Value = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let created = judge_rules::create_definition(&mut client, project.id, &body).await?;
    Ok(Json(created))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/evaluators",
    operation_id = "langfuse_list_evaluators",
    summary = "List evaluators",
    description = "Langfuse-compatible (`langfuse.api.evaluators.list`): newest first, each with its latest version and the rules that use it; `meta.cursor` leads to the next page. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(CursorQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = CursorPage<JudgeDefinition>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_evaluators(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<CursorQuery>,
) -> Result<Json<CursorPage<JudgeDefinition>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        judge_rules::list_definitions(&**client, project.id, page.limit, page.cursor.as_deref()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/evaluators/{id}",
    operation_id = "langfuse_get_evaluator",
    summary = "Get an evaluator",
    description = "Langfuse-compatible (`langfuse.api.evaluators.get`): its latest version flattened in. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(IdPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = JudgeDefinition),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_evaluator(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<JudgeDefinition>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        judge_rules::get_definition(&**client, project.id, id).await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/public/v2/evaluators/{id}",
    operation_id = "langfuse_update_evaluator",
    summary = "Update an evaluator",
    description = "Langfuse-compatible (`langfuse.api.evaluators.update`): `name` and `description` change in place; the definition fields (`prompt`, `outputDefinition`, `modelConfig`, `variableMapping`, replaced together) make a new version, which every rule using it judges with from then on. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(IdPath),
    request_body = UpdateEvaluatorBody,
    responses(
        (status = 200, description = "Langfuse's shape", body = JudgeDefinition),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_update_evaluator(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(IdPath { id }): Path<IdPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<JudgeDefinition>, ApiError> {
    let body: Value = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let updated = judge_rules::update_definition(&mut client, project.id, id, &body).await?;
    Ok(Json(updated))
}

#[utoipa::path(
    delete,
    path = "/api/public/v2/evaluators/{id}",
    operation_id = "langfuse_delete_evaluator",
    summary = "Delete an evaluator",
    description = "Langfuse-compatible (`langfuse.api.evaluators.delete`): with its versions and the judges rules run it as; a rule left with no evaluator is disabled. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(IdPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Deleted),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_evaluator(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<Deleted>, ApiError> {
    let mut client = state.postgres.get().await?;
    judge_rules::delete_definition(&mut client, project.id, id).await?;
    Ok(Json(Deleted { id }))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/evaluators/{id}/versions",
    operation_id = "langfuse_list_evaluator_versions",
    summary = "List an evaluator's versions",
    description = "Langfuse-compatible (`langfuse.api.evaluators.list_versions`): newest first; `meta.cursor` leads to the next page. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(IdPath, CursorQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = CursorPage<JudgeDefinitionVersion>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_evaluator_versions(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(IdPath { id }): Path<IdPath>,
    Query(page): Query<CursorQuery>,
) -> Result<Json<CursorPage<JudgeDefinitionVersion>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        judge_rules::list_versions(&**client, project.id, id, page.limit, page.cursor.as_deref()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/public/v2/evaluation-rules",
    operation_id = "langfuse_create_evaluation_rule",
    summary = "Create an evaluation rule",
    description = "Langfuse-compatible (`langfuse.api.evaluation_rules.create`): which observations (`filter`, `sampling`) the assigned evaluators judge, each with the rule's variable mapping or its own. An enabled rule starts judging what arrives from then on; it needs at least one evaluator, and each a model connection to call. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = CreateRuleBody,
    responses(
        (status = 200, description = "Langfuse's shape", body = EvaluationRule),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_evaluation_rule(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<EvaluationRule>, ApiError> {
    let body: Value = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let created = judge_rules::create_rule(&mut client, project.id, &body).await?;
    Ok(Json(created))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/evaluation-rules",
    operation_id = "langfuse_list_evaluation_rules",
    summary = "List evaluation rules",
    description = "Langfuse-compatible (`langfuse.api.evaluation_rules.list`): newest first; `meta.cursor` leads to the next page. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(CursorQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = CursorPage<EvaluationRule>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_evaluation_rules(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<CursorQuery>,
) -> Result<Json<CursorPage<EvaluationRule>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        judge_rules::list_rules(&**client, project.id, page.limit, page.cursor.as_deref()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/public/v2/evaluation-rules/{id}",
    operation_id = "langfuse_get_evaluation_rule",
    summary = "Get an evaluation rule",
    description = "Langfuse-compatible (`langfuse.api.evaluation_rules.get`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(IdPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = EvaluationRule),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_evaluation_rule(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<EvaluationRule>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(judge_rules::get_rule(&**client, project.id, id).await?))
}

#[utoipa::path(
    patch,
    path = "/api/public/v2/evaluation-rules/{id}",
    operation_id = "langfuse_update_evaluation_rule",
    summary = "Update an evaluation rule",
    description = "Langfuse-compatible (`langfuse.api.evaluation_rules.update`): the fields given replace the rule's (`evaluatorAssignments` as a whole list); a rule left with no evaluator is disabled. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(IdPath),
    request_body = UpdateRuleBody,
    responses(
        (status = 200, description = "Langfuse's shape", body = EvaluationRule),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_update_evaluation_rule(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(IdPath { id }): Path<IdPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<EvaluationRule>, ApiError> {
    let body: Value = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let updated = judge_rules::update_rule(&mut client, project.id, id, &body).await?;
    Ok(Json(updated))
}

#[utoipa::path(
    delete,
    path = "/api/public/v2/evaluation-rules/{id}",
    operation_id = "langfuse_delete_evaluation_rule",
    summary = "Delete an evaluation rule",
    description = "Langfuse-compatible (`langfuse.api.evaluation_rules.delete`): its judges stop; their scores stay. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(IdPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Deleted),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_evaluation_rule(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<Deleted>, ApiError> {
    let client = state.postgres.get().await?;
    judge_rules::delete_rule(&**client, project.id, id).await?;
    Ok(Json(Deleted { id }))
}
