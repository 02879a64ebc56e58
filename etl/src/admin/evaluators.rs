//! Evaluators: a kind (what is checked), its settings, and an optional cron schedule of its
//! own (without one it runs with the `evaluate` job). The job that runs them is in `jobs/`.

use std::str::FromStr;

use cron::Schedule;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::admin::AdminError;

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
];

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
pub async fn add(client: &impl GenericClient, evaluator: &NewEvaluator) -> Result<Added, AdminError> {
    if !KINDS.contains(&evaluator.kind.as_str()) {
        return Err(AdminError::Invalid {
            field: "kind",
            message: format!(
                "unknown evaluator kind {:?}; kinds are {}",
                evaluator.kind,
                KINDS.join(", ")
            ),
        });
    }
    if !evaluator.config.is_object() {
        return Err(AdminError::Invalid {
            field: "config",
            message: "must be a JSON object".into(),
        });
    }
    if let Some(schedule) = &evaluator.schedule {
        parse_schedule(schedule).map_err(|message| AdminError::Invalid {
            field: "schedule",
            message,
        })?;
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
