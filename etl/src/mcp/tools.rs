//! The MCP tools: their names, descriptions and input schemas (`tools/list`), and their calls
//! (`tools/call`), each a library function of the read API for the caller's project, its answer
//! rendered as text ([`render`]) and cut to [`MAX_TEXT_CHARS`].
//!
//! Arguments are checked against the tool's schema first: an unknown or missing argument, or
//! one of the wrong type, is [`CallError::Arguments`] (JSON-RPC -32602, naming it); a value the
//! read functions refuse (a time that is not RFC 3339, a cursor not given out, a search query
//! they cannot parse), nothing found, or a database that is down is an answer with `isError`
//! and a text saying what to do, so the agent can correct itself.
//!
//! The answers carry no `structuredContent`: Claude Code and Codex give the model a tool's
//! `structuredContent` instead of its text when both are present (anthropics/claude-code#55677,
//! openai/codex#38287), and the text is what these tools are for.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use agenttrace_schemas::Timestamp;

use crate::analytics::AnalyticsError;
use crate::analytics::metrics::{self, MetricsParams, MetricsQuery, View};
use crate::analytics::traces::{self, SessionFilter, TraceFilter};
use crate::clickhouse::ClickHouse;
use crate::control::ControlError;
use crate::control::prompts::{self, Selector};
use crate::http::error::ApiError;
use crate::mcp::render;
use crate::search::read::{self as search_read, Results, SearchParams};

/// Characters of text one answer holds at most; past it the text is cut and says so.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Characters of each payload preview (input, output) unless a call asks for others.
const DEFAULT_PREVIEW_CHARS: usize = 300;
/// The most a call may ask for (the trace detail holds each payload's first 1,000).
const MAX_PREVIEW_CHARS: usize = 1_000;
/// The window `metrics` reads without `from` or `since`.
const DEFAULT_METRICS_WINDOW: &str = "7d";

/// What the tools read, all of it the caller's project's.
pub struct Reads<'a> {
    pub project: Uuid,
    /// The reader for this project (`reader.for_project(project)`).
    pub clickhouse: &'a ClickHouse,
    pub postgres: &'a deadpool_postgres::Pool,
}

/// A tool's answer: its text, and whether it is the tool's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub text: String,
    pub is_error: bool,
}

impl ToolOutput {
    fn text(text: String) -> Self {
        ToolOutput {
            text: render::cut(text, MAX_TEXT_CHARS),
            is_error: false,
        }
    }

    fn failed(text: String) -> Self {
        ToolOutput { text, is_error: true }
    }

    /// The `tools/call` result.
    pub fn result(&self) -> Value {
        json!({
            "content": [{"type": "text", "text": self.text}],
            "isError": self.is_error,
        })
    }
}

/// A call this server cannot make at all (JSON-RPC -32602).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No tool of that name; the message names it and the tools there are.
    UnknownTool(String),
    /// Arguments that do not fit the tool's input schema; the message names the argument.
    Arguments(String),
}

impl CallError {
    pub fn message(&self) -> &str {
        match self {
            CallError::UnknownTool(message) | CallError::Arguments(message) => message,
        }
    }
}

/// Why a call failed, as the agent is told (the read API's message for the same failure).
struct Failure(String);

impl From<AnalyticsError> for Failure {
    fn from(error: AnalyticsError) -> Self {
        Failure(ApiError::from(error).message)
    }
}

impl From<ControlError> for Failure {
    fn from(error: ControlError) -> Self {
        Failure(ApiError::from(error).message)
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Failure(ApiError::from(error).message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure(message)
    }
}

fn string_property(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn limit_property(default: usize, max: usize) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max, "default": default,
           "description": format!("Results per page: {default} by default, at most {max}.")})
}

fn cursor_property() -> Value {
    string_property("The cursor an earlier answer of this tool printed after `more:`, for the next page.")
}

fn preview_property() -> Value {
    json!({"type": "integer", "minimum": 20, "maximum": MAX_PREVIEW_CHARS, "default": DEFAULT_PREVIEW_CHARS,
           "description": format!("Characters of each input and output preview ({DEFAULT_PREVIEW_CHARS} by default, at most {MAX_PREVIEW_CHARS}).")})
}

/// `from`, `to` and `since`.
fn time_properties(what: &str) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "from".into(),
        string_property(&format!(
            "RFC 3339 (e.g. 2026-05-01T00:00:00Z): {what} at or after it."
        )),
    );
    properties.insert(
        "to".into(),
        string_property(&format!("RFC 3339: {what} before it.")),
    );
    properties.insert(
        "since".into(),
        string_property(
            "Instead of `from`: a duration back from now, a number and a unit (s, m, h, d, w): `30m`, `6h`, `7d`.",
        ),
    );
    properties
}

/// The trace list's filters (search and list_traces).
fn trace_filter_properties(what: &str) -> Map<String, Value> {
    let mut properties = time_properties(what);
    for (name, schema) in [
        ("name", string_property("Traces of this name only.")),
        ("user_id", string_property("Traces of this user only.")),
        ("session_id", string_property("Traces of this session only.")),
        (
            "tags",
            json!({"type": "array", "items": {"type": "string"},
                   "description": "Traces carrying every one of these tags."}),
        ),
        (
            "environment",
            string_property(
                "Traces of this environment only (without it, every environment but the LLM judges' own).",
            ),
        ),
        ("release", string_property("Traces of this release only.")),
        (
            "level",
            json!({"type": "string", "enum": ["warning", "error"],
                   "description": "Traces with an observation at this level or worse."}),
        ),
        (
            "min_cost",
            json!({"type": "number", "description": "Traces that cost at least this many US dollars."}),
        ),
        (
            "min_latency_ms",
            json!({"type": "number", "description": "Traces that took at least this long (ms)."}),
        ),
        ("score_name", string_property("Traces with a score of this name.")),
    ] {
        properties.insert(name.into(), schema);
    }
    properties
}

fn tool(
    name: &str,
    title: &str,
    description: &str,
    properties: Map<String, Value>,
    required: &[&str],
) -> Value {
    json!({
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        },
        "annotations": {"title": title, "readOnlyHint": true, "openWorldHint": false},
    })
}

/// Every tool, as `tools/list` answers them.
pub fn definitions() -> Vec<Value> {
    let mut search = trace_filter_properties("matches");
    search.insert(
        "q".into(),
        string_property(
            "The query. Words (every one must match, in any language; case and accents do not matter; identifiers match whole or by part: `billing` finds `BillingService` and `src/billing.rs`), \"exact phrases\", field prefixes (input:, output:, command:, stdout:, stderr:, path:, diff:, cwd:, comment:, name:, tags:, status:, metadata.KEY:, metadata:) and -exclusions. Example: `command:cargo -output:warning \"cannot find\"`.",
        ),
    );
    search.insert(
        "results".into(),
        json!({"type": "string", "enum": ["traces", "observations", "sessions"], "default": "traces",
               "description": "What to list: the traces that match (default), the observations, or the sessions."}),
    );
    search.insert("limit".into(), limit_property(10, 50));
    search.insert("cursor".into(), cursor_property());

    let mut list_traces = trace_filter_properties("traces that started");
    list_traces.insert("limit".into(), limit_property(20, 100));
    list_traces.insert("cursor".into(), cursor_property());

    let mut list_sessions = time_properties("sessions active");
    list_sessions.insert("user_id".into(), string_property("Sessions of this user only."));
    list_sessions.insert("limit".into(), limit_property(20, 100));
    list_sessions.insert("cursor".into(), cursor_property());

    let mut get_trace = Map::new();
    get_trace.insert(
        "trace_id".into(),
        string_property("The trace's id, as search, list_traces or get_session show it."),
    );
    get_trace.insert("preview_chars".into(), preview_property());

    let mut get_observation = Map::new();
    get_observation.insert("trace_id".into(), string_property("The trace's id."));
    get_observation.insert(
        "observation_id".into(),
        string_property("The observation's id, as get_trace shows it in brackets."),
    );

    let mut get_session = Map::new();
    get_session.insert(
        "session_id".into(),
        string_property("The session's id, as list_sessions or a trace shows it."),
    );
    get_session.insert("limit".into(), limit_property(20, 100));
    get_session.insert("cursor".into(), cursor_property());
    get_session.insert("preview_chars".into(), preview_property());

    let mut metrics = time_properties("observations (or scores)");
    for (name, schema) in [
        (
            "view",
            json!({"type": "string", "enum": ["observations", "scores"], "default": "observations",
                   "description": "What to measure: observations (model calls, tool calls, spans) or scores."}),
        ),
        (
            "measures",
            json!({"type": "array", "items": {"type": "string", "enum": [
                "count", "total_cost", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate",
                "mean", "min", "max", "value_p50", "value_p95", "value_p99"]},
                "description": "Columns to show. Observations: count, total_cost (USD), input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, latency_p50_ms, latency_p95_ms, latency_p99_ms, error_rate (default: count, total_cost, input_tokens, output_tokens, latency_p50_ms, latency_p95_ms, error_rate). Scores: count, mean, min, max, value_p50, value_p95, value_p99 (default: count, mean, min, max)."}),
        ),
        (
            "dimensions",
            json!({"type": "array", "maxItems": 2, "items": {"type": "string", "enum": [
                "model", "name", "tool", "type", "user", "level", "environment", "tag", "api_key",
                "evaluator", "source", "data_type"]},
                "description": "Group by up to two: model, name, tool, type, user, level, environment, tag, api_key (observations); name, evaluator, source, data_type (scores)."}),
        ),
        (
            "bucket",
            json!({"type": "string", "enum": ["none", "minute", "hour", "day", "week"], "default": "none",
                   "description": "Time buckets: none (one row per group, highest first; the default), minute, hour, day or week."}),
        ),
        (
            "type",
            string_property("Observations of this type only (generation, tool, span, ...)."),
        ),
        ("model", string_property("Observations of this model only.")),
        (
            "name",
            string_property("Observations (or scores) of this name only."),
        ),
        ("tool", string_property("Tool calls of this tool only.")),
        ("evaluator", string_property("Scores of this evaluator only.")),
        (
            "source",
            string_property("Scores of this source only (api, eval, annotation)."),
        ),
        (
            "include_judges",
            json!({"type": "boolean", "default": false,
                   "description": "Count the LLM judges' own model calls too."}),
        ),
    ] {
        metrics.insert(name.into(), schema);
    }

    let mut get_prompt = Map::new();
    get_prompt.insert("name".into(), string_property("The prompt's name."));
    get_prompt.insert(
        "label".into(),
        string_property(
            "The label of the version to read (production, staging, ...; `latest` is the newest version). Without label or version: production.",
        ),
    );
    get_prompt.insert(
        "version".into(),
        json!({"type": "integer", "minimum": 1, "description": "The version number to read, instead of a label."}),
    );

    vec![
        tool(
            "search",
            "Search traces",
            "Full-text search over what this project's agents said and did: trace and observation inputs and outputs, names, metadata, terminal commands with their output, file paths and diffs, score comments. Lists the traces (or observations, or sessions) that match, newest match first, each with the snippets that matched (the match between « and »). Combine with the trace filters (time, user, session, tags, level, cost...). Then read a hit with get_trace.",
            search,
            &["q"],
        ),
        tool(
            "list_traces",
            "List traces",
            "This project's traces newest first, one line each: id, start time, name, user, session, observation count, latency, cost, tokens, worst level. Filter by time (from/to/since), name, user, session, tags, environment, release, level, min_cost, min_latency_ms, score_name. Then read one with get_trace.",
            list_traces,
            &[],
        ),
        tool(
            "list_sessions",
            "List sessions",
            "This project's sessions (a coding agent's conversation, a chat), most recently active first: id, first and last trace time, trace count, users, observation count, cost, tokens. Filter by time and user. Then read one with get_session.",
            list_sessions,
            &[],
        ),
        tool(
            "get_trace",
            "Read a trace",
            "One trace as compact text: its name, time, user, session, input and output; its observations as a tree (type, name, [id], model, duration, cost, tokens, level and status) with previews of each input and output; its scores, terminal commands, file operations and git links. get_observation shows one observation whole.",
            get_trace,
            &["trace_id"],
        ),
        tool(
            "get_observation",
            "Read one observation whole",
            "One observation of a trace with its input, output, model parameters and metadata uncut (the answer stops at 20,000 characters).",
            get_observation,
            &["trace_id", "observation_id"],
        ),
        tool(
            "get_session",
            "Read a session",
            "A session's traces oldest first, so a coding agent's session reads as a conversation: each trace's line (id, time, name, cost, tokens, level) with its input and output previewed. Read one turn in depth with get_trace.",
            get_session,
            &["session_id"],
        ),
        tool(
            "metrics",
            "Metrics",
            "Cost, tokens, counts, latency percentiles and error rate of this project's observations (or count, mean and percentiles of its scores) as a small table, grouped by up to two dimensions (model, name, tool, type, user, ...) and optionally by time bucket. The last 7 days unless from/since say otherwise. E.g. cost per model this week: dimensions [\"model\"], measures [\"total_cost\", \"count\"], since \"7d\".",
            metrics,
            &[],
        ),
        tool(
            "get_prompt",
            "Get a prompt",
            "A prompt this project manages, by name and label (production unless told otherwise) or version: its version, labels, config and template (a chat prompt's messages by role, {{variables}} as written).",
            get_prompt,
            &["name"],
        ),
    ]
}

/// The names of every tool, for messages.
fn tool_names() -> String {
    definitions()
        .iter()
        .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `arguments` against the tool's input schema's properties and required ones: an
/// unknown argument or a missing one is named, with what the tool takes.
fn check_arguments(definition: &Value, arguments: &Value) -> Result<(), String> {
    let name = definition["name"].as_str().unwrap_or_default();
    let Some(given) = arguments.as_object() else {
        return Err(format!(
            "`arguments` must be an object of named arguments, not {arguments}"
        ));
    };
    let schema = &definition["inputSchema"];
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let takes = || properties.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(unknown) = given.keys().find(|key| !properties.contains_key(*key)) {
        return Err(format!("unknown argument `{unknown}`: {name} takes {}", takes()));
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap_or_default();
        if given.get(required).is_none_or(Value::is_null) {
            return Err(format!(
                "`{required}` is required: {}",
                properties[required]["description"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The arguments as `T`, the argument at fault named.
fn parse<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, CallError> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" {
            CallError::Arguments(format!("invalid arguments for {tool}: {inner}"))
        } else {
            CallError::Arguments(format!("invalid arguments for {tool}: `{path}`: {inner}"))
        }
    })
}

/// Calls the tool `name` with `arguments` (absent: none) for the project of `reads`.
pub async fn call(reads: &Reads<'_>, name: &str, arguments: Option<Value>) -> Result<ToolOutput, CallError> {
    let Some(definition) = definitions().into_iter().find(|tool| tool["name"] == name) else {
        return Err(CallError::UnknownTool(format!(
            "unknown tool {name:?}: the tools are {} (tools/list describes them)",
            tool_names()
        )));
    };
    let mut arguments = match arguments {
        None | Some(Value::Null) => json!({}),
        Some(arguments) => arguments,
    };
    check_arguments(&definition, &arguments)
        .map_err(|message| CallError::Arguments(format!("invalid arguments for {name}: {message}")))?;
    let outcome = match name {
        "search" => {
            let filters = take_filters(&mut arguments);
            search(reads, parse(name, arguments)?, parse(name, filters)?).await
        }
        "list_traces" => {
            let filters = take_filters(&mut arguments);
            list_traces(reads, parse(name, arguments)?, parse(name, filters)?).await
        }
        "list_sessions" => list_sessions(reads, parse(name, arguments)?).await,
        "get_trace" => get_trace(reads, parse(name, arguments)?).await,
        "get_observation" => get_observation(reads, parse(name, arguments)?).await,
        "get_session" => get_session(reads, parse(name, arguments)?).await,
        "metrics" => metrics(reads, parse(name, arguments)?).await,
        "get_prompt" => get_prompt(reads, parse(name, arguments)?).await,
        other => unreachable!("{other} is listed but has no call"),
    };
    Ok(match outcome {
        Ok(output) => output,
        Err(Failure(message)) => ToolOutput::failed(format!("{name} failed: {message}")),
    })
}

/// Tags as an array of strings, or (forgiven) one comma-separated string.
fn tags<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(Option::<Tags>::deserialize(deserializer)?.map(|tags| match tags {
        Tags::List(list) => list.join(","),
        Tags::Text(text) => text,
    }))
}

/// A duration back from now (`30m`, `6h`, `7d`, `2w`) as microseconds.
fn duration_us(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let refuse =
        || format!("since: {text:?} is not a duration; use a number and a unit (s, m, h, d, w): 30m, 6h, 7d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(refuse)?;
    let (count, unit) = text.split_at(split);
    let count: i64 = count.parse().map_err(|_| refuse())?;
    let unit_us: i64 = match unit.trim() {
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 7 * 86_400_000_000,
        _ => return Err(refuse()),
    };
    if count == 0 {
        return Err(refuse());
    }
    count.checked_mul(unit_us).ok_or_else(refuse)
}

/// `from` itself, or `since` back from now; not both.
fn from_or_since(from: Option<String>, since: Option<&str>) -> Result<Option<String>, String> {
    match (from, since) {
        (Some(_), Some(_)) => Err("give `from` or `since`, not both".into()),
        (from, None) => Ok(from),
        (None, Some(since)) => Ok(Some(
            Timestamp::from_micros(Timestamp::now().as_micros() - duration_us(since)?).to_string(),
        )),
    }
}

/// `limit` within 1..=`max`, `default` when absent.
fn limit(value: Option<usize>, default: usize, max: usize) -> Result<usize, String> {
    match value.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("limit: must be between 1 and {max}")),
    }
}

fn preview_chars(value: Option<usize>) -> Result<usize, String> {
    match value.unwrap_or(DEFAULT_PREVIEW_CHARS) {
        n if (20..=MAX_PREVIEW_CHARS).contains(&n) => Ok(n),
        _ => Err(format!(
            "preview_chars: must be between 20 and {MAX_PREVIEW_CHARS}"
        )),
    }
}

/// The arguments of `search` and `list_traces` that are trace filters ([`Filters`]).
const FILTERS: [&str; 13] = [
    "from",
    "to",
    "since",
    "name",
    "user_id",
    "session_id",
    "tags",
    "environment",
    "release",
    "level",
    "min_cost",
    "min_latency_ms",
    "score_name",
];

/// The filter arguments, taken out of `arguments` (read on their own, so that a fault in one
/// is named: serde's `flatten` would lose its name).
fn take_filters(arguments: &mut Value) -> Value {
    let mut filters = Map::new();
    if let Some(arguments) = arguments.as_object_mut() {
        for name in FILTERS {
            if let Some(value) = arguments.remove(name) {
                filters.insert(name.to_owned(), value);
            }
        }
    }
    Value::Object(filters)
}

/// The trace filters of `search` and `list_traces`.
#[derive(Debug, Default, Deserialize)]
struct Filters {
    from: Option<String>,
    to: Option<String>,
    since: Option<String>,
    name: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    #[serde(default, deserialize_with = "tags")]
    tags: Option<String>,
    environment: Option<String>,
    release: Option<String>,
    level: Option<String>,
    min_cost: Option<f64>,
    min_latency_ms: Option<f64>,
    score_name: Option<String>,
}

impl Filters {
    fn trace_filter(self, limit: usize, cursor: Option<String>) -> Result<TraceFilter, String> {
        Ok(TraceFilter {
            project_id: None,
            from: from_or_since(self.from, self.since.as_deref())?,
            to: self.to,
            name: self.name,
            user_id: self.user_id,
            session_id: self.session_id,
            tags: self.tags,
            environment: self.environment,
            release: self.release,
            level: self.level,
            min_cost: self.min_cost,
            min_latency_ms: self.min_latency_ms,
            score_name: self.score_name,
            limit: Some(limit),
            cursor,
        })
    }
}

#[derive(Debug, Deserialize)]
struct SearchArgs {
    q: String,
    results: Option<Results>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn search(reads: &Reads<'_>, args: SearchArgs, filters: Filters) -> Result<ToolOutput, Failure> {
    let limit = limit(args.limit, 10, 50)?;
    let filter = filters.trace_filter(limit, args.cursor)?;
    let results = args.results.unwrap_or_default();
    let params = SearchParams {
        project_id: None,
        q: args.q.clone(),
        results: Some(results),
        from: filter.from,
        to: filter.to,
        name: filter.name,
        user_id: filter.user_id,
        session_id: filter.session_id,
        tags: filter.tags,
        environment: filter.environment,
        release: filter.release,
        level: filter.level,
        min_cost: filter.min_cost,
        min_latency_ms: filter.min_latency_ms,
        score_name: filter.score_name,
        limit: Some(limit),
        cursor: filter.cursor,
    };
    let page = search_read::search(reads.clickhouse, reads.project, &params).await?;
    let results = match results {
        Results::Traces => "traces",
        Results::Observations => "observations",
        Results::Sessions => "sessions",
    };
    Ok(ToolOutput::text(render::search_page(
        &args.q,
        results,
        &page.data,
        page.next_cursor.as_deref(),
    )))
}

#[derive(Debug, Deserialize)]
struct ListTracesArgs {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_traces(
    reads: &Reads<'_>,
    args: ListTracesArgs,
    filters: Filters,
) -> Result<ToolOutput, Failure> {
    let filter = filters.trace_filter(limit(args.limit, 20, 100)?, args.cursor)?;
    let page = traces::trace_list(reads.clickhouse, reads.project, &filter).await?;
    Ok(ToolOutput::text(render::trace_list(
        &page.data,
        page.next_cursor.as_deref(),
    )))
}

#[derive(Debug, Deserialize)]
struct ListSessionsArgs {
    from: Option<String>,
    to: Option<String>,
    since: Option<String>,
    user_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_sessions(reads: &Reads<'_>, args: ListSessionsArgs) -> Result<ToolOutput, Failure> {
    let filter = SessionFilter {
        project_id: None,
        from: from_or_since(args.from, args.since.as_deref())?,
        to: args.to,
        user_id: args.user_id,
        limit: Some(limit(args.limit, 20, 100)?),
        cursor: args.cursor,
    };
    let page = traces::session_list(reads.clickhouse, reads.project, &filter).await?;
    Ok(ToolOutput::text(render::session_list(
        &page.data,
        page.next_cursor.as_deref(),
    )))
}

#[derive(Debug, Deserialize)]
struct GetTraceArgs {
    trace_id: String,
    preview_chars: Option<usize>,
}

async fn get_trace(reads: &Reads<'_>, args: GetTraceArgs) -> Result<ToolOutput, Failure> {
    let preview_chars = preview_chars(args.preview_chars)?;
    let detail = traces::trace_detail(reads.clickhouse, reads.project, &args.trace_id)
        .await?
        .ok_or_else(|| {
            format!(
                "no trace {:?} in this project; find one with search or list_traces",
                args.trace_id
            )
        })?;
    Ok(ToolOutput::text(render::trace_detail(&detail, preview_chars)))
}

#[derive(Debug, Deserialize)]
struct GetObservationArgs {
    trace_id: String,
    observation_id: String,
}

async fn get_observation(reads: &Reads<'_>, args: GetObservationArgs) -> Result<ToolOutput, Failure> {
    let row = traces::observation_detail(
        reads.clickhouse,
        reads.project,
        &args.trace_id,
        &args.observation_id,
    )
    .await?
    .ok_or_else(|| {
        format!(
            "no observation {:?} in trace {:?} of this project; get_trace lists a trace's observations",
            args.observation_id, args.trace_id
        )
    })?;
    Ok(ToolOutput::text(render::observation(&row)))
}

#[derive(Debug, Deserialize)]
struct GetSessionArgs {
    session_id: String,
    limit: Option<usize>,
    cursor: Option<String>,
    preview_chars: Option<usize>,
}

async fn get_session(reads: &Reads<'_>, args: GetSessionArgs) -> Result<ToolOutput, Failure> {
    let preview_chars = preview_chars(args.preview_chars)?;
    let limit = limit(args.limit, 20, 100)?;
    let page = traces::session_detail(
        reads.clickhouse,
        reads.project,
        &args.session_id,
        args.cursor,
        Some(limit),
    )
    .await?
    .ok_or_else(|| {
        format!(
            "no session {:?} in this project; find one with list_sessions or search (results: sessions)",
            args.session_id
        )
    })?;
    Ok(ToolOutput::text(render::session_page(&page, preview_chars)))
}

#[derive(Debug, Deserialize)]
struct MetricsArgs {
    view: Option<String>,
    from: Option<String>,
    to: Option<String>,
    since: Option<String>,
    bucket: Option<String>,
    dimensions: Option<Vec<String>>,
    measures: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Option<String>,
    model: Option<String>,
    name: Option<String>,
    tool: Option<String>,
    evaluator: Option<String>,
    source: Option<String>,
    include_judges: Option<bool>,
}

const OBSERVATION_MEASURES: [&str; 10] = [
    "count",
    "total_cost",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
];
const SCORE_MEASURES: [&str; 7] = [
    "count",
    "mean",
    "min",
    "max",
    "value_p50",
    "value_p95",
    "value_p99",
];

async fn metrics(reads: &Reads<'_>, args: MetricsArgs) -> Result<ToolOutput, Failure> {
    let since = match (&args.from, &args.since) {
        (None, None) => Some(DEFAULT_METRICS_WINDOW),
        (_, since) => since.as_deref(),
    };
    let from = from_or_since(args.from, since)?;
    let to = args.to.unwrap_or_else(|| Timestamp::now().to_string());
    let bucket = args.bucket.unwrap_or_else(|| "none".into());
    let params = MetricsParams {
        project_id: None,
        view: args.view,
        from,
        to: Some(to),
        bucket: Some(bucket.clone()),
        dimensions: args.dimensions.map(|d| d.join(",")),
        kind: args.kind,
        model: args.model,
        name: args.name,
        tool: args.tool,
        api_key: None,
        evaluator: args.evaluator,
        source: args.source,
        include_judges: args.include_judges,
    };
    let query = MetricsQuery::from_params(&params)?;
    let (known, default): (&[&str], &[&str]) = match query.view {
        View::Observations => (
            &OBSERVATION_MEASURES,
            &[
                "count",
                "total_cost",
                "input_tokens",
                "output_tokens",
                "latency_p50_ms",
                "latency_p95_ms",
                "error_rate",
            ],
        ),
        View::Scores => (&SCORE_MEASURES, &["count", "mean", "min", "max"]),
    };
    let measures: Vec<&str> = match &args.measures {
        None => default.to_vec(),
        Some(asked) if asked.is_empty() => default.to_vec(),
        Some(asked) => asked
            .iter()
            .map(|m| {
                known.iter().copied().find(|k| k == m).ok_or_else(|| {
                    format!(
                        "measures: {m:?} is not a measure of the {} view; use {}",
                        params.view.as_deref().unwrap_or("observations"),
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let answer = metrics::metrics(reads.clickhouse, reads.project, &query).await?;
    let mut heading = format!(
        "{} from {} to {}",
        answer.view,
        render::time(query.from_us),
        render::time(query.to_us)
    );
    if !answer.dimensions.is_empty() {
        heading.push_str(&format!(", by {}", answer.dimensions.join(" and ")));
    }
    let bucketed = bucket != "none";
    if bucketed {
        heading.push_str(&format!(", per {bucket}"));
    } else if let Some(first) = measures.first() {
        heading.push_str(&format!(", highest {first} first"));
    }
    for (dimension, value) in &query.filters {
        heading.push_str(&format!(", {} = {value:?}", dimension.name));
    }
    heading.push(':');
    Ok(ToolOutput::text(render::metrics_table(
        &answer, &measures, bucketed, &heading,
    )))
}

#[derive(Debug, Deserialize)]
struct GetPromptArgs {
    name: String,
    label: Option<String>,
    version: Option<i32>,
}

async fn get_prompt(reads: &Reads<'_>, args: GetPromptArgs) -> Result<ToolOutput, Failure> {
    // PostgreSQL stores NUL in no text: no prompt has it, and a query with it would fail.
    for (field, value) in [("name", Some(&args.name)), ("label", args.label.as_ref())] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(format!("{field}: must not contain the NUL character (\\u0000)").into());
        }
    }
    let selector = match (args.version, args.label) {
        (Some(_), Some(_)) => return Err("give `label` or `version`, not both".to_owned().into()),
        (Some(version), None) => Selector::Version(version),
        (None, label) => Selector::Label(label.unwrap_or_else(|| prompts::PRODUCTION.to_owned())),
    };
    let client = reads.postgres.get().await?;
    let version = match prompts::get(&**client, reads.project, &args.name, &selector).await {
        Ok(version) => version,
        Err(ControlError::NotFound(_)) => {
            let which = match &selector {
                Selector::Version(v) => format!("version {v}"),
                Selector::Label(l) => format!("label {l:?}"),
            };
            return Err(format!(
                "no prompt {:?} with {which} in this project (without label or version the `production` label is read; `latest` is the newest version)",
                args.name
            )
            .into());
        }
        Err(other) => return Err(other.into()),
    };
    Ok(ToolOutput::text(render::prompt(&version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(name: &str) -> Value {
        definitions()
            .into_iter()
            .find(|tool| tool["name"] == name)
            .unwrap()
    }

    #[test]
    fn every_tool_has_a_schema_an_agent_can_act_on() {
        let tools = definitions();
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "search",
                "list_traces",
                "list_sessions",
                "get_trace",
                "get_observation",
                "get_session",
                "metrics",
                "get_prompt"
            ]
        );
        for tool in &tools {
            let schema = &tool["inputSchema"];
            assert_eq!(schema["type"], "object", "{tool}");
            assert!(tool["description"].as_str().unwrap().len() > 80, "{tool}");
            for (name, property) in schema["properties"].as_object().unwrap() {
                assert!(
                    property["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{}: {name} has no description",
                    tool["name"]
                );
            }
            for required in schema["required"].as_array().unwrap() {
                assert!(
                    schema["properties"][required.as_str().unwrap()].is_object(),
                    "{tool}"
                );
            }
            // Every schema compiles as JSON Schema.
            jsonschema::validator_for(schema).unwrap();
        }
        let filters: Vec<String> = trace_filter_properties("x").keys().cloned().collect();
        assert_eq!(
            filters, FILTERS,
            "the filters read apart are the filters described"
        );
    }

    #[test]
    fn arguments_are_checked_against_the_schema_naming_the_argument() {
        let get_trace = definition("get_trace");
        assert_eq!(
            check_arguments(&get_trace, &json!({"trace_id": "t1", "preview_chars": 50})),
            Ok(())
        );
        assert_eq!(
            check_arguments(&get_trace, &json!({})).unwrap_err(),
            "`trace_id` is required: The trace's id, as search, list_traces or get_session show it."
        );
        assert_eq!(
            check_arguments(&get_trace, &json!({"trace_id": "t", "id": "x"})).unwrap_err(),
            "unknown argument `id`: get_trace takes trace_id, preview_chars"
        );
        assert!(
            check_arguments(&get_trace, &json!(["t"]))
                .unwrap_err()
                .contains("must be an object")
        );
        let wrong: Result<GetTraceArgs, _> = parse("get_trace", json!({"trace_id": 5}));
        assert_eq!(
            wrong.unwrap_err().message(),
            "invalid arguments for get_trace: `trace_id`: invalid type: integer `5`, expected a string"
        );
        let mut arguments = json!({"q": "x", "min_cost": "a lot"});
        let filters = take_filters(&mut arguments);
        assert_eq!(arguments, json!({"q": "x"}));
        let wrong: Result<Filters, _> = parse("search", filters);
        assert_eq!(
            wrong.unwrap_err().message(),
            "invalid arguments for search: `min_cost`: invalid type: string \"a lot\", expected f64"
        );
    }

    #[test]
    fn filters_take_tags_as_a_list_or_text_and_since_as_a_duration() {
        let filters: Filters = parse("list_traces", json!({"tags": ["a", "b"], "since": "2h"})).unwrap();
        let filter = filters.trace_filter(5, None).unwrap();
        assert_eq!(filter.tags.as_deref(), Some("a,b"));
        let from = Timestamp::parse(filter.from.as_deref().unwrap())
            .unwrap()
            .as_micros();
        let two_hours_ago = Timestamp::now().as_micros() - 2 * 3_600_000_000;
        assert!((from - two_hours_ago).abs() < 60_000_000, "{filter:?}");
        let filters: Filters = parse("list_traces", json!({"tags": "a,b"})).unwrap();
        assert_eq!(filters.tags.as_deref(), Some("a,b"));
        assert_eq!(duration_us("30m"), Ok(30 * 60_000_000));
        assert_eq!(duration_us("1w"), Ok(7 * 86_400_000_000));
        assert!(duration_us("soon").unwrap_err().contains("30m, 6h, 7d"));
        assert!(duration_us("0d").is_err());
        assert!(duration_us("99999999999999w").is_err());
        assert_eq!(
            from_or_since(Some("2026-01-01T00:00:00Z".into()), Some("1d")).unwrap_err(),
            "give `from` or `since`, not both"
        );
        assert_eq!(limit(None, 20, 100), Ok(20));
        assert_eq!(
            limit(Some(101), 20, 100).unwrap_err(),
            "limit: must be between 1 and 100"
        );
    }

    #[test]
    fn results_are_text_and_failures_say_so() {
        let output = ToolOutput::failed("get_trace failed: no trace".into());
        assert_eq!(
            output.result(),
            json!({"content": [{"type": "text", "text": "get_trace failed: no trace"}], "isError": true})
        );
        let long = ToolOutput::text("x".repeat(MAX_TEXT_CHARS + 10));
        assert!(long.text.contains("[answer cut at 20000 characters"));
        assert!(!long.is_error);
    }
}
