//! What the edge redacts for each project ([`agenttrace_redact::Rules`]): kept here, handed to
//! the edge with every key check, applied there before anything is buffered. A project that never
//! set its rules gets the default (every secret detector, no personal data).

use agenttrace_redact::Rules;
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::control::{ControlError, Precision, time};

/// A project's rules as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProjectRedaction {
    pub project_id: Uuid,
    pub rules: Rules,
    /// When they last changed; `None` while the project uses the default.
    pub updated_at: Option<String>,
    pub updated_by: Option<Uuid>,
}

/// The project's rules (the default when it never set any).
pub async fn rules(client: &impl GenericClient, project_id: Uuid) -> Result<Rules, ControlError> {
    Ok(get(client, project_id).await?.rules)
}

pub async fn get(client: &impl GenericClient, project_id: Uuid) -> Result<ProjectRedaction, ControlError> {
    let row = client
        .query_opt(
            "SELECT rules, updated_at, updated_by FROM redaction_rules WHERE project_id = $1",
            &[&project_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(ProjectRedaction {
            project_id,
            rules: Rules::default(),
            updated_at: None,
            updated_by: None,
        });
    };
    let rules: serde_json::Value = row.get("rules");
    Ok(ProjectRedaction {
        project_id,
        rules: serde_json::from_value(rules)
            .map_err(|e| ControlError::Internal(format!("stored redaction rules: {e}")))?,
        updated_at: Some(time(&row, "updated_at", Precision::Millis)),
        updated_by: row.get("updated_by"),
    })
}

/// Replaces the project's rules, checked as the edge will compile them.
pub async fn set(
    client: &impl GenericClient,
    project_id: Uuid,
    rules: &Rules,
    by: Option<Uuid>,
) -> Result<ProjectRedaction, ControlError> {
    rules.check().map_err(|invalid| ControlError::Invalid {
        field: "rules",
        message: invalid.to_string(),
    })?;
    let stored = serde_json::to_value(rules).map_err(|e| ControlError::Internal(e.to_string()))?;
    client
        .execute(
            "INSERT INTO redaction_rules (project_id, rules, updated_by) VALUES ($1, $2, $3)
             ON CONFLICT (project_id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now(),
                 updated_by = EXCLUDED.updated_by",
            &[&project_id, &stored, &by],
        )
        .await?;
    get(client, project_id).await
}
