//! Comments on what agents did: a trace, an observation, a session or a prompt, by a member of
//! the project's organization. Edited by their author only; deleted by their author or by the
//! organization's admins and owners (who moderate). A project holds at most [`MAX_COMMENTS`].

use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::identity::Role;
use crate::control::{ControlError, Precision, identity, invalid, time};

/// A comment as the API shows it (Langfuse's `Comment`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `TRACE`, `OBSERVATION`, `SESSION` or `PROMPT`.
    pub object_type: String,
    pub object_id: String,
    /// Markdown, 1 to 5000 characters.
    pub content: String,
    #[schema(required = true)]
    pub author_user_id: Option<Uuid>,
    /// The author's name, or their email when they gave none (shown to signed-in people only).
    #[schema(required = true)]
    pub author_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Whether `author_name` is an email.
    #[serde(skip)]
    pub author_name_is_email: bool,
}

/// Which comments to list: those of one object, or of one author.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommentFilter {
    pub page: Option<i64>,
    pub limit: Option<i64>,
    /// `TRACE`, `OBSERVATION`, `SESSION` or `PROMPT`.
    pub object_type: Option<String>,
    /// Needs `objectType`.
    pub object_id: Option<String>,
    pub author_user_id: Option<Uuid>,
}

const OBJECT_TYPES: [&str; 4] = ["TRACE", "OBSERVATION", "SESSION", "PROMPT"];

impl Comment {
    const COLUMNS: &'static str = "c.id, c.project_id, c.object_type, c.object_id, c.content, \
        c.author_user_id, coalesce(u.name, u.email) AS author_name, u.name IS NULL AS author_name_is_email, \
        c.created_at, c.updated_at";

    fn from_row(row: &Row) -> Self {
        Comment {
            id: row.get("id"),
            project_id: row.get("project_id"),
            object_type: row.get("object_type"),
            object_id: row.get("object_id"),
            content: row.get("content"),
            author_user_id: row.get("author_user_id"),
            author_name: row.get("author_name"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
            author_name_is_email: row
                .get::<_, Option<bool>>("author_name_is_email")
                .unwrap_or(false),
        }
    }

    /// As an API key sees it: members' emails are for people, not scripts.
    pub fn without_email(mut self) -> Self {
        if self.author_name_is_email {
            self.author_name = None;
        }
        self
    }
}

/// The object type as stored (`TRACE`, ...), from any case.
pub fn object_type(text: &str) -> Result<&'static str, ControlError> {
    OBJECT_TYPES
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            invalid(
                "objectType",
                format!("{text:?}: use TRACE, OBSERVATION, SESSION or PROMPT"),
            )
        })
}

fn check_content(content: &str) -> Result<(), ControlError> {
    let length = content.chars().count();
    if content.trim().is_empty() || length > 5000 {
        return Err(invalid("content", format!("1 to 5000 characters, not {length}")));
    }
    Ok(())
}

fn check_object_id(object_id: &str) -> Result<(), ControlError> {
    if object_id.is_empty() || object_id.len() > 1000 {
        return Err(invalid("objectId", "1 to 1000 characters"));
    }
    Ok(())
}

/// The most comments a project holds.
pub const MAX_COMMENTS: i64 = 100_000;

/// Adds a comment by `author` (a member of the project's organization, when named).
pub async fn create(
    client: &impl GenericClient,
    project_id: Uuid,
    object_type_text: &str,
    object_id: &str,
    content: &str,
    author: Option<Uuid>,
) -> Result<Comment, ControlError> {
    let kind = object_type(object_type_text)?;
    check_object_id(object_id)?;
    check_content(content)?;
    if let Some(author) = author
        && identity::role_in_project(client, project_id, author)
            .await?
            .is_none()
    {
        return Err(invalid(
            "authorUserId",
            format!("user {author} is not a member of this project's organization"),
        ));
    }
    // The count and the insert are one statement, so a flood of comments stops at the cap
    // (give or take the requests that run at the same moment).
    let row = client
        .query_opt(
            &format!(
                "WITH c AS (INSERT INTO comments (project_id, object_type, object_id, content, author_user_id)
                            SELECT $1, $2, $3, $4, $5
                            WHERE (SELECT count(*) FROM comments WHERE project_id = $1) < $6
                            RETURNING *)
                 SELECT {} FROM c LEFT JOIN users u ON u.id = c.author_user_id",
                Comment::COLUMNS
            ),
            &[&project_id, &kind, &object_id, &content, &author, &MAX_COMMENTS],
        )
        .await?;
    row.map(|row| Comment::from_row(&row)).ok_or_else(|| {
        ControlError::Conflict(format!(
            "the project holds {MAX_COMMENTS} comments, the most it may; delete some before adding more"
        ))
    })
}

pub async fn get(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Comment, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM comments c LEFT JOIN users u ON u.id = c.author_user_id
                 WHERE c.project_id = $1 AND c.id = $2",
                Comment::COLUMNS
            ),
            &[&project_id, &id],
        )
        .await?
        .map(|row| Comment::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("comment {id}")))
}

/// A page of the project's comments, oldest first (a conversation reads down); and how many.
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    filter: &CommentFilter,
    page: i64,
    limit: i64,
) -> Result<(Vec<Comment>, i64), ControlError> {
    let kind = filter.object_type.as_deref().map(object_type).transpose()?;
    if filter.object_id.is_some() && kind.is_none() {
        return Err(invalid("objectId", "needs objectType"));
    }
    let rows = client
        .query(
            &format!(
                "SELECT {}, count(*) OVER () AS total FROM comments c LEFT JOIN users u ON u.id = c.author_user_id
                 WHERE c.project_id = $1 AND ($2::text IS NULL OR c.object_type = $2)
                   AND ($3::text IS NULL OR c.object_id = $3) AND ($4::uuid IS NULL OR c.author_user_id = $4)
                 ORDER BY c.created_at, c.id LIMIT $5 OFFSET $6",
                Comment::COLUMNS
            ),
            &[
                &project_id,
                &kind,
                &filter.object_id,
                &filter.author_user_id,
                &limit,
                &crate::control::offset(page, limit),
            ],
        )
        .await?;
    let total = rows.first().map_or(0, |row| row.get("total"));
    Ok((rows.iter().map(Comment::from_row).collect(), total))
}

/// The comment `id`, if `user` wrote it; a comment of someone else's is refused.
async fn own(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<(), ControlError> {
    let comment = get(client, project_id, id).await?;
    if comment.author_user_id != Some(user) {
        return Err(ControlError::Forbidden(format!(
            "comment {id} is someone else's: only its author may change it, and only its author or an admin delete it"
        )));
    }
    Ok(())
}

pub async fn edit(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    user: Uuid,
    content: &str,
) -> Result<Comment, ControlError> {
    check_content(content)?;
    own(client, project_id, id, user).await?;
    client
        .execute(
            "UPDATE comments SET content = $3, updated_at = now() WHERE project_id = $1 AND id = $2",
            &[&project_id, &id, &content],
        )
        .await?;
    get(client, project_id, id).await
}

/// Deletes a comment: its author may, and so may the organization's admins and owners, who
/// moderate (a comment written with an API key has no author, and a pasted secret must go).
pub async fn delete(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<(), ControlError> {
    let moderator = matches!(
        identity::role_in_project(client, project_id, user).await?,
        Some(Role::Admin | Role::Owner)
    );
    if moderator {
        get(client, project_id, id).await?;
    } else {
        own(client, project_id, id, user).await?;
    }
    client
        .execute(
            "DELETE FROM comments WHERE project_id = $1 AND id = $2",
            &[&project_id, &id],
        )
        .await?;
    Ok(())
}
