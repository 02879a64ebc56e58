//! `agenttrace bench trace`: one large trace read through the service, as the trace page reads
//! it, against the same rows read straight from ClickHouse.
//!
//! A trace of `--observations` observations (agent steps of 50 tool calls and generations under
//! one root, an hour-long agent run) is sent through the in-process ETL into a fresh database.
//! `GET /v1/traces/{id}` then reads, deduplicates, cuts, nests and serializes it; the baseline,
//! in the same process, fetches the trace's stored rows as `JSONEachRow` from ClickHouse. The
//! ratio is what the service adds to reading the rows at all: the figure that the build's
//! optimization moves (`./dev.sh up` runs the `stack` profile, the tests `dev`).

use std::io::Write;
use std::time::{Duration, Instant};

use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::clickhouse::quote;
use agenttrace_etl::http::start;
use agenttrace_schemas::{Scope, Timestamp};
use anyhow::ensure;
use clap::Args;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::bench::{SIGNING_KEYS, bench_server_config, fresh_project, settle};
use crate::send::{BatchClient, ProjectKey};

#[derive(Debug, Clone, Args)]
pub struct TraceBenchArgs {
    /// Observations in the trace.
    #[arg(long, default_value_t = 10_000)]
    pub observations: usize,
    /// Timed reads of each kind (after one untimed read of each).
    #[arg(long, default_value_t = 20)]
    pub requests: usize,
}

/// A long agent run's events: its root trace, then `observations` observations in agent steps
/// of 50 tool calls and generations under one root, 100 ms apart.
pub fn trace_events(trace_id: &str, observations: usize) -> Vec<Value> {
    let start = Timestamp::now().as_micros() - 3_600_000_000;
    let at = |us: i64| Timestamp::from_micros(us).to_string();
    let mut events = vec![json!({"type": "trace", "id": trace_id, "timestamp": at(start),
                                 "body": {"id": trace_id, "name": "long agent run"}})];
    for i in 0..observations {
        let id = format!("{trace_id}-{i}");
        let (kind, parent) = match i {
            0 => ("agent", Value::Null),
            i if i % 50 == 0 => ("agent", json!(format!("{trace_id}-0"))),
            i => (
                if i % 2 == 0 { "tool" } else { "generation" },
                json!(format!("{trace_id}-{}", i / 50 * 50)),
            ),
        };
        let begins = start + i as i64 * 100_000;
        events.push(
            json!({"type": "observation", "id": id, "timestamp": at(begins), "body": {
            "id": id, "trace_id": trace_id, "parent_observation_id": parent, "type": kind,
            "name": format!("step {i}"), "start_time": at(begins), "end_time": at(begins + 80_000),
            "input": {"messages": [{"role": "user", "content": format!("do step {i} of the plan")}]},
            "output": {"role": "assistant", "content": "done"}}}),
        );
    }
    events
}

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs `read` once untimed, then `requests` times; the median.
async fn timed<F, Fut>(requests: usize, mut read: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    read().await?;
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        read().await?;
        samples.push(started.elapsed());
    }
    Ok(median(samples))
}

pub async fn run_trace(
    args: TraceBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    ensure!(args.observations >= 1, "--observations must be at least 1");
    ensure!(args.requests >= 1, "--requests must be at least 1");
    let clickhouse = databases.clickhouse();
    let (database, project, key) = fresh_project(databases, "trace", &[Scope::Ingest, Scope::Read]).await?;
    let server = start(
        bench_server_config(databases, &database, LoaderOptions::default())?,
        "127.0.0.1:0".parse()?,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let base_url = format!("http://{}", server.addr);

    let trace_id = format!("bench-{}", Uuid::now_v7().simple());
    let sender = BatchClient::new(&base_url, SIGNING_KEYS, "bench")?;
    let project_key = ProjectKey {
        project_id: project,
        public_key: key.public_key.clone(),
    };
    for chunk in trace_events(&trace_id, args.observations).chunks(2000) {
        let raw = chunk
            .iter()
            .map(serde_json::value::to_raw_value)
            .collect::<Result<Vec<_>, _>>()?;
        let body = sender.batch_body(&project_key, Uuid::now_v7(), raw);
        let answer = sender
            .post_body(body, Timestamp::now().as_micros() / 1_000_000, None)
            .await?
            .response()?;
        ensure!(
            answer.rejected.is_empty(),
            "events refused: {:?}",
            answer.rejected.first()
        );
    }

    let http = reqwest::Client::new();
    let auth = format!("Bearer {}:{}", key.public_key, key.secret_key);
    let url = format!("{base_url}/v1/traces/{trace_id}");
    let api = timed(args.requests, || async {
        let response = http.get(&url).header("authorization", &auth).send().await?;
        ensure!(response.status().is_success(), "GET {url}: {}", response.status());
        let detail: Value = serde_json::from_slice(&response.bytes().await?)?;
        let count = detail["observation_count"].as_u64().unwrap_or_default() as usize;
        ensure!(count == args.observations, "the trace holds {count} observations");
        Ok(count)
    })
    .await?;
    let sql = format!(
        "SELECT * FROM observations WHERE project_id = {} AND trace_id = {} FORMAT JSONEachRow",
        quote(&project.to_string()),
        quote(&trace_id)
    );
    let baseline = timed(args.requests, || async {
        Ok(database.query_text(&sql).await?.lines().count())
    })
    .await?;
    server.shutdown().await?;
    settle(&clickhouse, &database).await?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    writeln!(
        out,
        "bench trace: one trace of {} observations, median of {} reads ({} build)",
        args.observations,
        args.requests,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        }
    )?;
    writeln!(out, "  GET /v1/traces/{{id}}                 {:>8.1} ms", ms(api))?;
    writeln!(
        out,
        "  baseline: its rows from ClickHouse   {:>8.1} ms",
        ms(baseline)
    )?;
    writeln!(out, "  API / baseline = {:.1}", ms(api) / ms(baseline))?;
    Ok(())
}
