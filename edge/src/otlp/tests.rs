//! Mapping real OTLP payloads: protobuf written by the OpenTelemetry Python SDK's encoders
//! (`edge/tests/fixtures/make_fixtures.py`) and OTLP JSON as the JavaScript exporters send it.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::TimeWindow;
use serde_json::Value;

use super::*;

const TRACES_PB: &[u8] = include_bytes!("../../tests/fixtures/traces.pb");
const CLAUDE_CODE_LOGS_PB: &[u8] = include_bytes!("../../tests/fixtures/claude_code_logs.pb");
const GENAI_TRACES_JSON: &[u8] = include_bytes!("../../tests/fixtures/genai_traces.json");
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

#[test]
fn python_sdk_spans_become_generations_tool_calls_and_spans() {
    let request = decode_traces(TRACES_PB, Encoding::Protobuf).unwrap();
    let intake = intake(map::spans(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    // Four spans, and the root span's trace.
    assert_eq!(events.len(), 5);

    let root = find(&events, "observation", "invoke_agent support");
    let trace_id = root["body"]["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    assert_eq!(root["body"]["type"], "span");
    let trace = find(&events, "trace", "invoke_agent support");
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
    let intake = intake(map::spans(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    let chat = &find(&events, "observation", "chat gpt-4.1-mini")["body"];
    assert_eq!(chat["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(chat["id"], "eee19b7ec3c1b173");
    assert_eq!(chat["parent_observation_id"], "eee19b7ec3c1b174");
    assert_eq!(chat["usage"]["input_tokens"], 321);
    assert_eq!(chat["cost"]["total"], 0.00021);
    assert_eq!(chat["input"], "hello");
    assert_eq!(chat["start_time"], "2025-11-25T10:00:00.100000Z");
    let trace = find(&events, "trace", "agent run");
    assert_eq!(trace["body"]["session_id"], "chat-9");
}

#[test]
fn claude_code_log_events_become_observations_commands_and_file_operations() {
    let request = decode_logs(CLAUDE_CODE_LOGS_PB, Encoding::Protobuf).unwrap();
    let intake = intake(map::logs(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("observation"), 6);
    assert_eq!(count("terminal_command"), 2);
    assert_eq!(count("file_operation"), 1);
    assert_eq!(count("trace"), 1);
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "observation" || e["body"]["trace_id"] == "cc-session-1")
    );

    let request_event = &find(&events, "observation", "api_request")["body"];
    assert_eq!(request_event["type"], "generation");
    assert_eq!(request_event["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(request_event["usage"]["input_tokens"], 1500);
    assert_eq!(request_event["usage"]["cache_read_input_tokens"], 12000);
    assert_eq!(request_event["cost"]["total"], 0.0123);
    // It ended when it was logged and took duration_ms.
    assert_eq!(request_event["start_time"], "2025-11-25T10:00:17.900000Z");
    assert_eq!(request_event["end_time"], "2025-11-25T10:00:20.000000Z");

    let prompt = &find(&events, "observation", "user_prompt")["body"];
    assert_eq!(prompt["type"], "event");
    assert_eq!(prompt["input"], "Fix the failing checkout");

    let passed = &find(&events, "terminal_command", "cargo test checkout")["body"];
    assert_eq!(passed["exit_code"], 0);
    assert_eq!(passed["duration_ms"], 3400);
    let failed = &find(&events, "terminal_command", "cargo test --workspace")["body"];
    assert!(failed.get("exit_code").is_none());
    assert_eq!(failed["stderr"], "Exit code 101");
    let failed_tool = events
        .iter()
        .find(|e| e["body"]["id"] == failed["observation_id"])
        .unwrap();
    assert_eq!(failed_tool["body"]["level"], "error");
    assert_eq!(failed_tool["body"]["status_message"], "Exit code 101");

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
    let again = super::intake(map::logs(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    assert_eq!(again.events, intake.events);
}

#[test]
fn codex_log_events_in_otlp_json() {
    let request = decode_logs(CODEX_LOGS_JSON, Encoding::Json).unwrap();
    let intake = intake(map::logs(&request, 64 * 1024), &window(), &Limits::default()).unwrap();
    let events = events(&intake);
    let generation = &find(&events, "observation", "api_request")["body"];
    assert_eq!(generation["model"], "gpt-5-codex");
    assert_eq!(generation["usage"]["output_tokens"], 120);
    let tool = &find(&events, "observation", "shell")["body"];
    assert_eq!(tool["tool_call_id"], "call_9");
    assert_eq!(tool["output"], "12 passing");
    let command = &find(&events, "terminal_command", "npm test")["body"];
    assert_eq!(command["cwd"], "/repo");
    assert_eq!(command["trace_id"], "cx-1");
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
    let mapped = map::spans(&request, 50);
    let intake = intake(mapped, &window(), &limits).unwrap();
    assert_eq!(intake.rejected.len(), 2);
    assert!(
        intake.rejected[0]
            .error
            .contains("span_id must be 8 bytes, not 3")
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
    let error = decode_traces(
        br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}"#,
        Encoding::Json,
    )
    .unwrap_err();
    assert!(error.to_string().contains("\"zz\" is not a hex id"), "{error}");
    let error = decode_logs(br#"{"resourceLogs": 3}"#, Encoding::Json).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not an OTLP JSON ExportLogsServiceRequest"),
        "{error}"
    );
}
