//! A judge tried by hand: its prompt rendered for one of its targets and, when asked, sent to
//! the model once; and what a judge has done (its ledger, per day). Nothing here writes a score.

use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::clickhouse::ClickHouse;
use crate::control::ControlError;
use crate::control::connections;
use crate::control::sealing::Sealer;
use crate::ingest::pricing::PriceCache;
use crate::judge::provider::{self, JudgeRequest, ModelClient};
use crate::judge::targets::{Fields, observation_fields, session_fields, trace_fields};
use crate::judge::template::{JudgeConfig, Target};

/// The longest a preview waits for the model.
const PREVIEW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A judge's prompt for one observation and, if it ran, the model's judgment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub prompt: String,
    /// The system message sent before the prompt, if the judge has one.
    #[schema(required = true)]
    pub system: Option<String>,
    /// The JSON schema the answer must fill.
    pub answer_schema: serde_json::Value,
    /// Whether the model was called.
    pub ran: bool,
    #[schema(required = true)]
    pub model: Option<String>,
    /// The score as it would be stored (number, boolean or category).
    #[schema(required = true)]
    pub score: Option<serde_json::Value>,
    #[schema(required = true)]
    pub reasoning: Option<String>,
    #[schema(required = true)]
    pub latency_ms: Option<u64>,
    #[schema(required = true)]
    pub input_tokens: Option<u64>,
    #[schema(required = true)]
    pub output_tokens: Option<u64>,
    /// Priced from the price table, when the model has a price.
    #[schema(required = true)]
    pub cost_usd: Option<f64>,
    /// `retry`, `blocked` or `invalid` (see "test connection").
    #[schema(required = true)]
    pub error_kind: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// What a preview needs beyond the databases.
pub struct PreviewSetup<'a> {
    pub sealer: Option<&'a Sealer>,
    pub client: &'a ModelClient,
    pub prices: &'a PriceCache,
}

async fn judge_of(
    pg: &impl GenericClient,
    project: Uuid,
    evaluator: Uuid,
) -> Result<JudgeConfig, ControlError> {
    let row = pg
        .query_opt(
            "SELECT kind, config FROM evaluators WHERE project_id = $1 AND id = $2",
            &[&project, &evaluator],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("evaluator {evaluator}")))?;
    if row.get::<_, &str>("kind") != "llm_judge" {
        return Err(ControlError::Invalid {
            field: "evaluator",
            message: "only an llm_judge evaluator has a prompt to preview".into(),
        });
    }
    JudgeConfig::parse(&row.get("config")).map_err(|e| ControlError::Invalid {
        field: "config",
        message: e.to_string(),
    })
}

/// The target a preview renders the prompt for: the ids the judge's kind of target needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreviewOn<'a> {
    pub trace_id: Option<&'a str>,
    pub observation_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

/// The fields of the target `on` names, for a judge of `target`.
async fn target_fields<'a>(
    pg: &impl GenericClient,
    reader: &ClickHouse,
    project: Uuid,
    target: Target,
    on: PreviewOn<'a>,
) -> Result<Fields, ControlError> {
    let needed = |field: &'static str, value: Option<&'a str>| -> Result<&'a str, ControlError> {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ControlError::Invalid {
                field,
                message: format!("a {} judge is previewed on a {field}: give it", target.kind()),
            })
    };
    let unavailable = ControlError::Unavailable;
    match target {
        Target::Observation => {
            let (trace, observation) = (
                needed("trace_id", on.trace_id)?,
                needed("observation_id", on.observation_id)?,
            );
            observation_fields(pg, reader, project, &[(trace, observation)])
                .await
                .map_err(unavailable)?
                .remove(observation)
                .ok_or_else(|| ControlError::NotFound(format!("observation {observation} in trace {trace}")))
        }
        Target::Trace | Target::Experiment => {
            let trace = needed("trace_id", on.trace_id)?;
            trace_fields(pg, reader, project, &[trace])
                .await
                .map_err(unavailable)?
                .remove(trace)
                .ok_or_else(|| ControlError::NotFound(format!("trace {trace}")))
        }
        Target::Session => {
            let session = needed("session_id", on.session_id)?;
            session_fields(pg, reader, project, &[session])
                .await
                .map_err(unavailable)?
                .remove(session)
                .ok_or_else(|| ControlError::NotFound(format!("session {session}")))
        }
    }
}

/// Renders `evaluator`'s prompt for the target `on` names in `project`, read through `reader`,
/// and with `run` asks the model once.
pub async fn preview(
    pg: &impl GenericClient,
    reader: &ClickHouse,
    setup: &PreviewSetup<'_>,
    project: Uuid,
    evaluator: Uuid,
    on: PreviewOn<'_>,
    run: bool,
) -> Result<Preview, ControlError> {
    let config = judge_of(pg, project, evaluator).await?;
    let fields = target_fields(pg, reader, project, config.target, on).await?;
    let prompt = config.render(|name| fields.get(name).cloned());
    let system = config.render_system(|name| fields.get(name).cloned());
    let schema = config.answer_schema();
    let mut preview = Preview {
        prompt,
        system,
        answer_schema: schema.clone(),
        ran: false,
        model: None,
        score: None,
        reasoning: None,
        latency_ms: None,
        input_tokens: None,
        output_tokens: None,
        cost_usd: None,
        error_kind: None,
        error: None,
    };
    if !run {
        return Ok(preview);
    }
    let mut callable = connections::callable(pg, setup.sealer, project, &config.connection).await?;
    let model = config
        .model
        .clone()
        .or_else(|| callable.connection.default_model().map(str::to_owned))
        .ok_or_else(|| ControlError::Invalid {
            field: "config",
            message: "config.model: name the model, or set the connection's config.model".into(),
        })?;
    callable.endpoint.timeout = callable.endpoint.timeout.min(PREVIEW_TIMEOUT);
    let request = JudgeRequest {
        model: &model,
        system: preview.system.as_deref(),
        prompt: &preview.prompt,
        schema: &schema,
        temperature: callable.connection.config["temperature"].as_f64(),
        max_tokens: callable.connection.config["maxTokens"]
            .as_u64()
            .map_or(1024, |t| t as u32),
    };
    preview.ran = true;
    preview.model = Some(model.clone());
    match provider::call(setup.client, &callable.endpoint, &request).await {
        Ok(reply) => {
            let usage = reply.usage.to_event();
            preview.cost_usd = setup
                .prices
                .get()
                .cost(
                    project,
                    chrono::Utc::now().timestamp_micros(),
                    &reply.model,
                    &usage,
                )
                .and_then(|cost| cost.total);
            preview.latency_ms = Some(reply.latency.as_millis() as u64);
            preview.input_tokens = Some(reply.usage.all_input());
            preview.output_tokens = Some(reply.usage.output);
            preview.model = Some(reply.model);
            match config.read_answer(&reply.answer) {
                Ok((score, reasoning)) => {
                    preview.score = Some(score.as_json());
                    preview.reasoning = Some(reasoning);
                }
                Err(problem) => {
                    preview.error_kind = Some("invalid".into());
                    preview.error = Some(format!("the answer does not fill the schema: {problem}"));
                }
            }
        }
        Err(error) => {
            preview.error_kind = Some(error.kind().into());
            preview.error = Some(error.to_string());
        }
    }
    Ok(preview)
}

/// One day of a judge's work.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JudgeDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub calls: i64,
    pub judged: i64,
    pub failed: i64,
    pub spend_usd: f64,
    /// The mean numeric score, or for a boolean judge the share of `true`; none for categories.
    #[schema(required = true)]
    pub mean_score: Option<f64>,
}

/// A target a judge gave up on, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JudgeFailure {
    /// `observation`, `trace`, `session` or `run_item` (an experiment's trace).
    pub target_kind: String,
    /// The observation, trace or session id.
    pub target_id: String,
    pub trace_id: String,
    pub error: String,
    pub at: String,
}

/// A request to judge the targets of a time range that arrived before the judge did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backfill {
    pub id: Uuid,
    /// RFC 3339: the range's start (inclusive) and end (exclusive), by the targets' start time.
    pub from: String,
    pub to: String,
    /// `pending` until the judge job has added the range's targets to the ledger, then `done`
    /// (or `failed`, with the reason in `note`).
    pub status: String,
    /// Targets looked at, and added to the ledger (those judged already are not added again).
    pub seen: i64,
    pub queued: i64,
    #[schema(required = true)]
    pub note: Option<String>,
    pub created_at: String,
}

/// The longest range one backfill covers.
pub const MAX_BACKFILL_DAYS: i64 = 90;
/// Backfills one judge may have waiting.
const MAX_PENDING_BACKFILLS: i64 = 5;

fn backfill_of(row: &tokio_postgres::Row) -> Backfill {
    let at = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    Backfill {
        id: row.get("id"),
        from: at(row.get("from_us")),
        to: at(row.get("to_us")),
        status: row.get("status"),
        seen: row.get("seen"),
        queued: row.get("queued"),
        note: row.get("note"),
        created_at: row
            .get::<_, chrono::DateTime<chrono::Utc>>("created_at")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

/// Asks the judge job to judge `evaluator`'s targets whose time is in `[from_us, to_us)`.
pub async fn request_backfill(
    pg: &impl GenericClient,
    project: Uuid,
    evaluator: Uuid,
    from_us: i64,
    to_us: i64,
) -> Result<Backfill, ControlError> {
    judge_of(pg, project, evaluator).await?;
    if to_us <= from_us {
        return Err(ControlError::Invalid {
            field: "to",
            message: "must be after from".into(),
        });
    }
    if to_us - from_us > MAX_BACKFILL_DAYS * 86_400_000_000 {
        return Err(ControlError::Invalid {
            field: "to",
            message: format!("a backfill covers at most {MAX_BACKFILL_DAYS} days; ask for several"),
        });
    }
    let pending: i64 = pg
        .query_one(
            "SELECT count(*) FROM judge_backfills WHERE evaluator_id = $1 AND status = 'pending'",
            &[&evaluator],
        )
        .await?
        .get(0);
    if pending >= MAX_PENDING_BACKFILLS {
        return Err(ControlError::Conflict(format!(
            "{pending} backfills of this judge are waiting for the judge job; ask again when they are done"
        )));
    }
    let row = pg
        .query_one(
            "INSERT INTO judge_backfills (evaluator_id, project_id, from_us, to_us) VALUES ($1, $2, $3, $4)
             RETURNING *",
            &[&evaluator, &project, &from_us, &to_us],
        )
        .await?;
    Ok(backfill_of(&row))
}

/// What a judge has done: its ledger by status, per day, and its latest failures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JudgeActivity {
    /// Why it is stopped (its connection refused the key, its spend cap was reached), if it is.
    #[schema(required = true)]
    pub blocked_reason: Option<String>,
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    pub spend_usd: f64,
    pub days: Vec<JudgeDay>,
    pub recent_failures: Vec<JudgeFailure>,
    /// Its latest backfills, newest first.
    pub backfills: Vec<Backfill>,
}

/// `evaluator`'s activity over the last `days` days (a rule evaluator has no ledger: zeros).
pub async fn activity(
    pg: &impl GenericClient,
    project: Uuid,
    evaluator: Uuid,
    days: i32,
) -> Result<JudgeActivity, ControlError> {
    let blocked = pg
        .query_opt(
            "SELECT blocked_reason FROM evaluators WHERE project_id = $1 AND id = $2",
            &[&project, &evaluator],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("evaluator {evaluator}")))?;
    let totals = pg
        .query_one(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'calling', 'answered')) AS pending,
                    count(*) FILTER (WHERE status = 'done') AS done,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    coalesce(sum(cost_usd), 0)::float8 AS spend
             FROM judgments WHERE project_id = $1 AND evaluator_id = $2",
            &[&project, &evaluator],
        )
        .await?;
    let by_day = pg
        .query(
            "SELECT to_char(date_trunc('day', called_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day,
                    count(*) AS calls,
                    count(*) FILTER (WHERE status = 'done') AS judged,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    coalesce(sum(cost_usd), 0)::float8 AS spend,
                    avg(CASE jsonb_typeof(answer->'score')
                        WHEN 'number' THEN (answer->>'score')::float8
                        WHEN 'boolean' THEN CASE WHEN (answer->>'score')::boolean THEN 1.0 ELSE 0.0 END
                        END) AS mean_score
             FROM judgments
             WHERE project_id = $1 AND evaluator_id = $2 AND called_at >= now() - make_interval(days => $3)
             GROUP BY 1 ORDER BY 1",
            &[&project, &evaluator, &days],
        )
        .await?;
    let failures = pg
        .query(
            "SELECT target_kind, target_id, trace_id, coalesce(error, '') AS error,
                    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at
             FROM judgments WHERE project_id = $1 AND evaluator_id = $2 AND status = 'failed'
             ORDER BY finished_at DESC LIMIT 20",
            &[&project, &evaluator],
        )
        .await?;
    let backfills = pg
        .query(
            "SELECT * FROM judge_backfills WHERE project_id = $1 AND evaluator_id = $2 ORDER BY created_at DESC LIMIT 10",
            &[&project, &evaluator],
        )
        .await?;
    Ok(JudgeActivity {
        backfills: backfills.iter().map(backfill_of).collect(),
        blocked_reason: blocked.get(0),
        pending: totals.get("pending"),
        done: totals.get("done"),
        failed: totals.get("failed"),
        spend_usd: totals.get("spend"),
        days: by_day
            .iter()
            .map(|row| JudgeDay {
                day: row.get("day"),
                calls: row.get("calls"),
                judged: row.get("judged"),
                failed: row.get("failed"),
                spend_usd: row.get("spend"),
                mean_score: row.get("mean_score"),
            })
            .collect(),
        recent_failures: failures
            .iter()
            .map(|row| JudgeFailure {
                target_kind: row.get("target_kind"),
                target_id: row.get("target_id"),
                trace_id: row.get("trace_id"),
                error: row.get("error"),
                at: row.get("at"),
            })
            .collect(),
    })
}
