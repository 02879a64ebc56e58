//! The `alerts` job, every minute: evaluates each enabled rule over its window (through the
//! metrics API's query, so the hourly rollups answer what they can), records each group's
//! change of state with its deliveries in one transaction, then sends the deliveries that are
//! due. What one tenant can make it do is bounded: a rule over more than an hour is evaluated
//! every 5 minutes, over more than a day every 15; a run evaluates for at most 45 s (the rules
//! evaluated longest ago first); deliveries go 16 at once with a 10 s timeout each.
//!
//! A run cut short loses and doubles nothing: a rule's changes and their deliveries commit
//! together or not at all (the next run finds the same change), and a delivery is marked
//! delivered only after the channel acknowledged it. One cut between the channel's 2xx and that
//! mark sends it again with the same `x-agenttrace-delivery` id, which receivers deduplicate on.

use std::time::Duration;

use agenttrace_etl::analytics::{AnalyticsError, metrics};
use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::control::alerts::{crosses, rule_query, sealed_for};
use agenttrace_etl::control::sealing::Sealer;
use agenttrace_etl::judge::provider::ModelClient;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio_postgres::Client;
use uuid::Uuid;

/// How long a channel has to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// A delivery claimed by a run is not claimed by another for this long.
const CLAIM_SECONDS: f64 = 120.0;
/// Deliveries one run sends, at most, and how many at once.
const DELIVERIES_PER_RUN: i64 = 200;
const SENDS_AT_ONCE: usize = 16;
/// How long one run evaluates rules before leaving the rest (those evaluated longest ago come
/// first) to the next run.
const EVALUATION_BUDGET: Duration = Duration::from_secs(45);
/// A delivery still refused after this long is given up (`failed`).
const GIVE_UP_HOURS: f64 = 24.0;
/// How long one rule's metric may take to measure.
const RULE_TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of a group's value kept (a user id or tag can be long).
const MAX_GROUP_CHARS: usize = 256;
/// Groups one rule may have firing at once: a rule that more cross is reported as one to narrow.
const MAX_FIRING_GROUPS: usize = 1000;
/// Deliveries of one project one run sends, at most: one tenant's backlog does not hold back
/// the others'.
const DELIVERIES_PER_PROJECT: i64 = 20;
/// How long events (and their deliveries) are kept.
const HISTORY_DAYS: i32 = 90;
/// Groups one rule may change per evaluation: a rule grouped by something with millions of
/// values must not flood the channels or the history.
const MAX_CHANGES_PER_RULE: usize = 100;

/// What the job needs besides the databases.
pub struct Setup {
    pub sealer: Option<Sealer>,
    pub client: ModelClient,
}

impl Setup {
    pub fn from_env() -> Result<Setup, String> {
        let sealer = Sealer::from_env().map_err(|e| e.to_string())?;
        Ok(Setup {
            sealer,
            client: ModelClient::new(agenttrace_etl::control::alerts::private_urls_allowed()),
        })
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertsReport {
    pub rules: u64,
    pub fired: u64,
    pub resolved: u64,
    pub errors: u64,
    pub delivered: u64,
    pub retrying: u64,
    pub failed: u64,
}

/// Evaluates every enabled rule at `now_us`, then sends what is due.
pub async fn run(
    pg: &Client,
    clickhouse: &ClickHouse,
    setup: &Setup,
    now_us: i64,
) -> Result<AlertsReport, String> {
    let mut report = AlertsReport::default();
    let rules = pg
        .query(
            "SELECT id, project_id, name, metric, filters, comparison, threshold, window_minutes, group_by,
                    channel_ids, silenced_until > now() AS silenced, last_error
             FROM alert_rules
             WHERE enabled AND project_id IN (SELECT id FROM projects WHERE archived_at IS NULL) AND (last_evaluated_at IS NULL OR last_evaluated_at <= now() - make_interval(secs =>
                   CASE WHEN window_minutes <= 60 THEN 55 WHEN window_minutes <= 1440 THEN 295 ELSE 895 END))
             ORDER BY last_evaluated_at NULLS FIRST, id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    for rule in &rules {
        if started.elapsed() > EVALUATION_BUDGET {
            break;
        }
        report.rules += 1;
        let outcome = measure(clickhouse, rule, now_us).await;
        match record(pg, rule, outcome).await {
            Ok(changes) => {
                report.fired += changes.0;
                report.resolved += changes.1;
                report.errors += changes.2;
            }
            // One rule's failure is its own: recorded on it, and the others go on.
            Err(error) => {
                let rule_id: Uuid = rule.get("id");
                tracing::error!(%rule_id, %error, "cannot record an alert rule's evaluation");
                report.errors += 1;
                pg.execute(
                    "UPDATE alert_rules SET last_evaluated_at = now(), last_error = $2 WHERE id = $1",
                    &[
                        &rule_id,
                        &"the evaluation could not be recorded (the server's log has the details)",
                    ],
                )
                .await
                .ok();
            }
        }
    }
    // History is kept for [`HISTORY_DAYS`].
    pg.execute(
        "DELETE FROM alert_events WHERE at < now() - make_interval(days => $1)",
        &[&HISTORY_DAYS],
    )
    .await
    .map_err(|e| e.to_string())?;
    deliver(pg, setup, &mut report).await.map_err(|e| e.to_string())?;
    Ok(report)
}

/// What a rule's owner is told when its metric could not be measured: ClickHouse's own words
/// (addresses, statements) stay in the server's log.
fn tenant_message(error: &AnalyticsError) -> String {
    match error {
        AnalyticsError::ClickHouse { source, .. } | AnalyticsError::QueryFailed(source) => {
            tracing::warn!(%error, "an alert rule's metric could not be measured");
            match source.exceeded_limit() {
                Some(limit) => format!(
                    "the metric exceeded the limit {}: {}",
                    limit.setting, limit.advice
                ),
                None if source.is_transient() => {
                    "ClickHouse was unavailable; the rule is measured again next minute".to_owned()
                }
                None => "the metric could not be measured (the server's log has the details)".to_owned(),
            }
        }
        other => other.to_string(),
    }
}

/// A group's value of the group-by as stored and shown: no NUL (PostgreSQL text refuses it),
/// at most [`MAX_GROUP_CHARS`] characters.
fn group_key(text: &str) -> String {
    text.chars()
        .take(MAX_GROUP_CHARS)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

/// Each group's value over the rule's window (`""` for a rule without a group-by).
async fn measure(
    clickhouse: &ClickHouse,
    rule: &tokio_postgres::Row,
    now_us: i64,
) -> Result<Vec<(String, f64)>, String> {
    let project: Uuid = rule.get("project_id");
    let metric: String = rule.get("metric");
    let filters: Value = rule.get("filters");
    let group_by: Option<String> = rule.get("group_by");
    let window_us = i64::from(rule.get::<_, i32>("window_minutes")) * 60_000_000;
    let filters = filters.as_object().cloned().unwrap_or_default();
    let (query, fields) = rule_query(&metric, &filters, group_by.as_deref(), now_us - window_us, now_us)
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(
        RULE_TIMEOUT,
        metrics::metrics(&clickhouse.for_project(project), project, &query),
    )
    .await
    .map_err(|_| {
        format!(
            "the metric took over {} s to measure; narrow the rule",
            RULE_TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| tenant_message(&e))?;
    let mut values = Vec::new();
    for row in &answer.data {
        let group = match &group_by {
            Some(name) => match &row[name.as_str()] {
                Value::String(text) => group_key(text.as_str()),
                Value::Null => String::new(),
                other => group_key(&other.to_string()),
            },
            None => String::new(),
        };
        // A latency or mean with nothing measured has no value: such a group neither fires
        // nor resolves.
        let parts: Option<Vec<f64>> = fields.iter().map(|field| row[*field].as_f64()).collect();
        if let Some(parts) = parts {
            values.push((group, parts.iter().sum()));
        }
    }
    // No rows at all: sums are zero (a rule on too little traffic can fire on that).
    if group_by.is_none() && values.is_empty() && matches!(metric.as_str(), "cost" | "tokens" | "requests") {
        values.push((String::new(), 0.0));
    }
    Ok(values)
}

fn message(rule: &tokio_postgres::Row, group: &str, kind: &str, value: Option<f64>) -> String {
    let name: String = rule.get("name");
    let metric: String = rule.get("metric");
    let comparison: String = rule.get("comparison");
    let threshold: f64 = rule.get("threshold");
    let window: i32 = rule.get("window_minutes");
    let group_by: Option<String> = rule.get("group_by");
    let whom = match group_by {
        Some(by) => format!(" for {by} {group:?}"),
        None => String::new(),
    };
    let value = value.map_or_else(|| "no value".to_owned(), |v| format!("{v:.6}"));
    match kind {
        "firing" => {
            format!("{name}: {metric}{whom} is {value} over the last {window} min ({comparison} {threshold})")
        }
        _ => format!(
            "{name}: {metric}{whom} is back to {value} over the last {window} min (fires {comparison} {threshold})"
        ),
    }
}

/// Records the rule's changes of state and their deliveries in one transaction: (fired,
/// resolved, errors).
async fn record(
    pg: &Client,
    rule: &tokio_postgres::Row,
    outcome: Result<Vec<(String, f64)>, String>,
) -> Result<(u64, u64, u64), tokio_postgres::Error> {
    // The job's connection is its own (the scheduler opens one per run): a transaction on it
    // by statements, rolled back on any error.
    pg.batch_execute("BEGIN").await?;
    let result = record_in_transaction(pg, rule, outcome).await;
    match result {
        Ok(counts) => {
            pg.batch_execute("COMMIT").await?;
            Ok(counts)
        }
        Err(error) => {
            pg.batch_execute("ROLLBACK").await.ok();
            Err(error)
        }
    }
}

async fn record_in_transaction(
    transaction: &Client,
    rule: &tokio_postgres::Row,
    outcome: Result<Vec<(String, f64)>, String>,
) -> Result<(u64, u64, u64), tokio_postgres::Error> {
    let rule_id: Uuid = rule.get("id");
    let project: Uuid = rule.get("project_id");
    let threshold: f64 = rule.get("threshold");
    let comparison: String = rule.get("comparison");
    let silenced: Option<bool> = rule.get("silenced");
    let silenced = silenced.unwrap_or(false);
    let channels: Vec<Uuid> = rule.get("channel_ids");
    // One evaluation of a rule at a time, across schedulers.
    let still_there = transaction
        .execute("SELECT 1 FROM alert_rules WHERE id = $1 FOR UPDATE", &[&rule_id])
        .await?;
    if still_there == 0 {
        // Deleted since the run read it.
        return Ok((0, 0, 0));
    }
    let event =
        |kind: &'static str, group: String, value: Option<f64>, text: String| (kind, group, value, text);
    let mut events = Vec::new();
    let mut counts = (0, 0, 0);
    match outcome {
        Err(error) => {
            let last: Option<String> = rule.get("last_error");
            // Reported once per streak of the same error, never quietly dropped.
            if last.as_deref() != Some(error.as_str()) {
                let name: String = rule.get("name");
                events.push(event(
                    "error",
                    String::new(),
                    None,
                    format!("{name} cannot be evaluated: {error}"),
                ));
                counts.2 += 1;
            }
            transaction
                .execute(
                    "UPDATE alert_rules SET last_evaluated_at = now(), last_error = $2 WHERE id = $1",
                    &[&rule_id, &error],
                )
                .await?;
        }
        Ok(values)
            if values
                .iter()
                .filter(|(_, v)| crosses(&comparison, *v, threshold))
                .count()
                > MAX_FIRING_GROUPS =>
        {
            // The same words every time, so the streak is reported once.
            let error = format!(
                "more groups cross the threshold than the {MAX_FIRING_GROUPS} a rule may track; narrow it with filters or another threshold"
            );
            let last: Option<String> = rule.get("last_error");
            if last.as_deref() != Some(error.as_str()) {
                let name: String = rule.get("name");
                events.push(event("error", String::new(), None, format!("{name}: {error}")));
                counts.2 += 1;
            }
            transaction
                .execute(
                    "UPDATE alert_rules SET last_evaluated_at = now(), last_error = $2 WHERE id = $1",
                    &[&rule_id, &error],
                )
                .await?;
        }
        Ok(values) => {
            let firing: std::collections::HashSet<String> = transaction
                .query(
                    "SELECT group_key FROM alert_states WHERE rule_id = $1 AND firing",
                    &[&rule_id],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let by_group: std::collections::HashMap<&str, f64> =
                values.iter().map(|(g, v)| (g.as_str(), *v)).collect();
            let crossing: std::collections::HashSet<&str> = values
                .iter()
                .filter(|(_, v)| crosses(&comparison, *v, threshold))
                .map(|(g, _)| g.as_str())
                .collect();
            // Resolutions first, so a rule at its limit of changes still lets groups go.
            let mut resolved: Vec<&String> =
                firing.iter().filter(|g| !crossing.contains(g.as_str())).collect();
            resolved.sort();
            for group in resolved.into_iter().take(MAX_CHANGES_PER_RULE) {
                let value = by_group.get(group.as_str()).copied();
                events.push(event(
                    "resolved",
                    group.clone(),
                    value,
                    message(rule, group, "resolved", value),
                ));
                counts.1 += 1;
            }
            for (group, value) in &values {
                if events.len() >= MAX_CHANGES_PER_RULE {
                    break;
                }
                if crossing.contains(group.as_str()) && !firing.contains(group) {
                    events.push(event(
                        "firing",
                        group.clone(),
                        Some(*value),
                        message(rule, group, "firing", Some(*value)),
                    ));
                    counts.0 += 1;
                }
            }
            transaction
                .execute(
                    "UPDATE alert_rules SET last_evaluated_at = now(), last_error = NULL WHERE id = $1",
                    &[&rule_id],
                )
                .await?;
        }
    }
    for (kind, group, value, text) in events {
        if kind != "error" {
            transaction
                .execute(
                    "INSERT INTO alert_states (rule_id, group_key, firing, value, changed_at) VALUES ($1, $2, $3, $4, now())
                     ON CONFLICT (rule_id, group_key) DO UPDATE SET firing = EXCLUDED.firing, value = EXCLUDED.value, changed_at = now()",
                    &[&rule_id, &group, &(kind == "firing"), &value],
                )
                .await?;
        }
        let event_id = Uuid::now_v7();
        transaction
            .execute(
                "INSERT INTO alert_events (id, rule_id, project_id, group_key, kind, value, threshold, message, silenced)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&event_id, &rule_id, &project, &group, &kind, &value, &threshold, &text, &silenced],
            )
            .await?;
        if !silenced {
            transaction
                .execute(
                    "INSERT INTO alert_deliveries (id, event_id, channel_id, project_id)
                     SELECT gen_random_uuid(), $1, c.id, $2 FROM alert_channels c WHERE c.project_id = $2 AND c.id = ANY($3)",
                    &[&event_id, &project, &channels],
                )
                .await?;
        }
    }
    Ok(counts)
}

/// Text as Slack reads it literally: `&`, `<` and `>` escaped, so a user id or tag cannot
/// mention `<!channel>` or make a link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether a channel's answer is final: 2xx delivered; a refusal that will not change
/// (a 4xx other than 408 and 429) failed; anything else is tried again.
fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "delivered",
        408 | 429 => "pending",
        400..=499 => "failed",
        _ => "pending",
    }
}

/// Backoff after `attempts` failures: 30 s, 1 min, 2 min, … at most an hour.
fn backoff_seconds(attempts: i32) -> f64 {
    (30.0 * 2f64.powi(attempts.clamp(0, 10) - 1)).min(3600.0)
}

async fn deliver(pg: &Client, setup: &Setup, report: &mut AlertsReport) -> Result<(), tokio_postgres::Error> {
    // Claimed for a while, so a concurrent run does not send them too; a run cut short leaves
    // them to be claimed again when the claim lapses.
    let due = pg
        .query(
            "UPDATE alert_deliveries d SET next_attempt_at = now() + make_interval(secs => $1)
             WHERE d.id IN (
                 SELECT id FROM alert_deliveries WHERE id IN (
                     SELECT id FROM (
                         SELECT id, next_attempt_at,
                                row_number() OVER (PARTITION BY project_id ORDER BY next_attempt_at) AS place
                         FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
                     ) due WHERE place <= $3 ORDER BY next_attempt_at LIMIT $2
                 ) FOR UPDATE SKIP LOCKED)
             RETURNING d.id, d.event_id, d.channel_id, d.project_id, d.attempts, d.created_at",
            &[&CLAIM_SECONDS, &DELIVERIES_PER_RUN, &DELIVERIES_PER_PROJECT],
        )
        .await?;
    // Sent concurrently, so a channel that hangs holds one slot for its timeout, not the run.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(SENDS_AT_ONCE));
    let mut sends = tokio::task::JoinSet::new();
    for (index, delivery) in due.iter().enumerate() {
        let prepared = prepare(pg, setup, delivery).await;
        let (client, slots) = (setup.client.clone(), slots.clone());
        sends.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let result = match prepared {
                Ok(prepared) => post(&client, prepared).await,
                Err(error) => Err(error),
            };
            (index, result)
        });
    }
    let mut results: Vec<Option<Result<u16, String>>> = vec![None; due.len()];
    while let Some(joined) = sends.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    for (delivery, result) in due.iter().zip(results) {
        let id: Uuid = delivery.get("id");
        let attempts: i32 = delivery.get::<_, i32>("attempts") + 1;
        let result = result.unwrap_or_else(|| Err("the send was cut short".to_owned()));
        let (status, http_status, error) = match result {
            Ok(code) => (
                outcome(code),
                Some(i32::from(code)),
                (!(200..300).contains(&code)).then(|| format!("the channel answered {code}")),
            ),
            Err(error) => ("pending", None, Some(error)),
        };
        let created: chrono::DateTime<chrono::Utc> = delivery.get("created_at");
        let expired = (chrono::Utc::now() - created).num_seconds() as f64 > GIVE_UP_HOURS * 3600.0;
        let status = if status == "pending" && expired {
            "failed"
        } else {
            status
        };
        match status {
            "delivered" => report.delivered += 1,
            "failed" => report.failed += 1,
            _ => report.retrying += 1,
        }
        pg.execute(
            "UPDATE alert_deliveries SET status = $2, attempts = $3, last_status = $4, last_error = $5,
                 delivered_at = CASE WHEN $2 = 'delivered' THEN now() END,
                 next_attempt_at = now() + make_interval(secs => $6)
             WHERE id = $1",
            &[
                &id,
                &status,
                &attempts,
                &http_status,
                &error,
                &backoff_seconds(attempts),
            ],
        )
        .await?;
    }
    Ok(())
}

/// A delivery ready to send: where, signed with what, and the body.
struct Prepared {
    id: Uuid,
    url: String,
    secret: String,
    body: Vec<u8>,
}

/// Reads one delivery's channel (opening its URL and secret) and event, and makes its body.
async fn prepare(pg: &Client, setup: &Setup, delivery: &tokio_postgres::Row) -> Result<Prepared, String> {
    let id: Uuid = delivery.get("id");
    let channel_id: Uuid = delivery.get("channel_id");
    let project: Uuid = delivery.get("project_id");
    let event_id: Uuid = delivery.get("event_id");
    let row = pg
        .query_one(
            "SELECT c.kind, c.url_sealed, c.secret_sealed, e.kind AS event_kind, e.group_key, e.value, e.threshold,
                    e.message, e.at, r.id AS rule_id, r.name, r.metric, r.comparison, r.window_minutes, r.group_by
             FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id
             JOIN alert_events e ON e.id = d.event_id JOIN alert_rules r ON r.id = e.rule_id
             WHERE d.id = $1",
            &[&id],
        )
        .await
        .map_err(|e| e.to_string())?;
    let sealer = setup
        .sealer
        .as_ref()
        .ok_or("AGENTTRACE_ENCRYPTION_KEY is not set: channel URLs and secrets cannot be opened")?;
    let open = |column: &str, field: &str| -> Result<String, String> {
        let bytes = sealer
            .open(
                row.get::<_, &[u8]>(column),
                &sealed_for(project, channel_id, field),
            )
            .map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|e| e.to_string())
    };
    let url = open("url_sealed", "url")?;
    let secret = open("secret_sealed", "secret")?;
    let kind: String = row.get("kind");
    let at: chrono::DateTime<chrono::Utc> = row.get("at");
    let event_kind: String = row.get("event_kind");
    let text: String = row.get("message");
    let body = if kind == "slack" {
        let icon = match event_kind.as_str() {
            "firing" => ":rotating_light:",
            "resolved" => ":white_check_mark:",
            _ => ":warning:",
        };
        json!({ "text": format!("{icon} {}", slack_escape(&text)) })
    } else {
        let mut rule = Map::new();
        rule.insert("id".into(), json!(row.get::<_, Uuid>("rule_id")));
        rule.insert("name".into(), json!(row.get::<_, String>("name")));
        rule.insert("metric".into(), json!(row.get::<_, String>("metric")));
        rule.insert("comparison".into(), json!(row.get::<_, String>("comparison")));
        rule.insert("threshold".into(), json!(row.get::<_, f64>("threshold")));
        rule.insert("windowMinutes".into(), json!(row.get::<_, i32>("window_minutes")));
        rule.insert("groupBy".into(), json!(row.get::<_, Option<String>>("group_by")));
        json!({
            "id": id,
            "eventId": event_id,
            "type": format!("alert.{event_kind}"),
            "apiVersion": "v1",
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "projectId": project,
            "rule": rule,
            "group": row.get::<_, String>("group_key"),
            "value": row.get::<_, Option<f64>>("value"),
            "message": text,
        })
    };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    Ok(Prepared {
        id,
        url,
        secret,
        body,
    })
}

/// Sends one delivery; the channel's HTTP status, or why there was none.
async fn post(client: &ModelClient, delivery: Prepared) -> Result<u16, String> {
    let timestamp = chrono::Utc::now().timestamp();
    let response = client
        .post(&delivery.url)?
        .timeout(DELIVERY_TIMEOUT)
        .header("content-type", "application/json")
        .header("user-agent", "AgentTrace/1.0")
        .header("x-agenttrace-delivery", delivery.id.to_string())
        .header(
            "x-agenttrace-signature",
            signature(&delivery.secret, timestamp, &delivery.body),
        )
        .body(delivery.body)
        .send()
        .await
        .map_err(|e| {
            // The URL may be a credential (Slack's): never in an error shown to the tenant.
            format!("the channel did not answer: {}", e.without_url())
        })?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_form() {
        // HMAC-SHA256("secret", "1700000000.{}")
        let signed = signature("secret", 1_700_000_000, b"{}");
        assert!(signed.starts_with("t=1700000000,v1="));
        assert_eq!(signed.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(signed, signature("secret", 1_700_000_001, b"{}"));
    }

    #[test]
    fn group_values_and_slack_text_are_made_safe() {
        assert_eq!(group_key("a\0b"), "a\u{fffd}b");
        assert_eq!(group_key(&"x".repeat(1000)).chars().count(), MAX_GROUP_CHARS);
        assert_eq!(
            slack_escape("<!channel> <https://evil|x> & co"),
            "&lt;!channel&gt; &lt;https://evil|x&gt; &amp; co"
        );
    }

    #[test]
    fn refusals_that_will_not_change_are_final() {
        assert_eq!(outcome(200), "delivered");
        assert_eq!(outcome(204), "delivered");
        assert_eq!(outcome(410), "failed");
        assert_eq!(outcome(429), "pending");
        assert_eq!(outcome(500), "pending");
        assert_eq!(backoff_seconds(1), 30.0);
        assert_eq!(backoff_seconds(3), 120.0);
        assert_eq!(backoff_seconds(20), 3600.0);
    }
}
