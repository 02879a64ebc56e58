//! Mapping real OTLP payloads: protobuf written by the OpenTelemetry Python SDK's encoders
//! (`edge/tests/fixtures/make_fixtures.py`), and OTLP JSON as the JavaScript exporters, Codex
//! and the dialect fixture (Langfuse, OpenInference, Vercel AI SDK, GenAI) send it.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::TimeWindow;
use serde_json::Value;

use super::*;

const TRACES_PB: &[u8] = include_bytes!("../../tests/fixtures/traces.pb");
const CLAUDE_CODE_LOGS_PB: &[u8] = include_bytes!("../../tests/fixtures/claude_code_logs.pb");
const METRICS_PB: &[u8] = include_bytes!("../../tests/fixtures/metrics.pb");
const GENAI_TRACES_JSON: &[u8] = include_bytes!("../../tests/fixtures/genai_traces.json");
const DIALECT_TRACES_JSON: &[u8] = include_bytes!("../../tests/fixtures/dialect_traces.json");
const CODEX_LOGS_JSON: &[u8] = include_bytes!("../../tests/fixtures/codex_logs.json");

fn window() -> TimeWindow {
    TimeWindow::around(Timestamp::parse("2025-11-25T12:00:00Z").unwrap())
}

/// The accepted events, parsed back, with their type.
fn events(intake: &Intake) -> Vec<Value> {
    assert!(intake.rejected.is_empty(), "{:?}", intake.rejected);
    intake
        .events
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap())
        .collect()
}

fn find<'a>(events: &'a [Value], kind: &str, name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind && (e["body"]["name"] == name || e["body"]["command"] == name))
        .unwrap_or_else(|| panic!("no {kind} {name:?} in {events:#?}"))
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

#[test]
fn python_sdk_spans_become_generations_tool_calls_and_spans() {
    let request = decode_traces(TRACES_PB, Encoding::Protobuf).unwrap();
    let intake = intake(spans::map(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    // Four spans; the root span's trace patch, and the session and user it names.
    assert_eq!(count(&events, "observation"), 4);
    assert_eq!(count(&events, "trace_patch"), 1);

    let root = find(&events, "observation", "invoke_agent support");
    let trace_id = root["body"]["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    assert_eq!(root["body"]["type"], "agent");
    let trace = find(&events, "trace_patch", "invoke_agent support");
    assert_eq!(trace["body"]["id"], trace_id);
    assert_eq!(trace["body"]["session_id"], "s-42");
    assert_eq!(trace["body"]["user_id"], "u-7");
    assert_eq!(trace["body"]["release"], "1.4.2");
    assert_eq!(
        trace["body"]["metadata"]["resource.service.name"],
        "support-agent"
    );

    let chat = &find(&events, "observation", "chat claude-sonnet-4-5")["body"];
    assert_eq!(chat["type"], "generation");
    assert_eq!(chat["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(chat["usage"]["input_tokens"], 1200);
    assert_eq!(chat["usage"]["output_tokens"], 85);
    assert_eq!(chat["parent_observation_id"], root["body"]["id"]);
    assert_eq!(chat["trace_id"], trace_id);
    assert_eq!(chat["start_time"], "2025-11-25T10:00:00.001000Z");
    assert_eq!(chat["end_time"], "2025-11-25T10:00:00.900000Z");
    assert_eq!(chat["input"][0]["parts"][0]["content"], "Where is my order?");
    assert!(
        chat["metadata"].get("gen_ai.input.messages").is_none(),
        "payloads are not copied into metadata"
    );
    assert_eq!(chat["metadata"]["otel.scope.name"], "agent.tests");

    let tool = &find(&events, "observation", "execute_tool lookup_order")["body"];
    assert_eq!(tool["type"], "tool_call");
    assert_eq!(tool["tool_name"], "lookup_order");
    assert_eq!(tool["tool_call_id"], "call_1");
    assert_eq!(tool["input"]["order"], "A-1");
    assert!(tool.get("model").is_none());

    let failing = &find(&events, "observation", "fetch inventory")["body"];
    assert_eq!(failing["level"], "error");
    assert_eq!(failing["status_message"], "inventory service timed out");
}

#[test]
fn otlp_json_spans_with_string_or_number_integers() {
    let request = decode_traces(GENAI_TRACES_JSON, Encoding::Json).unwrap();
    let intake = intake(spans::map(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    let chat = &find(&events, "observation", "chat gpt-4.1-mini")["body"];
    assert_eq!(chat["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(chat["id"], "eee19b7ec3c1b173");
    assert_eq!(chat["parent_observation_id"], "eee19b7ec3c1b174");
    assert_eq!(chat["usage"]["input_tokens"], 321);
    assert_eq!(chat["cost"]["total"], 0.00021);
    assert_eq!(chat["input"], "hello");
    assert_eq!(chat["start_time"], "2025-11-25T10:00:00.100000Z");
    let trace = find(&events, "trace_patch", "agent run");
    assert_eq!(trace["body"]["session_id"], "chat-9");
}

/// The dialect priority (spans.rs) on one trace that mixes Langfuse, OpenInference, Vercel AI
/// SDK and GenAI spans.
#[test]
fn every_dialect_maps_to_its_full_meaning() {
    let request = decode_traces(DIALECT_TRACES_JSON, Encoding::Json).unwrap();
    let intake = intake(spans::map(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    let body = |name: &str| find(&events, "observation", name)["body"].clone();

    let root = body("handle-request");
    assert_eq!(root["type"], "span");
    assert_eq!(root["input"]["question"], "where is my order?");
    assert_eq!(
        root["metadata"]["step"], 1,
        "langfuse.observation.metadata.* keys, decoded"
    );
    let trace = find(&events, "trace_patch", "checkout-assistant")["body"].clone();
    assert_eq!(trace["user_id"], "user-42");
    assert_eq!(trace["session_id"], "sess-7");
    assert_eq!(trace["tags"], serde_json::json!(["prod", "checkout"]));
    assert_eq!(trace["environment"], "production");
    assert_eq!(trace["release"], "2.3.0");
    assert_eq!(trace["metadata"]["team"], "payments");
    assert_eq!(trace["input"]["question"], "where is my order?");
    // Trace-level attributes on a child span update the trace too.
    let child_patches: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "trace_patch" && e["body"].get("name").is_none())
        .collect();
    assert!(child_patches.iter().any(|p| p["body"]["user_id"] == "user-42"));

    let generation = body("llm-call");
    assert_eq!(generation["type"], "generation");
    assert_eq!(generation["model"], "claude-sonnet-4-5");
    assert_eq!(generation["model_parameters"]["max_tokens"], 512);
    assert_eq!(generation["usage"]["input_tokens"], 900);
    assert_eq!(generation["usage"]["output_tokens"], 120);
    assert_eq!(generation["usage"]["cache_read_input_tokens"], 300);
    assert_eq!(generation["cost"]["total"], 0.0042);
    assert_eq!(generation["completion_start_time"], "2025-11-25T10:00:00.350000Z");
    assert_eq!(generation["prompt_name"], "support-answer");
    assert_eq!(generation["prompt_version"], 3);
    assert_eq!(
        (
            generation["level"].as_str(),
            generation["status_message"].as_str()
        ),
        (Some("warning"), Some("slow"))
    );
    assert_eq!(generation["output"]["content"], "It ships today.");

    assert_eq!(body("lookup-order")["type"], "tool");
    assert_eq!(body("lookup-order")["input"]["order"], "A-1");
    assert_eq!(body("pii-check")["type"], "guardrail");

    let openinference = body("ChatCompletion");
    assert_eq!(openinference["type"], "generation");
    assert_eq!(openinference["model"], "gpt-4.1-mini");
    assert_eq!(openinference["usage"]["input_tokens"], 400);
    assert_eq!(openinference["model_parameters"]["temperature"], 0);
    assert_eq!(
        (openinference["input"].as_str(), openinference["output"].as_str()),
        (Some("summarize"), Some("done"))
    );
    assert_eq!(body("vector-search")["type"], "retriever");

    let vercel = body("ai.generateText.doGenerate");
    assert_eq!(vercel["type"], "generation");
    assert_eq!(vercel["model"], "gpt-4o-mini");
    assert_eq!(vercel["usage"]["output_tokens"], 12);
    assert_eq!(vercel["completion_start_time"], "2025-11-25T10:00:02.120000Z");
    assert_eq!(vercel["input"][0]["content"], "hi");
    assert_eq!(vercel["metadata"]["feature"], "chat");
    let tool = body("ai.toolCall");
    assert_eq!(
        (
            tool["type"].as_str(),
            tool["tool_name"].as_str(),
            tool["tool_call_id"].as_str()
        ),
        (Some("tool_call"), Some("weather"), Some("call_x"))
    );
    assert_eq!(tool["output"]["temp"], 3);

    let embedding = body("embeddings text-embedding-3-small");
    assert_eq!(embedding["type"], "embedding");
    assert_eq!(embedding["model"], "text-embedding-3-small");
    assert_eq!(embedding["usage"]["input_tokens"], 20);
}

#[test]
fn claude_code_log_events_become_a_tree_with_commands_and_file_operations() {
    let request = decode_logs(CLAUDE_CODE_LOGS_PB, Encoding::Protobuf).unwrap();
    let intake = intake(logs::map(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    assert_eq!(count(&events, "observation"), 6);
    assert_eq!(count(&events, "terminal_command"), 2);
    assert_eq!(count(&events, "file_operation"), 1);
    assert_eq!(count(&events, "trace_patch"), 1);
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "observation" || e["body"]["trace_id"] == "cc-session-1")
    );

    // The prompt is a span that parents the prompt's requests and tool results.
    let prompt = &find(&events, "observation", "prompt")["body"];
    assert_eq!(prompt["type"], "span");
    assert_eq!(prompt["input"], "Fix the failing checkout");
    assert_eq!(prompt["start_time"], "2025-11-25T10:00:10.000000Z");
    assert_eq!(
        prompt["end_time"], "2025-11-25T10:01:00.000000Z",
        "its last record"
    );
    let children = events
        .iter()
        .filter(|e| e["type"] == "observation" && e["body"]["parent_observation_id"] == prompt["id"])
        .count();
    assert_eq!(children, 5);

    let request_event = &find(&events, "observation", "api_request")["body"];
    assert_eq!(request_event["type"], "generation");
    assert_eq!(request_event["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(request_event["usage"]["input_tokens"], 1500);
    assert_eq!(request_event["usage"]["cache_read_input_tokens"], 12000);
    assert_eq!(request_event["cost"]["total"], 0.0123);
    // It ended when it was logged and took duration_ms.
    assert_eq!(request_event["start_time"], "2025-11-25T10:00:17.900000Z");
    assert_eq!(request_event["end_time"], "2025-11-25T10:00:20.000000Z");

    let passed = &find(&events, "terminal_command", "cargo test checkout")["body"];
    assert_eq!(passed["exit_code"], 0);
    assert_eq!(passed["duration_ms"], 3400);
    let failed = &find(&events, "terminal_command", "cargo test --workspace")["body"];
    assert_eq!(failed["exit_code"], 101, "recovered from the error text");
    assert!(failed["stderr"].as_str().unwrap().starts_with("Exit code 101"));
    let failed_tool = events
        .iter()
        .find(|e| e["body"]["id"] == failed["observation_id"])
        .unwrap();
    assert_eq!(failed_tool["body"]["level"], "error");
    assert_eq!(failed_tool["body"]["tool_call_id"], "toolu_03");

    let edit = events.iter().find(|e| e["type"] == "file_operation").unwrap();
    assert_eq!(edit["body"]["operation"], "edit");
    assert_eq!(edit["body"]["path"], "src/checkout/cart.rs");

    let error = &find(&events, "observation", "api_error")["body"];
    assert_eq!(
        (error["type"].as_str(), error["level"].as_str()),
        (Some("generation"), Some("error"))
    );
    assert_eq!(error["status_message"], "Overloaded");

    // The same export again maps to the very same ids: a retry does not duplicate.
    let again = super::intake(logs::map(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    assert_eq!(again.events, intake.events);
}

/// Codex CLI 0.155.0 as it exports (see the fixture): `timeUnixNano` 0, an empty body, the
/// callsite in `eventName`, the name in `event.name`, counts on `sse_event`.
#[test]
fn codex_log_events_as_codex_really_sends_them() {
    let request = decode_logs(CODEX_LOGS_JSON, Encoding::Json).unwrap();
    let intake = intake(logs::map(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    assert!(
        events.iter().all(|e| !e["body"]["name"]
            .as_str()
            .unwrap_or_default()
            .contains("session_telemetry.rs")),
        "no event is named after a source location"
    );
    let conversation = "0199a213-81c0-7800-8aa1-bbab2a035a53";
    // The request and its completion make one generation.
    let generations: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "observation" && e["body"]["type"] == "generation")
        .collect();
    assert_eq!(generations.len(), 1);
    let generation = &generations[0]["body"];
    assert_eq!(generation["trace_id"], conversation);
    assert_eq!(generation["model"], "gpt-5-codex");
    assert_eq!(generation["usage"]["input_tokens"], 9000);
    assert_eq!(generation["usage"]["output_tokens"], 350);
    assert_eq!(generation["usage"]["cache_read_input_tokens"], 6000);
    assert_eq!(
        generation["start_time"], "2025-11-25T10:00:00.388000Z",
        "when the request started"
    );
    assert_eq!(generation["end_time"], "2025-11-25T10:00:06.000000Z");
    assert_eq!(generation["metadata"]["request.http.response.status_code"], 200);

    let tool = &find(&events, "observation", "exec_command")["body"];
    assert_eq!(
        (tool["type"].as_str(), tool["tool_call_id"].as_str()),
        (Some("tool_call"), Some("call_7"))
    );
    assert_eq!(tool["level"], "error");
    let command = &find(&events, "terminal_command", "npm test")["body"];
    assert_eq!(command["cwd"], "/repo");
    assert_eq!(command["exit_code"], 1, "from `Process exited with code 1`");
    assert_eq!(command["duration_ms"], 4200);
    assert!(command["stdout"].as_str().unwrap().contains("3 failing"));

    let files: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["type"] == "file_operation")
        .map(|e| {
            (
                e["body"]["operation"].as_str().unwrap(),
                e["body"]["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(files, [("edit", "src/list.ts"), ("create", "src/page.ts")]);

    let prompt = &find(&events, "observation", "user_prompt")["body"];
    assert_eq!(
        (prompt["type"].as_str(), prompt["input"].as_str()),
        (Some("event"), Some("add pagination"))
    );
    assert_eq!(
        prompt["start_time"], "2025-11-25T10:00:00.000000Z",
        "the observed time"
    );
    assert_eq!(
        find(&events, "observation", "tool_decision")["body"]["type"],
        "event"
    );
    let trace = &events.iter().find(|e| e["type"] == "trace_patch").unwrap()["body"];
    assert_eq!(
        (trace["name"].as_str(), trace["environment"].as_str()),
        (Some("codex_cli_rs"), Some("dev"))
    );
}

#[test]
fn metrics_become_one_event_per_data_point() {
    let request = decode_metrics(METRICS_PB, Encoding::Protobuf).unwrap();
    let window = TimeWindow::around(Timestamp::now());
    let intake = intake(metrics::map(&request), &window, &Limits::default()).unwrap();
    let events = events(&intake);
    let points: Vec<&Value> = events.iter().map(|e| &e["body"]).collect();
    let tokens: Vec<&&Value> = points
        .iter()
        .filter(|p| p["name"] == "claude_code.token.usage")
        .collect();
    assert_eq!(tokens.len(), 3);
    let input = tokens
        .iter()
        .find(|p| p["attributes"]["type"] == "input")
        .unwrap();
    assert_eq!(
        (
            input["kind"].as_str(),
            input["temporality"].as_str(),
            input["unit"].as_str(),
            input["value"].as_f64()
        ),
        (Some("sum"), Some("delta"), Some("tokens"), Some(1500.0))
    );
    assert_eq!(input["resource"]["service.name"], "claude-code");
    let histogram = points.iter().find(|p| p["kind"] == "histogram").unwrap();
    assert_eq!(
        (histogram["count"].as_u64(), histogram["sum"].as_f64()),
        (Some(3), Some(4212.0))
    );
    assert_eq!(
        histogram["bucket_counts"].as_array().unwrap().len(),
        histogram["explicit_bounds"].as_array().unwrap().len() + 1
    );
    // Ids come from the content: a retried export replaces its points.
    let again = super::intake(metrics::map(&request), &window, &Limits::default()).unwrap();
    assert_eq!(again.events, intake.events);
    let (status, body) = response(&intake, Encoding::Json, "rejectedDataPoints");
    assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));
}

#[test]
fn unsupported_metric_kinds_are_named() {
    let request = decode_metrics(
        br#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "latency", "summary": {"dataPoints": []}},
            {"name": "requests", "gauge": {"dataPoints": [{"timeUnixNano": "1764064800000000000", "asInt": "7"}]}}]}]}]}"#,
        Encoding::Json,
    )
    .unwrap();
    let intake = intake(metrics::map(&request), &window(), &Limits::default()).unwrap();
    assert_eq!(intake.accepted(), 1);
    assert!(
        intake.rejected[0]
            .error
            .contains("\"latency\": summaries are not stored yet")
    );
}

#[test]
fn bad_items_are_named_and_the_rest_kept() {
    let mut request = decode_traces(GENAI_TRACES_JSON, Encoding::Json).unwrap();
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    spans[0].span_id = vec![1, 2, 3];
    spans[1].attributes.push(proto::KeyValue {
        key: "gen_ai.prompt".into(),
        value: Some(proto::AnyValue {
            value: Some(proto::Value::StringValue("x".repeat(100))),
        }),
    });
    let limits = Limits::default();
    let mapped = spans::map(&request, 50);
    let intake = intake(mapped, &window(), &limits).unwrap();
    assert_eq!(intake.rejected.len(), 2);
    assert!(
        intake.rejected[0]
            .error
            .contains("span_id must be 16 hex digits, not all zeros"),
        "{}",
        intake.rejected[0].error
    );
    assert!(
        intake.rejected[1]
            .error
            .contains("is 100 bytes; the limit is 50 bytes")
    );
    let (status, body) = response(&intake, Encoding::Json, "rejectedSpans");
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "2");
    let (_, body) = response(&intake, Encoding::Protobuf, "rejectedSpans");
    let decoded = proto::ExportResponse::decode(body.as_slice()).unwrap();
    assert_eq!(decoded.partial_success.unwrap().rejected, 2);
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    let error = decode_traces(b"\xff\xff\xff", Encoding::Protobuf).unwrap_err();
    assert_eq!(error.status(), 400);
    assert!(
        error
            .to_string()
            .contains("not a protobuf ExportTraceServiceRequest"),
        "{error}"
    );
    // An id that is not hex rejects its span alone (OTLP partial success), not the export.
    let request = decode_traces(
        br#"{"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "zz", "spanId": "eee19b7ec3c1b173", "name": "bad"},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b173", "name": "good",
             "startTimeUnixNano": "1764064800000000000"}]}]}]}"#,
        Encoding::Json,
    )
    .unwrap();
    let intake = intake(spans::map(&request, 1024), &window(), &Limits::default()).unwrap();
    assert_eq!(intake.rejected.len(), 1);
    assert!(
        intake.rejected[0]
            .error
            .contains("span \"bad\": trace_id must be 32 hex digits")
    );
    assert_eq!(intake.accepted(), 2, "the good span and its trace");
    let error = decode_logs(br#"{"resourceLogs": 3}"#, Encoding::Json).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not an OTLP JSON ExportLogsServiceRequest"),
        "{error}"
    );
}

/// Found by fuzzing: a log record whose only time is an `event.timestamp` before 1970 (or a
/// `duration_ms`, or a span's `msToFirstChunk`, too large) overflowed instead of being refused.
#[test]
fn extreme_times_are_refused_or_clamped_not_overflowed() {
    let request = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"attributes": [
            {"key": "event.name", "value": {"stringValue": "codex.tool_result"}},
            {"key": "event.timestamp", "value": {"stringValue": "1000-01-01T00:00:00Z"}}]},
        {"timeUnixNano": "1764072000000000000", "attributes": [
            {"key": "event.name", "value": {"stringValue": "codex.tool_result"}},
            {"key": "duration_ms", "value": {"doubleValue": 1e300}}]}
    ]}]}]});
    let body = request.to_string();
    let request = decode_logs(body.as_bytes(), Encoding::Json).unwrap();
    let intake = intake(
        logs::map(&request, 1 << 20),
        &window(),
        &crate::limits::Limits::default(),
    )
    .unwrap();
    // The record from the year 1000 has no usable time; the other one maps.
    assert!(
        intake.rejected.iter().any(|r| r.index == 0),
        "{:?}",
        intake.rejected
    );
    assert!(!intake.events.is_empty());
}

/// An OTLP JSON attribute: strings, integers and JSON values (as their JSON text) as exporters
/// send them.
fn attr(key: &str, value: Value) -> Value {
    let value = match value {
        Value::String(s) => serde_json::json!({"stringValue": s}),
        Value::Number(n) if n.is_i64() => serde_json::json!({"intValue": n.to_string()}),
        Value::Number(n) => serde_json::json!({"doubleValue": n}),
        Value::Bool(b) => serde_json::json!({"boolValue": b}),
        other => serde_json::json!({"stringValue": other.to_string()}),
    };
    serde_json::json!({"key": key, "value": value})
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const T0: u64 = 1_764_064_800_000_000_000;

/// One span of `TRACE` as OTLP JSON; `parent` empty for a root span.
fn span_json(span: &str, parent: &str, name: &str, attributes: Vec<Value>) -> Value {
    serde_json::json!({"traceId": TRACE, "spanId": span, "parentSpanId": parent, "name": name,
        "startTimeUnixNano": T0.to_string(), "endTimeUnixNano": (T0 + 900_000_000).to_string(),
        "attributes": attributes})
}

fn map_spans(spans: Vec<Value>) -> Vec<Value> {
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string();
    let request = decode_traces(body.as_bytes(), Encoding::Json).unwrap();
    events(&intake(spans::map(&request, 1 << 20), &window(), &Limits::default()).unwrap())
}

fn map_logs(records: Vec<Value>) -> Vec<Value> {
    let body = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [attr("service.name", "chat-app".into())]},
        "scopeLogs": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "logRecords": records}]}]})
    .to_string();
    let request = decode_logs(body.as_bytes(), Encoding::Json).unwrap();
    events(&intake(logs::map(&request, 1 << 20), &window(), &Limits::default()).unwrap())
}

fn with_id<'a>(events: &'a [Value], kind: &str, id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind && e["body"]["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} {id:?} in {events:#?}"))
}

/// OpenInference's flattened `llm.input_messages.*` / `llm.output_messages.*` (as
/// `openinference-instrumentation-openai` sets them) become the observation's input and output as
/// a conversation in OpenAI's format, tool calls and content parts included; the raw request and
/// response (`input.value`, `output.value`) are then left out, and so are the flattened keys from
/// metadata.
#[test]
fn openinference_messages_become_a_conversation() {
    let m = |i: usize, rest: &str| format!("llm.input_messages.{i}.message.{rest}");
    let attributes = vec![
        attr("openinference.span.kind", "LLM".into()),
        attr("llm.model_name", "gpt-5.2-codex".into()),
        attr(
            "input.value",
            r#"{"messages": [], "model": "gpt-5.2-codex"}"#.into(),
        ),
        attr("input.mime_type", "application/json".into()),
        attr("output.value", r#"{"id": "chatcmpl-1", "choices": []}"#.into()),
        attr(&m(0, "role"), "system".into()),
        attr(&m(0, "content"), "You are terse.".into()),
        attr(&m(1, "role"), "user".into()),
        attr(&m(1, "contents.0.message_content.type"), "text".into()),
        attr(
            &m(1, "contents.0.message_content.text"),
            "What is in this image?".into(),
        ),
        attr(&m(1, "contents.1.message_content.type"), "image".into()),
        attr(
            &m(1, "contents.1.message_content.image.image.url"),
            "https://example.com/a.png".into(),
        ),
        attr(&m(2, "role"), "assistant".into()),
        attr(&m(2, "tool_calls.0.tool_call.id"), "call_1".into()),
        attr(&m(2, "tool_calls.0.tool_call.function.name"), "describe".into()),
        attr(
            &m(2, "tool_calls.0.tool_call.function.arguments"),
            r#"{"detail": "high"}"#.into(),
        ),
        attr(&m(3, "role"), "tool".into()),
        attr(&m(3, "tool_call_id"), "call_1".into()),
        attr(&m(3, "content"), "a cat".into()),
        // Ten messages sort by number, not as text.
        attr(&m(10, "role"), "user".into()),
        attr(&m(10, "content"), "and now?".into()),
        attr("llm.output_messages.0.message.role", "assistant".into()),
        attr("llm.output_messages.0.message.content", "A cat on a mat.".into()),
    ];
    let events = map_spans(vec![span_json(
        "b7ad6b7169203331",
        "",
        "ChatCompletion",
        attributes,
    )]);
    let generation = &with_id(&events, "observation", "b7ad6b7169203331")["body"];
    assert_eq!(generation["type"], "generation");
    assert_eq!(
        generation["input"],
        serde_json::json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "describe", "arguments": "{\"detail\": \"high\"}"}}]},
            {"role": "tool", "content": "a cat", "tool_call_id": "call_1"},
            {"role": "user", "content": "and now?"},
        ])
    );
    assert_eq!(
        generation["output"],
        serde_json::json!([{"role": "assistant", "content": "A cat on a mat."}])
    );
    let metadata = generation["metadata"].as_object().unwrap();
    assert!(
        !metadata.keys().any(|k| k.starts_with("llm.input_messages")
            || k.starts_with("llm.output_messages")
            || k == "input.value"),
        "{metadata:?}"
    );
    assert_eq!(metadata["input.mime_type"], "application/json");
    // The span is the root: its conversation is the trace's input and output too.
    let trace = &with_id(&events, "trace_patch", TRACE)["body"];
    assert_eq!(trace["input"], generation["input"]);
    assert_eq!(trace["output"], generation["output"]);
    // Without the flattened messages the raw request and response stay the payloads.
    let events = map_spans(vec![span_json(
        "b7ad6b7169203332",
        "",
        "ChatCompletion",
        vec![
            attr("openinference.span.kind", "LLM".into()),
            attr("input.value", r#"{"model": "m"}"#.into()),
            attr("output.value", "done".into()),
        ],
    )]);
    let generation = &with_id(&events, "observation", "b7ad6b7169203332")["body"];
    assert_eq!(
        (
            generation["input"]["model"].as_str(),
            generation["output"].as_str()
        ),
        (Some("m"), Some("done"))
    );
}

/// A root span's input and output are its trace's (OpenTelemetry GenAI, the Vercel AI SDK),
/// unless `langfuse.trace.input` / `.output` say otherwise; a child span's are not.
#[test]
fn a_root_spans_input_and_output_are_its_traces() {
    let events = map_spans(vec![
        span_json(
            "00f067aa0ba902b7",
            "",
            "invoke_agent support",
            vec![
                attr("gen_ai.operation.name", "invoke_agent".into()),
                attr(
                    "gen_ai.input.messages",
                    serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": "refund?"}]}]),
                ),
                attr(
                    "gen_ai.output.messages",
                    serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": "done"}]}]),
                ),
            ],
        ),
        span_json(
            "00f067aa0ba902b8",
            "00f067aa0ba902b7",
            "chat gpt-5.2",
            vec![
                attr("gen_ai.operation.name", "chat".into()),
                attr("gen_ai.request.model", "gpt-5.2".into()),
                attr("gen_ai.prompt", "inner".into()),
                attr("gen_ai.completion", "inner answer".into()),
            ],
        ),
    ]);
    let trace = &with_id(&events, "trace_patch", TRACE)["body"];
    assert_eq!(trace["name"], "invoke_agent support");
    assert_eq!(trace["input"][0]["parts"][0]["content"], "refund?");
    assert_eq!(trace["output"][0]["parts"][0]["content"], "done");
    assert_eq!(
        events.iter().filter(|e| e["type"] == "trace_patch").count(),
        1,
        "the child says nothing about its trace"
    );

    // Langfuse's own trace input wins over the root span's.
    let events = map_spans(vec![span_json(
        "00f067aa0ba902b9",
        "",
        "handle",
        vec![
            attr("langfuse.observation.input", "span input".into()),
            attr("langfuse.trace.input", "trace input".into()),
            attr("langfuse.observation.output", "span output".into()),
        ],
    )]);
    let trace = &with_id(&events, "trace_patch", TRACE)["body"];
    assert_eq!(
        (trace["input"].as_str(), trace["output"].as_str()),
        (Some("trace input"), Some("span output"))
    );
}

/// The Vercel AI SDK: the call's `ai.telemetry.functionId` names the trace, from the call's
/// span whether it is the root or under a web framework's request span; its steps
/// (`doGenerate`) do not rename it. The root call's prompt and text are the trace's input and
/// output.
#[test]
fn a_vercel_ai_sdk_function_id_names_the_trace() {
    let call = |span: &str, parent: &str| {
        span_json(
            span,
            parent,
            "ai.generateText",
            vec![
                attr("ai.operationId", "ai.generateText".into()),
                attr("operation.name", "ai.generateText support-reply".into()),
                attr("resource.name", "support-reply".into()),
                attr("ai.telemetry.functionId", "support-reply".into()),
                attr("ai.model.id", "gpt-5-mini".into()),
                attr("ai.prompt", r#"{"prompt":"Where is my order?"}"#.into()),
                attr("ai.response.text", "It ships today.".into()),
            ],
        )
    };
    let step = span_json(
        "1000000000000003",
        "1000000000000002",
        "ai.generateText.doGenerate",
        vec![
            attr("ai.operationId", "ai.generateText.doGenerate".into()),
            attr("ai.telemetry.functionId", "support-reply".into()),
            attr("ai.model.id", "gpt-5-mini".into()),
        ],
    );
    let events = map_spans(vec![call("1000000000000002", ""), step.clone()]);
    let patches: Vec<&Value> = events.iter().filter(|e| e["type"] == "trace_patch").collect();
    assert_eq!(patches.len(), 1, "{patches:#?}");
    let trace = &patches[0]["body"];
    assert_eq!(trace["name"], "support-reply");
    assert_eq!(trace["input"]["prompt"], "Where is my order?");
    assert_eq!(trace["output"], "It ships today.");

    // Under a request span: the root names the trace first, the call's span renames it.
    let events = map_spans(vec![
        span_json(
            "1000000000000001",
            "",
            "POST /api/chat",
            vec![attr("http.method", "POST".into())],
        ),
        call("1000000000000002", "1000000000000001"),
        step,
    ]);
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "trace_patch")
        .filter_map(|e| e["body"]["name"].as_str())
        .collect();
    assert_eq!(names, ["POST /api/chat", "support-reply"]);
    let renaming = events
        .iter()
        .find(|e| e["type"] == "trace_patch" && e["body"]["name"] == "support-reply")
        .unwrap();
    assert!(
        renaming["body"].get("input").is_none(),
        "a child's input is not the trace's"
    );
}

/// A GenAI event record of `opentelemetry-instrumentation-openai-v2`: the name in the record's
/// EventName field (the current SDK) or in `event.name` (older ones), the message as the body.
fn genai_event(span: &str, name: &str, at_ms: u64, body: Value, in_attribute: bool) -> Value {
    let mut attributes = vec![attr("gen_ai.system", "openai".into())];
    if in_attribute {
        attributes.push(attr("event.name", name.into()));
    }
    serde_json::json!({"timeUnixNano": "0", "observedTimeUnixNano": (T0 + at_ms * 1_000_000).to_string(),
        "traceId": TRACE, "spanId": span, "eventName": if in_attribute { "" } else { name },
        "body": any_value(&body), "attributes": attributes})
}

/// A JSON value as an OTLP JSON AnyValue (maps as kvlists, as the Python SDK encodes a dict).
fn any_value(value: &Value) -> Value {
    match value {
        Value::Null => serde_json::json!({}),
        Value::String(s) => serde_json::json!({"stringValue": s}),
        Value::Bool(b) => serde_json::json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() => serde_json::json!({"intValue": n.to_string()}),
        Value::Number(n) => serde_json::json!({"doubleValue": n}),
        Value::Array(items) => {
            serde_json::json!({"arrayValue": {"values": items.iter().map(any_value).collect::<Vec<_>>()}})
        }
        Value::Object(map) => serde_json::json!({"kvlistValue": {"values": map.iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": any_value(v)})).collect::<Vec<_>>()}}),
    }
}

/// The official OpenTelemetry OpenAI instrumentation's GenAI events (OTLP logs) fold into the
/// generation they belong to: one observation patch per span (observation id = span id) whose
/// input is the messages in order and whose output is the choices by index; no event
/// observations, no trace patch naming the trace after the service or giving it its own id as
/// session. Its span, which carries no content, is a patch too, so the ETL merges both in
/// either order.
#[test]
fn genai_events_fold_into_their_generation() {
    let span = "53995c3f42cd8ad8";
    let records = vec![
        genai_event(
            span,
            "gen_ai.system.message",
            1,
            serde_json::json!({"content": "Be brief."}),
            false,
        ),
        genai_event(
            span,
            "gen_ai.user.message",
            2,
            serde_json::json!({"content": "Weather in Paris?"}),
            true,
        ),
        genai_event(
            span,
            "gen_ai.assistant.message",
            3,
            serde_json::json!({"tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
            false,
        ),
        genai_event(
            span,
            "gen_ai.tool.message",
            4,
            serde_json::json!({"content": "18C", "id": "call_9"}),
            false,
        ),
        // Choices arrive in any order; the output lists them by index.
        genai_event(
            span,
            "gen_ai.choice",
            9,
            serde_json::json!({"index": 1, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Mild, 18C."}}),
            false,
        ),
        genai_event(
            span,
            "gen_ai.choice",
            8,
            serde_json::json!({"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "18C in Paris."}}),
            false,
        ),
        // Another span's event in the same export is its own patch.
        genai_event(
            "53995c3f42cd8ad9",
            "gen_ai.user.message",
            5,
            serde_json::json!({"content": "hi"}),
            false,
        ),
    ];
    let events = map_logs(records.clone());
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e["type"] == "observation_patch"),
        "{events:#?}"
    );
    let patch = with_id(&events, "observation_patch", span);
    assert_eq!(patch["body"]["trace_id"], TRACE);
    assert_eq!(
        patch["body"]["input"],
        serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "content": "18C", "tool_call_id": "call_9"},
        ])
    );
    assert_eq!(
        patch["body"]["output"],
        serde_json::json!([
            {"role": "assistant", "content": "18C in Paris.", "finish_reason": "stop"},
            {"role": "assistant", "content": "Mild, 18C.", "finish_reason": "stop"},
        ])
    );
    assert_eq!(
        patch["timestamp"], "2025-11-25T10:00:00.009000Z",
        "versioned by its newest record"
    );
    assert_eq!(
        map_logs(records.clone()),
        events,
        "a retried export is the same patch"
    );

    // Split across exports: messages in one, the choice in the next; each sets its own field.
    let first = map_logs(records[..4].to_vec());
    let second = map_logs(records[4..6].to_vec());
    assert_eq!(first[0]["body"]["input"].as_array().unwrap().len(), 4);
    assert!(first[0]["body"].get("output").is_none());
    assert!(second[0]["body"].get("input").is_none());
    assert_eq!(second[0]["body"]["output"].as_array().unwrap().len(), 2);
    assert_ne!(first[0]["id"], second[0]["id"]);

    // The generation's span (what the instrumentation sets on it, no content) is a patch of the
    // same observation, complete on its own.
    let events = map_spans(vec![span_json(
        span,
        "",
        "chat gpt-5-mini",
        vec![
            attr("gen_ai.operation.name", "chat".into()),
            attr("gen_ai.system", "openai".into()),
            attr("gen_ai.request.model", "gpt-5-mini".into()),
            attr("gen_ai.response.model", "gpt-5-mini-2025-08-07".into()),
            attr("gen_ai.usage.input_tokens", 31.into()),
            attr("gen_ai.usage.output_tokens", 9.into()),
            attr("gen_ai.response.finish_reasons", serde_json::json!(["stop"])),
        ],
    )]);
    let generation = with_id(&events, "observation_patch", span);
    let body = &generation["body"];
    assert_eq!(
        (
            body["type"].as_str(),
            body["name"].as_str(),
            body["trace_id"].as_str()
        ),
        (Some("generation"), Some("chat gpt-5-mini"), Some(TRACE))
    );
    assert_eq!(body["model"], "gpt-5-mini-2025-08-07");
    assert_eq!(body["usage"]["output_tokens"], 9);
    assert!(body["start_time"].is_string() && body["end_time"].is_string());
    // A generation with content of its own stays a whole observation.
    let events = map_spans(vec![span_json(
        span,
        "",
        "chat gpt-5-mini",
        vec![
            attr("gen_ai.operation.name", "chat".into()),
            attr("gen_ai.prompt", "hi".into()),
        ],
    )]);
    assert_eq!(with_id(&events, "observation", span)["body"]["input"], "hi");
}

/// A log record in an OpenTelemetry trace (a trace id, no session named) that is not a GenAI
/// content event stays an event, and its trace patch leaves the trace's name, time and session
/// to the spans: the session is not set to the trace's own id.
#[test]
fn traced_log_records_do_not_make_their_trace_a_session() {
    let record = serde_json::json!({"timeUnixNano": (T0 + 1_000_000).to_string(), "traceId": TRACE,
        "spanId": "53995c3f42cd8ad8", "eventName": "app.cache_miss",
        "body": {"stringValue": "cache miss for key 7"}});
    let events = map_logs(vec![record]);
    let event = events.iter().find(|e| e["type"] == "observation").unwrap();
    assert_eq!(event["body"]["type"], "event");
    assert_eq!(event["body"]["trace_id"], TRACE);
    let trace = &with_id(&events, "trace_patch", TRACE)["body"];
    for field in ["session_id", "name", "timestamp", "tags"] {
        assert!(trace.get(field).is_none(), "{field} in {trace}");
    }
    // A GenAI event without a span to fold into stays an event too.
    let orphan = serde_json::json!({"observedTimeUnixNano": T0.to_string(), "traceId": TRACE,
        "eventName": "gen_ai.user.message", "body": any_value(&serde_json::json!({"content": "hi"}))});
    let events = map_logs(vec![orphan]);
    assert_eq!(count(&events, "observation"), 1);
    assert!(
        with_id(&events, "trace_patch", TRACE)["body"]
            .get("session_id")
            .is_none()
    );
}
