//! The `judge` job: LLM judges (`llm_judge` evaluators) score observations, whole traces,
//! sessions and experiment runs by asking a model.
//!
//! A run has two halves:
//!
//! 1. **Find** what is new ([`discover`]): what arrived since the job's watermark, through the
//!    ingest indexes (`observations_by_ingest`, `traces_by_ingest`), so a run reads what is new
//!    and not what is stored. Each judge's filter and sample pick its targets; each becomes a
//!    row of the `judgments` ledger (evaluator, target, target version), inserted once whatever
//!    happens; a whole target's row is due once the target has been quiet a while.
//! 2. **Judge** what is due: ledger rows are claimed with a lease, the target's fields are read
//!    and rendered into the prompt, and the model is called, a connection's `concurrency` calls
//!    at a time, each judge within its daily spend cap and calls per minute. The answer is kept
//!    in the ledger the moment it arrives (`answered`), then written to ClickHouse as a score
//!    (reasoning as its comment) beside the judge's own trace (its prompt, answer, model,
//!    tokens and cost, in environment `agenttrace-judge`), then the row is `done`. A crash
//!    after the answer re-writes it without calling again; a crash during a call leaves a lease
//!    that expires, and the call is made again: the only way a judgment is paid twice, bounded
//!    by the calls in flight at the crash.
//!
//! Rate limits and overload (`retry-after` honoured) put a row back with a backoff; a refused
//! key, a missing connection or an empty account blocks the judge with the reason; an answer
//! that does not fill the schema fails the row with the reason. Nothing is skipped silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::control::connections::{self, Callable};
use agenttrace_etl::control::sealing::Sealer;
use agenttrace_etl::ingest::direct;
use agenttrace_etl::ingest::pricing::PriceTable;
use agenttrace_etl::judge::provider::{self, CallError, JudgeRequest, ModelClient};
use agenttrace_etl::judge::targets::{Fields, observation_fields, session_fields, trace_fields};
use agenttrace_etl::judge::template::{JudgeConfig, ScoreOf, Target};
use agenttrace_schemas::event::{Cost, Usage};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_postgres::Client;
use uuid::Uuid;

mod discover;

pub use agenttrace_etl::judge::JUDGE_ENVIRONMENT;
use agenttrace_etl::judge::{JUDGE_CALL_NAME, JUDGE_TRACE_PREFIX};
/// The metadata key that marks a judge's own observation (and names its evaluator).
pub const JUDGE_MARK: &str = "agenttrace.judge";
/// Ledger rows claimed at a time.
const CLAIM_ROWS: i64 = 1000;
/// How long a claim holds a row before another run may take it.
const LEASE: Duration = Duration::from_secs(300);
/// How long one run keeps judging before it leaves the rest to the next.
const RUN_BUDGET: Duration = Duration::from_secs(240);
/// Output tokens a judgment may use.
const MAX_TOKENS: u32 = 1024;

/// What a judge run needs beyond the databases: the key that opens provider keys, and the
/// client that calls providers.
#[derive(Clone)]
pub struct Setup {
    pub sealer: Option<Sealer>,
    pub client: ModelClient,
}

impl Setup {
    /// From `AGENTTRACE_ENCRYPTION_KEY` and `AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS`, as `serve` has them.
    pub fn from_env() -> Result<Setup, String> {
        let allow_private = std::env::var(provider::ALLOW_PRIVATE_VARIABLE)
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"));
        Ok(Setup {
            sealer: Sealer::from_env().map_err(|e| e.to_string())?,
            client: ModelClient::new(allow_private),
        })
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct JudgeReport {
    /// Observation versions and touched traces looked at, and targets added to the ledger.
    pub seen: u64,
    pub queued: u64,
    /// Calls made, judgments written, rows put back for later, rows failed.
    pub calls: u64,
    pub judged: u64,
    pub retried: u64,
    pub failed: u64,
    pub spend_usd: f64,
    /// Judges stopped this run: (project id, "judge NAME: why"), as run problems are kept.
    pub blocked: Vec<(String, String)>,
    pub watermark: Option<i64>,
}

/// One active judge.
struct Judge {
    id: Uuid,
    project_id: Uuid,
    name: String,
    config: JudgeConfig,
}

/// Runs the judges: finds what arrived after `watermark` (µs) and judges what is due.
pub async fn run(
    pg: &Client,
    clickhouse: &ClickHouse,
    setup: &Setup,
    watermark: Option<i64>,
) -> Result<JudgeReport, String> {
    run_in(pg, clickhouse, setup, watermark, None).await
}

/// [`run`] for one project's judges only (`None`: every project's), as a benchmark running
/// beside other projects needs.
pub async fn run_in(
    pg: &Client,
    clickhouse: &ClickHouse,
    setup: &Setup,
    watermark: Option<i64>,
    project: Option<Uuid>,
) -> Result<JudgeReport, String> {
    let postgres = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    // A pause whose time has passed (a new day's budget) is lifted.
    pg.execute(
        "UPDATE evaluators SET paused_until = NULL, blocked_reason = NULL
         WHERE kind = 'llm_judge' AND paused_until <= now()",
        &[],
    )
    .await
    .map_err(postgres)?;
    let rows = pg
        .query(
            "SELECT id, project_id, name, config FROM evaluators
             WHERE kind = 'llm_judge' AND active AND blocked_reason IS NULL AND ($1::uuid IS NULL OR project_id = $1)
             ORDER BY project_id, name",
            &[&project],
        )
        .await
        .map_err(postgres)?;
    let mut report = JudgeReport {
        watermark,
        ..JudgeReport::default()
    };
    let mut judges = Vec::new();
    for row in &rows {
        let id: Uuid = row.get("id");
        let name: String = row.get("name");
        match JudgeConfig::parse(&row.get::<_, Value>("config")) {
            Ok(config) => judges.push(Judge {
                id,
                project_id: row.get("project_id"),
                name,
                config,
            }),
            Err(error) => {
                block(pg, id, &error.to_string()).await?;
                let project: Uuid = row.get("project_id");
                report
                    .blocked
                    .push((project.to_string(), format!("judge {name}: {error}")));
            }
        }
    }
    discover::discover(pg, clickhouse, &judges, &mut report).await?;
    discover::backfills(pg, clickhouse, &judges, &mut report).await?;
    judge_due(pg, clickhouse, setup, &judges, &mut report).await?;
    Ok(report)
}

/// Stops a judge until a person acts (a refused key, a missing connection or model): blocked
/// with the reason, reported, and the claimed row put back without counting a try.
async fn stop_judge(
    pg: &Client,
    judge: &Judge,
    row: &Claimed,
    reason: &str,
    report: &mut JudgeReport,
    stopped: &mut HashMap<Uuid, String>,
) -> Result<(), String> {
    block(pg, judge.id, reason).await?;
    report.blocked.push((
        judge.project_id.to_string(),
        format!("judge {}: {}", judge.name, reason),
    ));
    release(pg, row, None, reason, false).await?;
    stopped.insert(judge.id, reason.to_owned());
    Ok(())
}

async fn block(pg: &Client, evaluator: Uuid, reason: &str) -> Result<(), String> {
    pg.execute(
        "UPDATE evaluators SET blocked_reason = $2 WHERE id = $1",
        &[&evaluator, &reason],
    )
    .await
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(())
}

/// A connection opened for a run, with its slots for calls at once.
type Opened = (Arc<Callable>, Arc<Semaphore>);

/// A claimed ledger row.
struct Claimed {
    evaluator_id: Uuid,
    target: Target,
    target_id: String,
    target_version: i64,
    project_id: Uuid,
    trace_id: String,
    attempts: i32,
    status: String,
    prompt: Option<String>,
    system: Option<String>,
    answer: Option<Value>,
}

/// What became of one row.
enum Outcome {
    /// The model answered; the answer is in the ledger, the score not yet written.
    Answered(Answered),
    Retry {
        after: Duration,
        error: String,
    },
    Blocked(String),
    Failed(String),
}

#[derive(Clone)]
struct Answered {
    score: ScoreOf,
    reasoning: String,
    model: String,
    usage: Usage,
    /// Priced from the price table, when the model has a price.
    cost: Option<Cost>,
    latency: Duration,
    called_at: DateTime<Utc>,
}

async fn judge_due(
    pg: &Client,
    clickhouse: &ClickHouse,
    setup: &Setup,
    judges: &[Judge],
    report: &mut JudgeReport,
) -> Result<(), String> {
    let postgres = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    let started = Instant::now();
    let prices = Arc::new(PriceTable::load(pg).await.map_err(postgres)?);
    let judges: HashMap<Uuid, &Judge> = judges.iter().map(|j| (j.id, j)).collect();
    if judges.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = judges.keys().copied().collect();
    // Connections opened once per run, with their concurrency.
    let mut opened: HashMap<(Uuid, String), Result<Opened, String>> = HashMap::new();
    let mut stopped: HashMap<Uuid, String> = HashMap::new();
    while started.elapsed() < RUN_BUDGET {
        let claimed = claim(pg, &ids, &stopped).await?;
        if claimed.is_empty() {
            break;
        }
        // Rows answered before a crash: only their score is left to write.
        let mut to_write: Vec<(Claimed, Answered)> = Vec::new();
        let mut calls = tokio::task::JoinSet::new();
        let contents = contents(pg, clickhouse, &claimed).await?;
        // Calls each judge may still make this round (None: no limit), computed once per round.
        let mut allowances: HashMap<Uuid, Option<u64>> = HashMap::new();
        for row in claimed {
            let judge = judges[&row.evaluator_id];
            if let Some(reason) = stopped.get(&judge.id) {
                release(pg, &row, None, reason, false).await?;
                continue;
            }
            if row.status == "answered" {
                match recover_answer(judge, &row) {
                    Some(answered) => to_write.push((row, answered)),
                    None => finish_failed(pg, &row, "the kept answer could not be read").await?,
                }
                continue;
            }
            // The judge's limits, checked before its calls: a round makes no more calls than
            // its remaining budget pays for at today's cost per call (one while that is unknown).
            let allowance = match allowances.get(&judge.id) {
                Some(allowance) => Ok(*allowance),
                None => allowance(pg, judge).await?,
            };
            match allowance {
                Ok(Some(0)) => {
                    release(
                        pg,
                        &row,
                        None,
                        "waiting for the judge's earlier calls to be priced",
                        false,
                    )
                    .await?;
                    continue;
                }
                Ok(left) => {
                    allowances.insert(judge.id, left.map(|n| n - 1));
                }
                Err(limit) => match limit {
                    Limit::Budget(reason, until) => {
                        pg.execute(
                            "UPDATE evaluators SET blocked_reason = $2, paused_until = $3 WHERE id = $1",
                            &[&judge.id, &reason, &until],
                        )
                        .await
                        .map_err(postgres)?;
                        report.blocked.push((
                            judge.project_id.to_string(),
                            format!("judge {}: {}", judge.name, reason),
                        ));
                        // The judge is paused, not the row: it is due again whenever the judge runs.
                        release(pg, &row, None, &reason, false).await?;
                        stopped.insert(judge.id, reason);
                    }
                    Limit::Rate(reason) => {
                        release(
                            pg,
                            &row,
                            Some(Utc::now() + chrono::Duration::seconds(60)),
                            &reason,
                            false,
                        )
                        .await?;
                        stopped.insert(judge.id, reason);
                    }
                    Limit::Blocked(reason) => {
                        stop_judge(pg, judge, &row, &reason, report, &mut stopped).await?;
                    }
                },
            }
            if stopped.contains_key(&judge.id) {
                continue;
            }
            let key = (judge.project_id, judge.config.connection.clone());
            if !opened.contains_key(&key) {
                let callable = connections::callable(pg, setup.sealer.as_ref(), key.0, &key.1)
                    .await
                    .map(|callable| {
                        let slots = Arc::new(Semaphore::new(callable.connection.concurrency().max(1)));
                        (Arc::new(callable), slots)
                    })
                    .map_err(|e| format!("its connection {:?}: {e}", key.1));
                opened.insert(key.clone(), callable);
            }
            let (callable, slots) = match &opened[&key] {
                Ok(pair) => pair.clone(),
                Err(reason) => {
                    stop_judge(pg, judge, &row, reason, report, &mut stopped).await?;
                    continue;
                }
            };
            let Some(model) = judge
                .config
                .model
                .clone()
                .or_else(|| callable.connection.default_model().map(str::to_owned))
            else {
                let reason = format!(
                    "no model: set config.model, or config.model of connection {:?}",
                    judge.config.connection
                );
                stop_judge(pg, judge, &row, &reason, report, &mut stopped).await?;
                continue;
            };
            let kind = row.target.fields_kind();
            let fields = contents.get(&(row.project_id, kind, row.target_id.clone()));
            let field = |name: &str| fields.and_then(|f| f.get(name)).cloned();
            let prompt = judge.config.render(field);
            let system = judge.config.render_system(field);
            // Kept with the answer (one write per judgment); `called_at` was set by the claim.
            let mut row = row;
            row.prompt = Some(prompt.clone());
            row.system = system.clone();
            report.calls += 1;
            let config = judge.config.clone();
            let client = setup.client.clone();
            let prices = prices.clone();
            calls.spawn(async move {
                let _slot = slots
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let schema = config.answer_schema();
                let request = JudgeRequest {
                    model: &model,
                    system: system.as_deref(),
                    prompt: &prompt,
                    schema: &schema,
                    temperature: callable.connection.config["temperature"].as_f64(),
                    max_tokens: callable.connection.config["maxTokens"]
                        .as_u64()
                        .map_or(MAX_TOKENS, |t| t as u32),
                };
                let called_at = Utc::now();
                let outcome = match provider::call(&client, &callable.endpoint, &request).await {
                    Ok(reply) => match config.read_answer(&reply.answer) {
                        Ok((score, reasoning)) => {
                            let usage = reply.usage.to_event();
                            let cost = prices.cost(
                                row.project_id,
                                called_at.timestamp_micros(),
                                &reply.model,
                                &usage,
                            );
                            Outcome::Answered(Answered {
                                score,
                                reasoning,
                                model: reply.model,
                                usage,
                                cost,
                                latency: reply.latency,
                                called_at,
                            })
                        }
                        Err(problem) => {
                            Outcome::Failed(format!("the answer does not fill the schema: {problem}"))
                        }
                    },
                    Err(CallError::Retry { after, message, .. }) => Outcome::Retry {
                        after: after.unwrap_or_default(),
                        error: message,
                    },
                    Err(CallError::Blocked { message, .. }) => Outcome::Blocked(message),
                    Err(CallError::Invalid { message }) => Outcome::Failed(message),
                };
                (row, outcome)
            });
            // Answers are kept as they arrive, not after the round: a crash loses only the
            // calls in flight.
            while let Some(done) = calls.try_join_next() {
                settle(pg, &judges, done, report, &mut to_write, &mut stopped).await?;
            }
        }
        while let Some(done) = calls.join_next().await {
            settle(pg, &judges, done, report, &mut to_write, &mut stopped).await?;
        }
        report.judged += write_scores(pg, clickhouse, &judges, to_write).await?;
    }
    report.blocked.sort();
    report.blocked.dedup();
    Ok(())
}

/// Records what became of a called row: its answer kept (to be written), put back for a later
/// try, its judge stopped, or failed with the reason.
async fn settle(
    pg: &Client,
    judges: &HashMap<Uuid, &Judge>,
    done: Result<(Claimed, Outcome), tokio::task::JoinError>,
    report: &mut JudgeReport,
    to_write: &mut Vec<(Claimed, Answered)>,
    stopped: &mut HashMap<Uuid, String>,
) -> Result<(), String> {
    let (row, outcome) = done.map_err(|e| format!("a judge call panicked: {e}"))?;
    let judge = judges[&row.evaluator_id];
    match outcome {
        Outcome::Answered(answered) => {
            keep_answer(pg, &row, &answered).await?;
            report.spend_usd += answered.cost.and_then(|c| c.total).unwrap_or(0.0);
            to_write.push((row, answered));
        }
        Outcome::Retry { after, error } => {
            if row.attempts >= judge.config.max_attempts as i32 {
                finish_failed(
                    pg,
                    &row,
                    &format!("gave up after {} tries: {error}", row.attempts),
                )
                .await?;
                report.failed += 1;
            } else {
                // Exponential backoff from 5 s, or longer when the provider says so.
                let backoff =
                    Duration::from_secs(5u64 << row.attempts.clamp(0, 10)).min(provider::MAX_RETRY_AFTER);
                let wait = backoff.max(after);
                let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                release(pg, &row, Some(at), &error, true).await?;
                report.retried += 1;
            }
        }
        Outcome::Blocked(reason) => {
            // Not this target's fault: the row waits, the judge stops until a person acts.
            stop_judge(pg, judge, &row, &reason, report, stopped).await?;
        }
        Outcome::Failed(reason) => {
            finish_failed(pg, &row, &reason).await?;
            report.failed += 1;
        }
    }
    Ok(())
}

enum Limit {
    /// The day's spend reached the cap: paused until the next day (UTC).
    Budget(String, DateTime<Utc>),
    /// Too many calls in the last minute.
    Rate(String),
    /// Cannot be kept at all until a person acts.
    Blocked(String),
}

/// How many calls a judge may make now (`Ok(None)`: no limit), or the limit it reached.
async fn allowance(pg: &Client, judge: &Judge) -> Result<Result<Option<u64>, Limit>, String> {
    let postgres = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    let mut allowed: Option<u64> = None;
    if let Some(cap) = judge.config.daily_budget_usd {
        let today = pg
            .query_one(
                "SELECT coalesce(sum(cost_usd), 0)::float8 AS spent, count(cost_usd) AS priced,
                    count(*) FILTER (WHERE model IS NOT NULL) AS answered FROM judgments
                 WHERE evaluator_id = $1 AND called_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
                &[&judge.id],
            )
            .await
            .map_err(postgres)?;
        let spent: f64 = today.get("spent");
        let priced: i64 = today.get("priced");
        let answered: i64 = today.get("answered");
        if answered > 0 && priced == 0 {
            // A cap cannot be kept on calls that have no price.
            return Ok(Err(Limit::Blocked(
                "a daily spend cap needs the judge model's price: add one (agenttrace price set, or PUT .../prices)".into(),
            )));
        }
        if spent >= cap {
            let tomorrow = (Utc::now() + chrono::Duration::days(1))
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc();
            return Ok(Err(Limit::Budget(
                format!(
                    "the daily spend cap of ${cap} is reached (${spent:.6} today); judging resumes at {tomorrow}"
                ),
                tomorrow,
            )));
        }
        // What the rest of the budget pays for at today's mean cost per call; one call at a
        // time until a call has been priced.
        let per_call = if priced > 0 { spent / priced as f64 } else { 0.0 };
        allowed = Some(if per_call > 0.0 {
            (((cap - spent) / per_call).floor() as u64).max(1)
        } else if priced > 0 {
            u64::MAX
        } else {
            1
        });
    }
    if let Some(per_minute) = judge.config.calls_per_minute {
        let recent: i64 = pg
            .query_one(
                "SELECT count(*) FROM judgments WHERE evaluator_id = $1 AND called_at > now() - interval '1 minute'",
                &[&judge.id],
            )
            .await
            .map_err(postgres)?
            .get(0);
        if recent >= i64::from(per_minute) {
            return Ok(Err(Limit::Rate(format!(
                "{per_minute} calls per minute reached; the rest wait for the next run"
            ))));
        }
        let left = (i64::from(per_minute) - recent) as u64;
        allowed = Some(allowed.map_or(left, |a| a.min(left)));
    }
    Ok(Ok(allowed))
}

/// Claims due rows of these judges: pending ones whose time has come, answered ones whose
/// score is not written, and calls whose lease expired (their run died).
async fn claim(
    pg: &Client,
    judges: &[Uuid],
    stopped: &HashMap<Uuid, String>,
) -> Result<Vec<Claimed>, String> {
    let active: Vec<Uuid> = judges
        .iter()
        .filter(|j| !stopped.contains_key(j))
        .copied()
        .collect();
    if active.is_empty() {
        return Ok(Vec::new());
    }
    let lease = LEASE.as_secs_f64();
    let rows = pg
        .query(
            "UPDATE judgments j SET
                status = CASE WHEN j.status = 'answered' THEN 'answered' ELSE 'calling' END,
                attempts = j.attempts + CASE WHEN j.status = 'answered' THEN 0 ELSE 1 END,
                called_at = CASE WHEN j.status = 'answered' THEN j.called_at ELSE now() END,
                lease_until = now() + make_interval(secs => $3)
             FROM (SELECT evaluator_id, target_kind, target_id, target_version FROM judgments
                   WHERE evaluator_id = ANY($1) AND next_attempt_at <= now()
                     AND (status = 'pending' OR (status IN ('calling', 'answered') AND coalesce(lease_until, now()) <= now()))
                   ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
             WHERE (j.evaluator_id, j.target_kind, j.target_id, j.target_version)
                 = (due.evaluator_id, due.target_kind, due.target_id, due.target_version)
             RETURNING j.evaluator_id, j.target_kind, j.target_id, j.target_version, j.project_id, j.trace_id,
                 j.attempts, j.status, j.prompt, j.system_prompt, j.answer",
            &[&active, &CLAIM_ROWS, &lease],
        )
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(rows
        .iter()
        .map(|row| Claimed {
            evaluator_id: row.get("evaluator_id"),
            target: Target::of_kind(row.get("target_kind")).unwrap_or(Target::Observation),
            target_id: row.get("target_id"),
            target_version: row.get("target_version"),
            project_id: row.get("project_id"),
            trace_id: row.get("trace_id"),
            attempts: row.get("attempts"),
            status: row.get("status"),
            prompt: row.get("prompt"),
            system: row.get("system_prompt"),
            answer: row.get("answer"),
        })
        .collect())
}

const WHERE_ROW: &str = "evaluator_id = $1 AND target_kind = $2 AND target_id = $3 AND target_version = $4";

/// Puts a claimed row back (due at `at`, else now), with why. A row put back without being
/// called does not count the claim as a try.
async fn release(
    pg: &Client,
    row: &Claimed,
    at: Option<DateTime<Utc>>,
    why: &str,
    called: bool,
) -> Result<(), String> {
    pg.execute(
        &format!(
            "UPDATE judgments SET status = 'pending', lease_until = NULL, error = $5,
                next_attempt_at = coalesce($6, now()),
                attempts = CASE WHEN $7 THEN attempts ELSE greatest(attempts - 1, 0) END,
                called_at = CASE WHEN $7 THEN called_at ELSE NULL END
             WHERE {WHERE_ROW}"
        ),
        &[
            &row.evaluator_id,
            &row.target.kind(),
            &row.target_id,
            &row.target_version,
            &why,
            &at,
            &called,
        ],
    )
    .await
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(())
}

async fn finish_failed(pg: &Client, row: &Claimed, why: &str) -> Result<(), String> {
    pg.execute(
        &format!(
            "UPDATE judgments SET status = 'failed', lease_until = NULL, error = $5, finished_at = now()
             WHERE {WHERE_ROW}"
        ),
        &[
            &row.evaluator_id,
            &row.target.kind(),
            &row.target_id,
            &row.target_version,
            &why,
        ],
    )
    .await
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(())
}

/// Keeps the answer the moment it arrives: a crash from here on writes it without calling again.
async fn keep_answer(pg: &Client, row: &Claimed, answered: &Answered) -> Result<(), String> {
    let answer = json!({
        "score": answered.score.as_json(),
        "reasoning": answered.reasoning,
        "usage": {
            "input": answered.usage.input_tokens,
            "output": answered.usage.output_tokens,
            "cache_read": answered.usage.cache_read_input_tokens,
            "cache_write": answered.usage.cache_creation_input_tokens,
        },
        "called_at": answered.called_at.to_rfc3339(),
    });
    pg.execute(
        &format!(
            "UPDATE judgments SET status = 'answered', error = NULL, answer = $5, model = $6, input_tokens = $7,
                output_tokens = $8, cost_usd = $9, latency_ms = $10, prompt = $11, system_prompt = $12
             WHERE {WHERE_ROW}"
        ),
        &[
            &row.evaluator_id,
            &row.target.kind(),
            &row.target_id,
            &row.target_version,
            &answer,
            &answered.model,
            &(answered.usage.input_tokens as i64),
            &(answered.usage.output_tokens as i64),
            &answered.cost.and_then(|c| c.total),
            &(answered.latency.as_millis() as i64),
            &row.prompt,
            &row.system,
        ],
    )
    .await
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(())
}

/// An answer kept before a crash, read back.
fn recover_answer(judge: &Judge, row: &Claimed) -> Option<Answered> {
    let answer = row.answer.as_ref()?;
    let (score, reasoning) = judge.config.read_answer(answer).ok()?;
    let usage = &answer["usage"];
    Some(Answered {
        score,
        reasoning,
        model: String::new(),
        usage: Usage {
            input_tokens: usage["input"].as_u64().unwrap_or(0),
            output_tokens: usage["output"].as_u64().unwrap_or(0),
            cache_read_input_tokens: usage["cache_read"].as_u64().unwrap_or(0),
            cache_creation_input_tokens: usage["cache_write"].as_u64().unwrap_or(0),
        },
        cost: None,
        latency: Duration::ZERO,
        called_at: answer["called_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
    })
}

/// The fields prompts read, of the claimed targets, by (project, kind, target id): an
/// observation's, a whole trace's (an experiment run's too) or a session's, with the expected
/// output of the dataset item a trace ran, when there is one.
async fn contents(
    pg: &Client,
    clickhouse: &ClickHouse,
    claimed: &[Claimed],
) -> Result<HashMap<(Uuid, &'static str, String), Fields>, String> {
    let mut wanted: BTreeMap<(Uuid, &'static str), Vec<&Claimed>> = BTreeMap::new();
    for row in claimed.iter().filter(|row| row.status != "answered") {
        let kind = row.target.fields_kind();
        wanted.entry((row.project_id, kind)).or_default().push(row);
    }
    let mut out = HashMap::new();
    for ((project, kind), rows) in wanted {
        let found = match Target::of_kind(kind) {
            Some(Target::Observation) => {
                let keys: Vec<(&str, &str)> = rows
                    .iter()
                    .map(|row| (row.trace_id.as_str(), row.target_id.as_str()))
                    .collect();
                observation_fields(pg, clickhouse, project, &keys).await?
            }
            Some(Target::Session) => {
                let ids: Vec<&str> = rows.iter().map(|row| row.target_id.as_str()).collect();
                session_fields(pg, clickhouse, project, &ids).await?
            }
            _ => {
                let ids: Vec<&str> = rows.iter().map(|row| row.target_id.as_str()).collect();
                trace_fields(pg, clickhouse, project, &ids).await?
            }
        };
        for (id, fields) in found {
            out.insert((project, kind, id), fields);
        }
    }
    Ok(out)
}

/// 32 hex characters naming a judgment: its judge trace's id.
fn judgment_id(row: &Claimed) -> String {
    let target = match row.target {
        Target::Observation => row.target_id.clone(),
        other => format!("{}:{}", other.kind(), row.target_id),
    };
    let digest = Sha256::digest(format!("{}:{target}:{}", row.evaluator_id, row.target_version).as_bytes());
    hex::encode(&digest[..16])
}

/// The score a judge gives a target: one per judge and target, whatever its version.
fn score_id(judge: Uuid, row: &Claimed) -> String {
    match row.target {
        Target::Observation => format!("judge:{judge}:{}", row.target_id),
        other => format!("judge:{judge}:{}:{}", other.kind(), row.target_id),
    }
}

/// What the score says of where it came from: the judge's trace, the model and, for a
/// session, the session (the score hangs on its first trace).
fn score_metadata(judge_trace: &str, model: &str, row: &Claimed) -> Value {
    let mut metadata = json!({"judge_trace_id": judge_trace, "model": model});
    if row.target == Target::Session {
        metadata["session_id"] = json!(row.target_id);
    }
    metadata
}

/// The judge's own trace names its judge and its target.
fn judge_trace_metadata(judge: Uuid, row: &Claimed) -> Value {
    let mut metadata = json!({
        JUDGE_MARK: judge.to_string(), "target_kind": row.target.kind(), "target_id": row.target_id,
        "target_trace_id": row.trace_id,
    });
    if row.target == Target::Observation {
        metadata["target_observation_id"] = json!(row.target_id);
    }
    metadata
}

/// Writes each answered row's score and judge trace to ClickHouse, then marks the rows done.
/// Returns how many.
async fn write_scores(
    pg: &Client,
    clickhouse: &ClickHouse,
    judges: &HashMap<Uuid, &Judge>,
    answered: Vec<(Claimed, Answered)>,
) -> Result<u64, String> {
    let mut by_project: BTreeMap<Uuid, Vec<(Claimed, Answered)>> = BTreeMap::new();
    for (row, answer) in answered {
        by_project.entry(row.project_id).or_default().push((row, answer));
    }
    let mut written = 0;
    for (project, rows) in by_project {
        let name: String = pg
            .query_opt("SELECT name FROM projects WHERE id = $1", &[&project])
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?
            .map(|row| row.get(0))
            .unwrap_or_default();
        let mut texts = Vec::new();
        for (row, answered) in &rows {
            let judge = judges[&row.evaluator_id];
            let judge_trace = format!("{JUDGE_TRACE_PREFIX}{}", judgment_id(row));
            let started = answered.called_at;
            let ended = started + chrono::Duration::from_std(answered.latency).unwrap_or_default();
            let at = |time: DateTime<Utc>| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let score_name = judge
                .config
                .score_name
                .clone()
                .unwrap_or_else(|| judge.name.clone());
            let mark = json!({JUDGE_MARK: judge.id.to_string()});
            let answer = json!({"score": answered.score.as_json(), "reasoning": answered.reasoning});
            // What the model was sent: the prompt, or the messages when there is a system one.
            let asked = match &row.system {
                Some(system) => {
                    json!([{"role": "system", "content": system}, {"role": "user", "content": row.prompt}])
                }
                None => json!(row.prompt),
            };
            texts.push((
                json!({"id": format!("{judge_trace}-trace"), "type": "trace", "timestamp": at(started), "body": {
                    "id": judge_trace, "timestamp": at(started), "name": format!("Judge: {}", judge.name),
                    "environment": JUDGE_ENVIRONMENT, "input": asked, "output": answer,
                    "metadata": judge_trace_metadata(judge.id, row),
                }})
                .to_string(),
                None,
            ));
            let mut generation = json!({
                "id": format!("{judge_trace}-call"), "trace_id": judge_trace, "type": "generation",
                "name": JUDGE_CALL_NAME, "start_time": at(started), "end_time": at(ended),
                "input": asked, "output": answer, "metadata": mark,
                "usage": {
                    "input_tokens": answered.usage.input_tokens, "output_tokens": answered.usage.output_tokens,
                    "cache_read_input_tokens": answered.usage.cache_read_input_tokens,
                    "cache_creation_input_tokens": answered.usage.cache_creation_input_tokens,
                },
            });
            if !answered.model.is_empty() {
                generation["model"] = json!(answered.model);
            }
            texts.push((
                json!({"id": format!("{judge_trace}-generation"), "type": "observation", "timestamp": at(started),
                       "body": generation})
                .to_string(),
                answered.cost,
            ));
            texts.push((
                json!({"id": format!("{judge_trace}-score"), "type": "score", "timestamp": at(ended), "body": {
                    // One score per judge and target: a later version's judgment replaces it.
                    "id": score_id(judge.id, row),
                    "trace_id": row.trace_id,
                    "observation_id": (row.target == Target::Observation).then_some(&row.target_id),
                    "timestamp": at(ended),
                    "name": score_name, "value": answered.score.as_json(), "source": "eval",
                    "evaluator_id": judge.id.to_string(), "comment": answered.reasoning,
                    "metadata": score_metadata(&judge_trace, &answered.model, row),
                }})
                .to_string(),
                None,
            ));
        }
        direct::load(clickhouse, project, &name, "judge", &texts).await?;
        let evaluators: Vec<Uuid> = rows.iter().map(|(row, _)| row.evaluator_id).collect();
        let kinds: Vec<&str> = rows.iter().map(|(row, _)| row.target.kind()).collect();
        let targets: Vec<&str> = rows.iter().map(|(row, _)| row.target_id.as_str()).collect();
        let versions: Vec<i64> = rows.iter().map(|(row, _)| row.target_version).collect();
        let traces: Vec<String> = rows
            .iter()
            .map(|(row, _)| format!("{JUDGE_TRACE_PREFIX}{}", judgment_id(row)))
            .collect();
        written += pg
            .execute(
                "UPDATE judgments j SET status = 'done', lease_until = NULL, finished_at = now(), judge_trace_id = u.tr
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[]) AS u(e, k, t, v, tr)
                 WHERE (j.evaluator_id, j.target_kind, j.target_id, j.target_version) = (u.e, u.k, u.t, u.v)",
                &[&evaluators, &kinds, &targets, &versions, &traces],
            )
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
    }
    Ok(written)
}
