//! The ingest event model.
//!
//! On the wire every event is an envelope `{"id", "type", "timestamp", "body"}`. `id` identifies
//! the event itself (a retry must reuse it), `timestamp` is when the agent emitted it and is the
//! version of the entity (the newest update wins), `body` is the entity, whose shape depends on
//! `type`. Field names follow the OpenTelemetry GenAI conventions where one exists
//! (`model`, `usage.input_tokens`, `usage.cache_read_input_tokens`, `tool_name`, ...).
//!
//! Parsing is strict and two-phase: the envelope first, then the body for its type, so that
//! an unknown field or a wrong type is reported with its full path (`body.usage.input_tokens`).

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::text::static_as_is;
pub use crate::text::{IntoStatic, Json, MetaValue, Metadata, Text};
use crate::time::Timestamp;

/// Longest id (event, trace, observation, ...), in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest short text (names, models, paths, commands, ...), in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Longest payload field (input, output, stdout, stderr, diff, ...), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Most metadata entries or tags on one entity.
pub const MAX_ENTRIES: usize = 256;

/// Declares a wire enum: snake_case on the wire, `as_str` for storage.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// The `type` of an event envelope: which body it carries.
    EventType {
        Trace => "trace",
        Observation => "observation",
        Score => "score",
        FileOperation => "file_operation",
        TerminalCommand => "terminal_command",
        GitLink => "git_link",
        /// A partial update of a trace: fields it carries replace the stored ones, the rest stay.
        TracePatch => "trace_patch",
        /// A partial update of an observation (Langfuse's `*-create`/`*-update` events).
        ObservationPatch => "observation_patch",
        /// One OpenTelemetry metric data point.
        Metric => "metric",
    }
);

wire_enum!(
    /// What an observation is.
    ObservationType {
        /// A unit of work with a duration.
        Span => "span",
        /// A call to a language model (model, usage, cost).
        Generation => "generation",
        /// A point in time.
        Event => "event",
        /// A tool invocation (`gen_ai.operation.name = execute_tool`).
        ToolCall => "tool_call",
        /// One step of an agent loop.
        AgentStep => "agent_step",
        /// An agent run (Langfuse `agent`, GenAI `invoke_agent`).
        Agent => "agent",
        /// A tool invocation, as Langfuse names it (`tool`).
        Tool => "tool",
        /// A chain of steps (Langfuse, OpenInference `CHAIN`).
        Chain => "chain",
        /// A retrieval step (vector store, search).
        Retriever => "retriever",
        /// An evaluator's run.
        Evaluator => "evaluator",
        /// An embedding call (priced like a generation).
        Embedding => "embedding",
        /// A guardrail check.
        Guardrail => "guardrail",
    }
);

wire_enum!(
    /// What a score's value means (Langfuse's data types).
    ScoreDataType {
        Numeric => "numeric",
        Boolean => "boolean",
        Categorical => "categorical",
        /// Free text (at most 500 characters in Langfuse).
        Text => "text",
    }
);

wire_enum!(
    /// An OpenTelemetry metric's kind.
    MetricKind {
        Sum => "sum",
        Gauge => "gauge",
        Histogram => "histogram",
    }
);

wire_enum!(
    /// Severity of an observation.
    #[derive(Default)]
    Level {
        Debug => "debug",
        #[default]
        Default => "default",
        Warning => "warning",
        Error => "error",
    }
);

wire_enum!(
    /// Who produced a score.
    #[derive(Default)]
    ScoreSource {
        #[default]
        Api => "api",
        Eval => "eval",
        Annotation => "annotation",
    }
);

wire_enum!(
    /// What happened to a file.
    FileOperationKind {
        Read => "read",
        Write => "write",
        Edit => "edit",
        Create => "create",
        Delete => "delete",
        Rename => "rename",
    }
);

fn default_environment<'a>() -> Text<'a> {
    Text::from("default")
}

fn is_default_environment(value: &Text) -> bool {
    *value == "default"
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// One run of an agent: the root that observations, scores and file/terminal/git events hang off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Trace<'a> {
    pub id: Text<'a>,
    /// When the trace started; defaults to the envelope timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Text<'a>>,
    #[serde(
        default = "default_environment",
        skip_serializing_if = "is_default_environment"
    )]
    pub environment: Text<'a>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata<'a>,
    /// The experiment this run belongs to (PostgreSQL `experiments.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<Text<'a>>,
    /// The dataset item this run evaluated (PostgreSQL `dataset_items.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_item_id: Option<Text<'a>>,
    /// Whether the trace may be shared by link (Langfuse `public`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

/// Token usage of a generation (`gen_ai.usage.*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// Cost in USD. When a generation has none, the ETL computes it from the model price table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Cost {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Defaults to the sum of the parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
}

impl Cost {
    /// The total as sent, or the sum of the parts that were sent.
    pub fn effective_total(&self) -> Option<f64> {
        self.total.or_else(|| {
            let parts = [self.input, self.output, self.cache_read, self.cache_write];
            parts
                .iter()
                .any(Option::is_some)
                .then(|| parts.iter().flatten().sum())
        })
    }
}

/// A span, generation, event, tool call or agent step within a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Observation<'a> {
    pub id: Text<'a>,
    pub trace_id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_observation_id: Option<Text<'a>>,
    #[serde(rename = "type")]
    pub kind: ObservationType,
    pub name: Text<'a>,
    pub start_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    #[serde(default)]
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata<'a>,
    /// `gen_ai.request.model` (or the response model when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Text<'a>>,
    /// Request parameters (temperature, max_tokens, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_parameters: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// `gen_ai.tool.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<Text<'a>>,
    /// `gen_ai.tool.call.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Text<'a>>,
    /// When the first token of a streamed completion arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_start_time: Option<Timestamp>,
    /// The managed prompt this generation used (name and version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_name: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<u32>,
}

/// A score's value; its JSON type decides the data type (number, boolean or string).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScoreValue<'a> {
    Boolean(bool),
    Numeric(f64),
    Categorical(Text<'a>),
}

/// Read by the value's JSON type directly: serde's `untagged` would buffer the value and try
/// each variant in turn, formatting an error for every miss.
impl<'de: 'a, 'a> Deserialize<'de> for ScoreValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> serde::de::Visitor<'de> for ValueVisitor {
            type Value = ScoreValue<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number (numeric), a boolean (boolean) or a string (categorical)")
            }

            fn visit_bool<E>(self, value: bool) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Boolean(value))
            }

            fn visit_i64<E>(self, value: i64) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Numeric(value as f64))
            }

            fn visit_u64<E>(self, value: u64) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Numeric(value as f64))
            }

            fn visit_f64<E>(self, value: f64) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Numeric(value))
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Categorical(value.into()))
            }

            fn visit_str<E>(self, value: &str) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Categorical(value.to_owned().into()))
            }

            fn visit_string<E>(self, value: String) -> Result<ScoreValue<'de>, E> {
                Ok(ScoreValue::Categorical(value.into()))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

impl IntoStatic for ScoreValue<'_> {
    type Static = ScoreValue<'static>;

    fn into_static(self) -> ScoreValue<'static> {
        match self {
            ScoreValue::Boolean(value) => ScoreValue::Boolean(value),
            ScoreValue::Numeric(value) => ScoreValue::Numeric(value),
            ScoreValue::Categorical(value) => ScoreValue::Categorical(value.into_static()),
        }
    }
}

impl ScoreValue<'_> {
    pub fn data_type(&self) -> &'static str {
        match self {
            ScoreValue::Boolean(_) => "boolean",
            ScoreValue::Numeric(_) => "numeric",
            ScoreValue::Categorical(_) => "categorical",
        }
    }
}

/// An evaluation of a trace or one of its observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Score<'a> {
    pub id: Text<'a>,
    pub trace_id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<Text<'a>>,
    /// Defaults to the envelope timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    pub name: Text<'a>,
    pub value: ScoreValue<'a>,
    #[serde(default)]
    pub source: ScoreSource,
    /// The evaluator that produced it (PostgreSQL `evaluators.id`), for `source = eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata<'a>,
    /// What the value means; by default its JSON type says (a string is categorical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<ScoreDataType>,
}

impl Score<'_> {
    /// The data type as stored: the one given, else the value's own.
    pub fn effective_data_type(&self) -> ScoreDataType {
        self.data_type.unwrap_or(match self.value {
            ScoreValue::Boolean(_) => ScoreDataType::Boolean,
            ScoreValue::Numeric(_) => ScoreDataType::Numeric,
            ScoreValue::Categorical(_) => ScoreDataType::Categorical,
        })
    }
}

/// A partial update of a trace: every field but `id` is optional, and only the fields it
/// carries change the stored trace (metadata key by key, tags added). See the ETL's merge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct TracePatch<'a> {
    pub id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_item_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

/// A partial update of an observation: every field but `id` is optional. An observation is
/// stored once its patches (in any order) have given it a trace, a type, a name and a start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ObservationPatch<'a> {
    pub id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_observation_id: Option<Text<'a>>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ObservationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_parameters: Option<Json<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_name: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<u32>,
}

/// One OpenTelemetry metric data point (a sum, a gauge or a histogram), with the attributes of
/// the point and of the resource that reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Metric<'a> {
    /// Stable per data point (the edge derives it from the point's content), so replays dedupe.
    pub id: Text<'a>,
    pub name: Text<'a>,
    pub kind: MetricKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Text<'a>>,
    /// `delta` or `cumulative`, for sums and histograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporality: Option<Text<'a>>,
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// The value of a sum or a gauge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A histogram's count, sum, min, max and buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_counts: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explicit_bounds: Vec<f64>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub attributes: Metadata<'a>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub resource: Metadata<'a>,
}

/// A file the agent read, wrote, edited, created, deleted or renamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct FileOperation<'a> {
    pub id: Text<'a>,
    pub trace_id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<Text<'a>>,
    /// Defaults to the envelope timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    pub operation: FileOperationKind,
    pub path: Text<'a>,
    /// The new path, for `rename` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_path: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub lines_added: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub lines_removed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Text<'a>>,
}

/// A shell command the agent ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct TerminalCommand<'a> {
    pub id: Text<'a>,
    pub trace_id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<Text<'a>>,
    /// Defaults to the envelope timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    pub command: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Text<'a>>,
}

/// A commit (and optionally a pull request) the agent produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct GitLink<'a> {
    pub id: Text<'a>,
    pub trace_id: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<Text<'a>>,
    /// Defaults to the envelope timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Repository URL or `owner/name`.
    pub repository: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<Text<'a>>,
    /// Full or abbreviated (at least 7) hex commit id.
    pub commit_sha: Text<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub files_changed: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub insertions: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub deletions: u32,
    /// An `http://` or `https://` URL (the UI links it; any other scheme is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<Text<'a>>,
}

/// The body of an event, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    Trace(Trace<'a>),
    Observation(Observation<'a>),
    Score(Score<'a>),
    FileOperation(FileOperation<'a>),
    TerminalCommand(TerminalCommand<'a>),
    GitLink(GitLink<'a>),
    TracePatch(TracePatch<'a>),
    ObservationPatch(ObservationPatch<'a>),
    Metric(Metric<'a>),
}

impl Payload<'_> {
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::Trace(_) => EventType::Trace,
            Payload::Observation(_) => EventType::Observation,
            Payload::Score(_) => EventType::Score,
            Payload::FileOperation(_) => EventType::FileOperation,
            Payload::TerminalCommand(_) => EventType::TerminalCommand,
            Payload::GitLink(_) => EventType::GitLink,
            Payload::TracePatch(_) => EventType::TracePatch,
            Payload::ObservationPatch(_) => EventType::ObservationPatch,
            Payload::Metric(_) => EventType::Metric,
        }
    }
}

/// One ingest event: the envelope and its typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub id: Text<'a>,
    pub timestamp: Timestamp,
    pub payload: Payload<'a>,
}

/// `into_static` for a struct: every field given up in turn (a field left out fails to compile).
macro_rules! into_static_fields {
    ($($name:ident { $($field:ident),+ $(,)? })+) => {
        $(impl IntoStatic for $name<'_> {
            type Static = $name<'static>;

            fn into_static(self) -> $name<'static> {
                $name { $($field: self.$field.into_static()),+ }
            }
        })+
    };
}

static_as_is!(
    EventType,
    ObservationType,
    ScoreDataType,
    MetricKind,
    Level,
    ScoreSource,
    FileOperationKind,
    Usage,
    Cost
);

into_static_fields!(
    Trace {
        id, timestamp, name, user_id, session_id, release, version, environment, tags, input,
        output, metadata, experiment_id, dataset_item_id, public,
    }
    Observation {
        id, trace_id, parent_observation_id, kind, name, start_time, end_time, level,
        status_message, input, output, metadata, model, model_parameters, usage, cost, tool_name,
        tool_call_id, completion_start_time, prompt_name, prompt_version,
    }
    Score {
        id, trace_id, observation_id, timestamp, name, value, source, evaluator_id, comment,
        metadata, data_type,
    }
    TracePatch {
        id, timestamp, name, user_id, session_id, release, version, environment, tags, input,
        output, metadata, experiment_id, dataset_item_id, public,
    }
    ObservationPatch {
        id, trace_id, parent_observation_id, kind, name, start_time, end_time, level,
        status_message, input, output, metadata, model, model_parameters, usage, cost, tool_name,
        tool_call_id, completion_start_time, prompt_name, prompt_version,
    }
    Metric {
        id, name, kind, unit, temporality, time, start_time, value, count, sum, min, max,
        bucket_counts, explicit_bounds, attributes, resource,
    }
    FileOperation {
        id, trace_id, observation_id, timestamp, operation, path, new_path, language,
        lines_added, lines_removed, bytes, diff,
    }
    TerminalCommand {
        id, trace_id, observation_id, timestamp, command, cwd, exit_code, duration_ms, stdout,
        stderr,
    }
    GitLink {
        id, trace_id, observation_id, timestamp, repository, branch, commit_sha, message, author,
        files_changed, insertions, deletions, pull_request_url,
    }
    Event { id, timestamp, payload }
);

impl IntoStatic for Payload<'_> {
    type Static = Payload<'static>;

    fn into_static(self) -> Payload<'static> {
        match self {
            Payload::Trace(body) => Payload::Trace(body.into_static()),
            Payload::Observation(body) => Payload::Observation(body.into_static()),
            Payload::Score(body) => Payload::Score(body.into_static()),
            Payload::FileOperation(body) => Payload::FileOperation(body.into_static()),
            Payload::TerminalCommand(body) => Payload::TerminalCommand(body.into_static()),
            Payload::GitLink(body) => Payload::GitLink(body.into_static()),
            Payload::TracePatch(body) => Payload::TracePatch(body.into_static()),
            Payload::ObservationPatch(body) => Payload::ObservationPatch(body.into_static()),
            Payload::Metric(body) => Payload::Metric(body.into_static()),
        }
    }
}

/// Why an event was rejected, with the path of the offending field (`body.usage.input_tokens`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EventError {
    /// Dotted path of the field at fault; empty when the event as a whole is at fault.
    pub field: String,
    pub message: String,
}

impl EventError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        EventError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(rename = "type")]
    kind: EventType,
    timestamp: Timestamp,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Deserializes `text`, reporting failures with the field path under `prefix`. Valid input
/// (the common case) is parsed once without path tracking, which costs about as much again;
/// only a failure is parsed a second time to name its field.
fn parse_at<'de, T: Deserialize<'de>>(text: &'de str, prefix: &str) -> Result<T, EventError> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let field = match (prefix.is_empty(), path.as_str()) {
            (_, ".") => prefix.to_owned(),
            (true, _) => path,
            (false, _) => format!("{prefix}.{path}"),
        };
        // serde_json appends " at line L column C"; the field path is the precise location.
        let message = err.into_inner().to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head);
        EventError::new(field, message)
    })
}

/// The body of an event of type `kind`, its errors under `body`.
fn parse_payload(body: &str, kind: EventType) -> Result<Payload<'_>, EventError> {
    Ok(match kind {
        EventType::Trace => Payload::Trace(parse_at(body, "body")?),
        EventType::Observation => Payload::Observation(parse_at(body, "body")?),
        EventType::Score => Payload::Score(parse_at(body, "body")?),
        EventType::FileOperation => Payload::FileOperation(parse_at(body, "body")?),
        EventType::TerminalCommand => Payload::TerminalCommand(parse_at(body, "body")?),
        EventType::GitLink => Payload::GitLink(parse_at(body, "body")?),
        EventType::TracePatch => Payload::TracePatch(parse_at(body, "body")?),
        EventType::ObservationPatch => Payload::ObservationPatch(parse_at(body, "body")?),
        EventType::Metric => Payload::Metric(parse_at(body, "body")?),
    })
}

impl Event<'_> {
    /// Parses one event from its JSON text, borrowing its strings and payloads from `text`
    /// (`into_static` for an event that outlives it). Structural errors only; see
    /// [`Event::validate`].
    pub fn parse(text: &str) -> Result<Event<'_>, EventError> {
        // A valid event (the common case) is read in one pass; a failure is read again in
        // parts to name the field at fault.
        match serde_json::from_str(text) {
            Ok(event) => Ok(event),
            Err(_) => Event::parse_in_parts(text),
        }
    }

    /// The envelope, then the body for its type: slower than one pass, but an error names the
    /// field at fault (`body.usage.input_tokens`).
    pub fn parse_in_parts(text: &str) -> Result<Event<'_>, EventError> {
        let envelope: Envelope = parse_at(text, "")?;
        Ok(Event {
            payload: parse_payload(envelope.body.get(), envelope.kind)?,
            id: envelope.id,
            timestamp: envelope.timestamp,
        })
    }

    /// Parses and validates: what an ingest endpoint should call.
    pub fn parse_valid<'t>(text: &'t str, window: &TimeWindow) -> Result<Event<'t>, EventError> {
        let event = Event::parse(text)?;
        event.validate(window)?;
        Ok(event)
    }

    /// The id of the entity the event carries (trace id, observation id, ...).
    pub fn entity_id(&self) -> &str {
        match &self.payload {
            Payload::Trace(b) => &b.id,
            Payload::Observation(b) => &b.id,
            Payload::Score(b) => &b.id,
            Payload::FileOperation(b) => &b.id,
            Payload::TerminalCommand(b) => &b.id,
            Payload::GitLink(b) => &b.id,
            Payload::TracePatch(b) => &b.id,
            Payload::ObservationPatch(b) => &b.id,
            Payload::Metric(b) => &b.id,
        }
    }

    /// Checks what the types cannot: sizes, ranges, consistency, and that every timestamp
    /// lies within `window`.
    pub fn validate(&self, window: &TimeWindow) -> Result<(), EventError> {
        let mut check = Checker::default();
        check.id("id", &self.id);
        check.time("timestamp", self.timestamp, window);
        match &self.payload {
            Payload::Trace(t) => {
                check.id("body.id", &t.id);
                check.opt_time("body.timestamp", t.timestamp, window);
                for (field, value) in [
                    ("body.name", &t.name),
                    ("body.user_id", &t.user_id),
                    ("body.session_id", &t.session_id),
                    ("body.release", &t.release),
                    ("body.version", &t.version),
                    ("body.experiment_id", &t.experiment_id),
                    ("body.dataset_item_id", &t.dataset_item_id),
                ] {
                    check.opt_text(field, value.as_deref());
                }
                check.text("body.environment", &t.environment);
                check.tags("body.tags", &t.tags);
                check.opt_payload("body.input", t.input.as_ref().map(Json::as_str));
                check.opt_payload("body.output", t.output.as_ref().map(Json::as_str));
                check.metadata("body.metadata", &t.metadata);
            }
            Payload::TracePatch(t) => {
                check.id("body.id", &t.id);
                check.opt_time("body.timestamp", t.timestamp, window);
                for (field, value) in [
                    ("body.name", &t.name),
                    ("body.user_id", &t.user_id),
                    ("body.session_id", &t.session_id),
                    ("body.release", &t.release),
                    ("body.version", &t.version),
                    ("body.environment", &t.environment),
                    ("body.experiment_id", &t.experiment_id),
                    ("body.dataset_item_id", &t.dataset_item_id),
                ] {
                    check.opt_text(field, value.as_deref());
                }
                check.tags("body.tags", &t.tags);
                check.opt_payload("body.input", t.input.as_ref().map(Json::as_str));
                check.opt_payload("body.output", t.output.as_ref().map(Json::as_str));
                check.metadata("body.metadata", &t.metadata);
            }
            Payload::ObservationPatch(o) => {
                check.id("body.id", &o.id);
                check.opt_id("body.trace_id", o.trace_id.as_deref());
                check.opt_id("body.parent_observation_id", o.parent_observation_id.as_deref());
                if o.parent_observation_id.as_ref() == Some(&o.id) {
                    check.fail(
                        "body.parent_observation_id",
                        "an observation cannot be its own parent",
                    );
                }
                if let Some(name) = &o.name {
                    check.non_empty_text("body.name", name);
                }
                check.opt_time("body.start_time", o.start_time, window);
                check.opt_time("body.end_time", o.end_time, window);
                check.opt_time("body.completion_start_time", o.completion_start_time, window);
                if let (Some(start), Some(end)) = (o.start_time, o.end_time)
                    && end < start
                {
                    check.fail(
                        "body.end_time",
                        format!("end_time {end} is before start_time {start}"),
                    );
                }
                for (field, value) in [
                    ("body.status_message", &o.status_message),
                    ("body.model", &o.model),
                    ("body.tool_name", &o.tool_name),
                    ("body.tool_call_id", &o.tool_call_id),
                    ("body.prompt_name", &o.prompt_name),
                ] {
                    check.opt_text(field, value.as_deref());
                }
                check.opt_payload("body.input", o.input.as_ref().map(Json::as_str));
                check.opt_payload("body.output", o.output.as_ref().map(Json::as_str));
                check.opt_payload(
                    "body.model_parameters",
                    o.model_parameters.as_ref().map(Json::as_str),
                );
                check.metadata("body.metadata", &o.metadata);
                if let Some(cost) = &o.cost {
                    check.costs(cost);
                }
            }
            Payload::Metric(m) => {
                check.id("body.id", &m.id);
                check.non_empty_text("body.name", &m.name);
                check.opt_text("body.unit", m.unit.as_deref());
                if let Some(temporality) = m.temporality.as_deref()
                    && !matches!(temporality, "delta" | "cumulative")
                {
                    check.fail("body.temporality", "must be \"delta\" or \"cumulative\"");
                }
                check.time("body.time", m.time, window);
                check.opt_time("body.start_time", m.start_time, window);
                match m.kind {
                    MetricKind::Sum | MetricKind::Gauge if m.value.is_none() => {
                        check.fail("body.value", format!("required for a {}", m.kind))
                    }
                    MetricKind::Histogram if m.count.is_none() => {
                        check.fail("body.count", "required for a histogram")
                    }
                    MetricKind::Histogram
                        if !m.bucket_counts.is_empty()
                            && m.bucket_counts.len() != m.explicit_bounds.len() + 1 =>
                    {
                        check.fail(
                            "body.bucket_counts",
                            format!(
                                "{} buckets need {} explicit_bounds, not {}",
                                m.bucket_counts.len(),
                                m.bucket_counts.len() - 1,
                                m.explicit_bounds.len()
                            ),
                        )
                    }
                    _ => {}
                }
                for (field, value) in [
                    ("body.value", m.value),
                    ("body.sum", m.sum),
                    ("body.min", m.min),
                    ("body.max", m.max),
                ] {
                    if value.is_some_and(|v| !v.is_finite()) {
                        check.fail(field, "must be a finite number");
                    }
                }
                check.metadata("body.attributes", &m.attributes);
                check.metadata("body.resource", &m.resource);
            }
            Payload::Observation(o) => {
                check.id("body.id", &o.id);
                check.id("body.trace_id", &o.trace_id);
                if let Some(parent) = &o.parent_observation_id {
                    check.id("body.parent_observation_id", parent);
                    if *parent == o.id {
                        check.fail(
                            "body.parent_observation_id",
                            "an observation cannot be its own parent",
                        );
                    }
                }
                check.non_empty_text("body.name", &o.name);
                check.time("body.start_time", o.start_time, window);
                check.opt_time("body.end_time", o.end_time, window);
                if o.end_time.is_some_and(|end| end < o.start_time) {
                    check.fail(
                        "body.end_time",
                        format!(
                            "end_time {} is before start_time {}",
                            o.end_time.unwrap_or(o.start_time),
                            o.start_time
                        ),
                    );
                }
                check.opt_text("body.status_message", o.status_message.as_deref());
                check.opt_payload("body.input", o.input.as_ref().map(Json::as_str));
                check.opt_payload("body.output", o.output.as_ref().map(Json::as_str));
                check.metadata("body.metadata", &o.metadata);
                check.opt_text("body.model", o.model.as_deref());
                check.opt_payload(
                    "body.model_parameters",
                    o.model_parameters.as_ref().map(Json::as_str),
                );
                if let Some(cost) = &o.cost {
                    check.costs(cost);
                }
                check.opt_text("body.tool_name", o.tool_name.as_deref());
                check.opt_text("body.tool_call_id", o.tool_call_id.as_deref());
                check.opt_time("body.completion_start_time", o.completion_start_time, window);
                check.opt_text("body.prompt_name", o.prompt_name.as_deref());
            }
            Payload::Score(s) => {
                check.id("body.id", &s.id);
                check.id("body.trace_id", &s.trace_id);
                check.opt_id("body.observation_id", s.observation_id.as_deref());
                check.opt_time("body.timestamp", s.timestamp, window);
                check.non_empty_text("body.name", &s.name);
                match (&s.value, s.effective_data_type()) {
                    (ScoreValue::Categorical(value), ScoreDataType::Categorical | ScoreDataType::Text) => {
                        check.text("body.value", value)
                    }
                    (ScoreValue::Numeric(_), ScoreDataType::Numeric)
                    | (ScoreValue::Boolean(_), ScoreDataType::Boolean) => {}
                    (ScoreValue::Numeric(n), ScoreDataType::Boolean) if *n == 0.0 || *n == 1.0 => {}
                    (value, data_type) => check.fail(
                        "body.value",
                        format!(
                            "a {data_type} score needs {}, not {}",
                            match data_type {
                                ScoreDataType::Numeric => "a number",
                                ScoreDataType::Boolean => "true, false, 0 or 1",
                                ScoreDataType::Categorical | ScoreDataType::Text => "a string",
                            },
                            serde_json::to_string(value).unwrap_or_default()
                        ),
                    ),
                }
                check.opt_id("body.evaluator_id", s.evaluator_id.as_deref());
                check.opt_text("body.comment", s.comment.as_deref());
                check.metadata("body.metadata", &s.metadata);
            }
            Payload::FileOperation(f) => {
                check.id("body.id", &f.id);
                check.id("body.trace_id", &f.trace_id);
                check.opt_id("body.observation_id", f.observation_id.as_deref());
                check.opt_time("body.timestamp", f.timestamp, window);
                check.non_empty_text("body.path", &f.path);
                match (f.operation, &f.new_path) {
                    (FileOperationKind::Rename, None) => {
                        check.fail("body.new_path", "required when operation is \"rename\"")
                    }
                    (FileOperationKind::Rename, Some(path)) => check.non_empty_text("body.new_path", path),
                    (_, Some(_)) => check.fail("body.new_path", "only allowed when operation is \"rename\""),
                    (_, None) => {}
                }
                check.opt_text("body.language", f.language.as_deref());
                check.opt_payload("body.diff", f.diff.as_deref());
            }
            Payload::TerminalCommand(c) => {
                check.id("body.id", &c.id);
                check.id("body.trace_id", &c.trace_id);
                check.opt_id("body.observation_id", c.observation_id.as_deref());
                check.opt_time("body.timestamp", c.timestamp, window);
                check.non_empty_text("body.command", &c.command);
                check.opt_text("body.cwd", c.cwd.as_deref());
                check.opt_payload("body.stdout", c.stdout.as_deref());
                check.opt_payload("body.stderr", c.stderr.as_deref());
            }
            Payload::GitLink(g) => {
                check.id("body.id", &g.id);
                check.id("body.trace_id", &g.trace_id);
                check.opt_id("body.observation_id", g.observation_id.as_deref());
                check.opt_time("body.timestamp", g.timestamp, window);
                check.non_empty_text("body.repository", &g.repository);
                check.opt_text("body.branch", g.branch.as_deref());
                let sha = &g.commit_sha;
                if !(7..=64).contains(&sha.len()) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    check.fail(
                        "body.commit_sha",
                        format!("expected 7 to 64 hex digits, got {sha:?}"),
                    );
                }
                check.opt_payload("body.message", g.message.as_deref());
                check.opt_text("body.author", g.author.as_deref());
                check.opt_link("body.pull_request_url", g.pull_request_url.as_deref());
            }
        }
        check.finish()
    }
}

/// The range of timestamps accepted relative to the time of ingestion.
#[derive(Debug, Clone, Copy)]
pub struct TimeWindow {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

impl TimeWindow {
    /// Up to ~13 months in the past (late uploads, backfills) and 10 minutes in the future
    /// (clock skew between agents and the edge).
    pub fn around(now: Timestamp) -> Self {
        const DAY_US: i64 = 86_400 * 1_000_000;
        TimeWindow {
            earliest: Timestamp::from_micros(now.as_micros() - 400 * DAY_US),
            latest: Timestamp::from_micros(now.as_micros() + 10 * 60 * 1_000_000),
        }
    }

    /// Accepts every representable timestamp (for re-validating stored data).
    pub fn unbounded() -> Self {
        TimeWindow {
            earliest: Timestamp::from_micros(i64::MIN),
            latest: Timestamp::from_micros(i64::MAX),
        }
    }
}

/// Whether `value` is an absolute `http` or `https` URL with a host, and nothing a browser
/// would read differently (whitespace, control characters, a backslash).
pub fn is_http_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && !host.is_empty()
        && !host.starts_with(':')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
}

/// Collects the first validation failure.
#[derive(Default)]
struct Checker {
    error: Option<EventError>,
}

/// `value.chars().any(char::is_control)` over bytes (ids are checked on every event): C0 and
/// DEL are single bytes, C1 (U+0080–U+009F) is 0xC2 followed by 0x80–0x9F.
fn has_control_character(value: &str) -> bool {
    let bytes = value.as_bytes();
    // Printable ASCII (nearly every id) is settled in one vectorized pass: a fold, not `all`,
    // whose early exit per byte keeps the compiler from using vector instructions.
    if bytes
        .iter()
        .fold(true, |printable, b| printable & (0x20..0x7f).contains(b))
    {
        return false;
    }
    bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
        || bytes
            .windows(2)
            .any(|pair| pair[0] == 0xc2 && (0x80..=0x9f).contains(&pair[1]))
}

impl Checker {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(EventError::new(field, message));
        }
    }

    fn finish(self) -> Result<(), EventError> {
        self.error.map_or(Ok(()), Err)
    }

    fn max_len(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.fail(
                field,
                format!("{} bytes is over the limit of {max} bytes", value.len()),
            );
        }
    }

    fn id(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.fail(field, "must not be empty");
        } else if has_control_character(value) {
            self.fail(field, "must not contain control characters");
        }
        self.max_len(field, value, MAX_ID_BYTES);
    }

    fn opt_id(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.id(field, value);
        }
    }

    fn text(&mut self, field: &str, value: &str) {
        self.max_len(field, value, MAX_TEXT_BYTES);
    }

    fn non_empty_text(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.fail(field, "must not be empty");
        }
        self.text(field, value);
    }

    fn opt_text(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(field, value);
        }
    }

    /// A URL stored to be shown as a link: `http://` or `https://` and a host, nothing else
    /// (`javascript:`, `data:` and the like would run or show whatever they hold when clicked).
    fn opt_link(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(field, value);
            if !is_http_url(value) {
                self.fail(
                    field,
                    format!(
                        "must be an http:// or https:// URL, got {:?}",
                        value.chars().take(40).collect::<String>()
                    ),
                );
            }
        }
    }

    fn opt_payload(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.max_len(field, value, MAX_PAYLOAD_BYTES);
        }
    }

    fn tags(&mut self, field: &str, tags: &[Text]) {
        if tags.len() > MAX_ENTRIES {
            self.fail(
                field,
                format!("{} tags is over the limit of {MAX_ENTRIES}", tags.len()),
            );
        }
        // The field's name is formatted only for a failure: this runs for every valid event.
        for (i, tag) in tags.iter().enumerate() {
            if tag.len() > MAX_TEXT_BYTES {
                self.text(&format!("{field}[{i}]"), tag);
            }
        }
    }

    fn metadata(&mut self, field: &str, metadata: &Metadata) {
        if metadata.len() > MAX_ENTRIES {
            self.fail(
                field,
                format!("{} entries is over the limit of {MAX_ENTRIES}", metadata.len()),
            );
        }
        for (key, value) in metadata {
            if key.len() > MAX_TEXT_BYTES {
                self.text(&format!("{field} key {key:?}"), key);
            }
            if let MetaValue::Text(text) = value
                && text.len() > MAX_PAYLOAD_BYTES
            {
                self.max_len(&format!("{field}.{key}"), text, MAX_PAYLOAD_BYTES);
            }
        }
    }

    fn cost(&mut self, field: &str, value: Option<f64>) {
        // Stored as Decimal64(12): at most 999,999.999999999999 USD per observation.
        if let Some(value) = value
            && !(0.0..1e6).contains(&value)
        {
            self.fail(field, format!("must be between 0 and 1000000 USD, got {value}"));
        }
    }

    fn costs(&mut self, cost: &Cost) {
        for (field, value) in [
            ("body.cost.input", cost.input),
            ("body.cost.output", cost.output),
            ("body.cost.cache_read", cost.cache_read),
            ("body.cost.cache_write", cost.cache_write),
            ("body.cost.total", cost.total),
        ] {
            self.cost(field, value);
        }
    }

    fn time(&mut self, field: &str, value: Timestamp, window: &TimeWindow) {
        if value < window.earliest {
            self.fail(
                field,
                format!("{value} is before the earliest accepted time {}", window.earliest),
            );
        } else if value > window.latest {
            self.fail(
                field,
                format!(
                    "{value} is in the future (latest accepted {}); check the sender's clock",
                    window.latest
                ),
            );
        }
    }

    fn opt_time(&mut self, field: &str, value: Option<Timestamp>, window: &TimeWindow) {
        if let Some(value) = value {
            self.time(field, value, window);
        }
    }
}

/// The wire shape of [`Event`]: one object per type, `type` as the tag. Used to serialize
/// events and to generate their JSON Schema.
#[derive(Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(title = "Event", description = "One AgentTrace ingest event.")]
enum WireEvent<'a> {
    Trace {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a Trace<'a>,
    },
    Observation {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a Observation<'a>,
    },
    Score {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a Score<'a>,
    },
    FileOperation {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a FileOperation<'a>,
    },
    TerminalCommand {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a TerminalCommand<'a>,
    },
    GitLink {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a GitLink<'a>,
    },
    TracePatch {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a TracePatch<'a>,
    },
    ObservationPatch {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a ObservationPatch<'a>,
    },
    Metric {
        id: &'a str,
        timestamp: Timestamp,
        body: &'a Metric<'a>,
    },
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (id, timestamp) = (self.id.as_str(), self.timestamp);
        match &self.payload {
            Payload::Trace(body) => WireEvent::Trace { id, timestamp, body },
            Payload::Observation(body) => WireEvent::Observation { id, timestamp, body },
            Payload::Score(body) => WireEvent::Score { id, timestamp, body },
            Payload::FileOperation(body) => WireEvent::FileOperation { id, timestamp, body },
            Payload::TerminalCommand(body) => WireEvent::TerminalCommand { id, timestamp, body },
            Payload::GitLink(body) => WireEvent::GitLink { id, timestamp, body },
            Payload::TracePatch(body) => WireEvent::TracePatch { id, timestamp, body },
            Payload::ObservationPatch(body) => WireEvent::ObservationPatch { id, timestamp, body },
            Payload::Metric(body) => WireEvent::Metric { id, timestamp, body },
        }
        .serialize(serializer)
    }
}

/// One pass over an event: the body is read straight into its type's struct when `type` comes
/// before it (as every serializer here writes it); a body before its `type` is kept as raw JSON
/// and read once the type is known. Errors carry no field path: [`Event::parse`] names the field.
impl<'de: 'a, 'a> Deserialize<'de> for Event<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EnvelopeField {
    Id,
    Type,
    Timestamp,
    Body,
}

impl<'de> serde::de::Visitor<'de> for EventVisitor {
    type Value = Event<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Event<'de>, A::Error> {
        use serde::de::Error;
        let (mut id, mut kind, mut timestamp) = (None, None, None);
        let (mut payload, mut early_body): (Option<Payload>, Option<&'de RawValue>) = (None, None);
        while let Some(field) = map.next_key::<EnvelopeField>()? {
            match field {
                EnvelopeField::Id if id.is_none() => id = Some(map.next_value::<Text>()?),
                EnvelopeField::Type if kind.is_none() => kind = Some(map.next_value::<EventType>()?),
                EnvelopeField::Timestamp if timestamp.is_none() => timestamp = Some(map.next_value()?),
                EnvelopeField::Body if payload.is_none() && early_body.is_none() => match kind {
                    Some(kind) => payload = Some(next_payload(&mut map, kind)?),
                    None => early_body = Some(map.next_value()?),
                },
                _ => return Err(A::Error::custom("duplicate field")),
            }
        }
        let kind = kind.ok_or_else(|| A::Error::missing_field("type"))?;
        let payload = match (payload, early_body) {
            (Some(payload), _) => payload,
            (None, Some(body)) => parse_payload(body.get(), kind).map_err(A::Error::custom)?,
            (None, None) => return Err(A::Error::missing_field("body")),
        };
        Ok(Event {
            id: id.ok_or_else(|| A::Error::missing_field("id"))?,
            timestamp: timestamp.ok_or_else(|| A::Error::missing_field("timestamp"))?,
            payload,
        })
    }
}

fn next_payload<'de, A: serde::de::MapAccess<'de>>(
    map: &mut A,
    kind: EventType,
) -> Result<Payload<'de>, A::Error> {
    Ok(match kind {
        EventType::Trace => Payload::Trace(map.next_value()?),
        EventType::Observation => Payload::Observation(map.next_value()?),
        EventType::Score => Payload::Score(map.next_value()?),
        EventType::FileOperation => Payload::FileOperation(map.next_value()?),
        EventType::TerminalCommand => Payload::TerminalCommand(map.next_value()?),
        EventType::GitLink => Payload::GitLink(map.next_value()?),
        EventType::TracePatch => Payload::TracePatch(map.next_value()?),
        EventType::ObservationPatch => Payload::ObservationPatch(map.next_value()?),
        EventType::Metric => Payload::Metric(map.next_value()?),
    })
}

impl JsonSchema for Event<'_> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Event".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        WireEvent::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-25T12:00:00Z").unwrap()
    }

    fn parse(value: serde_json::Value) -> Result<Event<'static>, EventError> {
        Event::parse_valid(&value.to_string(), &TimeWindow::around(now())).map(Event::into_static)
    }

    fn generation() -> serde_json::Value {
        json!({
            "id": "evt-1",
            "type": "observation",
            "timestamp": "2026-11-25T11:59:00.000001Z",
            "body": {
                "id": "obs-1",
                "trace_id": "trace-1",
                "type": "generation",
                "name": "chat",
                "start_time": "2026-11-25T11:58:59.5Z",
                "end_time": "2026-11-25T11:59:00Z",
                "model": "claude-sonnet-4-5",
                "input": {"messages": [{"role": "user", "content": "héllo 👋"}]},
                "usage": {"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 100},
                "metadata": {"attempt": 1, "host": "dev-box"}
            }
        })
    }

    #[test]
    fn parses_a_generation_with_usage_and_raw_input() {
        let event = parse(generation()).unwrap();
        let Payload::Observation(obs) = &event.payload else {
            panic!("not an observation")
        };
        assert_eq!(obs.kind, ObservationType::Generation);
        assert_eq!(obs.usage.cache_read_input_tokens, 100);
        assert_eq!(
            obs.input.as_ref().unwrap().as_str(),
            r#"{"messages":[{"role":"user","content":"héllo 👋"}]}"#
        );
        assert_eq!(event.entity_id(), "obs-1");
    }

    #[test]
    fn serializes_back_to_the_same_event() {
        let event = parse(generation()).unwrap();
        let text = serde_json::to_string(&event).unwrap();
        let again = Event::parse(&text).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn control_characters_are_found_byte_by_byte_as_char_by_char() {
        for c in (0..0x800u32).filter_map(char::from_u32) {
            for text in [format!("{c}"), format!("a{c}b"), format!("é{c}")] {
                assert_eq!(
                    has_control_character(&text),
                    text.chars().any(char::is_control),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn one_pass_and_field_by_field_reads_agree_whatever_the_key_order() {
        let text = generation().to_string();
        let one_pass: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(one_pass, Event::parse(&text).unwrap());
        // A body before its type is read once the type is known.
        let body_first = format!(
            r#"{{"body":{},"timestamp":"2026-11-25T11:59:00.000001Z","id":"evt-1","type":"observation"}}"#,
            generation()["body"]
        );
        assert_eq!(serde_json::from_str::<Event>(&body_first).unwrap(), one_pass);
        for bad in [
            r#"{"id":"e","type":"trace","timestamp":"2026-11-25T11:59:00Z","body":{"id":"t"},"x":1}"#,
            r#"{"id":"e","type":"trace","type":"trace","timestamp":"2026-11-25T11:59:00Z","body":{"id":"t"}}"#,
            r#"{"id":"e","timestamp":"2026-11-25T11:59:00Z","body":{"id":"t"}}"#,
            r#"{"id":"e","type":"trace","timestamp":"2026-11-25T11:59:00Z"}"#,
        ] {
            assert!(serde_json::from_str::<Event>(bad).is_err(), "{bad}");
            assert!(Event::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_body_field_is_named() {
        let mut value = generation();
        value["body"]["modle"] = json!("gpt");
        let err = parse(value).unwrap_err();
        assert_eq!(err.field, "body.modle");
        assert!(err.message.contains("unknown field `modle`"), "{err}");
    }

    #[test]
    fn wrong_nested_type_is_named() {
        let mut value = generation();
        value["body"]["usage"]["input_tokens"] = json!("twelve");
        let err = parse(value).unwrap_err();
        assert_eq!(err.field, "body.usage.input_tokens");
        assert!(err.message.contains("invalid type: string \"twelve\""), "{err}");
    }

    #[test]
    fn unknown_envelope_field_and_type_are_named() {
        let mut value = generation();
        value["extra"] = json!(1);
        assert_eq!(parse(value).unwrap_err().field, "extra");

        let mut value = generation();
        value["type"] = json!("span");
        let err = parse(value).unwrap_err();
        assert_eq!(err.field, "type");
        assert!(err.message.contains("unknown variant `span`"), "{err}");
    }

    #[test]
    fn missing_required_field_is_reported() {
        let mut value = generation();
        value["body"].as_object_mut().unwrap().remove("trace_id");
        let err = parse(value).unwrap_err();
        assert!(err.message.contains("missing field `trace_id`"), "{err}");
    }

    #[test]
    fn semantic_checks_name_the_field() {
        let mut value = generation();
        value["body"]["end_time"] = json!("2026-11-25T11:00:00Z");
        assert_eq!(parse(value).unwrap_err().field, "body.end_time");

        let mut value = generation();
        value["body"]["start_time"] = json!("2027-01-01T00:00:00Z");
        let err = parse(value).unwrap_err();
        assert_eq!(err.field, "body.start_time");
        assert!(err.message.contains("future"), "{err}");

        let mut value = generation();
        value["body"]["cost"] = json!({"total": -1.0});
        assert_eq!(parse(value).unwrap_err().field, "body.cost.total");

        let mut value = generation();
        value["id"] = json!("");
        assert_eq!(parse(value).unwrap_err().field, "id");

        let mut value = generation();
        value["body"]["output"] = json!("x".repeat(MAX_PAYLOAD_BYTES + 1));
        assert_eq!(parse(value).unwrap_err().field, "body.output");
    }

    #[test]
    fn score_value_type_decides_data_type() {
        for (value, data_type) in [
            (json!(0.5), "numeric"),
            (json!(true), "boolean"),
            (json!("pass"), "categorical"),
        ] {
            let event = parse(json!({
                "id": "e", "type": "score", "timestamp": "2026-11-25T11:00:00Z",
                "body": {"id": "s", "trace_id": "t", "name": "quality", "value": value}
            }))
            .unwrap();
            let Payload::Score(score) = event.payload else {
                panic!()
            };
            assert_eq!(score.value.data_type(), data_type);
        }
        let err = parse(json!({
            "id": "e", "type": "score", "timestamp": "2026-11-25T11:00:00Z",
            "body": {"id": "s", "trace_id": "t", "name": "quality", "value": [1]}
        }))
        .unwrap_err();
        assert_eq!(err.field, "body.value");
        assert!(err.message.contains("a number (numeric)"), "{err}");
    }

    #[test]
    fn rename_requires_new_path_and_git_sha_is_hex() {
        let err = parse(json!({
            "id": "e", "type": "file_operation", "timestamp": "2026-11-25T11:00:00Z",
            "body": {"id": "f", "trace_id": "t", "operation": "rename", "path": "a.rs"}
        }))
        .unwrap_err();
        assert_eq!(err.field, "body.new_path");

        let err = parse(json!({
            "id": "e", "type": "git_link", "timestamp": "2026-11-25T11:00:00Z",
            "body": {"id": "g", "trace_id": "t", "repository": "acme/app", "commit_sha": "not-a-sha"}
        }))
        .unwrap_err();
        assert_eq!(err.field, "body.commit_sha");
    }

    #[test]
    fn a_pull_request_url_is_http_or_https() {
        let link = |url: &str| {
            parse(json!({
                "id": "e", "type": "git_link", "timestamp": "2026-11-25T11:00:00Z",
                "body": {"id": "g", "trace_id": "t", "repository": "acme/app", "commit_sha": "c0ffee1",
                         "pull_request_url": url}
            }))
        };
        for good in [
            "https://github.com/acme/app/pull/1",
            "HTTP://git.example.test:8080/pr?id=1#top",
            "https://user@host.test/x",
        ] {
            assert!(link(good).is_ok(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "//evil.test/x",
            "/relative/path",
            "https://",
            "https:///path",
            "http://:80/x",
            " https://github.com/a",
            "https://github.com/a\nb",
            "https:\\\\evil.test",
            "ftp://files.test/x",
        ] {
            let err = link(bad).unwrap_err();
            assert_eq!(err.field, "body.pull_request_url", "{bad}");
            assert!(err.message.contains("http:// or https://"), "{bad}: {err}");
        }
    }

    #[test]
    fn cost_total_defaults_to_sum_of_parts() {
        let cost = Cost {
            input: Some(0.25),
            output: Some(0.5),
            ..Cost::default()
        };
        assert_eq!(cost.effective_total(), Some(0.75));
        assert_eq!(Cost::default().effective_total(), None);
    }
}
