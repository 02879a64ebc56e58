//! The MCP server (`POST /mcp`) with the official MCP Python client (PyPI `mcp`, pinned in
//! dev.sh; `tests/python/mcp_client.py`), straight to the ETL and through the edge in workerd:
//! it initializes, lists the tools and calls each of them on a project holding a coding agent's
//! session (a trace with a generation, a failing tool call, a terminal command, a file edit, a
//! score; a second turn; a prompt with two labels), and reads back what the agent did as text.
//! Another project's key gets nothing of it; a key without `read` scope, no key, a foreign
//! `Origin`, a body that is not JSON-RPC, an unknown method or tool, and a protocol version not
//! spoken are refused as the transport and JSON-RPC say.

use std::time::Duration;

use agenttrace_etl::control::prompts::{self, NewPromptVersion, PromptType};
use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::{Event, Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use agenttrace_tests::etl::{Etl, TestProject};
use serde_json::{Value, json};

fn parse(events: &[Value]) -> Vec<Event<'static>> {
    events
        .iter()
        .map(|e| Event::parse(&e.to_string()).unwrap().into_static())
        .collect()
}

/// A coding agent's session of two turns in project A: the first fixes an invoice total (a
/// generation, a failing tool call, a terminal command, a file edit, a score), the second runs
/// the tests again.
fn alpha_events() -> Vec<Event<'static>> {
    let now = Timestamp::now().as_micros();
    let at = |offset_ms: i64| Timestamp::from_micros(now - 600_000_000 + offset_ms * 1000).to_string();
    parse(&[
        json!({"id": "a-e1", "type": "trace", "timestamp": at(0), "body": {
            "id": "mcp-a-trace-1", "name": "fix invoice totals", "session_id": "mcp-a-session",
            "user_id": "ada", "tags": ["billing"],
            "input": {"task": "the invoice total is wrong for order A-1042"},
            "output": "fixed the rounding in invoice_total"}}),
        json!({"id": "a-e2", "type": "observation", "timestamp": at(1), "body": {
            "id": "mcp-a-gen", "trace_id": "mcp-a-trace-1", "type": "generation", "name": "plan",
            "start_time": at(1), "end_time": at(1_201), "model": "gpt-4.1-mini",
            "usage": {"input_tokens": 1000, "output_tokens": 200},
            "input": [{"role": "user", "content": "why is the invoice total wrong"}],
            "output": "rounding happens before tax; the log said 数据库连接失败 too"}}),
        json!({"id": "a-e3", "type": "observation", "timestamp": at(2), "body": {
            "id": "mcp-a-tool", "trace_id": "mcp-a-trace-1", "parent_observation_id": "mcp-a-gen",
            "type": "tool", "name": "Bash", "start_time": at(1_300), "end_time": at(2_800),
            "level": "error", "status_message": "exit 101",
            "input": {"command": "cargo test billing"}, "output": "error: invoice_total mismatch"}}),
        json!({"id": "a-e4", "type": "terminal_command", "timestamp": at(3), "body": {
            "id": "mcp-a-cmd", "trace_id": "mcp-a-trace-1", "command": "cargo test billing",
            "cwd": "/repo", "exit_code": 101, "duration_ms": 1500,
            "stderr": "thread 'billing::totals' panicked"}}),
        json!({"id": "a-e5", "type": "file_operation", "timestamp": at(4), "body": {
            "id": "mcp-a-file", "trace_id": "mcp-a-trace-1", "operation": "edit",
            "path": "src/billing/invoice.rs", "lines_added": 10, "lines_removed": 2}}),
        json!({"id": "a-e6", "type": "score", "timestamp": at(5), "body": {
            "id": "mcp-a-score", "trace_id": "mcp-a-trace-1", "name": "correct", "value": 1,
            "comment": "the total matches now"}}),
        json!({"id": "a-e7", "type": "trace", "timestamp": at(60_000), "body": {
            "id": "mcp-a-trace-2", "name": "run the tests again", "session_id": "mcp-a-session",
            "user_id": "ada", "input": "run cargo test again", "output": "all green"}}),
    ])
}

/// Project B's one trace, whose words A's key must never see.
fn bravo_events() -> Vec<Event<'static>> {
    let at = Timestamp::from_micros(Timestamp::now().as_micros() - 300_000_000).to_string();
    parse(&[json!({"id": "b-e1", "type": "trace", "timestamp": at, "body": {
            "id": "mcp-b-trace", "name": "bravo private turn", "session_id": "mcp-b-session",
            "input": "bravo private invoice words"}})])
}

fn prompt_version(labels: &[&str], text: &str) -> NewPromptVersion {
    NewPromptVersion {
        name: "mcp-system".into(),
        kind: PromptType::Text,
        prompt: json!(text),
        config: json!({"temperature": 0.1}),
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        tags: vec!["billing".into()],
        commit_message: None,
    }
}

/// Projects A and B with their data, and keys: A's with `ingest` and `read`, A's without
/// `read`, B's with `read`.
struct Setup {
    alpha: TestProject,
    alpha_without_read: TestProject,
    bravo: TestProject,
}

async fn setup(env: &TestEnv, etl: &Etl) -> Setup {
    let alpha = env
        .create_project_in("mcp-org-a", "mcp-a", &[Scope::Ingest, Scope::Read])
        .await;
    let bravo = env
        .create_project_in("mcp-org-b", "mcp-b", &[Scope::Ingest, Scope::Read])
        .await;
    let mut pg = env.postgres().await;
    let alpha_without_read = TestProject::with_key(&pg, alpha.key.project_id, &[Scope::Ingest]).await;
    etl.load(&alpha.key, &alpha_events()).await;
    etl.load(&bravo.key, &bravo_events()).await;
    let project = alpha.key.project_id;
    prompts::create_version(
        &mut pg,
        project,
        &prompt_version(
            &["production"],
            "You are a careful billing agent for {{customer}}.",
        ),
    )
    .await
    .unwrap();
    prompts::create_version(
        &mut pg,
        project,
        &prompt_version(&["staging"], "You are a terse billing agent for {{customer}}."),
    )
    .await
    .unwrap();
    Setup {
        alpha,
        alpha_without_read,
        bravo,
    }
}

/// Runs the official client against `url` with the project's key, calling `calls`.
async fn client(url: &str, project: &TestProject, calls: &Value) -> Value {
    agenttrace_tests::python_script(
        "mcp_client.py",
        &[
            url,
            &project.key.public_key,
            &project.secret_key,
            &calls.to_string(),
        ],
    )
    .await
}

/// The calls A's key makes: every tool, and the failures an agent can run into.
fn alpha_calls() -> Value {
    json!([
        {"name": "search", "arguments": {"q": "invoice"}},
        {"name": "search", "arguments": {"q": "数据库", "results": "observations"}},
        {"name": "search", "arguments": {"q": "invoice", "results": "sessions", "user_id": "ada"}},
        {"name": "list_traces", "arguments": {}},
        {"name": "list_traces", "arguments": {"level": "error", "since": "1d", "tags": ["billing"]}},
        {"name": "list_sessions", "arguments": {"since": "1d"}},
        {"name": "get_trace", "arguments": {"trace_id": "mcp-a-trace-1"}},
        {"name": "get_observation", "arguments": {"trace_id": "mcp-a-trace-1", "observation_id": "mcp-a-gen"}},
        {"name": "get_session", "arguments": {"session_id": "mcp-a-session"}},
        {"name": "metrics", "arguments": {"dimensions": ["model"], "measures": ["count", "input_tokens", "total_cost"], "type": "generation"}},
        {"name": "get_prompt", "arguments": {"name": "mcp-system"}},
        {"name": "get_prompt", "arguments": {"name": "mcp-system", "label": "staging"}},
        {"name": "get_trace", "arguments": {"trace_id": "no-such-trace"}},
        {"name": "no_such_tool", "arguments": {}},
        {"name": "get_trace", "arguments": {}},
        {"name": "list_traces", "arguments": {"since": "soon"}},
        {"name": "get_trace", "arguments": {"trace_id": "mcp-b-trace"}},
    ])
}

fn text_of(output: &Value, i: usize) -> &str {
    let call = &output["calls"][i];
    assert_eq!(call["is_error"], false, "call {i} failed: {call}");
    call["text"].as_str().unwrap()
}

fn failure_of(output: &Value, i: usize) -> &str {
    let call = &output["calls"][i];
    assert_eq!(call["is_error"], true, "call {i} should fail: {call}");
    call["text"].as_str().unwrap()
}

fn error_of(output: &Value, i: usize) -> (i64, &str) {
    let error = &output["calls"][i]["error"];
    assert!(
        error.is_object(),
        "call {i} should be a JSON-RPC error: {}",
        output["calls"][i]
    );
    (
        error["code"].as_i64().unwrap(),
        error["message"].as_str().unwrap(),
    )
}

fn assert_contains(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "{w:?} missing from:\n{text}");
    }
}

/// What A's key reads through `url`, as the official client shows it.
async fn alpha_reads_its_project(url: &str, setup: &Setup) {
    let out = client(url, &setup.alpha, &alpha_calls()).await;
    assert_eq!(out["initialize"]["protocol_version"], "2025-11-25", "{out}");
    assert_eq!(out["initialize"]["server"], "agenttrace");
    assert_eq!(out["initialize"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(out["initialize"]["tools_capability"], true);
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
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
    assert!(
        out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["read_only"] == true)
    );
    assert_eq!(out["tools"][3]["required"], json!(["trace_id"]));
    // The default connection probes the newer `server/discover`, is refused, and initializes.
    assert_eq!(out["auto"], json!({"protocol_version": "2025-11-25", "tools": 8}));

    let search = text_of(&out, 0);
    assert_contains(
        search,
        &[
            "trace mcp-a-trace-1",
            "\"fix invoice totals\"",
            "«invoice»",
            "matched",
        ],
    );
    assert!(!search.contains("bravo"), "{search}");
    assert_contains(
        text_of(&out, 1),
        &[
            "observation mcp-a-gen",
            "generation \"plan\"",
            "«数据",
            "in trace mcp-a-trace-1",
        ],
    );
    assert_contains(text_of(&out, 2), &["session mcp-a-session"]);
    let traces = text_of(&out, 3);
    assert_contains(
        traces,
        &[
            "2 traces, newest first",
            "trace mcp-a-trace-1",
            "trace mcp-a-trace-2",
            "user ada",
            "ERROR",
        ],
    );
    assert!(
        traces.find("mcp-a-trace-2") < traces.find("mcp-a-trace-1"),
        "newest first: {traces}"
    );
    let errors = text_of(&out, 4);
    assert_contains(errors, &["1 trace, newest first", "trace mcp-a-trace-1"]);
    assert!(!errors.contains("mcp-a-trace-2"), "{errors}");
    assert_contains(
        text_of(&out, 5),
        &["1 session", "session mcp-a-session", "2 traces", "users ada"],
    );
    let trace = text_of(&out, 6);
    assert_contains(
        trace,
        &[
            "trace mcp-a-trace-1 · \"fix invoice totals\"",
            "user ada · session mcp-a-session",
            "input: {\"task\":\"the invoice total is wrong for order A-1042\"}",
            "output: fixed the rounding in invoice_total",
            "- generation \"plan\" [mcp-a-gen] · gpt-4.1-mini · 1.20s",
            "1000→200 tok",
            "  - tool \"Bash\" [mcp-a-tool] · 1.50s · ERROR: exit 101",
            "in: {\"command\":\"cargo test billing\"}",
            "out: error: invoice_total mismatch",
            "- correct = 1 (api): the total matches now",
            "- $ cargo test billing · exit 101 · 1.50s · cwd /repo",
            "stderr: thread 'billing::totals' panicked",
            "- edit src/billing/invoice.rs +10 -2",
        ],
    );
    assert_contains(
        text_of(&out, 7),
        &[
            "generation \"plan\" [mcp-a-gen]",
            "output:\nrounding happens before tax; the log said 数据库连接失败 too",
        ],
    );
    let session = text_of(&out, 8);
    assert_contains(
        session,
        &[
            "session mcp-a-session: 2 traces, oldest first",
            "in: run cargo test again",
            "out: all green",
        ],
    );
    assert!(
        session.find("mcp-a-trace-1") < session.find("mcp-a-trace-2"),
        "oldest first: {session}"
    );
    let metrics = text_of(&out, 9);
    assert_contains(
        metrics,
        &[
            "observations from ",
            ", by model",
            "model",
            "count",
            "input_tokens",
        ],
    );
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("gpt-4.1-mini") && line.contains(" 1 ") && line.contains("1000")),
        "{metrics}"
    );
    assert_contains(
        text_of(&out, 10),
        &[
            "prompt \"mcp-system\" version 1 · text · labels production",
            "config: {\"temperature\":0.1}",
            "You are a careful billing agent for {{customer}}.",
        ],
    );
    assert_contains(
        text_of(&out, 11),
        &["version 2", "staging", "You are a terse billing agent"],
    );
    assert_contains(
        failure_of(&out, 12),
        &["get_trace failed: no trace \"no-such-trace\" in this project"],
    );
    let (code, message) = error_of(&out, 13);
    assert_eq!(code, -32602);
    assert_contains(message, &["unknown tool \"no_such_tool\"", "get_trace"]);
    let (code, message) = error_of(&out, 14);
    assert_eq!(code, -32602);
    assert_contains(message, &["get_trace", "`trace_id` is required"]);
    assert_contains(failure_of(&out, 15), &["since: \"soon\" is not a duration"]);
    // B's trace, by its id: not in A's project.
    assert_contains(failure_of(&out, 16), &["no trace \"mcp-b-trace\""]);
    assert!(!out.to_string().contains("bravo private"), "{out}");
}

/// What B's key reads through `url`: B's own trace, and nothing of A's even by A's ids.
async fn bravo_sees_nothing_of_alphas(url: &str, setup: &Setup) {
    let calls = json!([
        {"name": "get_trace", "arguments": {"trace_id": "mcp-a-trace-1"}},
        {"name": "get_observation", "arguments": {"trace_id": "mcp-a-trace-1", "observation_id": "mcp-a-gen"}},
        {"name": "get_session", "arguments": {"session_id": "mcp-a-session"}},
        {"name": "search", "arguments": {"q": "invoice"}},
        {"name": "list_traces", "arguments": {}},
        {"name": "list_sessions", "arguments": {}},
        {"name": "metrics", "arguments": {"dimensions": ["model"]}},
        {"name": "get_prompt", "arguments": {"name": "mcp-system"}},
    ]);
    let out = client(url, &setup.bravo, &calls).await;
    for i in [0, 1, 2, 7] {
        failure_of(&out, i);
    }
    assert_contains(text_of(&out, 3), &["trace mcp-b-trace", "«invoice»"]);
    assert_contains(text_of(&out, 4), &["1 trace, newest first", "trace mcp-b-trace"]);
    assert_contains(text_of(&out, 5), &["session mcp-b-session"]);
    // A's strings the calls did not carry themselves.
    let seen = out["calls"].to_string();
    for alphas in [
        "fix invoice totals",
        "A-1042",
        "gpt-4.1-mini",
        "careful billing agent",
        "mcp-a-trace-2",
        "cargo test billing",
        "user ada",
    ] {
        assert!(!seen.contains(alphas), "B's key saw A's {alphas:?}: {seen}");
    }
}

/// A raw POST of `body` with `headers`: the status and the body as JSON (null when empty).
async fn post(url: &str, auth: Option<&str>, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"))
    };
    (status, value)
}

fn bearer(project: &TestProject) -> String {
    format!("Bearer {}:{}", project.key.public_key, project.secret_key)
}

/// The transport's and JSON-RPC's refusals, as a client without an SDK meets them.
async fn refusals(url: &str, setup: &Setup) {
    let alpha = bearer(&setup.alpha);
    let auth = Some(alpha.as_str());
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(
        post(url, auth, &[], ping).await,
        (200, json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
    );

    let (status, answer) = post(url, auth, &[], "{not json").await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!(-32700)),
        "{answer}"
    );
    assert_eq!(answer["id"], Value::Null);
    let (status, answer) = post(url, auth, &[], r#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!(-32600)),
        "{answer}"
    );
    assert_eq!(answer["id"], "x");
    let (status, answer) = post(
        url,
        auth,
        &[],
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/list"}"#,
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (200, &json!(-32601)),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resources/list")
    );
    let (status, answer) = post(
        url,
        auth,
        &[],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_trace","arguments":{"trace_id":"mcp-a-trace-1","depth":2}}}"#,
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (200, &json!(-32602)),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown argument `depth`")
    );

    // A notification: taken, nothing to answer.
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(post(url, auth, &[], initialized).await, (202, Value::Null));
    // A batch: only under 2025-03-26 (the version assumed without the header).
    let batch = format!(r#"[{ping},{initialized},{{"jsonrpc":"2.0","id":"t","method":"tools/list"}}]"#);
    let (status, answer) = post(url, auth, &[], &batch).await;
    assert_eq!(status, 200, "{answer}");
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), 2, "{answer}");
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[1]["result"]["tools"].as_array().unwrap().len(), 8);
    let (status, answer) = post(url, auth, &[("mcp-protocol-version", "2025-06-18")], &batch).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!(-32600)),
        "{answer}"
    );
    // Protocol versions.
    let (status, answer) = post(url, auth, &[("mcp-protocol-version", "2025-06-18")], ping).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(url, auth, &[("mcp-protocol-version", "1999-01-01")], ping).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["data"]["supported"][0], "2025-11-25");
    let initialize = |version: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
        )
    };
    let (_, answer) = post(url, auth, &[], &initialize("2025-03-26")).await;
    assert_eq!(answer["result"]["protocolVersion"], "2025-03-26", "{answer}");
    let (_, answer) = post(url, auth, &[], &initialize("2024-01-01")).await;
    assert_eq!(answer["result"]["protocolVersion"], "2025-11-25", "{answer}");

    // Origin: a browser page of another origin is refused; the server's own is not.
    let (status, answer) = post(url, auth, &[("origin", "http://evil.example")], ping).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    let own = url.trim_end_matches("/mcp");
    let (status, _) = post(url, auth, &[("origin", own)], ping).await;
    assert_eq!(status, 200, "Origin {own} is the server's own");

    // Credentials: none, wrong, or without `read`.
    let (status, answer) = post(url, None, &[], ping).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (401, &json!(-32001)),
        "{answer}"
    );
    assert_eq!(answer["id"], 1, "the refusal answers the request's id");
    let wrong = format!("Bearer {}:sk-wrong", setup.alpha.key.public_key);
    let (status, _) = post(url, Some(&wrong), &[], ping).await;
    assert_eq!(status, 401);
    let (status, answer) = post(url, Some(&bearer(&setup.alpha_without_read)), &[], ping).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`read` scope"),
        "{answer}"
    );

    // No server-sent stream.
    let status = reqwest::Client::new()
        .get(url)
        .header("authorization", &alpha)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 405);
}

#[tokio::test]
async fn the_official_mcp_client_reads_a_project_through_the_etl_and_the_edge() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let setup = setup(&env, &etl).await;

    let direct = format!("{}/mcp", etl.url);
    alpha_reads_its_project(&direct, &setup).await;
    bravo_sees_nothing_of_alphas(&direct, &setup).await;
    refusals(&direct, &setup).await;

    let edge = Edge::start(&etl.url, &[]).await;
    let forwarded = format!("{}/mcp", edge.url);
    alpha_reads_its_project(&forwarded, &setup).await;
    bravo_sees_nothing_of_alphas(&forwarded, &setup).await;
    tokio::time::timeout(Duration::from_secs(120), refusals(&forwarded, &setup))
        .await
        .expect("the edge answers");
    drop(edge);
    etl.server.shutdown().await.unwrap();
}
