//! `POST /mcp`: the MCP server, over the protocol's streamable HTTP transport, stateless.
//!
//! Each POST carries one JSON-RPC message (or, under protocol 2025-03-26 only, a batch of them)
//! and its own credentials: a project key with `read` scope (or a signed-in viewer naming
//! `?project_id=`), exactly as the read API takes them. A request is answered with its JSON-RPC
//! response as `application/json`; a notification or a client's response with 202 and no body.
//! No session is issued and nothing is pushed: `GET /mcp` is 405 (axum's answer for a method a
//! route does not take), which the transport allows a server without a stream to answer.
//!
//! - `Origin`, when a browser sends one, must name the host the request was sent to (the
//!   transport's guard against DNS rebinding): else 403.
//! - `MCP-Protocol-Version`, when sent, must be one of [`PROTOCOL_VERSIONS`]: else 400. A POST
//!   without it is taken as 2025-03-26, as the transport says.
//! - `initialize` answers the client's `protocolVersion` when it is one of ours, else our newest.
//! - A body that is not JSON is -32700, a message that is not JSON-RPC -32600 (both 400); an
//!   unknown method -32601; parameters that do not fit -32602 naming the one at fault; a refused
//!   credential the API's status with a JSON-RPC error saying why.
//!
//! The methods: `initialize`, `ping`, `tools/list`, `tools/call` and the notifications (taken and
//! ignored). The tools are [`crate::mcp::tools`]'s, every one reading only the caller's project.

use std::sync::Arc;

use agenttrace_schemas::routes::origin_matches_host;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::server::AppState;
use crate::mcp::tools::{self, CallError, Reads};

/// The protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The version a POST without `MCP-Protocol-Version` is taken to speak (the transport's rule).
const ASSUMED_VERSION: &str = "2025-03-26";
/// The only version whose messages may come in a batch.
const BATCH_VERSION: &str = "2025-03-26";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Messages one batch may hold.
pub const MAX_BATCH: usize = 20;
/// The largest body taken (a message is small; tool arguments are a few fields).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// JSON-RPC's error codes, and ours (-32000 to -32099 are the server's).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    /// The credentials were refused (the HTTP status says how: 400, 401, 403 or 404).
    pub const REFUSED: i64 = -32001;
}

/// One JSON-RPC 2.0 message of MCP, as the document describes the body (it is parsed by hand,
/// so that each fault gets its JSON-RPC code).
#[derive(utoipa::ToSchema)]
pub struct McpRequest {
    /// Always `2.0`.
    pub jsonrpc: String,
    /// A string or an integer; a message without one is a notification (answered 202).
    #[schema(schema_with = id_schema)]
    pub id: Option<Value>,
    /// `initialize`, `ping`, `tools/list`, `tools/call`, or a notification
    /// (`notifications/initialized`, ...).
    pub method: String,
    /// The method's parameters: `initialize` takes `{protocolVersion, capabilities,
    /// clientInfo}`, `tools/call` takes `{name, arguments}`.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// A JSON-RPC 2.0 response: `result`, or `error` (an array of them answers a batch).
#[derive(utoipa::ToSchema)]
pub struct McpResponse {
    /// Always `2.0`.
    pub jsonrpc: String,
    /// The request's id; null when the request could not be read far enough to know it.
    #[schema(schema_with = id_schema, required = true)]
    pub id: Option<Value>,
    /// The method's result: `tools/call`'s is `{content: [{type: "text", text}], isError}`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<McpError>,
}

/// A JSON-RPC id: a string, an integer, or null (in an answer to a message whose id is unknown).
fn id_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Integer, Type::Null]))
        .description(Some(
            "A string or an integer: a message without one is a notification (answered 202); null in an answer to a message whose id could not be read",
        ))
        .build()
}

/// A JSON-RPC error.
#[derive(utoipa::ToSchema)]
pub struct McpError {
    /// -32700 (not JSON), -32600 (not a JSON-RPC message, or refused by the transport), -32601
    /// (no such method), -32602 (parameters or tool arguments that do not fit, or no such tool),
    /// -32001 (credentials refused).
    pub code: i64,
    /// What went wrong and what to do.
    pub message: String,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// A JSON-RPC error, before it is given the id of the message it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn invalid_request(message: impl Into<String>) -> Self {
        RpcError::new(code::INVALID_REQUEST, message)
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(code::INVALID_PARAMS, message)
    }

    /// The error response to the message `id`.
    pub fn to_response(&self, id: Value) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error})
    }
}

fn success(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// What one message of a POST is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
    },
    /// A client's answer to a request of the server's (this server sends none): taken, dropped.
    Response,
}

/// A message that is not JSON-RPC: the id it had (null when none was usable) and why.
pub type Fault = Box<(Value, RpcError)>;

/// Reads one JSON-RPC message; a fault comes with the id, when the message had a usable one.
pub fn classify(message: Value) -> Result<Incoming, Fault> {
    let Value::Object(mut message) = message else {
        return Err(Box::new((
            Value::Null,
            RpcError::invalid_request(
                "a JSON-RPC message is an object: {\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/list\"}",
            ),
        )));
    };
    let id = match message.remove("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(other) => {
            return Err(Box::new((
                Value::Null,
                RpcError::invalid_request(format!("`id` must be a string or an integer, not {other}")),
            )));
        }
    };
    let with_id = || id.clone().unwrap_or(Value::Null);
    if message.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(Box::new((
            with_id(),
            RpcError::invalid_request("`jsonrpc` must be \"2.0\""),
        )));
    }
    match message.remove("method") {
        Some(Value::String(method)) => {
            let params = message.remove("params");
            if params.as_ref().is_some_and(|p| !p.is_object() && !p.is_array()) {
                return Err(Box::new((
                    with_id(),
                    RpcError::invalid_request("`params` must be an object"),
                )));
            }
            Ok(match id {
                Some(id) => Incoming::Request { id, method, params },
                None => Incoming::Notification { method },
            })
        }
        Some(_) => Err(Box::new((
            with_id(),
            RpcError::invalid_request("`method` must be a string"),
        ))),
        None if id.is_some() && (message.contains_key("result") || message.contains_key("error")) => {
            Ok(Incoming::Response)
        }
        None => Err(Box::new((
            with_id(),
            RpcError::invalid_request(
                "neither a request nor a notification (no `method`) nor a response (no `result` or `error`)",
            ),
        ))),
    }
}

/// The version `initialize` answers: the client's when it is ours, else our newest.
pub fn negotiate(requested: &str) -> &'static str {
    PROTOCOL_VERSIONS
        .iter()
        .copied()
        .find(|version| *version == requested)
        .unwrap_or(PROTOCOL_VERSIONS[0])
}

/// What `initialize` tells the agent about this server.
const INSTRUCTIONS: &str = "AgentTrace records what this project's AI agents did (traces of \
model calls, tool calls, terminal commands, file edits; sessions; scores). search finds traces \
by what was said or done; list_traces and list_sessions browse with filters; get_trace, \
get_observation and get_session read them as text; metrics answers cost, token, latency and \
error questions; get_prompt reads a managed prompt. Times are RFC 3339 in UTC; `since` takes \
30m, 6h, 7d. Lists page with the cursor an answer prints after `more:`.";

fn initialize(params: Option<&Value>) -> Result<Value, RpcError> {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::invalid_params(
                "initialize: `params.protocolVersion` is required: the MCP version the client speaks, e.g. 2025-06-18",
            )
        })?;
    Ok(json!({
        "protocolVersion": negotiate(requested),
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "agenttrace", "title": "AgentTrace", "version": env!("CARGO_PKG_VERSION")},
        "instructions": INSTRUCTIONS,
    }))
}

/// The answer to one request.
async fn answer(reads: &Reads<'_>, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
    if params.as_ref().is_some_and(|p| !p.is_object()) {
        return Err(RpcError::invalid_params(format!(
            "{method}: `params` must be an object"
        )));
    }
    match method {
        "initialize" => initialize(params.as_ref()),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools::definitions()})),
        "tools/call" => {
            let mut params = params.unwrap_or_default();
            let Some(name) = params.get("name").and_then(Value::as_str).map(str::to_owned) else {
                return Err(RpcError::invalid_params(
                    "tools/call: `params.name` is required: the tool to call, as tools/list names it",
                ));
            };
            let arguments = params.get_mut("arguments").map(Value::take);
            match tools::call(reads, &name, arguments).await {
                Ok(output) => Ok(output.result()),
                Err(error @ (CallError::UnknownTool(_) | CallError::Arguments(_))) => {
                    Err(RpcError::invalid_params(error.message()))
                }
            }
        }
        other => Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "method {other:?} not found: this server answers initialize, ping, tools/list and tools/call"
            ),
        )),
    }
}

/// The transport's checks of a POST's headers, before its credentials are: `Origin`,
/// `MCP-Protocol-Version` and `Accept`. Holds the protocol version the POST says it speaks.
pub struct Transport {
    pub version: &'static str,
}

/// Whether `Accept` (absent: anything) takes a JSON answer.
fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return true };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or_default().trim();
        ["application/json", "application/*", "*/*"]
            .iter()
            .any(|taken| media.eq_ignore_ascii_case(taken))
    })
}

impl Transport {
    /// The headers' verdict: the version spoken, or the answer refusing the request.
    pub fn check(headers: &HeaderMap, authority: Option<&str>) -> Result<Transport, (StatusCode, Value)> {
        let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        if let Some(origin) = text(header::ORIGIN.as_str()) {
            let host = text(header::HOST.as_str()).or(authority).unwrap_or_default();
            if !origin_matches_host(origin, host) {
                return Err((
                    StatusCode::FORBIDDEN,
                    RpcError::invalid_request(format!(
                        "Origin {origin:?} is not this server ({host:?}): MCP over HTTP is refused to web pages of other origins (DNS rebinding); call it from an MCP client, which sends no Origin"
                    ))
                    .to_response(Value::Null),
                ));
            }
        }
        let version = match text(VERSION_HEADER) {
            None => ASSUMED_VERSION,
            Some(sent) => match PROTOCOL_VERSIONS.iter().find(|v| **v == sent.trim()) {
                Some(version) => version,
                None => {
                    let mut error = RpcError::invalid_request(format!(
                        "MCP-Protocol-Version {sent:?} is not spoken here: this server speaks {}; initialize again to agree on one",
                        PROTOCOL_VERSIONS.join(", ")
                    ));
                    error.data = Some(json!({"supported": PROTOCOL_VERSIONS}));
                    return Err((StatusCode::BAD_REQUEST, error.to_response(Value::Null)));
                }
            },
        };
        if !accepts_json(text(header::ACCEPT.as_str())) {
            return Err((
                StatusCode::NOT_ACCEPTABLE,
                RpcError::invalid_request(
                    "this server answers application/json: send `Accept: application/json, text/event-stream`",
                )
                .to_response(Value::Null),
            ));
        }
        Ok(Transport { version })
    }
}

impl FromRequestParts<Arc<AppState>> for Transport {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &Arc<AppState>) -> Result<Self, Response> {
        let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
        Transport::check(&parts.headers, authority.as_deref()).map_err(|(status, body)| reply(status, body))
    }
}

/// The id of the message in `body`, when it is one message with a usable id (for the answer to
/// a POST refused before it is read).
fn id_of(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|message| classify(message).ok())
        .and_then(|incoming| match incoming {
            Incoming::Request { id, .. } => Some(id),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

/// `POST /mcp`: one JSON-RPC message (or a batch), answered as JSON.
#[utoipa::path(
    post,
    path = "/mcp",
    operation_id = "mcp",
    summary = "MCP server (streamable HTTP)",
    description = "The Model Context Protocol over its streamable HTTP transport, stateless, for coding agents to read their own history: tools `search`, `list_traces`, `list_sessions`, `get_trace`, `get_observation`, `get_session`, `metrics`, `get_prompt`, each answering compact text about this project only. One JSON-RPC 2.0 message per POST (a batch, an array, only under protocol 2025-03-26); a request is answered with its response as `application/json`, a notification or response with 202 and no body. Methods: `initialize` (protocol versions 2025-11-25, 2025-06-18, 2025-03-26), `ping`, `tools/list`, `tools/call`. Errors: -32700 not JSON, -32600 not a JSON-RPC message (400); -32601 no such method; -32602 parameters or tool arguments that do not fit, naming them; a tool's own failure is a result with `isError`. `MCP-Protocol-Version` other than those: 400. An `Origin` other than the host called: 403. No server-sent stream: GET is 405. A project key with `read` scope (`Authorization: Bearer public:secret`) reads its project; a signed-in user or organization key names it with `project_id` (viewer role); a refused credential is the status below with a JSON-RPC error (-32001) saying why.",
    security(("session" = []), ("apiKey" = [])),
    params(
        ("project_id" = Option<uuid::Uuid>, Query, description = "Which project, for a signed-in user or an organization key (a project key implies it)"),
        ("MCP-Protocol-Version" = Option<String>, Header, description = "The protocol version agreed at `initialize`: 2025-11-25, 2025-06-18 or 2025-03-26 (without it: 2025-03-26)"),
    ),
    request_body(content = McpRequest, content_type = "application/json", description = "One JSON-RPC message (or, under 2025-03-26, an array of them)"),
    responses(
        (status = 200, description = "The JSON-RPC response (an array of them for a batch)", body = McpResponse),
        (status = 202, description = "A notification or response, taken"),
        (status = 400, description = "Not JSON (-32700), not a JSON-RPC message or an unknown `MCP-Protocol-Version` (-32600), or `project_id` missing for a user (-32001)", body = McpResponse),
        (status = 401, description = "No credentials, or refused ones (-32001)", body = McpResponse),
        (status = 403, description = "A key without `read` scope, a role below viewer (-32001), or a foreign `Origin` (-32600)", body = McpResponse),
        (status = 404, description = "A project the caller cannot see (-32001)", body = McpResponse),
        (status = 406, description = "`Accept` without application/json", body = McpResponse),
    ),
)]
pub async fn mcp(
    State(state): State<Arc<AppState>>,
    transport: Transport,
    project: Result<ProjectAccess<need::Read>, ApiError>,
    body: Bytes,
) -> Response {
    let project = match project {
        Ok(project) => project,
        Err(refused) => {
            let mut error = RpcError::new(code::REFUSED, refused.message);
            error.data = Some(json!({"error": refused.code, "status": refused.status.as_u16()}));
            return reply(refused.status, error.to_response(id_of(&body)));
        }
    };
    let clickhouse = state.reader.for_project(project.id);
    let reads = Reads {
        project: project.id,
        clickhouse: &clickhouse,
        postgres: &state.postgres,
    };
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                RpcError::new(
                    code::PARSE_ERROR,
                    format!("the body is not JSON ({e}): send one JSON-RPC message"),
                )
                .to_response(Value::Null),
            );
        }
    };
    match message {
        Value::Array(messages) => batch(&reads, transport.version, messages).await,
        message => match classify(message) {
            Ok(Incoming::Request { id, method, params }) => {
                let response = match answer(&reads, &method, params).await {
                    Ok(result) => success(id, result),
                    Err(error) => error.to_response(id),
                };
                reply(StatusCode::OK, response)
            }
            Ok(Incoming::Notification { .. } | Incoming::Response) => StatusCode::ACCEPTED.into_response(),
            Err(fault) => {
                let (id, error) = *fault;
                reply(StatusCode::BAD_REQUEST, error.to_response(id))
            }
        },
    }
}

/// A batch (protocol 2025-03-26): each message answered in turn; 202 when none was a request.
async fn batch(reads: &Reads<'_>, version: &str, messages: Vec<Value>) -> Response {
    let refuse = |message: String| {
        reply(
            StatusCode::BAD_REQUEST,
            RpcError::invalid_request(message).to_response(Value::Null),
        )
    };
    if version != BATCH_VERSION {
        return refuse(format!(
            "JSON-RPC batches are not part of MCP {version}: send one message per POST"
        ));
    }
    if messages.is_empty() {
        return refuse("an empty batch: send at least one message".into());
    }
    if messages.len() > MAX_BATCH {
        return refuse(format!(
            "a batch of {} messages: at most {MAX_BATCH}",
            messages.len()
        ));
    }
    let mut responses = Vec::new();
    for message in messages {
        match classify(message) {
            Ok(Incoming::Request { id, method, .. }) if method == "initialize" => responses.push(
                RpcError::invalid_request("initialize must be sent alone, not in a batch").to_response(id),
            ),
            Ok(Incoming::Request { id, method, params }) => {
                responses.push(match answer(reads, &method, params).await {
                    Ok(result) => success(id, result),
                    Err(error) => error.to_response(id),
                })
            }
            Ok(Incoming::Notification { .. } | Incoming::Response) => {}
            Err(fault) => {
                let (id, error) = *fault;
                responses.push(error.to_response(id))
            }
        }
    }
    if responses.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    reply(StatusCode::OK, Value::Array(responses))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn messages_are_requests_notifications_or_responses() {
        assert_eq!(
            classify(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})),
            Ok(Incoming::Request {
                id: json!(7),
                method: "tools/list".into(),
                params: None
            })
        );
        assert_eq!(
            classify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            Ok(Incoming::Notification {
                method: "notifications/initialized".into()
            })
        );
        assert_eq!(
            classify(json!({"jsonrpc": "2.0", "id": "a", "result": {}})),
            Ok(Incoming::Response)
        );
    }

    #[test]
    fn malformed_messages_are_invalid_requests_with_their_id_when_known() {
        let fault = |message: Value| *classify(message).unwrap_err();
        let (id, error) = fault(json!({"jsonrpc": "1.0", "id": "x", "method": "ping"}));
        assert_eq!((id, error.code), (json!("x"), code::INVALID_REQUEST));
        assert!(error.message.contains("jsonrpc"), "{error:?}");
        let (id, error) = fault(json!({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}));
        assert_eq!((id, error.code), (Value::Null, code::INVALID_REQUEST));
        assert!(error.message.contains("`id`"), "{error:?}");
        let (_, error) = fault(json!({"jsonrpc": "2.0", "id": 1, "method": 5}));
        assert!(error.message.contains("`method`"), "{error:?}");
        let (_, error) = fault(json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"}));
        assert!(error.message.contains("`params`"), "{error:?}");
        let (_, error) = fault(json!({"jsonrpc": "2.0", "id": 1}));
        assert_eq!(error.code, code::INVALID_REQUEST);
        let (_, error) = fault(json!("ping"));
        assert_eq!(error.code, code::INVALID_REQUEST);
        assert_eq!(
            RpcError::invalid_request("x").to_response(json!(3)),
            json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32600, "message": "x"}})
        );
    }

    #[test]
    fn initialize_answers_the_clients_version_when_spoken_else_the_newest() {
        assert_eq!(negotiate("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("2024-11-05"), "2025-11-25");
        assert_eq!(negotiate("2026-07-28"), "2025-11-25");
        let result = initialize(Some(
            &json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
        ))
        .unwrap();
        assert_eq!(result["protocolVersion"], "2025-06-18");
        assert_eq!(result["serverInfo"]["name"], "agenttrace");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(result["capabilities"]["tools"].is_object());
        let error = initialize(Some(&json!({}))).unwrap_err();
        assert_eq!(error.code, code::INVALID_PARAMS);
        assert!(error.message.contains("protocolVersion"), "{error:?}");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_transport_checks_origin_version_and_accept() {
        let ok = |pairs: &[(&'static str, &str)]| {
            Transport::check(&headers(pairs), None)
                .map(|t| t.version)
                .map_err(|(status, _)| status)
        };
        assert_eq!(ok(&[("host", "127.0.0.1:8080")]), Ok("2025-03-26"));
        assert_eq!(
            ok(&[("host", "h:1"), ("mcp-protocol-version", "2025-06-18")]),
            Ok("2025-06-18")
        );
        assert_eq!(
            ok(&[("host", "h:1"), ("mcp-protocol-version", "2026-07-28")]),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            ok(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]),
            Ok("2025-03-26")
        );
        assert_eq!(
            ok(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")]),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            ok(&[("host", "h"), ("accept", "application/json, text/event-stream")]),
            Ok("2025-03-26")
        );
        assert_eq!(ok(&[("host", "h"), ("accept", "*/*")]), Ok("2025-03-26"));
        assert_eq!(
            ok(&[("host", "h"), ("accept", "text/event-stream")]),
            Err(StatusCode::NOT_ACCEPTABLE)
        );
    }

    #[test]
    fn a_refused_posts_answer_carries_its_request_id() {
        assert_eq!(
            id_of(br#"{"jsonrpc":"2.0","id":"r1","method":"tools/list"}"#),
            json!("r1")
        );
        assert_eq!(id_of(b"not json"), Value::Null);
        assert_eq!(
            id_of(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            Value::Null
        );
    }
}
