//! Chat conversations as OpenAI's format has them (a JSON array of `{role, content, ...}`
//! messages, with `tool_calls`, `tool_call_id` and `name` where present), rebuilt from what two
//! instrumentation families send instead of a conversation:
//!
//! - **OpenInference** flattens each message into span attributes:
//!   `llm.input_messages.{i}.message.{role, content, name, tool_call_id, function_call_name,
//!   function_call_arguments_json}`, its parts as `...message.contents.{j}.message_content.{type,
//!   text, image.image.url}` and its tool calls as `...message.tool_calls.{j}.tool_call.{id,
//!   function.name, function.arguments}` (likewise `llm.output_messages.*`).
//! - **OpenTelemetry GenAI events** (`opentelemetry-instrumentation-openai-v2` and the other
//!   contrib instrumentations, semantic conventions v1.30): one log record per message, named
//!   `gen_ai.{system,user,assistant,tool}.message` with the message as its body (`content`,
//!   `tool_calls`, a tool message's `id`), and `gen_ai.choice` per choice (`index`,
//!   `finish_reason`, `message`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::common::any_to_json;
use super::proto::KeyValue;

/// The messages flattened under `prefix` (`llm.input_messages` or `llm.output_messages`) in
/// order of their index; `None` when there are none.
pub fn openinference_messages(attributes: &[KeyValue], prefix: &str) -> Option<Value> {
    let dotted = format!("{prefix}.");
    // index → (field → value), each message's fields with `message.` removed.
    let mut messages: BTreeMap<u64, BTreeMap<&str, Value>> = BTreeMap::new();
    for kv in attributes {
        let Some(rest) = kv.key.strip_prefix(&dotted) else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        let (Ok(index), Some(field)) = (index.parse::<u64>(), field.strip_prefix("message.")) else {
            continue;
        };
        let value = kv.value.as_ref().map_or(Value::Null, any_to_json);
        messages.entry(index).or_default().insert(field, value);
    }
    if messages.is_empty() {
        return None;
    }
    Some(Value::Array(
        messages.into_values().map(openinference_message).collect(),
    ))
}

/// Groups `{j}.{rest}` fields under `prefix.` by `j`, in order.
fn numbered<'a>(fields: &BTreeMap<&'a str, Value>, prefix: &str) -> Vec<BTreeMap<&'a str, Value>> {
    let mut items: BTreeMap<u64, BTreeMap<&'a str, Value>> = BTreeMap::new();
    for (key, value) in fields {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        if let Ok(index) = index.parse::<u64>() {
            items.entry(index).or_default().insert(field, value.clone());
        }
    }
    items.into_values().collect()
}

fn openinference_message(fields: BTreeMap<&str, Value>) -> Value {
    let mut message = Map::new();
    message.insert(
        "role".into(),
        fields
            .get("role")
            .filter(|r| r.is_string())
            .cloned()
            .unwrap_or_else(|| json!("user")),
    );
    let parts: Vec<Value> = numbered(&fields, "contents.")
        .into_iter()
        .map(|part| {
            let kind = part
                .get("message_content.type")
                .and_then(Value::as_str)
                .unwrap_or("text")
                .to_owned();
            match (
                kind.as_str(),
                part.get("message_content.text"),
                part.get("message_content.image.image.url"),
            ) {
                ("text", Some(text), _) => json!({"type": "text", "text": text}),
                ("image", _, Some(url)) => json!({"type": "image_url", "image_url": {"url": url}}),
                _ => {
                    let mut other = Map::new();
                    other.insert("type".into(), json!(kind));
                    for (key, value) in part {
                        if let Some(key) = key.strip_prefix("message_content.")
                            && key != "type"
                        {
                            other.insert(key.to_owned(), value);
                        }
                    }
                    Value::Object(other)
                }
            }
        })
        .collect();
    let content = match fields.get("content") {
        Some(content) if !content.is_null() => content.clone(),
        _ if !parts.is_empty() => Value::Array(parts),
        _ => Value::Null,
    };
    message.insert("content".into(), content);
    for key in ["name", "tool_call_id"] {
        if let Some(value) = fields.get(key) {
            message.insert(key.into(), value.clone());
        }
    }
    let tool_calls: Vec<Value> = numbered(&fields, "tool_calls.")
        .into_iter()
        .map(|call| {
            let mut function = Map::new();
            for (key, field) in [
                ("name", "tool_call.function.name"),
                ("arguments", "tool_call.function.arguments"),
            ] {
                if let Some(value) = call.get(field) {
                    function.insert(key.into(), value.clone());
                }
            }
            let mut tool_call = Map::new();
            if let Some(id) = call.get("tool_call.id") {
                tool_call.insert("id".into(), id.clone());
            }
            tool_call.insert("type".into(), json!("function"));
            tool_call.insert("function".into(), Value::Object(function));
            Value::Object(tool_call)
        })
        .collect();
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if let Some(name) = fields.get("function_call_name") {
        let arguments = fields
            .get("function_call_arguments_json")
            .cloned()
            .unwrap_or(Value::Null);
        message.insert(
            "function_call".into(),
            json!({"name": name, "arguments": arguments}),
        );
    }
    Value::Object(message)
}

/// The role a GenAI message event's name gives (`gen_ai.user.message` → `user`).
pub fn genai_message_role(event_name: &str) -> Option<&str> {
    let role = event_name.strip_prefix("gen_ai.")?.strip_suffix(".message")?;
    (!role.is_empty() && !role.contains('.')).then_some(role)
}

/// One message from a GenAI message event's body, in OpenAI's format (`content` is null when
/// it was not captured: the body is then empty).
pub fn genai_event_message(role: &str, body: &Value) -> Value {
    let mut message = Map::new();
    let role = body.get("role").and_then(Value::as_str).unwrap_or(role);
    message.insert("role".into(), json!(role));
    message.insert(
        "content".into(),
        body.get("content").cloned().unwrap_or(Value::Null),
    );
    if let Some(calls) = body.get("tool_calls").filter(|c| !c.is_null()) {
        message.insert("tool_calls".into(), calls.clone());
    }
    if role == "tool"
        && let Some(id) = body.get("tool_call_id").or_else(|| body.get("id"))
    {
        message.insert("tool_call_id".into(), id.clone());
    }
    Value::Object(message)
}

/// A `gen_ai.choice` event's body as its index and the message it chose (with its
/// `finish_reason`).
pub fn genai_choice(body: &Value) -> (u64, Value) {
    let index = body.get("index").and_then(Value::as_u64).unwrap_or(0);
    let mut message = genai_event_message("assistant", body.get("message").unwrap_or(&Value::Null));
    if let (Value::Object(fields), Some(reason)) = (&mut message, body.get("finish_reason"))
        && !reason.is_null()
    {
        fields.insert("finish_reason".into(), reason.clone());
    }
    (index, message)
}
