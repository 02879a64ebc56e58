//! Alerts: rules that watch a metric of the metrics API, per group when they have a group-by,
//! and the channels they notify (signed webhooks, Slack incoming webhooks). The scheduler's
//! `alerts` job evaluates the rules and delivers (`agenttrace_jobs::alerts`); this module keeps
//! them and shows their state, history and deliveries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::analytics::metrics::{MetricsParams, MetricsQuery};
use crate::control::sealing::{self, Sealer};
use crate::control::{ControlError, Precision, invalid, optional_time, time};

/// What a rule may watch, and what each is.
pub const METRICS: &[(&str, &str)] = &[
    ("cost", "USD spent by the observations"),
    ("tokens", "input and output tokens"),
    ("requests", "model calls (generations)"),
    ("error_rate", "the share of observations at level error"),
    ("latency_p50", "median observation latency, ms"),
    ("latency_p95", "95th percentile observation latency, ms"),
    ("latency_p99", "99th percentile observation latency, ms"),
    ("score_mean", "the mean of a score's values (filter by `name`)"),
    (
        "score_pass_rate",
        "the share of a boolean score's values that are true (filter by `name`)",
    ),
];
/// Filters a rule may set: the metrics API's own.
pub const FILTERS: &[&str] = &["type", "model", "name", "tool", "api_key", "evaluator", "source"];
/// Groups a rule may fire per: observation metrics' and score metrics'.
pub const OBSERVATION_GROUPS: &[&str] = &[
    "user",
    "model",
    "name",
    "tool",
    "type",
    "environment",
    "tag",
    "api_key",
];
pub const SCORE_GROUPS: &[&str] = &["name", "evaluator", "source"];
/// Rules per project, channels per project and channels per rule: what one tenant may make
/// the shared scheduler evaluate and send.
pub const MAX_RULES: i64 = 100;
pub const MAX_CHANNELS: i64 = 20;
const MAX_WINDOW_MINUTES: i32 = 30 * 24 * 60;
/// Characters of a filter's value.
const MAX_FILTER_CHARS: usize = 256;

/// The setting that lets alert channels reach loopback and private addresses over http (a
/// receiver inside the network): off unless set, and apart from model connections' own.
pub const ALLOW_PRIVATE_VARIABLE: &str = "AGENTTRACE_ALLOW_PRIVATE_ALERT_URLS";

/// Whether [`ALLOW_PRIVATE_VARIABLE`] is set.
pub fn private_urls_allowed() -> bool {
    std::env::var(ALLOW_PRIVATE_VARIABLE).is_ok_and(|v| v == "1" || v == "true")
}

/// A rule as it is created.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewAlertRule {
    pub name: String,
    /// One of `cost`, `tokens`, `requests`, `error_rate`, `latency_p50`, `latency_p95`,
    /// `latency_p99`, `score_mean`, `score_pass_rate`.
    pub metric: String,
    /// `{type?, model?, name?, tool?, evaluator?, source?}`: only what matches counts.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filters: Map<String, Value>,
    /// `>`, `>=`, `<` or `<=`.
    pub comparison: String,
    pub threshold: f64,
    /// The rolling window the metric is measured over, 1 minute to 30 days.
    pub window_minutes: i32,
    /// Fire once per group that crosses: `user`, `model`, `name`, `tool`, `type`,
    /// `environment`, `tag` (observation metrics) or `name`, `evaluator`, `source` (scores).
    pub group_by: Option<String>,
    /// Channels of the project to notify.
    #[serde(default)]
    pub channels: Vec<Uuid>,
}

/// A rule as the API shows it, with its current state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub metric: String,
    #[schema(value_type = Object)]
    pub filters: Value,
    pub comparison: String,
    pub threshold: f64,
    pub window_minutes: i32,
    pub group_by: Option<String>,
    pub channels: Vec<Uuid>,
    pub enabled: bool,
    pub silenced_until: Option<String>,
    pub last_evaluated_at: Option<String>,
    /// Why the last evaluation failed; `None` when it succeeded.
    pub last_error: Option<String>,
    /// The groups firing now.
    pub firing: Vec<FiringGroup>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiringGroup {
    /// The group's value of the group-by (`""` for a rule without one).
    pub group: String,
    pub value: Option<f64>,
    pub since: String,
}

/// A change of state: a group began firing, resolved, or the rule could not be evaluated.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub group: String,
    /// `firing`, `resolved` or `error`.
    pub kind: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub message: String,
    /// Recorded while the rule was silenced: nothing was sent.
    pub silenced: bool,
    pub at: String,
}

/// One notification of one event to one channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub channel_id: Uuid,
    /// `pending` (retried with backoff), `delivered` or `failed` (the channel refused it for
    /// good, or a day of retries passed).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<String>,
    /// The channel's last HTTP status.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
}

/// A channel as it is created.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlertChannel {
    pub name: String,
    /// `webhook` (a signed JSON POST) or `slack` (a Slack incoming-webhook URL).
    pub kind: String,
    pub url: String,
}

/// A channel as the API shows it: the URL's scheme and host only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertChannel {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub url_hint: String,
    pub created_at: String,
}

/// A channel just made, with its signing secret: shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAlertChannel {
    #[serde(flatten)]
    pub channel: AlertChannel,
    /// `at-whsec_…`: verify `x-agenttrace-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>">` with it. Not shown again.
    pub secret: String,
}

/// The metrics query a rule runs over `[from_us, to_us)`, and the field of each answer row its
/// value is read from (`tokens` adds two).
pub fn rule_query(
    metric: &str,
    filters: &Map<String, Value>,
    group_by: Option<&str>,
    from_us: i64,
    to_us: i64,
) -> Result<(MetricsQuery, &'static [&'static str]), ControlError> {
    let (view, fields): (&str, &'static [&'static str]) = match metric {
        "cost" => ("observations", &["total_cost"]),
        "tokens" => ("observations", &["input_tokens", "output_tokens"]),
        "requests" => ("observations", &["count"]),
        "error_rate" => ("observations", &["error_rate"]),
        "latency_p50" => ("observations", &["latency_p50_ms"]),
        "latency_p95" => ("observations", &["latency_p95_ms"]),
        "latency_p99" => ("observations", &["latency_p99_ms"]),
        "score_mean" | "score_pass_rate" => ("scores", &["mean"]),
        other => {
            let names: Vec<&str> = METRICS.iter().map(|(name, _)| *name).collect();
            return Err(invalid(
                "metric",
                format!("{other:?}: use one of {}", names.join(", ")),
            ));
        }
    };
    let mut params = MetricsParams {
        view: Some(view.to_owned()),
        from: Some(crate::control::rfc3339(
            chrono::DateTime::from_timestamp_micros(from_us).unwrap_or_default(),
            Precision::Micros,
        )),
        to: Some(crate::control::rfc3339(
            chrono::DateTime::from_timestamp_micros(to_us).unwrap_or_default(),
            Precision::Micros,
        )),
        bucket: Some("none".to_owned()),
        dimensions: group_by.map(str::to_owned),
        ..MetricsParams::default()
    };
    if metric == "requests" {
        params.kind = Some("generation".to_owned());
    }
    for (key, value) in filters {
        let Some(text) = value.as_str() else {
            return Err(invalid("filters", format!("{key}: give a string")));
        };
        if text.chars().count() > MAX_FILTER_CHARS {
            return Err(invalid(
                "filters",
                format!("{key}: at most {MAX_FILTER_CHARS} characters"),
            ));
        }
        let slot = match key.as_str() {
            "type" => &mut params.kind,
            "model" => &mut params.model,
            "name" => &mut params.name,
            "tool" => &mut params.tool,
            "api_key" => &mut params.api_key,
            "evaluator" => &mut params.evaluator,
            "source" => &mut params.source,
            other => {
                return Err(invalid(
                    "filters",
                    format!("{other:?} is not a filter; use {}", FILTERS.join(", ")),
                ));
            }
        };
        *slot = Some(text.to_owned());
    }
    if metric.starts_with("score_") && params.name.is_none() {
        return Err(invalid("filters", "a score metric needs the score's `name`"));
    }
    if let Some(group) = group_by {
        let allowed = if view == "scores" {
            SCORE_GROUPS
        } else {
            OBSERVATION_GROUPS
        };
        if !allowed.contains(&group) {
            return Err(invalid(
                "groupBy",
                format!("{group:?}: {metric} groups by {}", allowed.join(", ")),
            ));
        }
    }
    let query = MetricsQuery::from_params(&params).map_err(|e| invalid("filters", e.to_string()))?;
    Ok((query, fields))
}

/// Whether `value` crosses `threshold` by `comparison`.
pub fn crosses(comparison: &str, value: f64, threshold: f64) -> bool {
    match comparison {
        ">" => value > threshold,
        ">=" => value >= threshold,
        "<" => value < threshold,
        "<=" => value <= threshold,
        _ => false,
    }
}

fn check_name(name: &str) -> Result<(), ControlError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "1 to 200 characters"));
    }
    Ok(())
}

const RULE_COLUMNS: &str = "id, project_id, name, metric, filters, comparison, threshold, window_minutes, group_by, \
     channel_ids, enabled, silenced_until, last_evaluated_at, last_error, created_at";

fn rule_from_row(row: &Row, firing: Vec<FiringGroup>) -> AlertRule {
    AlertRule {
        id: row.get("id"),
        project_id: row.get("project_id"),
        name: row.get("name"),
        metric: row.get("metric"),
        filters: row.get("filters"),
        comparison: row.get("comparison"),
        threshold: row.get("threshold"),
        window_minutes: row.get("window_minutes"),
        group_by: row.get("group_by"),
        channels: row.get("channel_ids"),
        enabled: row.get("enabled"),
        silenced_until: optional_time(row, "silenced_until", Precision::Seconds),
        last_evaluated_at: optional_time(row, "last_evaluated_at", Precision::Seconds),
        last_error: row.get("last_error"),
        firing,
        created_at: time(row, "created_at", Precision::Seconds),
    }
}

async fn check_channels(
    client: &impl GenericClient,
    project_id: Uuid,
    channels: &[Uuid],
) -> Result<(), ControlError> {
    if channels.len() > MAX_CHANNELS as usize {
        return Err(invalid("channels", format!("at most {MAX_CHANNELS}")));
    }
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM alert_channels WHERE project_id = $1 AND id = ANY($2)",
            &[&project_id, &channels],
        )
        .await?
        .get(0);
    let mut unique = channels.to_vec();
    unique.sort();
    unique.dedup();
    if found != unique.len() as i64 {
        return Err(invalid("channels", "each must be a channel of this project"));
    }
    Ok(())
}

pub async fn create_rule(
    client: &impl GenericClient,
    project_id: Uuid,
    new: &NewAlertRule,
) -> Result<AlertRule, ControlError> {
    check_name(&new.name)?;
    if !matches!(new.comparison.as_str(), ">" | ">=" | "<" | "<=") {
        return Err(invalid("comparison", "use >, >=, < or <="));
    }
    if !new.threshold.is_finite() {
        return Err(invalid("threshold", "a finite number"));
    }
    if !(1..=MAX_WINDOW_MINUTES).contains(&new.window_minutes) {
        return Err(invalid(
            "windowMinutes",
            format!("1 to {MAX_WINDOW_MINUTES} (30 days)"),
        ));
    }
    rule_query(&new.metric, &new.filters, new.group_by.as_deref(), 0, 1)?;
    check_channels(client, project_id, &new.channels).await?;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM alert_rules WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .get(0);
    if count >= MAX_RULES {
        return Err(ControlError::Conflict(format!(
            "the project has {MAX_RULES} alert rules, the most it may; delete one first"
        )));
    }
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO alert_rules (id, project_id, name, metric, filters, comparison, threshold, window_minutes, group_by, channel_ids)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (project_id, name) DO NOTHING RETURNING {RULE_COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &project_id,
                &new.name.trim(),
                &new.metric,
                &Value::Object(new.filters.clone()),
                &new.comparison,
                &new.threshold,
                &new.window_minutes,
                &new.group_by,
                &new.channels,
            ],
        )
        .await?
        .ok_or_else(|| ControlError::Conflict(format!("a rule named {:?} exists in the project", new.name)))?;
    Ok(rule_from_row(&row, Vec::new()))
}

async fn firing(client: &impl GenericClient, rule: Uuid) -> Result<Vec<FiringGroup>, ControlError> {
    Ok(client
        .query(
            "SELECT group_key, value, changed_at FROM alert_states WHERE rule_id = $1 AND firing ORDER BY group_key LIMIT 1000",
            &[&rule],
        )
        .await?
        .iter()
        .map(|row| FiringGroup {
            group: row.get("group_key"),
            value: row.get("value"),
            since: time(row, "changed_at", Precision::Seconds),
        })
        .collect())
}

pub async fn list_rules(
    client: &impl GenericClient,
    project_id: Uuid,
) -> Result<Vec<AlertRule>, ControlError> {
    let rows = client
        .query(
            &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE project_id = $1 ORDER BY name"),
            &[&project_id],
        )
        .await?;
    let mut rules = Vec::new();
    for row in rows {
        let firing = firing(client, row.get("id")).await?;
        rules.push(rule_from_row(&row, firing));
    }
    Ok(rules)
}

pub async fn get_rule(
    client: &impl GenericClient,
    project_id: Uuid,
    rule: Uuid,
) -> Result<AlertRule, ControlError> {
    let row = client
        .query_opt(
            &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE project_id = $1 AND id = $2"),
            &[&project_id, &rule],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("alert rule {rule}")))?;
    Ok(rule_from_row(&row, firing(client, rule).await?))
}

/// What may change on a rule.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertRuleChange {
    pub enabled: Option<bool>,
    /// RFC 3339: record what fires until then, send nothing. `""` lifts a silence.
    pub silenced_until: Option<String>,
    pub threshold: Option<f64>,
    pub channels: Option<Vec<Uuid>>,
}

pub async fn change_rule(
    client: &impl GenericClient,
    project_id: Uuid,
    rule: Uuid,
    change: &AlertRuleChange,
) -> Result<AlertRule, ControlError> {
    get_rule(client, project_id, rule).await?;
    if let Some(channels) = &change.channels {
        check_channels(client, project_id, channels).await?;
    }
    if change.threshold.is_some_and(|t| !t.is_finite()) {
        return Err(invalid("threshold", "a finite number"));
    }
    let silenced: Option<Option<chrono::DateTime<chrono::Utc>>> = match &change.silenced_until {
        None => None,
        Some(text) if text.is_empty() => Some(None),
        Some(text) => Some(Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| invalid("silencedUntil", "RFC 3339, e.g. 2026-12-07T09:00:00Z"))?
                .with_timezone(&chrono::Utc),
        )),
    };
    client
        .execute(
            "UPDATE alert_rules SET enabled = coalesce($3, enabled),
                 silenced_until = CASE WHEN $4 THEN $5 ELSE silenced_until END,
                 threshold = coalesce($6, threshold), channel_ids = coalesce($7, channel_ids)
             WHERE project_id = $1 AND id = $2",
            &[
                &project_id,
                &rule,
                &change.enabled,
                &silenced.is_some(),
                &silenced.flatten(),
                &change.threshold,
                &change.channels,
            ],
        )
        .await?;
    get_rule(client, project_id, rule).await
}

pub async fn delete_rule(
    client: &impl GenericClient,
    project_id: Uuid,
    rule: Uuid,
) -> Result<(), ControlError> {
    let deleted = client
        .execute(
            "DELETE FROM alert_rules WHERE project_id = $1 AND id = $2",
            &[&project_id, &rule],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("alert rule {rule}")));
    }
    Ok(())
}

fn event_from_row(row: &Row) -> AlertEvent {
    AlertEvent {
        id: row.get("id"),
        rule_id: row.get("rule_id"),
        group: row.get("group_key"),
        kind: row.get("kind"),
        value: row.get("value"),
        threshold: row.get("threshold"),
        message: row.get("message"),
        silenced: row.get("silenced"),
        at: time(row, "at", Precision::Millis),
    }
}

/// The project's alert events, newest first; one rule's when `rule` is given.
pub async fn events(
    client: &impl GenericClient,
    project_id: Uuid,
    rule: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AlertEvent>, ControlError> {
    Ok(client
        .query(
            "SELECT id, rule_id, group_key, kind, value, threshold, message, silenced, at FROM alert_events
             WHERE project_id = $1 AND ($2::uuid IS NULL OR rule_id = $2) ORDER BY at DESC, id DESC LIMIT $3",
            &[&project_id, &rule, &limit.clamp(1, 1000)],
        )
        .await?
        .iter()
        .map(event_from_row)
        .collect())
}

/// The project's deliveries, newest first; one event's when `event` is given.
pub async fn deliveries(
    client: &impl GenericClient,
    project_id: Uuid,
    event: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AlertDelivery>, ControlError> {
    Ok(client
        .query(
            "SELECT id, event_id, channel_id, status, attempts, next_attempt_at, last_status, last_error,
                    delivered_at, created_at
             FROM alert_deliveries WHERE project_id = $1 AND ($2::uuid IS NULL OR event_id = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3",
            &[&project_id, &event, &limit.clamp(1, 1000)],
        )
        .await?
        .iter()
        .map(|row| {
            let status: String = row.get("status");
            AlertDelivery {
                id: row.get("id"),
                event_id: row.get("event_id"),
                channel_id: row.get("channel_id"),
                next_attempt_at: (status == "pending")
                    .then(|| time(row, "next_attempt_at", Precision::Seconds)),
                status,
                attempts: row.get("attempts"),
                last_status: row.get("last_status"),
                last_error: row.get("last_error"),
                delivered_at: optional_time(row, "delivered_at", Precision::Seconds),
                created_at: time(row, "created_at", Precision::Seconds),
            }
        })
        .collect())
}

/// What a channel's URL and secret are sealed for: its project and id, so a sealed value
/// copied into another row does not open.
pub fn sealed_for(project_id: Uuid, channel: Uuid, field: &str) -> Vec<u8> {
    format!("alert_channel:{project_id}:{channel}:{field}").into_bytes()
}

/// Checks a channel's URL: `https` (or `http` where the server may reach private addresses,
/// [`ALLOW_PRIVATE_VARIABLE`], for a receiver inside the network), a host, no credentials.
pub fn check_url(kind: &str, url: &str, allow_private: bool) -> Result<reqwest::Url, ControlError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    let scheme_ok = parsed.scheme() == "https" || (allow_private && parsed.scheme() == "http");
    if !scheme_ok {
        return Err(invalid("url", "must be https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(invalid("url", "needs a host and no user or password"));
    }
    if url.len() > 2048 {
        return Err(invalid("url", "at most 2048 characters"));
    }
    if kind == "slack" && parsed.scheme() == "https" && parsed.host_str() != Some("hooks.slack.com") {
        return Err(invalid(
            "url",
            "a Slack incoming-webhook URL is https://hooks.slack.com/services/…; use kind `webhook` for others",
        ));
    }
    Ok(parsed)
}

pub async fn create_channel(
    client: &impl GenericClient,
    sealer: Option<&Sealer>,
    allow_private: bool,
    project_id: Uuid,
    new: &NewAlertChannel,
) -> Result<CreatedAlertChannel, ControlError> {
    check_name(&new.name)?;
    if !matches!(new.kind.as_str(), "webhook" | "slack") {
        return Err(invalid("kind", "use webhook or slack"));
    }
    let url = check_url(&new.kind, &new.url, allow_private)?;
    let sealer = sealer.ok_or_else(|| {
        invalid(
            "url",
            format!(
                "this server cannot store channel secrets: start it with {} set (64 hex characters)",
                sealing::KEY_VARIABLE
            ),
        )
    })?;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM alert_channels WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .get(0);
    if count >= MAX_CHANNELS {
        return Err(ControlError::Conflict(format!(
            "the project has {MAX_CHANNELS} alert channels, the most it may; delete one first"
        )));
    }
    let id = Uuid::now_v7();
    let secret = format!("at-whsec_{}", hex::encode(rand::random::<[u8; 32]>()));
    let hint = format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or_default());
    let row = client
        .query_opt(
            "INSERT INTO alert_channels (id, project_id, name, kind, url_sealed, url_hint, secret_sealed)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, name) DO NOTHING
             RETURNING id, name, kind, url_hint, created_at",
            &[
                &id,
                &project_id,
                &new.name.trim(),
                &new.kind,
                &sealer.seal(url.as_str().as_bytes(), &sealed_for(project_id, id, "url")),
                &hint,
                &sealer.seal(secret.as_bytes(), &sealed_for(project_id, id, "secret")),
            ],
        )
        .await?
        .ok_or_else(|| {
            ControlError::Conflict(format!("a channel named {:?} exists in the project", new.name))
        })?;
    Ok(CreatedAlertChannel {
        channel: channel_from_row(&row),
        secret,
    })
}

fn channel_from_row(row: &Row) -> AlertChannel {
    AlertChannel {
        id: row.get("id"),
        name: row.get("name"),
        kind: row.get("kind"),
        url_hint: row.get("url_hint"),
        created_at: time(row, "created_at", Precision::Seconds),
    }
}

pub async fn list_channels(
    client: &impl GenericClient,
    project_id: Uuid,
) -> Result<Vec<AlertChannel>, ControlError> {
    Ok(client
        .query(
            "SELECT id, name, kind, url_hint, created_at FROM alert_channels WHERE project_id = $1 ORDER BY name",
            &[&project_id],
        )
        .await?
        .iter()
        .map(channel_from_row)
        .collect())
}

/// Deletes a channel; rules stop naming it (one statement: both or neither).
pub async fn delete_channel(
    client: &impl GenericClient,
    project_id: Uuid,
    channel: Uuid,
) -> Result<(), ControlError> {
    let deleted: i64 = client
        .query_one(
            "WITH gone AS (DELETE FROM alert_channels WHERE project_id = $1 AND id = $2 RETURNING id),
                  unnamed AS (UPDATE alert_rules SET channel_ids = array_remove(channel_ids, $2)
                              WHERE project_id = $1 AND $2 = ANY(channel_ids) AND EXISTS (SELECT 1 FROM gone))
             SELECT count(*) FROM gone",
            &[&project_id, &channel],
        )
        .await?
        .get(0);
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("alert channel {channel}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_checked_field_by_field() {
        let filters = |pairs: &[(&str, &str)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect()
        };
        let (query, fields) = rule_query(
            "cost",
            &filters(&[("model", "gpt-5")]),
            Some("user"),
            0,
            60_000_000,
        )
        .unwrap();
        assert_eq!(fields, &["total_cost"]);
        assert_eq!(query.dimensions[0].name, "user");
        for (metric, filter, group, field) in [
            ("spend", vec![], None, "metric"),
            ("cost", vec![("colour", "red")], None, "filters"),
            ("cost", vec![], Some("evaluator"), "groupBy"),
            ("score_mean", vec![], None, "filters"),
            ("score_mean", vec![("name", "helpful")], Some("model"), "groupBy"),
        ] {
            match rule_query(metric, &filters(&filter), group, 0, 60_000_000) {
                Err(ControlError::Invalid { field: got, .. }) => {
                    assert_eq!(got, field, "{metric} {filter:?} {group:?}")
                }
                other => panic!("{metric}: {other:?}"),
            }
        }
        assert!(crosses(">", 2.0, 1.0) && !crosses(">", 1.0, 1.0) && crosses("<=", 1.0, 1.0));
    }

    #[test]
    fn channel_urls_are_checked() {
        assert!(check_url("webhook", "https://example.com/hook", false).is_ok());
        assert!(check_url("webhook", "http://example.com/hook", false).is_err());
        assert!(check_url("webhook", "http://127.0.0.1:9/hook", true).is_ok());
        assert!(check_url("webhook", "https://user:pw@example.com/", false).is_err());
        assert!(check_url("slack", "https://example.com/services/x", false).is_err());
        assert!(check_url("slack", "https://hooks.slack.com/services/T/B/x", false).is_ok());
    }
}
