//! The first half of a judge run: what arrived since the watermark becomes ledger rows.
//!
//! - **Observations** are read through `observations_by_ingest`, each new version a target as
//!   it arrives.
//! - **Whole targets** (traces, sessions, experiment runs) are found through the traces that
//!   anything arrived for, in `observations_by_ingest` and `traces_by_ingest`. A target's
//!   version sums its newest row version and its count of distinct parts, so a replay of what
//!   is stored changes nothing while a new part, or a changed one, makes a new version. A new
//!   version's row is due once the target has been quiet for the judge's `quiet_seconds`; it
//!   replaces an older version's row that has not been claimed yet, so a session that keeps
//!   going is judged once, after it stops.

use std::collections::{BTreeMap, HashMap};

use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::clickhouse::client::quote;
use agenttrace_etl::judge::template::Target;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

use super::{JUDGE_ENVIRONMENT, JUDGE_MARK, Judge, JudgeReport};
use crate::evaluate::{arrivals, plan_chunks};

/// Observation versions a discovery chunk reads (ids and filter fields only).
const DISCOVERY_CHUNK_ROWS: u64 = 100_000;
/// Touched traces whose facts one query reads.
const TRACE_BATCH: usize = 5_000;

/// Adds to the ledger every new target a judge's filter and sample pick, and moves the
/// report's watermark to where this run stopped reading.
pub(super) async fn discover(
    pg: &Client,
    clickhouse: &ClickHouse,
    judges: &[Judge],
    report: &mut JudgeReport,
) -> Result<(), String> {
    let until = clickhouse.clock().await?;
    let after_second = report.watermark.map_or(0, |w| w / 1_000_000);
    let done = Some((until - 1).max(after_second) * 1_000_000);
    let mut by_project: BTreeMap<Uuid, Vec<&Judge>> = BTreeMap::new();
    let mut whole_by_project: BTreeMap<Uuid, Vec<&Judge>> = BTreeMap::new();
    for judge in judges {
        match judge.config.target {
            Target::Observation => by_project.entry(judge.project_id).or_default().push(judge),
            _ => whole_by_project.entry(judge.project_id).or_default().push(judge),
        }
    }
    if !by_project.is_empty() {
        observations(pg, clickhouse, &by_project, after_second, until, report).await?;
    }
    if !whole_by_project.is_empty() {
        whole_targets(pg, clickhouse, &whole_by_project, after_second, until, report).await?;
    }
    report.watermark = done;
    Ok(())
}

fn project_list(by_project: &BTreeMap<Uuid, Vec<&Judge>>) -> String {
    by_project
        .keys()
        .map(|p| quote(&p.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Targets one backfill adds to the ledger at most (a longer range is cut, and says so).
const MAX_BACKFILL_TARGETS: u64 = 100_000;

/// Each pending backfill of these judges: the targets of its range (observations by start
/// time; whole targets through their traces' time) added to the ledger as discovery adds new
/// ones, so they are judged once, within the judge's budget. Done or failed with counts.
pub(super) async fn backfills(
    pg: &Client,
    clickhouse: &ClickHouse,
    judges: &[Judge],
    report: &mut JudgeReport,
) -> Result<(), String> {
    let postgres = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    let ids: Vec<Uuid> = judges.iter().map(|j| j.id).collect();
    let pending = pg
        .query(
            "SELECT id, evaluator_id, project_id, from_us, to_us FROM judge_backfills
             WHERE status = 'pending' AND evaluator_id = ANY($1) ORDER BY created_at",
            &[&ids],
        )
        .await
        .map_err(postgres)?;
    for row in &pending {
        let evaluator: Uuid = row.get("evaluator_id");
        let Some(judge) = judges.iter().find(|j| j.id == evaluator) else {
            continue;
        };
        let project: Uuid = row.get("project_id");
        let (from, to): (i64, i64) = (row.get("from_us"), row.get("to_us"));
        let by_project = BTreeMap::from([(project, vec![judge])]);
        let mut counted = JudgeReport::default();
        let outcome = backfill(pg, clickhouse, &by_project, judge, (from, to), &mut counted).await;
        let (status, note) = match &outcome {
            Ok(note) => ("done", note.clone()),
            Err(error) => ("failed", Some(error.clone())),
        };
        pg.execute(
            "UPDATE judge_backfills SET status = $2, seen = $3, queued = $4, note = $5, finished_at = now()
             WHERE id = $1",
            &[
                &row.get::<_, Uuid>("id"),
                &status,
                &(counted.seen as i64),
                &(counted.queued as i64),
                &note,
            ],
        )
        .await
        .map_err(postgres)?;
        report.seen += counted.seen;
        report.queued += counted.queued;
    }
    Ok(())
}

/// One backfill's range added to the ledger; a note when the range held more than it takes.
async fn backfill(
    pg: &Client,
    clickhouse: &ClickHouse,
    by_project: &BTreeMap<Uuid, Vec<&Judge>>,
    judge: &Judge,
    (from, to): (i64, i64),
    report: &mut JudgeReport,
) -> Result<Option<String>, String> {
    let project = quote(&judge.project_id.to_string());
    let (table, time, id) = match judge.config.target {
        Target::Observation => ("observations_by_time", "start_time_us", "trace_id, id"),
        _ => ("traces_by_time", "timestamp_us", "id"),
    };
    let range = format!("project_id = {project} AND {time} >= {from} AND {time} < {to}");
    let held: u64 = clickhouse
        .query_text(&format!(
            "SELECT count() FROM {table} WHERE {range} FORMAT TabSeparated"
        ))
        .await
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .unwrap_or(0);
    let note = (held > MAX_BACKFILL_TARGETS).then(|| {
        format!(
            "the range holds about {held} rows; the first {MAX_BACKFILL_TARGETS} by time were taken: backfill the rest from a later time"
        )
    });
    let first = format!(
        "SELECT project_id, {id} FROM {table} WHERE {range} ORDER BY {time} LIMIT {MAX_BACKFILL_TARGETS}"
    );
    match judge.config.target {
        Target::Observation => {
            let config = &judge.config;
            queue_observations(
                pg,
                clickhouse,
                by_project,
                &first,
                !config.conditions.is_empty(),
                config.reads_trace(),
                report,
            )
            .await?;
        }
        _ => {
            let text = clickhouse
                .query_text(&format!("SELECT DISTINCT id FROM ({first}) FORMAT JSONEachRow"))
                .await
                .map_err(|e| e.to_string())?;
            // Long quiet: due at once.
            let mut traces = Vec::new();
            for line in text.lines() {
                let row: Value = serde_json::from_str(line).map_err(|e| format!("backfill trace: {e}"))?;
                traces.push((row["id"].as_str().unwrap_or_default().to_owned(), 0));
            }
            queue_touched(
                pg,
                clickhouse,
                by_project,
                BTreeMap::from([(judge.project_id, traces)]),
                report,
            )
            .await?;
        }
    }
    Ok(note)
}

/// Observation judges: every new observation version their filter and sample pick.
async fn observations(
    pg: &Client,
    clickhouse: &ClickHouse,
    by_project: &BTreeMap<Uuid, Vec<&Judge>>,
    after_second: i64,
    until: i64,
    report: &mut JudgeReport,
) -> Result<(), String> {
    let projects = project_list(by_project);
    let all: Vec<&Judge> = by_project.values().flatten().copied().collect();
    let detailed = all.iter().any(|j| !j.config.conditions.is_empty());
    let reads_trace = all.iter().any(|j| j.config.reads_trace());
    let arrived = arrivals(clickhouse, &projects, after_second, until).await?;
    for chunk in plan_chunks(&arrived, DISCOVERY_CHUNK_ROWS) {
        let source = format!(
            "SELECT project_id, trace_id, id FROM observations_by_ingest \
             WHERE ingested_second >= {first} AND ingested_second <= {last} AND project_id IN ({projects}){slice}",
            first = chunk.first,
            last = chunk.last,
            slice = chunk.slice.map_or(String::new(), |(slice, slices)| {
                format!(" AND cityHash64(project_id, trace_id, id) % {slices} = {slice}")
            }),
        );
        queue_observations(pg, clickhouse, by_project, &source, detailed, reads_trace, report).await?;
    }
    // A condition on the trace (its environment, tags, user, dataset) is decided when the trace
    // row is there: an observation that arrived before its trace row is looked at again when
    // the row arrives. A version already in the ledger is not added twice.
    let trace_projects: BTreeMap<Uuid, Vec<&Judge>> = by_project
        .iter()
        .filter(|(_, judges)| judges.iter().any(|j| j.config.reads_trace()))
        .map(|(project, judges)| (*project, judges.clone()))
        .collect();
    if !trace_projects.is_empty() {
        let listed = project_list(&trace_projects);
        let text = clickhouse
            .query_text(&format!(
                "SELECT DISTINCT project_id, id FROM traces_by_ingest \
                 WHERE ingested_second > {after_second} AND ingested_second < {until} AND project_id IN ({listed}) \
                 FORMAT JSONEachRow"
            ))
            .await
            .map_err(|e| e.to_string())?;
        let mut traces: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let row: Value = serde_json::from_str(line).map_err(|e| format!("arrived trace: {e}"))?;
            let text = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
            traces.push((text("project_id"), text("id")));
        }
        for batch in traces.chunks(TRACE_BATCH) {
            let pairs = batch
                .iter()
                .map(|(project, trace)| format!("({}, {})", quote(project), quote(trace)))
                .collect::<Vec<_>>()
                .join(", ");
            let source = format!(
                "SELECT project_id, trace_id, id FROM observations WHERE (project_id, trace_id) IN ({pairs})"
            );
            queue_observations(pg, clickhouse, &trace_projects, &source, detailed, true, report).await?;
        }
    }
    Ok(())
}

/// Adds to the ledger the observations `source` (a query of `(project_id, trace_id, id)`)
/// names that a judge's filter, conditions and sample pick.
async fn queue_observations(
    pg: &Client,
    clickhouse: &ClickHouse,
    by_project: &BTreeMap<Uuid, Vec<&Judge>>,
    source: &str,
    detailed: bool,
    reads_trace: bool,
    report: &mut JudgeReport,
) -> Result<(), String> {
    let text = clickhouse
        .query_text(&discovery_query(source, detailed))
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).map_err(|e| format!("discovery row: {e}")))
        .collect::<Result<_, _>>()?;
    let traces = if reads_trace {
        observation_traces(pg, clickhouse, &rows).await?
    } else {
        HashMap::new()
    };
    let mut evaluators = Vec::new();
    let mut project_ids = Vec::new();
    let mut targets = Vec::new();
    let mut trace_ids = Vec::new();
    let mut versions = Vec::new();
    for row in &rows {
        report.seen += 1;
        if row["judged"] == json!(1) {
            continue;
        }
        let Some(project) = row["project_id"].as_str().and_then(|p| Uuid::parse_str(p).ok()) else {
            continue;
        };
        let id = row["id"].as_str().unwrap_or_default();
        let trace_id = row["trace_id"].as_str().unwrap_or_default();
        let trace = traces.get(&(project, trace_id.to_owned()));
        let field = |name: &str| observation_fact(row, trace, name);
        for judge in by_project.get(&project).into_iter().flatten() {
            let id_text = judge.id.to_string();
            if judge.config.accepts(field) && judge.config.sampled(&id_text, id) {
                evaluators.push(judge.id);
                project_ids.push(project);
                targets.push(id.to_owned());
                trace_ids.push(trace_id.to_owned());
                versions.push(
                    row["version"]
                        .as_str()
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0),
                );
            }
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let added = pg
        .execute(
            "INSERT INTO judgments (evaluator_id, target_kind, target_id, target_version, project_id, trace_id)
             SELECT e, 'observation', t, v, p, tr
             FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::uuid[], $5::text[]) AS u(e, t, v, p, tr)
             ON CONFLICT DO NOTHING",
            &[&evaluators, &targets, &versions, &project_ids, &trace_ids],
        )
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    report.queued += added;
    Ok(())
}

/// What an observation's trace says, for Langfuse's rule conditions.
#[derive(Debug, Default, Clone)]
struct ObservationTrace {
    name: String,
    environment: String,
    user_id: Option<String>,
    session_id: Option<String>,
    tags: Vec<String>,
    experiment_id: Option<String>,
    dataset_id: Option<String>,
    /// It ran a dataset item.
    experiment: bool,
}

/// The traces of a discovery chunk's observations, by (project, trace id), with the dataset
/// each ran (read from PostgreSQL within the project).
async fn observation_traces(
    pg: &Client,
    clickhouse: &ClickHouse,
    rows: &[Value],
) -> Result<HashMap<(Uuid, String), ObservationTrace>, String> {
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        if let (Some(project), Some(trace)) = (row["project_id"].as_str(), row["trace_id"].as_str()) {
            wanted
                .entry(project.to_owned())
                .or_default()
                .push(trace.to_owned());
        }
    }
    let mut out = HashMap::new();
    for (project, mut traces) in wanted {
        let Ok(project_id) = Uuid::parse_str(&project) else {
            continue;
        };
        traces.sort_unstable();
        traces.dedup();
        for batch in traces.chunks(TRACE_BATCH) {
            let listed = batch.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ");
            let text = clickhouse
                .query_text(&format!(
                    "SELECT id, ifNull(name, '') AS name, environment, user_id, session_id, tags, experiment_id, \
                     dataset_item_id FROM traces FINAL WHERE project_id = {} AND id IN ({listed}) FORMAT JSONEachRow",
                    quote(&project)
                ))
                .await
                .map_err(|e| e.to_string())?;
            let mut items = Vec::new();
            let mut found = Vec::new();
            for line in text.lines() {
                let row: Value = serde_json::from_str(line).map_err(|e| format!("trace row: {e}"))?;
                let text = |name: &str| row[name].as_str().map(str::to_owned);
                let item = text("dataset_item_id");
                items.extend(item.clone());
                found.push((
                    text("id").unwrap_or_default(),
                    item,
                    ObservationTrace {
                        name: text("name").unwrap_or_default(),
                        environment: text("environment").unwrap_or_default(),
                        user_id: text("user_id"),
                        session_id: text("session_id"),
                        tags: row["tags"]
                            .as_array()
                            .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
                            .unwrap_or_default(),
                        experiment_id: text("experiment_id"),
                        dataset_id: None,
                        experiment: false,
                    },
                ));
            }
            let datasets: HashMap<String, String> = if items.is_empty() {
                HashMap::new()
            } else {
                pg.query(
                    "SELECT i.id, i.dataset_id::text AS dataset FROM dataset_items i
                     WHERE i.project_id = $1 AND i.id = ANY($2)",
                    &[&project_id, &items],
                )
                .await
                .map_err(|e| format!("PostgreSQL: {e}"))?
                .iter()
                .map(|row| (row.get("id"), row.get("dataset")))
                .collect()
            };
            for (trace, item, mut facts) in found {
                facts.experiment = item.is_some();
                facts.dataset_id = item.and_then(|item| datasets.get(&item).cloned());
                out.insert((project_id, trace), facts);
            }
        }
    }
    Ok(out)
}

/// An observation's value of a filter field or a Langfuse condition column: none when it has
/// none; a boolean as `true` or `false`; `metadata.KEY` for one metadata key.
fn observation_fact(row: &Value, trace: Option<&ObservationTrace>, name: &str) -> Vec<String> {
    let text = |key: &str| row[key].as_str().filter(|t| !t.is_empty()).map(str::to_owned);
    let flag = |on: bool| vec![on.to_string()];
    let root = row["root"] == json!(1);
    if let Some(key) = name.strip_prefix("metadata.") {
        let keys = row["metadata_keys"].as_array();
        let values = row["metadata_values"].as_array();
        return keys
            .zip(values)
            .and_then(|(keys, values)| {
                keys.iter()
                    .position(|k| k.as_str() == Some(key))
                    .and_then(|at| values.get(at)?.as_str().map(str::to_owned))
            })
            .into_iter()
            .collect();
    }
    match name {
        "type" | "name" | "model" | "level" => text(name).into_iter().collect(),
        "isRootObservation" => flag(root),
        "parentObservationId" => text("parent_observation_id").into_iter().collect(),
        "environment" => trace.map(|t| t.environment.clone()).into_iter().collect(),
        "traceName" => trace.map(|t| t.name.clone()).into_iter().collect(),
        "userId" => trace.and_then(|t| t.user_id.clone()).into_iter().collect(),
        "sessionId" => trace.and_then(|t| t.session_id.clone()).into_iter().collect(),
        "tags" => trace.map(|t| t.tags.clone()).unwrap_or_default(),
        "experimentId" => trace.and_then(|t| t.experiment_id.clone()).into_iter().collect(),
        "datasetId" => trace.and_then(|t| t.dataset_id.clone()).into_iter().collect(),
        "isExperimentItemRootSpan" => flag(root && trace.is_some_and(|t| t.experiment)),
        _ => Vec::new(),
    }
}

/// The newest version of each observation `source` names: ids and the fields filters read
/// (`detailed`: those Langfuse's conditions read too), and whether it is a judge's own.
fn discovery_query(source: &str, detailed: bool) -> String {
    format!(
        "SELECT project_id, id, trace_id, type, name, ifNull(model, '') AS model, toString(version) AS version, \
         has(metadata_keys, {mark}) AS judged{detail} \
         FROM observations FINAL WHERE (project_id, trace_id, id) IN ({source}) \
         FORMAT JSONEachRow",
        mark = quote(JUDGE_MARK),
        detail = if detailed {
            ", level, parent_observation_id, isNull(parent_observation_id) AS root, metadata_keys, metadata_values"
        } else {
            ""
        },
    )
}

/// What a touched trace is, as whole-target judges filter it.
#[derive(Debug, Default, Clone)]
struct TraceFacts {
    name: String,
    environment: String,
    tags: Vec<String>,
    user_id: String,
    session_id: String,
    /// It ran a dataset item (an experiment's trace).
    experiment: bool,
    /// Its newest row version and its distinct observations.
    newest: i64,
    parts: i64,
    /// The last second anything of it arrived.
    last_arrival: i64,
}

impl TraceFacts {
    fn field(&self, name: &str) -> Vec<String> {
        match name {
            "name" => vec![self.name.clone()],
            "environment" => vec![self.environment.clone()],
            "tags" => self.tags.clone(),
            "user_id" => vec![self.user_id.clone()],
            _ => Vec::new(),
        }
    }

    /// Its version: a replay changes neither term, a new or changed part raises one.
    fn version(&self) -> i64 {
        self.newest.saturating_add(self.parts)
    }
}

/// A whole target a judge picked: (judge, kind, target id) → (version, trace the score hangs
/// on, due time).
type Picked = BTreeMap<(Uuid, &'static str, String), (i64, String, i64)>;

/// Trace, session and experiment judges: every trace anything arrived for, and the sessions
/// those traces belong to, become rows due once quiet.
async fn whole_targets(
    pg: &Client,
    clickhouse: &ClickHouse,
    by_project: &BTreeMap<Uuid, Vec<&Judge>>,
    after_second: i64,
    until: i64,
    report: &mut JudgeReport,
) -> Result<(), String> {
    let projects = project_list(by_project);
    let text = clickhouse
        .query_text(&format!(
            "SELECT project_id, trace_id, max(ingested_second) AS last FROM ( \
                 SELECT project_id, trace_id, ingested_second FROM observations_by_ingest \
                 WHERE ingested_second > {after_second} AND ingested_second < {until} AND project_id IN ({projects}) \
                 UNION ALL \
                 SELECT project_id, id AS trace_id, ingested_second FROM traces_by_ingest \
                 WHERE ingested_second > {after_second} AND ingested_second < {until} AND project_id IN ({projects})) \
             GROUP BY project_id, trace_id ORDER BY project_id, trace_id FORMAT JSONEachRow"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut touched: BTreeMap<Uuid, Vec<(String, i64)>> = BTreeMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("touched trace: {e}"))?;
        let Some(project) = row["project_id"].as_str().and_then(|p| Uuid::parse_str(p).ok()) else {
            continue;
        };
        let trace = row["trace_id"].as_str().unwrap_or_default().to_owned();
        touched
            .entry(project)
            .or_default()
            .push((trace, row["last"].as_i64().unwrap_or(until)));
    }
    queue_touched(pg, clickhouse, by_project, touched, report).await
}

/// Adds to the ledger the whole targets of the touched traces (by project: trace id and the
/// last second anything of it arrived), and of the sessions they belong to.
async fn queue_touched(
    pg: &Client,
    clickhouse: &ClickHouse,
    by_project: &BTreeMap<Uuid, Vec<&Judge>>,
    touched: BTreeMap<Uuid, Vec<(String, i64)>>,
    report: &mut JudgeReport,
) -> Result<(), String> {
    for (project, traces) in touched {
        report.seen += traces.len() as u64;
        let Some(judges) = by_project.get(&project) else {
            continue;
        };
        for batch in traces.chunks(TRACE_BATCH) {
            let facts = trace_facts(clickhouse, project, batch).await?;
            let mut picked = Picked::new();
            // Sessions touched, with the last arrival of any of their touched traces, for the
            // session judges whose filter one of those traces passes.
            let mut sessions: BTreeMap<String, (i64, Vec<Uuid>)> = BTreeMap::new();
            for (trace, facts) in &facts {
                if facts.environment == JUDGE_ENVIRONMENT {
                    continue;
                }
                for judge in judges.iter() {
                    let config = &judge.config;
                    let field = |name: &str| facts.field(name);
                    match config.target {
                        Target::Trace | Target::Experiment => {
                            if (config.target == Target::Experiment && !facts.experiment)
                                || !config.accepts(field)
                                || !config.sampled(&judge.id.to_string(), trace)
                            {
                                continue;
                            }
                            picked.insert(
                                (judge.id, config.target.kind(), trace.clone()),
                                (
                                    facts.version(),
                                    trace.clone(),
                                    facts.last_arrival + i64::from(config.quiet_seconds),
                                ),
                            );
                        }
                        Target::Session => {
                            if facts.session_id.is_empty()
                                || !config.accepts(field)
                                || !config.sampled(&judge.id.to_string(), &facts.session_id)
                            {
                                continue;
                            }
                            let entry = sessions.entry(facts.session_id.clone()).or_default();
                            entry.0 = entry.0.max(facts.last_arrival);
                            if !entry.1.contains(&judge.id) {
                                entry.1.push(judge.id);
                            }
                        }
                        Target::Observation => {}
                    }
                }
            }
            if !sessions.is_empty() {
                let ids: Vec<&str> = sessions.keys().map(String::as_str).collect();
                for (session, (version, first_trace)) in session_versions(clickhouse, project, &ids).await? {
                    let (last_arrival, session_judges) = &sessions[&session];
                    for judge in judges.iter().filter(|j| session_judges.contains(&j.id)) {
                        picked.insert(
                            (judge.id, Target::Session.kind(), session.clone()),
                            (
                                version,
                                first_trace.clone(),
                                last_arrival + i64::from(judge.config.quiet_seconds),
                            ),
                        );
                    }
                }
            }
            report.queued += queue_whole(pg, project, picked).await?;
        }
    }
    Ok(())
}

/// The facts of `project`'s touched traces: their trace rows (a trace with only observations
/// so far has none) and their observations' newest version and count.
async fn trace_facts(
    clickhouse: &ClickHouse,
    project: Uuid,
    touched: &[(String, i64)],
) -> Result<HashMap<String, TraceFacts>, String> {
    let project_text = quote(&project.to_string());
    let listed = touched
        .iter()
        .map(|(trace, _)| quote(trace))
        .collect::<Vec<_>>()
        .join(", ");
    let mut facts: HashMap<String, TraceFacts> = touched
        .iter()
        .map(|(trace, last)| {
            (
                trace.clone(),
                TraceFacts {
                    last_arrival: *last,
                    ..TraceFacts::default()
                },
            )
        })
        .collect();
    let rows = clickhouse
        .query_text(&format!(
            "SELECT id, ifNull(name, '') AS name, environment, tags, ifNull(user_id, '') AS user_id, \
             ifNull(session_id, '') AS session_id, isNotNull(dataset_item_id) AS experiment, \
             toString(version) AS version \
             FROM traces FINAL WHERE project_id = {project_text} AND id IN ({listed}) FORMAT JSONEachRow"
        ))
        .await
        .map_err(|e| e.to_string())?;
    for line in rows.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("trace facts: {e}"))?;
        let Some(fact) = row["id"].as_str().and_then(|id| facts.get_mut(id)) else {
            continue;
        };
        let text = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
        fact.name = text("name");
        fact.environment = text("environment");
        fact.user_id = text("user_id");
        fact.session_id = text("session_id");
        fact.tags = row["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        fact.experiment = row["experiment"] == json!(1);
        fact.newest = fact.newest.max(text("version").parse().unwrap_or(0));
    }
    let parts = clickhouse
        .query_text(&format!(
            "SELECT trace_id, toString(max(version)) AS newest, uniqExact(id) AS parts \
             FROM observations WHERE project_id = {project_text} AND trace_id IN ({listed}) \
             GROUP BY trace_id FORMAT JSONEachRow"
        ))
        .await
        .map_err(|e| e.to_string())?;
    for line in parts.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("trace parts: {e}"))?;
        let Some(fact) = row["trace_id"].as_str().and_then(|id| facts.get_mut(id)) else {
            continue;
        };
        let newest: i64 = row["newest"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
        fact.newest = fact.newest.max(newest);
        fact.parts = row["parts"]
            .as_i64()
            .or_else(|| row["parts"].as_str().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
    }
    Ok(facts)
}

/// Each session's version (over all its traces and their observations: the newest row version
/// plus the count of distinct traces and observations) and its first trace, which its score
/// hangs on.
async fn session_versions(
    clickhouse: &ClickHouse,
    project: Uuid,
    sessions: &[&str],
) -> Result<Vec<(String, (i64, String))>, String> {
    let project_text = quote(&project.to_string());
    let listed = sessions.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
    let text = clickhouse
        .query_text(&format!(
            "SELECT session_id, trace_id FROM session_traces FINAL \
             WHERE project_id = {project_text} AND session_id IN ({listed}) \
             ORDER BY session_id, timestamp_us, trace_id FORMAT JSONEachRow"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("session trace: {e}"))?;
        let session = row["session_id"].as_str().unwrap_or_default();
        let trace = row["trace_id"].as_str().unwrap_or_default().to_owned();
        match members.last_mut() {
            Some((last, traces)) if last == session => traces.push(trace),
            _ => members.push((session.to_owned(), vec![trace])),
        }
    }
    // Every member trace's facts, read in batches across sessions (not a query per session).
    let all: Vec<(String, i64)> = members
        .iter()
        .flat_map(|(_, traces)| traces.iter().map(|t| (t.clone(), 0)))
        .collect();
    let mut facts = HashMap::new();
    for batch in all.chunks(TRACE_BATCH) {
        facts.extend(trace_facts(clickhouse, project, batch).await?);
    }
    Ok(members
        .into_iter()
        .map(|(session, traces)| {
            let mut version = traces.len() as i64;
            let mut newest = 0;
            for fact in traces.iter().filter_map(|t| facts.get(t)) {
                newest = newest.max(fact.newest);
                version += fact.parts;
            }
            let first = traces[0].clone();
            (session, (newest.saturating_add(version), first))
        })
        .collect())
}

/// Adds the picked whole targets to the ledger: a new version's row, due once quiet, replaces
/// an older version's row that is still waiting; an existing row's due time moves with new
/// arrivals. The score's trace stays the one the target's first row named. Returns rows added.
async fn queue_whole(pg: &Client, project: Uuid, picked: Picked) -> Result<u64, String> {
    if picked.is_empty() {
        return Ok(0);
    }
    let mut evaluators = Vec::new();
    let mut kinds = Vec::new();
    let mut targets = Vec::new();
    let mut versions = Vec::new();
    let mut traces = Vec::new();
    let mut due: Vec<DateTime<Utc>> = Vec::new();
    for ((evaluator, kind, target), (version, trace, due_second)) in picked {
        evaluators.push(evaluator);
        kinds.push(kind);
        targets.push(target);
        versions.push(version);
        traces.push(trace);
        due.push(DateTime::from_timestamp(due_second, 0).unwrap_or_else(Utc::now));
    }
    let postgres = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    pg.execute(
        "DELETE FROM judgments j
         USING unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS u(e, k, t, v)
         WHERE (j.evaluator_id, j.target_kind, j.target_id) = (u.e, u.k, u.t)
           AND j.target_version < u.v AND j.status = 'pending'",
        &[&evaluators, &kinds, &targets, &versions],
    )
    .await
    .map_err(postgres)?;
    let rows = pg
        .query(
            "INSERT INTO judgments AS j (evaluator_id, target_kind, target_id, target_version, project_id, trace_id,
                 next_attempt_at)
             SELECT u.e, u.k, u.t, u.v, $7,
                 coalesce((SELECT o.trace_id FROM judgments o
                           WHERE (o.evaluator_id, o.target_kind, o.target_id) = (u.e, u.k, u.t)
                           ORDER BY o.target_version LIMIT 1), u.tr),
                 u.due
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[])
                 AS u(e, k, t, v, tr, due)
             ON CONFLICT (evaluator_id, target_kind, target_id, target_version) DO UPDATE
                 SET next_attempt_at = greatest(j.next_attempt_at, EXCLUDED.next_attempt_at)
                 WHERE j.status = 'pending'
             RETURNING (xmax = 0) AS added",
            &[&evaluators, &kinds, &targets, &versions, &traces, &due, &project],
        )
        .await
        .map_err(postgres)?;
    Ok(rows.iter().filter(|row| row.get::<_, bool>("added")).count() as u64)
}
