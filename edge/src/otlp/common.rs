//! What the span, log and metric mappings share: OTLP attribute values as JSON, a typed
//! attribute lookup that accepts the spellings real exporters use, content-derived ids, and
//! event envelopes. Mapped events are wire JSON, validated afterwards like any native event.

use std::collections::BTreeMap;

use agenttrace_schemas::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::proto::{AnyValue, KeyValue, Value as Any};

/// One mapped item (a span, a log record, a data point): the events it became, or why it
/// could not be mapped.
pub type Mapped = Result<Vec<Value>, String>;

/// An attribute value as JSON.
pub fn any_to_json(value: &AnyValue) -> Value {
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

pub fn attributes_to_map(attributes: &[KeyValue], prefix: &str) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or(Value::Null, any_to_json);
            (format!("{prefix}{}", kv.key), value)
        })
        .collect()
}

/// The first attribute value longer than `limit` bytes, as an error.
pub fn oversized(attributes: &[KeyValue], limit: usize) -> Option<String> {
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

/// Attribute lookup by key, with typed accessors that accept the usual spellings: numbers sent
/// as strings (Claude Code, Codex), booleans as `"true"`, JSON held in strings.
pub struct Attributes<'a>(BTreeMap<&'a str, &'a AnyValue>);

impl<'a> Attributes<'a> {
    pub fn new(attributes: &'a [KeyValue]) -> Self {
        Attributes(
            attributes
                .iter()
                .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.as_str(), v)))
                .collect(),
        )
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|key| match self.0.get(key)?.value.as_ref()? {
                Any::StringValue(s) if !s.is_empty() => Some(s.clone()),
                Any::IntValue(i) => Some(i.to_string()),
                Any::DoubleValue(d) => Some(d.to_string()),
                Any::BoolValue(b) => Some(b.to_string()),
                _ => None,
            })
    }

    pub fn number(&self, keys: &[&str]) -> Option<f64> {
        keys.iter()
            .find_map(|key| match self.0.get(key)?.value.as_ref()? {
                Any::IntValue(i) => Some(*i as f64),
                Any::DoubleValue(d) => Some(*d),
                Any::StringValue(s) => s.trim().parse().ok(),
                _ => None,
            })
    }

    pub fn count(&self, keys: &[&str]) -> Option<u64> {
        self.number(keys).filter(|n| *n >= 0.0).map(|n| n as u64)
    }

    pub fn flag(&self, keys: &[&str]) -> Option<bool> {
        keys.iter()
            .find_map(|key| match self.0.get(key)?.value.as_ref()? {
                Any::BoolValue(b) => Some(*b),
                Any::StringValue(s) => s.parse().ok(),
                _ => None,
            })
    }

    /// A payload: a string that holds JSON is that JSON, any other string is text.
    pub fn payload(&self, keys: &[&str]) -> Option<Value> {
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

    /// Keys under `prefix.` with the prefix removed, and their values (JSON held in strings
    /// decoded), e.g. `langfuse.trace.metadata.team` → `team`.
    pub fn under(&self, prefix: &str) -> Map<String, Value> {
        let dotted = format!("{prefix}.");
        self.0
            .iter()
            .filter_map(|(key, value)| {
                let rest = key.strip_prefix(&dotted)?;
                let value = match &value.value {
                    Some(Any::StringValue(s)) => {
                        serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                    }
                    _ => any_to_json(value),
                };
                Some((rest.to_owned(), value))
            })
            .collect()
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.0.keys().any(|k| k.starts_with(prefix))
    }

    /// A list of strings: an array attribute, or a string holding a JSON array.
    pub fn strings(&self, keys: &[&str]) -> Option<Vec<String>> {
        let value = self.payload(keys)?;
        match value {
            Value::Array(items) => Some(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s),
                        Value::Null => None,
                        other => Some(other.to_string()),
                    })
                    .collect(),
            ),
            Value::String(s) => Some(vec![s]),
            _ => None,
        }
    }
}

pub fn time(unix_nano: u64) -> String {
    Timestamp::from_micros((unix_nano / 1_000) as i64).to_string()
}

pub fn envelope(id: String, kind: &str, at_nano: u64, body: Value) -> Value {
    json!({ "id": id, "type": kind, "timestamp": time(at_nano), "body": body })
}

/// Drops nulls from an object body, so absent fields stay absent.
pub fn compact(mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        map.retain(|_, v| !v.is_null());
    }
    body
}

/// A short id derived from content: the same input always gives the same id, so a retried
/// export replaces instead of duplicating.
pub fn content_id(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..12])
}

/// Token usage as the event model has it, from any of `keys`' spellings for each count.
pub struct UsageKeys<'k> {
    pub input: &'k [&'k str],
    pub output: &'k [&'k str],
    pub cache_read: &'k [&'k str],
    pub cache_write: &'k [&'k str],
}

/// The GenAI, OpenInference, Vercel AI SDK and coding-agent spellings of token counts.
pub const USAGE_KEYS: UsageKeys<'static> = UsageKeys {
    input: &[
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
        "input_tokens",
        "input_token_count",
    ],
    output: &[
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
        "output_tokens",
        "output_token_count",
    ],
    cache_read: &[
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "ai.usage.cachedInputTokens",
        "cache_read_tokens",
        "cached_token_count",
    ],
    cache_write: &[
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "cache_creation_tokens",
        "cache_write_token_count",
    ],
};

pub fn usage(attributes: &Attributes, keys: &UsageKeys) -> Option<Value> {
    let input = attributes.count(keys.input);
    let output = attributes.count(keys.output);
    let cache_read = attributes.count(keys.cache_read);
    let cache_write = attributes.count(keys.cache_write);
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

/// Langfuse's `usage_details` / `usageDetails` map (`{"input": 10, "output": 20, ...}`, or an
/// OpenAI usage object) as the event model's usage.
pub fn usage_from_details(details: &Value) -> Option<Value> {
    let map = details.as_object()?;
    let count = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| map.get(*key).and_then(Value::as_f64))
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64)
    };
    let input = count(&["input", "prompt_tokens", "input_tokens", "promptTokens"]);
    let output = count(&["output", "completion_tokens", "output_tokens", "completionTokens"]);
    let cache_read = count(&[
        "cache_read_input_tokens",
        "input_cache_read",
        "input_cached_tokens",
        "cached_tokens",
    ])
    .or_else(|| {
        ["prompt_tokens_details", "input_tokens_details"]
            .iter()
            .find_map(|key| map.get(*key)?.get("cached_tokens")?.as_u64())
    });
    let cache_write = count(&[
        "cache_creation_input_tokens",
        "input_cache_creation",
        "cache_write_input_tokens",
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

/// Langfuse's `cost_details` / `costDetails` map (USD) as the event model's cost.
pub fn cost_from_details(details: &Value) -> Option<Value> {
    let map = details.as_object()?;
    let part = |keys: &[&str]| keys.iter().find_map(|key| map.get(*key).and_then(Value::as_f64));
    let cost = compact(json!({
        "input": part(&["input"]),
        "output": part(&["output"]),
        "cache_read": part(&["cache_read_input_tokens", "input_cache_read", "input_cached_tokens"]),
        "cache_write": part(&["cache_creation_input_tokens", "input_cache_creation"]),
        "total": part(&["total"]),
    }));
    (cost.as_object().is_some_and(|c| !c.is_empty())).then_some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn langfuse_usage_and_cost_details_in_every_spelling() {
        assert_eq!(
            usage_from_details(&json!({"input": 10, "output": 20, "total": 30})).unwrap()["output_tokens"],
            20
        );
        let openai = json!({"prompt_tokens": 100, "completion_tokens": 7,
                            "prompt_tokens_details": {"cached_tokens": 60}});
        let usage = usage_from_details(&openai).unwrap();
        assert_eq!(
            (
                usage["input_tokens"].as_u64(),
                usage["cache_read_input_tokens"].as_u64()
            ),
            (Some(100), Some(60))
        );
        assert_eq!(usage_from_details(&json!({"foo": 1})), None);
        let cost = cost_from_details(&json!({"input": 0.1, "total": 0.3})).unwrap();
        assert_eq!(cost, json!({"input": 0.1, "total": 0.3}));
        assert_eq!(cost_from_details(&json!({})), None);
    }

    #[test]
    fn content_ids_are_stable_and_unambiguous() {
        assert_eq!(content_id(&[b"a", b"bc"]), content_id(&[b"a", b"bc"]));
        assert_ne!(content_id(&[b"a", b"bc"]), content_id(&[b"ab", b"c"]));
    }
}
