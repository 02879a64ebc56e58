//! AgentTrace on a ClickHouse cluster (`scripts/cluster.sh`: 2 shards × 2 replicas and
//! ZooKeeper): the migrations' clustered schema, loads while one replica of each shard is
//! killed, and a whole shard down behind the edge. Every acknowledged event is stored, once.
//! (The other suites run on the cluster with `AGENTTRACE_CLUSTER=1 ./dev.sh test`.)

use std::time::Duration;

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_schemas::{Event, Payload, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::cluster::Cluster;
use agenttrace_tests::edge::Edge;
use base64::Engine as _;
use serde_json::{Value, json};

/// Asks one node directly (`SELECT ...` on port `port`), not through the Distributed tables.
async fn on_node(port: u16, sql: String) -> String {
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .body(sql)
        .send()
        .await
        .unwrap();
    answer.text().await.unwrap().trim().to_owned()
}

/// Runs `scripts/cluster.sh` off the async threads.
async fn blocking(work: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(work).await.unwrap();
}

#[tokio::test]
async fn every_acknowledged_event_is_stored_once_through_replica_and_shard_outages() {
    let cluster = Cluster::up();
    let env = TestEnv::migrated_on_cluster(&cluster).await;
    // The migration history is the same on every node (once replication has caught up: the
    // last entry may still be on its way to a replica when the migration returns).
    let expected = env.ch("SELECT count() FROM schema_migrations FINAL").await;
    for port in 8232..=8234 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let node = on_node(
                port,
                format!("SELECT count() FROM {}.schema_migrations FINAL", env.name),
            )
            .await;
            if node.trim() == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node :{port} holds {} migrations, s1r1 {expected}",
                node.trim()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The ALTERs, run on one node per shard, reached every replica.
        let columns = on_node(
            port,
            format!(
                "SELECT count() FROM system.columns WHERE database = '{}' AND table = 'traces_local' AND name IN ('public', 'project_name')",
                env.name
            ),
        )
        .await;
        assert_eq!(
            columns, "2",
            "node :{port} lacks an ALTERed column of traces_local"
        );
    }
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("clustered").await;
    let mut generator = SessionGenerator::new(21);
    let mut acknowledged: Vec<Event> = Vec::new();
    let first = generator.session(Timestamp::now(), 3);
    etl.load(&project.key, &first).await;
    acknowledged.extend(first);

    // One replica of each shard killed: a batch is either refused (a retryable 503, nothing
    // acknowledged) or held until the quorum is met again, so nothing is acknowledged before
    // both replicas of each shard have it; nothing is lost or doubled.
    let (one, two) = (cluster.clone(), cluster.clone());
    blocking(move || {
        one.kill("s1r2");
        one.kill("s2r2");
    })
    .await;
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        blocking(move || {
            two.start("s1r2");
            two.start("s2r2");
        })
        .await;
    });
    let mut refused = 0;
    for _ in 0..4 {
        let events = generator.session(Timestamp::now(), 2);
        loop {
            let answer = etl.client.send(&project.key, &events).await.unwrap();
            if answer.status == 200 {
                break;
            }
            assert_eq!(answer.status, 503, "{}", answer.body);
            refused += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        acknowledged.extend(events);
    }
    restart.await.unwrap();
    println!("{refused} sends refused while a replica of each shard was down");
    let observations = acknowledged
        .iter()
        .filter(|e| matches!(e.payload, Payload::Observation(_)))
        .count();
    let p = project.key.project_id;
    env.wait_until(
        &format!("SELECT count(), uniqExact(id) FROM observations FINAL WHERE project_id = '{p}'"),
        &format!("{observations}\t{observations}"),
        Duration::from_secs(60),
    )
    .await;
    // Both replicas of each shard hold the same rows, and the shards together hold them all
    // (a few traces may all hash to one shard).
    let mut on_nodes = Vec::new();
    for port in [8231, 8232, 8233, 8234] {
        let rows: u64 = on_node(
            port,
            format!(
                "SELECT count() FROM {}.observations_local FINAL WHERE project_id = '{p}'",
                env.name
            ),
        )
        .await
        .parse()
        .unwrap();
        on_nodes.push(rows);
    }
    assert_eq!(
        on_nodes[0], on_nodes[1],
        "shard 1's replicas differ: {on_nodes:?}"
    );
    assert_eq!(
        on_nodes[2], on_nodes[3],
        "shard 2's replicas differ: {on_nodes:?}"
    );
    assert_eq!(on_nodes[0] + on_nodes[2], observations as u64, "{on_nodes:?}");

    // A whole shard down: the ETL answers 503, the edge keeps the events and delivers them
    // once the shard is back.
    let edge = Edge::start(&etl.url, &[]).await;
    let (down, up) = (cluster.clone(), cluster.clone());
    blocking(move || {
        down.kill("s2r1");
        down.kill("s2r2");
    })
    .await;
    // One session is one trace, so it lands on one shard: sessions are added until the batch
    // has a trace on each shard (the refusal must not hang on where the trace hashed).
    let mut events = Vec::new();
    let mut shards = std::collections::BTreeSet::new();
    while shards.len() < 2 {
        let session = generator.session(Timestamp::now(), 2);
        for event in &session {
            if let Payload::Trace(trace) = &event.payload {
                let slot = on_node(8231, format!("SELECT cityHash64('{p}', '{}') % 2", trace.id)).await;
                shards.insert(slot);
            }
        }
        events.extend(session);
    }
    let answer = etl.client.send(&project.key, &events).await.unwrap();
    assert_eq!(answer.status, 503, "{}", answer.body);
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", project.key.public_key, project.secret_key));
    let sent: Vec<Value> = (0..40)
        .map(|i| {
            let now = Timestamp::now().to_string();
            json!({"id": format!("edge-{i}"), "type": "observation", "timestamp": now,
                   "body": {"id": format!("edge-o{i}"), "trace_id": format!("edge-trace-{}", i % 8),
                            "type": "span", "name": "step", "start_time": now}})
        })
        .collect();
    let accepted = reqwest::Client::new()
        .post(format!("{}/v1/ingest", edge.url))
        .header("authorization", format!("Basic {basic}"))
        .json(&json!({ "events": sent }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        accepted.status(),
        200,
        "the edge keeps what the ETL cannot take now"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocking(move || {
        up.start("s2r1");
        up.start("s2r2");
    })
    .await;
    // The refused batch may have landed in part (the shard that was up took its rows): the
    // agent retries it, as a 503 asks, and the retry's rows replace those by id.
    loop {
        let answer = etl.client.send(&project.key, &events).await.unwrap();
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{}", answer.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let retried = events
        .iter()
        .filter(|e| matches!(e.payload, Payload::Observation(_)))
        .count();
    let expected = observations + retried + 40;
    env.wait_until(
        &format!("SELECT count(), uniqExact(id) FROM observations FINAL WHERE project_id = '{p}'"),
        &format!("{expected}\t{expected}"),
        Duration::from_secs(120),
    )
    .await;
    drop(edge);
}

#[tokio::test]
async fn a_migration_that_cannot_reach_every_shard_names_the_missing_shard_and_the_setting() {
    let mut cluster = Cluster::up();
    // Only s1r1: shard 2 cannot take the migrations' ALTERs.
    cluster.node_urls.truncate(1);
    let env = TestEnv::empty_on_cluster(
        &agenttrace_tests::database_url(),
        &cluster.url,
        Some(cluster.clone()),
    )
    .await;
    let mut pg = env.postgres().await;
    let error = agenttrace_etl::migrate::migrate(
        &mut pg,
        &env.clickhouse,
        &agenttrace_etl::migrate::MigrationSet::embedded().unwrap(),
    )
    .await
    .expect_err("shard 2 is out of reach");
    let message = error.to_string();
    assert!(
        message.contains("shard(s) {2}") && message.contains("CLICKHOUSE_CLUSTER_URLS"),
        "{message}"
    );
}
