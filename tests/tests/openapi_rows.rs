//! The read API's rows are what the OpenAPI document says, field for field: every read route
//! answers a project holding every kind of row (an agent's sessions with scores, file
//! operations, terminal commands, git links, and a dead letter), and each answer must validate
//! against the document's schema for it, closed: an object may carry no field its schema does
//! not name. A column added to a query but not to its row schema fails here; one added to a
//! table reaches the document by itself (`etl/src/analytics/rows.rs`).

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::api_keys;
use agenttrace_schemas::{Event, Scope, Timestamp};
use agenttrace_tests::TestEnv;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Every object schema that names its properties and says nothing of others refuses others.
fn close(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if object.contains_key("properties") && !object.contains_key("additionalProperties") {
                object.insert("additionalProperties".into(), Value::Bool(false));
            }
            object.values_mut().for_each(close);
        }
        Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}

/// The document's schema of `path`'s 200 answer to a GET, with the components it refers to.
fn answer_schema(document: &Value, path: &str) -> jsonschema::Validator {
    let operation = &document["paths"][path]["get"];
    let schema = operation["responses"]["200"]["content"]["application/json"]["schema"].clone();
    assert!(
        !schema.is_null(),
        "the document has no JSON 200 answer for GET {path}"
    );
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"].clone(),
        "allOf": [schema],
    });
    close(&mut root);
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A read to check: (the document's path, the URL's path, the query, the authorization, where
/// the rows are that must not be empty).
type Read<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str, &'a str);

/// How many objects `value` holds at `pointer`, for the check that an answer is not empty.
fn count(value: &Value, pointer: &str) -> usize {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn every_read_answers_in_the_shape_the_document_gives_it() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("rows").await;
    let id = project.key.project_id;
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, id, &Scope::ALL, None).await.unwrap();
    let bearer = format!("Bearer {}:{}", key.public_key, key.secret_key);
    let basic = {
        use base64::Engine as _;
        let pair = format!("{}:{}", key.public_key, key.secret_key);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    };

    let events: Vec<Event> = {
        let mut generator = SessionGenerator::new(11);
        (0..2)
            .flat_map(|_| generator.session(Timestamp::now(), 3))
            .collect()
    };
    // The sessions, and one event the ETL refuses: a dead letter.
    let mut raw: Vec<Box<serde_json::value::RawValue>> = events
        .iter()
        .map(|e| serde_json::value::to_raw_value(e).unwrap())
        .collect();
    raw.push(
        serde_json::value::RawValue::from_string(
            r#"{"id":"refused","type":"spaceship","timestamp":"2026-01-01T00:00:00Z","body":{}}"#.into(),
        )
        .unwrap(),
    );
    let body = etl.client.batch_body(&project.key, Uuid::now_v7(), raw);
    etl.client
        .post_body(body, Timestamp::now().as_micros() / 1_000_000, None)
        .await
        .unwrap()
        .response()
        .unwrap();

    let trace = events
        .iter()
        .find_map(|e| match &e.payload {
            agenttrace_schemas::Payload::Trace(t) => Some(t.id.to_string()),
            _ => None,
        })
        .unwrap();
    let session = events
        .iter()
        .find_map(|e| match &e.payload {
            agenttrace_schemas::Payload::Trace(t) => t.session_id.as_ref().map(|s| s.to_string()),
            _ => None,
        })
        .unwrap();
    let observation = events
        .iter()
        .find_map(|e| match &e.payload {
            agenttrace_schemas::Payload::Observation(o) if o.trace_id.as_str() == trace => {
                Some(o.id.to_string())
            }
            _ => None,
        })
        .unwrap();

    let from = Timestamp::from_micros(Timestamp::now().as_micros() - 86_400_000_000).to_string();
    let to = Timestamp::from_micros(Timestamp::now().as_micros() + 3_600_000_000).to_string();
    let langfuse_metrics = json!({
        "view": "observations",
        "dimensions": [{"field": "name"}, {"field": "type"}],
        "metrics": [{"measure": "totalCost", "aggregation": "sum"}, {"measure": "latency", "aggregation": "p95"}],
        "timeDimension": {"granularity": "hour"},
        "fromTimestamp": from,
        "toTimestamp": to,
    })
    .to_string();
    let window = [("from", from.as_str()), ("to", to.as_str())];
    let reads: Vec<Read> = vec![
        ("/v1/traces", "/v1/traces".into(), vec![], &bearer, "/data"),
        (
            "/v1/traces/{id}",
            format!("/v1/traces/{trace}"),
            vec![],
            &bearer,
            "/observations",
        ),
        (
            "/v1/traces/{id}/observations/{observation_id}",
            format!("/v1/traces/{trace}/observations/{observation}"),
            vec![],
            &bearer,
            "",
        ),
        ("/v1/sessions", "/v1/sessions".into(), vec![], &bearer, "/data"),
        (
            "/v1/sessions/{id}",
            format!("/v1/sessions/{session}"),
            vec![],
            &bearer,
            "/data",
        ),
        (
            "/v1/observations",
            "/v1/observations".into(),
            vec![],
            &bearer,
            "/data",
        ),
        (
            "/v1/observations",
            "/v1/observations".into(),
            vec![("trace_id", trace.as_str())],
            &bearer,
            "/data",
        ),
        ("/v1/scores", "/v1/scores".into(), vec![], &bearer, "/data"),
        (
            "/v1/metrics",
            "/v1/metrics".into(),
            [
                window.as_slice(),
                &[("bucket", "hour"), ("dimensions", "model,user")],
            ]
            .concat(),
            &bearer,
            "/data",
        ),
        (
            "/v1/metrics",
            "/v1/metrics".into(),
            [
                window.as_slice(),
                &[("view", "scores"), ("bucket", "none"), ("dimensions", "name")],
            ]
            .concat(),
            &bearer,
            "/data",
        ),
        (
            "/v1/projects/{project}/dead-letters",
            format!("/v1/projects/{id}/dead-letters"),
            vec![],
            &bearer,
            "/data",
        ),
        (
            "/api/public/v2/observations",
            "/api/public/v2/observations".into(),
            vec![(
                "fields",
                "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context",
            )],
            &basic,
            "/data",
        ),
        (
            "/api/public/v2/metrics",
            "/api/public/v2/metrics".into(),
            vec![("query", langfuse_metrics.as_str())],
            &basic,
            "/data",
        ),
    ];

    let document: Value = serde_json::from_str(&agenttrace_etl::http::openapi::document()).unwrap();
    let http = reqwest::Client::new();
    for (template, path, query, auth, rows) in reads {
        let response = http
            .get(format!("{}{path}", etl.url))
            .query(&query)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "GET {path} {query:?}: {answer}");
        if !rows.is_empty() {
            assert!(
                count(&answer, rows) > 0,
                "GET {path} {query:?} has no rows to check: {answer}"
            );
        }
        let validator = answer_schema(&document, template);
        let errors: Vec<String> = validator
            .iter_errors(&answer)
            .take(10)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "GET {path} {query:?} is not what the document says:\n{}\n{}",
            errors.join("\n"),
            serde_json::to_string_pretty(&first_rows(&answer)).unwrap()
        );
    }
}

/// The answer with each array cut to its first element, for a readable failure.
fn first_rows(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().take(1).map(first_rows).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), first_rows(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}
