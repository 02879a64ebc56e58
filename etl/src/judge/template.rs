//! What an LLM judge is (an `llm_judge` evaluator's `config`), the prompt it renders for a
//! target, the answer schema it asks the model to fill, and how the answer becomes a score.
//!
//! ```json
//! {
//!   "connection": "openai",                 // a model connection's name in the project
//!   "model": "gpt-4o-mini",                 // else the connection's config.model
//!   "prompt": "Is {{output}} a helpful answer to {{input}}?",
//!   "system": "You grade answers.",          // optional, sent as the system message
//!   "variables": {"question": {"source": "input", "path": "$.messages[0].content"}},
//!   "output": {"type": "numeric", "min": 0, "max": 1},  // or boolean, or categorical + categories
//!   "score_name": "helpfulness",            // else the evaluator's name
//!   "target": "observation",               // or trace, session, experiment
//!   "filter": {"type": ["generation"], "name": ["chat"], "model": ["gpt-4o"]},
//!   "conditions": [{"type": "stringOptions", "column": "environment", "operator": "any of",
//!                   "value": ["production"]}],  // Langfuse's rule filters, observations only
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

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};

/// The longest text a variable puts into a prompt.
pub const MAX_VARIABLE_CHARS: usize = 20_000;
/// The longest template.
pub const MAX_TEMPLATE_CHARS: usize = 50_000;

#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    Numeric { min: Option<f64>, max: Option<f64> },
    Boolean,
    Categorical { categories: Vec<String> },
}

/// The longest JSONPath a variable may use.
pub const MAX_PATH_CHARS: usize = 256;

/// A variable's JSONPath, checked: at most [`MAX_PATH_CHARS`], and without filter expressions
/// (`?`) or descendant segments (`..`), whose parsing and evaluation cost grows without bound
/// (a crafted filter nests until the parser's stack runs out). Keys, indexes, slices and `*`
/// select what a judge needs.
pub fn check_path(path: &str) -> Result<JsonPath, String> {
    if !path.starts_with('$') {
        return Err("a JSONPath starts with $ ($.a.b[0])".into());
    }
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(format!("at most {MAX_PATH_CHARS} characters"));
    }
    // Outside quoted keys, `?` starts a filter and `..` a descendant segment.
    let mut quote: Option<char> = None;
    let mut previous = '\0';
    for c in path.chars() {
        match quote {
            Some(q) if c == q && previous != '\\' => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                return Err("filter expressions (?) are not supported; select by key, index or *".into());
            }
            None if c == '.' && previous == '.' => {
                return Err("descendant segments (..) are not supported; name the path's steps".into());
            }
            None => {}
        }
        previous = c;
    }
    JsonPath::parse(path).map_err(|e| format!("{path:?} is not a JSONPath: {e}"))
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

    /// Whose fields its prompts read, as a ledger kind: an experiment run's are its trace's.
    pub fn fields_kind(self) -> &'static str {
        match self {
            Target::Experiment => Target::Trace.kind(),
            other => other.kind(),
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
            Target::Observation => &[
                "input",
                "output",
                "metadata",
                "name",
                "model",
                "expected_output",
                "experiment_item_metadata",
                "tool_calls",
            ],
            Target::Trace | Target::Experiment => &[
                "input",
                "output",
                "metadata",
                "name",
                "expected_output",
                "experiment_item_metadata",
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
    /// A JSONPath (RFC 9535: `$.a.b[0]`, `$[*].name`) into the source's JSON.
    pub path: Option<String>,
}

/// How a [`Condition`] compares, by Langfuse's filter `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    String,
    StringOptions,
    ArrayOptions,
    StringObject,
    Boolean,
    Null,
}

/// One of Langfuse's evaluation-rule filters (`{type, column, operator, value, key}`), kept as
/// given and checked: every condition must hold for an observation to be judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: String,
    pub kind: ConditionKind,
    pub operator: String,
    pub value: Value,
    pub key: Option<String>,
}

/// The columns a condition may name, with the one filter type each takes. An observation's
/// `type` and `level` compare without case (Langfuse writes `GENERATION`, `ERROR`).
pub const CONDITION_COLUMNS: &[(&str, ConditionKind)] = &[
    ("type", ConditionKind::StringOptions),
    ("name", ConditionKind::StringOptions),
    ("environment", ConditionKind::StringOptions),
    ("level", ConditionKind::StringOptions),
    ("traceName", ConditionKind::StringOptions),
    ("userId", ConditionKind::String),
    ("sessionId", ConditionKind::String),
    ("tags", ConditionKind::ArrayOptions),
    ("metadata", ConditionKind::StringObject),
    ("isRootObservation", ConditionKind::Boolean),
    ("parentObservationId", ConditionKind::Null),
    ("experimentId", ConditionKind::StringOptions),
    ("datasetId", ConditionKind::StringOptions),
    ("isExperimentItemRootSpan", ConditionKind::Boolean),
];

impl ConditionKind {
    fn parse(name: &str) -> Option<ConditionKind> {
        Some(match name {
            "string" => ConditionKind::String,
            "stringOptions" => ConditionKind::StringOptions,
            "arrayOptions" => ConditionKind::ArrayOptions,
            "stringObject" => ConditionKind::StringObject,
            "boolean" => ConditionKind::Boolean,
            "null" => ConditionKind::Null,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ConditionKind::String => "string",
            ConditionKind::StringOptions => "stringOptions",
            ConditionKind::ArrayOptions => "arrayOptions",
            ConditionKind::StringObject => "stringObject",
            ConditionKind::Boolean => "boolean",
            ConditionKind::Null => "null",
        }
    }

    fn operators(self) -> &'static [&'static str] {
        match self {
            ConditionKind::String => &["=", "contains", "does not contain", "starts with", "ends with"],
            ConditionKind::StringOptions => &["any of", "none of"],
            ConditionKind::ArrayOptions => &["any of", "none of", "all of"],
            ConditionKind::StringObject => &[
                "=",
                "contains",
                "does not contain",
                "starts with",
                "ends with",
                "is set",
                "is not set",
            ],
            ConditionKind::Boolean => &["=", "<>"],
            ConditionKind::Null => &["is null", "is not null"],
        }
    }
}

impl Condition {
    /// The fact a condition reads: its column, or `metadata.KEY`.
    pub fn fact(&self) -> String {
        match &self.key {
            Some(key) if self.kind == ConditionKind::StringObject => format!("metadata.{key}"),
            _ => self.column.clone(),
        }
    }

    /// Whether it holds for the fact's values (none: absent or null; a boolean as `true` or
    /// `false`).
    pub fn holds(&self, values: &[String]) -> bool {
        let folded = matches!(self.column.as_str(), "type" | "level");
        let same = |a: &str, b: &str| if folded { a.eq_ignore_ascii_case(b) } else { a == b };
        let listed = || -> Vec<&str> {
            self.value
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        let text = self.value.as_str().unwrap_or_default();
        let first = values.first().map(String::as_str);
        let compare = |value: &str| match self.operator.as_str() {
            "=" => value == text,
            "contains" => value.contains(text),
            "does not contain" => !value.contains(text),
            "starts with" => value.starts_with(text),
            "ends with" => value.ends_with(text),
            _ => false,
        };
        match self.kind {
            ConditionKind::String => compare(first.unwrap_or_default()),
            ConditionKind::StringOptions | ConditionKind::ArrayOptions => {
                let wanted = listed();
                let matches = |w: &&str| values.iter().any(|v| same(v, w));
                match self.operator.as_str() {
                    "any of" => wanted.iter().any(matches),
                    "none of" => !wanted.iter().any(matches),
                    "all of" => wanted.iter().all(matches),
                    _ => false,
                }
            }
            ConditionKind::StringObject => match (self.operator.as_str(), first) {
                ("is set", found) => found.is_some(),
                ("is not set", found) => found.is_none(),
                // An empty value for these is Langfuse's "is set".
                ("contains" | "starts with" | "ends with", found) if text.is_empty() => found.is_some(),
                ("does not contain", None) => true,
                (_, Some(value)) => compare(value),
                (_, None) => false,
            },
            ConditionKind::Boolean => {
                let is = first == Some("true");
                let wanted = self.value.as_bool().unwrap_or(false);
                match self.operator.as_str() {
                    "=" => is == wanted,
                    _ => is != wanted,
                }
            }
            ConditionKind::Null => match self.operator.as_str() {
                "is null" => first.is_none(),
                _ => first.is_some(),
            },
        }
    }
}

/// Conditions one judge may have, values one condition may list, and characters one value may
/// hold: every observation is checked against every condition of every judge.
pub const MAX_CONDITIONS: usize = 50;
const MAX_CONDITION_VALUES: usize = 100;
const MAX_CONDITION_CHARS: usize = 500;

/// Langfuse's filter list, checked condition by condition.
pub fn parse_conditions(given: &Value) -> Result<Vec<Condition>, ConfigError> {
    let list = given
        .as_array()
        .ok_or_else(|| error("conditions", "a list of {type, column, operator, value} filters"))?;
    if list.len() > MAX_CONDITIONS {
        return Err(error("conditions", format!("at most {MAX_CONDITIONS} filters")));
    }
    let mut conditions = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("conditions[{i}]");
        let column = item["column"]
            .as_str()
            .ok_or_else(|| error(&at, "column: the field to filter on"))?;
        let Some((_, kind)) = CONDITION_COLUMNS.iter().find(|(name, _)| *name == column) else {
            let names: Vec<&str> = CONDITION_COLUMNS.iter().map(|(name, _)| *name).collect();
            let shown: String = column.chars().take(40).collect();
            return Err(error(
                &format!("{at}.column"),
                format!("{shown:?} cannot be filtered on here; use {}", names.join(", ")),
            ));
        };
        let given_kind = item["type"].as_str().unwrap_or_default();
        if ConditionKind::parse(given_kind) != Some(*kind) {
            return Err(error(
                &format!("{at}.type"),
                format!(
                    "column {column} takes a {} filter, not {given_kind:?}",
                    kind.name()
                ),
            ));
        }
        let operator = item["operator"].as_str().unwrap_or_default();
        if !kind.operators().contains(&operator) {
            return Err(error(
                &format!("{at}.operator"),
                format!(
                    "a {} filter's operator is one of {}",
                    kind.name(),
                    kind.operators().join(", ")
                ),
            ));
        }
        let value = item.get("value").cloned().unwrap_or(Value::Null);
        let strings: Vec<&str> = match &value {
            Value::String(text) => vec![text],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if strings.len() > MAX_CONDITION_VALUES
            || strings
                .iter()
                .chain(item["key"].as_str().iter())
                .any(|s| s.chars().count() > MAX_CONDITION_CHARS)
        {
            return Err(error(
                &format!("{at}.value"),
                format!("at most {MAX_CONDITION_VALUES} values of at most {MAX_CONDITION_CHARS} characters"),
            ));
        }
        let fits = match kind {
            ConditionKind::String => value.is_string(),
            ConditionKind::StringOptions | ConditionKind::ArrayOptions => {
                value.as_array().is_some_and(|v| v.iter().all(Value::is_string))
            }
            ConditionKind::StringObject => value.is_string() || value.is_null(),
            ConditionKind::Boolean => value.is_boolean(),
            ConditionKind::Null => true,
        };
        if !fits {
            return Err(error(
                &format!("{at}.value"),
                match kind {
                    ConditionKind::StringOptions | ConditionKind::ArrayOptions => "a list of strings",
                    ConditionKind::Boolean => "true or false",
                    _ => "a string",
                },
            ));
        }
        let key = match item["key"].as_str() {
            Some(key) if !key.is_empty() => Some(key.to_owned()),
            _ if *kind == ConditionKind::StringObject => {
                return Err(error(&format!("{at}.key"), "the metadata key to filter on"));
            }
            _ => None,
        };
        conditions.push(Condition {
            column: column.to_owned(),
            kind: *kind,
            operator: operator.to_owned(),
            value,
            key,
        });
    }
    Ok(conditions)
}

/// An `llm_judge` evaluator's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    pub connection: String,
    pub model: Option<String>,
    pub prompt: String,
    /// Sent as the system message, rendered like the prompt.
    pub system: Option<String>,
    pub variables: BTreeMap<String, Variable>,
    pub output: OutputKind,
    /// How to reason and how to pick the score (`output.reasoning_instructions`,
    /// `output.score_instructions`), sent as the answer schema's descriptions.
    pub reasoning_instructions: Option<String>,
    pub score_instructions: Option<String>,
    pub score_name: Option<String>,
    pub target: Target,
    /// Field → accepted values ([`Target::filter_fields`]).
    pub filter: BTreeMap<String, Vec<String>>,
    /// Langfuse's rule filters (observation targets): every one must hold.
    pub conditions: Vec<Condition>,
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
            "system",
            "variables",
            "output",
            "score_name",
            "target",
            "filter",
            "conditions",
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
        let system = text("system")?;
        for (key, template) in [("prompt", Some(&prompt)), ("system", system.as_ref())] {
            if template.is_some_and(|t| t.chars().count() > MAX_TEMPLATE_CHARS) {
                return Err(error(key, format!("at most {MAX_TEMPLATE_CHARS} characters")));
            }
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
                                "source must be one of {} (for a {} target)",
                                sources.join(", "),
                                target.kind()
                            ),
                        )
                    })?;
                let path = match &spec["path"] {
                    Value::Null => None,
                    Value::String(path) if path.starts_with('$') => {
                        check_path(path).map_err(|m| error(&key, format!("path: {m}")))?;
                        Some(path.clone())
                    }
                    _ => return Err(error(&key, "path must be a JSONPath starting with $ ($.a.b[0])")),
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
        let used = placeholders(&prompt)
            .into_iter()
            .map(|name| ("prompt", name))
            .chain(
                system
                    .iter()
                    .flat_map(|s| placeholders(s).into_iter().map(|name| ("system", name))),
            );
        for (key, name) in used {
            if !variables.contains_key(&name) && !sources.contains(&name.as_str()) {
                return Err(error(
                    key,
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
        let instructions = |key: &str| -> Result<Option<String>, ConfigError> {
            match &output[key] {
                Value::Null => Ok(None),
                Value::String(text) if !text.trim().is_empty() => Ok(Some(text.clone())),
                _ => Err(error(&format!("output.{key}"), "a non-empty string")),
            }
        };
        let (reasoning_instructions, score_instructions) = (
            instructions("reasoning_instructions")?,
            instructions("score_instructions")?,
        );
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
        let conditions = match object.get("conditions") {
            None | Some(Value::Null) => Vec::new(),
            Some(_) if target != Target::Observation => {
                return Err(error(
                    "conditions",
                    "Langfuse's rule filters pick observations; a whole target is filtered with config.filter",
                ));
            }
            Some(given) => parse_conditions(given)?,
        };
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
            system,
            variables,
            output,
            reasoning_instructions,
            score_instructions,
            score_name: text("score_name")?,
            target,
            filter,
            conditions,
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
        let mut score = score;
        if let Some(instructions) = &self.score_instructions {
            score["description"] = json!(instructions);
        }
        let reasoning = self
            .reasoning_instructions
            .as_deref()
            .unwrap_or("Why, briefly, before the score.");
        json!({
            "type": "object",
            "properties": {
                "reasoning": {"type": "string", "description": reasoning},
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
    /// Langfuse's conditions read their columns the same way (`metadata.KEY` for a metadata
    /// key).
    pub fn accepts(&self, field: impl Fn(&str) -> Vec<String>) -> bool {
        self.filter
            .iter()
            .all(|(name, values)| field(name).iter().any(|value| values.contains(value)))
            && self
                .conditions
                .iter()
                .all(|condition| condition.holds(&field(&condition.fact())))
    }

    /// Whether its conditions read a column of the observation's trace (or its dataset).
    pub fn reads_trace(&self) -> bool {
        self.conditions.iter().any(|c| {
            matches!(
                c.column.as_str(),
                "environment"
                    | "traceName"
                    | "userId"
                    | "sessionId"
                    | "tags"
                    | "experimentId"
                    | "datasetId"
                    | "isExperimentItemRootSpan"
            )
        })
    }

    /// The prompt for a target whose fields `field` returns (as JSON values).
    pub fn render(&self, field: impl Fn(&str) -> Option<Value>) -> String {
        self.render_template(&self.prompt, field)
    }

    /// The system message, if the judge has one, rendered the same way.
    pub fn render_system(&self, field: impl Fn(&str) -> Option<Value>) -> Option<String> {
        self.system
            .as_ref()
            .map(|system| self.render_template(system, field))
    }

    fn render_template(&self, template: &str, field: impl Fn(&str) -> Option<Value>) -> String {
        // Each name is read once, however often the template uses it.
        let mut known: HashMap<&str, String> = HashMap::new();
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = after[..end].trim();
            let text = known.entry(name).or_insert_with(|| {
                let value = match self.variables.get(name) {
                    Some(variable) => field(&variable.source).and_then(|source| match &variable.path {
                        Some(path) => select(&source, path),
                        None => Some(source),
                    }),
                    None => field(name),
                };
                clip(&value.map(|v| text_of(&v)).unwrap_or_default())
            });
            out.push_str(text);
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

/// The value at `path` in `value` (JSON text holding JSON is read first): the one node it
/// selects, or a list of them when it selects several.
fn select(value: &Value, path: &str) -> Option<Value> {
    let path = check_path(path).ok()?;
    let value = decoded(value);
    let nodes = path.query(&value).all();
    match nodes.as_slice() {
        [] => None,
        [one] => Some(decoded(one)),
        many => Some(Value::Array(many.iter().map(|v| decoded(v)).collect())),
    }
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
    fn langfuse_conditions_are_checked_and_applied() {
        let judge = judge(json!({
            "connection": "c", "prompt": "x", "system": "You judge {{name}}.",
            "conditions": [
                {"type": "stringOptions", "column": "type", "operator": "any of", "value": ["GENERATION"]},
                {"type": "stringOptions", "column": "environment", "operator": "none of", "value": ["dev"]},
                {"type": "stringObject", "column": "metadata", "key": "team", "operator": "starts with", "value": "agent"},
                {"type": "arrayOptions", "column": "tags", "operator": "all of", "value": ["a", "b"]},
                {"type": "boolean", "column": "isRootObservation", "operator": "=", "value": false},
            ],
        }));
        assert!(judge.reads_trace());
        let facts = |environment: &'static str| {
            move |name: &str| -> Vec<String> {
                match name {
                    "type" => vec!["generation".into()],
                    "environment" => vec![environment.into()],
                    "metadata.team" => vec!["agents-core".into()],
                    "tags" => vec!["b".into(), "a".into(), "c".into()],
                    "isRootObservation" => vec!["false".into()],
                    _ => vec![],
                }
            }
        };
        assert!(judge.accepts(facts("production")));
        assert!(!judge.accepts(facts("dev")));
        assert_eq!(
            judge.render_system(|f| (f == "name").then(|| json!("chat"))),
            Some("You judge chat.".into())
        );
        for (condition, key) in [
            (
                json!({"type": "string", "column": "type", "operator": "=", "value": "SPAN"}),
                "conditions[0].type",
            ),
            (
                json!({"type": "number", "column": "toolCalls", "operator": ">", "value": 1}),
                "conditions[0].column",
            ),
            (
                json!({"type": "stringOptions", "column": "name", "operator": "=", "value": ["x"]}),
                "conditions[0].operator",
            ),
            (
                json!({"type": "stringObject", "column": "metadata", "operator": "=", "value": "x"}),
                "conditions[0].key",
            ),
            (
                json!({"type": "stringOptions", "column": "name", "operator": "any of", "value": "x"}),
                "conditions[0].value",
            ),
        ] {
            let config = json!({"connection": "c", "prompt": "x", "conditions": [condition]});
            assert_eq!(JudgeConfig::parse(&config).unwrap_err().key, key, "{config}");
        }
        let whole = json!({"connection": "c", "prompt": "x", "target": "trace", "conditions": []});
        assert_eq!(JudgeConfig::parse(&whole).unwrap_err().key, "conditions");
    }

    #[test]
    fn variables_take_json_paths() {
        let judge = judge(json!({
            "connection": "c", "prompt": "{{names}} / {{first}}",
            "variables": {"names": {"source": "tool_calls", "path": "$[*].name"},
                          "first": {"source": "metadata", "path": "$['a b'].c"}},
        }));
        let rendered = judge.render(|field| match field {
            "tool_calls" => Some(json!([{"name": "read"}, {"name": "write"}])),
            "metadata" => Some(json!({"a b": {"c": 1}})),
            _ => None,
        });
        assert_eq!(rendered, "[\"read\",\"write\"] / 1");
        let bad = json!({"connection": "c", "prompt": "{{q}}", "variables": {"q": {"source": "input", "path": "$[?"}}});
        assert_eq!(JudgeConfig::parse(&bad).unwrap_err().key, "variables.q");
        // Filters and descendant segments cost without bound (a nested filter overflows the
        // parser's stack): refused before parsing, as are long paths.
        let nested = format!("$[?{}@.a{}]", "(".repeat(1000), ")".repeat(1000));
        for path in [
            "$..a",
            "$[?@.a == 1]",
            "$.a..b",
            nested.as_str(),
            &format!("$.{}", "a".repeat(300)),
        ] {
            assert!(check_path(path).is_err(), "{path}");
        }
        for path in ["$['a..b']", "$[\"why?\"]", "$[*].name", "$.a[0:2]"] {
            assert!(check_path(path).is_ok(), "{path}");
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
