//! `agenttrace bench judge`: the LLM judge job over `--targets` new targets (generations, or
//! with `--target trace|session` whole traces of three generations or sessions of ten traces,
//! each judged once quiet) against a model server in this process that speaks OpenAI's Chat
//! Completions and answers after `--latency-ms`, against the same number of bare calls to that server at the same concurrency
//! (the baseline: what the provider allows, with no scheduler around it).
//!
//! Reported: judgments per second and their ratio to the baseline's calls per second; the
//! scheduler's CPU per judgment (this process's runtime threads, the server's own thread
//! excluded); the spend the ledger accounted against the price table's figure for the tokens
//! the server reported; and exactly-once under a kill: a second pass is dropped mid-run (its
//! calls in flight abandoned, as a crash would), its leases expire, and a third pass finishes.
//! Every target must end with exactly one score; the calls paid twice are counted.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agenttrace_etl::clickhouse::{ClickHouse, quote};
use agenttrace_etl::control::connections::{self, ConnectionUpsert};
use agenttrace_etl::control::evaluators::{self, NewEvaluator};
use agenttrace_etl::control::prices::{self, NewPrice};
use agenttrace_etl::control::sealing::Sealer;
use agenttrace_etl::judge::provider::{self, JudgeRequest, ModelClient};
use agenttrace_etl::postgres;
use agenttrace_jobs::judge::{self, Setup};
use agenttrace_schemas::Scope;
use anyhow::{Context, ensure};
use axum::Router;
use axum::routing::post;
use clap::Args;
use serde_json::{Value, json};

use crate::DatabaseArgs;
use crate::bench::{fresh_project, settle, threads_cpu};

#[derive(Debug, Clone, Args)]
pub struct JudgeBenchArgs {
    /// Generations that arrive to be judged.
    #[arg(long, default_value_t = 10_000)]
    pub targets: u64,
    /// How long the model server takes to answer.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Calls at once (the connection's `concurrency`, and the baseline's).
    #[arg(long, default_value_t = 16)]
    pub concurrency: u64,
    /// What is judged: `observation` (generations), `trace` (three generations each) or
    /// `session` (ten traces each).
    #[arg(long, default_value = "observation", value_parser = ["observation", "trace", "session"])]
    pub target: String,
}

/// Input and output tokens the server reports for every answer.
const TOKENS: (u64, u64) = (400, 30);
/// The price the bench sets for its model, USD per million tokens (input, output).
const PRICE: (f64, f64) = (0.15, 0.60);

/// An OpenAI-compatible server on its own thread (so its CPU is not the scheduler's), counting
/// the calls it answered.
fn start_server(latency: Duration) -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    std::thread::Builder::new()
        .name("bench-provider".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the bench server's runtime");
            runtime.block_on(async move {
                let app = Router::new().route(
                    "/v1/chat/completions",
                    post(move |body: axum::body::Bytes| {
                        let counted = counted.clone();
                        async move {
                            tokio::time::sleep(latency).await;
                            counted.fetch_add(1, Ordering::Relaxed);
                            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let answer = json!({"reasoning": "It answers the question.", "score": 0.8});
                            axum::Json(json!({
                                "id": "chatcmpl-bench", "object": "chat.completion",
                                "model": request["model"],
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": answer.to_string()}}],
                                "usage": {"prompt_tokens": TOKENS.0, "completion_tokens": TOKENS.1,
                                          "total_tokens": TOKENS.0 + TOKENS.1},
                            }))
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).expect("a bound listener");
                axum::serve(listener, app).await.expect("the bench server serves");
            });
        })?;
    Ok((url, calls))
}

/// The scheduler's CPU: this process's runtime threads (not the server's).
fn scheduler_cpu() -> Duration {
    threads_cpu(&["tokio-runtime-w", "agenttrace"])
}

pub async fn run_judge(
    args: JudgeBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    ensure!(args.targets >= 100, "--targets must be at least 100");
    ensure!(
        (1..=32).contains(&args.concurrency),
        "--concurrency must be 1 to 32"
    );
    let (url, calls) = start_server(Duration::from_millis(args.latency_ms))?;
    let (database, project, _) = fresh_project(databases, "judge", &[Scope::Read]).await?;
    let pg = postgres::connect(&databases.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    // A key of the bench's own: the bench needs no configured one.
    let sealer = Sealer::from_hex(&hex::encode(rand::random::<[u8; 32]>()))?;
    connections::upsert(
        &pg,
        Some(&sealer),
        project,
        &ConnectionUpsert {
            provider: "bench".into(),
            adapter: "openai".into(),
            secret_key: "sk-bench-0123456789".into(),
            base_url: Some(url.clone()),
            config: Some(json!({"model": "bench-judge", "concurrency": args.concurrency})),
            ..ConnectionUpsert::default()
        },
    )
    .await?;
    prices::set(
        &pg,
        &NewPrice {
            project_id: Some(project),
            model_pattern: "bench-judge.*".into(),
            provider: "bench".into(),
            input: PRICE.0,
            output: PRICE.1,
            cache_read: 0.0,
            cache_write: 0.0,
            valid_from: None,
        },
    )
    .await?;
    evaluators::add(
        &pg,
        &NewEvaluator {
            project_id: project,
            name: "helpfulness".into(),
            kind: "llm_judge".into(),
            config: match args.target.as_str() {
                "observation" => json!({
                    "connection": "bench",
                    "prompt": "Question: {{input}}\nAnswer: {{output}}\nHow helpful is the answer, from 0 to 1?",
                    "output": {"type": "numeric", "min": 0, "max": 1},
                    "filter": {"type": ["generation"]},
                }),
                whole => json!({
                    "connection": "bench", "target": whole, "quiet_seconds": 0,
                    "prompt": "Task: {{input}}\nResult: {{output}}\nHow helpful was the agent, from 0 to 1?",
                    "output": {"type": "numeric", "min": 0, "max": 1},
                }),
            },
            schedule: None,
        },
    )
    .await?;
    let setup = Setup {
        sealer: Some(sealer.clone()),
        client: ModelClient::new(true),
    };

    // The baseline: bare calls at the same concurrency.
    let callable = Arc::new(connections::callable(&pg, Some(&sealer), project, "bench").await?);
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize));
    let mut bare = tokio::task::JoinSet::new();
    for _ in 0..args.targets {
        let (callable, client, slots) = (callable.clone(), setup.client.clone(), slots.clone());
        bare.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("open semaphore");
            let schema = json!({"type": "object"});
            let request = JudgeRequest {
                model: "bench-judge",
                system: None,
                prompt: "Question: …",
                schema: &schema,
                temperature: None,
                max_tokens: 64,
            };
            provider::call(&client, &callable.endpoint, &request)
                .await
                .is_ok()
        });
    }
    let mut bare_ok = 0u64;
    while let Some(done) = bare.join_next().await {
        bare_ok += u64::from(done?);
    }
    let baseline = started.elapsed();
    ensure!(
        bare_ok == args.targets,
        "{bare_ok} of {} bare calls answered",
        args.targets
    );

    // The targets arrive: generations with a question and an answer, inserted server-side.
    let before = database.clock().await.map_err(anyhow::Error::msg)?;
    database.wait_past(before).await.map_err(anyhow::Error::msg)?;
    let half = args.targets / 2;
    insert_targets(&database, project, &args.target, 0, half).await?;
    let arrived = database.clock().await.map_err(anyhow::Error::msg)?;
    database.wait_past(arrived).await.map_err(anyhow::Error::msg)?;

    // First pass: half the targets, run to the end.
    let calls_before = calls.load(Ordering::Relaxed);
    let cpu_before = scheduler_cpu();
    let started = Instant::now();
    let first = judge::run_in(&pg, &database, &setup, Some(before * 1_000_000), Some(project))
        .await
        .map_err(anyhow::Error::msg)?;
    let first_time = started.elapsed();
    let first_cpu = scheduler_cpu() - cpu_before;
    ensure!(
        first.judged == half,
        "the first pass judged {} of {half}",
        first.judged
    );

    // The other half arrives; a pass starts on it and is killed halfway through.
    let watermark = first.watermark;
    insert_targets(&database, project, &args.target, half, args.targets - half).await?;
    let arrived = database.clock().await.map_err(anyhow::Error::msg)?;
    database.wait_past(arrived).await.map_err(anyhow::Error::msg)?;
    let calls_at_kill_start = calls.load(Ordering::Relaxed);
    let killed_after = first_time.mul_f64(0.5);
    let killed = tokio::time::timeout(
        killed_after,
        judge::run_in(&pg, &database, &setup, watermark, Some(project)),
    )
    .await;
    ensure!(
        killed.is_err(),
        "the second pass finished before it could be killed; raise --targets"
    );
    // The crashed run's leases expire (as LEASE would), and its discovery is redone.
    pg.execute(
        "UPDATE judgments SET lease_until = now() - interval '1 second' WHERE status IN ('calling', 'answered')",
        &[],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before = scheduler_cpu();
    let started = Instant::now();
    let finished = judge::run_in(&pg, &database, &setup, watermark, Some(project))
        .await
        .map_err(anyhow::Error::msg)?;
    let second_time = started.elapsed();
    let second_cpu = scheduler_cpu() - cpu_before;
    let second_calls = calls.load(Ordering::Relaxed) - calls_at_kill_start;
    let first_calls = calls_at_kill_start - calls_before;

    let scored_target = match args.target.as_str() {
        "observation" => "observation_id",
        "trace" => "trace_id",
        _ => "metadata_values[indexOf(metadata_keys, 'session_id')]",
    };
    let scores = database
        .query_text(&format!(
            "SELECT count(), uniqExact({scored_target}) FROM scores FINAL WHERE project_id = {} \
             AND name = 'helpfulness' AND source = 'eval' FORMAT TabSeparated",
            quote(&project.to_string())
        ))
        .await?;
    let (scored, distinct) = scores.trim().split_once('\t').unwrap_or_default();
    let (scored, distinct): (u64, u64) = (scored.parse()?, distinct.parse()?);
    let ledger = pg
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'done') AS done, coalesce(sum(cost_usd), 0)::float8 AS spent
             FROM judgments WHERE project_id = $1",
            &[&project],
        )
        .await?;
    let done: i64 = ledger.get("done");
    let spent: f64 = ledger.get("spent");
    let expected_spend = args.targets as f64 * (TOKENS.0 as f64 * PRICE.0 + TOKENS.1 as f64 * PRICE.1) / 1e6;
    settle(&databases.clickhouse(), &database).await?;

    let judged_time = first_time + second_time;
    let rate = |n: u64, time: Duration| n as f64 / time.as_secs_f64();
    writeln!(
        out,
        "bench judge: {} {} targets, model answering in {} ms, {} calls at once",
        args.targets, args.target, args.latency_ms, args.concurrency
    )?;
    writeln!(
        out,
        "  baseline (bare calls)            {:>8.0} calls/s",
        rate(args.targets, baseline)
    )?;
    writeln!(
        out,
        "  first pass                       {:>8.0} judgments/s  {:>6.0} µs scheduler CPU each",
        rate(half, first_time),
        first_cpu.as_secs_f64() * 1e6 / half as f64
    )?;
    writeln!(
        out,
        "  pass after a kill                {:>8.0} judgments/s  {:>6.0} µs scheduler CPU each ({} judged)",
        rate(finished.judged, second_time),
        second_cpu.as_secs_f64() * 1e6 / finished.judged.max(1) as f64,
        finished.judged
    )?;
    writeln!(
        out,
        "  judgments/s ÷ baseline calls/s = {:.2} (first pass)",
        rate(half, first_time) / rate(args.targets, baseline)
    )?;
    writeln!(
        out,
        "  exactly once: {scored} scores for {distinct} targets of {}, {done} ledger rows done; \
         {} calls made for {} targets ({} paid twice, all in flight at the kill)",
        args.targets,
        first_calls + second_calls,
        args.targets,
        (first_calls + second_calls).saturating_sub(args.targets)
    )?;
    writeln!(
        out,
        "  spend accounted ${spent:.6} vs ${expected_spend:.6} from the price table for the reported tokens \
         (the ledger prices what it kept; {} s total judging)",
        judged_time.as_secs()
    )?;
    ensure!(
        scored == args.targets && distinct == args.targets && done as u64 == args.targets,
        "not exactly one score per target"
    );
    Ok(())
}

/// `count` targets of the kind numbered from `first`, inserted server-side: generations; or
/// traces (a trace row and three generations each); or sessions (ten traces of one generation).
async fn insert_targets(
    database: &ClickHouse,
    project: uuid::Uuid,
    target: &str,
    first: u64,
    count: u64,
) -> anyhow::Result<()> {
    let (traces_per_target, generations_per_trace) = match target {
        "observation" => return insert_generations(database, project, first, count, 10).await,
        "trace" => (1, 3),
        _ => (10, 1),
    };
    let quoted = quote(&project.to_string());
    let (first_trace, traces) = (first * traces_per_target, count * traces_per_target);
    database
        .execute(&format!(
            "INSERT INTO traces (project_id, id, timestamp_us, name, session_id, environment, tags, input, output, \
             metadata_keys, metadata_values, event_id, version) \
             SELECT {quoted}, concat('trace-', toString(number)), toInt64(toUInt64(now()) * 1000000 + number), 'task', \
             concat('session-', toString(intDiv(number, {traces_per_target}))), 'default', [], \
             concat('\"Rename module ', toString(number), '\"'), '\"Renamed it and updated 3 imports.\"', [], [], \
             concat('t-', toString(number)), 1 FROM numbers({first_trace}, {traces})"
        ))
        .await?;
    insert_generations(
        database,
        project,
        first_trace * generations_per_trace,
        traces * generations_per_trace,
        generations_per_trace,
    )
    .await?;
    Ok(())
}

/// `count` generations numbered from `first` (`per_trace` to a trace), inserted server-side.
async fn insert_generations(
    database: &ClickHouse,
    project: uuid::Uuid,
    first: u64,
    count: u64,
    per_trace: u64,
) -> anyhow::Result<()> {
    let project = quote(&project.to_string());
    database
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, level, input, output, \
             metadata_keys, metadata_values, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             cost_source, event_id, version) \
             SELECT {project}, concat('gen-', toString(number)), concat('trace-', toString(intDiv(number, {per_trace}))), \
             'generation', 'llm', toInt64(toUInt64(now()) * 1000000 + number), 'default', \
             concat('{{\"question\":\"What does change ', toString(number), ' do?\"}}'), \
             '{{\"role\":\"assistant\",\"content\":\"It renames the module and updates 3 imports.\"}}', [], [], \
             100, 20, 0, 0, '', concat('e-', toString(number)), 1 FROM numbers({first}, {count})"
        ))
        .await?;
    Ok(())
}
