//! Evaluators: a kind (what is checked), its settings, and an optional cron schedule of its
//! own (without one it runs with the `evaluate` job). The job that runs them is in `jobs/`.

use std::str::FromStr;

use cron::Schedule;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::ControlError;

/// The evaluator kinds the evaluation job implements (PostgreSQL checks the same list).
pub const KINDS: &[&str] = &[
    "regex",
    "contains",
    "not_contains",
    "valid_json",
    "json_schema",
    "latency_threshold",
    "cost_threshold",
    "token_threshold",
    "tool_call_failure",
    "exact_match",
    "fuzzy_match",
    "llm_judge",
];

/// An LLM judge's config, checked, with its connection present in the project.
async fn check_judge(
    client: &impl GenericClient,
    project_id: Uuid,
    config: &Value,
) -> Result<(), ControlError> {
    let judge = crate::judge::template::JudgeConfig::parse(config).map_err(|e| ControlError::Invalid {
        field: "config",
        message: e.to_string(),
    })?;
    let found = client
        .query_opt(
            "SELECT 1 FROM llm_connections WHERE project_id = $1 AND provider = $2",
            &[&project_id, &judge.connection],
        )
        .await?;
    if found.is_none() {
        return Err(ControlError::Invalid {
            field: "config",
            message: format!(
                "config.connection: the project has no model connection {:?}; add one first (PUT .../connections)",
                judge.connection
            ),
        });
    }
    Ok(())
}

/// Parses a cron expression with seconds, explaining the format when it is wrong.
pub fn parse_schedule(expression: &str) -> Result<Schedule, String> {
    Schedule::from_str(expression.trim()).map_err(|e| {
        format!("invalid cron expression {expression:?} ({e}); use `sec min hour day month weekday`")
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvaluator {
    pub project_id: Uuid,
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub schedule: Option<String>,
}

/// Whether [`add`] created the evaluator or found one of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Created,
    Exists,
}

/// Adds an evaluator, keeping an existing one of the same name in the project as it is.
pub async fn add(client: &impl GenericClient, evaluator: &NewEvaluator) -> Result<Added, ControlError> {
    if !KINDS.contains(&evaluator.kind.as_str()) {
        return Err(ControlError::Invalid {
            field: "kind",
            message: format!(
                "unknown evaluator kind {:?}; kinds are {}",
                evaluator.kind,
                KINDS.join(", ")
            ),
        });
    }
    if !evaluator.config.is_object() {
        return Err(ControlError::Invalid {
            field: "config",
            message: "must be a JSON object".into(),
        });
    }
    if let Some(schedule) = &evaluator.schedule {
        parse_schedule(schedule).map_err(|message| ControlError::Invalid {
            field: "schedule",
            message,
        })?;
    }
    if evaluator.kind == "llm_judge" {
        check_judge(client, evaluator.project_id, &evaluator.config).await?;
    }
    let added = client
        .execute(
            "INSERT INTO evaluators (project_id, name, kind, config, schedule) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (project_id, name) DO NOTHING",
            &[
                &evaluator.project_id,
                &evaluator.name,
                &evaluator.kind,
                &evaluator.config,
                &evaluator.schedule,
            ],
        )
        .await?;
    Ok(if added == 1 { Added::Created } else { Added::Exists })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Evaluator {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub config: Value,
    #[schema(required = true)]
    pub schedule: Option<String>,
    pub active: bool,
}

impl Evaluator {
    /// What [`Evaluator::from_row`] reads, selected from `evaluators`.
    pub const COLUMNS: &'static str = "id, name, kind, config, schedule, active";

    pub fn from_row(row: &Row) -> Self {
        Evaluator {
            id: row.get("id"),
            name: row.get("name"),
            kind: row.get("kind"),
            config: row.get("config"),
            schedule: row.get("schedule"),
            active: row.get("active"),
        }
    }
}

pub async fn list(client: &impl GenericClient, project_id: Uuid) -> Result<Vec<Evaluator>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM evaluators WHERE project_id = $1 ORDER BY name",
                Evaluator::COLUMNS
            ),
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(Evaluator::from_row).collect())
}

/// Refuses to change by hand a judge an evaluation rule runs: the rule rewrites it.
async fn refuse_managed(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<(), ControlError> {
    let rule: Option<Uuid> = client
        .query_opt(
            "SELECT rule_id FROM evaluators WHERE project_id = $1 AND id = $2",
            &[&project_id, &id],
        )
        .await?
        .and_then(|row| row.get(0));
    match rule {
        Some(rule) => Err(ControlError::Conflict(format!(
            "evaluation rule {rule} runs this judge; change or delete the rule (/api/public/v2/evaluation-rules/{rule})"
        ))),
        None => Ok(()),
    }
}

/// Changes an evaluator's settings, schedule (`Some(None)` runs it with `evaluate`) or whether
/// it runs at all.
pub async fn update(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    config: Option<&Value>,
    schedule: Option<Option<&str>>,
    active: Option<bool>,
) -> Result<(), ControlError> {
    refuse_managed(client, project_id, id).await?;
    if config.is_some_and(|c| !c.is_object()) {
        return Err(ControlError::Invalid {
            field: "config",
            message: "must be a JSON object".into(),
        });
    }
    if let Some(Some(schedule)) = schedule {
        parse_schedule(schedule).map_err(|message| ControlError::Invalid {
            field: "schedule",
            message,
        })?;
    }
    if let Some(config) = config {
        let kind = client
            .query_opt(
                "SELECT kind FROM evaluators WHERE project_id = $1 AND id = $2",
                &[&project_id, &id],
            )
            .await?
            .map(|row| row.get::<_, String>(0));
        if kind.as_deref() == Some("llm_judge") {
            check_judge(client, project_id, config).await?;
        }
    }
    let updated = client
        .execute(
            // A new config (a fixed connection name, a higher budget) lifts what stopped a
            // judge; the judge job checks its limits again on its next run.
            "UPDATE evaluators SET config = coalesce($3, config),
                schedule = CASE WHEN $4 THEN $5 ELSE schedule END, active = coalesce($6, active),
                blocked_reason = CASE WHEN $3::jsonb IS NULL THEN blocked_reason END,
                paused_until = CASE WHEN $3::jsonb IS NULL THEN paused_until END
             WHERE project_id = $1 AND id = $2",
            &[
                &project_id,
                &id,
                &config,
                &schedule.is_some(),
                &schedule.flatten(),
                &active,
            ],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NotFound(format!("evaluator {id}")));
    }
    Ok(())
}

pub async fn delete(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<(), ControlError> {
    refuse_managed(client, project_id, id).await?;
    let deleted = client
        .execute(
            "DELETE FROM evaluators WHERE project_id = $1 AND id = $2",
            &[&project_id, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("evaluator {id}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_need_seconds_and_explain_the_format() {
        assert!(parse_schedule("15 * * * * *").is_ok());
        let error = parse_schedule("every minute").unwrap_err();
        assert!(error.contains("sec min hour day month weekday"), "{error}");
    }
}
