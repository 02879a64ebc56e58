//! A project's model connections, where its LLM judges call: ours under
//! `/v1/projects/{project}/connections` and Langfuse's `/api/public/llm-connections` (its
//! Python SDK's `langfuse.api.llm_connections`), with one shape. The secret key goes in and
//! never comes out: every answer shows its hint.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::control::connections::{self, Connection, ConnectionUpsert};
use crate::http::auth::{KeyProject, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, paged};
use crate::http::server::AppState;
use crate::judge::provider;

/// The longest a "test connection" waits for the provider.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Langfuse's `UpsertLlmConnectionRequest`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpsertBody {
    /// The connection's name, unique in the project: the upsert key.
    provider: String,
    /// `openai` (also for any OpenAI-compatible server: vLLM, Ollama, llama.cpp, gateways),
    /// `azure` or `anthropic`.
    adapter: String,
    /// The provider's API key: sealed at rest, never returned.
    secret_key: String,
    #[serde(rename = "baseURL")]
    base_url: Option<String>,
    custom_models: Option<Vec<String>>,
    with_default_models: Option<bool>,
    /// Sent with every call; the values are sealed like the key.
    extra_headers: Option<BTreeMap<String, String>>,
    config: Option<Value>,
}

impl UpsertBody {
    fn into_upsert(self) -> ConnectionUpsert {
        ConnectionUpsert {
            provider: self.provider,
            adapter: self.adapter,
            secret_key: self.secret_key,
            base_url: self.base_url,
            custom_models: self.custom_models,
            with_default_models: self.with_default_models,
            extra_headers: self.extra_headers,
            config: self.config,
        }
    }
}

/// The `{id}` of a connection's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConnectionPath {
    id: Uuid,
}

/// Langfuse's `DeleteLlmConnectionResponse`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionDeleted {
    message: String,
    /// LLM judges that call through it, now stopped.
    stopped_evaluators: u64,
}

/// What "test connection" found: one small judgment asked of the model.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    ok: bool,
    /// The model asked (the body's, else the connection's default).
    model: String,
    /// What the provider says answered.
    #[schema(required = true)]
    answered_by: Option<String>,
    #[schema(required = true)]
    latency_ms: Option<u64>,
    #[schema(required = true)]
    input_tokens: Option<u64>,
    #[schema(required = true)]
    output_tokens: Option<u64>,
    /// `retry` (rate limited, overloaded, unreachable), `blocked` (key, credit, model or
    /// address wrong) or `invalid` (an answer that is not the JSON asked for).
    #[schema(required = true)]
    error_kind: Option<String>,
    #[schema(required = true)]
    error: Option<String>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// The model to ask; the connection's `config.model` when absent.
    model: Option<String>,
}

async fn upsert(state: &AppState, project_id: Uuid, bytes: &[u8]) -> Result<(Connection, bool), ApiError> {
    let request: UpsertBody = json_body(bytes)?;
    let client = state.postgres.get().await?;
    Ok(connections::upsert(
        &**client,
        state.sealer.as_ref(),
        project_id,
        &request.into_upsert(),
    )
    .await?)
}

async fn list(state: &AppState, project_id: Uuid, page: &Page) -> Result<Json<Paged<Connection>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = connections::list(&**client, project_id, page, limit).await?;
    Ok(paged(found, page, limit, total))
}

async fn delete(state: &AppState, project_id: Uuid, id: Uuid) -> Result<Json<ConnectionDeleted>, ApiError> {
    let client = state.postgres.get().await?;
    let stopped = connections::delete(&**client, project_id, id).await?;
    Ok(Json(ConnectionDeleted {
        message: "LLM connection deleted".into(),
        stopped_evaluators: stopped,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/connections",
    summary = "List model connections",
    description = "By name; the secret key shows as its hint only. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Connection>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_connections(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Connection>>, ApiError> {
    list(&state, project.id, &page).await
}

#[utoipa::path(
    put,
    path = "/v1/projects/{project}/connections",
    summary = "Create or replace a model connection",
    description = "Keyed by `provider` (the connection's name). The key is sealed with AES-256-GCM and never returned. 201 when new, 200 when replaced. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = UpsertBody,
    responses(
        (status = 200, description = "Replaced", body = Connection),
        (status = 201, description = "Created", body = Connection),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn upsert_connection(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    let (connection, created) = upsert(&state, project.id, &bytes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(connection)))
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/connections/{id}",
    summary = "Delete a model connection",
    description = "The LLM judges that call through it stop, blocked with the reason, until a connection of that name is stored again. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ConnectionPath),
    responses(
        (status = 200, description = "OK", body = ConnectionDeleted),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_connection(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(ConnectionPath { id }): Path<ConnectionPath>,
) -> Result<Json<ConnectionDeleted>, ApiError> {
    delete(&state, project.id, id).await
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/connections/{id}/test",
    summary = "Test a model connection",
    description = "Asks the model one tiny structured judgment and reports what happened: 200 either way, with `ok` and, on failure, what kind (`retry`, `blocked`, `invalid`) and the provider's words. Costs one small call. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ConnectionPath),
    request_body = TestBody,
    responses(
        (status = 200, description = "OK", body = ConnectionTest),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn test_connection(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(ConnectionPath { id }): Path<ConnectionPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<ConnectionTest>, ApiError> {
    let request: TestBody = if bytes.is_empty() {
        TestBody::default()
    } else {
        json_body(&bytes)?
    };
    let client = state.postgres.get().await?;
    let callable =
        connections::callable(&**client, state.sealer.as_ref(), project.id, &id.to_string()).await?;
    drop(client);
    let model = request
        .model
        .or_else(|| callable.connection.default_model().map(str::to_owned))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                "model: name the model to test, or set the connection's config.model",
            )
        })?;
    // Within the route's own deadline, whatever the connection's timeout: a test that hangs
    // holds one of the few test slots every tenant shares.
    let mut endpoint = callable.endpoint;
    endpoint.timeout = endpoint.timeout.min(TEST_TIMEOUT);
    let outcome = provider::test_call(&state.model_client, &endpoint, &model).await;
    Ok(Json(match outcome {
        Ok(reply) => ConnectionTest {
            ok: true,
            model,
            answered_by: Some(reply.model),
            latency_ms: Some(reply.latency.as_millis() as u64),
            input_tokens: Some(reply.usage.all_input()),
            output_tokens: Some(reply.usage.output),
            error_kind: None,
            error: None,
        },
        Err(error) => ConnectionTest {
            ok: false,
            model,
            answered_by: None,
            latency_ms: None,
            input_tokens: None,
            output_tokens: None,
            error_kind: Some(error.kind().into()),
            error: Some(error.to_string()),
        },
    }))
}

#[utoipa::path(
    get,
    path = "/api/public/llm-connections",
    operation_id = "langfuse_list_llm_connections",
    summary = "List LLM connections",
    description = "Langfuse-compatible (`langfuse.api.llm_connections.list`); the secret key shows as its hint only. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(Page),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<Connection>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_connections(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Connection>>, ApiError> {
    list(&state, project.id, &page).await
}

#[utoipa::path(
    put,
    path = "/api/public/llm-connections",
    operation_id = "langfuse_upsert_llm_connection",
    summary = "Create or replace an LLM connection",
    description = "Langfuse-compatible (`langfuse.api.llm_connections.upsert`), keyed by `provider`; the key is sealed and never returned. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = UpsertBody,
    responses(
        (status = 200, description = "Langfuse's shape", body = Connection),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_upsert_connection(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(upsert(&state, project.id, &bytes).await?.0))
}

#[utoipa::path(
    delete,
    path = "/api/public/llm-connections/{id}",
    operation_id = "langfuse_delete_llm_connection",
    summary = "Delete an LLM connection",
    description = "Langfuse-compatible (`langfuse.api.llm_connections.delete`); the judges that call through it stop. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(ConnectionPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = ConnectionDeleted),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_connection(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(ConnectionPath { id }): Path<ConnectionPath>,
) -> Result<Json<ConnectionDeleted>, ApiError> {
    delete(&state, project.id, id).await
}
