//! `POST /v1/auth/sign-in`, `POST /v1/auth/sign-out`, `GET /v1/me`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::identity;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::request::json_body;
use crate::http::server::AppState;

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
}

pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: SignIn = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let session = identity::sign_in(&**client, &request.email, &request.password, SESSION_TTL).await??;
    Ok(Json(json!(session)))
}

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

pub async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match caller {
        Caller::User(user) => {
            let client = state.postgres.get().await?;
            let memberships = identity::memberships(&**client, user.id).await?;
            let organizations: Vec<Value> = memberships
                .iter()
                .map(|(organization, role)| json!({ "id": organization.id, "name": organization.name, "role": role }))
                .collect();
            Ok(Json(json!({ "user": user, "organizations": organizations })))
        }
        Caller::Key(key) => Ok(Json(
            json!({ "project_id": key.project_id, "scopes": key.scopes }),
        )),
        Caller::Organization(organization) => Ok(Json(json!({ "organization_id": organization }))),
    }
}
