//! Real clients through the edge in workerd, the ETL and both databases: the unmodified Langfuse
//! Python SDK (PyPI) and JS SDK (npm), Dify-shaped legacy batches whose updates arrive before
//! or after their creates, Claude Code and Codex log exports, the OpenTelemetry Python SDK's
//! metric exporter, and the `openai` Python client under the official OpenTelemetry and the
//! OpenInference instrumentations. Each reads its values back from ClickHouse.

use std::time::Duration;

use agenttrace_etl::control::api_keys;
use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use agenttrace_tests::etl::TestProject;
use serde_json::{Value, json};

const CLAUDE_CODE_LOGS_PB: &[u8] = include_bytes!("../../edge/tests/fixtures/claude_code_logs.pb");
const CODEX_LOGS_JSON: &[u8] = include_bytes!("../../edge/tests/fixtures/codex_logs.json");

/// Runs a real client's script (`tests/python/…`, `tests/js/…`) against `url` with the
/// project's key; returns what it printed.
async fn run_client(program: &str, script: &str, url: &str, project: &TestProject) -> String {
    let script = agenttrace_tests::repo_root().join(script);
    let args = [
        script.to_str().unwrap(),
        url,
        &project.key.public_key,
        &project.secret_key,
    ];
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The ids a client script prints as JSON on its last line.
fn printed_ids(output: &str) -> Value {
    serde_json::from_str(output.trim().lines().last().unwrap()).unwrap()
}

#[tokio::test]
async fn the_langfuse_python_sdk_lands_with_its_full_meaning() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("langfuse-python").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let ids = printed_ids(&run_client("python3", "tests/python/langfuse_sdk.py", &edge.url, &project).await);
    let trace = ids["trace_id"].as_str().unwrap();
    let p = project.key.project_id;
    env.wait_until(
        &format!(
            "SELECT name, type, parent_observation_id IS NULL FROM observations FINAL \
             WHERE project_id = '{p}' AND trace_id = '{trace}' ORDER BY start_time_us"
        ),
        "handle-request\tspan\t1\nanswer\tgeneration\t0\nlookup-order\tspan\t0\nformat-reply\tspan\t0",
        Duration::from_secs(60),
    )
    .await;
    // The generation: model, usage, parameters, and a cost from the price table
    // (gpt-4.1-mini: $0.40 / $1.60 per million input / output tokens).
    assert_eq!(
        env.ch(&format!(
            "SELECT model, input_tokens, output_tokens, toString(total_cost), cost_source, \
             visitParamExtractFloat(model_parameters, 'temperature') FROM observations FINAL \
             WHERE project_id = '{p}' AND name = 'answer'"
        ))
        .await,
        "gpt-4.1-mini\t1000\t200\t0.000720000000\tprice_table\t0.2"
    );
    assert_eq!(
        env.ch(&format!(
            "SELECT level, status_message, output FROM observations FINAL WHERE project_id = '{p}' AND name = 'format-reply'"
        ))
        .await,
        "warning\tslow formatter\t\"It shipped.\""
    );
    // The @observe'd function's arguments and result.
    let observed = env
        .ch(&format!(
            "SELECT input, output FROM observations FINAL WHERE project_id = '{p}' AND name = 'lookup-order'"
        ))
        .await;
    assert!(
        observed.contains("A-1") && observed.contains("shipped"),
        "{observed}"
    );
    // Trace-level attributes from every span, merged into one trace.
    env.wait_until(&format!(
            "SELECT name, user_id, session_id, arraySort(tags), metadata_values[indexOf(metadata_keys, 'team')] \
             FROM traces FINAL WHERE project_id = '{p}' AND id = '{trace}'"
        ),
        "checkout-assistant\tuser-42\tsess-7\t['checkout','sdk']\tpayments",
        Duration::from_secs(30),
    )
    .await;
    // Scores, with their data types.
    env.wait_until(
        &format!(
            "SELECT name, data_type, value, ifNull(string_value, ''), ifNull(observation_id, '') = '' \
             FROM scores FINAL WHERE project_id = '{p}' ORDER BY name"
        ),
        "accuracy\tnumeric\t0.9\t\t1\nhelpful\tboolean\t1\t\t0\ntone\tcategorical\t0\tfriendly\t1",
        Duration::from_secs(30),
    )
    .await;
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_langfuse_js_sdk_lands_the_same_way() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("langfuse-js").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let ids = printed_ids(&run_client("node", "tests/js/langfuse_sdk.mjs", &edge.url, &project).await);
    let trace = ids["traceId"].as_str().unwrap();
    let p = project.key.project_id;
    env.wait_until(
        &format!(
            "SELECT name, type, ifNull(model, ''), input_tokens, output_tokens, toString(total_cost), \
             visitParamExtractFloat(ifNull(model_parameters, ''), 'temperature') FROM observations FINAL \
             WHERE project_id = '{p}' AND trace_id = '{trace}' ORDER BY start_time_us"
        ),
        "js-request\tspan\t\t0\t0\t\\N\t0\njs-answer\tgeneration\tgpt-4.1-mini\t500\t50\t0.000280000000\t0.5",
        Duration::from_secs(60),
    )
    .await;
    env.wait_until(&format!("SELECT name, user_id, session_id, tags FROM traces FINAL WHERE project_id = '{p}' AND id = '{trace}'"),
        "js-assistant\tjs-user\tjs-session\t['js-sdk']",
        Duration::from_secs(30),
    )
    .await;
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

/// A Dify-shaped legacy batch: the creates in one request and the updates in a later one, and
/// for a second trace the other way round. Both read back merged.
#[tokio::test]
async fn legacy_batches_merge_updates_in_either_order() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("dify").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let http = reqwest::Client::new();
    let now = Timestamp::now().as_micros();
    let at = |seconds: i64| Timestamp::from_micros(now + seconds * 1_000_000).to_string();
    let creates = |trace: &str| {
        json!({"batch": [
            {"id": format!("{trace}-e1"), "timestamp": at(-10), "type": "trace-create",
             "body": {"id": trace, "name": "workflow", "userId": "user-1", "input": {"query": "hello"}}},
            {"id": format!("{trace}-e2"), "timestamp": at(-9), "type": "span-create",
             "body": {"id": format!("{trace}-span"), "traceId": trace, "name": "retrieve", "startTime": at(-9),
                      "input": {"q": "hello"}, "metadata": {"index": "docs"}}},
            {"id": format!("{trace}-e3"), "timestamp": at(-8), "type": "generation-create",
             "body": {"id": format!("{trace}-gen"), "traceId": trace, "parentObservationId": format!("{trace}-span"),
                      "name": "llm", "startTime": at(-8), "model": "gpt-4.1-mini",
                      "input": [{"role": "user", "content": "hello"}], "modelParameters": {"temperature": 0.7}}}
        ], "metadata": {"sdk_name": "dify", "batch_size": 3}})
    };
    let updates = |trace: &str| {
        json!({"batch": [
            {"id": format!("{trace}-e4"), "timestamp": at(-5), "type": "span-update",
             "body": {"id": format!("{trace}-span"), "traceId": trace, "endTime": at(-6), "output": {"docs": 3}}},
            {"id": format!("{trace}-e5"), "timestamp": at(-4), "type": "generation-update",
             "body": {"id": format!("{trace}-gen"), "traceId": trace, "endTime": at(-4), "output": "hi there",
                      "usage": {"input": 500, "output": 40, "unit": "TOKENS"}}},
            {"id": format!("{trace}-e6"), "timestamp": at(-3), "type": "trace-create",
             "body": {"id": trace, "output": {"answer": "hi there"}, "tags": ["dify"]}}
        ]})
    };
    let send = |batch: Value| {
        let request = http
            .post(format!("{}/api/public/ingestion", edge.url))
            .header("authorization", project.basic_auth())
            .json(&batch);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 207, "{body}");
            assert_eq!(body["errors"], json!([]), "{body}");
            body["successes"].as_array().unwrap().len()
        }
    };
    let p = project.key.project_id;
    // Creates first, then updates, in separate requests (each flushed before the next).
    assert_eq!(send(creates("t-forward")).await, 3);
    env.wait_until(
        &format!("SELECT count() FROM observations FINAL WHERE project_id = '{p}'"),
        "2",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(send(updates("t-forward")).await, 3);
    // Updates first: they wait until their creates arrive.
    assert_eq!(send(updates("t-reverse")).await, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(send(creates("t-reverse")).await, 3);
    // And both in one request, updates listed first.
    let mut both = updates("t-single")["batch"].as_array().unwrap().clone();
    both.extend(creates("t-single")["batch"].as_array().unwrap().clone());
    assert_eq!(send(json!({ "batch": both })).await, 6);

    for trace in ["t-forward", "t-reverse", "t-single"] {
        env.wait_until(&format!(
                "SELECT name, input, output, ifNull(model, ''), input_tokens, output_tokens, end_time_us IS NOT NULL, \
                 metadata_values[indexOf(metadata_keys, 'index')] \
                 FROM observations FINAL WHERE project_id = '{p}' AND trace_id = '{trace}' ORDER BY name"
            ),
            "llm\t[{\"role\":\"user\",\"content\":\"hello\"}]\t\"hi there\"\tgpt-4.1-mini\t500\t40\t1\t\n\
             retrieve\t{\"q\":\"hello\"}\t{\"docs\":3}\t\t0\t0\t1\tdocs",
            Duration::from_secs(30),
        )
        .await;
        env.wait_until(&format!(
                "SELECT name, user_id, input, output, tags FROM traces FINAL WHERE project_id = '{p}' AND id = '{trace}'"
            ),
            "workflow\tuser-1\t{\"query\":\"hello\"}\t{\"answer\":\"hi there\"}\t['dify']",
            Duration::from_secs(30),
        )
        .await;
    }
    // Nothing waits any more. The rows can be visible a moment before the batch that merged
    // them commits its clean-up (on a cluster the insert also waits for the second replica).
    let pg = env.postgres().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pending: i64 = pg
            .query_one(
                "SELECT count(*) FROM pending_patches WHERE project_id = $1",
                &[&p],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} patches still wait after their entities were complete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A malformed envelope is a 400 in Langfuse's words; a bad event is named in the 207.
    let response = http
        .post(format!("{}/api/public/ingestion", edge.url))
        .header("authorization", project.basic_auth())
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Invalid request data");
    let response = http
        .post(format!("{}/api/public/ingestion", edge.url))
        .header("authorization", project.basic_auth())
        .json(&json!({"batch": [{"id": "bad-1", "timestamp": at(0), "type": "span-create", "body": {"name": "x"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 207);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["id"], "bad-1");
    assert_eq!(body["errors"][0]["status"], 400);
    assert!(
        body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("body.id: required")
    );
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

/// Claude Code (v2.1.226 format) and Codex (0.155.0 format) log exports, and the OpenTelemetry
/// Python SDK's metric exporter, through the edge.
#[tokio::test]
async fn coding_agent_exports_and_otlp_metrics_land() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("coding-agents").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let http = reqwest::Client::new();
    // The fixtures' times are from 2025-11-25; the edge accepts up to ~13 months back.
    for (content_type, body) in [
        ("application/x-protobuf", CLAUDE_CODE_LOGS_PB),
        ("application/json", CODEX_LOGS_JSON),
    ] {
        let response = http
            .post(format!("{}/v1/logs", edge.url))
            .header("authorization", project.basic_auth())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let p = project.key.project_id;
    env.wait_until(
        &format!(
            "SELECT command, ifNull(toString(exit_code), '') FROM terminal_commands FINAL \
             WHERE project_id = '{p}' ORDER BY command"
        ),
        "cargo test --workspace\t101\ncargo test checkout\t0\nnpm test\t1",
        Duration::from_secs(30),
    )
    .await;
    // Claude Code: the prompt parents its requests and tool results. (Each table of a batch is
    // loaded on its own: the observations may land just after the commands.)
    env.wait_until(&format!(
            "SELECT count() FROM observations FINAL WHERE project_id = '{p}' AND trace_id = 'cc-session-1' \
             AND parent_observation_id IN (SELECT id FROM observations FINAL WHERE project_id = '{p}' AND name = 'prompt')"
        ),
        "5",
        Duration::from_secs(30),
    )
    .await;
    // The session reads as a conversation: the turn's prompt, which Claude Code puts on its
    // prompt span (the trace carries none). The trace's own row may land after its spans.
    env.wait_until(
        &format!(
            "SELECT count() > 0 FROM session_traces WHERE project_id = '{p}' AND session_id = 'cc-session-1'"
        ),
        "1",
        Duration::from_secs(30),
    )
    .await;
    let pg = env.postgres().await;
    let reader = api_keys::create_key(&pg, p, &[Scope::Read], None).await.unwrap();
    let session: Value = http
        .get(format!("{}/v1/sessions/cc-session-1", etl.url))
        .header(
            "authorization",
            format!("Bearer {}:{}", reader.public_key, reader.secret_key),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        session["data"][0]["input"], "Fix the failing checkout",
        "{session}"
    );
    // Codex: one generation with its model and tokens, and one file operation per patched file.
    env.wait_until(&format!(
            "SELECT model, input_tokens, output_tokens, cache_read_tokens, cost_source FROM observations FINAL \
             WHERE project_id = '{p}' AND trace_id = '0199a213-81c0-7800-8aa1-bbab2a035a53' AND type = 'generation'"
        ),
        "gpt-5-codex\t9000\t350\t6000\tprice_table",
        Duration::from_secs(30),
    )
    .await;
    env.wait_until(
        &format!(
            "SELECT operation, path, lines_added, lines_removed FROM file_operations FINAL \
             WHERE project_id = '{p}' AND trace_id = '0199a213-81c0-7800-8aa1-bbab2a035a53' ORDER BY path"
        ),
        "edit\tsrc/list.ts\t1\t1\ncreate\tsrc/page.ts\t1\t0",
        Duration::from_secs(30),
    )
    .await;

    // Metrics from the OpenTelemetry Python SDK's exporter (OTLP/HTTP protobuf).
    let metrics_url = format!("{}/v1/metrics", edge.url);
    run_client("python3", "tests/python/otel_metrics.py", &metrics_url, &project).await;
    env.wait_until(&format!(
            "SELECT name, kind, ifNull(temporality, ''), sum(ifNull(value, 0)), sum(ifNull(count, 0)) FROM metrics FINAL \
             WHERE project_id = '{p}' GROUP BY name, kind, temporality ORDER BY name"
        ),
        "claude_code.cost.usage\tsum\tdelta\t0.0123\t0\n\
         claude_code.token.usage\tsum\tdelta\t13720\t0\n\
         tool.duration\thistogram\tdelta\t0\t3",
        Duration::from_secs(30),
    )
    .await;
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_langfuse_python_sdk_reads_observations_and_metrics_v2_through_the_edge() {
    use std::collections::{BTreeMap, BTreeSet};

    use agenttrace_cli::agent::SessionGenerator;
    use agenttrace_schemas::{Payload, Scope};
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("langfuse-reads").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let now = Timestamp::now().as_micros();
    let mut generator = SessionGenerator::new(81);
    let events: Vec<_> = (0..2)
        .flat_map(|_| generator.session(Timestamp::from_micros(now), 3))
        .collect();
    etl.load(&project.key, &events).await;
    etl.load(&project.key, &events).await;
    let pg = env.postgres().await;
    let reader =
        agenttrace_etl::control::api_keys::create_key(&pg, project.key.project_id, &[Scope::Read], None)
            .await
            .unwrap();
    let day_us = 86_400_000_000;
    let script = agenttrace_tests::repo_root().join("tests/python/langfuse_reads.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .args([
            edge.url.as_str(),
            &reader.public_key,
            &reader.secret_key,
            &Timestamp::from_micros(now - day_us).to_string(),
            &Timestamp::from_micros(now + day_us).to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen = printed_ids(&String::from_utf8(output.stdout).unwrap());

    let observations: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Observation(o) => Some(o.clone()),
            _ => None,
        })
        .collect();
    // Every observation once, across cursor pages of two, in Langfuse's capitals.
    let listed = seen["observations"].as_array().unwrap();
    let ids: BTreeSet<&str> = listed.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), listed.len(), "an observation shows twice");
    assert_eq!(ids, observations.iter().map(|o| o.id.as_str()).collect());
    for row in listed {
        let sent = observations.iter().find(|o| row["id"] == o.id.as_str()).unwrap();
        let kind = serde_json::to_value(sent.kind).unwrap();
        assert_eq!(row["type"], kind.as_str().unwrap().to_uppercase(), "{row}");
        assert_eq!(row["traceId"], sent.trace_id.as_str());
        assert_eq!(row["name"], sent.name.as_str());
        assert_eq!(row["model"].as_str(), sent.model.as_deref());
        let usage = &sent.usage;
        let total = usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_input_tokens
            + usage.cache_creation_input_tokens;
        assert_eq!(row["totalTokens"], total, "{row}");
    }
    let generations: BTreeSet<&str> = observations
        .iter()
        .filter(|o| serde_json::to_value(o.kind).unwrap() == "generation")
        .map(|o| o.id.as_str())
        .collect();
    assert!(!generations.is_empty());
    let filtered: BTreeSet<&str> = seen["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(filtered, generations);
    // Metrics: generations by model and day, as computed here.
    let mut expected: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for o in observations
        .iter()
        .filter(|o| generations.contains(o.id.as_str()))
    {
        let day = o.start_time.as_micros().div_euclid(day_us) * day_us;
        let entry = expected
            .entry((o.model.as_deref().unwrap_or_default().to_owned(), day))
            .or_default();
        entry.0 += 1;
        entry.1 += o.usage.input_tokens;
    }
    let rows = seen["metrics"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for row in rows {
        let day = Timestamp::parse(row["time_dimension"].as_str().unwrap())
            .unwrap()
            .as_micros();
        let (count, input) = expected[&(row["providedModelName"].as_str().unwrap().to_owned(), day)];
        assert_eq!(row["count_count"], count, "{row}");
        assert_eq!(row["sum_inputTokens"], input, "{row}");
        assert!(row["sum_totalCost"].as_f64().unwrap() > 0.0, "{row}");
    }
    etl.server.shutdown().await.unwrap();
}

/// The answer of [`chat_completions`] to every call.
const ANSWER: &str = "Order A-1 shipped on 2026-12-01.";

/// A Chat Completions server on loopback, answering `POST /v1/chat/completions` as OpenAI's API
/// does: a `chat.completion` with the model asked for, one choice and its token usage (1,000
/// prompt, 200 completion tokens). Its base URL, and the task serving it.
async fn chat_completions() -> (String, tokio::task::JoinHandle<()>) {
    async fn complete(axum::Json(request): axum::Json<Value>) -> axum::Json<Value> {
        axum::Json(json!({
            "id": "chatcmpl-7", "object": "chat.completion", "created": 1_764_000_000,
            "model": request["model"], "system_fingerprint": "fp_7",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                         "message": {"role": "assistant", "content": ANSWER, "refusal": null}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
        }))
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(complete));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

/// `tests/python/openai_instrumented.py`: the real `openai` client under a real instrumentation
/// library, exporting through the edge; driven a call at a time over its stdin and stdout.
struct InstrumentedClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl InstrumentedClient {
    fn start(instrumentation: &str, openai_url: &str, edge_url: &str, project: &TestProject) -> Self {
        let script = agenttrace_tests::repo_root().join("tests/python/openai_instrumented.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .args([
                instrumentation,
                openai_url,
                edge_url,
                &project.key.public_key,
                &project.secret_key,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("running python3");
        let stdin = child.stdin.take().unwrap();
        let stdout =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
        InstrumentedClient { child, stdin, stdout }
    }

    async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt as _;
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The script's next line; what it wrote to stderr if it ended instead.
    async fn line(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = self.child.start_kill();
                let output = self.child.stderr.take().unwrap();
                let mut stderr = String::new();
                tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(output), &mut stderr)
                    .await
                    .unwrap();
                panic!("openai_instrumented.py stopped ({other:?}):\n{stderr}");
            }
        }
    }

    /// One chat call exported in `order` (`both`, `logs-first` or `spans-first`); for the
    /// latter two `between` runs once the first signal is exported. The call's trace and span ids.
    async fn call<F: std::future::Future<Output = ()>>(
        &mut self,
        order: &str,
        between: impl FnOnce(String, String) -> F,
    ) -> (String, String) {
        self.send(order).await;
        let ids: Value = serde_json::from_str(&self.line().await).unwrap();
        let (trace, span) = (
            ids["trace_id"].as_str().unwrap().to_owned(),
            ids["span_id"].as_str().unwrap().to_owned(),
        );
        if order != "both" {
            assert!(self.line().await.starts_with("exported"));
            between(trace.clone(), span.clone()).await;
            self.send("").await;
        }
        assert_eq!(self.line().await, "done");
        (trace, span)
    }

    async fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "openai_instrumented.py exited with {status}");
    }
}

/// A payload as the read API answers it: JSON, or JSON held in a string.
fn payload(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| value.clone()),
        other => other.clone(),
    }
}

/// The real `openai` Python client (PyPI) against a Chat Completions server on loopback, under
/// the two instrumentations users run, unmodified from PyPI, exporting OTLP through the edge:
///
/// - the official OpenTelemetry one (`opentelemetry-instrumentation-openai-v2`, message content
///   on) sends the messages and the choice as GenAI events in OTLP logs: they fold into the
///   generation (its input the messages, its output the choice) whether the logs or the spans
///   reach the ETL first, with no event observations beside it, and the trace's session is not
///   its own id;
/// - OpenInference's (`openinference-instrumentation-openai`) flattens the chat into span
///   attributes: the generation's input and output are the conversation, not the raw request and
///   response JSON, and so are its trace's (the span is the root).
///
/// Both generations are priced from the seeded table (gpt-5.3-codex: $1.75 / $14 per million).
#[tokio::test]
async fn instrumented_openai_clients_land_as_conversations() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("openai-instrumented").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let (openai_url, _server) = chat_completions().await;
    let p = project.key.project_id;
    let pg = env.postgres().await;
    let reader = api_keys::create_key(&pg, p, &[Scope::Read], None).await.unwrap();
    let http = reqwest::Client::new();
    let read = |path: String| {
        let request = http.get(format!("{}{path}", etl.url)).header(
            "authorization",
            format!("Bearer {}:{}", reader.public_key, reader.secret_key),
        );
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let pending = || async {
        let row = pg
            .query_one(
                "SELECT count(*) FROM pending_patches WHERE project_id = $1",
                &[&p],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let conversation = json!([
        {"role": "system", "content": "You answer about orders in one sentence."},
        {"role": "user", "content": "Where is order A-1?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "lookup_order", "arguments": "{\"order\": \"A-1\"}"}}]},
        {"role": "tool", "content": "shipped 2026-12-01", "tool_call_id": "call_1"},
    ]);
    let priced = "gpt-5.3-codex\t1000\t200\t0.004550000000\tprice_table\t1\t1";
    let generation = |trace: &str| {
        format!(
            "SELECT type, name, ifNull(model, ''), input_tokens, output_tokens, toString(total_cost), cost_source, \
             ifNull(input, '') != '', ifNull(output, '') != '' FROM observations FINAL \
             WHERE project_id = '{p}' AND trace_id = '{trace}' ORDER BY start_time_us"
        )
    };

    // The official instrumentation: one call whose logs are exported (and wait in the ETL for
    // their generation) before its spans, and one the other way round.
    let mut client = InstrumentedClient::start("openai-v2", &openai_url, &edge.url, &project);
    let logs_first = client
        .call("logs-first", |_, _| async {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while pending().await == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the events' patch never reached the ETL"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    let spans_first = client
        .call("spans-first", |trace, span| {
            let sql = format!(
                "SELECT count() FROM observations FINAL WHERE project_id = '{p}' AND trace_id = '{trace}' AND id = '{span}'"
            );
            let env = &env;
            async move { env.wait_until(&sql, "1", Duration::from_secs(30)).await }
        })
        .await;
    client.finish().await;
    for (trace, span) in [&logs_first, &spans_first] {
        // One generation, nothing else: no event observations beside it.
        env.wait_until(
            &generation(trace),
            &format!("generation\tchat gpt-5.3-codex\t{priced}"),
            Duration::from_secs(30),
        )
        .await;
        let observation = read(format!("/v1/traces/{trace}/observations/{span}")).await;
        assert_eq!(payload(&observation["input"]), conversation, "{observation}");
        assert_eq!(
            payload(&observation["output"]),
            json!([{"role": "assistant", "content": ANSWER, "finish_reason": "stop"}]),
            "{observation}"
        );
        // Named by its root span; no session (not its own id).
        env.wait_until(
            &format!(
                "SELECT ifNull(session_id, '') = '', name FROM traces FINAL WHERE project_id = '{p}' AND id = '{trace}'"
            ),
            "1\tchat gpt-5.3-codex",
            Duration::from_secs(30),
        )
        .await;
        // The chat span is the trace's root: the trace reads with the chat's input and output.
        let detail = read(format!("/v1/traces/{trace}")).await;
        assert_eq!(payload(&detail["trace"]["input"]), conversation, "{detail}");
        assert_eq!(
            payload(&detail["trace"]["output"]),
            json!([{"role": "assistant", "content": ANSWER, "finish_reason": "stop"}]),
            "{detail}"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pending().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "patches still wait after their generations were complete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // OpenInference's instrumentation: the chat from its span attributes.
    let mut client = InstrumentedClient::start("openinference", &openai_url, &edge.url, &project);
    let (trace, span) = client.call("both", |_, _| async {}).await;
    client.finish().await;
    env.wait_until(
        &generation(&trace),
        &format!("generation\tChatCompletion\t{priced}"),
        Duration::from_secs(30),
    )
    .await;
    let observation = read(format!("/v1/traces/{trace}/observations/{span}")).await;
    assert_eq!(payload(&observation["input"]), conversation, "{observation}");
    let answer = json!([{"role": "assistant", "content": ANSWER}]);
    assert_eq!(payload(&observation["output"]), answer, "{observation}");
    // The span is the root: the trace's input and output are the conversation too.
    env.wait_until(
        &format!(
            "SELECT count() FROM traces FINAL WHERE project_id = '{p}' AND id = '{trace}' AND ifNull(input, '') != ''"
        ),
        "1",
        Duration::from_secs(30),
    )
    .await;
    let detail = read(format!("/v1/traces/{trace}")).await;
    assert_eq!(payload(&detail["trace"]["input"]), conversation, "{detail}");
    assert_eq!(payload(&detail["trace"]["output"]), answer, "{detail}");
    drop(edge);
    etl.server.shutdown().await.unwrap();
}
