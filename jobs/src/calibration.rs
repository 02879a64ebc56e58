//! The `judge_calibration` job: how well each LLM judge agrees with people.
//!
//! A judge's score is `source = 'eval'` with `evaluator_id` naming the judge (an `llm_judge`
//! evaluator) under the judge's score name; a person's is `source = 'annotation'` under the same
//! name, its author in the metadata (`langfuse.authorUserId`). Both score a target: a trace, or
//! one observation of it (`(trace_id, observation_id)`, the observation empty for whole traces,
//! sessions and experiment runs). Within one project, every human score of a target the judge
//! scored makes one pair with the judge's newest score of that target: several people scoring
//! one target give several pairs, each compared with the judge on its own (not a majority,
//! which would hide how much people disagree among themselves and needs a tie rule). Only
//! scores of the judge's data type (that of its newest score) are compared.
//!
//! Per judge: accuracy, Cohen's kappa and a confusion matrix (rows the people's labels, columns
//! the judge's) for boolean and categorical scores; mean absolute error and Spearman's rank
//! correlation for numeric ones; and up to [`MAX_DISAGREEMENTS`] pairs where the two differ,
//! each with a link to its trace in the web UI. One `judge_calibrations` row per judge, replaced
//! whenever it is recomputed.
//!
//! **What is new.** A run looks at the scores given after its watermark, up to
//! [`SETTLE_SECONDS`] before ClickHouse's clock, and recomputes only the judges those touch:
//! the judge's own scores, or people's scores of its name in its project. A touched judge is
//! recomputed from all of its pairs (read by the project's key), so the cost follows what was
//! scored since the last run, not what is stored. Scores carry no arrival time: the window is
//! over the score's own time, which for judges and annotations is when it was given (read
//! through the monthly partitions' time ranges, so old months are skipped). A score that
//! arrives more than [`SETTLE_SECONDS`] after its own time is not noticed by itself; it counts
//! the next time its judge is recomputed. People's scores through annotation queues are also
//! noticed by their reviews in PostgreSQL, stamped on arrival, so a judge's agreement with a
//! review shows on the next run, without waiting for the window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use agenttrace_etl::analytics::scores::AUTHOR_KEY;
use agenttrace_etl::clickhouse::{ClickHouse, quote};
use agenttrace_etl::judge::template::{JudgeConfig, OutputKind};
use polars::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::frames::{query_frame, strings};

/// How long after its time a score is taken as arrived: a run's window ends this much before
/// ClickHouse's clock (a judge writes its scores minutes after timing them, a crashed one
/// after its lease).
pub const SETTLE_SECONDS: i64 = 15 * 60;
/// Disagreements kept per judge.
pub const MAX_DISAGREEMENTS: usize = 100;
/// Labels a confusion matrix shows; the rest are counted under [`OTHER_LABEL`].
pub const MAX_LABELS: usize = 50;
/// Where labels past [`MAX_LABELS`] are counted.
pub const OTHER_LABEL: &str = "(other)";
/// Numeric scores closer than this agree.
const NUMERIC_TOLERANCE: f64 = 1e-9;

/// One LLM judge, as the calibration sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    pub id: Uuid,
    pub project_id: Uuid,
    /// The name its scores carry (the config's `score_name`, else the evaluator's name).
    pub score_name: String,
    /// A categorical judge's categories in its config's order: the confusion matrix's first
    /// labels.
    pub categories: Vec<String>,
}

/// Every LLM judge, active or not (a paused judge's scores still tell how it did).
pub async fn judges(pg: &Client) -> Result<Vec<Judge>, String> {
    let rows = pg
        .query(
            "SELECT id, project_id, name, config FROM evaluators
             WHERE kind = 'llm_judge' ORDER BY project_id, id",
            &[],
        )
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let name: String = row.get("name");
            let config: Value = row.get("config");
            let parsed = JudgeConfig::parse(&config).ok();
            // As the judge job names its scores; a config that no longer parses keeps its own.
            let score_name = parsed
                .as_ref()
                .and_then(|c| c.score_name.clone())
                .or_else(|| config["score_name"].as_str().map(str::to_owned))
                .unwrap_or(name);
            let categories = match parsed.map(|c| c.output) {
                Some(OutputKind::Categorical { categories }) => categories,
                _ => Vec::new(),
            };
            Judge {
                id: row.get("id"),
                project_id: row.get("project_id"),
                score_name,
                categories,
            }
        })
        .collect())
}

/// Scores given in a run's window, counted by project, name, source and evaluator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub project_id: String,
    pub name: String,
    pub source: String,
    /// Empty for scores without one.
    pub evaluator_id: String,
    pub scores: u64,
}

/// The judges whose calibration `given` changes: a judge that gave a score under its name, or
/// any judge of a project where a person gave a score of the judge's name.
pub fn touched(judges: &[Judge], given: &[Given]) -> BTreeSet<Uuid> {
    let mut touched = BTreeSet::new();
    for g in given {
        for judge in judges {
            if judge.project_id.to_string() != g.project_id || judge.score_name != g.name {
                continue;
            }
            let hit = match g.source.as_str() {
                "eval" => judge.id.to_string() == g.evaluator_id,
                "annotation" => true,
                _ => false,
            };
            if hit {
                touched.insert(judge.id);
            }
        }
    }
    touched
}

fn listed<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let unique: BTreeSet<&str> = values.into_iter().collect();
    unique.into_iter().map(quote).collect::<Vec<_>>().join(", ")
}

/// The query counting the judges' and people's scores given in `(after_us, until_us]` under
/// the judges' names. `timestamp` (the partition key's column) bounds the parts read.
pub fn window_sql(judges: &[Judge], after_us: Option<i64>, until_us: i64) -> String {
    let projects: Vec<String> = judges.iter().map(|j| j.project_id.to_string()).collect();
    let mut conditions = vec![
        format!("project_id IN ({})", listed(projects.iter().map(String::as_str))),
        format!(
            "name IN ({})",
            listed(judges.iter().map(|j| j.score_name.as_str()))
        ),
        "source IN ('eval', 'annotation')".to_owned(),
        format!(
            "timestamp <= toDateTime({})",
            until_us.div_euclid(1_000_000).max(0)
        ),
        format!("timestamp_us <= {until_us}"),
    ];
    if let Some(after) = after_us {
        conditions.push(format!(
            "timestamp >= toDateTime({})",
            after.div_euclid(1_000_000).max(0)
        ));
        conditions.push(format!("timestamp_us > {after}"));
    }
    format!(
        "SELECT project_id, name, source, ifNull(evaluator_id, '') AS evaluator, count() AS scores \
         FROM scores WHERE {} GROUP BY project_id, name, source, evaluator",
        conditions.join(" AND ")
    )
}

/// One judge's score and one person's of the same target.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub trace_id: String,
    pub observation_id: Option<String>,
    /// Who gave the human score (`langfuse.authorUserId`), if it says.
    pub author: Option<String>,
    /// Numeric and boolean (1 or 0) scores' values.
    pub judge_value: f64,
    pub human_value: f64,
    /// Categorical scores' labels.
    pub judge_label: String,
    pub human_label: String,
}

/// A confusion matrix: `counts[h][j]` pairs where people said `labels[h]` and the judge
/// `labels[j]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

/// A pair where the judge and a person differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    pub trace_id: String,
    pub observation_id: Option<String>,
    pub judge: Value,
    pub human: Value,
    pub author: Option<String>,
    /// The target in the web UI (`#/traces/<trace>?observation=<observation>`).
    pub link: String,
}

/// A judge's agreement with people; metrics that do not apply to its data type are None.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    pub data_type: Option<String>,
    pub pairs: usize,
    pub accuracy: Option<f64>,
    pub kappa: Option<f64>,
    pub mean_absolute_error: Option<f64>,
    pub spearman: Option<f64>,
    pub confusion: Option<Confusion>,
    pub disagreements: Vec<Disagreement>,
}

/// The share of pairs whose two sides are equal; None without pairs.
pub fn accuracy<T: PartialEq>(pairs: &[(T, T)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let agreed = pairs.iter().filter(|(a, b)| a == b).count();
    Some(agreed as f64 / pairs.len() as f64)
}

/// The confusion matrix of `(human, judge)` labels: `preferred` labels first in their order
/// (all of them, seen or not), then the others seen, sorted.
pub fn confusion(pairs: &[(String, String)], preferred: &[String]) -> Confusion {
    let mut labels: Vec<String> = Vec::new();
    for label in preferred {
        if !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    let others: BTreeSet<&String> = pairs
        .iter()
        .flat_map(|(h, j)| [h, j])
        .filter(|label| !labels.contains(label))
        .collect();
    // Labels past the cap share one row and column: a score stream of thousands of distinct
    // labels must not make a matrix of millions of cells.
    let room = MAX_LABELS.saturating_sub(labels.len());
    let overflow = others.len() > room;
    labels.extend(
        others
            .into_iter()
            .take(if overflow { room.saturating_sub(1) } else { room })
            .cloned(),
    );
    if overflow {
        labels.push(OTHER_LABEL.to_owned());
    }
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| (label.as_str(), i))
        .collect();
    let at = |label: &str| index.get(label).copied().unwrap_or(labels.len() - 1);
    let mut counts = vec![vec![0u64; labels.len()]; labels.len()];
    for (human, judge) in pairs {
        counts[at(human)][at(judge)] += 1;
    }
    Confusion { labels, counts }
}

/// Cohen's kappa of a square confusion matrix: (observed agreement − chance agreement) /
/// (1 − chance agreement), chance from each side's label frequencies. None without pairs, or
/// when chance agreement is 1 (both sides gave one same label every time: agreement is then
/// total but says nothing beyond chance, and kappa is 0/0).
pub fn cohen_kappa(counts: &[Vec<u64>]) -> Option<f64> {
    let n: u64 = counts.iter().flatten().sum();
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let observed = (0..counts.len()).map(|i| counts[i][i]).sum::<u64>() as f64 / n;
    let chance: f64 = (0..counts.len())
        .map(|i| {
            let row: u64 = counts[i].iter().sum();
            let column: u64 = counts.iter().map(|r| r[i]).sum();
            (row as f64 / n) * (column as f64 / n)
        })
        .sum();
    if (1.0 - chance).abs() < 1e-12 {
        return None;
    }
    Some((observed - chance) / (1.0 - chance))
}

/// The mean of |judge − human|; None without pairs.
pub fn mean_absolute_error(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    Some(pairs.iter().map(|(a, b)| (a - b).abs()).sum::<f64>() / pairs.len() as f64)
}

/// 1-based ranks, ties given the mean of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start + 1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mean_x, mean_y) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's rank correlation: Pearson's of the average ranks. None for fewer than two pairs
/// or when one side never varies.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let judge: Vec<f64> = pairs.iter().map(|(a, _)| *a).collect();
    let human: Vec<f64> = pairs.iter().map(|(_, b)| *b).collect();
    pearson(&average_ranks(&judge), &average_ranks(&human))
}

/// A URI component as JavaScript's `encodeURIComponent` writes it.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A target's page in the web UI.
pub fn link(trace_id: &str, observation_id: Option<&str>) -> String {
    let mut link = format!("#/traces/{}", encode_component(trace_id));
    if let Some(observation) = observation_id {
        let _ = write!(link, "?observation={}", encode_component(observation));
    }
    link
}

fn boolean_label(value: f64) -> &'static str {
    if value != 0.0 { "true" } else { "false" }
}

/// A judge's calibration from its pairs, all of `data_type` (the judge's). `categories` are a
/// categorical judge's (the confusion matrix's first labels).
pub fn calibrate(data_type: &str, pairs: &[Pair], categories: &[String]) -> Calibration {
    let mut calibration = Calibration {
        data_type: Some(data_type.to_owned()),
        pairs: pairs.len(),
        ..Calibration::default()
    };
    let disagreement = |pair: &Pair, judge: Value, human: Value| Disagreement {
        trace_id: pair.trace_id.clone(),
        observation_id: pair.observation_id.clone(),
        judge,
        human,
        author: pair.author.clone(),
        link: link(&pair.trace_id, pair.observation_id.as_deref()),
    };
    let mut ordered: Vec<&Pair> = pairs.iter().collect();
    ordered.sort_by(|a, b| {
        (&a.trace_id, &a.observation_id, &a.author).cmp(&(&b.trace_id, &b.observation_id, &b.author))
    });
    match data_type {
        "boolean" | "categorical" => {
            let boolean = data_type == "boolean";
            let label = |value: f64, label: &str| {
                if boolean {
                    boolean_label(value).to_owned()
                } else {
                    label.to_owned()
                }
            };
            let labelled: Vec<(String, String)> = pairs
                .iter()
                .map(|p| {
                    (
                        label(p.human_value, &p.human_label),
                        label(p.judge_value, &p.judge_label),
                    )
                })
                .collect();
            let preferred: Vec<String> = if boolean {
                vec!["false".into(), "true".into()]
            } else {
                categories.to_vec()
            };
            let matrix = confusion(&labelled, &preferred);
            calibration.accuracy = accuracy(&labelled);
            calibration.kappa = cohen_kappa(&matrix.counts);
            calibration.confusion = (!pairs.is_empty()).then_some(matrix);
            let as_json = |value: f64, text: &str| {
                if boolean { json!(value != 0.0) } else { json!(text) }
            };
            calibration.disagreements = ordered
                .into_iter()
                .filter(|p| label(p.human_value, &p.human_label) != label(p.judge_value, &p.judge_label))
                .take(MAX_DISAGREEMENTS)
                .map(|p| {
                    disagreement(
                        p,
                        as_json(p.judge_value, &p.judge_label),
                        as_json(p.human_value, &p.human_label),
                    )
                })
                .collect();
        }
        "numeric" => {
            let values: Vec<(f64, f64)> = pairs.iter().map(|p| (p.judge_value, p.human_value)).collect();
            calibration.mean_absolute_error = mean_absolute_error(&values);
            calibration.spearman = spearman(&values);
            let mut differing: Vec<&Pair> = ordered
                .into_iter()
                .filter(|p| (p.judge_value - p.human_value).abs() > NUMERIC_TOLERANCE)
                .collect();
            // The largest differences first; the sort is stable, so ties stay by target.
            differing.sort_by(|a, b| {
                (b.judge_value - b.human_value)
                    .abs()
                    .total_cmp(&(a.judge_value - a.human_value).abs())
            });
            calibration.disagreements = differing
                .into_iter()
                .take(MAX_DISAGREEMENTS)
                .map(|p| disagreement(p, json!(p.judge_value), json!(p.human_value)))
                .collect();
        }
        // Free text: counted, not compared.
        _ => {}
    }
    calibration
}

fn polars(e: PolarsError) -> String {
    e.to_string()
}

/// Each touched judge's pairs in one project, through Polars: the judges' newest score per
/// target (of the judge's newest data type), joined with the people's scores of its name on
/// the target. Returns (judge id → its data type, if it scored anything, and its pairs).
async fn read_pairs(
    clickhouse: &ClickHouse,
    project_id: &str,
    judges: &[&Judge],
) -> Result<HashMap<Uuid, (Option<String>, Vec<Pair>)>, String> {
    let project = quote(project_id);
    let ids: Vec<String> = judges.iter().map(|j| j.id.to_string()).collect();
    let names = listed(judges.iter().map(|j| j.score_name.as_str()));
    let mut result: HashMap<Uuid, (Option<String>, Vec<Pair>)> =
        judges.iter().map(|j| (j.id, (None, Vec::new()))).collect();
    let Some(judged) = query_frame(
        clickhouse,
        &format!(
            "SELECT ifNull(evaluator_id, '') AS evaluator, name, trace_id, ifNull(observation_id, '') AS observation, \
             data_type AS judge_type, value AS judge_value, ifNull(string_value, '') AS judge_label, timestamp_us \
             FROM scores FINAL \
             WHERE project_id = {project} AND source = 'eval' AND evaluator_id IN ({}) AND name IN ({names})",
            listed(ids.iter().map(String::as_str))
        ),
    )
    .await?
    else {
        return Ok(result);
    };
    let by_id: HashMap<String, &Judge> = judges.iter().map(|j| (j.id.to_string(), *j)).collect();
    // Each judge's scores under its own name only (a name it had before may be another's).
    let own: BooleanChunked = strings(&judged, "evaluator")?
        .iter()
        .zip(strings(&judged, "name")?.iter())
        .map(|(evaluator, name)| {
            Some(
                by_id
                    .get(evaluator.unwrap_or_default())
                    .is_some_and(|j| Some(j.score_name.as_str()) == name),
            )
        })
        .collect();
    // One score per judge and target, the newest, in time order.
    let by_time = || SortMultipleOptions::default().with_maintain_order(true);
    let target = [
        "evaluator".to_owned(),
        "trace_id".to_owned(),
        "observation".to_owned(),
    ];
    let judged = judged
        .filter(&own)
        .and_then(|df| df.sort(["timestamp_us"], by_time()))
        .and_then(|df| df.unique_stable(Some(&target[..]), UniqueKeepStrategy::Last, None))
        .and_then(|df| df.sort(["timestamp_us"], by_time()))
        .map_err(polars)?;
    // Each judge's data type is its newest score's: its scores of other types are left out.
    let evaluators = strings(&judged, "evaluator")?;
    let kinds = strings(&judged, "judge_type")?;
    let mut kind_of: HashMap<&str, &str> = HashMap::new();
    for (evaluator, kind) in evaluators.iter().zip(kinds.iter()) {
        if let (Some(evaluator), Some(kind)) = (evaluator, kind) {
            kind_of.insert(evaluator, kind);
        }
    }
    for (evaluator, kind) in &kind_of {
        if let Some(judge) = by_id.get(*evaluator) {
            result.insert(judge.id, (Some((*kind).to_owned()), Vec::new()));
        }
    }
    let keep: BooleanChunked = evaluators
        .iter()
        .zip(kinds.iter())
        .map(|(evaluator, kind)| Some(kind_of.get(evaluator.unwrap_or_default()).copied() == kind))
        .collect();
    let judged = judged.filter(&keep).map_err(polars)?;
    let author = format!("metadata_values[indexOf(metadata_keys, {})]", quote(AUTHOR_KEY));
    let Some(humans) = query_frame(
        clickhouse,
        &format!(
            "SELECT name, trace_id, ifNull(observation_id, '') AS observation, data_type AS human_type, \
             value AS human_value, ifNull(string_value, '') AS human_label, {author} AS author \
             FROM scores FINAL WHERE project_id = {project} AND source = 'annotation' AND name IN ({names})"
        ),
    )
    .await?
    else {
        return Ok(result);
    };
    if judged.height() == 0 {
        return Ok(result);
    }
    let keys = ["name", "trace_id", "observation"];
    let joined = judged.inner_join(&humans, keys, keys).map_err(polars)?;
    if joined.height() == 0 {
        return Ok(result);
    }
    for group in joined.partition_by(["evaluator"], true).map_err(polars)? {
        let evaluator = strings(&group, "evaluator")?
            .get(0)
            .unwrap_or_default()
            .to_owned();
        let Some(judge) = by_id.get(evaluator.as_str()) else {
            continue;
        };
        let column = |name: &str| strings(&group, name);
        let number = |name: &str| group.column(name).and_then(|c| c.f64()).map_err(polars);
        let (traces, observations, authors) =
            (column("trace_id")?, column("observation")?, column("author")?);
        let (judge_types, human_types) = (column("judge_type")?, column("human_type")?);
        let (judge_labels, human_labels) = (column("judge_label")?, column("human_label")?);
        let (judge_values, human_values) = (number("judge_value")?, number("human_value")?);
        let text = |chunked: &StringChunked, i: usize| chunked.get(i).unwrap_or_default().to_owned();
        let present =
            |chunked: &StringChunked, i: usize| chunked.get(i).filter(|s| !s.is_empty()).map(str::to_owned);
        let pairs = &mut result.entry(judge.id).or_default().1;
        for i in 0..group.height() {
            // People's scores of another data type under the name are not comparable.
            if judge_types.get(i) != human_types.get(i) {
                continue;
            }
            pairs.push(Pair {
                trace_id: text(traces, i),
                observation_id: present(observations, i),
                author: present(authors, i),
                judge_value: judge_values.get(i).unwrap_or_default(),
                human_value: human_values.get(i).unwrap_or_default(),
                judge_label: text(judge_labels, i),
                human_label: text(human_labels, i),
            });
        }
    }
    Ok(result)
}

async fn upsert(pg: &Client, judge: &Judge, calibration: &Calibration) -> Result<(), String> {
    let confusion = calibration
        .confusion
        .as_ref()
        .map(|c| serde_json::to_value(c).expect("a confusion matrix serializes"));
    let disagreements = serde_json::to_value(&calibration.disagreements).expect("disagreements serialize");
    let pairs = i32::try_from(calibration.pairs).unwrap_or(i32::MAX);
    // A judge deleted meanwhile is skipped rather than failing the run.
    pg.execute(
        "INSERT INTO judge_calibrations (evaluator_id, project_id, score_name, data_type, pairs, accuracy, kappa,
                mean_absolute_error, spearman, confusion, disagreements, computed_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now()
         WHERE EXISTS (SELECT 1 FROM evaluators WHERE id = $1)
         ON CONFLICT (evaluator_id) DO UPDATE SET
             project_id = excluded.project_id, score_name = excluded.score_name, data_type = excluded.data_type,
             pairs = excluded.pairs, accuracy = excluded.accuracy, kappa = excluded.kappa,
             mean_absolute_error = excluded.mean_absolute_error, spearman = excluded.spearman,
             confusion = excluded.confusion, disagreements = excluded.disagreements,
             computed_at = excluded.computed_at",
        &[
            &judge.id,
            &judge.project_id,
            &judge.score_name,
            &calibration.data_type,
            &pairs,
            &calibration.accuracy,
            &calibration.kappa,
            &calibration.mean_absolute_error,
            &calibration.spearman,
            &confusion,
            &disagreements,
        ],
    )
    .await
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(())
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CalibrationReport {
    /// LLM judges known.
    pub judges: u64,
    /// Judges' and people's scores given in the window (under the judges' names).
    pub scores: u64,
    /// Judges recomputed, and the pairs they were recomputed from.
    pub recomputed: u64,
    pub pairs: u64,
    /// Projects whose judges could not be calibrated this run (logged; the rest go on).
    pub failed: u64,
    pub watermark: Option<i64>,
}

/// The (project, score name) pairs people completed annotation-queue items with since
/// `watermark` (µs): their reviews are stamped when they are recorded, after their scores are
/// stored, so these need no settling time. Reviews of the last [`SETTLE_SECONDS`] are seen by
/// the next run too (the watermark trails the clock), which recomputes their judges once more.
async fn reviewed_since(pg: &Client, watermark: Option<i64>) -> Result<BTreeSet<(Uuid, String)>, String> {
    let rows = pg
        .query(
            "SELECT DISTINCT q.project_id, c.name FROM annotation_reviews r
             JOIN annotation_queue_items i ON i.id = r.item_id
             JOIN annotation_queues q ON q.id = i.queue_id
             JOIN score_configs c ON c.id = ANY(q.score_config_ids) AND c.project_id = q.project_id
             WHERE r.outcome = 'completed'
               AND ($1::bigint IS NULL OR r.at > to_timestamp($1::bigint::float8 / 1e6))",
            &[&watermark],
        )
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Recomputes the judges touched by scores given after `watermark` (µs) and at least
/// [`SETTLE_SECONDS`] before ClickHouse's clock.
pub async fn run(
    pg: &Client,
    clickhouse: &ClickHouse,
    watermark: Option<i64>,
) -> Result<CalibrationReport, String> {
    let until = (clickhouse.clock().await? - SETTLE_SECONDS) * 1_000_000;
    run_until(pg, clickhouse, watermark, until).await
}

/// [`run`] over the window `(watermark, until_us]`.
pub async fn run_until(
    pg: &Client,
    clickhouse: &ClickHouse,
    watermark: Option<i64>,
    until_us: i64,
) -> Result<CalibrationReport, String> {
    let mut report = CalibrationReport {
        watermark,
        ..CalibrationReport::default()
    };
    let judges = judges(pg).await?;
    report.judges = judges.len() as u64;
    let reviewed = reviewed_since(pg, watermark).await?;
    // An empty window (a run within the same second as the last) reads nothing.
    if watermark.is_some_and(|w| w >= until_us) && reviewed.is_empty() {
        return Ok(report);
    }
    report.watermark = Some(until_us.max(watermark.unwrap_or(i64::MIN)));
    if judges.is_empty() {
        return Ok(report);
    }
    let mut given = Vec::new();
    if let Some(df) = query_frame(clickhouse, &window_sql(&judges, watermark, until_us)).await? {
        let counts = df.column("scores").and_then(|c| c.u64()).map_err(polars)?;
        let (projects, names) = (strings(&df, "project_id")?, strings(&df, "name")?);
        let (sources, evaluators) = (strings(&df, "source")?, strings(&df, "evaluator")?);
        for i in 0..df.height() {
            let text = |chunked: &StringChunked| chunked.get(i).unwrap_or_default().to_owned();
            given.push(Given {
                project_id: text(projects),
                name: text(names),
                source: text(sources),
                evaluator_id: text(evaluators),
                scores: counts.get(i).unwrap_or_default(),
            });
        }
    }
    report.scores = given.iter().map(|g| g.scores).sum();
    let mut touched = touched(&judges, &given);
    touched.extend(
        judges
            .iter()
            .filter(|j| reviewed.contains(&(j.project_id, j.score_name.clone())))
            .map(|j| j.id),
    );
    let mut by_project: BTreeMap<Uuid, Vec<&Judge>> = BTreeMap::new();
    for judge in judges.iter().filter(|j| touched.contains(&j.id)) {
        by_project.entry(judge.project_id).or_default().push(judge);
    }
    for (project, judges) in by_project {
        // One project's scores that cannot be read or compared stop only that project's
        // calibration, not every project's.
        let mut pairs = match read_pairs(clickhouse, &project.to_string(), &judges).await {
            Ok(pairs) => pairs,
            Err(error) => {
                tracing::warn!(%project, %error, "calibrating the project's judges failed");
                report.failed += 1;
                continue;
            }
        };
        for judge in judges {
            let (data_type, judge_pairs) = pairs.remove(&judge.id).unwrap_or_default();
            let calibration = match &data_type {
                Some(kind) => calibrate(kind, &judge_pairs, &judge.categories),
                None => Calibration::default(),
            };
            upsert(pg, judge, &calibration).await?;
            report.recomputed += 1;
            report.pairs += calibration.pairs as u64;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn calibration_kappa_of_known_tables() {
        // po = 35/50 = 0.7; pe = (25·30 + 25·20) / 50² = 0.5; (0.7 − 0.5) / (1 − 0.5) = 0.4.
        assert!(close(cohen_kappa(&[vec![20, 5], vec![10, 15]]), 0.4));
        // po = 0.6; pe = 0.6·0.7 + 0.4·0.3 = 0.54; 0.06 / 0.46.
        assert!(close(cohen_kappa(&[vec![45, 15], vec![25, 15]]), 0.06 / 0.46));
        // Perfect agreement over two labels is 1; systematic disagreement is negative.
        assert!(close(cohen_kappa(&[vec![5, 0], vec![0, 5]]), 1.0));
        assert!(close(cohen_kappa(&[vec![0, 5], vec![5, 0]]), -1.0));
        // Three labels: po = 0.6; rows 0.4/0.3/0.3, columns 0.4/0.3/0.3 → pe = 0.34.
        let three = [vec![2, 1, 1], vec![1, 2, 0], vec![1, 0, 2]];
        assert!(close(cohen_kappa(&three), (0.6 - 0.34) / 0.66));
    }

    #[test]
    fn calibration_kappa_is_none_when_chance_agreement_is_total() {
        // Both sides gave only one same label: chance agreement 1, kappa 0/0.
        assert_eq!(cohen_kappa(&[vec![10]]), None);
        assert_eq!(cohen_kappa(&[vec![7, 0], vec![0, 0]]), None);
        assert_eq!(cohen_kappa(&[vec![0, 0], vec![0, 0]]), None);
    }

    #[test]
    fn calibration_accuracy_and_mean_absolute_error() {
        assert_eq!(accuracy(&[(1, 1), (1, 0), (0, 0), (0, 0)]), Some(0.75));
        assert_eq!(accuracy::<u8>(&[]), None);
        // (|1 − 2| + |3 − 3| + |5 − 2|) / 3 = 4/3.
        assert!(close(
            mean_absolute_error(&[(1.0, 2.0), (3.0, 3.0), (5.0, 2.0)]),
            4.0 / 3.0
        ));
        assert_eq!(mean_absolute_error(&[]), None);
    }

    #[test]
    fn calibration_spearman_averages_tied_ranks() {
        assert_eq!(
            average_ranks(&[5.0, 6.0, 7.0, 8.0, 7.0]),
            [1.0, 2.0, 3.5, 5.0, 3.5]
        );
        assert_eq!(average_ranks(&[2.0, 2.0, 2.0]), [2.0, 2.0, 2.0]);
        // Ranks (1..5) and (1, 2, 3.5, 5, 3.5): Σdxdy = 8, Σdx² = 10, Σdy² = 9.5 → 8/√95
        // (scipy.stats.spearmanr gives 0.8207826816681233).
        let pairs: Vec<(f64, f64)> = [(1.0, 5.0), (2.0, 6.0), (3.0, 7.0), (4.0, 8.0), (5.0, 7.0)].into();
        let rho = spearman(&pairs).unwrap();
        assert!((rho - 8.0 / 95f64.sqrt()).abs() < 1e-12);
        assert!((rho - 0.820_782_681_668_123_3).abs() < 1e-12);
        // Monotone but not linear is still 1; reversed is −1.
        assert!(close(
            spearman(&[(1.0, 1.0), (2.0, 4.0), (3.0, 9.0), (4.0, 100.0)]),
            1.0
        ));
        assert!(close(spearman(&[(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]), -1.0));
    }

    #[test]
    fn calibration_spearman_needs_two_pairs_and_variance() {
        assert_eq!(spearman(&[]), None);
        assert_eq!(spearman(&[(1.0, 2.0)]), None);
        assert_eq!(spearman(&[(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]), None);
        assert_eq!(spearman(&[(4.0, 1.0), (4.0, 2.0)]), None);
    }

    #[test]
    fn calibration_confusion_rows_are_people_columns_the_judge() {
        let pairs: Vec<(String, String)> = [("b", "a"), ("a", "a"), ("c", "a"), ("b", "b"), ("b", "a")]
            .iter()
            .map(|(h, j)| ((*h).to_owned(), (*j).to_owned()))
            .collect();
        let matrix = confusion(&pairs, &["b".into(), "z".into()]);
        // Preferred labels first (even unseen), then the others sorted.
        assert_eq!(matrix.labels, ["b", "z", "a", "c"]);
        assert_eq!(
            matrix.counts,
            [
                vec![1, 0, 2, 0],
                vec![0, 0, 0, 0],
                vec![0, 0, 1, 0],
                vec![0, 0, 1, 0]
            ]
        );
        assert_eq!(
            serde_json::to_value(&matrix).unwrap(),
            json!({"labels": ["b", "z", "a", "c"], "counts": [[1, 0, 2, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]})
        );
    }

    fn pair(trace: &str, author: &str, judge: f64, human: f64) -> Pair {
        Pair {
            trace_id: trace.to_owned(),
            observation_id: None,
            author: Some(author.to_owned()),
            judge_value: judge,
            human_value: human,
            judge_label: String::new(),
            human_label: String::new(),
        }
    }

    #[test]
    fn calibration_of_boolean_judges() {
        // Confusion (rows human, columns judge) [[20, 5], [10, 15]].
        let mut pairs = Vec::new();
        for (count, human, judge) in [(20, 0.0, 0.0), (5, 0.0, 1.0), (10, 1.0, 0.0), (15, 1.0, 1.0)] {
            for i in 0..count {
                pairs.push(pair(&format!("t{human}{judge}-{i:03}"), "ann", judge, human));
            }
        }
        let calibration = calibrate("boolean", &pairs, &[]);
        assert_eq!(calibration.pairs, 50);
        assert!(close(calibration.accuracy, 0.7));
        assert!(close(calibration.kappa, 0.4));
        assert_eq!(calibration.mean_absolute_error, None);
        assert_eq!(calibration.spearman, None);
        let matrix = calibration.confusion.unwrap();
        assert_eq!(matrix.labels, ["false", "true"]);
        assert_eq!(matrix.counts, [vec![20, 5], vec![10, 15]]);
        assert_eq!(calibration.disagreements.len(), 15);
        let first = &calibration.disagreements[0];
        assert_eq!((&first.judge, &first.human), (&json!(true), &json!(false)));
        assert_eq!(first.author.as_deref(), Some("ann"));
    }

    #[test]
    fn calibration_counts_labels_past_the_cap_as_other() {
        let pairs: Vec<(String, String)> = (0..10_000)
            .map(|i| (format!("label-{i}"), "good".to_owned()))
            .collect();
        let matrix = confusion(&pairs, &["good".to_owned()]);
        assert_eq!(matrix.labels.len(), MAX_LABELS);
        assert_eq!(matrix.labels.last().map(String::as_str), Some(OTHER_LABEL));
        assert_eq!(matrix.counts.iter().flatten().sum::<u64>(), 10_000);
    }

    #[test]
    fn calibration_of_categorical_judges_keeps_config_order_and_caps_disagreements() {
        let label = |trace: String, judge: &str, human: &str| Pair {
            judge_label: judge.to_owned(),
            human_label: human.to_owned(),
            ..pair(&trace, "ann", 0.0, 0.0)
        };
        let mut pairs = vec![
            label("a".into(), "good", "good"),
            label("b".into(), "bad", "good"),
            label("c".into(), "bad", "bad"),
            label("d".into(), "good", "meh"),
        ];
        for i in 0..150 {
            pairs.push(label(format!("z{i:03}"), "good", "bad"));
        }
        let categories = vec!["good".to_owned(), "bad".to_owned()];
        let calibration = calibrate("categorical", &pairs, &categories);
        let matrix = calibration.confusion.unwrap();
        assert_eq!(matrix.labels, ["good", "bad", "meh"]);
        assert_eq!(matrix.counts, [vec![1, 1, 0], vec![150, 1, 0], vec![1, 0, 0]]);
        assert!(close(calibration.accuracy, 2.0 / 154.0));
        assert_eq!(calibration.disagreements.len(), MAX_DISAGREEMENTS);
        // By target: b, d, then the z's.
        assert_eq!(calibration.disagreements[0].trace_id, "b");
        assert_eq!(calibration.disagreements[0].judge, json!("bad"));
        assert_eq!(calibration.disagreements[1].trace_id, "d");
        assert_eq!(calibration.disagreements[1].human, json!("meh"));
    }

    #[test]
    fn calibration_of_numeric_judges() {
        let pairs = vec![
            pair("t1", "ann", 1.0, 2.0),
            pair("t2", "ann", 2.0, 2.0),
            pair("t3", "ann", 3.0, 4.0),
            pair("t4", "ann", 4.0, 5.0),
            pair("t5", "ann", 5.0, 1.5),
        ];
        let calibration = calibrate("numeric", &pairs, &[]);
        assert!(close(
            calibration.mean_absolute_error,
            (1.0 + 0.0 + 1.0 + 1.0 + 3.5) / 5.0
        ));
        assert_eq!(calibration.accuracy, None);
        assert_eq!(calibration.kappa, None);
        assert_eq!(calibration.confusion, None);
        // The largest difference first, then by target.
        let order: Vec<&str> = calibration
            .disagreements
            .iter()
            .map(|d| d.trace_id.as_str())
            .collect();
        assert_eq!(order, ["t5", "t1", "t3", "t4"]);
        assert_eq!(calibration.disagreements[0].judge, json!(5.0));
        assert_eq!(calibration.disagreements[0].human, json!(1.5));
    }

    #[test]
    fn calibration_without_pairs_has_no_metrics() {
        let calibration = calibrate("boolean", &[], &[]);
        assert_eq!(calibration.pairs, 0);
        assert_eq!(
            (calibration.accuracy, calibration.kappa, calibration.confusion),
            (None, None, None)
        );
        assert_eq!(calibrate("text", &[pair("t", "a", 0.0, 0.0)], &[]).pairs, 1);
    }

    #[test]
    fn calibration_links_encode_ids() {
        assert_eq!(link("t 1/2", None), "#/traces/t%201%2F2");
        assert_eq!(link("abc", Some("o?x&y")), "#/traces/abc?observation=o%3Fx%26y");
        assert_eq!(link("é", None), "#/traces/%C3%A9");
    }

    fn judge(id: u128, project: u128, name: &str) -> Judge {
        Judge {
            id: Uuid::from_u128(id),
            project_id: Uuid::from_u128(project),
            score_name: name.to_owned(),
            categories: Vec::new(),
        }
    }

    #[test]
    fn calibration_touches_the_judge_and_its_projects_judges_of_the_name() {
        let judges = [
            judge(1, 10, "correct"),
            judge(2, 10, "correct"),
            judge(3, 20, "correct"),
            judge(4, 10, "tone"),
        ];
        let given = |project: u128, name: &str, source: &str, evaluator: &str| Given {
            project_id: Uuid::from_u128(project).to_string(),
            name: name.to_owned(),
            source: source.to_owned(),
            evaluator_id: evaluator.to_owned(),
            scores: 1,
        };
        let one = Uuid::from_u128(1).to_string();
        // A judge's own score touches it alone.
        assert_eq!(
            touched(&judges, &[given(10, "correct", "eval", &one)]),
            BTreeSet::from([Uuid::from_u128(1)])
        );
        // A person's score touches every judge of the name in that project only.
        assert_eq!(
            touched(&judges, &[given(10, "correct", "annotation", "")]),
            BTreeSet::from([Uuid::from_u128(1), Uuid::from_u128(2)])
        );
        // Another project's score naming the judge, another name, an API score: nothing.
        assert!(
            touched(
                &judges,
                &[
                    given(20, "correct", "eval", &one),
                    given(10, "tone", "eval", &one),
                    given(10, "correct", "api", "")
                ]
            )
            .is_empty()
        );
    }

    #[test]
    fn calibration_window_bounds_time_and_partitions() {
        let judges = [judge(1, 10, "correct")];
        let sql = window_sql(&judges, Some(1_700_000_000_500_000), 1_700_000_900_000_000);
        assert!(sql.contains("timestamp >= toDateTime(1700000000)"), "{sql}");
        assert!(sql.contains("timestamp_us > 1700000000500000"), "{sql}");
        assert!(sql.contains("timestamp <= toDateTime(1700000900)"), "{sql}");
        assert!(sql.contains("timestamp_us <= 1700000900000000"), "{sql}");
        assert!(sql.contains("name IN ('correct')"), "{sql}");
        let first = window_sql(&judges, None, 1_700_000_900_000_000);
        assert!(!first.contains("timestamp >="), "{first}");
    }
}
