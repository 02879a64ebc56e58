//! The audit log: entries appended by the HTTP layer ([`crate::http::audit`]) for every change a
//! caller makes, and by the CLI for its own; read by organization owners and admins. The table
//! refuses updates and deletes (a trigger), so nothing here can edit the trail.

use serde::Serialize;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, time};

/// One change to record.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    /// The organization acted in; found from `project_id` when absent.
    pub organization_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub actor: String,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target: serde_json::Value,
    pub status: u16,
    pub address: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
}

/// An entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Increasing: `before` pages by it.
    pub id: i64,
    pub at: String,
    pub organization_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// `user:<email>`, `key:<public key>`, `organization-key:<id>`, `cli:<os user>`, `anonymous`.
    pub actor: String,
    pub actor_user_id: Option<Uuid>,
    /// The route (`POST /v1/projects/{project}/api-keys`) or CLI command (`cli key create`).
    pub action: String,
    /// The route's parameters, and what the answer named (id, name, version, ...).
    #[schema(value_type = Object)]
    pub target: serde_json::Value,
    /// The HTTP status answered (0 for the CLI).
    pub status: i16,
    pub address: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
}

const COLUMNS: &str = "id, at, organization_id, project_id, actor, actor_user_id, action, target, status, \
     address, forwarded_for, user_agent";

fn from_row(row: &Row) -> AuditEvent {
    AuditEvent {
        id: row.get("id"),
        at: time(row, "at", Precision::Millis),
        organization_id: row.get("organization_id"),
        project_id: row.get("project_id"),
        actor: row.get("actor"),
        actor_user_id: row.get("actor_user_id"),
        action: row.get("action"),
        target: row.get("target"),
        status: row.get("status"),
        address: row.get("address"),
        forwarded_for: row.get("forwarded_for"),
        user_agent: row.get("user_agent"),
    }
}

/// Bounds a caller-supplied text kept in the log (a user agent, a forwarded-for list).
fn bounded(text: Option<String>) -> Option<String> {
    text.map(|mut text| {
        if text.len() > 512 {
            let mut end = 512;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text.replace('\0', "")
    })
}

/// Appends one entry.
pub async fn record(client: &impl GenericClient, event: NewAuditEvent) -> Result<(), ControlError> {
    let status = i16::try_from(event.status).unwrap_or(i16::MAX);
    client
        .execute(
            "INSERT INTO audit_events (organization_id, project_id, actor, actor_user_id, action, target,
                 status, address, forwarded_for, user_agent)
             VALUES (coalesce($1, (SELECT organization_id FROM projects WHERE id = $2)), $2, $3, $4, $5, $6,
                 $7, $8, $9, $10)",
            &[
                &event.organization_id,
                &event.project_id,
                &event.actor,
                &event.actor_user_id,
                &event.action,
                &event.target,
                &status,
                &event.address,
                &bounded(event.forwarded_for),
                &bounded(event.user_agent),
            ],
        )
        .await?;
    Ok(())
}

/// The organization's entries, newest first, older than `before` when given: those in the
/// organization, and the sign-ins (right or wrong) and sign-outs of its current members (not
/// what they did in other organizations).
pub async fn list(
    client: &impl GenericClient,
    organization_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEvent>, ControlError> {
    let before = before.unwrap_or(i64::MAX);
    Ok(client
        .query(
            &format!(
                // Two index range reads (by organization, and by member), each a page long.
                "SELECT {COLUMNS} FROM (
                     (SELECT * FROM audit_events WHERE organization_id = $1 AND id < $2
                      ORDER BY organization_id, id DESC LIMIT $3)
                     UNION ALL
                     (SELECT * FROM audit_events WHERE organization_id IS NULL AND id < $2
                        AND action IN ('POST /v1/auth/sign-in', 'POST /v1/auth/sign-out')
                        AND actor_user_id IN (SELECT user_id FROM organization_members WHERE organization_id = $1)
                      ORDER BY id DESC LIMIT $3)
                 ) entries ORDER BY id DESC LIMIT $3"
            ),
            &[&organization_id, &before, &limit.clamp(1, 1000)],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}
