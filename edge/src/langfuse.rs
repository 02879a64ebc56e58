//! Langfuse's REST ingestion, as its SDKs and integrations (Dify, LiteLLM, the v2 SDKs) call
//! it: the legacy batch `POST /api/public/ingestion` and `POST /api/public/scores`.
//!
//! Langfuse events are upserts: a `trace-create` may come again with only the fields that
//! changed, and a `span-update` carries only what it updates. So traces and observations become
//! `trace_patch` / `observation_patch` events, which the ETL merges with what it stored, in
//! whatever order they arrive. A `*-create` fills what Langfuse fills by default (start time,
//! the trace an observation without one opens, its name). Scores keep Langfuse's data types.
//! `sdk-log` events are acknowledged and kept as dead letters (they are the SDK's own log lines,
//! not telemetry). Answers follow Langfuse: 207 with `successes` and `errors` per event id for a
//! batch, 400 for a malformed envelope; scores 200 `{id}` for one, 202 or 207 for a list.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::TimeWindow;
use agenttrace_schemas::score_config::{CONFIG_ID_KEY, GivenValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::ingest::{Accepted, Intake};
use crate::limits::{Limits, RequestError};
use crate::otlp::common::{compact, cost_from_details, usage_from_details};
use crate::score_configs::ConfigCheck;

#[derive(Deserialize)]
struct Batch {
    batch: Vec<Value>,
}

/// One Langfuse event as read from the batch.
#[derive(Deserialize)]
struct LangfuseEvent {
    id: String,
    timestamp: Value,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    body: Value,
}

fn field<'a>(body: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .find_map(|key| body.get(*key).filter(|v| !v.is_null()))
}

fn text(body: &Value, keys: &[&str]) -> Option<String> {
    match field(body, keys)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Langfuse times are ISO 8601, with or without an offset (none means UTC).
fn time(body: &Value, keys: &[&str]) -> Result<Option<String>, String> {
    let Some(value) = field(body, keys) else {
        return Ok(None);
    };
    let key = keys[0];
    let text = value
        .as_str()
        .ok_or_else(|| format!("body.{key}: expected an ISO 8601 time, got {value}"))?;
    Timestamp::parse(text)
        .or_else(|_| Timestamp::parse(&format!("{text}Z")))
        .map(|t| Some(t.to_string()))
        .map_err(|_| format!("body.{key}: expected an ISO 8601 time, got {text:?}"))
}

fn metadata(body: &Value) -> Option<Value> {
    match field(body, &["metadata"])? {
        Value::Object(map) if map.is_empty() => None,
        Value::Object(map) => Some(Value::Object(map.clone())),
        other => Some(json!({ "metadata": other })),
    }
}

fn level(body: &Value) -> Option<String> {
    text(body, &["level"]).map(|l| l.to_ascii_lowercase())
}

/// `usage` (legacy: `{input, output, total, inputCost, ...}` or OpenAI's `{promptTokens, ...}`)
/// and `usageDetails` (any map or OpenAI shape) as usage, and `costDetails` or the legacy
/// usage's costs as cost.
fn usage_and_cost(body: &Value) -> (Option<Value>, Option<Value>) {
    let legacy = field(body, &["usage"]);
    let usage = field(body, &["usageDetails", "usage_details"])
        .and_then(usage_from_details)
        .or_else(|| legacy.and_then(usage_from_details));
    let cost = field(body, &["costDetails", "cost_details"])
        .and_then(cost_from_details)
        .or_else(|| {
            let legacy = legacy?;
            let cost = compact(json!({
                "input": legacy.get("inputCost").and_then(Value::as_f64),
                "output": legacy.get("outputCost").and_then(Value::as_f64),
                "total": legacy.get("totalCost").and_then(Value::as_f64),
            }));
            cost.as_object().is_some_and(|c| !c.is_empty()).then_some(cost)
        });
    (usage, cost)
}

/// The observation type of a Langfuse event: from its type name, or `body.type` for
/// `observation-*`.
fn observation_kind(kind: &str, body: &Value) -> Result<String, String> {
    let named = kind.split('-').next().unwrap_or_default();
    let kind = if named == "observation" {
        text(body, &["type"]).ok_or("body.type: required for observation events (SPAN, GENERATION, ...)")?
    } else {
        named.to_owned()
    };
    Ok(kind.to_ascii_lowercase())
}

/// One Langfuse event as AgentTrace events (wire JSON), or why it cannot be.
fn map_event(event: &LangfuseEvent, received_at: Timestamp) -> Result<Vec<Value>, String> {
    let body = &event.body;
    if !body.is_object() {
        return Err(format!("body: expected an object, got {body}"));
    }
    let timestamp = match &event.timestamp {
        Value::String(text) => Timestamp::parse(text)
            .or_else(|_| Timestamp::parse(&format!("{text}Z")))
            .map_err(|_| format!("timestamp: expected an ISO 8601 time, got {text:?}"))?,
        Value::Null => received_at,
        other => return Err(format!("timestamp: expected an ISO 8601 time, got {other}")),
    };
    let envelope = |kind: &str, suffix: &str, body: Value| json!({ "id": format!("{}{suffix}", event.id), "type": kind, "timestamp": timestamp, "body": body });
    let id = || text(body, &["id"]).ok_or_else(|| "body.id: required".to_owned());
    match event.kind.as_str() {
        "trace-create" => {
            let trace = compact(json!({
                "id": id()?,
                "timestamp": time(body, &["timestamp"])?,
                "name": text(body, &["name"]),
                "user_id": text(body, &["userId", "user_id"]),
                "session_id": text(body, &["sessionId", "session_id"]),
                "release": text(body, &["release"]),
                "version": text(body, &["version"]),
                "environment": text(body, &["environment"]),
                "tags": field(body, &["tags"]),
                "input": field(body, &["input"]),
                "output": field(body, &["output"]),
                "metadata": metadata(body),
                "public": field(body, &["public"]).and_then(Value::as_bool),
            }));
            Ok(vec![envelope("trace_patch", "", trace)])
        }
        "span-create" | "span-update" | "generation-create" | "generation-update" | "event-create"
        | "observation-create" | "observation-update" => {
            let id = id()?;
            let creates = event.kind.ends_with("-create");
            let kind = observation_kind(&event.kind, body)?;
            let (usage, cost) = usage_and_cost(body);
            let mut start = time(body, &["startTime", "start_time"])?;
            let mut end = time(body, &["endTime", "end_time"])?;
            if creates && start.is_none() {
                start = Some(timestamp.to_string());
            }
            if kind == "event" && end.is_none() {
                end.clone_from(&start);
            }
            let trace_id = text(body, &["traceId", "trace_id"]);
            let mut events = Vec::new();
            // Langfuse opens a trace of the observation's own id for one created without a trace.
            let trace_id = match (trace_id, creates) {
                (None, true) => {
                    events.push(envelope(
                        "trace_patch",
                        "-trace",
                        json!({ "id": id, "timestamp": start }),
                    ));
                    Some(id.clone())
                }
                (trace_id, _) => trace_id,
            };
            let observation = compact(json!({
                "id": id,
                "trace_id": trace_id,
                "parent_observation_id": text(body, &["parentObservationId", "parent_observation_id"]),
                "type": kind,
                "name": text(body, &["name"]).or_else(|| creates.then(|| kind.clone())),
                "start_time": start,
                "end_time": end,
                "level": level(body),
                "status_message": text(body, &["statusMessage", "status_message"]),
                "input": field(body, &["input"]),
                "output": field(body, &["output"]),
                "metadata": metadata(body),
                "model": text(body, &["model"]),
                "model_parameters": field(body, &["modelParameters", "model_parameters"]),
                "usage": usage,
                "cost": cost,
                "completion_start_time": time(body, &["completionStartTime", "completion_start_time"])?,
                "prompt_name": text(body, &["promptName", "prompt_name"]),
                "prompt_version": field(body, &["promptVersion", "prompt_version"]).and_then(Value::as_u64),
            }));
            events.insert(0, envelope("observation_patch", "", observation));
            Ok(events)
        }
        "score-create" => Ok(vec![envelope("score", "", score_body(body, timestamp)?)]),
        other => Err(format!(
            "type: unknown event type {other:?}; expected trace-create, span-create, span-update, generation-create, \
             generation-update, event-create, observation-create, observation-update, score-create or sdk-log"
        )),
    }
}

/// A Langfuse score as the event model's score body.
fn score_body(body: &Value, timestamp: Timestamp) -> Result<Value, String> {
    let trace_id = text(body, &["traceId", "trace_id"]).ok_or(
        "body.traceId: required here; scores of a session or a dataset run without a trace are not stored yet",
    )?;
    let name = text(body, &["name"]).ok_or("body.name: required")?;
    let raw = field(body, &["value"]).ok_or("body.value: required")?;
    let data_type = text(body, &["dataType", "data_type"]).map(|t| t.to_ascii_lowercase());
    let (value, data_type) = match (data_type.as_deref(), raw) {
        (Some("boolean"), Value::Number(n)) => match n.as_f64() {
            Some(v) if v == 0.0 || v == 1.0 => (json!(v == 1.0), "boolean"),
            _ => return Err(format!("body.value: a BOOLEAN score is 0 or 1, not {n}")),
        },
        (Some("boolean"), Value::Bool(b)) => (json!(b), "boolean"),
        (Some("numeric") | None, Value::Number(n)) => (json!(n), "numeric"),
        (Some("categorical") | None, Value::String(s)) => (json!(s), "categorical"),
        (Some("text" | "correction"), Value::String(s)) => (json!(s), "text"),
        (Some("categorical"), Value::Number(n)) => (json!(n.to_string()), "categorical"),
        (None, Value::Bool(b)) => (json!(b), "boolean"),
        (data_type, value) => {
            return Err(format!(
                "body.value: {value} does not fit dataType {}",
                data_type.unwrap_or("(none)").to_ascii_uppercase()
            ));
        }
    };
    let mut metadata = match field(body, &["metadata"]) {
        Some(Value::Object(map)) => map.clone(),
        Some(other) => Map::from_iter([("metadata".to_owned(), other.clone())]),
        None => Map::new(),
    };
    for key in ["environment", "configId", "queueId", "sessionId", "datasetRunId"] {
        if let Some(value) = field(body, &[key]) {
            metadata.insert(format!("langfuse.{key}"), value.clone());
        }
    }
    let source = match text(body, &["source"]).map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("annotation") => "annotation",
        Some("eval") => "eval",
        _ => "api",
    };
    Ok(compact(json!({
        "id": text(body, &["id"]).ok_or("body.id: required")?,
        "trace_id": trace_id,
        "observation_id": text(body, &["observationId", "observation_id"]),
        "timestamp": time(body, &["timestamp"])?.unwrap_or_else(|| timestamp.to_string()),
        "name": name,
        "value": value,
        "data_type": data_type,
        "source": source,
        "comment": text(body, &["comment"]),
        "metadata": (!metadata.is_empty()).then_some(Value::Object(metadata)),
    })))
}

/// A Langfuse answer for one event: its id and status, and for errors why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    pub status: u16,
    pub error: Option<String>,
}

impl Outcome {
    /// The source event `id` refused with a 400 saying `error`.
    fn refused(id: &str, error: String) -> Outcome {
        Outcome {
            id: id.to_owned(),
            status: 400,
            error: Some(error),
        }
    }
}

/// A batch mapped and validated: what to buffer, and the answer per event.
#[derive(Debug, Default)]
pub struct Ingestion {
    pub intake: Intake,
    pub outcomes: Vec<Outcome>,
}

impl Ingestion {
    /// Langfuse's answer: always 207, successes and errors per event id.
    pub fn response_json(&self) -> String {
        let successes: Vec<Value> = self
            .outcomes
            .iter()
            .filter(|o| o.error.is_none())
            .map(|o| json!({ "id": o.id, "status": o.status }))
            .collect();
        let errors: Vec<Value> = self
            .outcomes
            .iter()
            .filter_map(|o| {
                let error = o.error.as_ref()?;
                Some(json!({ "id": o.id, "status": o.status, "message": "Invalid request data", "error": error }))
            })
            .collect();
        json!({ "successes": successes, "errors": errors }).to_string()
    }
}

/// Validates mapped events into `intake` under `index`; the outcome for the source event.
fn push(
    intake: &mut Intake,
    index: usize,
    id: &str,
    mapped: Result<Vec<Value>, String>,
    window: &TimeWindow,
    limits: &Limits,
) -> Outcome {
    let events = match mapped {
        Ok(events) => events,
        Err(error) => return Outcome::refused(id, error),
    };
    let before = intake.rejected.len();
    for event in events {
        intake.push(index, event.to_string(), window, limits);
    }
    match intake.rejected[before..].first() {
        Some(rejection) => Outcome::refused(id, rejection.error.clone()),
        None => Outcome {
            id: id.to_owned(),
            status: 201,
            error: None,
        },
    }
}

/// Like [`push`], but a score that does not fit the config it names is refused with a 400, and
/// its mapped event is kept invalid: the ETL checks it again as it loads, so its dead letter
/// names the same field and rule.
fn push_checked(
    intake: &mut Intake,
    index: usize,
    id: &str,
    mapped: Result<Vec<Value>, String>,
    window: &TimeWindow,
    limits: &Limits,
    configs: &mut ConfigCheck,
) -> Outcome {
    if let Ok(events) = &mapped
        && let Some(error) = events.iter().find_map(|event| config_misfit(event, configs))
    {
        for event in events {
            intake.events.push(Accepted {
                json: event.to_string(),
                valid: false,
            });
        }
        return Outcome::refused(id, error);
    }
    push(intake, index, id, mapped, window, limits)
}

/// Why a mapped score event does not fit the config it names, if it names one.
fn config_misfit(event: &Value, configs: &mut ConfigCheck) -> Option<String> {
    if event["type"] != "score" {
        return None;
    }
    let score = &event["body"];
    let config_id = text(&score["metadata"], &[CONFIG_ID_KEY])?;
    let given = match &score["value"] {
        Value::Bool(b) => GivenValue::Bool(*b),
        Value::String(s) => GivenValue::Text(s),
        other => GivenValue::Number(other.as_f64().unwrap_or(f64::NAN)),
    };
    configs
        .check(
            &config_id,
            score["name"].as_str().unwrap_or_default(),
            score["data_type"].as_str(),
            given,
        )
        .err()
}

/// `POST /api/public/ingestion`.
pub fn ingestion(
    body: &[u8],
    received_at: Timestamp,
    window: &TimeWindow,
    limits: &Limits,
    configs: &mut ConfigCheck,
) -> Result<Ingestion, RequestError> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        RequestError::Malformed(format!(
            "the body must be {{\"batch\": [...]}} of Langfuse events: {e}"
        ))
    })?;
    if batch.batch.len() > limits.max_events {
        return Err(RequestError::TooManyEvents {
            count: batch.batch.len(),
            limit: limits.max_events,
        });
    }
    let mut ingestion = Ingestion::default();
    for (index, raw) in batch.batch.into_iter().enumerate() {
        let event: LangfuseEvent = match serde_json::from_value(raw.clone()) {
            Ok(event) => event,
            Err(error) => {
                let id = raw
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let outcome = push(
                    &mut ingestion.intake,
                    index,
                    &id,
                    Err(format!("event: {error}")),
                    window,
                    limits,
                );
                ingestion.outcomes.push(outcome);
                // Kept as a dead letter, like every event that could not be read.
                ingestion.intake.events.push(Accepted {
                    json: raw.to_string(),
                    valid: false,
                });
                continue;
            }
        };
        if event.kind == "sdk-log" {
            ingestion.intake.events.push(Accepted {
                json: raw.to_string(),
                valid: false,
            });
            ingestion.outcomes.push(Outcome {
                id: event.id,
                status: 201,
                error: None,
            });
            continue;
        }
        let mapped = map_event(&event, received_at);
        if mapped.is_err() {
            ingestion.intake.events.push(Accepted {
                json: raw.to_string(),
                valid: false,
            });
        }
        let outcome = push_checked(
            &mut ingestion.intake,
            index,
            &event.id,
            mapped,
            window,
            limits,
            configs,
        );
        ingestion.outcomes.push(outcome);
    }
    Ok(ingestion)
}

/// `POST /api/public/scores`: one score (`{…}` → 200 `{id}` or 400) or a list (the v5 SDKs:
/// 202 when all were accepted, else 207 `{accepted, rejected, errors}`).
pub fn scores(
    body: &[u8],
    received_at: Timestamp,
    window: &TimeWindow,
    limits: &Limits,
    configs: &mut ConfigCheck,
) -> Result<(Intake, u16, String), RequestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| RequestError::Malformed(format!("the body must be a score or a list of scores: {e}")))?;
    let (items, single) = match value {
        Value::Array(items) => (items, false),
        item @ Value::Object(_) => (vec![item], true),
        other => {
            return Err(RequestError::Malformed(format!(
                "the body must be a score or a list of scores, not {other}"
            )));
        }
    };
    if items.len() > limits.max_events {
        return Err(RequestError::TooManyEvents {
            count: items.len(),
            limit: limits.max_events,
        });
    }
    let mut intake = Intake::default();
    let mut outcomes = Vec::new();
    for (index, mut item) in items.into_iter().enumerate() {
        // Found by fuzzing: a list item that is not an object made the id assignment panic.
        if !item.is_object() {
            let refused = Err(format!("a score must be a JSON object, not {item}"));
            outcomes.push(push(&mut intake, index, "", refused, window, limits));
            continue;
        }
        // A score without an id gets a stable one, so a retried request does not duplicate it.
        if item.get("id").is_none_or(Value::is_null) {
            let digest = crate::otlp::common::content_id(&[item.to_string().as_bytes()]);
            item["id"] = json!(format!("score-{digest}"));
        }
        let id = text(&item, &["id"]).unwrap_or_default();
        let mapped = score_body(&item, received_at).map(|body| {
            vec![json!({ "id": format!("score-{id}"), "type": "score", "timestamp": received_at, "body": body })]
        });
        // Kept as a dead letter, as the batch route keeps what it refuses.
        if mapped.is_err() {
            intake.events.push(Accepted {
                json: item.to_string(),
                valid: false,
            });
        }
        outcomes.push(push_checked(
            &mut intake,
            index,
            &id,
            mapped,
            window,
            limits,
            configs,
        ));
    }
    let rejected: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    let answer = if single {
        match rejected.first() {
            None => (200, json!({ "id": outcomes[0].id }).to_string()),
            Some(outcome) => (
                400,
                json!({ "message": "Invalid request data", "error": outcome.error }).to_string(),
            ),
        }
    } else if rejected.is_empty() {
        (202, json!({ "message": "Accepted" }).to_string())
    } else {
        let errors: Vec<Value> = rejected
            .iter()
            .map(|o| json!({ "message": format!("score {}: {}", o.id, o.error.as_deref().unwrap_or_default()) }))
            .collect();
        (
            207,
            json!({ "accepted": outcomes.len() - rejected.len(), "rejected": rejected.len(), "errors": errors })
                .to_string(),
        )
    };
    Ok((intake, answer.0, answer.1))
}

#[cfg(test)]
mod tests;
