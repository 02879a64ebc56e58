//! `POST /v1/auth/sign-in`, `POST /v1/auth/sign-out`, `GET /v1/me`.

use std::sync::Arc;
use std::time::Duration;

use agenttrace_schemas::Scope;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::identity::{self, Role, Session, SignInRefused, User};
use crate::http::audit::{Actor, AuditSlot};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::json_body;
use crate::http::server::AppState;
use crate::http::throttle::ClientAddress;

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
}

/// Who the caller is: a user and their organizations, a project key, or an organization key.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Me {
    User {
        user: User,
        organizations: Vec<MyOrganization>,
    },
    Key {
        project_id: Uuid,
        scopes: Vec<Scope>,
    },
    Organization {
        organization_id: Uuid,
    },
}

/// An organization the user belongs to, with their role in it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyOrganization {
    id: Uuid,
    name: String,
    role: Role,
}

/// Checks the password (argon2id on a bounded blocking pool, with no PostgreSQL connection
/// held meanwhile, and against a fixed hash for an unknown email so that timing does not tell
/// which emails have accounts), then opens a session. Failed sign-ins are throttled per client
/// address and per email ([`crate::http::throttle`]).
#[utoipa::path(
    post,
    path = "/v1/auth/sign-in",
    summary = "Sign in",
    description = "`{email, password}` → `{token, user, expires_at}` (12 h). 401 `wrong email or password` for either mistake. Too many failed sign-ins from one address or for one email, or too many sign-ins at once: 429 with `Retry-After`.",
    request_body = SignIn,
    responses(
        (status = 200, description = "The session; its token is shown only here", body = Session),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 429, description = "`{error, message}`; `Retry-After` says how many seconds to wait", body = ErrorBody),
    ),
)]
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    audit: Option<axum::Extension<AuditSlot>>,
    bytes: axum::body::Bytes,
) -> Result<Json<Session>, ApiError> {
    let request: SignIn = json_body(&bytes)?;
    // Who tried, for the audit log, whether or not the password was right: the account's own
    // email when there is one (its organizations' admins then see attempts on it), else what
    // was typed, cut short.
    let name_actor = |email: &str, user_id: Option<uuid::Uuid>| {
        if let Some(axum::Extension(slot)) = &audit {
            slot.set(Actor {
                label: format!("user:{}", email.chars().take(320).collect::<String>()),
                user_id,
                ..Actor::default()
            });
        }
    };
    name_actor(&request.email, None);
    let attempt = state.sign_in.attempt(address, &request.email)?;
    let admitted = match state.sign_in.admit() {
        Ok(admitted) => admitted,
        Err(busy) => {
            // Not checked: it does not count against the address or the email.
            attempt.give_back();
            return Err(busy);
        }
    };
    // The connection goes back to the pool before the password is hashed.
    let account = {
        let client = state.postgres.get().await?;
        identity::credentials(&**client, &request.email).await?
    };
    let (user, hash) = match account {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    if let Some(user) = &user {
        name_actor(&user.email, Some(user.id));
    }
    let matches = state
        .sign_in
        .check_password(admitted, request.password, hash)
        .await?;
    let (Some(user), true) = (user, matches) else {
        return Err(SignInRefused::WrongCredentials.into());
    };
    attempt.give_back();
    let client = state.postgres.get().await?;
    Ok(Json(identity::open_session(&**client, user, SESSION_TTL).await?))
}

#[utoipa::path(
    post,
    path = "/v1/auth/sign-out",
    summary = "Sign out",
    description = "Ends the session the request carries.",
    security(("session" = []), ("apiKey" = [])),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let Caller::User(_) = caller else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "only a session can sign out",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    let client = state.postgres.get().await?;
    identity::sign_out(&**client, token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/me",
    summary = "Who am I",
    description = "The user and their organizations and roles, or the key's project and scopes. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    responses(
        (status = 200, description = "OK", body = Me),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Me>, ApiError> {
    match caller {
        Caller::User(user) => {
            let client = state.postgres.get().await?;
            let organizations = identity::memberships(&**client, user.id)
                .await?
                .into_iter()
                .map(|(organization, role)| MyOrganization {
                    id: organization.id,
                    name: organization.name,
                    role,
                })
                .collect();
            Ok(Json(Me::User { user, organizations }))
        }
        Caller::Key(key) => Ok(Json(Me::Key {
            project_id: key.project_id,
            scopes: key.scopes,
        })),
        Caller::Organization(organization) => Ok(Json(Me::Organization {
            organization_id: organization,
        })),
    }
}
