//! Deletion as a verifiable job: a user's thousands of traces deleted from every ClickHouse table
//! and what PostgreSQL keeps of them, then looked for through every table, the read API and an
//! export; replays refused by the tombstones; Langfuse's SDK deletes; a deletion that outlives a
//! ClickHouse kill.

use std::time::Duration;

use agenttrace_cli::send::ProjectKey;
use agenttrace_etl::clickhouse::quote;
use agenttrace_etl::control::deletions::{self, DeletionTarget};
use agenttrace_etl::control::projects;
use agenttrace_schemas::batch::BatchResponse;
use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use agenttrace_tests::etl::{Etl, TestProject};
use agenttrace_tests::servers::ClickHouseServer;
use serde_json::value::to_raw_value;
use serde_json::{Value, json};

/// A project with a key that may ingest, read, export and manage.
async fn project(env: &TestEnv, name: &str) -> TestProject {
    env.create_project_in(
        "deletion-org",
        name,
        &[
            Scope::Ingest,
            Scope::Read,
            Scope::Export,
            Scope::Manage,
            Scope::Admin,
        ],
    )
    .await
}

/// A trace of `user` with a generation, a score and a terminal command.
fn trace_events(trace: &str, user: &str, session: &str, at: Timestamp) -> Vec<Value> {
    vec![
        json!({"id": format!("e-{trace}"), "type": "trace", "timestamp": at,
               "body": {"id": trace, "user_id": user, "session_id": session, "name": "turn",
                        "input": format!("the prompt of {trace}")}}),
        json!({"id": format!("e-{trace}-g"), "type": "observation", "timestamp": at,
               "body": {"id": format!("{trace}-g"), "trace_id": trace, "type": "generation", "name": "llm",
                        "start_time": at, "model": "gpt-4o",
                        "usage": {"input_tokens": 1000, "output_tokens": 200}, "cost": {"total": 0.01}}}),
        json!({"id": format!("e-{trace}-s"), "type": "score", "timestamp": at,
               "body": {"id": format!("{trace}-s"), "trace_id": trace, "name": "helpful", "value": 1}}),
        json!({"id": format!("e-{trace}-c"), "type": "terminal_command", "timestamp": at,
               "body": {"id": format!("{trace}-c"), "trace_id": trace, "command": "cargo test"}}),
    ]
}

async fn send(etl: &Etl, key: &ProjectKey, events: &[Value]) -> BatchResponse {
    let raw = events.iter().map(|e| to_raw_value(e).unwrap()).collect();
    let body = etl.client.batch_body(key, uuid::Uuid::now_v7(), raw);
    etl.client
        .post_body(body, Timestamp::now().as_micros() / 1_000_000, None)
        .await
        .unwrap()
        .response()
        .unwrap()
}

/// Polls the deletion until it succeeds; its last state.
async fn finished(etl: &Etl, project: &TestProject, id: &str, within: Duration) -> Value {
    finished_as(etl, project.key.project_id, &project.basic_auth(), id, within).await
}

/// [`finished`], asked with `auth` (an archived project's own keys no longer work).
async fn finished_as(etl: &Etl, project: uuid::Uuid, auth: &str, id: &str, within: Duration) -> Value {
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let job: Value = http
            .get(format!("{}/v1/projects/{project}/deletions/{id}", etl.url))
            .header("authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "succeeded" {
            return job;
        }
        assert!(started.elapsed() < within, "the deletion did not finish: {job:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Rows of `project` in every table that hold `needle` (in an id, or a dead letter's text).
async fn rows_naming(env: &TestEnv, project: &TestProject, needle: &str) -> Vec<(String, u64)> {
    let p = quote(&project.key.project_id.to_string());
    let n = quote(needle);
    let mut found = Vec::new();
    for (table, column) in [
        ("traces", "id"),
        ("traces_by_time", "id"),
        ("traces_by_ingest", "id"),
        ("session_traces", "trace_id"),
        ("observations", "trace_id"),
        ("observations_by_time", "trace_id"),
        ("observations_by_ingest", "trace_id"),
        ("scores", "trace_id"),
        ("scores_by_time", "trace_id"),
        ("file_operations", "trace_id"),
        ("terminal_commands", "trace_id"),
        ("git_links", "trace_id"),
        ("dead_letters", "raw"),
    ] {
        let count: u64 = env
            .ch(&format!(
                "SELECT count() FROM {table} WHERE project_id = {p} AND position({column}, {n}) > 0"
            ))
            .await
            .trim()
            .parse()
            .unwrap();
        if count > 0 {
            found.push((table.to_owned(), count));
        }
    }
    found
}

#[tokio::test]
async fn a_user_with_thousands_of_traces_is_deleted_from_every_table_and_stays_deleted() {
    const TRACES: usize = 2000;
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "users").await;
    let other = project_in_other(&env).await;
    let p = project.key.project_id;
    let at = Timestamp::now();

    // The user to forget: 2000 traces over 20 sessions; another user's 50 stay.
    let mut first_batch = Vec::new();
    let mut doomed = Vec::new();
    for i in 0..TRACES {
        doomed.extend(trace_events(
            &format!("del-u-{i:05}"),
            "ann@example.com",
            &format!("s-{}", i % 20),
            at,
        ));
        if doomed.len() >= 800 {
            let batch = std::mem::take(&mut doomed);
            let answer = send(&etl, &project.key, &batch).await;
            assert_eq!(answer.accepted as usize, batch.len(), "{answer:?}");
            if first_batch.is_empty() {
                first_batch = batch;
            }
        }
    }
    let mut kept = Vec::new();
    for i in 0..50 {
        kept.extend(trace_events(
            &format!("keep-v-{i:05}"),
            "bob@example.com",
            "s-bob",
            at,
        ));
    }
    // A dead letter of the doomed user's (an observation with no start time), and one of Bob's.
    let invalid = |trace: &str| {
        json!({"id": format!("bad-{trace}"), "type": "observation", "timestamp": at,
               "body": {"id": format!("bad-{trace}"), "trace_id": trace, "type": "span"}})
    };
    kept.push(invalid("keep-v-00000"));
    let answer = send(&etl, &project.key, &kept).await;
    assert_eq!(answer.rejected.len(), 1, "{answer:?}");
    let answer = send(&etl, &project.key, &[invalid("del-u-00001")]).await;
    assert_eq!(answer.rejected.len(), 1);
    // The same trace ids in another project: never touched.
    send(
        &etl,
        &other.key,
        &trace_events("del-u-00000", "ann@example.com", "s-0", at),
    )
    .await;

    // What PostgreSQL keeps about traces: comments, a queue item, a share link, a run item, a
    // dataset item made from one (kept: the deletion does not ask for it).
    let pg = env.postgres().await;
    for trace in ["del-u-00000", "keep-v-00000"] {
        pg.execute(
            "INSERT INTO comments (project_id, object_type, object_id, content) VALUES ($1, 'TRACE', $2, 'look')",
            &[&p, &trace],
        )
        .await
        .unwrap();
        pg.execute(
            "INSERT INTO trace_shares (project_id, trace_id, public) VALUES ($1, $2, true)",
            &[&p, &trace],
        )
        .await
        .unwrap();
    }
    pg.execute(
        "INSERT INTO comments (project_id, object_type, object_id, content) VALUES ($1, 'OBSERVATION', 'del-u-00002-g', 'this call')",
        &[&p],
    )
    .await
    .unwrap();
    let queue: uuid::Uuid = pg
        .query_one(
            "INSERT INTO annotation_queues (project_id, name) VALUES ($1, 'review') RETURNING id",
            &[&p],
        )
        .await
        .unwrap()
        .get(0);
    pg.execute(
        "INSERT INTO annotation_queue_items (queue_id, project_id, object_id, object_type, trace_id)
         VALUES ($1, $2, 'del-u-00003', 'TRACE', 'del-u-00003'), ($1, $2, 'keep-v-00003', 'TRACE', 'keep-v-00003')",
        &[&queue, &p],
    )
    .await
    .unwrap();
    let dataset: uuid::Uuid = pg
        .query_one(
            "INSERT INTO datasets (project_id, name) VALUES ($1, 'golden') RETURNING id",
            &[&p],
        )
        .await
        .unwrap()
        .get(0);
    let item: String = pg
        .query_one(
            "INSERT INTO dataset_items (id, dataset_id, input, source_trace_id) VALUES ('item-1', $1, '\"x\"', 'del-u-00004') RETURNING id",
            &[&dataset],
        )
        .await
        .unwrap()
        .get(0);
    let experiment: uuid::Uuid = pg
        .query_one(
            "INSERT INTO experiments (project_id, dataset_id, name) VALUES ($1, $2, 'run') RETURNING id",
            &[&p, &dataset],
        )
        .await
        .unwrap()
        .get(0);
    pg.execute(
        "INSERT INTO experiment_items (experiment_id, dataset_item_id, trace_id) VALUES ($1, $2, 'del-u-00004')",
        &[&experiment, &item],
    )
    .await
    .unwrap();

    // Everything of ann@example.com, through the API.
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{}/v1/projects/{p}/deletions", etl.url))
        .header("authorization", project.basic_auth())
        .json(&json!({"userId": "ann@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let job: Value = answer.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    // The same request again while it runs: the same job.
    let again: Value = http
        .post(format!("{}/v1/projects/{p}/deletions", etl.url))
        .header("authorization", project.basic_auth())
        .json(&json!({"userId": "ann@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if again["status"] != "succeeded" {
        assert_eq!(again["id"], id.as_str());
    }
    let job = finished(&etl, &project, &id, Duration::from_secs(300)).await;
    let counts = &job["counts"];
    println!(
        "deleted {} rows of {TRACES} traces: started {}, finished {}",
        counts
            .as_object()
            .unwrap()
            .iter()
            .filter(|(t, _)| !t.contains('.'))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum::<u64>(),
        job["startedAt"],
        job["finishedAt"]
    );
    assert_eq!(counts["traces.found"], TRACES, "{job:#}");
    assert_eq!(counts["traces"], TRACES, "{job:#}");
    assert_eq!(counts["observations"], TRACES, "{job:#}");
    assert_eq!(counts["scores"], TRACES, "{job:#}");
    assert_eq!(counts["terminal_commands"], TRACES, "{job:#}");
    assert_eq!(counts["traces_by_time"], TRACES, "{job:#}");
    assert_eq!(counts["session_traces"], TRACES, "{job:#}");
    assert_eq!(counts["dead_letters"], 1, "{job:#}");
    let subtracted: u64 = counts
        .as_object()
        .unwrap()
        .iter()
        .filter(|(table, _)| table.starts_with("daily_costs.generations."))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(subtracted, TRACES as u64, "{job:#}");
    for table in [
        "comments",
        "trace_shares",
        "annotation_queue_items",
        "experiment_items",
    ] {
        assert!(
            counts[format!("postgres.{table}")].as_u64().unwrap() >= 1,
            "{table}: {job:#}"
        );
    }
    assert_eq!(counts["postgres.comments"], 2, "{job:#}");
    assert!(
        job["remaining"].as_object().unwrap().values().all(|n| n == 0),
        "{job:#}"
    );
    assert_eq!(job["requestedBy"], format!("key:{}", project.key.public_key));
    // The record keeps what was deleted without the user's id.
    assert_eq!(
        job["targetIds"],
        json!([agenttrace_etl::control::deletions::fingerprint("ann@example.com")])
    );
    assert!(!job.to_string().contains("ann@example.com"), "{job}");

    // A fresh read of every table finds none of them; Bob's are all there.
    assert_eq!(rows_naming(&env, &project, "del-u-").await, vec![]);
    assert_eq!(
        rows_naming(&env, &project, "keep-v-").await,
        [
            ("traces", 50),
            ("traces_by_time", 50),
            ("traces_by_ingest", 50),
            ("session_traces", 50),
            ("observations", 50),
            ("observations_by_time", 50),
            ("observations_by_ingest", 50),
            ("scores", 50),
            ("scores_by_time", 50),
            ("terminal_commands", 50),
            ("dead_letters", 1),
        ]
        .map(|(t, n)| (t.to_owned(), n))
        .to_vec()
    );
    assert_eq!(
        rows_naming(&env, &other, "del-u-").await.len(),
        10,
        "another project's rows stay"
    );
    // The cost sums lost exactly the deleted generations.
    let generations = env
        .ch(&format!(
            "SELECT sum(generations) FROM daily_costs WHERE project_id = {}",
            quote(&p.to_string())
        ))
        .await;
    assert_eq!(generations.trim(), "50");
    let check = env.cli(&["jobs", "run", "daily_costs"]).await.unwrap();
    assert!(check.contains("groups match"), "{check}");
    let pg_left: i64 = pg
        .query_one(
            "SELECT (SELECT count(*) FROM comments WHERE project_id = $1)
                  + (SELECT count(*) FROM trace_shares WHERE project_id = $1)
                  + (SELECT count(*) FROM annotation_queue_items WHERE project_id = $1)
                  + (SELECT count(*) FROM experiment_items)",
            &[&p],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pg_left, 3, "Bob's comment, share link and queue item");
    let items: i64 = pg
        .query_one("SELECT count(*) FROM dataset_items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(items, 1, "dataset items stay unless asked for");

    // The read API and an export know nothing of them.
    let get = |path: String| {
        let (http, auth) = (http.clone(), project.basic_auth());
        async move { http.get(path).header("authorization", auth).send().await.unwrap() }
    };
    for (user, expected) in [("ann%40example.com", 0), ("bob%40example.com", 50)] {
        let answer = get(format!("{}/v1/traces?user_id={user}&limit=1000", etl.url)).await;
        assert_eq!(answer.status(), 200);
        let traces: Value = answer.json().await.unwrap();
        assert_eq!(traces["data"].as_array().unwrap().len(), expected, "{user}");
    }
    assert_eq!(
        get(format!("{}/v1/traces/del-u-00007", etl.url)).await.status(),
        404
    );
    for path in [
        "/v1/observations?trace_id=del-u-00007",
        "/v1/scores?trace_id=del-u-00007",
        "/v1/observations?limit=1000",
        "/api/public/v2/observations?traceId=del-u-00007",
        "/api/public/v3/scores?traceId=del-u-00007",
    ] {
        let answer = get(format!("{}{path}", etl.url)).await;
        assert_eq!(answer.status(), 200, "{path}");
        let text = answer.text().await.unwrap();
        assert!(!text.contains("del-u-"), "{path}: {text}");
    }
    let session = get(format!("{}/v1/sessions/s-7", etl.url))
        .await
        .text()
        .await
        .unwrap();
    assert!(!session.contains("del-u-"), "{session}");
    for table in [
        "traces",
        "observations",
        "scores",
        "terminal_commands",
        "dead_letters",
    ] {
        let export = get(format!("{}/v1/export/{table}?format=arrow", etl.url)).await;
        assert_eq!(export.status(), 200, "{table}");
        let bytes = export.bytes().await.unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"del-u-"), "{table} export");
        assert!(
            bytes.windows(7).any(|w| w == b"keep-v-"),
            "{table} export has Bob's"
        );
    }

    // The agent sends its first batch again: refused, nothing comes back.
    let answer = send(&etl, &project.key, &first_batch).await;
    assert_eq!(answer.deleted as usize, first_batch.len(), "{answer:?}");
    assert_eq!(answer.accepted, 0);
    // A new trace of the same user is a new trace: stored.
    let answer = send(
        &etl,
        &project.key,
        &trace_events("del-u-new", "ann@example.com", "s-0", Timestamp::now()),
    )
    .await;
    assert_eq!(answer.accepted, 4, "{answer:?}");
    assert_eq!(
        rows_naming(&env, &project, "del-u-0").await,
        vec![],
        "the replayed traces stay deleted"
    );
}

async fn project_in_other(env: &TestEnv) -> TestProject {
    project(env, "bystander").await
}

#[tokio::test]
async fn langfuse_sdk_deletes_and_the_edge_resending_the_batch_brings_nothing_back() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "langfuse").await;
    let edge = Edge::start(&etl.url, &[("KEY_CACHE_TTL_MS", "0")]).await;
    let at = Timestamp::now().to_string();
    let ingestion = |trace: &str| {
        json!({"id": format!("ev-{trace}"), "type": "trace-create", "timestamp": at,
               "body": {"id": trace, "name": "chat", "input": format!("secret plans of {trace}")}})
    };
    let batch = json!({"batch": [ingestion("lf-1"), ingestion("lf-2"), ingestion("lf-3"), ingestion("lf-keep"),
        {"id": "ev-gen", "type": "generation-create", "timestamp": at,
         "body": {"id": "lf-1-g", "traceId": "lf-1", "name": "llm", "startTime": at, "model": "gpt-4o"}}]});
    let http = reqwest::Client::new();
    let post = || {
        http.post(format!("{}/api/public/ingestion", edge.url))
            .header("authorization", project.basic_auth())
            .json(&batch)
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 207);
    let p = quote(&project.key.project_id.to_string());
    env.wait_until(
        &format!("SELECT count() FROM traces WHERE project_id = {p}"),
        "4",
        Duration::from_secs(30),
    )
    .await;

    let said = agenttrace_tests::python_script(
        "langfuse_trace_delete.py",
        &[
            &etl.url,
            &project.key.public_key,
            &project.secret_key,
            "lf-1",
            "lf-2,lf-3",
        ],
    )
    .await;
    assert_eq!(said["one"], "Trace deleted successfully", "{said}");
    assert_eq!(said["many"], "Traces deleted successfully", "{said}");
    assert_eq!(said["empty"], "400", "{said}");
    for id in [
        said["one_id"].as_str().unwrap(),
        said["many_id"].as_str().unwrap(),
    ] {
        finished(&etl, &project, id, Duration::from_secs(60)).await;
    }
    // The audit log has both, by the key, with the SDK's user agent the edge passed on; and the
    // client's address as Cloudflare names it.
    let cleanup = http
        .delete(format!("{}/api/public/traces", edge.url))
        .header("authorization", project.basic_auth())
        .header("cf-connecting-ip", "203.0.113.7")
        .json(&json!({"traceIds": ["lf-never-sent"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleanup.status(), 200);
    let pg = env.postgres().await;
    let audited = pg
        .query(
            "SELECT actor, coalesce(user_agent, ''), coalesce(forwarded_for, '') FROM audit_events
             WHERE project_id = $1 AND action LIKE 'DELETE /api/public/traces%' ORDER BY id",
            &[&project.key.project_id],
        )
        .await
        .unwrap();
    assert_eq!(audited.len(), 3, "{audited:?}");
    for (n, row) in audited.iter().enumerate() {
        assert_eq!(row.get::<_, String>(0), format!("key:{}", project.key.public_key));
        // The SDK's two (the third request, reqwest's, names no agent).
        assert!(
            n == 2 || !row.get::<_, String>(1).is_empty(),
            "the SDK's user agent"
        );
    }
    assert_eq!(audited[2].get::<_, String>(2), "203.0.113.7");
    assert_eq!(
        env.ch(&format!(
            "SELECT id FROM traces WHERE project_id = {p} ORDER BY id"
        ))
        .await
        .trim(),
        "lf-keep"
    );

    // The agent retries its whole request: the edge accepts it, the ETL refuses the deleted
    // traces' events when the edge's buffer reaches it.
    assert_eq!(post().await.unwrap().status(), 207);
    env.wait_until(
        &format!("SELECT count() FROM traces WHERE project_id = {p} AND id = 'lf-keep'"),
        "2",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM observations WHERE project_id = {p}"
        ))
        .await
        .trim(),
        "0"
    );
    assert_eq!(
        env.ch(&format!(
            "SELECT DISTINCT id FROM traces WHERE project_id = {p} ORDER BY id"
        ))
        .await
        .trim(),
        "lf-keep"
    );
}

#[tokio::test]
async fn a_deletion_interrupted_by_a_clickhouse_kill_finishes_after_the_restart() {
    let mut clickhouse = tokio::task::spawn_blocking(ClickHouseServer::start)
        .await
        .unwrap();
    let _ = &mut clickhouse;
    let env = TestEnv::migrated_on(&agenttrace_tests::database_url(), &clickhouse.url()).await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "outage").await;
    let at = Timestamp::now();
    let mut events = Vec::new();
    for i in 0..300 {
        events.extend(trace_events(&format!("gone-{i:04}"), "carol", "s-c", at));
    }
    for chunk in events.chunks(600) {
        send(&etl, &project.key, chunk).await;
    }
    let http = reqwest::Client::new();
    let job: Value = http
        .post(format!(
            "{}/v1/projects/{}/deletions",
            etl.url, project.key.project_id
        ))
        .header("authorization", project.basic_auth())
        .json(&json!({"sessionId": "s-c"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    // Killed while the job runs (it has started: a step or more recorded, or still claiming).
    let pg = env.postgres().await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let steps: i32 = pg
            .query_one(
                "SELECT cardinality(steps_done) FROM deletion_jobs WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        if steps >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let clickhouse = tokio::task::spawn_blocking(move || {
        clickhouse.stop();
        clickhouse
    })
    .await
    .unwrap();
    // The job notices, says why, and waits to try again.
    let started = std::time::Instant::now();
    let error = loop {
        let row = pg
            .query_one(
                "SELECT status, error FROM deletion_jobs WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap();
        let (status, error): (String, Option<String>) = (row.get(0), row.get(1));
        if let Some(error) = error {
            assert_eq!(status, "running");
            break error;
        }
        assert_ne!(
            status, "succeeded",
            "finished before the kill; the test needs a slower job"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no failed attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(error.contains("ClickHouse"), "{error}");
    let clickhouse = tokio::task::spawn_blocking(move || {
        let mut clickhouse = clickhouse;
        clickhouse.resume();
        clickhouse
    })
    .await
    .unwrap();
    let job = finished(&etl, &project, &id, Duration::from_secs(180)).await;
    assert!(job["attempts"].as_i64().unwrap() >= 2, "{job:#}");
    assert_eq!(job["counts"]["traces.found"], 300, "{job:#}");
    assert_eq!(rows_naming(&env, &project, "gone-").await, vec![]);
    drop(clickhouse);
}

#[tokio::test]
async fn an_archived_projects_events_are_deleted_whole_and_a_live_one_is_refused() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "closing").await;
    let bystander = project_in_other(&env).await;
    let at = Timestamp::now();
    let mut events = Vec::new();
    for i in 0..20 {
        events.extend(trace_events(&format!("closing-{i}"), "dana", "s-d", at));
    }
    events.push(json!({"id": "bad", "type": "observation", "timestamp": at,
                       "body": {"id": "bad", "trace_id": "closing-0", "type": "span"}}));
    send(&etl, &project.key, &events).await;
    send(
        &etl,
        &bystander.key,
        &trace_events("closing-0", "dana", "s-d", at),
    )
    .await;
    let http = reqwest::Client::new();
    let live = http
        .post(format!(
            "{}/v1/projects/{}/deletions",
            etl.url, project.key.project_id
        ))
        .header("authorization", project.basic_auth())
        .json(&json!({"project": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 400);
    assert!(live.text().await.unwrap().contains("archive the project first"));

    // Archived, the project's keys stop working: its organization's key asks.
    let pg = env.postgres().await;
    projects::archive_project(&pg, project.key.project_id)
        .await
        .unwrap();
    let organization = projects::organization_of(&pg, project.key.project_id)
        .await
        .unwrap();
    let organization_key =
        agenttrace_etl::control::identity::create_organization_key(&pg, organization, None)
            .await
            .unwrap();
    let auth = format!(
        "Bearer {}:{}",
        organization_key.public_key, organization_key.secret_key
    );
    let answer = http
        .post(format!(
            "{}/v1/projects/{}/deletions",
            etl.url, project.key.project_id
        ))
        .header("authorization", &auth)
        .json(&json!({"project": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let job: Value = answer.json().await.unwrap();
    let job = finished_as(
        &etl,
        project.key.project_id,
        &auth,
        job["id"].as_str().unwrap(),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(job["requestedBy"], format!("organization-key:{organization}"));
    assert_eq!(job["counts"]["traces"], 20, "{job:#}");
    assert_eq!(job["counts"]["dead_letters"], 1, "{job:#}");
    assert!(job["counts"]["daily_costs"].as_u64().unwrap() >= 1, "{job:#}");
    let p = quote(&project.key.project_id.to_string());
    for table in [
        "traces",
        "observations",
        "scores",
        "terminal_commands",
        "dead_letters",
        "daily_costs",
        "session_traces",
    ] {
        assert_eq!(
            env.ch(&format!("SELECT count() FROM {table} WHERE project_id = {p}"))
                .await
                .trim(),
            "0",
            "{table}"
        );
    }
    assert_eq!(
        rows_naming(&env, &bystander, "closing-0").await.len(),
        10,
        "another project's rows stay"
    );
}

#[tokio::test]
async fn one_projects_many_deletions_do_not_hold_anothers_back() {
    // No ETL here: the jobs are claimed by hand, as a runner claims them.
    let env = TestEnv::migrated().await;
    let busy = project(&env, "busy").await.key.project_id;
    let other = project(&env, "other").await.key.project_id;
    let pg = env.postgres().await;
    let mut busy_jobs = Vec::new();
    for i in 0..3 {
        let target = DeletionTarget::Traces(vec![format!("t-{i}")]);
        busy_jobs.push(
            deletions::create(&pg, busy, &target, false, "test")
                .await
                .unwrap()
                .id,
        );
    }
    let theirs = deletions::create(
        &pg,
        other,
        &DeletionTarget::Traces(vec!["t".into()]),
        false,
        "test",
    )
    .await
    .unwrap()
    .id;
    let lease = Duration::from_secs(60);
    let first = deletions::claim(&pg, lease).await.unwrap().unwrap();
    assert_eq!(
        first.id, busy_jobs[0],
        "the oldest job of a project that never had one"
    );
    let second = deletions::claim(&pg, lease).await.unwrap().unwrap();
    assert_eq!(
        second.id, theirs,
        "the other project before the busy one's second job"
    );
    let third = deletions::claim(&pg, lease).await.unwrap().unwrap();
    assert_eq!(third.id, busy_jobs[1]);
    // A held job is not taken twice.
    let fourth = deletions::claim(&pg, lease).await.unwrap().unwrap();
    assert_eq!(fourth.id, busy_jobs[2]);
    assert!(deletions::claim(&pg, lease).await.unwrap().is_none());
}

#[tokio::test]
async fn a_deletion_failing_attempt_after_attempt_stops_as_failed_and_can_be_asked_again() {
    let mut clickhouse = tokio::task::spawn_blocking(ClickHouseServer::start)
        .await
        .unwrap();
    let env = TestEnv::migrated_on(&agenttrace_tests::database_url(), &clickhouse.url()).await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "doomed").await;
    clickhouse = tokio::task::spawn_blocking(move || {
        clickhouse.stop();
        clickhouse
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let ask = || {
        http.post(format!(
            "{}/v1/projects/{}/deletions",
            etl.url, project.key.project_id
        ))
        .header("authorization", project.basic_auth())
        .json(&json!({"userId": "erin"}))
        .send()
    };
    let first: Value = ask().await.unwrap().json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    // Its last attempt: ClickHouse is still down.
    let pg = env.postgres().await;
    pg.execute(
        "UPDATE deletion_jobs SET attempts = $2 - 1, next_attempt_at = now() WHERE id = $1::text::uuid",
        &[&id, &agenttrace_etl::control::deletions::MAX_ATTEMPTS],
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let job = loop {
        let job: Value = http
            .get(format!(
                "{}/v1/projects/{}/deletions/{id}",
                etl.url, project.key.project_id
            ))
            .header("authorization", project.basic_auth())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "failed" {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(job["error"].as_str().unwrap().contains("ClickHouse"), "{job:#}");
    assert!(job["finishedAt"].is_string(), "{job:#}");
    // Asked again, it is a new job.
    let again: Value = ask().await.unwrap().json().await.unwrap();
    assert_ne!(again["id"], id.as_str());
    assert_eq!(again["status"], "pending");
    drop(clickhouse);
}

#[tokio::test]
async fn the_cli_deletes_and_waits_lists_deletions_and_reads_the_audit_log() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "by-hand").await;
    let at = Timestamp::now();
    let mut events = trace_events("cli-gone", "frank", "s-f", at);
    events.extend(trace_events("cli-kept", "frank", "s-f", at));
    send(&etl, &project.key, &events).await;
    let p = project.key.project_id.to_string();

    let said = env
        .cli(&[
            "delete",
            "--project",
            &p,
            "--trace",
            "cli-gone",
            "--wait",
            "--json",
        ])
        .await
        .unwrap();
    let job: Value = serde_json::from_str(said.trim()).unwrap();
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["counts"]["traces"], 1, "{job:#}");
    assert_eq!(job["requestedBy"], "cli");
    assert_eq!(
        env.ch(&format!("SELECT id FROM traces WHERE project_id = {}", quote(&p)))
            .await
            .trim(),
        "cli-kept"
    );
    let listed: Value = serde_json::from_str(
        env.cli(&["deletions", "--project", &p, "--json"])
            .await
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(listed[0]["id"], job["id"]);
    let error = env.cli_error(&["delete", "--project", &p, "--all"]).await;
    assert!(error.contains("archive the project first"), "{error}");

    let pg = env.postgres().await;
    let organization = projects::organization_of(&pg, project.key.project_id)
        .await
        .unwrap();
    let log: Value = serde_json::from_str(
        env.cli(&["audit", "--organization", &organization.to_string(), "--json"])
            .await
            .unwrap()
            .trim(),
    )
    .unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"cli delete"), "{actions:?}");
    assert!(
        !actions.contains(&"cli deletions"),
        "reads are not changes: {actions:?}"
    );
}

#[tokio::test]
async fn a_deleted_score_sent_again_stays_deleted() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = project(&env, "scored").await;
    let at = Timestamp::now();
    let score = |id: &str| {
        json!({"id": format!("e-{id}"), "type": "score", "timestamp": at,
               "body": {"id": id, "trace_id": "t-scored", "name": "helpful", "value": 1}})
    };
    send(&etl, &project.key, &[score("s-gone"), score("s-kept")]).await;
    let http = reqwest::Client::new();
    let deleted = http
        .delete(format!("{}/api/public/scores/s-gone", etl.url))
        .header("authorization", project.basic_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let jobs: Value = http
        .get(format!(
            "{}/v1/projects/{}/deletions",
            etl.url, project.key.project_id
        ))
        .header("authorization", project.basic_auth())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs[0]["target"], "scores", "{jobs:#}");
    let job = finished(
        &etl,
        &project,
        jobs[0]["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(job["counts"]["scores"], 1, "{job:#}");
    // Sent again (an SDK retrying its batch): refused; the other score is not.
    let answer = send(&etl, &project.key, &[score("s-gone"), score("s-kept")]).await;
    assert_eq!((answer.deleted, answer.accepted), (1, 1), "{answer:?}");
    let p = quote(&project.key.project_id.to_string());
    assert_eq!(
        env.ch(&format!("SELECT DISTINCT id FROM scores WHERE project_id = {p}"))
            .await
            .trim(),
        "s-kept"
    );
}
