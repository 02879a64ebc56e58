//! `POST /v1/organizations` and an organization's members: listed by any member, invited and
//! managed by admins (inviting, changing or removing an owner takes an owner; the last owner
//! stays). The invited person's side is in [`invitations`](super::invitations).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::identity::{self, Invitation, Member, MemberChange, Organization, Role};
use crate::http::auth::{Caller, OrganizationAccess, role};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, page_of};
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrganization {
    name: String,
}

/// A signed-in user founds an organization and becomes its owner.
#[utoipa::path(
    post,
    path = "/v1/organizations",
    summary = "Create an organization",
    description = "`{name}`; the signed-in user becomes its owner.",
    security(("session" = []), ("apiKey" = [])),
    request_body = NewOrganization,
    responses(
        (status = 201, description = "OK", body = Organization),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_organization(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    let Caller::User(user) = caller else {
        return Err(ApiError::bad_request(
            "user_required",
            "sign in to create an organization",
        ));
    };
    let request: NewOrganization = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    let organization = identity::found_organization(&mut client, &request.name, user.id).await?;
    Ok((StatusCode::CREATED, Json(organization)))
}

#[utoipa::path(
    get,
    path = "/v1/organizations/{organization}/members",
    summary = "List members",
    description = "Paged like datasets. Viewer and up. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Member>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_members(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Viewer>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Member>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(identity::members(&**client, organization.id).await?, &page)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetMember {
    email: String,
    role: String,
}

/// Invites someone (by email) with a role, or changes a member's role. Admins manage members;
/// making, demoting or removing an owner takes an owner, and the last owner stays: the role
/// needed depends on the body and on the member's current role, so it is checked in the
/// change's transaction ([`identity::change_member`], [`identity::invite`]).
///
/// An email that is no member gets an invitation, and the answer is the same whether or not it
/// has an account (nothing about the account, which becomes a member only once its owner
/// accepts): adding members cannot tell which emails have accounts, nor make anyone a member
/// without their consent.
#[utoipa::path(
    post,
    path = "/v1/organizations/{organization}/members",
    summary = "Invite a member or change a role",
    description = "`{email, role}`; admin and up, owner to invite an owner or to change an owner's role. A member's email changes their role (200, the member); any other email gets an invitation (201, the same answer whether or not the email has an account), which its person sees at `GET /v1/invitations` and accepts there. 409 when a change would leave no owner. A session token (`Bearer at-session-…`) or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    request_body = SetMember,
    responses(
        (status = 200, description = "The member's new role", body = Member),
        (status = 201, description = "Invited: the person becomes a member once they accept", body = Invitation),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: the organization would have no owner", body = ErrorBody),
    ),
)]
pub async fn set_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(organization): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: SetMember = json_body(&bytes)?;
    let role = Role::parse(&request.role)?;
    let actor = caller.actor(organization)?;
    let needed = if role == Role::Owner {
        Role::Owner
    } else {
        Role::Admin
    };
    caller.require_role(&state, organization, needed).await?;
    let mut client = state.postgres.get().await?;
    match identity::member_by_email(&**client, organization, &request.email).await? {
        Some(member) => {
            let change = MemberChange::SetRole(role);
            identity::change_member(&mut client, organization, member.user.id, change, actor).await?;
            Ok(Json(Member {
                user: member.user,
                role,
            })
            .into_response())
        }
        None => {
            let invitation = identity::invite(&mut client, organization, &request.email, role, actor).await?;
            Ok((StatusCode::CREATED, Json(invitation)).into_response())
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/organizations/{organization}/invitations",
    summary = "List pending invitations",
    description = "Invitations not yet accepted, declined or expired (14 days), oldest first; paged like datasets. Admin and up. A session token (`Bearer at-session-…`) or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Invitation>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_invitations(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Invitation>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(identity::invitations(&**client, organization.id).await?, &page)
}

/// The `{invitation}` of an invitation route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InvitationPath {
    /// The invitation's id.
    invitation: Uuid,
}

#[utoipa::path(
    delete,
    path = "/v1/organizations/{organization}/invitations/{invitation}",
    summary = "Withdraw an invitation",
    description = "Admin and up. A session token (`Bearer at-session-…`) or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id"), InvitationPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn cancel_invitation(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    Path(InvitationPath { invitation }): Path<InvitationPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    identity::cancel_invitation(&**client, organization.id, invitation).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `{user}` of a member route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    user: Uuid,
}

#[utoipa::path(
    delete,
    path = "/v1/organizations/{organization}/members/{user}",
    summary = "Remove a member",
    description = "Admin and up, owner to remove an owner; 409 for the last owner. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("organization" = uuid::Uuid, Path, description = "The organization's id"), MemberPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: the organization would have no owner", body = ErrorBody),
    ),
)]
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    organization: OrganizationAccess<role::Admin>,
    Path(MemberPath { user }): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let actor = organization.caller.actor(organization.id)?;
    let mut client = state.postgres.get().await?;
    identity::change_member(&mut client, organization.id, user, MemberChange::Remove, actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions `POST .../sessions/revoke` ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    sessions_ended: u64,
}

/// Ends every session of the signed-in user, signing them out everywhere. Only for the user
/// themself: no organization role reaches a person's sessions, which open every organization
/// they belong to (an operator can, with `agenttrace user revoke-sessions`).
#[utoipa::path(
    post,
    path = "/v1/organizations/{organization}/members/{user}/sessions/revoke",
    summary = "End every session of a member",
    description = "The member themselves only (a session token): no role in an organization reaches sessions that open the others. `{sessions_ended}`.",
    security(("session" = [])),
    responses(
        (status = 200, description = "OK", body = SessionsEnded),
        (status = 401, description = "`{error, message}`", body = ErrorBody),
        (status = 403, description = "`{error, message}`", body = ErrorBody),
        (status = 404, description = "`{error, message}`", body = ErrorBody),
    ),
)]
pub async fn revoke_sessions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((organization, user)): Path<(Uuid, Uuid)>,
) -> Result<Json<SessionsEnded>, ApiError> {
    if !matches!(&caller, Caller::User(me) if me.id == user) {
        return Err(ApiError::forbidden(
            "only the user themself can end all of their sessions (an operator can, with `agenttrace user revoke-sessions`)",
        ));
    }
    let client = state.postgres.get().await?;
    if identity::role_of(&**client, organization, user).await?.is_none() {
        return Err(ApiError::not_found(format!("no member {user}")));
    }
    let ended = identity::revoke_sessions(&**client, user).await?;
    Ok(Json(SessionsEnded {
        sessions_ended: ended,
    }))
}
