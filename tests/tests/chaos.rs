//! The chaos run: realistic coding agents load the whole stack through the edge while the ETL,
//! ClickHouse, PostgreSQL and the edge are each killed (SIGKILL, or PostgreSQL's immediate
//! shutdown) and restarted, in turn, again and again. Agents behave like SDKs: a request that
//! fails is sent again until it is acknowledged. At the end every acknowledged event must be
//! stored, none visibly twice, and nothing dead-lettered.
//!
//! `AGENTTRACE_CHAOS_SECS` sets how long the load and the faults last (default 60, as in CI);
//! `scripts/chaos.sh 600` is the 10-minute run recorded in the README. On the local cluster
//! (`CLICKHOUSE_CLUSTER` set, as `AGENTTRACE_CLUSTER=1 ./dev.sh test` does) the ClickHouse fault
//! is one replica of a shard killed and restarted, each shard in turn.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_schemas::Timestamp;
use agenttrace_tests::TestEnv;
use agenttrace_tests::cluster::Cluster;
use agenttrace_tests::edge::Edge;
use agenttrace_tests::etl::SIGNING_KEYS;
use agenttrace_tests::ports::free_port;
use agenttrace_tests::servers::{ClickHouseServer, PostgresServer, http_ok};
use serde_json::{Value, json};

/// Rows by table, as the events name them.
const TABLES: &[(&str, &str)] = &[
    ("trace", "traces"),
    ("observation", "observations"),
    ("score", "scores"),
    ("file_operation", "file_operations"),
    ("terminal_command", "terminal_commands"),
    ("git_link", "git_links"),
];
const AGENTS: u64 = 6;
const EVENTS_PER_REQUEST: usize = 100;

/// The ETL as its own process (`agenttrace serve`), so it can be killed like a crashed server.
struct EtlProcess {
    binary: PathBuf,
    listen: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl EtlProcess {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .args(["serve", "--listen", &self.listen, "--key-cache-ttl-secs", "2"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // The reader user is confined to the main database, not this test's.
            .env_remove("CLICKHOUSE_READER_USER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting agenttrace serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_ok(&format!("http://{}", self.listen), "/healthz") {
            assert!(Instant::now() < deadline, "the ETL did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EtlProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the agents saw.
#[derive(Default)]
struct Tally {
    acknowledged: Mutex<HashSet<(String, String)>>,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// (table, row id) of each event that becomes a row.
fn rows_of(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|event| {
            let kind = event["type"].as_str()?;
            let table = TABLES.iter().find(|(t, _)| *t == kind)?.1;
            Some((table.to_owned(), event["body"]["id"].as_str()?.to_owned()))
        })
        .collect()
}

/// One agent: sessions of coding-agent events, sent as the edge's native batches until `stop`.
async fn agent(
    seed: u64,
    edge_url: Arc<Mutex<String>>,
    auth: String,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut generator = SessionGenerator::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<Value> = generator
            .session(Timestamp::now(), 4)
            .iter()
            .map(|event| serde_json::to_value(event).unwrap())
            .collect();
        for chunk in events.chunks(EVENTS_PER_REQUEST) {
            let body = json!({ "events": chunk });
            loop {
                let url = format!("{}/v1/ingest", edge_url.lock().unwrap());
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let sent = http
                    .post(url)
                    .header("authorization", &auth)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        tally.acknowledged.lock().unwrap().extend(rows_of(chunk));
                        break;
                    }
                    Ok(response) if response.status().is_client_error() => {
                        let status = response.status();
                        panic!(
                            "the edge refused valid events: {status} {}",
                            response.text().await.unwrap()
                        );
                    }
                    // 5xx or no answer: the SDK's retry.
                    _ => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tally.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Etl,
    ClickHouse,
    Postgres,
    Edge,
    /// One replica of the cluster (`s1r2`, `s2r1`).
    Replica(&'static str),
}

/// The rows stored for `project`, by table: (distinct ids, raw duplicate rows, visible duplicates).
async fn stored(env: &TestEnv, project: &str) -> BTreeMap<String, (HashSet<String>, u64, u64)> {
    let mut out = BTreeMap::new();
    for (_, table) in TABLES {
        let ids = env
            .ch(&format!(
                "SELECT DISTINCT id FROM {table} WHERE project_id = '{project}'"
            ))
            .await;
        let ids: HashSet<String> = ids.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        let count = |sql: String| async move { env.ch(&sql).await.parse::<u64>().unwrap_or(0) };
        let raw = count(format!(
            "SELECT count() - uniqExact(id) FROM {table} WHERE project_id = '{project}'"
        ))
        .await;
        let visible = count(format!(
            "SELECT count() - uniqExact(id) FROM {table} FINAL WHERE project_id = '{project}'"
        ))
        .await;
        out.insert((*table).to_owned(), (ids, raw, visible));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_lose_nothing_and_see_nothing_twice_while_every_part_is_killed() {
    let seconds: u64 = std::env::var("AGENTTRACE_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let binary = tokio::task::spawn_blocking(agenttrace_tests::agenttrace_binary)
        .await
        .unwrap();
    let postgres = tokio::task::spawn_blocking(PostgresServer::start).await.unwrap();
    let (mut clickhouse, cluster, env) = if std::env::var("CLICKHOUSE_CLUSTER").is_ok() {
        let cluster = tokio::task::spawn_blocking(Cluster::up).await.unwrap();
        let env = TestEnv::migrated_on_cluster_with(&postgres.url("postgres"), &cluster).await;
        (None, Some(cluster), env)
    } else {
        let server = tokio::task::spawn_blocking(ClickHouseServer::start)
            .await
            .unwrap();
        let env = TestEnv::migrated_on(&postgres.url("postgres"), &server.url()).await;
        (Some(server), None, env)
    };
    let project = env.create_project("chaos").await;
    let p = project.key.project_id.to_string();

    let dir = std::env::temp_dir().join(format!("agenttrace-chaos-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = env.database_args();
    let mut etl = EtlProcess {
        binary,
        listen: format!("127.0.0.1:{}", free_port()),
        env: vec![
            ("DATABASE_URL".into(), args.database_url),
            ("CLICKHOUSE_URL".into(), args.clickhouse_url),
            ("CLICKHOUSE_DATABASE".into(), args.clickhouse_database),
            (
                "CLICKHOUSE_CLUSTER".into(),
                args.clickhouse_cluster.unwrap_or_default(),
            ),
            (
                "CLICKHOUSE_CLUSTER_URLS".into(),
                args.clickhouse_cluster_urls.join(","),
            ),
            ("AGENTTRACE_SIGNING_KEYS".into(), SIGNING_KEYS.into()),
            ("RUST_LOG".into(), "warn".into()),
        ],
        log: dir.join("etl.log"),
        child: None,
    };
    etl = tokio::task::spawn_blocking(move || {
        etl.start();
        etl
    })
    .await
    .unwrap();
    let mut edge = Edge::start(&format!("http://{}", etl.listen), &[("KEY_CACHE_TTL_MS", "2000")]).await;
    let edge_url = Arc::new(Mutex::new(edge.url.clone()));

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let agents: Vec<_> = (0..AGENTS)
        .map(|seed| {
            tokio::spawn(agent(
                seed,
                edge_url.clone(),
                project.basic_auth(),
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // Faults in turn: up a while, killed, down a while, restarted.
    let started = Instant::now();
    let (up, down) = (Duration::from_secs(8), Duration::from_secs(4));
    let mut faults = Vec::new();
    let rotation: &[Fault] = if cluster.is_some() {
        &[
            Fault::Etl,
            Fault::Replica("s1r2"),
            Fault::Postgres,
            Fault::Edge,
            Fault::Replica("s2r1"),
        ]
    } else {
        &[Fault::Etl, Fault::ClickHouse, Fault::Postgres, Fault::Edge]
    };
    for fault in rotation.iter().cycle() {
        if started.elapsed() + up + down > Duration::from_secs(seconds) {
            break;
        }
        tokio::time::sleep(up).await;
        let outage = Instant::now();
        match fault {
            Fault::Etl => etl.kill(),
            Fault::ClickHouse => clickhouse.as_mut().expect("a single server").stop(),
            Fault::Replica(node) => {
                let cluster = cluster.clone().expect("a cluster");
                tokio::task::spawn_blocking(move || cluster.kill(node))
                    .await
                    .unwrap()
            }
            Fault::Postgres => postgres.stop(),
            Fault::Edge => edge.kill(),
        }
        tokio::time::sleep(down).await;
        match fault {
            Fault::Etl => {
                etl = tokio::task::spawn_blocking(move || {
                    etl.start();
                    etl
                })
                .await
                .unwrap()
            }
            Fault::ClickHouse => {
                let mut server = clickhouse.take().expect("a single server");
                clickhouse = Some(
                    tokio::task::spawn_blocking(move || {
                        server.resume();
                        server
                    })
                    .await
                    .unwrap(),
                )
            }
            Fault::Replica(node) => {
                let cluster = cluster.clone().expect("a cluster");
                tokio::task::spawn_blocking(move || cluster.start(node))
                    .await
                    .unwrap()
            }
            Fault::Postgres => tokio::task::block_in_place(|| postgres.resume()),
            Fault::Edge => edge.restart().await,
        }
        faults.push((*fault, outage.elapsed()));
    }
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.unwrap();
    }
    let acknowledged = tally.acknowledged.lock().unwrap().clone();

    // Everything acknowledged must arrive (the edge delivers what it buffered).
    let deadline = Instant::now() + Duration::from_secs(180);
    let (missing, rows) = loop {
        let rows = stored(&env, &p).await;
        let stored: HashSet<(String, String)> = rows
            .iter()
            .flat_map(|(table, (ids, _, _))| ids.iter().map(move |id| (table.clone(), id.clone())))
            .collect();
        let missing: Vec<_> = acknowledged.difference(&stored).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (missing, rows);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // Every acknowledged row is findable: its postings went into the same acknowledged insert.
    // (Observations, commands and file operations always have text: a name, a command, a path.)
    let indexed: HashSet<(String, String)> = env
        .ch(&format!(
            // A trace's or observation's own postings leave `id` empty: it is theirs.
            "SELECT DISTINCT source, if(id = '', if(source = 'traces', trace_id, observation_id), id) \
             FROM search_postings WHERE project_id = '{p}'"
        ))
        .await
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(source, id)| (source.to_owned(), id.to_owned()))
        .collect();
    let unindexed: Vec<&(String, String)> = acknowledged
        .iter()
        .filter(|(table, _)| {
            ["observations", "terminal_commands", "file_operations"].contains(&table.as_str())
        })
        .filter(|row| !indexed.contains(*row))
        .collect();
    let stored_rows: usize = rows.values().map(|(ids, _, _)| ids.len()).sum();
    let raw_duplicates: u64 = rows.values().map(|(_, raw, _)| raw).sum();
    let visible_duplicates: u64 = rows.values().map(|(_, _, visible)| visible).sum();
    let dead_letters = env
        .ch(&format!(
            "SELECT count() FROM dead_letters WHERE project_id = '{p}'"
        ))
        .await;
    println!(
        "chaos run: {seconds} s, {AGENTS} agents, {} requests ({} retried), faults: {}",
        tally.requests.load(Ordering::Relaxed),
        tally.retries.load(Ordering::Relaxed),
        faults
            .iter()
            .map(|(fault, outage)| format!("{fault:?} {:.1} s", outage.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  acknowledged rows {}, stored {stored_rows} (of which not acknowledged: {}), missing {}, \
         duplicate rows before merging {raw_duplicates}, visible duplicates {visible_duplicates}, \
         dead letters {dead_letters}",
        acknowledged.len(),
        stored_rows.saturating_sub(acknowledged.len() - missing.len()),
        missing.len(),
    );
    let logs = || format!("ETL log:\n{}\nedge log:\n{}", tail(&etl.log()), tail(&edge.log()));
    assert!(
        faults.len() >= 4,
        "every part must have been killed once: {faults:?}"
    );
    assert!(!acknowledged.is_empty(), "no event was acknowledged");
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {:?}…\n{}",
        &missing[..missing.len().min(5)],
        logs()
    );
    assert_eq!(visible_duplicates, 0, "rows visible twice\n{}", logs());
    assert!(
        unindexed.is_empty(),
        "acknowledged but not in the search index: {:?}…",
        &unindexed[..unindexed.len().min(5)]
    );
    assert_eq!(dead_letters, "0", "valid events were dead-lettered\n{}", logs());
    drop(edge);
    drop(etl);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[start..]
}
