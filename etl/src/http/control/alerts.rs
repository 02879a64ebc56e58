//! A project's alerts (`/v1/projects/{project}/alerts/…`): rules and their state, the
//! channels they notify, the history of what fired and every delivery. Members read them,
//! editors change rules, admins manage channels (they hold signing secrets and URLs that may be
//! credentials). The scheduler's `alerts` job evaluates and delivers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::control::alerts::{
    self, AlertChannel, AlertDelivery, AlertEvent, AlertRule, AlertRuleChange, CreatedAlertChannel,
    NewAlertChannel, NewAlertRule,
};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::json_body;
use crate::http::server::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RulePath {
    /// The rule's id.
    rule: Uuid,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelPath {
    /// The channel's id.
    channel: Uuid,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// One rule's events only.
    rule: Option<Uuid>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// One event's deliveries only.
    event: Option<Uuid>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/alerts/rules",
    summary = "The project's alert rules",
    description = "Every rule with the groups firing now, when it was last evaluated and why that failed, if it did. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "OK", body = Vec<AlertRule>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_alert_rules(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
) -> Result<Json<Vec<AlertRule>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(alerts::list_rules(&**client, project.id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/alerts/rules",
    summary = "Create an alert rule",
    description = "`{name, metric, filters?, comparison, threshold, windowMinutes, groupBy?, channels?}`: `metric` is `cost`, `tokens`, `requests`, `error_rate`, `latency_p50`, `latency_p95`, `latency_p99`, `score_mean` or `score_pass_rate` (a boolean score's share of true); `filters` the metrics API's (`type`, `model`, `name`, `tool`, `evaluator`, `source`); `comparison` `>`, `>=`, `<` or `<=`; the window 1 minute to 30 days; `groupBy` fires once per group that crosses (`user`, `model`, `name`, `tool`, `type`, `environment`, `tag`; for scores `name`, `evaluator`, `source`). Evaluated every minute by the scheduler. At most 100 rules per project. Member role, or `write` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewAlertRule,
    responses(
        (status = 201, description = "Created", body = AlertRule),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: a name taken or a limit reached", body = ErrorBody),
    ),
)]
pub async fn create_alert_rule(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<AlertRule>), ApiError> {
    let new: NewAlertRule = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    Ok((
        StatusCode::CREATED,
        Json(alerts::create_rule(&**client, project.id, &new).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/alerts/rules/{rule}",
    summary = "An alert rule and its state",
    description = "The rule, the groups firing now, its last evaluation. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), RulePath),
    responses(
        (status = 200, description = "OK", body = AlertRule),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_alert_rule(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(RulePath { rule }): Path<RulePath>,
) -> Result<Json<AlertRule>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(alerts::get_rule(&**client, project.id, rule).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/projects/{project}/alerts/rules/{rule}",
    summary = "Change, silence or pause an alert rule",
    description = "`{enabled?, silencedUntil?, threshold?, channels?}`: a silenced rule records what fires and resolves but sends nothing until then (`\"\"` lifts the silence); a disabled one is not evaluated. Member role, or `write` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), RulePath),
    request_body = AlertRuleChange,
    responses(
        (status = 200, description = "OK", body = AlertRule),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn change_alert_rule(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(RulePath { rule }): Path<RulePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<AlertRule>, ApiError> {
    let change: AlertRuleChange = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    Ok(Json(
        alerts::change_rule(&**client, project.id, rule, &change).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/alerts/rules/{rule}",
    summary = "Delete an alert rule",
    description = "The rule, its state, history and deliveries. Member role, or `write` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), RulePath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_alert_rule(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(RulePath { rule }): Path<RulePath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    alerts::delete_rule(&**client, project.id, rule).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/alerts/events",
    summary = "What the project's alerts did",
    description = "Groups that began firing, resolved, and rules that could not be evaluated, newest first; `rule` narrows to one rule. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), EventsQuery),
    responses(
        (status = 200, description = "OK", body = Vec<AlertEvent>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_alert_events(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Vec<AlertEvent>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        alerts::events(&**client, project.id, query.rule, query.limit.unwrap_or(100)).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/alerts/deliveries",
    summary = "The project's alert deliveries",
    description = "Every notification sent or to be sent, newest first, with its attempts, the channel's last status and the next attempt; `event` narrows to one event. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "OK", body = Vec<AlertDelivery>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_alert_deliveries(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Vec<AlertDelivery>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        alerts::deliveries(&**client, project.id, query.event, query.limit.unwrap_or(100)).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/alerts/channels",
    summary = "The project's alert channels",
    description = "Each channel's name, kind and the scheme and host of its URL (never the URL or the secret). Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "OK", body = Vec<AlertChannel>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_alert_channels(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
) -> Result<Json<Vec<AlertChannel>>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(alerts::list_channels(&**client, project.id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/alerts/channels",
    summary = "Create an alert channel",
    description = "`{name, kind, url}`: `webhook` (a JSON POST signed `x-agenttrace-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">` with the channel's secret, with an `x-agenttrace-delivery` id to deduplicate on) or `slack` (a Slack incoming-webhook URL, `{text}`). The URL must be https. The answer holds the secret, shown this once; URL and secret are stored encrypted. At most 20 channels per project. Admin role, or `admin` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewAlertChannel,
    responses(
        (status = 201, description = "Created", body = CreatedAlertChannel),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}`: a name taken or a limit reached", body = ErrorBody),
    ),
)]
pub async fn create_alert_channel(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<CreatedAlertChannel>), ApiError> {
    let new: NewAlertChannel = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let created = alerts::create_channel(
        &**client,
        state.sealer.as_ref(),
        alerts::private_urls_allowed(),
        project.id,
        &new,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/alerts/channels/{channel}",
    summary = "Delete an alert channel",
    description = "The channel and its pending deliveries; rules stop naming it. Admin role, or `admin` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ChannelPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_alert_channel(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Administer>,
    Path(ChannelPath { channel }): Path<ChannelPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    alerts::delete_channel(&**client, project.id, channel).await?;
    Ok(StatusCode::NO_CONTENT)
}
