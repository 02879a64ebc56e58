//! Comments: `/v1/projects/{project}/comments` (a signed-in member writes as themself and
//! edits or deletes only their own) and Langfuse's `/api/public/comments`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::comments::{self, Comment, CommentFilter};
use crate::http::auth::{Caller, KeyProject, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, bad, json_body, paged};
use crate::http::server::AppState;

/// The `{id}` of a comment's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CommentPath {
    /// The comment's id.
    id: Uuid,
}

/// A new comment on `/v1`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewComment {
    /// `TRACE`, `OBSERVATION`, `SESSION` or `PROMPT`.
    object_type: String,
    object_id: String,
    /// Markdown, 1 to 5000 characters.
    content: String,
}

/// A comment's new text.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentEdit {
    content: String,
}

/// The signed-in user a route acts as; keys are no one.
fn user_of(caller: &Caller) -> Result<Uuid, ApiError> {
    match caller {
        Caller::User(user) => Ok(user.id),
        _ => Err(ApiError::forbidden(
            "only a signed-in person edits or deletes their own comments; sign in (POST /v1/sessions)",
        )),
    }
}

/// The comments of `filter`; `emails` when a signed-in person asks.
async fn list(
    state: &AppState,
    project: Uuid,
    filter: &CommentFilter,
    emails: bool,
) -> Result<Json<Paged<Comment>>, ApiError> {
    let (page, limit) = Page {
        page: filter.page,
        limit: filter.limit,
    }
    .resolve()?;
    let client = state.postgres.get().await?;
    let (mut found, total) = comments::list(&**client, project, filter, page, limit).await?;
    if !emails {
        found = found.into_iter().map(Comment::without_email).collect();
    }
    Ok(paged(found, page, limit, total))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/comments",
    summary = "List comments",
    description = "Oldest first: those of one object (`objectType` and `objectId`), of one author, or all. Paged: `page` (from 1), `limit` (default 50, at most 1000). Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), CommentFilter),
    responses(
        (status = 200, description = "OK", body = Paged<Comment>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_comments(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<CommentFilter>,
) -> Result<Json<Paged<Comment>>, ApiError> {
    let emails = matches!(project.caller, Caller::User(_));
    list(&state, project.id, &filter, emails).await
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/comments",
    summary = "Comment on a trace, observation, session or prompt",
    description = "By the signed-in member (a key's comment has no author). Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewComment,
    responses(
        (status = 201, description = "Created", body = Comment),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "The project holds the most comments it may", body = ErrorBody),
    ),
)]
pub async fn create_comment(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let request: NewComment = json_body(&bytes)?;
    let author = user_of(&project.caller).ok();
    let client = state.postgres.get().await?;
    let comment = comments::create(
        &**client,
        project.id,
        &request.object_type,
        &request.object_id,
        &request.content,
        author,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

#[utoipa::path(
    patch,
    path = "/v1/projects/{project}/comments/{id}",
    summary = "Edit your comment",
    description = "Only its author, signed in. Member role. A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), CommentPath),
    request_body = CommentEdit,
    responses(
        (status = 200, description = "OK", body = Comment),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn edit_comment(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(CommentPath { id }): Path<CommentPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Comment>, ApiError> {
    let request: CommentEdit = json_body(&bytes)?;
    let user = user_of(&project.caller)?;
    let client = state.postgres.get().await?;
    Ok(Json(
        comments::edit(&**client, project.id, id, user, &request.content).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/comments/{id}",
    summary = "Delete a comment",
    description = "Its author, or an admin or owner of the organization (who moderate). A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), CommentPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_comment(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(CommentPath { id }): Path<CommentPath>,
) -> Result<StatusCode, ApiError> {
    let user = user_of(&project.caller)?;
    let client = state.postgres.get().await?;
    comments::delete(&**client, project.id, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Langfuse's `CreateCommentRequest`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LangfuseNewComment {
    /// The key's project.
    project_id: Uuid,
    object_type: String,
    object_id: String,
    content: String,
    /// A member of the project's organization.
    author_user_id: Option<String>,
}

/// Langfuse's `CreateCommentResponse`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedComment {
    id: Uuid,
}

/// The `{commentId}` of Langfuse's comment route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseCommentPath {
    /// The comment's id.
    comment_id: Uuid,
}

#[utoipa::path(
    post,
    path = "/api/public/comments",
    operation_id = "langfuse_create_comment",
    summary = "Comment on a trace, observation, session or prompt",
    description = "Langfuse-compatible (`langfuse.api.comments.create`); `projectId` must be the key's project, `authorUserId` a member of its organization. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = LangfuseNewComment,
    responses(
        (status = 200, description = "Langfuse's shape", body = CreatedComment),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "The project holds the most comments it may", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_comment(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<CreatedComment>, ApiError> {
    let request: LangfuseNewComment = json_body(&bytes)?;
    if request.project_id != project.id {
        return Err(bad(
            "projectId",
            format!("{} is not this key's project, {}", request.project_id, project.id),
        ));
    }
    let author = request
        .author_user_id
        .as_deref()
        .map(|id| {
            id.parse::<Uuid>()
                .map_err(|_| bad("authorUserId", format!("{id:?} is not a user id")))
        })
        .transpose()?;
    let client = state.postgres.get().await?;
    let comment = comments::create(
        &**client,
        project.id,
        &request.object_type,
        &request.object_id,
        &request.content,
        author,
    )
    .await?;
    Ok(Json(CreatedComment { id: comment.id }))
}

#[utoipa::path(
    get,
    path = "/api/public/comments",
    operation_id = "langfuse_list_comments",
    summary = "List comments",
    description = "Langfuse-compatible (`langfuse.api.comments.get`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(CommentFilter),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<Comment>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_comments(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(filter): Query<CommentFilter>,
) -> Result<Json<Paged<Comment>>, ApiError> {
    list(&state, project.id, &filter, false).await
}

#[utoipa::path(
    get,
    path = "/api/public/comments/{commentId}",
    operation_id = "langfuse_get_comment",
    summary = "Get a comment",
    description = "Langfuse-compatible (`langfuse.api.comments.get_by_id`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(LangfuseCommentPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Comment),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_comment(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(LangfuseCommentPath { comment_id }): Path<LangfuseCommentPath>,
) -> Result<Json<Comment>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        comments::get(&**client, project.id, comment_id)
            .await?
            .without_email(),
    ))
}
