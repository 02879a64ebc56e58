//! The edge Worker in real workerd (`wrangler dev`) with the real ETL, PostgreSQL and
//! ClickHouse: events and OTLP exports land with their values; bad requests get precise
//! errors; an ETL outage loses and duplicates nothing; a batch the ETL refuses for good is kept
//! and listed, not retried; the OpenTelemetry Python SDK's exporter works against the
//! Langfuse-compatible route; concurrent requests sharing appends lose nothing, even when
//! clients give up mid-request.

use std::sync::Arc;
use std::time::Duration;

use agenttrace_schemas::Timestamp;
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use serde_json::{Value, json};

const TRACES_PB: &[u8] = include_bytes!("../../edge/tests/fixtures/traces.pb");
const CODEX_LOGS_JSON: &[u8] = include_bytes!("../../edge/tests/fixtures/codex_logs.json");

/// `count` span observations of trace `prefix`, as a native intake body.
fn native_events(prefix: &str, count: usize) -> Value {
    let now = Timestamp::now().to_string();
    let events: Vec<Value> = (0..count)
        .map(|i| {
            json!({"id": format!("{prefix}-{i}"), "type": "observation", "timestamp": now,
                   "body": {"id": format!("{prefix}-o{i}"), "trace_id": prefix, "type": "span", "name": "step",
                            "start_time": now}})
        })
        .collect();
    json!({ "events": events })
}

#[tokio::test]
async fn the_edge_loads_native_and_otlp_events_and_refuses_bad_requests() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("edge").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let http = reqwest::Client::new();
    let p = project.key.project_id;
    let post = |path: &str| {
        http.post(format!("{}{path}", edge.url))
            .header("authorization", project.basic_auth())
    };

    let now = Timestamp::now().to_string();
    let native = json!({"events": [
        {"id": "n1", "type": "trace", "timestamp": now, "body": {"id": "native-trace", "name": "fix the build"}},
        {"id": "n2", "type": "observation", "timestamp": now, "body": {
            "id": "native-gen", "trace_id": "native-trace", "type": "generation", "name": "llm", "start_time": now,
            "model": "claude-sonnet-4-5", "usage": {"input_tokens": 1000, "output_tokens": 50}, "cost": {"total": 0.0042}}},
        {"id": "n3", "type": "observation", "timestamp": now, "body": {
            "id": "bad", "trace_id": "native-trace", "type": "generation", "name": "llm", "start_time": now,
            "usage": {"input_tokens": -1}}},
    ]});
    let response = post("/v1/ingest").json(&native).send().await.unwrap();
    assert_eq!(response.status(), 207);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 2);
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("body.usage.input_tokens"),
        "{body}"
    );

    // gzip is accepted.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, native_events("gz", 3).to_string().as_bytes()).unwrap();
    let response = post("/v1/ingest")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let response = post("/v1/traces")
        .header("content-type", "application/x-protobuf")
        .body(TRACES_PB)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let response = post("/v1/logs")
        .header("content-type", "application/json")
        .body(CODEX_LOGS_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // Precise refusals.
    let refused = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["message"].as_str().unwrap_or_default().to_owned())
    };
    let (status, message) = refused(
        http.post(format!("{}/v1/ingest", edge.url))
            .header(
                "authorization",
                format!("Bearer {}:sk-at-wrong", project.key.public_key),
            )
            .json(&native)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{message}");
    let (status, message) = refused(http.post(format!("{}/v1/ingest", edge.url)).send().await.unwrap()).await;
    assert_eq!(
        (status, message.contains("missing Authorization header")),
        (401, true),
        "{message}"
    );
    let (status, message) = refused(
        post("/v1/ingest")
            .header("content-type", "text/plain")
            .body("hi")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message.contains("unsupported content type")),
        (415, true),
        "{message}"
    );
    let (status, message) = refused(
        post("/v1/ingest")
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message.contains("the body must be")),
        (400, true),
        "{message}"
    );
    let (status, message) = refused(
        post("/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(vec![0xff, 0xff])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message.contains("not a protobuf")),
        (400, true),
        "{message}"
    );
    let (status, message) = refused(
        post("/v1/ingest")
            .json(&native_events("big", 1001))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message.contains("the limit is 1000 per request")),
        (413, true),
        "{message}"
    );
    let response = http.get(format!("{}/v1/ingest", edge.url)).send().await.unwrap();
    assert_eq!(
        (
            response.status().as_u16(),
            response.headers()["allow"].to_str().unwrap()
        ),
        (405, "POST")
    );
    assert_eq!(
        http.get(format!("{}/v2/x", edge.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Everything accepted arrives: observations 1 native + 3 gzip + 4 spans + 7 Codex (its
    // request and completion are one generation), with the native trace, the spans' root trace
    // and the Codex session's; 1 terminal command and 2 file operations from Codex; the invalid
    // event is dead-lettered.
    env.wait_until(
        &format!("SELECT count() FROM observations FINAL WHERE project_id = '{p}'"),
        "15",
        Duration::from_secs(30),
    )
    .await;
    env.wait_until(
        &format!("SELECT count() FROM traces FINAL WHERE project_id = '{p}'"),
        "3",
        Duration::from_secs(30),
    )
    .await;
    env.wait_until(
        &format!("SELECT count() FROM dead_letters WHERE project_id = '{p}'"),
        "1",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        env.ch(&format!(
            "SELECT model, input_tokens, output_tokens, toString(total_cost) FROM observations FINAL \
             WHERE project_id = '{p}' AND id = 'native-gen'"
        ))
        .await,
        "claude-sonnet-4-5\t1000\t50\t0.004200000000"
    );
    assert_eq!(
        env.ch(&format!(
            "SELECT type, model, input_tokens FROM observations FINAL WHERE project_id = '{p}' AND name = 'chat claude-sonnet-4-5'"
        ))
        .await,
        "generation\tclaude-sonnet-4-5-20250929\t1200"
    );
    assert_eq!(
        env.ch(&format!(
            "SELECT command, cwd, exit_code FROM terminal_commands FINAL WHERE project_id = '{p}'"
        ))
        .await,
        "npm test\t/repo\t1"
    );
    assert!(
        env.ch(&format!(
            "SELECT reason FROM dead_letters WHERE project_id = '{p}'"
        ))
        .await
        .contains("input_tokens")
    );
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_etl_outage_loses_nothing_and_duplicates_nothing() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let addr = etl.server.addr;
    let project = env.create_project("outage").await;
    let edge = Edge::start(&etl.url, &[("KEY_CACHE_TTL_MS", "500")]).await;
    let http = reqwest::Client::new();
    let p = project.key.project_id;
    let send = |prefix: String| {
        let request = http
            .post(format!("{}/v1/ingest", edge.url))
            .header("authorization", project.basic_auth())
            .json(&native_events(&prefix, 50));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };
    send("before".into()).await;
    env.wait_until(
        &format!("SELECT count() FROM observations WHERE project_id = '{p}'"),
        "50",
        Duration::from_secs(30),
    )
    .await;

    // The ETL goes away; agents keep sending, and the edge keeps accepting (durably).
    etl.server.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // past the key cache's TTL
    for i in 0..20 {
        send(format!("during-{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM observations WHERE project_id = '{p}'"
        ))
        .await,
        "50"
    );

    // Back on the same address: the buffers deliver everything, once.
    let etl = env.start_etl_at(addr, |_| {}).await;
    let total = 50 + 20 * 50;
    env.wait_until(
        &format!("SELECT count() FROM observations FINAL WHERE project_id = '{p}'"),
        &total.to_string(),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        env.ch(&format!(
            "SELECT count(), uniqExact(id) FROM observations WHERE project_id = '{p}'"
        ))
        .await,
        format!("{total}\t{total}")
    );
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_opentelemetry_python_sdk_exports_through_the_edge() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("python-sdk").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let script = agenttrace_tests::repo_root().join("tests/python/otel_export.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(format!("{}/api/public/otel/v1/traces", edge.url))
        .arg(&project.key.public_key)
        .arg(&project.secret_key)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        edge.log()
    );
    let p = project.key.project_id;
    env.wait_until(
        &format!("SELECT count() FROM observations FINAL WHERE project_id = '{p}'"),
        "3",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        env.ch(&format!(
            "SELECT name, type, ifNull(model, ''), ifNull(tool_name, ''), input_tokens FROM observations FINAL \
             WHERE project_id = '{p}' ORDER BY name"
        ))
        .await,
        "chat gpt-4.1-mini\tgeneration\tgpt-4.1-mini\t\t42\n\
         execute_tool search\ttool_call\t\tsearch\t0\n\
         invoke_agent\tspan\t\t\t0"
    );
    // The trace's row may load in a batch after its observations' (the edge flushes by size
    // and time), so it is waited for too.
    env.wait_until(
        &format!("SELECT session_id FROM traces FINAL WHERE project_id = '{p}'"),
        "py-session",
        Duration::from_secs(30),
    )
    .await;
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

/// The ETL's count of batches refused with `outcome` (from its Prometheus metrics).
async fn refused_batches(etl_url: &str, outcome: &str) -> u64 {
    let metrics = reqwest::get(format!("{etl_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("agenttrace_batches_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |count| count.trim().parse().unwrap())
}

#[tokio::test]
async fn a_batch_the_etl_refuses_for_good_is_recorded_not_retried() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("revoked").await;
    // A long key cache: the edge keeps accepting the key after it is revoked.
    let edge = Edge::start(
        &etl.url,
        &[("KEY_CACHE_TTL_MS", "60000"), ("FLUSH_MAX_AGE_MS", "500")],
    )
    .await;
    let http = reqwest::Client::new();
    let send = || {
        http.post(format!("{}/v1/ingest", edge.url))
            .header("authorization", project.basic_auth())
            .json(&native_events("revoked", 5))
            .send()
    };
    // Warm the edge's key cache, then revoke the key in PostgreSQL.
    assert_eq!(send().await.unwrap().status(), 200);
    let p = project.key.project_id;
    env.wait_until(
        &format!("SELECT count() FROM observations WHERE project_id = '{p}'"),
        "5",
        Duration::from_secs(30),
    )
    .await;
    let pg = env.postgres().await;
    agenttrace_etl::control::api_keys::revoke_key(&pg, &project.key.public_key)
        .await
        .unwrap();
    let before = refused_batches(&etl.url, "revoked_key").await;

    // The edge still accepts (its cache says the key is good); the ETL refuses the batch with
    // 401. The edge records it and does not retry: after several retry periods the ETL has
    // seen it once.
    assert_eq!(send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        refused_batches(&etl.url, "revoked_key").await - before,
        1,
        "{}",
        edge.log()
    );
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM observations WHERE project_id = '{p}'"
        ))
        .await,
        "5"
    );

    // The project's other key sees the refused batch, with the ETL's reason.
    let other =
        agenttrace_etl::control::api_keys::create_key(&pg, p, &[agenttrace_schemas::Scope::Ingest], None)
            .await
            .unwrap();
    let pair = format!("{}:{}", other.public_key, other.secret_key);
    let listed: Value = http
        .get(format!("{}/v1/buffer/rejected", edge.url))
        .header("authorization", format!("Bearer {pair}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rejected = listed["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{listed}");
    assert_eq!(rejected[0]["status"], 401);
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("revoked"),
        "{listed}"
    );
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

/// Two ETLs behind one edge (`ETL_URL` lists both); one stops mid-load. The edge moves its
/// deliveries and key checks to the other: every acknowledged event is stored, none twice.
#[tokio::test]
async fn two_etls_behind_the_edge_one_stopping_mid_load_lose_and_duplicate_nothing() {
    let env = TestEnv::migrated().await;
    let first = env.start_etl(|_| {}).await;
    let second = env.start_etl(|_| {}).await;
    let project = env.create_project("two-etls").await;
    let edge = Edge::start(
        &format!("{},{}", first.url, second.url),
        &[("KEY_CACHE_TTL_MS", "200")],
    )
    .await;
    let http = reqwest::Client::new();
    let p = project.key.project_id;
    let requests = 20;
    let mut first = Some(first);
    for i in 0..requests {
        if i == requests / 2
            && let Some(stopping) = first.take()
        {
            stopping.server.shutdown().await.unwrap();
        }
        let response = http
            .post(format!("{}/v1/ingest", edge.url))
            .header("authorization", project.basic_auth())
            .json(&native_events(&format!("two-etls-{i}"), 50))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let total = requests * 50;
    env.wait_until(
        &format!("SELECT count() FROM observations FINAL WHERE project_id = '{p}'"),
        &total.to_string(),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        env.ch(&format!(
            "SELECT count(), uniqExact(id) FROM observations FINAL WHERE project_id = '{p}'"
        ))
        .await,
        format!("{total}\t{total}")
    );
    drop(edge);
    second.server.shutdown().await.unwrap();
}

/// Sends `requests` native requests of `events` events each for `project`, `in_flight` at a
/// time, each with the client timeout `timeout`; the statuses (`None`: the client gave up).
async fn send_concurrently(
    edge_url: &str,
    auth: String,
    prefix: &str,
    requests: usize,
    events: usize,
    in_flight: usize,
    timeout: Duration,
) -> Vec<Answer> {
    let http = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..requests {
        let request = http
            .post(format!("{edge_url}/v1/ingest"))
            .header("authorization", auth.clone())
            .json(&native_events(&format!("{prefix}-{i}"), events));
        let slots = slots.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            let response = request.send().await.ok()?;
            let status = response.status().as_u16();
            // A refusal's body says which step refused (the key check or the append).
            let body = if status == 200 {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            Some((status, body))
        });
    }
    tasks.join_all().await
}

/// A request's status and, when it was not 200, its body; `None` when the client gave up.
type Answer = Option<(u16, String)>;

/// Panics naming every answer that was not a 200, with its body.
fn assert_all_ok(answers: &[Answer]) {
    let refused: Vec<(usize, &Answer)> = answers
        .iter()
        .enumerate()
        .filter(|(_, answer)| !matches!(answer, Some((200, _))))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} requests not answered 200: {refused:?}",
        refused.len(),
        answers.len()
    );
}

#[tokio::test]
async fn concurrent_requests_sharing_appends_lose_nothing_even_when_clients_give_up() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let projects = [
        env.create_project("shared-appends-a").await,
        env.create_project("shared-appends-b").await,
    ];
    let edge = Edge::start(&etl.url, &[]).await;
    let (requests, events) = (300, 20);

    // Two keys, 48 requests in flight: the isolate gathers each key's concurrent requests
    // into shared appends (edge::coalesce); every request is answered 200.
    let [first, second] = &projects;
    let shared = |project: &agenttrace_tests::etl::TestProject| {
        send_concurrently(
            &edge.url,
            project.basic_auth(),
            "shared",
            requests,
            events,
            24,
            Duration::from_secs(60),
        )
    };
    let (a, b) = tokio::join!(shared(first), shared(second));
    for answers in [a, b] {
        assert_all_ok(&answers);
    }

    // Clients that hang up mid-request (some while their events wait on another request's
    // append, some while sending one) leave nothing stuck: the requests after them are
    // answered well before a lane's wait would run out.
    send_concurrently(
        &edge.url,
        first.basic_auth(),
        "impatient",
        64,
        events,
        64,
        Duration::from_millis(3),
    )
    .await;
    let after = send_concurrently(
        &edge.url,
        first.basic_auth(),
        "after",
        20,
        events,
        4,
        Duration::from_secs(8),
    )
    .await;
    assert_all_ok(&after);

    // A request too large to share an append (40 events with 40 KB of input each) goes as
    // rows of its own, each under Cloudflare's row limit.
    let mut large = native_events("large-0", 40);
    for event in large["events"].as_array_mut().unwrap() {
        event["body"]["input"] = json!("x".repeat(40_000));
    }
    let response = reqwest::Client::new()
        .post(format!("{}/v1/ingest", edge.url))
        .header("authorization", second.basic_auth())
        .json(&large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // A request resumed by another would run in that request's context, and workerd would
    // refuse its I/O or cancel it as hung.
    let log = edge.log();
    for sign in ["Uncaught", "Cannot perform I/O", "hung"] {
        assert!(!log.contains(sign), "the edge logged {sign:?}:\n{log}");
    }

    for (project, expected) in [
        (first, (requests + 20) * events),
        (second, requests * events + 40),
    ] {
        let p = project.key.project_id;
        let expected = expected.to_string();
        env.wait_until(
            &format!(
                "SELECT count() FROM observations FINAL WHERE project_id = '{p}' \
                 AND (startsWith(trace_id, 'shared-') OR startsWith(trace_id, 'after-') \
                      OR startsWith(trace_id, 'large-'))"
            ),
            &expected,
            Duration::from_secs(120),
        )
        .await;
        // Nothing twice, whatever became of the impatient requests' events.
        let (count, unique) = env
            .ch(&format!(
                "SELECT count(), uniqExact(id) FROM observations WHERE project_id = '{p}'"
            ))
            .await
            .split_once('\t')
            .map(|(c, u)| (c.to_owned(), u.to_owned()))
            .unwrap();
        assert_eq!(count, unique);
    }
    drop(edge);
    etl.server.shutdown().await.unwrap();
}
