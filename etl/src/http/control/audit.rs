//! The audit log of an organization (`/v1/organizations/{organization}/audit-log`): read by its
//! owners and admins; nothing writes it but the audit middleware and the CLI.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::control::audit::{self, AuditEvent};
use crate::http::auth::{OrganizationAccess, role};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPage {
    /// Entries older than this id (the last `id` of the previous page).
    before: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/organizations/{organization}/audit-log",
    summary = "The organization's audit log",
    description = "Every change made in the organization and its projects (keys, members and roles, prompts and labels, datasets, evaluators, connections, redaction rules, deletions, ...), every export and the sign-ins of its members, newest first: who (`user:<email>`, `key:<public key>`, `organization-key:<id>`, `cli:<os user>`), what (the route or CLI command, its parameters and what the answer named), when, the status, and from where (address, X-Forwarded-For, user agent). Entries cannot be changed or removed. Page with `before`. Admin and up. A session token (`Bearer at-session-…`) or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id"), AuditPage),
    responses(
        (status = 200, description = "OK", body = Vec<AuditEvent>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    Query(page): Query<AuditPage>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        audit::list(&**client, organization.id, page.before, page.limit.unwrap_or(100)).await?,
    ))
}
