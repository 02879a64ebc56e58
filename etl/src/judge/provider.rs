//! One judgment call to a model provider, in its own wire format: OpenAI Chat Completions (and
//! what speaks it: Azure OpenAI, vLLM, Ollama, llama.cpp, gateways) with a strict JSON-schema
//! `response_format`, or Anthropic Messages with a forced tool call. The answer is the JSON
//! object the schema describes, with the call's token usage. Failures are sorted the way a
//! scheduler must treat them: retry later (rate limits, overload, timeouts), stop the evaluator
//! (the key, the account or the model is wrong), or give up on this target (the model answered
//! something unusable).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// The name of the structured answer (OpenAI's `json_schema.name`, Anthropic's tool).
pub const ANSWER_NAME: &str = "judgment";
/// The setting that lets connections reach loopback and private addresses (a local vLLM or
/// Ollama, the test servers); off, a tenant's base URL cannot aim the service at its own network.
pub const ALLOW_PRIVATE_VARIABLE: &str = "AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS";
/// How much of a provider's error text is kept in a message.
const MAX_ERROR_TEXT: usize = 300;
/// The longest wait a provider's `retry-after` is honoured for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The longest answer read.
const MAX_ANSWER_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Adapter {
    /// OpenAI Chat Completions, or any server that speaks it.
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure OpenAI: `api-key` header, `api-version` query parameter.
    Azure,
    Anthropic,
}

impl Adapter {
    pub const NAMES: &[&str] = &["openai", "azure", "anthropic"];

    pub fn name(self) -> &'static str {
        match self {
            Adapter::OpenAi => "openai",
            Adapter::Azure => "azure",
            Adapter::Anthropic => "anthropic",
        }
    }

    pub fn from_name(name: &str) -> Option<Adapter> {
        match name {
            "openai" => Some(Adapter::OpenAi),
            "azure" => Some(Adapter::Azure),
            "anthropic" => Some(Adapter::Anthropic),
            _ => None,
        }
    }

    fn default_base_url(self) -> Option<&'static str> {
        match self {
            Adapter::OpenAi => Some("https://api.openai.com/v1"),
            Adapter::Anthropic => Some("https://api.anthropic.com/v1"),
            Adapter::Azure => None,
        }
    }
}

/// Where and how to call: a connection with its secret opened.
#[derive(Clone)]
pub struct Endpoint {
    pub adapter: Adapter,
    /// Without a trailing slash; the adapter's public API when the connection has none.
    pub base_url: String,
    pub secret: String,
    pub extra_headers: Vec<(String, String)>,
    /// Azure's `api-version`.
    pub api_version: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("adapter", &self.adapter)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The base URL a connection calls: its own, checked, or the adapter's public API.
    pub fn base_url(adapter: Adapter, base_url: Option<&str>) -> Result<String, String> {
        let url = match base_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => url,
            None => adapter
                .default_base_url()
                .ok_or("an Azure connection needs its baseURL (https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT)")?,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(format!("{url:?} must be an http:// or https:// URL with a host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("put credentials in secretKey or extraHeaders, not in the URL".into());
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!("{url:?} must have no query or fragment"));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }
}

/// What to ask: one user message (after a system message, when there is one), and the JSON
/// schema the answer must fill.
#[derive(Debug, Clone)]
pub struct JudgeRequest<'a> {
    pub model: &'a str,
    pub system: Option<&'a str>,
    pub prompt: &'a str,
    pub schema: &'a Value,
    pub temperature: Option<f64>,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Input tokens not read from the provider's cache.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JudgeReply {
    /// The JSON object the model filled (not yet checked against the schema).
    pub answer: Value,
    pub usage: Usage,
    /// The model that answered, as the provider names it.
    pub model: String,
    pub latency: Duration,
}

/// Why a call gave no answer, sorted by what to do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// Try again later: rate limited, overloaded, timed out, unreachable for now.
    #[error("{message}")]
    Retry {
        status: Option<u16>,
        /// What the provider asked for (`retry-after-ms`, `retry-after`).
        after: Option<Duration>,
        message: String,
    },
    /// Stop every call on this connection until a person acts: the key, the account's credit
    /// or the model is wrong.
    #[error("{message}")]
    Blocked { status: Option<u16>, message: String },
    /// This call cannot succeed as asked (a request the provider refuses, an answer that is not
    /// the JSON asked for); retrying the same call would pay for the same failure.
    #[error("{message}")]
    Invalid { message: String },
}

impl CallError {
    /// What to do next, as answers name it: `retry`, `blocked` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Retry { .. } => "retry",
            CallError::Blocked { .. } => "blocked",
            CallError::Invalid { .. } => "invalid",
        }
    }
}

impl Usage {
    /// As an event's usage (what pricing reads).
    pub fn to_event(self) -> agenttrace_schemas::event::Usage {
        agenttrace_schemas::event::Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_input_tokens: self.cache_read,
            cache_creation_input_tokens: self.cache_write,
        }
    }

    /// Every input token, cached or not.
    pub fn all_input(self) -> u64 {
        self.input.saturating_add(self.cache_read)
    }
}

/// "Test connection": one tiny structured judgment asked of `model`.
pub async fn test_call(
    client: &ModelClient,
    endpoint: &Endpoint,
    model: &str,
) -> Result<JudgeReply, CallError> {
    let schema = json!({
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "score": {"type": "boolean"}},
        "required": ["reasoning", "score"],
        "additionalProperties": false,
    });
    let request = JudgeRequest {
        model,
        system: None,
        prompt: "This is a connection test. Answer with score true and a one-word reasoning.",
        schema: &schema,
        temperature: None,
        max_tokens: 64,
    };
    call(client, endpoint, &request).await
}

/// What judges call providers with: an HTTP client that follows no redirect (a public URL may
/// not bounce the call into a private network) and reaches private addresses only when allowed
/// ([`ALLOW_PRIVATE_VARIABLE`]).
#[derive(Clone)]
pub struct ModelClient {
    http: reqwest::Client,
    allow_private: bool,
}

impl ModelClient {
    pub fn new(allow_private: bool) -> ModelClient {
        let http = reqwest::Client::builder()
            // A proxy from the environment would resolve the target itself, past the filter.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(32)
            .build()
            .expect("the judge's HTTP client builds");
        ModelClient { http, allow_private }
    }
}

impl ModelClient {
    /// A POST to `url` through the same filtered client (alert channels use it too); an
    /// IP-literal host that is not public is refused here, a name when it resolves.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        check_host(&parsed, self.allow_private).map_err(|e| e.to_string())?;
        Ok(self.http.post(parsed))
    }
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// unique-local, multicast, unspecified or documentation).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            // IPv4-mapped and -compatible (`::a.b.c.d`), and NAT64 (64:ff9b::/96): an IPv4 inside.
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if let Some(v4) = v6.to_ipv4().filter(|_| !v6.is_loopback() && !v6.is_unspecified()) {
                return is_public(IpAddr::V4(v4));
            }
            if nat64 {
                let [.., high, low] = segments;
                let v4 = std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
                return is_public(IpAddr::V4(v4));
            }
            let first = segments[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0)
        }
    }
}

struct PublicOnly {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // One answer whether the name does not resolve or resolves only to private
            // addresses: a tenant must not learn which names exist inside the network.
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|found| {
                    found
                        .filter(|address| allow_private || is_public(address.ip()))
                        .collect()
                })
                .unwrap_or_default();
            if addresses.is_empty() {
                return Err(format!(
                    "{host} does not resolve to a public address (a connection to a private network needs {ALLOW_PRIVATE_VARIABLE}=1 on the server)"
                )
                .into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An IP-literal host is not resolved, so it is checked here.
fn check_host(url: &reqwest::Url, allow_private: bool) -> Result<(), CallError> {
    let host = url.host_str().unwrap_or_default();
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(CallError::Blocked {
            status: None,
            message: format!(
                "{ip} is not a public address; a connection to a private network needs {ALLOW_PRIVATE_VARIABLE}=1 on the server"
            ),
        })
    }
}

/// Calls the provider once and returns its structured answer.
pub async fn call(
    client: &ModelClient,
    endpoint: &Endpoint,
    request: &JudgeRequest<'_>,
) -> Result<JudgeReply, CallError> {
    let (url, body) = match endpoint.adapter {
        Adapter::OpenAi | Adapter::Azure => {
            let mut messages = Vec::new();
            if let Some(system) = request.system {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": request.prompt}));
            let mut body = json!({
                "model": request.model,
                "messages": messages,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": ANSWER_NAME, "schema": request.schema, "strict": true},
                },
                "max_tokens": request.max_tokens,
            });
            if let Some(temperature) = request.temperature {
                body["temperature"] = json!(temperature);
            }
            (format!("{}/chat/completions", endpoint.base_url), body)
        }
        Adapter::Anthropic => {
            let mut body = json!({
                "model": request.model,
                "max_tokens": request.max_tokens,
                "messages": [{"role": "user", "content": request.prompt}],
                "tools": [{
                    "name": ANSWER_NAME,
                    "description": "Record your judgment.",
                    "input_schema": request.schema,
                }],
                "tool_choice": {"type": "tool", "name": ANSWER_NAME},
            });
            if let Some(system) = request.system {
                body["system"] = json!(system);
            }
            if let Some(temperature) = request.temperature {
                body["temperature"] = json!(temperature);
            }
            (format!("{}/messages", endpoint.base_url), body)
        }
    };
    let mut url = reqwest::Url::parse(&url).map_err(|e| CallError::Blocked {
        status: None,
        message: format!("the connection's URL {url:?} is invalid ({e})"),
    })?;
    if endpoint.adapter == Adapter::Azure {
        // Langfuse's form: the base ends in `/deployments` and the model names the deployment.
        if endpoint.base_url.ends_with("/deployments")
            && let Ok(mut segments) = url.path_segments_mut()
        {
            segments
                .pop()
                .pop()
                .push(request.model)
                .push("chat")
                .push("completions");
        }
        let version = endpoint.api_version.as_deref().unwrap_or("2024-10-21");
        url.query_pairs_mut().append_pair("api-version", version);
    }
    check_host(&url, client.allow_private)?;
    let mut headers = HeaderMap::new();
    let auth = match endpoint.adapter {
        Adapter::OpenAi => ("authorization", format!("Bearer {}", endpoint.secret)),
        Adapter::Azure => ("api-key", endpoint.secret.clone()),
        Adapter::Anthropic => ("x-api-key", endpoint.secret.clone()),
    };
    let mut put = |name: &str, value: &str| -> Result<(), CallError> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| CallError::Blocked {
            status: None,
            message: format!("the header name {name:?} is invalid"),
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| CallError::Blocked {
            status: None,
            message: format!("the value of header {name} is invalid (control characters?)"),
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
        Ok(())
    };
    put(auth.0, &auth.1)?;
    if endpoint.adapter == Adapter::Anthropic {
        put("anthropic-version", "2023-06-01")?;
    }
    for (name, value) in &endpoint.extra_headers {
        put(name, value)?;
    }

    let started = Instant::now();
    let response = client
        .http
        .post(url)
        .headers(headers)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).expect("a JSON value serializes"))
        .timeout(endpoint.timeout)
        .send()
        .await
        .map_err(|e| transport_error(&e, endpoint.timeout))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let text = read_limited(response, endpoint.timeout).await?;
    let latency = started.elapsed();
    if !(200..300).contains(&status) {
        return Err(status_error(status, retry_after, &text));
    }
    let reply: Value = serde_json::from_str(&text).map_err(|e| CallError::Invalid {
        message: format!(
            "the provider answered {status} with a body that is not JSON ({e}): {}",
            clip(&text)
        ),
    })?;
    match endpoint.adapter {
        Adapter::OpenAi | Adapter::Azure => openai_reply(&reply, latency, request.model),
        Adapter::Anthropic => anthropic_reply(&reply, latency, request.model),
    }
}

/// The answer's body as text, refused past [`MAX_ANSWER_BYTES`]: a judgment is small, and a
/// server that streams without end must not fill the scheduler's memory.
async fn read_limited(mut response: reqwest::Response, timeout: Duration) -> Result<String, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e, timeout))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CallError::Invalid {
                message: format!("the answer is longer than {} MB", MAX_ANSWER_BYTES >> 20),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn transport_error(error: &reqwest::Error, timeout: Duration) -> CallError {
    let message = if error.is_timeout() {
        format!("no answer within {} s", timeout.as_secs_f64())
    } else {
        // The whole chain: "error sending request" alone does not say that DNS failed.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    };
    if message.contains(ALLOW_PRIVATE_VARIABLE) {
        return CallError::Blocked {
            status: None,
            message,
        };
    }
    CallError::Retry {
        status: None,
        after: None,
        message,
    }
}

/// `retry-after-ms` (OpenAI), else `retry-after` in seconds (both providers).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = |name: &str, scale: f64| {
        let value = headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()? / scale;
        // A provider's number, however large or odd, never panics and never waits past the cap.
        Duration::try_from_secs_f64(value)
            .ok()
            .map(|wait| wait.min(MAX_RETRY_AFTER))
    };
    seconds("retry-after-ms", 1000.0).or_else(|| seconds("retry-after", 1.0))
}

/// A provider's error text, short, on one line.
fn clip(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(MAX_ERROR_TEXT) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

/// Sorts a non-2xx answer: OpenAI's `{"error": {message, type, code}}` or Anthropic's
/// `{"type": "error", "error": {type, message}}`.
fn status_error(status: u16, after: Option<Duration>, text: &str) -> CallError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &body["error"];
    let kind = error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .unwrap_or_default()
        .to_owned();
    let detail = error["message"].as_str().map(clip).unwrap_or_else(|| clip(text));
    let message = if kind.is_empty() {
        format!("the provider answered {status}: {detail}")
    } else {
        format!("the provider answered {status} ({kind}): {detail}")
    };
    // Out of credit or over a spend limit: waiting does not help.
    let out_of_money = matches!(kind.as_str(), "insufficient_quota" | "billing_error")
        || detail.contains("enforced_spend_limit")
        || text.contains("enforced_spend_limit_reached");
    match status {
        401..=404 => CallError::Blocked {
            status: Some(status),
            message,
        },
        429 if out_of_money => CallError::Blocked {
            status: Some(status),
            message,
        },
        408 | 409 | 429 | 500..=599 => CallError::Retry {
            status: Some(status),
            after,
            message,
        },
        _ => CallError::Invalid { message },
    }
}

fn usage_number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn openai_reply(reply: &Value, latency: Duration, asked: &str) -> Result<JudgeReply, CallError> {
    let message = &reply["choices"][0]["message"];
    if let Some(refusal) = message["refusal"].as_str() {
        return Err(CallError::Invalid {
            message: format!("the model refused: {}", clip(refusal)),
        });
    }
    // A tool call, when a server answers a schema with one; else the message's text.
    let text = message["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .or_else(|| message["content"].as_str())
        .ok_or_else(|| CallError::Invalid {
            message: format!(
                "the answer holds no message content (finish_reason {})",
                clip(&reply["choices"][0]["finish_reason"].to_string())
            ),
        })?;
    let answer = answer_object(text)?;
    let usage = &reply["usage"];
    let cached = usage_number(&usage["prompt_tokens_details"]["cached_tokens"]);
    Ok(JudgeReply {
        answer,
        usage: Usage {
            // OpenAI counts cached tokens inside prompt_tokens.
            input: usage_number(&usage["prompt_tokens"]).saturating_sub(cached),
            output: usage_number(&usage["completion_tokens"]),
            cache_read: cached,
            cache_write: 0,
        },
        model: clip(reply["model"].as_str().unwrap_or(asked)),
        latency,
    })
}

fn anthropic_reply(reply: &Value, latency: Duration, asked: &str) -> Result<JudgeReply, CallError> {
    let blocks = reply["content"].as_array().cloned().unwrap_or_default();
    let answer = match blocks
        .iter()
        .find(|b| b["type"] == "tool_use" && b["name"] == ANSWER_NAME)
    {
        Some(block) if block["input"].is_object() => block["input"].clone(),
        _ => {
            // No tool call: a text block holding the JSON is accepted too.
            let text: String = blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("");
            if text.is_empty() {
                return Err(CallError::Invalid {
                    message: format!(
                        "the answer holds no {ANSWER_NAME} tool call (stop_reason {})",
                        clip(&reply["stop_reason"].to_string())
                    ),
                });
            }
            answer_object(&text)?
        }
    };
    let usage = &reply["usage"];
    Ok(JudgeReply {
        answer,
        usage: Usage {
            // Anthropic's input_tokens already excludes cached tokens.
            input: usage_number(&usage["input_tokens"]),
            output: usage_number(&usage["output_tokens"]),
            cache_read: usage_number(&usage["cache_read_input_tokens"]),
            cache_write: usage_number(&usage["cache_creation_input_tokens"]),
        },
        model: clip(reply["model"].as_str().unwrap_or(asked)),
        latency,
    })
}

/// The JSON object in a model's text (fenced in ``` or not).
fn answer_object(text: &str) -> Result<Value, CallError> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed);
    match serde_json::from_str::<Value>(unfenced.trim()) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(CallError::Invalid {
            message: format!("the answer is not the JSON object asked for: {}", clip(text)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_what_to_do_next() {
        let openai_quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(matches!(
            status_error(429, None, openai_quota),
            CallError::Blocked { .. }
        ));
        let rate =
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            status_error(429, Some(Duration::from_secs(2)), rate),
            CallError::Retry {
                status: Some(429),
                after: Some(Duration::from_secs(2)),
                message: "the provider answered 429 (rate_limit_exceeded): Rate limit reached".into()
            }
        );
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            status_error(529, None, overloaded),
            CallError::Retry { .. }
        ));
        assert!(matches!(
            status_error(401, None, "nope"),
            CallError::Blocked { .. }
        ));
        assert!(matches!(status_error(404, None, "{}"), CallError::Blocked { .. }));
        assert!(matches!(status_error(400, None, "{}"), CallError::Invalid { .. }));
        let long = "x".repeat(10_000);
        assert!(status_error(500, None, &long).to_string().len() < 400);
    }

    #[test]
    fn a_providers_retry_after_is_read_safely() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        for hostile in ["1e30", "-1", "NaN", "inf", "Wed, 21 Oct 2026 07:28:00 GMT"] {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_str(hostile).unwrap());
            assert!(
                retry_after(&headers).is_none_or(|wait| wait <= MAX_RETRY_AFTER),
                "{hostile}"
            );
        }
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "192.0.0.192",
            "240.0.0.1",
            "::",
            "fec0::1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            Endpoint::base_url(Adapter::OpenAi, None).unwrap(),
            "https://api.openai.com/v1"
        );
        assert_eq!(
            Endpoint::base_url(Adapter::OpenAi, Some("http://127.0.0.1:11434/v1/")).unwrap(),
            "http://127.0.0.1:11434/v1"
        );
        assert!(Endpoint::base_url(Adapter::Azure, None).is_err());
        for bad in [
            "file:///etc/passwd",
            "ftp://x/y",
            "https://user:pw@x.com/v1",
            "https://x.com/v1?k=1",
            "nope",
        ] {
            assert!(Endpoint::base_url(Adapter::OpenAi, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_read_from_either_format() {
        let openai = json!({
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"message": {"role": "assistant", "content": "{\"reasoning\":\"ok\",\"score\":1}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 40}}
        });
        let reply = openai_reply(&openai, Duration::ZERO, "gpt-4o-mini").unwrap();
        assert_eq!(reply.answer, json!({"reasoning": "ok", "score": 1}));
        assert_eq!(
            reply.usage,
            Usage {
                input: 60,
                output: 20,
                cache_read: 40,
                cache_write: 0
            }
        );
        let anthropic = json!({
            "model": "claude-3-5-haiku",
            "content": [{"type": "tool_use", "id": "t", "name": "judgment", "input": {"reasoning": "fine", "score": true}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 50, "output_tokens": 10, "cache_read_input_tokens": 5}
        });
        let reply = anthropic_reply(&anthropic, Duration::ZERO, "claude").unwrap();
        assert_eq!(reply.answer["score"], json!(true));
        assert_eq!(reply.usage.cache_read, 5);
        let refused = json!({"choices": [{"message": {"refusal": "I can't"}}]});
        assert!(matches!(
            openai_reply(&refused, Duration::ZERO, "m"),
            Err(CallError::Invalid { .. })
        ));
        let prose = json!({"choices": [{"message": {"content": "It is good."}}]});
        assert!(matches!(
            openai_reply(&prose, Duration::ZERO, "m"),
            Err(CallError::Invalid { .. })
        ));
    }
}
