//! The invited person's side of invitations: `GET /v1/invitations` lists those addressed to the
//! signed-in user's email; `POST /v1/invitations/{invitation}/accept` makes them a member,
//! `.../decline` only deletes it. Sessions only: an invitation is a person's to answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::control::identity::{self, Organization, ReceivedInvitation, Role, User};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, page_of};
use crate::http::server::AppState;

fn signed_in(caller: Caller) -> Result<User, ApiError> {
    match caller {
        Caller::User(user) => Ok(user),
        _ => Err(ApiError::bad_request(
            "user_required",
            "invitations are a person's to answer: sign in",
        )),
    }
}

#[utoipa::path(
    get,
    path = "/v1/invitations",
    summary = "My pending invitations",
    description = "The invitations addressed to the signed-in user's email, not yet answered nor expired, newest first; paged like datasets. A session token.",
    security(("session" = [])),
    params(Page),
    responses(
        (status = 200, description = "OK", body = Paged<ReceivedInvitation>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn my_invitations(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Paged<ReceivedInvitation>>, ApiError> {
    let user = signed_in(caller)?;
    let client = state.postgres.get().await?;
    page_of(identity::received_invitations(&**client, &user).await?, &page)
}

/// The `{invitation}` of the invited person's routes.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReceivedPath {
    /// The invitation's id.
    invitation: uuid::Uuid,
}

/// The membership an accepted invitation gave.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Joined {
    organization: Organization,
    /// The invitation's role, or the one a member already had.
    role: Role,
}

#[utoipa::path(
    post,
    path = "/v1/invitations/{invitation}/accept",
    summary = "Accept an invitation",
    description = "The signed-in user becomes a member with the invitation's role (a member already keeps theirs). 404 for an invitation that is not theirs, answered or expired. A session token.",
    security(("session" = [])),
    params(ReceivedPath),
    responses(
        (status = 200, description = "OK", body = Joined),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn accept_invitation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(ReceivedPath { invitation }): Path<ReceivedPath>,
) -> Result<Json<Joined>, ApiError> {
    let user = signed_in(caller)?;
    let mut client = state.postgres.get().await?;
    let (organization, role) = identity::answer_invitation(&mut client, &user, invitation, true).await?;
    Ok(Json(Joined { organization, role }))
}

#[utoipa::path(
    post,
    path = "/v1/invitations/{invitation}/decline",
    summary = "Decline an invitation",
    description = "Deletes it. 404 for an invitation that is not the signed-in user's, answered or expired. A session token.",
    security(("session" = [])),
    params(ReceivedPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn decline_invitation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(ReceivedPath { invitation }): Path<ReceivedPath>,
) -> Result<StatusCode, ApiError> {
    let user = signed_in(caller)?;
    let mut client = state.postgres.get().await?;
    identity::answer_invitation(&mut client, &user, invitation, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
