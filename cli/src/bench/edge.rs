//! `agenttrace bench edge`: requests/s, events/s and CPU time per request of the edge Worker in
//! workerd, for 100-event requests of realistic coding-agent events.
//!
//! Run it against a running stack (`./dev.sh up`). CPU time is read from `/proc` for every
//! `workerd` process on the machine (wrangler dev runs one), before and after each run: it is
//! everything the edge did for those requests, including the Durable Object's SQLite writes and
//! the deliveries to the ETL that happened meanwhile. The baseline, in the same run, is
//! `GET /healthz` at the same concurrency: the cost of a request that does nothing.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use agenttrace_schemas::Timestamp;
use anyhow::{Context, ensure};
use clap::Args;

use crate::DatabaseArgs;
use crate::agent::SessionGenerator;

#[derive(Debug, Clone, Args)]
pub struct EdgeBenchArgs {
    /// The edge's URL.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub edge_url: String,
    /// JSON file with `public_key` and `secret_key` (the demo's `.local/demo-key.json`).
    #[arg(long)]
    pub key_file: std::path::PathBuf,
    /// Requests per run.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measure acknowledged → queryable instead: send this many events per second (in
    /// 100-event requests) and time each request from its 2xx until ClickHouse shows all of it.
    #[arg(long)]
    pub latency_at: Option<usize>,
    /// How long the latency run sends, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
}

/// CPU seconds used so far by all `workerd` processes.
fn workerd_cpu_seconds(ticks_per_second: f64) -> anyhow::Result<f64> {
    let mut total = 0.0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim() == "workerd")
            && let Ok(stat) = std::fs::read_to_string(path.join("stat"))
        {
            // Fields after the parenthesised command: utime and stime are the 12th and 13th.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace()
                .collect();
            let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
                + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
            total += ticks / ticks_per_second;
            found = true;
        }
    }
    ensure!(
        found,
        "no workerd process is running; start the stack with ./dev.sh up"
    );
    Ok(total)
}

struct RunResult {
    requests_per_second: f64,
    cpu_ms_per_request: f64,
}

async fn run(
    requests: usize,
    concurrency: usize,
    ticks_per_second: f64,
    send: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>,
) -> anyhow::Result<RunResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = workerd_cpu_seconds(ticks_per_second)?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, send) = (next.clone(), send.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, anyhow::Error>(());
                }
                let response = send(i).send().await?;
                let status = response.status();
                let body = response.text().await?;
                ensure!(status.is_success(), "the edge answered {status}: {body}");
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = workerd_cpu_seconds(ticks_per_second)? - cpu_before;
    Ok(RunResult {
        requests_per_second: requests as f64 / elapsed,
        cpu_ms_per_request: cpu * 1000.0 / requests as f64,
    })
}

pub async fn run_edge(
    args: EdgeBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Key {
        public_key: String,
        secret_key: String,
    }
    let key: Key = serde_json::from_slice(
        &std::fs::read(&args.key_file).with_context(|| format!("reading {}", args.key_file.display()))?,
    )
    .with_context(|| format!("{} must hold public_key and secret_key", args.key_file.display()))?;
    if let Some(rate) = args.latency_at {
        return latency(&args, rate, &key.public_key, &key.secret_key, databases, out).await;
    }
    let ticks_per_second: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0);

    // 100-event bodies of demo sessions (distinct ids, so nothing collapses downstream).
    let mut generator = SessionGenerator::new(11);
    let mut events = Vec::new();
    while events.len() < 100 * 64 {
        events.extend(generator.session(Timestamp::now(), 6));
    }
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        events
            .chunks(100)
            .filter(|chunk| chunk.len() == 100)
            .map(|chunk| serde_json::to_vec(&serde_json::json!({ "events": chunk })))
            .collect::<Result<_, _>>()?,
    );
    let average_bytes = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let http = reqwest::Client::new();
    let authorization = format!("Bearer {}:{}", key.public_key, key.secret_key);
    let ingest_url = format!("{}/v1/ingest", args.edge_url.trim_end_matches('/'));
    let health_url = format!("{}/healthz", args.edge_url.trim_end_matches('/'));

    writeln!(
        out,
        "edge in workerd: {} requests of 100 events (~{} KB each), {} in flight",
        args.requests,
        average_bytes / 1024,
        args.concurrency
    )?;
    let health = {
        let http = http.clone();
        let url = health_url.clone();
        Arc::new(move |_: usize| http.get(&url))
    };
    // Warm up: isolates, Durable Objects, the key cache.
    run(200, args.concurrency, ticks_per_second, health.clone()).await?;
    let ingest = {
        let (http, bodies) = (http.clone(), bodies.clone());
        let (url, authorization) = (ingest_url.clone(), authorization.clone());
        Arc::new(move |i: usize| {
            http.post(&url)
                .header("authorization", &authorization)
                .header("content-type", "application/json")
                .body(bodies[i % bodies.len()].clone())
        })
    };
    run(100, args.concurrency, ticks_per_second, ingest.clone()).await?;

    let baseline = run(args.requests, args.concurrency, ticks_per_second, health).await?;
    writeln!(
        out,
        "  baseline GET /healthz       {:>8.0} requests/s                        CPU {:.3} ms/request",
        baseline.requests_per_second, baseline.cpu_ms_per_request
    )?;
    // The same route with nothing to buffer: routing, the key check (cached) and an empty parse.
    let empty = {
        let (http, url, authorization) = (http.clone(), ingest_url.clone(), authorization.clone());
        Arc::new(move |_: usize| {
            http.post(&url)
                .header("authorization", &authorization)
                .header("content-type", "application/json")
                .body(r#"{"events": []}"#)
        })
    };
    let empty = run(args.requests, args.concurrency, ticks_per_second, empty).await?;
    writeln!(
        out,
        "  POST /v1/ingest (no events) {:>8.0} requests/s                        CPU {:.3} ms/request",
        empty.requests_per_second, empty.cpu_ms_per_request
    )?;
    let measured = run(args.requests, args.concurrency, ticks_per_second, ingest).await?;
    writeln!(
        out,
        "  POST /v1/ingest (100 events) {:>7.0} requests/s {:>9.0} events/s   CPU {:.3} ms/request",
        measured.requests_per_second,
        measured.requests_per_second * 100.0,
        measured.cpu_ms_per_request
    )?;
    writeln!(
        out,
        "  ingest / healthz: {:.2}x the requests/s, {:.1}x the CPU   target < 1 ms CPU per request: {}",
        measured.requests_per_second / baseline.requests_per_second,
        measured.cpu_ms_per_request / baseline.cpu_ms_per_request,
        if measured.cpu_ms_per_request < 1.0 {
            "met"
        } else {
            "NOT met"
        }
    )?;
    Ok(())
}

/// Acknowledged → queryable: requests of 100 events at a fixed rate; each request's
/// observations carry a trace id of their own, so a poller (every 50 ms, one range read of
/// the observations' sorting key) sees when all of a request's rows are visible.
async fn latency(
    args: &EdgeBenchArgs,
    events_per_second: usize,
    public_key: &str,
    secret_key: &str,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use agenttrace_etl::ingest::key_status::{KeyStatus, key_status};

    let pg = agenttrace_etl::postgres::connect(&databases.database_url).await?;
    let KeyStatus::Active { project_id, .. } = key_status(&pg, public_key).await? else {
        anyhow::bail!("the key in {} is not active", args.key_file.display());
    };
    let clickhouse = databases.clickhouse();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let requests = (events_per_second as u64 * args.seconds / 100) as usize;
    let mut generator = SessionGenerator::new(run.len() as u64 ^ Timestamp::now().as_micros() as u64);
    let mut events = Vec::new();
    while events.len() < requests * 100 {
        events.extend(generator.session(Timestamp::now(), 6));
    }
    let mut bodies = Vec::with_capacity(requests);
    let mut expected = HashMap::new();
    for (i, chunk) in events.chunks(100).take(requests).enumerate() {
        let marker = format!("lat-{run}-{i:06}");
        let mut chunk: Vec<serde_json::Value> =
            chunk.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        let mut observations = 0;
        for event in &mut chunk {
            if event["type"] == "observation" {
                event["body"]["trace_id"] = marker.clone().into();
                observations += 1;
            }
        }
        expected.insert(marker, observations);
        bodies.push(serde_json::to_vec(&serde_json::json!({ "events": chunk }))?);
    }
    writeln!(
        out,
        "acknowledged → queryable: {requests} requests of 100 events at {events_per_second} events/s"
    )?;

    let acknowledged: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // The poller runs while requests are sent: a request's rows are seen when they land.
    let poller = {
        let (expected, run) = (expected.clone(), run.clone());
        tokio::spawn(async move {
            let mut visible: HashMap<String, Instant> = HashMap::new();
            let mut last_new = Instant::now();
            while visible.len() < expected.len() && last_new.elapsed() < Duration::from_secs(60) {
                let counts = clickhouse
                    .query_text(&format!(
                        "SELECT trace_id, count() FROM observations WHERE project_id = '{project_id}' \
                         AND trace_id >= 'lat-{run}-' AND trace_id < 'lat-{run}.' GROUP BY trace_id FORMAT TabSeparated"
                    ))
                    .await?;
                let now = Instant::now();
                for line in counts.lines() {
                    if let Some((marker, count)) = line.split_once('\t')
                        && count.parse::<usize>().ok() >= expected.get(marker).copied()
                        && !visible.contains_key(marker)
                    {
                        visible.insert(marker.to_owned(), now);
                        last_new = now;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, anyhow::Error>(visible)
        })
    };
    let http = reqwest::Client::new();
    let authorization = format!("Bearer {public_key}:{secret_key}");
    let url = format!("{}/v1/ingest", args.edge_url.trim_end_matches('/'));
    let period = Duration::from_secs_f64(100.0 / events_per_second as f64);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut senders = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (i, body) in bodies.into_iter().enumerate() {
        ticker.tick().await;
        let request = http
            .post(&url)
            .header("authorization", &authorization)
            .header("content-type", "application/json")
            .body(body);
        let acknowledged = acknowledged.clone();
        let marker = format!("lat-{run}-{i:06}");
        senders.spawn(async move {
            let response = request.send().await?;
            let at = Instant::now();
            ensure!(
                response.status().is_success(),
                "the edge answered {}",
                response.status()
            );
            acknowledged.lock().expect("not poisoned").insert(marker, at);
            Ok::<_, anyhow::Error>(())
        });
    }
    let sent_in = started.elapsed();
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    let visible = poller.await??;
    let acknowledged = acknowledged.lock().expect("not poisoned");
    let mut latencies: Vec<f64> = visible
        .iter()
        .filter_map(|(marker, seen)| {
            let acked = acknowledged.get(marker)?;
            Some(seen.saturating_duration_since(*acked).as_secs_f64() * 1000.0)
        })
        .collect();
    ensure!(
        latencies.len() == requests,
        "only {} of {requests} requests became queryable within a minute",
        latencies.len()
    );
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    writeln!(
        out,
        "  sent at {:.0} events/s; ack → queryable p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         (polled every 50 ms)   target p99 < 1000 ms: {}",
        requests as f64 * 100.0 / sent_in.as_secs_f64(),
        quantile(0.5),
        quantile(0.9),
        quantile(0.99),
        quantile(1.0),
        if quantile(0.99) < 1000.0 { "met" } else { "NOT met" }
    )?;
    Ok(())
}
