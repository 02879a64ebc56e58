//! The read API: what an agent's runs look like, for people and tools (`read` scope on a project
//! key, or the viewer role for a signed-in user, who names the project with `?project_id=`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use uuid::Uuid;

use crate::analytics::answers::{CursorPage, MetricsAnswer, SessionPage, TraceDetail};
use crate::analytics::metrics::{self, MetricsParams, MetricsQuery};
use crate::analytics::observations::ListedObservation;
use crate::analytics::observations::{self, ObservationFilter};
use crate::analytics::scores::StoredScore;
use crate::analytics::scores::{self, ScoreFilter};
use crate::analytics::traces::{self, SessionFilter, TraceFilter};
use crate::analytics::traces::{SessionSummary, StoredObservation, TraceRow};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::server::AppState;
use crate::search::read::{SearchPage, SearchParams};

/// `GET /v1/traces/{id}`: the trace, its observation tree, scores, file operations, terminal
/// commands and git links.
#[utoipa::path(
    get,
    path = "/v1/traces/{id}",
    summary = "Get a trace",
    description = "The trace (null while only its observations have arrived), its observations as a tree (`children`, time order; at most 10,000, `observations_truncated` says when there were more; each payload — input, output, model parameters, each metadata value — cut to its first 1,000 characters, `input_truncated`, `output_truncated`, `model_parameters_truncated` and `metadata_truncated` saying which were, the whole observation at `/v1/traces/{id}/observations/{observation_id}`), scores, file operations, terminal commands and git links, each deduplicated. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). 404 when the project has nothing under that id. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project_id" = Option<uuid::Uuid>, Query, description = "Which project, for a signed-in user or an organization key (a project key implies it)")),
    responses(
        (status = 200, description = "OK", body = TraceDetail),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn trace(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(id): Path<String>,
) -> Result<Json<TraceDetail>, ApiError> {
    let project = project.id;
    traces::trace_detail(&state.reader.for_project(project), project, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no trace {id:?} in this project")))
}

/// `GET /v1/traces/{id}/observations/{observation_id}`: one observation, payloads whole.
#[utoipa::path(
    get,
    path = "/v1/traces/{id}/observations/{observation_id}",
    summary = "Get one observation of a trace, whole",
    description = "Every stored column of the observation (its newest version), with input, output, model parameters and metadata uncut: a trace's detail carries each payload's first 1,000 characters and `<payload>_truncated`, and a client fetches this for the observation a person opens. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). 404 when the project has no such observation in that trace.",
    security(("session" = []), ("apiKey" = [])),
    params(
        ("id" = String, Path, description = "The trace's id"),
        ("observation_id" = String, Path, description = "The observation's id"),
        ("project_id" = Option<uuid::Uuid>, Query, description = "Which project, for a signed-in user or an organization key (a project key implies it)"),
    ),
    responses(
        (status = 200, description = "The observation's columns", body = StoredObservation),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn observation(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path((id, observation_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    traces::observation_detail(
        &state.reader.for_project(project.id),
        project.id,
        &id,
        &observation_id,
    )
    .await?
    .map(Json)
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "no observation {observation_id:?} in trace {id:?} of this project"
        ))
    })
}

/// `GET /v1/traces`: a page of the project's traces, newest first, with `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/traces",
    summary = "List traces",
    description = "Newest first, each with `observation_count`, `total_cost`, `input_tokens`, `output_tokens`, `latency_ms` and its worst `level`. Filters: `from`, `to` (RFC 3339), `name`, `user_id`, `session_id`, `tags` (comma-separated, all required), `environment` (without it, every environment but the LLM judges' own, `agenttrace-judge`), `release`, `level` (warning or error: at least that), `min_cost` (USD), `min_latency_ms`, `score_name`; `limit` (50, at most 1000); `cursor` (the `next_cursor` of the previous page; pages keyed by start time and id, so inserts meanwhile never shift them). A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(TraceFilter),
    responses(
        (status = 200, description = "OK", body = CursorPage<TraceRow>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn trace_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<TraceFilter>,
) -> Result<Json<CursorPage<TraceRow>>, ApiError> {
    let project = project.id;
    Ok(Json(
        traces::trace_list(&state.reader.for_project(project), project, &filter).await?,
    ))
}

/// `GET /v1/search`: full-text search over the project's traces, observations and sessions.
#[utoipa::path(
    get,
    path = "/v1/search",
    summary = "Search",
    description = "Traces (or `results=observations`, or `results=sessions`) whose text matches `q`, newest match first, each with `matched_at_us` and `matches`: the fields that matched (`source` table, row `id`, `observation_id`, `field`), each with a `snippet` and its `highlights` (byte ranges of the snippet). `q`: words (every one must match, in any searchable field: names, input, output, metadata values, tags, status messages, terminal commands with their output, file paths and diffs, score comments), `\"exact phrases\"`, `field:` prefixes (`input:`, `output:` — output, stdout and stderr —, `command:`, `path:` — paths and working directories —, `diff:`, `comment:`, `name:`, `tags:`, `status:`, `stdout:`, `stderr:`, `cwd:`, `metadata.key:`, `metadata:`) and `-exclusions`. Text is matched in every language: case-folded and compatibility-normalized, Chinese, Japanese, Korean and Thai by two-character sequences, identifiers (`snake_case`, `camelCase`, paths, dotted names) both whole and by part. Every match is checked against the row's current text, so a replaced text's old words do not match. A trace is found by what happened within six hours of its match. Filters as for `/v1/traces`: `from`, `to` (the match's time), `name`, `user_id`, `session_id`, `tags`, `environment`, `release`, `level`, `min_cost`, `min_latency_ms`, `score_name`; `limit` (20, at most 100); `cursor`. A page can hold fewer results than `limit` while `next_cursor` says more may follow. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role).",
    security(("session" = []), ("apiKey" = [])),
    params(SearchParams),
    responses(
        (status = 200, description = "OK", body = SearchPage),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn search(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    let project = project.id;
    Ok(Json(
        crate::search::read::search(&state.reader.for_project(project), project, &params).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Read by [`ProjectAccess`]; named so that it is not refused as unknown.
    #[serde(rename = "project_id")]
    _project_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/sessions/{id}`: the session's traces oldest first, each with its summary.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    summary = "Get a session",
    description = "The session's traces oldest first, so a coding-agent session reads as a conversation; each with the same summary as the trace list. `limit` (50, at most 1000) and `cursor` (`next_cursor` of the previous page). 404 when the project has no trace in that session. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(SessionQuery),
    responses(
        (status = 200, description = "OK", body = SessionPage),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn session(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(id): Path<String>,
    Query(query): Query<SessionQuery>,
) -> Result<Json<SessionPage>, ApiError> {
    let project = project.id;
    traces::session_detail(
        &state.reader.for_project(project),
        project,
        &id,
        query.cursor,
        query.limit,
    )
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found(format!("no session {id:?} in this project")))
}

/// `GET /v1/sessions`: the project's sessions, most recently active first, with `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/sessions",
    summary = "List sessions",
    description = "Most recently active first, each with `first_us`, `last_us`, `trace_count`, `user_ids`, `observation_count`, `total_cost`, `input_tokens`, `output_tokens`. Filters: `from`, `to` (RFC 3339), `user_id`; `limit` (50, at most 1000); `cursor`. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(SessionFilter),
    responses(
        (status = 200, description = "OK", body = CursorPage<SessionSummary>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn session_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<SessionFilter>,
) -> Result<Json<CursorPage<SessionSummary>>, ApiError> {
    let project = project.id;
    Ok(Json(
        traces::session_list(&state.reader.for_project(project), project, &filter).await?,
    ))
}

/// `GET /v1/observations`: the project's observations newest first, with `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/observations",
    summary = "List observations",
    description = "Newest first, without input and output (the trace has them), each with `total_cost`, tokens and `latency_ms`. Filters: `from`, `to` (RFC 3339), `type`, `model`, `tool`, `name`, `trace_id`, `level` (warning or error: at least that); `limit` (50, at most 1000); `cursor`. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(ObservationFilter),
    responses(
        (status = 200, description = "OK", body = CursorPage<ListedObservation>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn observation_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<ObservationFilter>,
) -> Result<Json<CursorPage<ListedObservation>>, ApiError> {
    let project = project.id;
    Ok(Json(
        observations::observation_list(&state.reader.for_project(project), project, &filter).await?,
    ))
}

/// `GET /v1/scores`: the project's scores newest first, with `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/scores",
    summary = "List scores",
    description = "Newest first. Filters: `from`, `to` (RFC 3339), `name`, `source`, `data_type`, `trace_id`, `observation_id`, `evaluator_id`; `limit` (50, at most 1000); `cursor`. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). A session token (`Bearer at-session-…`), a project API key or an organization key. `max_value` keeps numeric and boolean scores at or below it (`0`: an evaluator's failures).",
    security(("session" = []), ("apiKey" = [])),
    params(ScoreFilter),
    responses(
        (status = 200, description = "OK", body = CursorPage<StoredScore>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn score_list(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(filter): Query<ScoreFilter>,
) -> Result<Json<CursorPage<StoredScore>>, ApiError> {
    let project = project.id;
    Ok(Json(
        scores::score_list(&state.reader.for_project(project), project, &filter).await?,
    ))
}

/// `GET /v1/metrics`: measures by time bucket and up to two dimensions.
#[utoipa::path(
    get,
    path = "/v1/metrics",
    summary = "Metrics by time bucket and dimension",
    description = "`from` and `to` (RFC 3339) required. `view=observations` (default): `count`, `total_cost`, tokens, `latency_p50_ms`/`p95`/`p99`, `error_rate`; `view=scores`: `count`, `mean`, `min`, `max`, `value_p50`/`p95`/`p99`. `bucket`: minute, hour, day (default), week or none. `dimensions`: up to two of model, name, tool, type, user (scores: name, evaluator, source, data_type). Filters `type`, `model`, `name`, `tool`, `evaluator`, `source`. At most 10,000 groups, else 400. A project key with `read` scope reads its project; a signed-in user or organization key names it with `project_id` (viewer role). A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(MetricsParams),
    responses(
        (status = 200, description = "OK", body = MetricsAnswer),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<MetricsAnswer>, ApiError> {
    let project = project.id;
    let query = MetricsQuery::from_params(&params)?;
    Ok(Json(
        metrics::metrics(&state.reader.for_project(project), project, &query).await?,
    ))
}
