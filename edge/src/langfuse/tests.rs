//! Langfuse batches as Dify and LiteLLM send them (the v2 ingestion format: camelCase bodies,
//! `usage` or `usageDetails`, ISO times with or without an offset) and scores as the v5 Python
//! SDK sends them (a list to `/api/public/scores`).

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::TimeWindow;
use serde_json::{Value, json};

use super::*;

fn now() -> Timestamp {
    Timestamp::parse("2026-11-30T12:00:00Z").unwrap()
}

fn run(batch: Value) -> Ingestion {
    ingestion(
        batch.to_string().as_bytes(),
        now(),
        &TimeWindow::around(now()),
        &Limits::default(),
        &mut ConfigCheck::unknown(),
    )
    .unwrap()
}

fn valid_events(ingestion: &Ingestion) -> Vec<Value> {
    ingestion
        .intake
        .events
        .iter()
        .filter(|e| e.valid)
        .map(|e| serde_json::from_str(&e.json).unwrap())
        .collect()
}

#[test]
fn a_dify_batch_becomes_patches_and_scores() {
    let batch = json!({"batch": [
        {"id": "ev-1", "timestamp": "2026-11-30T11:00:00.000Z", "type": "trace-create",
         "body": {"id": "trace-1", "name": "workflow", "userId": "user-9", "sessionId": "conv-3",
                  "input": {"query": "hi"}, "tags": ["dify"], "metadata": {"app": "support"}}},
        {"id": "ev-2", "timestamp": "2026-11-30T11:00:01.000Z", "type": "span-create",
         "body": {"id": "span-1", "traceId": "trace-1", "name": "retrieval", "startTime": "2026-11-30T11:00:01.000000",
                  "input": {"q": "hi"}}},
        {"id": "ev-3", "timestamp": "2026-11-30T11:00:02.000Z", "type": "generation-create",
         "body": {"id": "gen-1", "traceId": "trace-1", "parentObservationId": "span-1", "name": "llm",
                  "startTime": "2026-11-30T11:00:02Z", "model": "gpt-4o", "modelParameters": {"temperature": 0.2},
                  "usage": {"input": 120, "output": 30, "total": 150, "unit": "TOKENS"}, "level": "DEFAULT"}},
        {"id": "ev-4", "timestamp": "2026-11-30T11:00:03.000Z", "type": "score-create",
         "body": {"id": "score-1", "traceId": "trace-1", "name": "helpful", "value": 1, "dataType": "BOOLEAN"}},
        {"id": "ev-5", "timestamp": "2026-11-30T11:00:03.000Z", "type": "sdk-log", "body": {"log": "flushed"}}
    ]});
    let ingestion = run(batch);
    assert!(
        ingestion.outcomes.iter().all(|o| o.status == 201),
        "{:?}",
        ingestion.outcomes
    );
    let response: Value = serde_json::from_str(&ingestion.response_json()).unwrap();
    assert_eq!(response["successes"].as_array().unwrap().len(), 5);
    assert_eq!(response["errors"], json!([]));

    let events = valid_events(&ingestion);
    let find = |id: &str| events.iter().find(|e| e["id"] == id).unwrap();
    let trace = find("ev-1");
    assert_eq!(trace["type"], "trace_patch");
    assert_eq!(trace["body"]["user_id"], "user-9");
    assert_eq!(trace["body"]["session_id"], "conv-3");
    let span = find("ev-2");
    assert_eq!(
        (span["type"].as_str(), span["body"]["type"].as_str()),
        (Some("observation_patch"), Some("span"))
    );
    assert_eq!(
        span["body"]["start_time"], "2026-11-30T11:00:01.000000Z",
        "no offset means UTC"
    );
    let generation = &find("ev-3")["body"];
    assert_eq!(generation["type"], "generation");
    assert_eq!(generation["usage"]["input_tokens"], 120);
    assert_eq!(generation["level"], "default");
    let score = &find("ev-4")["body"];
    assert_eq!(
        (score["value"].as_bool(), score["data_type"].as_str()),
        (Some(true), Some("boolean"))
    );
    // The SDK's log line is kept (as a dead letter), not stored as telemetry.
    assert_eq!(ingestion.intake.events.iter().filter(|e| !e.valid).count(), 1);
}

#[test]
fn an_update_carries_only_what_it_updates() {
    let ingestion = run(json!({"batch": [
        {"id": "ev-9", "timestamp": "2026-11-30T11:00:05.000Z", "type": "generation-update",
         "body": {"id": "gen-1", "endTime": "2026-11-30T11:00:04Z", "output": "hello",
                  "usageDetails": {"input": 120, "output": 31}}}
    ]}));
    let events = valid_events(&ingestion);
    assert_eq!(events.len(), 1);
    let body = events[0]["body"].as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["end_time", "id", "output", "type", "usage"]);
}

#[test]
fn an_observation_created_without_a_trace_opens_one() {
    let ingestion = run(json!({"batch": [
        {"id": "ev-1", "timestamp": "2026-11-30T11:00:00Z", "type": "event-create", "body": {"id": "lonely"}}
    ]}));
    let events = valid_events(&ingestion);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["body"]["trace_id"], "lonely");
    assert_eq!(events[0]["body"]["name"], "event");
    assert_eq!(events[0]["body"]["end_time"], events[0]["body"]["start_time"]);
    assert_eq!(
        (events[1]["type"].as_str(), events[1]["body"]["id"].as_str()),
        (Some("trace_patch"), Some("lonely"))
    );
}

#[test]
fn bad_events_are_named_and_the_rest_kept() {
    let ingestion = run(json!({"batch": [
        {"id": "ok", "timestamp": "2026-11-30T11:00:00Z", "type": "trace-create", "body": {"id": "t"}},
        {"id": "no-id", "timestamp": "2026-11-30T11:00:00Z", "type": "span-create", "body": {"traceId": "t"}},
        {"id": "bad-time", "timestamp": "2026-11-30T11:00:00Z", "type": "span-create",
         "body": {"id": "s", "traceId": "t", "startTime": "yesterday"}},
        {"id": "bad-score", "timestamp": "2026-11-30T11:00:00Z", "type": "score-create",
         "body": {"id": "sc", "traceId": "t", "name": "n", "value": 3, "dataType": "BOOLEAN"}},
        {"id": "unknown", "timestamp": "2026-11-30T11:00:00Z", "type": "trace-delete", "body": {}},
        {"id": "future", "timestamp": "2030-01-01T00:00:00Z", "type": "trace-create", "body": {"id": "t2"}}
    ]}));
    let errors: Vec<(&str, &str)> = ingestion
        .outcomes
        .iter()
        .filter_map(|o| Some((o.id.as_str(), o.error.as_deref()?)))
        .collect();
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert!(errors[0].1.contains("body.id: required"), "{errors:?}");
    assert!(errors[1].1.contains("body.startTime"), "{errors:?}");
    assert!(errors[2].1.contains("BOOLEAN score is 0 or 1"), "{errors:?}");
    assert!(
        errors[3].1.contains("unknown event type \"trace-delete\""),
        "{errors:?}"
    );
    assert!(errors[4].1.contains("in the future"), "{errors:?}");
    assert_eq!(ingestion.outcomes[0].status, 201);
    // Every event is kept: the good one to load, the others as dead letters.
    assert_eq!(ingestion.intake.events.len(), 6);
    let malformed = ingestion_error(b"{\"batch\": 3}");
    assert!(malformed.contains("{\"batch\": [...]}"), "{malformed}");
}

fn ingestion_error(body: &[u8]) -> String {
    super::ingestion(
        body,
        now(),
        &TimeWindow::around(now()),
        &Limits::default(),
        &mut ConfigCheck::unknown(),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn scores_one_or_many_with_langfuse_answers() {
    let window = TimeWindow::around(now());
    let one = json!({"traceId": "t", "name": "accuracy", "value": 0.9});
    let (intake, status, body) = scores(
        one.to_string().as_bytes(),
        now(),
        &window,
        &Limits::default(),
        &mut ConfigCheck::unknown(),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(intake.accepted(), 1);
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("score-"), "a stable id is given: {id}");

    let many = json!([
        {"id": "a", "traceId": "t", "name": "tone", "value": "friendly", "dataType": "CATEGORICAL"},
        {"id": "b", "traceId": "t", "name": "note", "value": "great answer", "dataType": "TEXT"},
        {"id": "c", "name": "orphan", "value": 1, "sessionId": "s"}
    ]);
    let (intake, status, body) = scores(
        many.to_string().as_bytes(),
        now(),
        &window,
        &Limits::default(),
        &mut ConfigCheck::unknown(),
    )
    .unwrap();
    assert_eq!(status, 207);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("body.traceId")
    );
    let text: Value = serde_json::from_str(&intake.events[1].json).unwrap();
    assert_eq!(text["body"]["data_type"], "text");
}

/// Found by fuzzing: a list of scores with an item that is not an object panicked.
#[test]
fn a_score_list_item_that_is_not_an_object_is_refused_by_index() {
    let body = br#"[{"traceId": "t1", "name": "quality", "value": 0.9}, 6.5, "x"]"#;
    let (intake, status, answer) = scores(
        body,
        now(),
        &TimeWindow::around(now()),
        &Limits::default(),
        &mut ConfigCheck::unknown(),
    )
    .unwrap();
    assert_eq!(status, 207, "{answer}");
    assert_eq!(intake.accepted(), 1);
    assert_eq!(answer.matches("must be a JSON object").count(), 2, "{answer}");
}

fn helpfulness() -> agenttrace_schemas::score_config::ScoreConfig {
    use agenttrace_schemas::score_config::{ConfigDataType, ScoreConfig};
    ScoreConfig {
        id: "cfg-1".into(),
        name: "helpfulness".into(),
        data_type: ConfigDataType::Numeric,
        min_value: Some(0.0),
        max_value: Some(5.0),
        categories: None,
        is_archived: false,
    }
}

/// The config store of these tests: `cfg-1` is known, every other id is missing.
fn known(id: &str) -> crate::score_configs::Known {
    Some((id == "cfg-1").then(helpfulness))
}

#[test]
fn a_score_that_misfits_its_config_is_a_400_naming_the_field_and_kept() {
    let window = TimeWindow::around(now());
    let above = json!({"traceId": "t", "name": "helpfulness", "value": 7, "configId": "cfg-1"});
    let mut check = ConfigCheck::new(&known);
    let (intake, status, body) = scores(
        above.to_string().as_bytes(),
        now(),
        &window,
        &Limits::default(),
        &mut check,
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("body.value: 7 is above the maxValue 5"), "{body}");
    assert_eq!(intake.accepted(), 0);
    assert_eq!(intake.events.len(), 1, "kept as a dead letter");
    assert!(!intake.events[0].valid);

    let many = json!([
        {"id": "fits", "traceId": "t", "name": "helpfulness", "value": 4, "configId": "cfg-1"},
        {"id": "renamed", "traceId": "t", "name": "tone", "value": 4, "configId": "cfg-1"},
        {"id": "unknown", "traceId": "t", "name": "x", "value": 1, "configId": "cfg-9"}
    ]);
    let (intake, status, body) = scores(
        many.to_string().as_bytes(),
        now(),
        &window,
        &Limits::default(),
        &mut check,
    )
    .unwrap();
    assert_eq!(status, 207, "{body}");
    assert_eq!(intake.accepted(), 1);
    assert!(body.contains("score renamed: body.name"), "{body}");
    assert!(
        body.contains("score unknown: body.configId: no score config cfg-9"),
        "{body}"
    );
}

#[test]
fn a_batch_score_that_misfits_is_a_400_in_the_207_and_unknown_configs_are_collected() {
    let batch = json!({"batch": [
        {"id": "e1", "type": "score-create", "timestamp": "2026-11-30T12:00:00Z",
         "body": {"id": "s1", "traceId": "t", "name": "helpfulness", "value": -1, "configId": "cfg-1"}},
        {"id": "e2", "type": "score-create", "timestamp": "2026-11-30T12:00:00Z",
         "body": {"id": "s2", "traceId": "t", "name": "other", "value": 1, "configId": "cfg-2"}}
    ]});
    let bytes = batch.to_string();
    let first = |id: &str| (id == "cfg-1").then(|| Some(helpfulness()));
    let mut check = ConfigCheck::new(&first);
    let ingestion = super::ingestion(
        bytes.as_bytes(),
        now(),
        &TimeWindow::around(now()),
        &Limits::default(),
        &mut check,
    )
    .unwrap();
    let answer: Value = serde_json::from_str(&ingestion.response_json()).unwrap();
    assert_eq!(answer["errors"][0]["id"], "e1");
    assert_eq!(answer["errors"][0]["status"], 400);
    assert!(
        answer["errors"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("body.value: -1 is below the minValue 0"),
        "{answer}"
    );
    assert_eq!(
        answer["successes"][0]["id"], "e2",
        "not known yet: left to the ETL"
    );
    assert_eq!(check.unresolved(), ["cfg-2"]);
}
