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

pub async fn run_edge(args: EdgeBenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Key {
        public_key: String,
        secret_key: String,
    }
    let key: Key = serde_json::from_slice(
        &std::fs::read(&args.key_file).with_context(|| format!("reading {}", args.key_file.display()))?,
    )
    .with_context(|| format!("{} must hold public_key and secret_key", args.key_file.display()))?;
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
