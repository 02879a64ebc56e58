//! OTLP log records → observations: coding agents' events, as Claude Code and Codex export them
//! (see `../shared/reference/coding-agent-otel.md`; each fixture says which version it follows).
//!
//! - The event's name is the `event.name` attribute (Claude Code unprefixed, Codex
//!   `codex.*`); Codex's `eventName` is a source location and its body is empty, so neither is
//!   used when `event.name` is present. Its time is the record's, else the observed time (Codex
//!   sends `timeUnixNano: 0`), else `event.timestamp`.
//! - The session (`session.id`, Codex's `conversation.id`) is the trace; one trace event per
//!   session and export names it after the service. A record with no session but a trace id
//!   belongs to that OpenTelemetry trace, which its spans name: its trace patch neither names
//!   nor times the trace, nor gives it a session.
//! - OpenTelemetry GenAI content events (`gen_ai.{system,user,assistant,tool}.message`,
//!   `gen_ai.choice`, as `opentelemetry-instrumentation-openai-v2` sends them with
//!   `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, and the newer conventions'
//!   `gen_ai.client.inference.operation.details`) carry their generation's trace and span ids:
//!   the events of one span in one export become one `observation_patch` of that generation
//!   (observation id = span id), its input the messages in order and its output the choices
//!   (`chat.rs`). The span (`spans.rs`) is a patch too, and the ETL merges both in either order.
//!   A span's events split across exports: a later export's messages replace the input an
//!   earlier one set (and likewise choices the output), so an input split between two exports
//!   keeps only the later part; the usual split, messages in one and choices in the next, is
//!   whole.
//! - Claude Code `api_request` / `api_error` → a generation (model, tokens, cost). Codex sends
//!   token counts on a separate `sse_event` record of kind `response.completed`: within one
//!   export it is paired with the conversation's preceding `api_request` into one generation;
//!   a completion without one becomes a generation alone, and an `api_request` without one a
//!   span (its completion may be in the next export).
//! - `tool_result` → a tool call; shell tools also a terminal command (command, working
//!   directory, exit code — recovered from the error or output text when not sent — duration,
//!   output), file tools a file operation, and Codex's `apply_patch` one file operation per file
//!   its patch touches.
//! - Claude Code's `prompt.id` ties a prompt's API requests and tool results together: the
//!   `user_prompt` record becomes a span named `prompt` that parents them, so a session reads as
//!   a tree.
//! - Everything else (`user_prompt` in Codex, `tool_decision`, `conversation_starts`, ...) → an
//!   event, with all attributes as metadata.
//!
//! Ids are derived from the record's content, so a retried export does not duplicate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agenttrace_schemas::Timestamp;
use serde_json::{Map, Value, json};

use super::chat::{genai_choice, genai_event_message, genai_message_role};
use super::common::{
    Attributes, Mapped, USAGE_KEYS, any_to_json, attributes_to_map, compact, content_id, envelope, oversized,
    time, usage,
};
use super::proto::{ExportLogsServiceRequest, LogRecord, Value as Any};

const SHELL_TOOLS: &[&str] = &[
    "Bash",
    "shell",
    "local_shell",
    "shell_command",
    "exec_command",
    "container.exec",
];

/// One record with what every mapping step needs from it.
struct Record<'a> {
    record: &'a LogRecord,
    attributes: Attributes<'a>,
    /// `event.name` without the agent's prefix.
    name: String,
    full_name: String,
    at_nano: u64,
    /// The trace: the session (`session.id`, `conversation.id`), else the record's own trace id,
    /// else the service's day.
    session: String,
    /// Whether `session` is a session the record names, not its trace id or a day.
    named_session: bool,
    id: String,
}

fn event_name(record: &LogRecord, attributes: &Attributes) -> String {
    attributes
        .text(&["event.name"])
        .or_else(|| Some(record.event_name.clone()).filter(|n| !n.is_empty() && !n.contains(' ')))
        .or_else(|| match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Any::StringValue(s)) if !s.contains(' ') && !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "log".to_owned())
}

/// A log record's body when it says something (a message), not only the event's name.
fn message(record: &Record) -> Option<Value> {
    let body = record.record.body.as_ref()?;
    match body.value.as_ref()? {
        Any::StringValue(text) if text.is_empty() || *text == record.full_name => None,
        _ => Some(any_to_json(body)).filter(|value| !value.is_null()),
    }
}

fn record<'a>(
    record: &'a LogRecord,
    service: &str,
    max_attribute_bytes: usize,
) -> Result<Record<'a>, String> {
    if let Some(error) = oversized(&record.attributes, max_attribute_bytes) {
        return Err(format!("log record: {error}"));
    }
    let attributes = Attributes::new(&record.attributes);
    let full_name = event_name(record, &attributes);
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
            // Found by fuzzing: a time before 1970 or far ahead overflowed.
            u64::try_from(Timestamp::parse(&text).ok()?.as_micros())
                .ok()?
                .checked_mul(1_000)
        })
        .ok_or_else(|| format!("log record {full_name:?}: it has no time"))?;
    let named = attributes.text(&["session.id", "conversation.id", "gen_ai.conversation.id"]);
    let named_session = named.is_some();
    let session = named
        .or_else(|| trace_of(record))
        .unwrap_or_else(|| format!("{service}-{}", at_nano / 86_400_000_000_000));
    // A content hash makes the id: the same record sent twice is one event.
    let mut parts: Vec<Vec<u8>> = vec![
        session.clone().into_bytes(),
        at_nano.to_le_bytes().to_vec(),
        full_name.clone().into_bytes(),
    ];
    for kv in &record.attributes {
        parts.push(kv.key.clone().into_bytes());
        parts.push(
            kv.value
                .as_ref()
                .map(any_to_json)
                .unwrap_or_default()
                .to_string()
                .into_bytes(),
        );
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let id = format!("{service}-{}", content_id(&parts));
    Ok(Record {
        record,
        attributes,
        name,
        full_name,
        at_nano,
        session,
        named_session,
        id,
    })
}

/// A record's trace id as hex, when it has a valid one.
fn trace_of(record: &LogRecord) -> Option<String> {
    (record.trace_id.len() == 16 && record.trace_id.iter().any(|b| *b != 0))
        .then(|| hex::encode(&record.trace_id))
}

/// A record's span id as hex, when it has a valid one.
fn span_of(record: &LogRecord) -> Option<String> {
    (record.span_id.len() == 8 && record.span_id.iter().any(|b| *b != 0))
        .then(|| hex::encode(&record.span_id))
}

/// The GenAI event that carries a conversation's content, by its name (`event.name` or the
/// record's EventName): a message, a choice, or the newer conventions' one event with all of it.
fn is_genai_content(name: &str) -> bool {
    name == "gen_ai.choice"
        || name == "gen_ai.client.inference.operation.details"
        || genai_message_role(name).is_some()
}

/// The patch of the generation (span) that GenAI events belong to: its input, the messages in
/// the order the request lists them, and its output, the choices by index. A request with only
/// messages sets only the input, and one with only choices only the output.
fn genai_patch(records: &[&Record], trace: &str, span: &str) -> Value {
    let mut input = Vec::new();
    let mut choices = Vec::new();
    let mut details_input = None;
    let mut details_output = None;
    for record in records {
        let body = record.record.body.as_ref().map_or(Value::Null, any_to_json);
        if record.full_name == "gen_ai.choice" {
            choices.push(genai_choice(&body));
        } else if record.full_name == "gen_ai.client.inference.operation.details" {
            details_input = record.attributes.payload(&["gen_ai.input.messages"]);
            details_output = record.attributes.payload(&["gen_ai.output.messages"]);
        } else if let Some(role) = genai_message_role(&record.full_name) {
            input.push(genai_event_message(role, &body));
        }
    }
    choices.sort_by_key(|(index, _)| *index);
    compact(json!({
        "id": span,
        "trace_id": trace,
        "input": if input.is_empty() { details_input } else { Some(Value::Array(input)) },
        "output": if choices.is_empty() {
            details_output
        } else {
            Some(Value::Array(choices.into_iter().map(|(_, message)| message).collect()))
        },
    }))
}

/// The GenAI content events of one export grouped by the span they belong to: the first
/// record's index maps to the span's patch, every other record of the group to nothing.
fn genai_patches(records: &[Result<Record, String>]) -> HashMap<usize, Option<Value>> {
    let mut spans: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let Ok(record) = record else { continue };
        if !is_genai_content(&record.full_name) {
            continue;
        }
        if let (Some(trace), Some(span)) = (trace_of(record.record), span_of(record.record)) {
            spans.entry((trace, span)).or_default().push(index);
        }
    }
    let mut out = HashMap::new();
    for ((trace, span), indexes) in spans {
        let group: Vec<&Record> = indexes.iter().filter_map(|i| records[*i].as_ref().ok()).collect();
        let ids: Vec<&[u8]> = group.iter().map(|r| r.id.as_bytes()).collect();
        let at = group.iter().map(|r| r.at_nano).max().unwrap_or_default();
        let patch = genai_patch(&group, &trace, &span);
        let event = envelope(
            format!("otlp-genai-{trace}-{span}-{}", content_id(&ids)),
            "observation_patch",
            at,
            patch,
        );
        out.insert(indexes[0], Some(event));
        for index in &indexes[1..] {
            out.insert(*index, None);
        }
    }
    out
}

/// Maps every log record of an OTLP logs export (one result per record, in order).
pub fn map(request: &ExportLogsServiceRequest, max_attribute_bytes: usize) -> Vec<Mapped> {
    let mut out = Vec::new();
    let mut traced = BTreeSet::new();
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
        let records: Vec<Result<Record, String>> = resource_logs
            .scope_logs
            .iter()
            .flat_map(|scope| &scope.log_records)
            .map(|r| record(r, &service, max_attribute_bytes))
            .collect();
        let plan = Plan::new(&records);
        let mut genai = genai_patches(&records);
        for (index, item) in records.iter().enumerate() {
            out.push(match item {
                Err(error) => Err(error.clone()),
                // GenAI content events fold into their generation, one patch per span.
                Ok(_) if genai.contains_key(&index) => {
                    Ok(genai.remove(&index).flatten().into_iter().collect())
                }
                Ok(record) => Ok(record_events(
                    record,
                    plan.request_of
                        .get(&index)
                        .and_then(|i| records[*i].as_ref().ok()),
                    plan.completion_of.contains_key(&index),
                    &plan,
                    &service,
                    &resource,
                    &resource_metadata,
                    &mut traced,
                )),
            });
        }
    }
    out
}

/// What one record's mapping needs to know about the others in its export.
struct Plan {
    /// Codex: the completion record paired with an `api_request` record (by index), and back.
    completion_of: HashMap<usize, usize>,
    request_of: HashMap<usize, usize>,
    /// Claude Code: each prompt's span id, and the end of its last record.
    prompt_spans: HashMap<String, (String, u64)>,
}

fn has_counts(record: &Record) -> bool {
    usage(&record.attributes, &USAGE_KEYS).is_some()
}

fn is_completion(record: &Record) -> bool {
    record.name == "sse_event"
        && record.attributes.text(&["event.kind"]).as_deref() == Some("response.completed")
        && has_counts(record)
}

impl Plan {
    fn new(records: &[Result<Record, String>]) -> Plan {
        let mut plan = Plan {
            completion_of: HashMap::new(),
            request_of: HashMap::new(),
            prompt_spans: HashMap::new(),
        };
        let ok: Vec<(usize, &Record)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|r| (i, r)))
            .collect();
        let mut completions: Vec<(usize, &Record)> =
            ok.iter().copied().filter(|(_, r)| is_completion(r)).collect();
        completions.sort_by_key(|(_, r)| r.at_nano);
        for (completion, done) in completions {
            let request = ok
                .iter()
                .filter(|(i, r)| {
                    r.name == "api_request"
                        && r.session == done.session
                        && r.at_nano <= done.at_nano
                        && r.attributes.text(&["error.message"]).is_none()
                        && !plan.completion_of.contains_key(i)
                })
                .max_by_key(|(_, r)| r.at_nano);
            if let Some((request, _)) = request {
                plan.completion_of.insert(*request, completion);
                plan.request_of.insert(completion, *request);
            }
        }
        for (_, record) in &ok {
            if record.name == "user_prompt"
                && let Some(prompt) = record.attributes.text(&["prompt.id"])
            {
                plan.prompt_spans
                    .insert(prompt, (format!("{}-prompt", record.id), record.at_nano));
            }
        }
        for (_, record) in &ok {
            if let Some(prompt) = record.attributes.text(&["prompt.id"])
                && let Some((_, end)) = plan.prompt_spans.get_mut(&prompt)
            {
                *end = (*end).max(record.at_nano);
            }
        }
        plan
    }
}

/// An exit code in an error or output text: Claude Code's `Exit code 101`, Codex's
/// `Process exited with code 1`, shells' `exit status 2`.
fn exit_code_in(text: &str) -> Option<i32> {
    let lower = text.to_ascii_lowercase();
    ["exited with code", "exit code", "exit status"]
        .iter()
        .filter_map(|phrase| {
            let at = lower.find(phrase)?;
            let rest = lower[at + phrase.len()..].trim_start_matches([':', ' ']);
            let end = rest
                .char_indices()
                .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
                .map_or(rest.len(), |(i, _)| i);
            Some((at, rest[..end].parse().ok()?))
        })
        .min_by_key(|(at, _)| *at)
        .map(|(_, code)| code)
}

/// A tool's parameters: Claude Code sends `tool_parameters` or `tool_input` (JSON text), Codex
/// `arguments` (JSON text, or the raw patch of a freeform `apply_patch`).
fn tool_parameters(attributes: &Attributes) -> Option<Value> {
    let parameters = attributes.payload(&["tool_parameters", "arguments"]);
    match (parameters, attributes.payload(&["tool_input"])) {
        (Some(Value::Object(mut parameters)), Some(Value::Object(input))) => {
            for (key, value) in input {
                parameters.entry(key).or_insert(value);
            }
            Some(Value::Object(parameters))
        }
        (Some(parameters), _) => Some(parameters),
        (None, input) => input,
    }
}

fn shell_command(parameters: &Value) -> Option<String> {
    ["full_command", "command", "cmd", "bash_command"]
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

/// One file an `apply_patch` patch touches.
#[derive(Debug, PartialEq)]
struct PatchedFile {
    operation: &'static str,
    path: String,
    new_path: Option<String>,
    added: u32,
    removed: u32,
    diff: String,
}

/// The files of a Codex patch (`*** Begin Patch` ... `*** End Patch`).
fn patched_files(patch: &str) -> Vec<PatchedFile> {
    let mut files: Vec<PatchedFile> = Vec::new();
    for line in patch.lines() {
        let header = [
            ("*** Add File: ", "create"),
            ("*** Update File: ", "edit"),
            ("*** Delete File: ", "delete"),
        ]
        .iter()
        .find_map(|(prefix, operation)| line.strip_prefix(prefix).map(|path| (*operation, path)));
        if let Some((operation, path)) = header {
            files.push(PatchedFile {
                operation,
                path: path.trim().to_owned(),
                new_path: None,
                added: 0,
                removed: 0,
                diff: String::new(),
            });
            continue;
        }
        let Some(file) = files.last_mut() else { continue };
        if let Some(target) = line.strip_prefix("*** Move to: ") {
            file.operation = "rename";
            file.new_path = Some(target.trim().to_owned());
            continue;
        }
        if line.starts_with("*** ") {
            continue;
        }
        if line.starts_with('+') {
            file.added += 1;
        } else if line.starts_with('-') {
            file.removed += 1;
        }
        file.diff.push_str(line);
        file.diff.push('\n');
    }
    files
}

fn patch_text(parameters: &Value) -> Option<&str> {
    match parameters {
        Value::String(text) => Some(text),
        other => ["input", "patch"].iter().find_map(|key| other.get(key)?.as_str()),
    }
}

/// When a record started: its time less its `duration_ms` (agents log when something ended).
fn started(record: &Record) -> u64 {
    let duration_us = record
        .attributes
        .number(&["duration_ms"])
        .map_or(0, |ms| (ms * 1000.0).max(0.0) as u64);
    record.at_nano.saturating_sub(duration_us.saturating_mul(1_000))
}

/// `request` is the Codex `api_request` paired with this completion; `paired` says this record
/// is such a request (mapped with its completion instead).
#[allow(clippy::too_many_arguments)]
fn record_events(
    record: &Record,
    request: Option<&Record>,
    paired: bool,
    plan: &Plan,
    service: &str,
    resource: &Attributes,
    resource_metadata: &Map<String, Value>,
    traced: &mut BTreeSet<String>,
) -> Vec<Value> {
    let attributes = &record.attributes;
    let id = record.id.as_str();
    let session = record.session.as_str();
    let mut events = Vec::new();
    // A Codex request paired with its completion is mapped with the completion's record.
    if paired {
        return events;
    }
    let mut metadata = resource_metadata.clone();
    metadata.extend(attributes_to_map(&record.record.attributes, ""));
    if let Some(request) = request {
        metadata.extend(attributes_to_map(&request.record.attributes, "request."));
    }
    metadata.insert("otel.event.name".into(), json!(record.full_name));
    let end = record.at_nano;
    // A paired completion's call started when its request did.
    let start = request.map_or_else(|| started(record), started);
    let success = attributes.flag(&["success"]);
    let error = attributes.text(&["error", "error.message"]);
    let status = attributes
        .count(&["status_code", "http.response.status_code"])
        .or_else(|| request.and_then(|r| r.attributes.count(&["http.response.status_code"])));
    let failed = success == Some(false)
        || record.name == "api_error"
        || error.is_some()
        || status.is_some_and(|code| code >= 400);
    let tool_name = attributes.text(&["tool_name", "name", "tool.name", "gen_ai.tool.name"]);
    let model = attributes
        .text(&["model", "gen_ai.request.model", "gen_ai.response.model"])
        .or_else(|| request.and_then(|r| r.attributes.text(&["model"])));
    let kind = match record.name.as_str() {
        "api_request" | "api_error" if attributes.has_prefix("cost_usd") || has_counts(record) => {
            "generation"
        }
        "api_error" => "generation",
        "api_request" => "span",
        _ if is_completion(record) => "generation",
        "tool_result" => "tool_call",
        "user_prompt" if attributes.text(&["prompt.id"]).is_some() => "span",
        _ => "event",
    };
    let name = match kind {
        "tool_call" => tool_name.clone().unwrap_or_else(|| record.name.clone()),
        "span" if record.name == "user_prompt" => "prompt".to_owned(),
        "generation" if record.name == "sse_event" => "api_request".to_owned(),
        _ => record.name.clone(),
    };
    let parameters = tool_parameters(attributes);
    let input = match record.name.as_str() {
        "tool_result" => parameters.clone(),
        _ => attributes.payload(&["prompt", "gen_ai.prompt"]),
    };
    let parent = attributes
        .text(&["prompt.id"])
        .and_then(|prompt| plan.prompt_spans.get(&prompt))
        .map(|(span, _)| span.clone())
        .filter(|span| *span != format!("{id}-prompt"));
    let prompt_span = (kind == "span" && record.name == "user_prompt")
        .then(|| attributes.text(&["prompt.id"]))
        .flatten()
        .and_then(|prompt| plan.prompt_spans.get(&prompt));
    let (observation_id, end_time) = match prompt_span {
        Some((span, last)) => (span.clone(), time(*last)),
        None => (id.to_owned(), time(end)),
    };
    let observation = compact(json!({
        "id": observation_id,
        "trace_id": session,
        "parent_observation_id": parent,
        "type": kind,
        "name": name,
        "start_time": time(start),
        "end_time": end_time,
        "level": if failed { "error" } else { "default" },
        "status_message": if failed {
            Some(error.clone().or_else(|| status.map(|s| format!("HTTP {s}"))).unwrap_or_else(|| "failed".to_owned()))
        } else {
            None
        },
        "input": input,
        "output": attributes.payload(&["output", "tool_result", "response"]).or_else(|| message(record)),
        "metadata": metadata,
        "model": if kind == "generation" { model } else { None },
        "usage": if kind == "generation" { usage(attributes, &USAGE_KEYS) } else { None },
        "cost": if kind == "generation" {
            attributes.number(&["cost_usd", "gen_ai.usage.cost"]).map(|total| json!({ "total": total }))
        } else {
            None
        },
        "tool_name": if kind == "tool_call" { tool_name.clone() } else { None },
        "tool_call_id": if kind == "tool_call" { attributes.text(&["call_id", "tool_use_id", "gen_ai.tool.call.id"]) } else { None },
    }));
    events.push(envelope(
        format!("otlp-log-{id}"),
        "observation",
        start,
        observation,
    ));

    if kind == "tool_call" {
        let tool = tool_name.as_deref().unwrap_or_default();
        let parameters = parameters.unwrap_or(Value::Null);
        let output = attributes.text(&["output", "tool_result"]);
        if SHELL_TOOLS.contains(&tool)
            && let Some(command) = shell_command(&parameters)
        {
            let exit_code = attributes
                .number(&["exit_code"])
                .map(|c| c as i32)
                .or_else(|| error.as_deref().and_then(exit_code_in))
                .or_else(|| output.as_deref().and_then(exit_code_in))
                .or(match success {
                    Some(true) => Some(0),
                    _ => None,
                });
            let cwd = ["workdir", "cwd"]
                .iter()
                .find_map(|k| parameters.get(*k)?.as_str());
            let body = compact(json!({
                "id": format!("{id}-command"),
                "trace_id": session,
                "observation_id": id,
                "timestamp": time(start),
                "command": command,
                "cwd": cwd,
                "exit_code": exit_code,
                "duration_ms": attributes.count(&["duration_ms"]),
                "stdout": output,
                "stderr": if failed { error.clone() } else { None },
            }));
            events.push(envelope(
                format!("otlp-log-{id}-command"),
                "terminal_command",
                start,
                body,
            ));
        }
        if tool == "apply_patch" {
            let files = patch_text(&parameters).map(patched_files).unwrap_or_default();
            for (n, file) in files.into_iter().enumerate() {
                let body = compact(json!({
                    "id": format!("{id}-file-{n}"),
                    "trace_id": session,
                    "observation_id": id,
                    "timestamp": time(start),
                    "operation": file.operation,
                    "path": file.path,
                    "new_path": file.new_path,
                    "lines_added": file.added,
                    "lines_removed": file.removed,
                    "diff": (!file.diff.is_empty()).then_some(file.diff),
                }));
                events.push(envelope(
                    format!("otlp-log-{id}-file-{n}"),
                    "file_operation",
                    start,
                    body,
                ));
            }
        } else {
            let operation = match tool {
                "Edit" | "MultiEdit" | "NotebookEdit" => Some("edit"),
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
    }
    // The session's trace, once per export (a later export of the same session updates it).
    // A record in an OpenTelemetry trace (its trace id, no session named) leaves naming, timing
    // and the session to the trace's spans: the trace is not a session, so it has none.
    if traced.insert(session.to_owned()) {
        let traced_by_spans = !record.named_session && trace_of(record.record).is_some();
        let trace = compact(json!({
            "id": session,
            "timestamp": (!traced_by_spans).then(|| time(record.at_nano)),
            "name": (!traced_by_spans).then_some(service),
            "session_id": (!traced_by_spans).then_some(session),
            "user_id": attributes.text(&["user.email", "user.id", "user.account_uuid"]),
            "release": resource.text(&["service.version"]),
            "environment": resource.text(&["env", "deployment.environment.name", "deployment.environment"]),
            "tags": (!traced_by_spans).then(|| [format!("agent:{service}")]),
            "metadata": resource_metadata,
        }));
        events.push(envelope(
            format!("otlp-session-{session}"),
            "trace_patch",
            record.at_nano,
            trace,
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_found_in_agents_texts() {
        assert_eq!(exit_code_in("Exit code 101\nerror: test failed"), Some(101));
        assert_eq!(
            exit_code_in("Chunk ID: 1\nWall time: 0.2s\nProcess exited with code 2\nOutput:"),
            Some(2)
        );
        assert_eq!(exit_code_in("exit status 127"), Some(127));
        assert_eq!(exit_code_in("all good"), None);
    }

    #[test]
    fn a_codex_patch_touches_one_file_each() {
        let patch = "*** Begin Patch\n*** Update File: src/a.rs\n@@\n-old\n+new\n+more\n*** Add File: src/b.rs\n+fn b() {}\n*** Delete File: src/c.rs\n*** Update File: src/d.rs\n*** Move to: src/e.rs\n*** End Patch\n";
        let files = patched_files(patch);
        let summary: Vec<(&str, &str, u32, u32)> = files
            .iter()
            .map(|f| (f.operation, f.path.as_str(), f.added, f.removed))
            .collect();
        assert_eq!(
            summary,
            [
                ("edit", "src/a.rs", 2, 1),
                ("create", "src/b.rs", 1, 0),
                ("delete", "src/c.rs", 0, 0),
                ("rename", "src/d.rs", 0, 0)
            ]
        );
        assert_eq!(files[3].new_path.as_deref(), Some("src/e.rs"));
    }
}
