//! OTLP spans → observations, and trace patches for the trace-level attributes spans carry.
//!
//! Four attribute dialects are understood. Where they overlap, the first in this order wins:
//!
//! 1. **Langfuse** (`langfuse.*`, what the Langfuse SDKs send): `langfuse.observation.{type,
//!    model.name, model.parameters, usage_details, cost_details, input, output, level,
//!    status_message, completion_start_time, prompt.name, prompt.version, metadata.*}` and
//!    `langfuse.trace.{name, input, output, tags, public, metadata.*}`, `langfuse.user.id`,
//!    `langfuse.session.id`, `langfuse.environment`, `langfuse.release`, `langfuse.version`,
//!    `langfuse.experiment.*`. Langfuse's observation types are kept as they are.
//! 2. **OpenTelemetry GenAI** (`gen_ai.*`, current and deprecated names): the operation decides
//!    the type (`chat` → generation, `embeddings` → embedding, `invoke_agent` → agent,
//!    `execute_tool` → tool call), `gen_ai.input.messages` / `gen_ai.output.messages` (or the
//!    deprecated `gen_ai.prompt` / `gen_ai.completion`), `gen_ai.conversation.id` as session.
//! 3. **OpenInference** (`openinference.span.kind`, `llm.model_name`, `llm.token_count.*`,
//!    `llm.invocation_parameters`, `tool.name`; input and output are the chat rebuilt from
//!    `llm.input_messages.*` / `llm.output_messages.*` (`chat.rs`) when the span has them, else
//!    `input.value` / `output.value`, the raw request and response).
//! 4. **Vercel AI SDK** (`ai.operationId`, `ai.model.id`, `ai.usage.*`, `ai.prompt*`,
//!    `ai.response.*`, `ai.toolCall.*`, `ai.telemetry.metadata.*`; a call's
//!    `ai.telemetry.functionId`, or `resource.name`, names the trace).
//!
//! Then `user.id` / `session.id`, and a heuristic: a span with a GenAI model or token counts is
//! a generation. Ids and parent links are kept as hex. Every span whose attributes say anything
//! about its trace (and every root span, which names and times it) yields a `trace_patch`: the
//! ETL merges those from all of a trace's spans, in whatever order they arrive. The root span's
//! input and output are the trace's too, unless `langfuse.trace.input` / `.output` are given.
//! Resource attributes are kept as metadata under `resource.`; payload attributes (inputs,
//! outputs) are not copied into metadata.
//!
//! A GenAI generation span with no content of its own (the official OpenAI instrumentation
//! sends its messages as log events, `logs.rs`) is sent as an `observation_patch`, so that the
//! ETL merges it with the events' patch in either order.

use agenttrace_schemas::Timestamp;
use serde_json::{Map, Value, json};

use super::chat::openinference_messages;
use super::common::{
    Attributes, Mapped, USAGE_KEYS, attributes_to_map, compact, cost_from_details, envelope, oversized, time,
    usage, usage_from_details,
};
use super::proto::{ExportTraceServiceRequest, KeyValue, STATUS_CODE_ERROR, Span};

const LANGFUSE_TYPES: &[&str] = &[
    "span",
    "generation",
    "event",
    "agent",
    "tool",
    "chain",
    "retriever",
    "evaluator",
    "embedding",
    "guardrail",
];

const INPUT_KEYS: &[&str] = &[
    "langfuse.observation.input",
    "gen_ai.input.messages",
    "gen_ai.prompt",
    "input.value",
    "ai.prompt.messages",
    "ai.prompt",
];
const OUTPUT_KEYS: &[&str] = &[
    "langfuse.observation.output",
    "gen_ai.output.messages",
    "gen_ai.completion",
    "output.value",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
];
const TOOL_INPUT_KEYS: &[&str] = &[
    "langfuse.observation.input",
    "gen_ai.tool.call.arguments",
    "ai.toolCall.args",
    "input.value",
];
const TOOL_OUTPUT_KEYS: &[&str] = &[
    "langfuse.observation.output",
    "gen_ai.tool.call.result",
    "ai.toolCall.result",
    "output.value",
];

/// Attributes that are mapped to fields of their own and not repeated in metadata (payloads
/// would double the row's size).
fn mapped_elsewhere(key: &str) -> bool {
    key.starts_with("langfuse.")
        || INPUT_KEYS.contains(&key)
        || OUTPUT_KEYS.contains(&key)
        || TOOL_INPUT_KEYS.contains(&key)
        || TOOL_OUTPUT_KEYS.contains(&key)
        || key == "gen_ai.system_instructions"
        || key.starts_with("llm.input_messages.")
        || key.starts_with("llm.output_messages.")
}

/// A span's input or output: the first of `keys` present, except that OpenInference's messages
/// (`messages`: `llm.input_messages` or `llm.output_messages`), rebuilt as a conversation, come
/// before its raw request or response (`input.value` / `output.value`).
fn payload(attributes: &Attributes, raw: &[KeyValue], keys: &[&str], messages: &str) -> Option<Value> {
    let raw_at = keys
        .iter()
        .position(|key| matches!(*key, "input.value" | "output.value"))
        .unwrap_or(keys.len());
    attributes
        .payload(&keys[..raw_at])
        .or_else(|| openinference_messages(raw, messages))
        .or_else(|| attributes.payload(&keys[raw_at..]))
}

/// The Vercel AI SDK's operations that a call's `functionId` names (the spans of one
/// `generateText`, `streamText`, ... call; not each step's `doGenerate` under them).
const AI_SDK_CALLS: &[&str] = &[
    "ai.generateText",
    "ai.streamText",
    "ai.generateObject",
    "ai.streamObject",
    "ai.embed",
    "ai.embedMany",
];

/// The observation type, by the dialect priority above.
fn observation_type(attributes: &Attributes, span_name: &str) -> &'static str {
    if let Some(kind) = attributes.text(&["langfuse.observation.type"])
        && let Some(known) = LANGFUSE_TYPES.iter().find(|t| kind.eq_ignore_ascii_case(t))
    {
        return known;
    }
    if let Some(operation) = attributes.text(&["gen_ai.operation.name"]) {
        match operation.as_str() {
            "chat" | "text_completion" | "generate_content" | "completion" => return "generation",
            "embeddings" => return "embedding",
            "invoke_agent" | "create_agent" => return "agent",
            "execute_tool" => return "tool_call",
            _ => {}
        }
    }
    if span_name.starts_with("execute_tool") {
        return "tool_call";
    }
    if let Some(kind) = attributes.text(&["openinference.span.kind"]) {
        match kind.to_ascii_uppercase().as_str() {
            "LLM" => return "generation",
            "EMBEDDING" => return "embedding",
            "CHAIN" => return "chain",
            "TOOL" => return "tool",
            "RETRIEVER" | "RERANKER" => return "retriever",
            "AGENT" => return "agent",
            "GUARDRAIL" => return "guardrail",
            "EVALUATOR" => return "evaluator",
            _ => {}
        }
    }
    if let Some(operation) = attributes.text(&["ai.operationId"]) {
        match operation.as_str() {
            "ai.generateText.doGenerate"
            | "ai.streamText.doStream"
            | "ai.generateObject.doGenerate"
            | "ai.streamObject.doStream" => return "generation",
            "ai.embed.doEmbed" | "ai.embedMany.doEmbed" => return "embedding",
            "ai.toolCall" => return "tool_call",
            _ => {}
        }
    }
    let has_model = attributes.contains("gen_ai.request.model")
        || attributes.contains("gen_ai.response.model")
        || attributes.contains("llm.model_name");
    let has_usage = usage(attributes, &USAGE_KEYS).is_some();
    if (attributes.has_prefix("gen_ai.") || attributes.has_prefix("llm.")) && (has_model || has_usage) {
        return "generation";
    }
    "span"
}

/// A time given as RFC 3339 (an offset or `Z`, or none, which means UTC).
fn parse_time(value: &Value) -> Option<Timestamp> {
    let text = value.as_str()?;
    Timestamp::parse(text)
        .or_else(|_| Timestamp::parse(&format!("{text}Z")))
        .ok()
}

/// Request parameters: Langfuse's map, OpenInference's JSON, or the GenAI `gen_ai.request.*`.
fn model_parameters(attributes: &Attributes, raw: &[KeyValue]) -> Option<Value> {
    if let Some(parameters) = attributes.payload(&[
        "langfuse.observation.model.parameters",
        "llm.invocation_parameters",
    ]) {
        return Some(parameters);
    }
    let requested: Map<String, Value> = attributes_to_map(raw, "")
        .into_iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("gen_ai.request.")?;
            (name != "model").then(|| (name.to_owned(), value))
        })
        .collect();
    (!requested.is_empty()).then_some(Value::Object(requested))
}

/// Maps every span of an OTLP trace export (one result per span, in order).
pub fn map(request: &ExportTraceServiceRequest, max_attribute_bytes: usize) -> Vec<Mapped> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource_metadata = attributes_to_map(resource, "resource.");
        let resource = Attributes::new(resource);
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or_default();
            for span in &scope_spans.spans {
                out.push(span_events(
                    span,
                    &resource,
                    &resource_metadata,
                    scope,
                    max_attribute_bytes,
                ));
            }
        }
    }
    out
}

/// A trace or span id: the right length and not all zeros (OTLP's "invalid" id).
fn check_id(span: &Span, field: &str, id: &[u8], bytes: usize) -> Result<String, String> {
    if id.len() != bytes || id.iter().all(|b| *b == 0) {
        return Err(format!(
            "span {:?}: {field} must be {} hex digits, not all zeros",
            span.name,
            bytes * 2
        ));
    }
    Ok(hex::encode(id))
}

fn span_events(
    span: &Span,
    resource: &Attributes,
    resource_metadata: &Map<String, Value>,
    scope: &str,
    max_attribute_bytes: usize,
) -> Mapped {
    let trace_id = check_id(span, "trace_id", &span.trace_id, 16)?;
    let span_id = check_id(span, "span_id", &span.span_id, 8)?;
    if let Some(error) = oversized(&span.attributes, max_attribute_bytes) {
        return Err(format!("span {:?}: {error}", span.name));
    }
    let attributes = Attributes::new(&span.attributes);
    let kind = observation_type(&attributes, &span.name);
    let priced = matches!(kind, "generation" | "embedding");
    let is_tool = matches!(kind, "tool_call" | "tool");

    let mut metadata = resource_metadata.clone();
    metadata.extend(
        attributes_to_map(&span.attributes, "")
            .into_iter()
            .filter(|(key, _)| !mapped_elsewhere(key)),
    );
    metadata.extend(attributes.under("langfuse.observation.metadata"));
    metadata.extend(attributes.under("ai.telemetry.metadata"));
    if !scope.is_empty() {
        metadata.insert("otel.scope.name".into(), json!(scope));
    }

    let failed = span.status.as_ref().is_some_and(|s| s.code == STATUS_CODE_ERROR);
    let level = attributes
        .text(&["langfuse.observation.level"])
        .map(|level| level.to_ascii_lowercase())
        .filter(|level| matches!(level.as_str(), "debug" | "default" | "warning" | "error"))
        .unwrap_or_else(|| if failed { "error" } else { "default" }.to_owned());
    let status_message = attributes
        .text(&["langfuse.observation.status_message"])
        .or_else(|| {
            span.status
                .as_ref()
                .filter(|s| !s.message.is_empty())
                .map(|s| s.message.clone())
        })
        .or_else(|| {
            failed.then(|| {
                attributes
                    .text(&["error.type"])
                    .unwrap_or_else(|| "error".to_owned())
            })
        });
    let (input_keys, output_keys) = if is_tool {
        (TOOL_INPUT_KEYS, TOOL_OUTPUT_KEYS)
    } else {
        (INPUT_KEYS, OUTPUT_KEYS)
    };
    let model = attributes.text(&[
        "langfuse.observation.model.name",
        "gen_ai.response.model",
        "ai.response.model",
        "ai.model.id",
        "gen_ai.request.model",
        "llm.response.model",
        "llm.model_name",
    ]);
    let usage = attributes
        .payload(&["langfuse.observation.usage_details"])
        .and_then(|details| usage_from_details(&details))
        .or_else(|| usage(&attributes, &USAGE_KEYS));
    let cost = attributes
        .payload(&["langfuse.observation.cost_details"])
        .and_then(|details| cost_from_details(&details))
        .or_else(|| {
            attributes
                .number(&["gen_ai.usage.cost", "llm.cost.total"])
                .map(|total| json!({ "total": total }))
        });
    let completion_start = attributes
        .payload(&["langfuse.observation.completion_start_time"])
        .and_then(|value| parse_time(&value))
        .or_else(|| {
            let ms = attributes.number(&["ai.response.msToFirstChunk"])?;
            let start = Timestamp::from_micros((span.start_time_unix_nano / 1_000) as i64);
            Some(Timestamp::from_micros(
                start.as_micros().saturating_add((ms * 1_000.0) as i64),
            ))
        });
    let parent = (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id));
    let start_time = time(span.start_time_unix_nano);
    let end_time = if kind == "event" {
        Some(start_time.clone())
    } else {
        (span.end_time_unix_nano >= span.start_time_unix_nano && span.end_time_unix_nano > 0)
            .then(|| time(span.end_time_unix_nano))
    };
    let input = payload(&attributes, &span.attributes, input_keys, "llm.input_messages");
    let output = payload(&attributes, &span.attributes, output_keys, "llm.output_messages");
    // A GenAI generation whose span carries no content may get it from GenAI events in OTLP
    // logs (`logs.rs`), which become a patch of this observation: the span is a patch too, so
    // that the ETL merges the two whichever arrives first.
    let patched_by_events = kind == "generation"
        && input.is_none()
        && output.is_none()
        && attributes.has_prefix("gen_ai.")
        && !attributes.has_prefix("langfuse.");
    let observation = compact(json!({
        "id": span_id,
        "trace_id": trace_id,
        "parent_observation_id": parent,
        "type": kind,
        "name": if span.name.is_empty() { kind } else { span.name.as_str() },
        "start_time": start_time,
        "end_time": end_time,
        "level": level,
        "status_message": status_message,
        "input": input,
        "output": output,
        "metadata": metadata,
        "model": if priced { model } else { None },
        "model_parameters": if priced { model_parameters(&attributes, &span.attributes) } else { None },
        "usage": if priced { usage } else { None },
        "cost": if priced { cost } else { None },
        "tool_name": attributes.text(&["gen_ai.tool.name", "ai.toolCall.name", "tool.name"]),
        "tool_call_id": attributes.text(&["gen_ai.tool.call.id", "ai.toolCall.id"]),
        "completion_start_time": completion_start.map(|t| t.to_string()),
        "prompt_name": attributes.text(&["langfuse.observation.prompt.name"]),
        "prompt_version": attributes.count(&["langfuse.observation.prompt.version"]),
    }));
    let root = parent.is_none();
    // The root span's input and output are its trace's (unless `langfuse.trace.*` say otherwise).
    let io = if root {
        (
            observation.get("input").cloned(),
            observation.get("output").cloned(),
        )
    } else {
        (None, None)
    };
    let mut events = vec![envelope(
        format!("otlp-span-{trace_id}-{span_id}"),
        if patched_by_events {
            "observation_patch"
        } else {
            "observation"
        },
        span.start_time_unix_nano,
        observation,
    )];
    if let Some(trace) = trace_patch(
        span,
        &attributes,
        resource,
        resource_metadata,
        &trace_id,
        root,
        io,
    ) {
        events.push(envelope(
            format!("otlp-trace-{trace_id}-{span_id}"),
            "trace_patch",
            span.start_time_unix_nano,
            trace,
        ));
    }
    Ok(events)
}

/// What a span says about its trace, as a patch; `None` when it says nothing (a root span
/// always names and times its trace).
fn trace_patch(
    span: &Span,
    attributes: &Attributes,
    resource: &Attributes,
    resource_metadata: &Map<String, Value>,
    trace_id: &str,
    root: bool,
    (input, output): (Option<Value>, Option<Value>),
) -> Option<Value> {
    let either = |keys: &[&str]| attributes.text(keys).or_else(|| resource.text(keys));
    let mut metadata = attributes.under("langfuse.trace.metadata");
    if let Some(Value::Object(whole)) = attributes.payload(&["langfuse.trace.metadata"]) {
        metadata.extend(whole);
    }
    for (key, value) in attributes.under("langfuse.experiment") {
        if !matches!(key.as_str(), "id" | "item.id") {
            metadata.insert(format!("experiment.{key}"), value);
        }
    }
    if root {
        metadata.extend(resource_metadata.clone());
    }
    // The Vercel AI SDK's `functionId` (also sent as `resource.name`) names the trace from the
    // call's own span, root or not (under a web framework's request span, say).
    let ai_call = attributes
        .text(&["ai.operationId"])
        .is_some_and(|operation| AI_SDK_CALLS.contains(&operation.as_str()));
    let function_id = (root || ai_call)
        .then(|| attributes.text(&["ai.telemetry.functionId"]))
        .flatten()
        .or_else(|| {
            (ai_call || (root && attributes.contains("ai.operationId")))
                .then(|| attributes.text(&["resource.name"]))
                .flatten()
        });
    let patch = compact(json!({
        "name": attributes
            .text(&["langfuse.trace.name"])
            .or(function_id)
            .or_else(|| root.then(|| span.name.clone()).filter(|n| !n.is_empty())),
        "user_id": attributes.text(&["langfuse.user.id", "user.id", "enduser.id", "ai.telemetry.metadata.userId"]),
        "session_id": attributes.text(&["langfuse.session.id", "session.id", "gen_ai.conversation.id", "ai.telemetry.metadata.sessionId"]),
        "tags": attributes.strings(&["langfuse.trace.tags", "langfuse.tags", "ai.telemetry.metadata.tags"]),
        "public": attributes.flag(&["langfuse.trace.public"]),
        "input": attributes.payload(&["langfuse.trace.input"]).or(input),
        "output": attributes.payload(&["langfuse.trace.output"]).or(output),
        "environment": either(&["langfuse.environment", "deployment.environment.name", "deployment.environment"]),
        "release": either(&["langfuse.release"]).or_else(|| root.then(|| resource.text(&["service.version"])).flatten()),
        "version": attributes.text(&["langfuse.version"]),
        "experiment_id": attributes.text(&["langfuse.experiment.id"]),
        "dataset_item_id": attributes.text(&["langfuse.experiment.item.id"]),
        "metadata": (!metadata.is_empty()).then_some(Value::Object(metadata)),
    }));
    if !root && patch.as_object().is_some_and(Map::is_empty) {
        return None;
    }
    let mut patch = patch;
    patch["id"] = json!(trace_id);
    if root {
        patch["timestamp"] = json!(time(span.start_time_unix_nano));
    }
    Some(patch)
}
