//! A model provider on loopback that speaks OpenAI Chat Completions (`POST /v1/chat/completions`)
//! and Anthropic Messages (`POST /v1/messages`) as their documentation describes them, errors
//! included, for judges and "test connection" to call. It answers by the model asked for:
//!
//! | model | answer |
//! | --- | --- |
//! | anything else | a judgment that fills the schema asked for (score: its first allowed value, or 0.75) |
//! | `judge-slow` | the same, after 3 s |
//! | `judge-rate-limited` | 429 `rate_limit_exceeded` with `retry-after: 1` (Anthropic: `rate_limit_error`) |
//! | `judge-no-credit` | 429 `insufficient_quota` |
//! | `judge-down` | 500 |
//! | `judge-overloaded` | 529 `overloaded_error` |
//! | `judge-garbled` | 200 with a body that is not JSON |
//! | `judge-off-schema` | 200 with a JSON answer that does not fill the schema |
//!
//! A call with another API key than the server's gets 401, as the providers answer it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One request the provider received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

pub struct FakeProvider {
    /// `http://127.0.0.1:PORT/v1`: a connection's base URL.
    pub base_url: String,
    pub api_key: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    api_key: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeProvider {
    pub async fn start(api_key: &str) -> FakeProvider {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            api_key: api_key.to_owned(),
            received: received.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/openai/deployments/{deployment}/chat/completions", post(azure))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeProvider {
            base_url,
            api_key: api_key.to_owned(),
            received,
            task,
        }
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// An answer that fills `schema`'s `score` (and `reasoning`).
fn judgment(schema: &Value) -> Value {
    let score = &schema["properties"]["score"];
    let value = match score["type"].as_str() {
        Some("boolean") => json!(true),
        Some("string") => score["enum"][0].clone(),
        Some("array") => json!([score["items"]["enum"][0].clone()]),
        _ => json!(0.75),
    };
    json!({"reasoning": "The answer addresses the question.", "score": value})
}

fn record(shared: &Shared, path: &str, headers: &HeaderMap, body: &Value) {
    shared.received.lock().unwrap().push(Received {
        path: path.into(),
        headers: headers.clone(),
        body: body.clone(),
    });
}

fn error(status: u16, body: Value, retry_after: Option<&str>) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.parse().unwrap());
    }
    response
}

async fn openai(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, "/v1/chat/completions", &headers, &body);
    let openai_error = |status: u16, kind: &str, code: &str, message: &str, retry: Option<&str>| {
        error(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
            retry,
        )
    };
    let expected = format!("Bearer {}", shared.api_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return openai_error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
            None,
        );
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    openai_answer(&model, &body).await
}

/// Azure OpenAI: the deployment in the path names the model, the key is `api-key`, and
/// `api-version` is required.
async fn azure(
    State(shared): State<Shared>,
    Path(deployment): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = format!("/openai/deployments/{deployment}/chat/completions");
    record(&shared, &path, &headers, &body);
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(shared.api_key.as_str()) {
        let message = "Access denied due to invalid subscription key.";
        return error(401, json!({"error": {"code": "401", "message": message}}), None);
    }
    if !query.contains_key("api-version") {
        return error(
            404,
            json!({"error": {"code": "404", "message": "Resource not found"}}),
            None,
        );
    }
    openai_answer(&deployment, &body).await
}

async fn openai_answer(model: &str, body: &Value) -> Response {
    let openai_error = |status: u16, kind: &str, code: &str, message: &str, retry: Option<&str>| {
        error(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
            retry,
        )
    };
    match model {
        "judge-slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        "judge-rate-limited" => {
            return openai_error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests",
                Some("1"),
            );
        }
        "judge-no-credit" => {
            return openai_error(
                429,
                "insufficient_quota",
                "insufficient_quota",
                "You exceeded your current quota.",
                None,
            );
        }
        "judge-down" => {
            return openai_error(
                500,
                "server_error",
                "server_error",
                "The server had an error.",
                None,
            );
        }
        "judge-overloaded" => {
            return openai_error(
                503,
                "server_error",
                "overloaded",
                "The engine is overloaded.",
                None,
            );
        }
        "judge-garbled" => return (StatusCode::OK, "<html>gateway</html>").into_response(),
        _ => {}
    }
    let schema = &body["response_format"]["json_schema"]["schema"];
    let answer = if model == "judge-off-schema" {
        json!({"verdict": "fine"})
    } else {
        judgment(schema)
    };
    let prompt_tokens = body["messages"][0]["content"].as_str().map_or(0, |p| p.len() / 4) as u64;
    axum::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": format!("{model}-2026-01-01"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.to_string(), "refusal": null},
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 12,
            "total_tokens": prompt_tokens + 12,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }))
    .into_response()
}

async fn anthropic(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, "/v1/messages", &headers, &body);
    let anthropic_error = |status: u16, kind: &str, message: &str, retry: Option<&str>| {
        error(
            status,
            json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test"}),
            retry,
        )
    };
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(shared.api_key.as_str()) {
        return anthropic_error(401, "authentication_error", "invalid x-api-key", None);
    }
    if headers.get("anthropic-version").is_none() {
        return anthropic_error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
            None,
        );
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    match model.as_str() {
        "judge-slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        "judge-rate-limited" => {
            return anthropic_error(
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your rate limit",
                Some("1"),
            );
        }
        "judge-down" => return anthropic_error(500, "api_error", "Internal server error", None),
        "judge-overloaded" => return anthropic_error(529, "overloaded_error", "Overloaded", None),
        "judge-garbled" => return (StatusCode::OK, "not json").into_response(),
        _ => {}
    }
    let tool = body["tool_choice"]["name"]
        .as_str()
        .unwrap_or("judgment")
        .to_owned();
    let schema = body["tools"][0]["input_schema"].clone();
    let input = if model == "judge-off-schema" {
        json!({"verdict": "fine"})
    } else {
        judgment(&schema)
    };
    let input_tokens = body["messages"][0]["content"].as_str().map_or(0, |p| p.len() / 4) as u64;
    axum::Json(json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": format!("{model}-20260101"),
        "content": [{"type": "tool_use", "id": "toolu_test", "name": tool, "input": input}],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": 15, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }))
    .into_response()
}

/// Gives `project` the OpenAI-compatible connection "local" with `config` (its model), if any: to
/// `provider` with its key, or, without one, to no server at all (for judges whose calls a test
/// writes itself and that must never reach a model).
pub async fn connect(
    pg: &tokio_postgres::Client,
    project: uuid::Uuid,
    provider: Option<&FakeProvider>,
    config: Option<Value>,
) {
    use agenttrace_etl::control::connections::{self, ConnectionUpsert};
    use agenttrace_etl::control::sealing::Sealer;
    let sealer = Sealer::from_hex(crate::etl::ENCRYPTION_KEY).unwrap();
    connections::upsert(
        pg,
        Some(&sealer),
        project,
        &ConnectionUpsert {
            provider: "local".into(),
            adapter: "openai".into(),
            secret_key: provider.map_or("sk-never-called-0123456789".into(), |p| p.api_key.clone()),
            base_url: provider.map(|p| p.base_url.clone()),
            config,
            ..ConnectionUpsert::default()
        },
    )
    .await
    .unwrap();
}
