//! Traces made public: anyone may read a public trace, and only it, at its share link
//! (`#/share/{project}/{trace}` in the web UI; `GET /v1/shared/{project}/traces/{id}`). Only a
//! member makes a trace public, or private again: the trace's own `public` flag (Langfuse's,
//! set by the SDK) is kept but opens nothing, since an ingest-only key can set it.

use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::control::{ControlError, Precision, optional_time};

/// A trace's sharing as a member set it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sharing {
    pub project_id: Uuid,
    pub trace_id: String,
    /// `true`: anyone with the link reads the trace; `false` or null (no member said): only
    /// the project's members.
    #[schema(required = true)]
    pub public: Option<bool>,
    /// The link's path in the web UI (relative to its address).
    pub share_path: String,
    #[schema(required = true)]
    pub changed_at: Option<String>,
}

fn share_path(project_id: Uuid, trace_id: &str) -> String {
    format!("#/share/{project_id}/{}", url_escape(trace_id))
}

/// Percent-encodes what a hash route's segment cannot hold.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Sets whether a trace is public.
pub async fn set(
    client: &impl GenericClient,
    project_id: Uuid,
    trace_id: &str,
    public: bool,
    by: Option<Uuid>,
) -> Result<Sharing, ControlError> {
    if trace_id.is_empty() || trace_id.len() > 1000 {
        return Err(ControlError::Invalid {
            field: "id",
            message: "a trace id is 1 to 1000 characters".into(),
        });
    }
    client
        .execute(
            "INSERT INTO trace_shares (project_id, trace_id, public, changed_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, trace_id) DO UPDATE SET public = EXCLUDED.public,
                changed_by = EXCLUDED.changed_by, changed_at = now()",
            &[&project_id, &trace_id, &public, &by],
        )
        .await?;
    get(client, project_id, trace_id).await
}

/// A trace's sharing (`public` null when no member set it: private).
pub async fn get(
    client: &impl GenericClient,
    project_id: Uuid,
    trace_id: &str,
) -> Result<Sharing, ControlError> {
    let row = client
        .query_opt(
            "SELECT public, changed_at FROM trace_shares WHERE project_id = $1 AND trace_id = $2",
            &[&project_id, &trace_id],
        )
        .await?;
    Ok(Sharing {
        project_id,
        trace_id: trace_id.to_owned(),
        public: row.as_ref().map(|row| row.get("public")),
        changed_at: row
            .as_ref()
            .and_then(|row| optional_time(row, "changed_at", Precision::Millis)),
        share_path: share_path(project_id, trace_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_paths_escape_what_a_route_cannot_hold() {
        let project = Uuid::nil();
        assert_eq!(
            share_path(project, "a/b c#d"),
            format!("#/share/{project}/a%2Fb%20c%23d")
        );
    }
}
