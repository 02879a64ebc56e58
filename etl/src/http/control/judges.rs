//! LLM judges beyond the evaluator record: the built-in judges to start from, a judge's
//! prompt previewed (and run once) on an observation, and what a judge has done.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::control::calibrations::{self, Calibration};
use crate::http::auth::{ProjectAccess, need};
use crate::http::control::evaluators::EvaluatorPath;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::json_body;
use crate::http::server::AppState;
use crate::judge::preview::{self, Backfill, JudgeActivity, Preview, PreviewOn, PreviewSetup};
use crate::judge::template::{BuiltIn, built_in};

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/judge-templates",
    summary = "List built-in LLM judges",
    description = "Judges to start from: an llm_judge evaluator with `\"template\": NAME` in its config takes the prompt, output, score name and filter it leaves out. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "OK", body = Vec<BuiltIn>),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn judge_templates(_project: ProjectAccess<need::Read>) -> Json<Vec<BuiltIn>> {
    Json(built_in())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    /// The trace (for an observation judge, the observation's trace).
    #[serde(default)]
    trace_id: Option<String>,
    /// For an observation judge.
    #[serde(default)]
    observation_id: Option<String>,
    /// For a session judge.
    #[serde(default)]
    session_id: Option<String>,
    /// Ask the model once (it costs one call); without it only the prompt is rendered.
    #[serde(default)]
    run: bool,
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/evaluators/{id}/preview",
    summary = "Preview an LLM judge on one of its targets",
    description = "Renders the judge's prompt for one target and, with `run`, asks the model once. The target is what the judge judges: `trace_id` and `observation_id` for an observation judge, `trace_id` for a trace or experiment judge, `session_id` for a session judge. With `run`, asks the model once: the score and reasoning it would store, the model, tokens and cost. Nothing is stored. A failed call answers 200 with `error_kind` and the provider's words. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), EvaluatorPath),
    request_body = PreviewBody,
    responses(
        (status = 200, description = "OK", body = Preview),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn preview_judge(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(EvaluatorPath { id }): Path<EvaluatorPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Preview>, ApiError> {
    let request: PreviewBody = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let setup = PreviewSetup {
        sealer: state.sealer.as_ref(),
        client: &state.model_client,
        prices: &state.ingestor.prices,
    };
    Ok(Json(
        preview::preview(
            &**client,
            &state.reader.for_project(project.id),
            &setup,
            project.id,
            id,
            PreviewOn {
                trace_id: request.trace_id.as_deref(),
                observation_id: request.observation_id.as_deref(),
                session_id: request.session_id.as_deref(),
            },
            request.run,
        )
        .await?,
    ))
}

/// The range a backfill judges.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    /// RFC 3339: targets whose time is from here (inclusive)...
    from: String,
    /// ...to here (exclusive); at most 90 days after `from`.
    to: String,
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/evaluators/{id}/backfill",
    summary = "Judge what arrived before the judge did",
    description = "Asks the judge job to add the judge's targets of a time range (observations by start time; traces, sessions and experiment runs by their traces' time) to its ledger: judged once like everything else, within the judge's budget and limits. 202 with the backfill; its progress shows in `GET .../judgments`. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), EvaluatorPath),
    request_body = BackfillBody,
    responses(
        (status = 202, description = "Accepted: the judge job takes it on its next run", body = Backfill),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: too many backfills of this judge are waiting", body = ErrorBody),
    ),
)]
pub async fn backfill_judge(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(EvaluatorPath { id }): Path<EvaluatorPath>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Backfill>), ApiError> {
    let request: BackfillBody = json_body(&bytes)?;
    let time = |field: &'static str, text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_micros())
            .map_err(|e| ApiError::bad_request("invalid_request", format!("{field}: RFC 3339 ({e})")))
    };
    let (from, to) = (time("from", &request.from)?, time("to", &request.to)?);
    let client = state.postgres.get().await?;
    let backfill = preview::request_backfill(&**client, project.id, id, from, to).await?;
    Ok((StatusCode::ACCEPTED, Json(backfill)))
}

/// How far back `GET .../judgments` looks.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ActivityWindow {
    /// Days of history, 1 to 90 (7 by default).
    days: Option<i32>,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/evaluators/{id}/judgments",
    summary = "What an LLM judge has done",
    description = "Its ledger by status, spend, per day calls, judgments, failures and mean score (share of `true` for a boolean judge), the latest failures with their reasons, and why it is stopped if it is. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), EvaluatorPath, ActivityWindow),
    responses(
        (status = 200, description = "OK", body = JudgeActivity),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn judge_activity(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(EvaluatorPath { id }): Path<EvaluatorPath>,
    Query(window): Query<ActivityWindow>,
) -> Result<Json<JudgeActivity>, ApiError> {
    let days = window.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        return Err(ApiError::bad_request("invalid_request", "days: 1 to 90"));
    }
    let client = state.postgres.get().await?;
    Ok(Json(preview::activity(&**client, project.id, id, days).await?))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/calibrations",
    summary = "How well each LLM judge agrees with people",
    description = "For each LLM judge, on the targets both it and people (annotation scores of its score name) scored: the pairs compared; accuracy, Cohen's kappa and a confusion matrix for boolean and categorical judges; mean absolute error and Spearman's correlation for numeric ones; the disagreements (at most 100) with a link to each. Computed by the `judge_calibration` job every 10 minutes. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "OK", body = Vec<Calibration>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn judge_calibrations(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
) -> Result<Json<Vec<Calibration>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(calibrations::list(&**client, project.id).await?))
}
