//! `POST /v1/organizations` and an organization's members: listed by any member, managed by
//! admins (making an owner takes an owner).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::identity::{self, Role};
use crate::http::auth::{Caller, OrganizationAccess, role};
use crate::http::error::ApiError;
use crate::http::request::{Page, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrganization {
    name: String,
}

/// A signed-in user founds an organization and becomes its owner.
pub async fn create_organization(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let Caller::User(user) = caller else {
        return Err(ApiError::bad_request(
            "user_required",
            "sign in to create an organization",
        ));
    };
    let request: NewOrganization = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let organization = identity::found_organization(&mut client, &request.name, user.id).await?;
    Ok((StatusCode::CREATED, Json(json!(organization))).into_response())
}

pub async fn list_members(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Viewer>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(identity::members(&**client, organization.id).await?, &page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetMember {
    email: String,
    role: String,
}

/// Adds a user (by email) with a role, or changes their role. Admins manage members; making an
/// owner takes an owner, so the role needed depends on the body and is checked here.
pub async fn set_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(organization): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: SetMember = json_body(&bytes)?;
    let role = Role::parse(&request.role)?;
    let needed = if role == Role::Owner {
        Role::Owner
    } else {
        Role::Admin
    };
    caller.require_role(&state, organization, needed).await?;
    let client = state.postgres.get().await?;
    let user = identity::find_user(&**client, &request.email).await?;
    identity::set_member(&**client, organization, user.id, role).await?;
    Ok(Json(json!({ "user": user, "role": role })))
}

/// The `{user}` of a member route.
#[derive(Deserialize)]
pub struct MemberPath {
    user: Uuid,
}

pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    Path(MemberPath { user }): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    identity::remove_member(&**client, organization.id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of a member (admins and owners; anyone for themselves).
pub async fn revoke_sessions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((organization, user)): Path<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    let own = matches!(&caller, Caller::User(me) if me.id == user);
    if !own {
        caller.require_role(&state, organization, Role::Admin).await?;
    }
    let client = state.postgres.get().await?;
    if identity::role_of(&**client, organization, user).await?.is_none() {
        return Err(ApiError::not_found(format!("no member {user}")));
    }
    let ended = identity::revoke_sessions(&**client, user).await?;
    Ok(Json(json!({ "sessions_ended": ended })))
}
