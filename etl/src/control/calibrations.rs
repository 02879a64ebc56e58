//! How well each LLM judge agrees with people: what the `judge_calibration` job computed, read.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, optional_time};

/// A judge's agreement with people on the targets both scored (one pair per person's score).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Calibration {
    pub evaluator_id: Uuid,
    /// The judge's name.
    pub evaluator_name: String,
    #[schema(required = true)]
    pub score_name: Option<String>,
    /// `numeric`, `boolean` or `categorical`.
    #[schema(required = true)]
    pub data_type: Option<String>,
    /// Judge-and-person score pairs compared.
    pub pairs: i32,
    /// Boolean and categorical: the share of pairs that agree.
    #[schema(required = true)]
    pub accuracy: Option<f64>,
    /// Boolean and categorical: Cohen's kappa (null when chance agreement is 1).
    #[schema(required = true)]
    pub kappa: Option<f64>,
    /// Numeric: the mean of |judge − person|.
    #[schema(required = true)]
    pub mean_absolute_error: Option<f64>,
    /// Numeric: Spearman's rank correlation (null for fewer than two pairs or no variation).
    #[schema(required = true)]
    pub spearman: Option<f64>,
    /// `{labels, counts}`: rows are the people's labels, columns the judge's.
    #[schema(value_type = Option<Object>, required = true)]
    pub confusion: Option<Value>,
    /// At most 100 `{trace_id, observation_id, judge, human, author, link}`.
    #[schema(value_type = Vec<Object>)]
    pub disagreements: Value,
    #[schema(required = true)]
    pub computed_at: Option<String>,
}

impl Calibration {
    const COLUMNS: &'static str = "c.evaluator_id, e.name AS evaluator_name, c.score_name, c.data_type, \
        coalesce(c.pairs, 0) AS pairs, c.accuracy, c.kappa, c.mean_absolute_error, c.spearman, c.confusion, \
        coalesce(c.disagreements, '[]'::jsonb) AS disagreements, c.computed_at";

    fn from_row(row: &Row) -> Self {
        Calibration {
            evaluator_id: row.get("evaluator_id"),
            evaluator_name: row.get("evaluator_name"),
            score_name: row.get("score_name"),
            data_type: row.get("data_type"),
            pairs: row.get("pairs"),
            accuracy: row.get("accuracy"),
            kappa: row.get("kappa"),
            mean_absolute_error: row.get("mean_absolute_error"),
            spearman: row.get("spearman"),
            confusion: row.get("confusion"),
            disagreements: row.get("disagreements"),
            computed_at: optional_time(row, "computed_at", Precision::Millis),
        }
    }
}

/// The project's judges' calibrations, by judge name.
pub async fn list(client: &impl GenericClient, project_id: Uuid) -> Result<Vec<Calibration>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM judge_calibrations c JOIN evaluators e ON e.id = c.evaluator_id
                 WHERE c.project_id = $1 AND e.project_id = $1 ORDER BY e.name",
                Calibration::COLUMNS
            ),
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(Calibration::from_row).collect())
}
