//! The ETL end to end on real PostgreSQL and ClickHouse 18.16: signed batches in, rows out.

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::api_keys;
use agenttrace_schemas::batch::{BatchResponse, BatchStatus};
use agenttrace_schemas::event::{
    Cost, FileOperation, FileOperationKind, GitLink, Json, Level, Metadata, Observation, ObservationType,
    Score, ScoreSource, ScoreValue, TerminalCommand, Trace, Usage,
};
use agenttrace_schemas::{Event, Payload, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::readback::{body_from_row, json_rows, select_list};
use agenttrace_tests::servers::{ClickHouseServer, PostgresServer};
use serde_json::json;
use uuid::Uuid;

fn now() -> Timestamp {
    Timestamp::now()
}

/// `offset_us` microseconds after a fixed instant an hour ago (fixed for the whole test run).
fn at(offset_us: i64) -> Timestamp {
    static BASE: std::sync::LazyLock<i64> =
        std::sync::LazyLock::new(|| Timestamp::now().as_micros() / 1_000_000 * 1_000_000 - 3_600_000_000);
    Timestamp::from_micros(*BASE + offset_us)
}

fn event<'a>(id: &str, timestamp: Timestamp, payload: Payload<'a>) -> Event<'a> {
    Event {
        id: id.to_owned().into(),
        timestamp,
        payload,
    }
}

/// The rows of `table` as event bodies (JSON text), for [`parsed`] to read.
async fn read_back(env: &TestEnv, table: &str, project: Uuid) -> Vec<String> {
    let sql = format!(
        "SELECT {} FROM {table} FINAL WHERE project_id = '{project}' ORDER BY id",
        select_list(table)
    );
    json_rows(env, &sql)
        .await
        .into_iter()
        .map(|row| body_from_row(table, row).to_string())
        .collect()
}

/// Bodies read back, as the event type they should be.
fn parsed<'a, T: serde::Deserialize<'a>>(bodies: &'a [String]) -> Vec<T> {
    bodies
        .iter()
        .map(|body| serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
        .collect()
}

fn observation(id: &str, kind: ObservationType) -> Observation<'static> {
    Observation {
        id: id.to_owned().into(),
        trace_id: "trace-ü".into(),
        parent_observation_id: None,
        kind,
        name: "step".into(),
        start_time: at(1),
        end_time: None,
        level: Level::Default,
        status_message: None,
        input: None,
        output: None,
        metadata: Metadata::new(),
        model: None,
        model_parameters: None,
        usage: Usage::default(),
        cost: None,
        tool_name: None,
        tool_call_id: None,
        completion_start_time: None,
        prompt_name: None,
        prompt_version: None,
    }
}

#[tokio::test]
async fn a_signed_batch_loads_every_table_and_reads_back_equal() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("roundtrip").await;

    let large = "x".repeat(1024 * 1024 - 2); // a 1 MiB JSON string, at the limit
    let unicode = "naïve café — 日本語 — עברית — 🦀👩‍💻";
    let mut metadata = Metadata::new();
    metadata.insert("team".into(), "plat-ø".into());
    metadata.insert("empty".into(), "".into());
    let trace = Trace {
        id: "trace-ü".into(),
        timestamp: Some(at(123_456)),
        name: Some(unicode.into()),
        user_id: Some("".into()),
        session_id: None,
        release: Some("1.2.3".into()),
        version: Some("v7".into()),
        environment: "staging".into(),
        tags: vec!["a".into(), "".into(), "ç".into()],
        input: Some(Json::from_value(
            &json!({"prompt": unicode, "n": [1, 2.5, null, true]}),
        )),
        output: Some(Json::from_value(&json!(large))),
        metadata: metadata.clone(),
        experiment_id: None,
        dataset_item_id: Some("item-1".into()),
        public: false,
    };
    let mut generation = observation("obs-gen", ObservationType::Generation);
    generation.parent_observation_id = Some("obs-span".into());
    generation.end_time = Some(at(987_654));
    generation.level = Level::Warning;
    generation.status_message = Some("".into());
    generation.input = Some(Json::from_value(&json!([{"role": "user", "content": unicode}])));
    generation.output = Some(Json::from_value(&json!("")));
    generation.metadata = metadata;
    generation.model = Some("claude-sonnet-4-5".into());
    generation.model_parameters = Some(Json::from_value(&json!({"temperature": 0.2})));
    generation.usage = Usage {
        input_tokens: 1 << 40,
        output_tokens: 7,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 3,
    };
    generation.cost = Some(Cost {
        input: Some(0.001),
        output: Some(123.456789012345),
        cache_read: Some(0.0),
        cache_write: Some(0.000000000001),
        total: Some(999_999.5),
    });
    let mut tool = observation("obs-tool", ObservationType::ToolCall);
    tool.tool_name = Some("Bash".into());
    tool.tool_call_id = Some("toolu_01".into());
    let span = observation("obs-span", ObservationType::Span);
    let mut priced = observation("obs-priced", ObservationType::Generation);
    priced.model = Some("gpt-4o-2024-08-06".into());
    priced.usage = Usage {
        input_tokens: 1_000_000,
        output_tokens: 100_000,
        ..Usage::default()
    };
    let scores = [
        ("score-bool", ScoreValue::Boolean(true)),
        ("score-num", ScoreValue::Numeric(-0.125)),
        ("score-cat", ScoreValue::Categorical(unicode.into())),
    ]
    .map(|(id, value)| Score {
        id: id.into(),
        trace_id: "trace-ü".into(),
        observation_id: Some("obs-gen".into()),
        timestamp: Some(at(5)),
        name: "quality".into(),
        value,
        source: ScoreSource::Eval,
        evaluator_id: Some("eval-1".into()),
        comment: None,
        metadata: Metadata::new(),
        data_type: None,
    });
    let file = FileOperation {
        id: "file-1".into(),
        trace_id: "trace-ü".into(),
        observation_id: None,
        timestamp: Some(at(7)),
        operation: FileOperationKind::Rename,
        path: "src/ä.rs".into(),
        new_path: Some("src/b.rs".into()),
        language: None,
        lines_added: u32::MAX,
        lines_removed: 0,
        bytes: Some(u64::MAX),
        diff: Some(large.as_str().into()),
    };
    let command = TerminalCommand {
        id: "cmd-1".into(),
        trace_id: "trace-ü".into(),
        observation_id: Some("obs-tool".into()),
        timestamp: Some(at(8)),
        command: "echo '🦀' && exit -1".into(),
        cwd: None,
        exit_code: Some(-1),
        duration_ms: Some(0),
        stdout: Some("".into()),
        stderr: None,
    };
    let git = GitLink {
        id: "git-1".into(),
        trace_id: "trace-ü".into(),
        observation_id: None,
        timestamp: Some(at(9)),
        repository: "github.com/acme/shop".into(),
        branch: None,
        commit_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        message: Some(format!("fix: {unicode}\n\nbody").into()),
        author: None,
        files_changed: 2,
        insertions: 10,
        deletions: 1,
        pull_request_url: None,
    };
    let mut events = vec![
        event("e-trace", at(10), Payload::Trace(trace.clone())),
        event("e-gen", at(11), Payload::Observation(generation.clone())),
        event("e-tool", at(12), Payload::Observation(tool.clone())),
        event("e-span", at(13), Payload::Observation(span.clone())),
        event("e-priced", at(14), Payload::Observation(priced.clone())),
        event("e-file", at(15), Payload::FileOperation(file.clone())),
        event("e-cmd", at(16), Payload::TerminalCommand(command.clone())),
        event("e-git", at(17), Payload::GitLink(git.clone())),
    ];
    for (i, score) in scores.iter().enumerate() {
        events.push(event(
            &format!("e-score-{i}"),
            at(20),
            Payload::Score(score.clone()),
        ));
    }

    let response = etl.load(&project.key, &events).await;
    assert_eq!(response.status, BatchStatus::Accepted);
    assert_eq!(response.accepted, events.len() as u32);
    assert!(response.rejected.is_empty(), "{:?}", response.rejected);

    let id = project.key.project_id;
    let traces = read_back(&env, "traces", id).await;
    assert_eq!(parsed::<Trace>(&traces), vec![trace]);
    let observation_rows = read_back(&env, "observations", id).await;
    let observations: Vec<Observation> = parsed(&observation_rows);
    let mut priced_back = observations
        .iter()
        .find(|o| o.id == "obs-priced")
        .unwrap()
        .clone();
    priced_back.cost = None;
    assert_eq!(priced_back, priced);
    let expected: Vec<Observation> = vec![generation, span, tool];
    let others: Vec<Observation> = observations
        .into_iter()
        .filter(|o| o.id != "obs-priced")
        .collect();
    assert_eq!(others, expected);
    let score_rows = read_back(&env, "scores", id).await;
    let mut scores_back: Vec<Score> = parsed(&score_rows);
    scores_back.sort_by(|a, b| a.id.cmp(&b.id));
    let mut scores = scores.to_vec();
    scores.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(scores_back, scores);
    assert_eq!(
        parsed::<FileOperation>(&read_back(&env, "file_operations", id).await),
        vec![file]
    );
    assert_eq!(
        parsed::<TerminalCommand>(&read_back(&env, "terminal_commands", id).await),
        vec![command]
    );
    assert_eq!(
        parsed::<GitLink>(&read_back(&env, "git_links", id).await),
        vec![git]
    );

    // The generation without a cost was priced from the table: gpt-4o at $2.50 / $10 per MTok.
    let priced_cost = env
        .ch(&format!(
            "SELECT cost_source, toString(total_cost), toString(input_cost) FROM observations FINAL \
             WHERE project_id = '{id}' AND id = 'obs-priced'"
        ))
        .await;
    assert_eq!(priced_cost, "price_table\t3.500000000000\t2.500000000000");
    // The envelope's id and timestamp are kept as the row's event id and version.
    assert_eq!(
        env.ch(&format!(
            "SELECT event_id, version FROM git_links FINAL WHERE project_id = '{id}'"
        ))
        .await,
        format!("e-git\t{}", at(17).as_micros())
    );
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_stale_and_unknown_key_batches_get_a_clear_401() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("auth").await;
    let events = SessionGenerator::new(1).session(now(), 1);
    let body = etl.client.events_body(&project.key, &events);
    let now_secs = now().as_micros() / 1_000_000;

    let forged = etl
        .client
        .post_body(body.clone(), now_secs, Some(b"not-the-edge-secret"))
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    assert!(
        forged.body.contains("\"error\":\"invalid_signature\""),
        "{}",
        forged.body
    );

    let stale = etl
        .client
        .post_body(body.clone(), now_secs - 301, None)
        .await
        .unwrap();
    assert_eq!(stale.status, 401);
    assert!(
        stale.body.contains("stale_signature") && stale.body.contains("at most 300 s"),
        "{}",
        stale.body
    );

    let other_edge =
        agenttrace_cli::send::BatchClient::new(&etl.url, "rogue:0123456789abcdef0123456789abcdef", "x")
            .unwrap();
    let unknown = other_edge.post_body(body.clone(), now_secs, None).await.unwrap();
    assert_eq!(unknown.status, 401);
    assert!(
        unknown.body.contains("unknown_signing_key") && unknown.body.contains("rogue"),
        "{}",
        unknown.body
    );

    // A body changed after signing no longer matches.
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] = b' ';
    let signature = agenttrace_schemas::signature::sign(TEST_EDGE_SECRET, now_secs, &body);
    let response = raw_post(&etl.url, tampered, &signature, &[]).await;
    assert_eq!(response.0, 401, "{}", response.1);

    // Nothing was loaded.
    assert_eq!(env.ch("SELECT count() FROM observations").await, "0");
    etl.server.shutdown().await.unwrap();
}

/// Posts a body with the test edge's key id and the given signature and extra headers.
async fn raw_post(url: &str, body: Vec<u8>, signature: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/batches"))
        .header("x-agenttrace-key-id", "test-edge")
        .header("x-agenttrace-signature", signature)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

const TEST_EDGE_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn gzip_bodies_load_and_oversized_or_unknown_requests_get_precise_errors() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("gzip").await;
    let events = SessionGenerator::new(9).session(now(), 2);
    let body = etl.client.events_body(&project.key, &events);
    let now_secs = now().as_micros() / 1_000_000;

    // The signature covers the uncompressed body; gzip is only transport.
    let signature = agenttrace_schemas::signature::sign(TEST_EDGE_SECRET, now_secs, &body);
    let (status, answer) = raw_post(&etl.url, gzip(&body), &signature, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(&format!("\"accepted\":{}", events.len())),
        "{answer}"
    );

    // 40 MiB of zeros in ~40 KiB of gzip: refused once the decompressed size passes the limit.
    let bomb = vec![b'0'; 40 * 1024 * 1024];
    let signature = agenttrace_schemas::signature::sign(TEST_EDGE_SECRET, now_secs, &bomb);
    let (status, answer) = raw_post(&etl.url, gzip(&bomb), &signature, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, 413, "{answer}");

    let (status, answer) = raw_post(
        &etl.url,
        b"{not json".to_vec(),
        &agenttrace_schemas::signature::sign(TEST_EDGE_SECRET, now_secs, b"{not json"),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("invalid_batch"), "{answer}");

    let missing_field = br#"{"batch_id":"0192f5a0-0000-7000-8000-000000000000","edge_id":"e","public_key":"pk","created_at":"2026-01-01T00:00:00Z","events":[]}"#;
    let signature = agenttrace_schemas::signature::sign(TEST_EDGE_SECRET, now_secs, missing_field);
    let (status, answer) = raw_post(&etl.url, missing_field.to_vec(), &signature, &[]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("missing field `project_id`"), "{answer}");

    let http = reqwest::Client::new();
    let not_found = http.get(format!("{}/v2/nothing", etl.url)).send().await.unwrap();
    assert_eq!(not_found.status(), 404);
    assert!(not_found.text().await.unwrap().contains("not_found"));
    let wrong_method = http.get(format!("{}/v1/batches", etl.url)).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let ready = http.get(format!("{}/readyz", etl.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = http
        .get(format!("{}/metrics", etl.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("agenttrace_batches_total"), "{metrics}");
    assert!(
        metrics.contains("agenttrace_clickhouse_insert_seconds_bucket"),
        "{metrics}"
    );
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn revoked_keys_archived_and_missing_projects_are_rejected() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("revoked").await;
    let events = SessionGenerator::new(2).session(now(), 1);
    assert_eq!(etl.client.send(&project.key, &events).await.unwrap().status, 200);

    let pg = env.postgres().await;
    api_keys::revoke_key(&pg, &project.key.public_key).await.unwrap();
    let revoked = etl.client.send(&project.key, &events).await.unwrap();
    assert_eq!(revoked.status, 401);
    assert!(revoked.body.contains("revoked_key"), "{}", revoked.body);

    // A key of a real project, claimed for another (missing) project.
    let other = env.create_project("other").await;
    let mut wrong = other.key.clone();
    wrong.project_id = Uuid::new_v4();
    let missing = etl.client.send(&wrong, &events).await.unwrap();
    assert_eq!(missing.status, 401);
    assert!(missing.body.contains("wrong_project"), "{}", missing.body);

    pg.execute(
        "UPDATE projects SET archived_at = now() WHERE id = $1",
        &[&other.key.project_id],
    )
    .await
    .unwrap();
    let archived = etl.client.send(&other.key, &events).await.unwrap();
    assert_eq!(archived.status, 401);
    assert!(archived.body.contains("project_archived"), "{}", archived.body);
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_events_are_dead_lettered_and_the_rest_still_load() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("partial").await;
    let good = SessionGenerator::new(3).session(now(), 2);
    let mut raw: Vec<Box<serde_json::value::RawValue>> = good
        .iter()
        .map(|e| serde_json::value::to_raw_value(e).unwrap())
        .collect();
    let bad = [
        r#"{"id":"bad-1","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"o","trace_id":"t","type":"span","name":"x","start_time":"2026-01-01T00:00:00Z","usage":{"input_tokens":"many"}}}"#,
        r#"{"id":"bad-2","type":"spaceship","timestamp":"2026-01-01T00:00:00Z","body":{}}"#,
        r#"{"id":"bad-3","type":"score","timestamp":"2099-01-01T00:00:00Z","body":{"id":"s","trace_id":"t","name":"q","value":1}}"#,
        r#"[1, 2, 3]"#,
    ];
    for text in bad {
        raw.insert(
            1,
            serde_json::value::RawValue::from_string(text.to_owned()).unwrap(),
        );
    }
    let body = etl.client.batch_body(&project.key, Uuid::now_v7(), raw);
    let result = etl
        .client
        .post_body(body, now().as_micros() / 1_000_000, None)
        .await
        .unwrap();
    let response: BatchResponse = result.response().unwrap();
    assert_eq!(response.accepted as usize, good.len());
    let reasons: Vec<(u32, String)> = response
        .rejected
        .iter()
        .map(|r| (r.index, format!("{}: {}", r.field, r.message)))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|(_, r)| r.starts_with("body.usage.input_tokens: invalid type")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(_, r)| r.starts_with("type: unknown variant `spaceship`")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(_, r)| r.starts_with("timestamp: 2099-01-01T00:00:00.000000Z is in the future"))
    );

    let id = project.key.project_id;
    let loaded: usize = env
        .ch(&format!(
            "SELECT (SELECT count() FROM observations FINAL WHERE project_id = '{id}') + \
                    (SELECT count() FROM traces FINAL WHERE project_id = '{id}') + \
                    (SELECT count() FROM scores FINAL WHERE project_id = '{id}') + \
                    (SELECT count() FROM file_operations FINAL WHERE project_id = '{id}') + \
                    (SELECT count() FROM terminal_commands FINAL WHERE project_id = '{id}') + \
                    (SELECT count() FROM git_links FINAL WHERE project_id = '{id}')"
        ))
        .await
        .parse()
        .unwrap();
    assert_eq!(loaded, good.len());
    let dead = env
        .ch(&format!(
            "SELECT event_index, ifNull(event_id, '-'), ifNull(event_type, '-'), reason, raw FROM dead_letters FINAL \
             WHERE project_id = '{id}' ORDER BY event_index"
        ))
        .await;
    let rows: Vec<&str> = dead.lines().collect();
    assert_eq!(rows.len(), 4, "{dead}");
    assert!(
        rows[0].starts_with("1\t-\t-\tinvalid type: map, expected a JSON object")
            || rows[0].starts_with("1\t-\t-\t"),
        "{dead}"
    );
    assert!(
        dead.contains("bad-2\tspaceship\ttype: unknown variant `spaceship`"),
        "{dead}"
    );
    // The raw text is kept exactly (TabSeparated escapes nothing in these payloads).
    assert!(dead.contains(bad[0]), "{dead}");
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_same_batch_sent_twice_is_counted_once() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("replay").await;
    let events = SessionGenerator::new(4).session(now(), 3);
    let body = etl.client.events_body(&project.key, &events);
    let now_secs = now().as_micros() / 1_000_000;
    let first: BatchResponse = etl
        .client
        .post_body(body.clone(), now_secs, None)
        .await
        .unwrap()
        .response()
        .unwrap();
    let second: BatchResponse = etl
        .client
        .post_body(body, now_secs, None)
        .await
        .unwrap()
        .response()
        .unwrap();
    assert_eq!(first.status, BatchStatus::Accepted);
    assert_eq!(second.status, BatchStatus::AlreadyAccepted);
    assert_eq!(second.accepted, 0);
    let id = project.key.project_id;
    let observations = events
        .iter()
        .filter(|e| matches!(e.payload, Payload::Observation(_)))
        .count();
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM observations WHERE project_id = '{id}'"
        ))
        .await,
        observations.to_string()
    );

    // The same events in a new batch (an agent retrying) load again but show once with FINAL.
    etl.load(&project.key, &events).await;
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM observations FINAL WHERE project_id = '{id}'"
        ))
        .await,
        observations.to_string()
    );
    etl.server.shutdown().await.unwrap();
}

/// Sends a batch while a database is down (503 naming it), then, after `restore`, the same
/// batch again (accepted) and once more (already accepted): its rows land exactly once.
async fn outage_then_exactly_once(
    env: &TestEnv,
    seed: u64,
    database: &str,
    stop: impl FnOnce(),
    restore: impl FnOnce(),
) {
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project(&format!("outage-{seed}")).await;
    let events = SessionGenerator::new(seed).session(now(), 2);
    let body = etl.client.events_body(&project.key, &events);

    stop();
    let now_secs = now().as_micros() / 1_000_000;
    let during = etl.client.post_body(body.clone(), now_secs, None).await.unwrap();
    assert_eq!(during.status, 503, "{}", during.body);
    assert!(during.body.contains(database), "{}", during.body);

    restore();
    let send = || async {
        etl.client
            .post_body(body.clone(), now_secs, None)
            .await
            .unwrap()
            .response()
            .unwrap()
    };
    assert_eq!(send().await.status, BatchStatus::Accepted);
    assert_eq!(send().await.status, BatchStatus::AlreadyAccepted);
    let observations = events
        .iter()
        .filter(|e| matches!(e.payload, Payload::Observation(_)))
        .count();
    let id = project.key.project_id;
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM observations WHERE project_id = '{id}'"
        ))
        .await,
        observations.to_string()
    );
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_clickhouse_down_batches_get_503_and_load_exactly_once_after_restart() {
    let clickhouse = std::cell::RefCell::new(ClickHouseServer::start());
    let shared_pg = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = clickhouse.borrow().url();
    let env = TestEnv::migrated_on(&shared_pg, &url).await;
    outage_then_exactly_once(
        &env,
        5,
        "ClickHouse",
        || clickhouse.borrow_mut().stop(),
        || clickhouse.borrow_mut().resume(),
    )
    .await;
}

#[tokio::test]
async fn with_postgres_down_batches_get_503_and_load_exactly_once_after_restart() {
    let postgres = PostgresServer::start();
    let clickhouse_url = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let env = TestEnv::migrated_on(&postgres.url("postgres"), &clickhouse_url).await;
    outage_then_exactly_once(&env, 6, "PostgreSQL", || postgres.stop(), || postgres.resume()).await;
}
