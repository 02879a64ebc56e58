//! What an LLM judge is (an `llm_judge` evaluator's `config`), the prompt it renders for a
//! target, the answer schema it asks the model to fill, and how the answer becomes a score.
//!
//! ```json
//! {
//!   "connection": "openai",                 // a model connection's name in the project
//!   "model": "gpt-4o-mini",                 // else the connection's config.model
//!   "prompt": "Is {{output}} a helpful answer to {{input}}?",
//!   "variables": {"question": {"source": "input", "path": "$.messages[0].content"}},
//!   "output": {"type": "numeric", "min": 0, "max": 1},  // or boolean, or categorical + categories
//!   "score_name": "helpfulness",            // else the evaluator's name
//!   "target": "observation",               // or trace, session, experiment
//!   "filter": {"type": ["generation"], "name": ["chat"], "model": ["gpt-4o"]},
//!   "quiet_seconds": 600,                   // trace, session, experiment: judged once this quiet
//!   "sampling": 0.25,                       // share of targets judged, chosen by a hash of the id
//!   "daily_budget_usd": 5.0,                // no call once the day's spend reaches it
//!   "calls_per_minute": 60,
//!   "max_attempts": 4                       // tries of one target before it is failed
//! }
//! ```
//!
//! A `{{name}}` with no variable of that name is the target field of that name (`input`,
//! `output`, `metadata`, `name`, `model`, `expected_output`, `tool_calls`, `conversation`; see
//! [`Target::sources`]). Objects render as JSON, absent
//! values as nothing, and each value is cut at [`MAX_VARIABLE_CHARS`] so one huge output cannot
//! make a judgment cost a fortune.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The longest text a variable puts into a prompt.
pub const MAX_VARIABLE_CHARS: usize = 20_000;
/// The longest template.
const MAX_TEMPLATE_CHARS: usize = 50_000;

#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    Numeric { min: Option<f64>, max: Option<f64> },
    Boolean,
    Categorical { categories: Vec<String> },
}

/// What a judge judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Each observation, as it arrives.
    Observation,
    /// Each whole trace, once no part of it has arrived for `quiet_seconds`.
    Trace,
    /// Each session (its traces in order), once quiet.
    Session,
    /// Each trace of an experiment run, against the dataset item it ran, once quiet.
    Experiment,
}

impl Target {
    pub const NAMES: &[&str] = &["observation", "trace", "session", "experiment"];

    pub fn parse(name: &str) -> Option<Target> {
        match name {
            "observation" => Some(Target::Observation),
            "trace" => Some(Target::Trace),
            "session" => Some(Target::Session),
            "experiment" => Some(Target::Experiment),
            _ => None,
        }
    }

    /// The ledger's `target_kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Target::Observation => "observation",
            Target::Trace => "trace",
            Target::Session => "session",
            Target::Experiment => "run_item",
        }
    }

    /// The ledger's `target_kind`, read back.
    pub fn of_kind(kind: &str) -> Option<Target> {
        match kind {
            "run_item" => Some(Target::Experiment),
            "experiment" => None,
            other => Target::parse(other),
        }
    }

    /// The fields its prompts may name.
    pub fn sources(self) -> &'static [&'static str] {
        match self {
            Target::Observation => &["input", "output", "metadata", "name", "model", "expected_output"],
            Target::Trace | Target::Experiment => &[
                "input",
                "output",
                "metadata",
                "name",
                "expected_output",
                "tool_calls",
            ],
            Target::Session => &[
                "input",
                "output",
                "metadata",
                "name",
                "tool_calls",
                "conversation",
            ],
        }
    }

    /// The fields its filter may name.
    pub fn filter_fields(self) -> &'static [&'static str] {
        match self {
            Target::Observation => &["type", "name", "model"],
            Target::Trace | Target::Experiment => &["name", "environment", "tags", "user_id"],
            Target::Session => &["environment", "tags", "user_id"],
        }
    }

    /// How long a whole target must be quiet before it is judged, unless the config says.
    pub fn default_quiet_seconds(self) -> u32 {
        match self {
            Target::Observation => 0,
            Target::Trace | Target::Experiment => 60,
            Target::Session => 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub source: String,
    /// A JSONPath-like selector (`$.a.b[0]`) into the source's JSON.
    pub path: Option<String>,
}

/// An `llm_judge` evaluator's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    pub connection: String,
    pub model: Option<String>,
    pub prompt: String,
    pub variables: BTreeMap<String, Variable>,
    pub output: OutputKind,
    pub score_name: Option<String>,
    pub target: Target,
    /// Field → accepted values ([`Target::filter_fields`]).
    pub filter: BTreeMap<String, Vec<String>>,
    /// For whole targets: seconds without anything new before the target is judged.
    pub quiet_seconds: u32,
    pub sampling: f64,
    pub daily_budget_usd: Option<f64>,
    pub calls_per_minute: Option<u32>,
    pub max_attempts: u32,
}

/// Why a judge's config is unusable: the key at fault and what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config.{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// A judge to start from: `"template": NAME` in a config fills the prompt, output, score name
/// and filter it leaves out.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BuiltIn {
    pub name: &'static str,
    pub description: &'static str,
    /// The config keys it fills.
    pub config: Value,
}

/// The built-in judges.
pub fn built_in() -> Vec<BuiltIn> {
    vec![
        BuiltIn {
            name: "helpfulness",
            description: "How well the output answers the input, 0 to 1.",
            config: json!({
                "prompt": "You are grading an AI assistant's answer.\n\nRequest:\n{{input}}\n\nAnswer:\n{{output}}\n\n\
                    Score how helpful the answer is for this request, from 0 (useless, wrong or off-topic) to 1 \
                    (complete, correct and directly usable). Explain briefly first.",
                "output": {"type": "numeric", "min": 0, "max": 1},
                "score_name": "helpfulness",
                "filter": {"type": ["generation"]},
            }),
        },
        BuiltIn {
            name: "correctness",
            description: "Whether the output agrees with the dataset item's expected output, 0 to 1.",
            config: json!({
                "prompt": "Compare an AI system's output with the expected output for the same input.\n\n\
                    Input:\n{{input}}\n\nExpected output:\n{{expected_output}}\n\nActual output:\n{{output}}\n\n\
                    Score 1 if the actual output says the same as the expected output (wording may differ), 0 if it \
                    contradicts or misses it, in between for partly right. Explain briefly first.",
                "output": {"type": "numeric", "min": 0, "max": 1},
                "score_name": "correctness",
            }),
        },
        BuiltIn {
            name: "hallucination",
            description: "Whether the output states things the input (its context) does not support: true is a hallucination.",
            config: json!({
                "prompt": "The context below is everything the AI system was given.\n\nContext:\n{{input}}\n\n\
                    Output:\n{{output}}\n\nDoes the output state facts that the context does not support? \
                    Answer true if it does (a hallucination), false if every claim is supported. Explain briefly first.",
                "output": {"type": "boolean"},
                "score_name": "hallucination",
                "filter": {"type": ["generation"]},
            }),
        },
        BuiltIn {
            name: "tool_use",
            description: "For coding agents: whether a tool call was the right step for the request.",
            config: json!({
                "prompt": "A coding agent made this tool call.\n\nTool: {{name}}\nArguments:\n{{input}}\n\n\
                    Result:\n{{output}}\n\nWas this call an appropriate step (the right tool, sensible arguments, \
                    needed at all)? Answer appropriate, unnecessary, wrong_tool or harmful. Explain briefly first.",
                "output": {"type": "categorical", "categories": ["appropriate", "unnecessary", "wrong_tool", "harmful"]},
                "score_name": "tool_use",
                "filter": {"type": ["tool", "tool_call"]},
            }),
        },
    ]
}

impl JudgeConfig {
    pub fn parse(config: &Value) -> Result<JudgeConfig, ConfigError> {
        let given = config
            .as_object()
            .ok_or_else(|| error("", "must be a JSON object"))?;
        // A built-in judge fills what the config leaves out.
        let mut object = given.clone();
        if let Some(name) = given.get("template").filter(|v| !v.is_null()) {
            let templates = built_in();
            let template = templates
                .iter()
                .find(|t| Some(t.name) == name.as_str())
                .ok_or_else(|| {
                    let names: Vec<&str> = templates.iter().map(|t| t.name).collect();
                    error(
                        "template",
                        format!("{name} is not a built-in judge; they are {}", names.join(", ")),
                    )
                })?;
            let whole = given
                .get("target")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "observation");
            for (key, value) in template.config.as_object().expect("a template is an object") {
                // A template's filter picks observations; a whole target has other fields.
                if whole && key == "filter" {
                    continue;
                }
                object.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        let object = &object;
        let known = [
            "template",
            "connection",
            "model",
            "prompt",
            "variables",
            "output",
            "score_name",
            "target",
            "filter",
            "quiet_seconds",
            "sampling",
            "daily_budget_usd",
            "calls_per_minute",
            "max_attempts",
        ];
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(error(
                unknown,
                format!("unknown key; keys are {}", known.join(", ")),
            ));
        }
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(error(key, "must be a non-empty string")),
            }
        };
        let connection = text("connection")?
            .ok_or_else(|| error("connection", "name the model connection the judge calls"))?;
        let prompt = text("prompt")?.ok_or_else(|| {
            error(
                "prompt",
                "the judge's instructions, with {{input}}, {{output}} or your own {{variables}}",
            )
        })?;
        if prompt.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(error(
                "prompt",
                format!("at most {MAX_TEMPLATE_CHARS} characters"),
            ));
        }
        let target = match object.get("target") {
            None | Some(Value::Null) => Target::Observation,
            Some(value) => value
                .as_str()
                .and_then(Target::parse)
                .ok_or_else(|| error("target", format!("one of {}", Target::NAMES.join(", "))))?,
        };
        let sources = target.sources();
        let mut variables = BTreeMap::new();
        if let Some(mapping) = object.get("variables").filter(|v| !v.is_null()) {
            let mapping = mapping.as_object().ok_or_else(|| {
                error(
                    "variables",
                    "an object: {\"name\": {\"source\": ..., \"path\": ...}}",
                )
            })?;
            for (name, spec) in mapping {
                let key = format!("variables.{name}");
                let source = spec["source"]
                    .as_str()
                    .filter(|s| sources.contains(s))
                    .ok_or_else(|| {
                        error(
                            &key,
                            format!(
                                "source must be one of {} (for a {target:?} target)",
                                sources.join(", ")
                            ),
                        )
                    })?;
                let path = match &spec["path"] {
                    Value::Null => None,
                    Value::String(path) if path.starts_with('$') => {
                        parse_path(path).map_err(|m| error(&key, m))?;
                        Some(path.clone())
                    }
                    _ => return Err(error(&key, "path must be a string starting with $ ($.a.b[0])")),
                };
                variables.insert(
                    name.clone(),
                    Variable {
                        source: source.into(),
                        path,
                    },
                );
            }
        }
        for name in placeholders(&prompt) {
            if !variables.contains_key(&name) && !sources.contains(&name.as_str()) {
                return Err(error(
                    "prompt",
                    format!(
                        "{{{{{name}}}}} is neither a variable nor a field of a {} target ({}); map it in config.variables",
                        target.kind(),
                        sources.join(", ")
                    ),
                ));
            }
        }
        let output = &object
            .get("output")
            .cloned()
            .unwrap_or(json!({"type": "numeric"}));
        let number = |key: &str| -> Result<Option<f64>, ConfigError> {
            match &output[key] {
                Value::Null => Ok(None),
                value => value
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| error(&format!("output.{key}"), "must be a number")),
            }
        };
        let output = match output["type"].as_str() {
            Some("numeric") => {
                let (min, max) = (number("min")?, number("max")?);
                if let (Some(min), Some(max)) = (min, max)
                    && min >= max
                {
                    return Err(error("output", "min must be below max"));
                }
                OutputKind::Numeric { min, max }
            }
            Some("boolean") => OutputKind::Boolean,
            Some("categorical") => {
                let categories: Vec<String> = output["categories"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let distinct: std::collections::BTreeSet<&String> = categories.iter().collect();
                if categories.len() < 2 || distinct.len() != categories.len() || categories.len() > 50 {
                    return Err(error("output.categories", "2 to 50 distinct strings"));
                }
                OutputKind::Categorical { categories }
            }
            _ => return Err(error("output.type", "numeric, boolean or categorical")),
        };
        let mut filter = BTreeMap::new();
        if let Some(given) = object.get("filter").filter(|v| !v.is_null()) {
            let given = given
                .as_object()
                .ok_or_else(|| error("filter", "an object of field → list of values"))?;
            for (field, values) in given {
                let fields = target.filter_fields();
                if !fields.contains(&field.as_str()) {
                    return Err(error(
                        &format!("filter.{field}"),
                        format!("a {} target is filtered by {}", target.kind(), fields.join(", ")),
                    ));
                }
                let values: Vec<String> = values
                    .as_array()
                    .and_then(|v| v.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                    .ok_or_else(|| error(&format!("filter.{field}"), "a list of strings"))?;
                filter.insert(field.clone(), values);
            }
        }
        let sampling = match object.get("sampling") {
            None | Some(Value::Null) => 1.0,
            Some(value) => value
                .as_f64()
                .filter(|s| (0.0..=1.0).contains(s) && *s > 0.0)
                .ok_or_else(|| error("sampling", "a share above 0 and at most 1"))?,
        };
        let daily_budget_usd = match object.get("daily_budget_usd") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_f64()
                    .filter(|b| *b >= 0.0 && b.is_finite())
                    .ok_or_else(|| error("daily_budget_usd", "US dollars, 0 or more"))?,
            ),
        };
        let whole = |key: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<u32>, ConfigError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .filter(|n| range.contains(n))
                    .map(|n| Some(n as u32))
                    .ok_or_else(|| {
                        error(
                            key,
                            format!("a whole number from {} to {}", range.start(), range.end()),
                        )
                    }),
            }
        };
        Ok(JudgeConfig {
            connection,
            model: text("model")?,
            prompt,
            variables,
            output,
            score_name: text("score_name")?,
            target,
            filter,
            quiet_seconds: match target {
                Target::Observation if object.get("quiet_seconds").is_some_and(|v| !v.is_null()) => {
                    return Err(error(
                        "quiet_seconds",
                        "an observation is judged as it arrives; quiet_seconds is for trace, session and experiment targets",
                    ));
                }
                _ => whole("quiet_seconds", 0..=7 * 86_400)?.unwrap_or(target.default_quiet_seconds()),
            },
            sampling,
            daily_budget_usd,
            calls_per_minute: whole("calls_per_minute", 1..=10_000)?,
            max_attempts: whole("max_attempts", 1..=10)?.unwrap_or(4),
        })
    }

    /// The JSON schema the model's answer must fill: `{reasoning, score}`, strict.
    pub fn answer_schema(&self) -> Value {
        let score = match &self.output {
            OutputKind::Numeric { min, max } => {
                let range = match (min, max) {
                    (Some(min), Some(max)) => format!(" from {min} to {max}"),
                    (Some(min), None) => format!(" of at least {min}"),
                    (None, Some(max)) => format!(" of at most {max}"),
                    (None, None) => String::new(),
                };
                json!({"type": "number", "description": format!("The score{range}.")})
            }
            OutputKind::Boolean => json!({"type": "boolean", "description": "The verdict."}),
            OutputKind::Categorical { categories } => {
                json!({"type": "string", "enum": categories, "description": "The category that fits best."})
            }
        };
        json!({
            "type": "object",
            "properties": {
                "reasoning": {"type": "string", "description": "Why, briefly, before the score."},
                "score": score,
            },
            "required": ["reasoning", "score"],
            "additionalProperties": false,
        })
    }

    /// The score an answer gives, and its reasoning; `Err` names what is wrong with it.
    pub fn read_answer(&self, answer: &Value) -> Result<(ScoreOf, String), String> {
        let reasoning = answer["reasoning"]
            .as_str()
            .ok_or("the answer has no reasoning string")?
            .to_owned();
        let score = &answer["score"];
        let value = match &self.output {
            OutputKind::Numeric { min, max } => {
                let value = score.as_f64().ok_or("the score is not a number")?;
                if min.is_some_and(|min| value < min) || max.is_some_and(|max| value > max) {
                    return Err(format!("the score {value} is outside {min:?}..{max:?}"));
                }
                ScoreOf::Numeric(value)
            }
            OutputKind::Boolean => ScoreOf::Boolean(score.as_bool().ok_or("the score is not a boolean")?),
            OutputKind::Categorical { categories } => {
                let category = score.as_str().ok_or("the score is not a category")?;
                if !categories.iter().any(|c| c == category) {
                    return Err(format!("the score {category:?} is not one of the categories"));
                }
                ScoreOf::Categorical(category.to_owned())
            }
        };
        Ok((value, reasoning))
    }

    /// Whether the target of `id` is in the sample: the top 53 bits of SHA-256(evaluator, id),
    /// as a share, below the rate. The same target is in or out on every run and scheduler.
    pub fn sampled(&self, evaluator: &str, id: &str) -> bool {
        if self.sampling >= 1.0 {
            return true;
        }
        let digest = Sha256::digest(format!("{evaluator}:{id}").as_bytes());
        let top = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 11;
        (top as f64 / (1u64 << 53) as f64) < self.sampling
    }

    /// Whether a target with these field values passes the filter: every listed field has a
    /// value among the listed ones (a field with several values, such as `tags`, any of them).
    pub fn accepts(&self, field: impl Fn(&str) -> Vec<String>) -> bool {
        self.filter
            .iter()
            .all(|(name, values)| field(name).iter().any(|value| values.contains(value)))
    }

    /// The prompt for a target whose fields `field` returns (as JSON values).
    pub fn render(&self, field: impl Fn(&str) -> Option<Value>) -> String {
        let mut out = String::with_capacity(self.prompt.len());
        let mut rest = self.prompt.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = after[..end].trim();
            let value = match self.variables.get(name) {
                Some(variable) => field(&variable.source).and_then(|source| match &variable.path {
                    Some(path) => select(&source, path),
                    None => Some(source),
                }),
                None => field(name),
            };
            out.push_str(&clip(&value.map(|v| text_of(&v)).unwrap_or_default()));
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// A judged value, as the score stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreOf {
    Numeric(f64),
    Boolean(bool),
    Categorical(String),
}

impl ScoreOf {
    pub fn as_json(&self) -> Value {
        match self {
            ScoreOf::Numeric(v) => json!(v),
            ScoreOf::Boolean(v) => json!(v),
            ScoreOf::Categorical(v) => json!(v),
        }
    }

    /// The number the ledger keeps (1/0 for a verdict; a category has none).
    pub fn number(&self) -> Option<f64> {
        match self {
            ScoreOf::Numeric(v) => Some(*v),
            ScoreOf::Boolean(v) => Some(f64::from(u8::from(*v))),
            ScoreOf::Categorical(_) => None,
        }
    }
}

/// The `{{names}}` a template uses.
fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    names
}

/// A value as prompt text: a string as is, anything else as compact JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_VARIABLE_CHARS) {
        Some((at, _)) => format!("{}… [cut at {MAX_VARIABLE_CHARS} characters]", &text[..at]),
        None => text.to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `$.a.b[0]["c d"]` → steps; a small, safe subset of JSONPath (no filters, no wildcards).
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('$').ok_or("a path starts with $")?;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!("{path}: an empty key"));
            }
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| format!("{path}: [ without ]"))?;
            let inside = &after[..end];
            let step = match inside.parse::<usize>() {
                Ok(index) => Step::Index(index),
                Err(_) => Step::Key(
                    inside
                        .strip_prefix('"')
                        .and_then(|s| s.strip_suffix('"'))
                        .or_else(|| inside.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                        .ok_or_else(|| format!("{path}: [{inside}] is neither an index nor a quoted key"))?
                        .to_owned(),
                ),
            };
            steps.push(step);
            rest = &after[end + 1..];
        } else {
            return Err(format!("{path}: expected . or [ at {rest:?}"));
        }
    }
    Ok(steps)
}

/// The value at `path` in `value` (JSON text holding JSON is read through).
fn select(value: &Value, path: &str) -> Option<Value> {
    let steps = parse_path(path).ok()?;
    let mut current = decoded(value);
    for step in steps {
        current = match (step, &current) {
            (Step::Key(key), Value::Object(map)) => decoded(map.get(&key)?),
            (Step::Index(index), Value::Array(items)) => decoded(items.get(index)?),
            _ => return None,
        };
    }
    Some(current)
}

fn decoded(value: &Value) -> Value {
    match value {
        Value::String(text) if text.starts_with(['{', '[']) => {
            serde_json::from_str(text).unwrap_or_else(|_| value.clone())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(config: Value) -> JudgeConfig {
        JudgeConfig::parse(&config).unwrap()
    }

    #[test]
    fn configs_are_checked_key_by_key() {
        let good = json!({"connection": "c", "prompt": "Rate {{output}}"});
        let parsed = judge(good);
        assert_eq!(parsed.output, OutputKind::Numeric { min: None, max: None });
        assert_eq!(parsed.target, Target::Observation);
        assert_eq!(parsed.max_attempts, 4);
        for (config, key) in [
            (json!({"prompt": "x"}), "connection"),
            (json!({"connection": "c"}), "prompt"),
            (json!({"connection": "c", "prompt": "{{answer}}"}), "prompt"),
            (
                json!({"connection": "c", "prompt": "x", "output": {"type": "stars"}}),
                "output.type",
            ),
            (
                json!({"connection": "c", "prompt": "x", "output": {"type": "categorical", "categories": ["a"]}}),
                "output.categories",
            ),
            (
                json!({"connection": "c", "prompt": "x", "sampling": 0}),
                "sampling",
            ),
            (
                json!({"connection": "c", "prompt": "x", "filter": {"user": ["u"]}}),
                "filter.user",
            ),
            (
                json!({"connection": "c", "prompt": "x", "temperature": 1}),
                "temperature",
            ),
            (
                json!({"connection": "c", "prompt": "{{q}}", "variables": {"q": {"source": "input", "path": "a.b"}}}),
                "variables.q",
            ),
        ] {
            assert_eq!(JudgeConfig::parse(&config).unwrap_err().key, key, "{config}");
        }
    }

    #[test]
    fn prompts_render_fields_and_mapped_paths() {
        let judge = judge(json!({
            "connection": "c",
            "prompt": "Q: {{question}}\nA: {{output}}\nMeta: {{metadata}}\nNone: [{{expected_output}}] {{ unclosed",
            "variables": {"question": {"source": "input", "path": "$.messages[0][\"content\"]"}},
        }));
        let input = json!({"messages": [{"role": "user", "content": "What is 2+2?"}]});
        let rendered = judge.render(|field| match field {
            "input" => Some(Value::String(input.to_string())),
            "output" => Some(json!("4")),
            "metadata" => Some(json!({"k": "v"})),
            _ => None,
        });
        assert_eq!(
            rendered,
            "Q: What is 2+2?\nA: 4\nMeta: {\"k\":\"v\"}\nNone: [] {{ unclosed"
        );
        let long = "x".repeat(MAX_VARIABLE_CHARS + 10);
        let clipped = judge.render(|f| (f == "output").then(|| json!(long)));
        assert!(clipped.contains("[cut at 20000 characters]"));
    }

    #[test]
    fn answers_are_checked_against_the_output_kind() {
        let numeric = judge(
            json!({"connection": "c", "prompt": "x", "output": {"type": "numeric", "min": 0, "max": 1}}),
        );
        assert_eq!(
            numeric
                .read_answer(&json!({"reasoning": "ok", "score": 0.5}))
                .unwrap(),
            (ScoreOf::Numeric(0.5), "ok".into())
        );
        assert!(
            numeric
                .read_answer(&json!({"reasoning": "ok", "score": 3}))
                .is_err()
        );
        assert!(numeric.read_answer(&json!({"score": 0.5})).is_err());
        let categorical = judge(
            json!({"connection": "c", "prompt": "x", "output": {"type": "categorical", "categories": ["good", "bad"]}}),
        );
        assert!(
            categorical
                .read_answer(&json!({"reasoning": "r", "score": "meh"}))
                .is_err()
        );
        assert_eq!(
            categorical.answer_schema()["properties"]["score"]["enum"],
            json!(["good", "bad"])
        );
        let boolean = judge(json!({"connection": "c", "prompt": "x", "output": {"type": "boolean"}}));
        let (value, _) = boolean
            .read_answer(&json!({"reasoning": "r", "score": true}))
            .unwrap();
        assert_eq!(value.number(), Some(1.0));
    }

    #[test]
    fn every_built_in_judge_runs_from_its_name_and_may_be_changed() {
        for built_in in built_in() {
            let parsed = judge(json!({"connection": "c", "template": built_in.name}));
            assert_eq!(parsed.score_name.as_deref(), Some(built_in.name));
            assert!(
                parsed.read_answer(&parsed.answer_schema()).is_err(),
                "a schema is no answer"
            );
        }
        let changed =
            judge(json!({"connection": "c", "template": "helpfulness", "filter": {"type": ["span"]}}));
        assert_eq!(changed.filter["type"], ["span"]);
        let unknown = JudgeConfig::parse(&json!({"connection": "c", "template": "vibes"})).unwrap_err();
        assert!(unknown.message.contains("helpfulness, correctness"), "{unknown}");
    }

    #[test]
    fn whole_targets_have_their_own_fields_filters_and_quiet_time() {
        let session = judge(json!({
            "connection": "c", "target": "session", "prompt": "Judge {{conversation}}",
            "filter": {"environment": ["production"], "tags": ["agent"]},
        }));
        assert_eq!(session.target, Target::Session);
        assert_eq!(session.quiet_seconds, 600);
        assert!(session.accepts(|f| match f {
            "environment" => vec!["production".into()],
            "tags" => vec!["x".into(), "agent".into()],
            _ => vec![],
        }));
        assert!(!session.accepts(|f| match f {
            "environment" => vec!["production".into()],
            _ => vec![],
        }));
        // The correctness template on experiment runs: its prompt, not an observation filter.
        let experiment = judge(
            json!({"connection": "c", "template": "correctness", "target": "experiment", "quiet_seconds": 5}),
        );
        assert_eq!(
            (experiment.target, experiment.quiet_seconds),
            (Target::Experiment, 5)
        );
        let trace = judge(json!({"connection": "c", "template": "helpfulness", "target": "trace"}));
        assert!(trace.filter.is_empty(), "{:?}", trace.filter);
        for (config, key) in [
            (
                json!({"connection": "c", "target": "trace", "prompt": "{{conversation}}"}),
                "prompt",
            ),
            (
                json!({"connection": "c", "target": "session", "prompt": "{{model}}"}),
                "prompt",
            ),
            (
                json!({"connection": "c", "target": "trace", "prompt": "x", "filter": {"type": ["span"]}}),
                "filter.type",
            ),
            (
                json!({"connection": "c", "prompt": "x", "quiet_seconds": 5}),
                "quiet_seconds",
            ),
            (
                json!({"connection": "c", "target": "run", "prompt": "x"}),
                "target",
            ),
            (
                json!({"connection": "c", "target": "trace", "prompt": "x", "quiet_seconds": -1}),
                "quiet_seconds",
            ),
        ] {
            assert_eq!(JudgeConfig::parse(&config).unwrap_err().key, key, "{config}");
        }
        for target in [
            Target::Observation,
            Target::Trace,
            Target::Session,
            Target::Experiment,
        ] {
            assert_eq!(Target::of_kind(target.kind()), Some(target));
        }
    }

    #[test]
    fn sampling_is_stable_and_near_the_rate() {
        let judge = judge(json!({"connection": "c", "prompt": "x", "sampling": 0.25}));
        let picked = (0..10_000).filter(|i| judge.sampled("e", &i.to_string())).count();
        assert!((2_250..2_750).contains(&picked), "{picked}");
        assert_eq!(judge.sampled("e", "42"), judge.sampled("e", "42"));
    }
}
