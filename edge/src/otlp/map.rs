//! OTLP spans and log records → AgentTrace events (as wire JSON, validated afterwards like any
//! native event).
//!
//! Spans: `gen_ai.*` model or usage attributes make a generation, `execute_tool` (the GenAI
//! semantic conventions' tool operation) a tool call, anything else a span; ids and parent links
//! are kept as hex; a root span also gives its trace. Resource and span attributes are kept as
//! metadata (resource ones under `resource.`).
//!
//! Log records are coding agents' events (Claude Code `claude_code.*`, Codex `codex.*`): API
//! requests become generations, tool results tool calls (shell tools also a terminal command,
//! file tools also a file operation), prompts and everything else events. A session's id is its
//! trace id. Ids are derived from the record's content, so a retried export does not duplicate.

use std::collections::BTreeMap;

use agenttrace_schemas::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::proto::{
    AnyValue, ExportLogsServiceRequest, ExportTraceServiceRequest, KeyValue, LogRecord, STATUS_CODE_ERROR,
    Span, Value as Any,
};

/// One mapped item: the events it became, or why it could not be mapped.
pub type Mapped = Result<Vec<Value>, String>;

/// An attribute value as JSON.
fn any_to_json(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(Any::StringValue(s)) => Value::String(s.clone()),
        Some(Any::BoolValue(b)) => Value::Bool(*b),
        Some(Any::IntValue(i)) => json!(i),
        Some(Any::DoubleValue(d)) => json!(d),
        Some(Any::ArrayValue(a)) => Value::Array(a.values.iter().map(any_to_json).collect()),
        Some(Any::KvlistValue(kv)) => Value::Object(attributes_to_map(&kv.values, "")),
        Some(Any::BytesValue(b)) => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

fn attributes_to_map(attributes: &[KeyValue], prefix: &str) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or(Value::Null, any_to_json);
            (format!("{prefix}{}", kv.key), value)
        })
        .collect()
}

/// The first attribute value longer than `limit` bytes, as an error.
fn oversized(attributes: &[KeyValue], limit: usize) -> Option<String> {
    attributes.iter().find_map(|kv| {
        let size = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Any::StringValue(s)) => s.len(),
            Some(Any::BytesValue(b)) => b.len(),
            Some(Any::ArrayValue(_) | Any::KvlistValue(_)) => {
                any_to_json(kv.value.as_ref().unwrap_or(&AnyValue::default()))
                    .to_string()
                    .len()
            }
            _ => 0,
        };
        (size > limit).then(|| {
            format!(
                "attribute {:?} is {size} bytes; the limit is {limit} bytes",
                kv.key
            )
        })
    })
}

/// Attribute lookup by key, with typed accessors that accept the usual spellings.
struct Attributes<'a>(BTreeMap<&'a str, &'a AnyValue>);

impl<'a> Attributes<'a> {
    fn new(attributes: &'a [KeyValue]) -> Self {
        Attributes(
            attributes
                .iter()
                .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.as_str(), v)))
                .collect(),
        )
    }

    fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|key| match self.0.get(key)?.value.as_ref()? {
                Any::StringValue(s) if !s.is_empty() => Some(s.clone()),
                Any::IntValue(i) => Some(i.to_string()),
                Any::DoubleValue(d) => Some(d.to_string()),
                Any::BoolValue(b) => Some(b.to_string()),
                _ => None,
            })
    }

    fn number(&self, keys: &[&str]) -> Option<f64> {
        keys.iter()
            .find_map(|key| match self.0.get(key)?.value.as_ref()? {
                Any::IntValue(i) => Some(*i as f64),
                Any::DoubleValue(d) => Some(*d),
                Any::StringValue(s) => s.trim().parse().ok(),
                _ => None,
            })
    }

    fn count(&self, keys: &[&str]) -> Option<u64> {
        self.number(keys).filter(|n| *n >= 0.0).map(|n| n as u64)
    }

    fn flag(&self, keys: &[&str]) -> Option<bool> {
        keys.iter()
            .find_map(|key| match self.0.get(key)?.value.as_ref()? {
                Any::BoolValue(b) => Some(*b),
                Any::StringValue(s) => s.parse().ok(),
                _ => None,
            })
    }

    /// A payload: a string that holds JSON is that JSON, any other string is text.
    fn payload(&self, keys: &[&str]) -> Option<Value> {
        keys.iter().find_map(|key| {
            let value = self.0.get(key)?;
            Some(match &value.value {
                Some(Any::StringValue(s)) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
                _ => any_to_json(value),
            })
        })
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.0.keys().any(|k| k.starts_with(prefix))
    }
}

fn time(unix_nano: u64) -> String {
    Timestamp::from_micros((unix_nano / 1_000) as i64).to_string()
}

fn envelope(id: String, kind: &str, at_nano: u64, body: Value) -> Value {
    json!({ "id": id, "type": kind, "timestamp": time(at_nano), "body": body })
}

/// Drops nulls from an object body, so absent fields stay absent.
fn compact(mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        map.retain(|_, v| !v.is_null());
    }
    body
}

fn usage(attributes: &Attributes) -> Option<Value> {
    let input = attributes.count(&[
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "input_tokens",
    ]);
    let output = attributes.count(&[
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "output_tokens",
    ]);
    let cache_read = attributes.count(&[
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "cache_read_tokens",
        "cached_token_count",
    ]);
    let cache_write = attributes.count(&[
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "cache_creation_tokens",
    ]);
    if input.is_none() && output.is_none() && cache_read.is_none() && cache_write.is_none() {
        return None;
    }
    Some(json!({
        "input_tokens": input.unwrap_or(0),
        "output_tokens": output.unwrap_or(0),
        "cache_read_input_tokens": cache_read.unwrap_or(0),
        "cache_creation_input_tokens": cache_write.unwrap_or(0),
    }))
}

/// Maps every span of an OTLP trace export (one result per span, in order).
pub fn spans(request: &ExportTraceServiceRequest, max_attribute_bytes: usize) -> Vec<Mapped> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource_metadata = attributes_to_map(resource, "resource.");
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or_default();
            for span in &scope_spans.spans {
                out.push(span_events(
                    span,
                    &resource_metadata,
                    resource,
                    scope,
                    max_attribute_bytes,
                ));
            }
        }
    }
    out
}

fn span_events(
    span: &Span,
    resource_metadata: &Map<String, Value>,
    resource: &[KeyValue],
    scope: &str,
    max_attribute_bytes: usize,
) -> Mapped {
    if span.trace_id.len() != 16 {
        return Err(format!(
            "span {:?}: trace_id must be 16 bytes, not {}",
            span.name,
            span.trace_id.len()
        ));
    }
    if span.span_id.len() != 8 {
        return Err(format!(
            "span {:?}: span_id must be 8 bytes, not {}",
            span.name,
            span.span_id.len()
        ));
    }
    if let Some(error) = oversized(&span.attributes, max_attribute_bytes) {
        return Err(format!("span {:?}: {error}", span.name));
    }
    let trace_id = hex::encode(&span.trace_id);
    let span_id = hex::encode(&span.span_id);
    let attributes = Attributes::new(&span.attributes);
    let mut metadata = resource_metadata.clone();
    metadata.extend(attributes_to_map(&span.attributes, ""));
    if !scope.is_empty() {
        metadata.insert("otel.scope.name".into(), json!(scope));
    }

    let operation = attributes.text(&["gen_ai.operation.name"]);
    let model = attributes.text(&["gen_ai.response.model", "gen_ai.request.model"]);
    let usage = usage(&attributes);
    let kind = if operation.as_deref() == Some("execute_tool") || span.name.starts_with("execute_tool") {
        "tool_call"
    } else if attributes.has_prefix("gen_ai.") && (model.is_some() || usage.is_some()) {
        "generation"
    } else {
        "span"
    };
    let failed = span.status.as_ref().is_some_and(|s| s.code == STATUS_CODE_ERROR);
    let status_message = span
        .status
        .as_ref()
        .filter(|s| !s.message.is_empty())
        .map(|s| s.message.clone())
        .or_else(|| {
            failed.then(|| {
                attributes
                    .text(&["error.type"])
                    .unwrap_or_else(|| "error".to_owned())
            })
        });
    let (input_keys, output_keys): (&[&str], &[&str]) = if kind == "tool_call" {
        (
            &[
                "gen_ai.tool.call.arguments",
                "input.value",
                "langfuse.observation.input",
            ],
            &[
                "gen_ai.tool.call.result",
                "output.value",
                "langfuse.observation.output",
            ],
        )
    } else {
        (
            &[
                "gen_ai.input.messages",
                "gen_ai.prompt",
                "input.value",
                "langfuse.observation.input",
            ],
            &[
                "gen_ai.output.messages",
                "gen_ai.completion",
                "output.value",
                "langfuse.observation.output",
            ],
        )
    };
    let cost = attributes
        .number(&["gen_ai.usage.cost", "langfuse.observation.cost"])
        .map(|total| json!({ "total": total }));
    let parent = (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id));
    let end_time = (span.end_time_unix_nano >= span.start_time_unix_nano && span.end_time_unix_nano > 0)
        .then(|| time(span.end_time_unix_nano));
    let observation = compact(json!({
        "id": span_id,
        "trace_id": trace_id,
        "parent_observation_id": parent,
        "type": kind,
        "name": if span.name.is_empty() { "span" } else { span.name.as_str() },
        "start_time": time(span.start_time_unix_nano),
        "end_time": end_time,
        "level": if failed { "error" } else { "default" },
        "status_message": status_message,
        "input": attributes.payload(input_keys),
        "output": attributes.payload(output_keys),
        "metadata": metadata,
        "model": if kind == "generation" { model.map(Value::String) } else { None },
        "usage": if kind == "generation" { usage } else { None },
        "cost": if kind == "generation" { cost } else { None },
        "tool_name": attributes.text(&["gen_ai.tool.name"]),
        "tool_call_id": attributes.text(&["gen_ai.tool.call.id"]),
    }));
    let mut events = vec![envelope(
        format!("otlp-span-{trace_id}-{span_id}"),
        "observation",
        span.start_time_unix_nano,
        observation,
    )];
    if parent.is_none() {
        let resource = Attributes::new(resource);
        let trace = compact(json!({
            "id": trace_id,
            "timestamp": time(span.start_time_unix_nano),
            "name": attributes.text(&["langfuse.trace.name"]).unwrap_or_else(|| span.name.clone()),
            "user_id": attributes.text(&["langfuse.user.id", "user.id", "enduser.id"]),
            "session_id": attributes.text(&["langfuse.session.id", "session.id", "gen_ai.conversation.id"]),
            "release": resource.text(&["service.version"]),
            "environment": resource.text(&["deployment.environment.name", "deployment.environment"]),
            "metadata": resource_metadata,
        }));
        events.push(envelope(
            format!("otlp-trace-{trace_id}"),
            "trace",
            span.start_time_unix_nano,
            trace,
        ));
    }
    Ok(events)
}

/// Maps every log record of an OTLP logs export (one result per record, in order).
pub fn logs(request: &ExportLogsServiceRequest, max_attribute_bytes: usize) -> Vec<Mapped> {
    let mut out = Vec::new();
    let mut traced = std::collections::BTreeSet::new();
    for resource_logs in &request.resource_logs {
        let resource = resource_logs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource_metadata = attributes_to_map(resource, "resource.");
        let resource = Attributes::new(resource);
        let service = resource
            .text(&["service.name"])
            .unwrap_or_else(|| "otlp".to_owned());
        for scope_logs in &resource_logs.scope_logs {
            for record in &scope_logs.log_records {
                out.push(log_events(
                    record,
                    &service,
                    &resource,
                    &resource_metadata,
                    &mut traced,
                    max_attribute_bytes,
                ));
            }
        }
    }
    out
}

/// A tool's parameters: Claude Code sends `tool_parameters` (JSON text), Codex `arguments`.
fn tool_parameters(attributes: &Attributes) -> Option<Value> {
    attributes.payload(&["tool_parameters", "arguments", "tool_input"])
}

fn shell_command(parameters: &Value) -> Option<String> {
    ["full_command", "bash_command", "command", "cmd"]
        .iter()
        .find_map(|key| match parameters.get(key)? {
            Value::String(s) => Some(s.clone()),
            // Codex passes argv, often `["bash", "-lc", "<script>"]`.
            Value::Array(argv) => {
                let parts: Vec<&str> = argv.iter().filter_map(Value::as_str).collect();
                match parts.as_slice() {
                    [shell, "-lc" | "-c", script] if shell.ends_with("sh") => Some((*script).to_owned()),
                    _ => Some(parts.join(" ")),
                }
            }
            _ => None,
        })
}

fn log_events(
    record: &LogRecord,
    service: &str,
    resource: &Attributes,
    resource_metadata: &Map<String, Value>,
    traced: &mut std::collections::BTreeSet<String>,
    max_attribute_bytes: usize,
) -> Mapped {
    if let Some(error) = oversized(&record.attributes, max_attribute_bytes) {
        return Err(format!("log record: {error}"));
    }
    let attributes = Attributes::new(&record.attributes);
    let full_name = Some(record.event_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| attributes.text(&["event.name"]))
        .or_else(|| match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Any::StringValue(s)) if !s.contains(' ') && !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "log".to_owned());
    let name = full_name
        .strip_prefix("claude_code.")
        .or_else(|| full_name.strip_prefix("codex."))
        .unwrap_or(&full_name)
        .to_owned();
    let at_nano = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|t| *t > 0)
        .or_else(|| {
            let text = attributes.text(&["event.timestamp"])?;
            Some(Timestamp::parse(&text).ok()?.as_micros() as u64 * 1_000)
        })
        .ok_or_else(|| format!("log record {full_name:?}: it has no time"))?;
    let session = attributes
        .text(&["session.id", "conversation.id", "gen_ai.conversation.id"])
        .or_else(|| (record.trace_id.len() == 16).then(|| hex::encode(&record.trace_id)))
        .unwrap_or_else(|| format!("{service}-{}", at_nano / 86_400_000_000_000));

    // A content hash makes the id: the same record sent twice is one event.
    let mut hasher = Sha256::new();
    hasher.update(session.as_bytes());
    hasher.update(at_nano.to_le_bytes());
    hasher.update(full_name.as_bytes());
    for kv in &record.attributes {
        hasher.update(kv.key.as_bytes());
        hasher.update(
            kv.value
                .as_ref()
                .map(any_to_json)
                .unwrap_or_default()
                .to_string()
                .as_bytes(),
        );
    }
    let id = format!("{service}-{}", &hex::encode(hasher.finalize())[..24]);

    let mut metadata = resource_metadata.clone();
    metadata.extend(attributes_to_map(&record.attributes, ""));
    metadata.insert("otel.event.name".into(), json!(full_name));
    let duration_us = attributes
        .number(&["duration_ms"])
        .map_or(0, |ms| (ms * 1000.0).max(0.0) as u64);
    let end = at_nano;
    let start = end.saturating_sub(duration_us * 1_000);
    let success = attributes.flag(&["success"]);
    let error = attributes.text(&["error", "error.message"]);
    let failed = success == Some(false) || name == "api_error";
    let tool_name = attributes.text(&["tool_name", "tool.name", "gen_ai.tool.name"]);
    let model = attributes.text(&["model", "gen_ai.request.model", "gen_ai.response.model"]);
    let kind = match name.as_str() {
        "api_request" | "api_error" => "generation",
        "tool_result" => "tool_call",
        _ => "event",
    };
    let parameters = tool_parameters(&attributes);
    let input = match name.as_str() {
        "tool_result" => parameters.clone(),
        _ => attributes.payload(&["prompt", "gen_ai.prompt"]),
    };
    let observation = compact(json!({
        "id": id,
        "trace_id": session,
        "type": kind,
        "name": tool_name.clone().filter(|_| kind == "tool_call").unwrap_or_else(|| name.clone()),
        "start_time": time(start),
        "end_time": time(end),
        "level": if failed { "error" } else { "default" },
        "status_message": if failed { Some(error.clone().unwrap_or_else(|| "failed".to_owned())) } else { None },
        "input": input,
        "output": attributes.payload(&["output", "tool_result", "response"]),
        "metadata": metadata,
        "model": if kind == "generation" { model } else { None },
        "usage": if kind == "generation" { usage(&attributes) } else { None },
        "cost": if kind == "generation" { attributes.number(&["cost_usd", "gen_ai.usage.cost"]).map(|total| json!({ "total": total })) } else { None },
        "tool_name": if kind == "tool_call" { tool_name.clone() } else { None },
        "tool_call_id": if kind == "tool_call" { attributes.text(&["call_id", "tool_use_id", "gen_ai.tool.call.id"]) } else { None },
    }));
    let mut events = vec![envelope(
        format!("otlp-log-{id}"),
        "observation",
        start,
        observation,
    )];

    if kind == "tool_call" {
        let tool = tool_name.as_deref().unwrap_or_default();
        let parameters = parameters.unwrap_or(Value::Null);
        if matches!(
            tool,
            "Bash" | "shell" | "local_shell" | "exec_command" | "container.exec"
        ) && let Some(command) = shell_command(&parameters)
        {
            let body = compact(json!({
                "id": format!("{id}-command"),
                "trace_id": session,
                "observation_id": id,
                "timestamp": time(start),
                "command": command,
                "cwd": parameters.get("workdir").or_else(|| parameters.get("cwd")).and_then(Value::as_str),
                "exit_code": attributes.number(&["exit_code"]).map(|c| c as i32)
                    .or(match success { Some(true) => Some(0), _ => None }),
                "duration_ms": attributes.count(&["duration_ms"]),
                "stderr": if failed { error.clone() } else { None },
            }));
            events.push(envelope(
                format!("otlp-log-{id}-command"),
                "terminal_command",
                start,
                body,
            ));
        }
        let operation = match tool {
            "Edit" | "MultiEdit" | "NotebookEdit" | "apply_patch" => Some("edit"),
            "Write" => Some("write"),
            "Read" => Some("read"),
            _ => None,
        };
        let path = ["file_path", "notebook_path", "path"]
            .iter()
            .find_map(|key| parameters.get(key).and_then(Value::as_str));
        if let (Some(operation), Some(path)) = (operation, path) {
            let body = json!({
                "id": format!("{id}-file"),
                "trace_id": session,
                "observation_id": id,
                "timestamp": time(start),
                "operation": operation,
                "path": path,
            });
            events.push(envelope(
                format!("otlp-log-{id}-file"),
                "file_operation",
                start,
                body,
            ));
        }
    }
    // The session's trace, once per export (a later export of the same session updates it).
    if traced.insert(session.clone()) {
        let trace = compact(json!({
            "id": session,
            "timestamp": time(at_nano),
            "name": service,
            "session_id": session,
            "user_id": attributes.text(&["user.email", "user.id", "user.account_uuid"]),
            "release": resource.text(&["service.version"]),
            "tags": [format!("agent:{service}")],
            "metadata": resource_metadata,
        }));
        events.push(envelope(
            format!("otlp-session-{session}"),
            "trace",
            at_nano,
            trace,
        ));
    }
    Ok(events)
}
