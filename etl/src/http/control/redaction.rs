//! A project's redaction rules (`/v1/projects/{project}/redaction`): read by anyone who reads
//! the project, changed by its admins (turning a detector off lets secrets be stored).

use std::sync::Arc;

use std::collections::BTreeMap;

use agenttrace_redact::{Counts, Redactor, Rules};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::control::redaction::{self, ProjectRedaction};
use crate::http::auth::{Caller, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{bad, json_body};
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

/// A text to redact, with the rules to try (the project's when absent).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactionPreview {
    /// At most 64 KiB.
    text: String,
    rules: Option<Rules>,
}

/// The text as the edge would store it, and what was replaced.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RedactedPreview {
    redacted: String,
    /// Replacements by kind.
    counts: BTreeMap<String, u64>,
}

const MAX_PREVIEW_BYTES: usize = 64 * 1024;

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/redaction/preview",
    summary = "Try redaction rules on a text",
    description = "`{text, rules?}`: the text as the edge would store it under `rules` (the project's when absent), and the replacements by kind. Nothing is stored. Digests here use a key of the request's own, never the stored digests' key. At most 4 previews at once, 1 per caller. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = RedactionPreview,
    responses(
        (status = 200, description = "OK", body = RedactedPreview),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn preview_redaction(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    bytes: axum::body::Bytes,
) -> Result<Json<RedactedPreview>, ApiError> {
    let preview: RedactionPreview = json_body(&bytes)?;
    if preview.text.len() > MAX_PREVIEW_BYTES {
        return Err(bad(
            "text",
            format!("{} bytes; at most {MAX_PREVIEW_BYTES}", preview.text.len()),
        ));
    }
    let rules = match preview.rules {
        Some(rules) => rules,
        None => redaction::rules(&**state.postgres.get().await?, project.id).await?,
    };
    // A key of this request's own: a preview must not be an oracle for the digests stored
    // (a viewer could otherwise try candidates for a redacted phone number).
    let key: [u8; 32] = rand::random();
    let redactor = Redactor::new(&rules, &key).map_err(|invalid| bad("rules", invalid.to_string()))?;
    let mut counts = Counts::default();
    let redacted = redactor
        .redact_text(&preview.text, &mut counts)
        .unwrap_or(preview.text);
    Ok(Json(RedactedPreview {
        redacted,
        counts: counts.0,
    }))
}
