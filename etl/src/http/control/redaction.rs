//! A project's redaction rules (`/v1/projects/{project}/redaction`): read by anyone who reads
//! the project, changed by its admins (turning a detector off lets secrets be stored).

use std::sync::Arc;

use agenttrace_redact::Rules;
use axum::Json;
use axum::extract::State;

use crate::control::redaction::{self, ProjectRedaction};
use crate::http::auth::{Caller, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::json_body;
use crate::http::server::AppState;

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/redaction",
    summary = "What the edge redacts for the project",
    description = "The built-in detectors that are on, the project's own patterns, whether replacements carry a digest, whether file paths are searched. A project that never set them has the default: every secret detector, no personal data. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "OK", body = ProjectRedaction),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_redaction(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
) -> Result<Json<ProjectRedaction>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(redaction::get(&**client, project.id).await?))
}

#[utoipa::path(
    put,
    path = "/v1/projects/{project}/redaction",
    summary = "Set what the edge redacts for the project",
    description = "`{detectors, custom, hash, paths}`: detectors from `llm_api_key`, `cloud_key`, `jwt`, `bearer_token`, `private_key`, `url_password`, `email`, `phone`, `card_number`, `iban`, `ip_address`; at most 20 custom patterns `{name, pattern}` (Rust regex syntax, 500 characters). The edge applies them to what arrives after its key cache expires (30 s by default); what is stored stays as it was. Admin role, or `admin` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = Rules,
    responses(
        (status = 200, description = "OK", body = ProjectRedaction),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn set_redaction(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    bytes: axum::body::Bytes,
) -> Result<Json<ProjectRedaction>, ApiError> {
    let rules: Rules = json_body(&bytes)?;
    let by = match &project.caller {
        Caller::User(user) => Some(user.id),
        _ => None,
    };
    let client = state.postgres.get().await?;
    Ok(Json(redaction::set(&**client, project.id, &rules, by).await?))
}
