//! The experiment-rollup job: per experiment and score name, the score distribution, pass rate,
//! cost, latency and tokens of its traces, and a paired comparison with a baseline experiment
//! on the same dataset (per-item mean difference with a bootstrap 95% confidence interval).
//!
//! Experiments live in PostgreSQL; traces name the experiment and dataset item they ran. The
//! job reads the experiments' traces, their observations' totals and their scores from
//! ClickHouse (Native → Arrow → Polars), computes every rollup afresh and writes one row per
//! (experiment, score name) to `experiment_rollups`, versioned by the run time so a re-run
//! replaces it. Traces without scores still give their experiment a row with an empty score
//! name, so cost and latency are visible before any evaluator has run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use agenttrace_etl::clickhouse::catalog::{COST_PRECISION, COST_SCALE, Table, cost_to_decimal};
use agenttrace_etl::clickhouse::{ClickHouse, quote};
use arrow_array::builder::{Decimal128Builder, Float64Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

use crate::frames::{query_frame, strings};

/// Bootstrap resamples per paired comparison.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// The bootstrap's seed: the same data always gives the same interval.
pub const BOOTSTRAP_SEED: u64 = 0x5eed_2026;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub id: String,
    pub project_id: String,
    pub dataset_id: String,
    /// The experiment this one is compared with: `metadata.baseline_experiment_id` if it names
    /// another experiment on the same dataset, else the one created just before it.
    pub baseline: Option<String>,
}

/// One trace of an experiment, with its observations' totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFacts {
    pub experiment_id: String,
    pub item_id: String,
    /// Summed over priced observations; None if none was priced.
    pub cost: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// First observation start to last observation end.
    pub latency_ms: Option<f64>,
}

/// One scored value of an experiment's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreValue {
    pub trace_id: String,
    pub name: String,
    pub data_type: String,
    pub value: f64,
}

/// One `experiment_rollups` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    pub project_id: String,
    pub experiment_id: String,
    pub dataset_id: String,
    pub score_name: String,
    pub items: u64,
    pub scores: u64,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p95: Option<f64>,
    pub pass_rate: Option<f64>,
    pub total_cost: Option<f64>,
    pub mean_cost: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub baseline_experiment_id: Option<String>,
    pub paired_items: u64,
    pub paired_mean_difference: Option<f64>,
    pub paired_ci_low: Option<f64>,
    pub paired_ci_high: Option<f64>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupReport {
    pub experiments: u64,
    pub traces: u64,
    pub rows: u64,
}

/// Every experiment, with its baseline chosen (see [`Experiment::baseline`]).
pub async fn experiments(pg: &Client) -> Result<Vec<Experiment>, tokio_postgres::Error> {
    let rows = pg
        .query(
            "SELECT coalesce(external_id, id::text) AS trace_experiment_id, project_id::text AS project_id,
                    dataset_id::text AS dataset_id, metadata->>'baseline_experiment_id' AS baseline_experiment_id
             FROM experiments ORDER BY project_id, dataset_id, created_at, id",
            &[],
        )
        .await?;
    let listed: Vec<(Experiment, Option<String>)> = rows
        .iter()
        .map(|row| {
            let experiment = Experiment {
                id: row.get("trace_experiment_id"),
                project_id: row.get("project_id"),
                dataset_id: row.get("dataset_id"),
                baseline: None,
            };
            (experiment, row.get("baseline_experiment_id"))
        })
        .collect();
    Ok(choose_baselines(listed))
}

/// Picks each experiment's baseline among the experiments of its project and dataset, which
/// come in creation order.
fn choose_baselines(listed: Vec<(Experiment, Option<String>)>) -> Vec<Experiment> {
    let same_dataset =
        |a: &Experiment, b: &Experiment| a.project_id == b.project_id && a.dataset_id == b.dataset_id;
    let mut chosen = Vec::with_capacity(listed.len());
    for (index, (experiment, named)) in listed.iter().enumerate() {
        let named = named.as_ref().filter(|named| {
            *named != &experiment.id
                && listed
                    .iter()
                    .any(|(other, _)| &other.id == *named && same_dataset(other, experiment))
        });
        let previous = listed[..index]
            .iter()
            .rev()
            .find(|(other, _)| same_dataset(other, experiment))
            .map(|(other, _)| other.id.clone());
        chosen.push(Experiment {
            baseline: named.cloned().or(previous),
            ..experiment.clone()
        });
    }
    chosen
}

/// Linear-interpolated quantile (numpy's default), through Polars.
fn quantile(values: &Float64Chunked, q: f64) -> Option<f64> {
    values.quantile(q, QuantileMethod::Linear).ok().flatten()
}

/// The percentile bootstrap 95% interval of the mean of `differences`.
pub fn bootstrap_ci(differences: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    if differences.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = differences.len();
    let means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| differences[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    let means = Float64Chunked::from_vec("means".into(), means);
    Some((quantile(&means, 0.025)?, quantile(&means, 0.975)?))
}

/// Computes every rollup of the given experiments from their traces and scores.
pub fn compute(
    experiments: &[Experiment],
    traces: &HashMap<String, TraceFacts>,
    scores: &[ScoreValue],
) -> Result<Vec<Rollup>, PolarsError> {
    // Per experiment with traces: their cost, latency and tokens.
    let mut base: BTreeMap<&str, Rollup> = BTreeMap::new();
    for experiment in experiments {
        let facts: Vec<&TraceFacts> = traces
            .values()
            .filter(|t| t.experiment_id == experiment.id)
            .collect();
        if facts.is_empty() {
            continue;
        }
        let costs: Vec<f64> = facts.iter().filter_map(|t| t.cost).collect();
        let latencies = Float64Chunked::from_vec(
            "latency".into(),
            facts.iter().filter_map(|t| t.latency_ms).collect(),
        );
        let total_cost = (!costs.is_empty()).then(|| costs.iter().sum::<f64>());
        base.insert(
            &experiment.id,
            Rollup {
                project_id: experiment.project_id.clone(),
                experiment_id: experiment.id.clone(),
                dataset_id: experiment.dataset_id.clone(),
                total_cost,
                mean_cost: total_cost.map(|total| total / costs.len() as f64),
                latency_p50_ms: quantile(&latencies, 0.5),
                latency_p95_ms: quantile(&latencies, 0.95),
                input_tokens: facts.iter().map(|t| t.input_tokens).sum(),
                output_tokens: facts.iter().map(|t| t.output_tokens).sum(),
                baseline_experiment_id: experiment.baseline.clone(),
                ..Rollup::default()
            },
        );
    }

    // Scores of the experiments' traces, as a frame partitioned by (experiment, score name).
    let scored: Vec<(&ScoreValue, &TraceFacts)> = scores
        .iter()
        .filter_map(|s| traces.get(&s.trace_id).map(|t| (s, t)))
        .filter(|(_, t)| base.contains_key(t.experiment_id.as_str()))
        .collect();
    let frame = DataFrame::new_infer_height(vec![
        Column::new(
            "experiment_id".into(),
            scored
                .iter()
                .map(|(_, t)| t.experiment_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "item_id".into(),
            scored.iter().map(|(_, t)| t.item_id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            scored.iter().map(|(s, _)| s.name.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "data_type".into(),
            scored
                .iter()
                .map(|(s, _)| s.data_type.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "value".into(),
            scored.iter().map(|(s, _)| s.value).collect::<Vec<_>>(),
        ),
    ])?;

    let mut rows = Vec::new();
    // Per (experiment, score name): each dataset item's mean score, for the paired comparison.
    let mut item_means: HashMap<(String, String), BTreeMap<String, f64>> = HashMap::new();
    let groups = if frame.height() == 0 {
        Vec::new()
    } else {
        frame.partition_by(["experiment_id", "name"], true)?
    };
    for group in groups {
        let first = |column: &str| -> Result<String, PolarsError> {
            Ok(group.column(column)?.str()?.get(0).unwrap_or_default().to_owned())
        };
        let (experiment_id, name) = (first("experiment_id")?, first("name")?);
        let Some(template) = base.get(experiment_id.as_str()) else {
            continue;
        };
        let kinds = group.column("data_type")?.str()?;
        // Categorical scores have no numeric value: they are counted, not averaged.
        let numeric = kinds.iter().all(|k| k != Some("categorical"));
        let boolean = kinds.iter().all(|k| k == Some("boolean"));
        let values = group.column("value")?.f64()?;
        let items = group.column("item_id")?.str()?;
        let mut row = Rollup {
            score_name: name.clone(),
            scores: group.height() as u64,
            items: group.column("item_id")?.n_unique()? as u64,
            ..template.clone()
        };
        if numeric {
            row.mean = values.mean();
            row.median = quantile(values, 0.5);
            row.p95 = quantile(values, 0.95);
            row.pass_rate = boolean.then_some(row.mean).flatten();
            let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
            for (item, value) in items.iter().zip(values.iter()) {
                if let (Some(item), Some(value)) = (item, value)
                    && !item.is_empty()
                {
                    let entry = sums.entry(item.to_owned()).or_default();
                    entry.0 += value;
                    entry.1 += 1;
                }
            }
            item_means.insert(
                (experiment_id.clone(), name.clone()),
                sums.into_iter()
                    .map(|(item, (sum, n))| (item, sum / f64::from(n)))
                    .collect(),
            );
        }
        rows.push(row);
    }
    for row in &mut rows {
        let Some(baseline) = row.baseline_experiment_id.clone() else {
            continue;
        };
        let key = |experiment: &str| (experiment.to_owned(), row.score_name.clone());
        let (Some(mine), Some(theirs)) = (
            item_means.get(&key(&row.experiment_id)),
            item_means.get(&key(&baseline)),
        ) else {
            continue;
        };
        let differences: Vec<f64> = mine
            .iter()
            .filter_map(|(item, value)| theirs.get(item).map(|base| value - base))
            .collect();
        row.paired_items = differences.len() as u64;
        if !differences.is_empty() {
            row.paired_mean_difference = Some(differences.iter().sum::<f64>() / differences.len() as f64);
            if let Some((low, high)) = bootstrap_ci(&differences, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED) {
                row.paired_ci_low = Some(low);
                row.paired_ci_high = Some(high);
            }
        }
    }
    // Experiments with traces but no scores yet.
    for (experiment_id, template) in base {
        if !rows.iter().any(|r| r.experiment_id == experiment_id) {
            rows.push(template);
        }
    }
    Ok(rows)
}

/// Reads the traces and scores of one project's experiments.
async fn read_project(
    clickhouse: &ClickHouse,
    project_id: &str,
    experiment_ids: &[&str],
) -> Result<(HashMap<String, TraceFacts>, Vec<ScoreValue>), String> {
    let project = quote(project_id);
    let listed: Vec<String> = experiment_ids.iter().map(|id| quote(id)).collect();
    let in_experiments = format!(
        "SELECT id FROM traces WHERE project_id = {project} AND experiment_id IN ({})",
        listed.join(",")
    );
    let mut traces = HashMap::new();
    let Some(df) = query_frame(
        clickhouse,
        &format!(
            "SELECT id, assumeNotNull(experiment_id) AS experiment_id, ifNull(dataset_item_id, '') AS item_id \
             FROM traces FINAL WHERE project_id = {project} AND experiment_id IN ({})",
            listed.join(",")
        ),
    )
    .await?
    else {
        return Ok((traces, Vec::new()));
    };
    for ((id, experiment), item) in strings(&df, "id")?
        .iter()
        .zip(strings(&df, "experiment_id")?.iter())
        .zip(strings(&df, "item_id")?.iter())
    {
        traces.insert(
            id.unwrap_or_default().to_owned(),
            TraceFacts {
                experiment_id: experiment.unwrap_or_default().to_owned(),
                item_id: item.unwrap_or_default().to_owned(),
                ..TraceFacts::default()
            },
        );
    }

    let totals = query_frame(
        clickhouse,
        &format!(
            "SELECT trace_id, \
             if(countIf(total_cost IS NOT NULL) = 0, -1., toFloat64(sum(ifNull(total_cost, toDecimal64(0, 12))))) AS cost, \
             sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
             toFloat64(ifNull(max(end_time_us), max(start_time_us)) - min(start_time_us)) / 1000 AS latency_ms \
             FROM observations FINAL WHERE project_id = {project} AND trace_id IN ({in_experiments}) GROUP BY trace_id"
        ),
    )
    .await?;
    if let Some(df) = totals {
        let polars = |e: PolarsError| e.to_string();
        let ids = strings(&df, "trace_id")?;
        let cost = df.column("cost").and_then(|c| c.f64()).map_err(polars)?;
        let input = df.column("input_tokens").and_then(|c| c.u64()).map_err(polars)?;
        let output = df.column("output_tokens").and_then(|c| c.u64()).map_err(polars)?;
        let latency = df.column("latency_ms").and_then(|c| c.f64()).map_err(polars)?;
        for (i, id) in ids.iter().enumerate() {
            if let Some(facts) = id.and_then(|id| traces.get_mut(id)) {
                facts.cost = cost.get(i).filter(|c| *c >= 0.0);
                facts.input_tokens = input.get(i).unwrap_or_default();
                facts.output_tokens = output.get(i).unwrap_or_default();
                facts.latency_ms = latency.get(i);
            }
        }
    }

    let mut scores = Vec::new();
    let scored = query_frame(
        clickhouse,
        &format!(
            "SELECT trace_id, name, data_type, value FROM scores FINAL \
             WHERE project_id = {project} AND trace_id IN ({in_experiments})"
        ),
    )
    .await?;
    if let Some(df) = scored {
        let values = df
            .column("value")
            .and_then(|c| c.f64())
            .map_err(|e| e.to_string())?;
        for (((trace, name), data_type), value) in strings(&df, "trace_id")?
            .iter()
            .zip(strings(&df, "name")?.iter())
            .zip(strings(&df, "data_type")?.iter())
            .zip(values.iter())
        {
            scores.push(ScoreValue {
                trace_id: trace.unwrap_or_default().to_owned(),
                name: name.unwrap_or_default().to_owned(),
                data_type: data_type.unwrap_or_default().to_owned(),
                value: value.unwrap_or_default(),
            });
        }
    }
    Ok((traces, scores))
}

/// The rollup rows as an `experiment_rollups` record batch.
fn to_batch(rows: &[Rollup], computed_at_us: i64) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let text = |get: fn(&Rollup) -> &str| -> ArrayRef {
        let mut builder = StringBuilder::new();
        rows.iter().for_each(|r| builder.append_value(get(r)));
        Arc::new(builder.finish())
    };
    let float = |get: fn(&Rollup) -> Option<f64>| -> ArrayRef {
        let mut builder = Float64Builder::new();
        rows.iter().for_each(|r| builder.append_option(get(r)));
        Arc::new(builder.finish())
    };
    let count = |get: fn(&Rollup) -> u64| -> ArrayRef {
        let mut builder = UInt64Builder::new();
        rows.iter().for_each(|r| builder.append_value(get(r)));
        Arc::new(builder.finish())
    };
    let mut computed_at = Int64Builder::new();
    let mut version = UInt64Builder::new();
    let mut total_cost = Decimal128Builder::new();
    let mut baseline = StringBuilder::new();
    for row in rows {
        computed_at.append_value(computed_at_us);
        version.append_value(computed_at_us as u64);
        total_cost.append_option(row.total_cost.map(cost_to_decimal));
        baseline.append_option(row.baseline_experiment_id.as_deref());
    }
    let mut total_cost = total_cost.with_precision_and_scale(COST_PRECISION, COST_SCALE)?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r.experiment_id, r.score_name))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        text(|r| &r.project_id),
        Arc::new(arrow_array::StringArray::from(ids)),
        text(|r| &r.experiment_id),
        text(|r| &r.dataset_id),
        text(|r| &r.score_name),
        Arc::new(computed_at.finish()),
        count(|r| r.items),
        count(|r| r.scores),
        float(|r| r.mean),
        float(|r| r.median),
        float(|r| r.p95),
        float(|r| r.pass_rate),
        Arc::new(total_cost.finish()),
        float(|r| r.mean_cost),
        float(|r| r.latency_p50_ms),
        float(|r| r.latency_p95_ms),
        count(|r| r.input_tokens),
        count(|r| r.output_tokens),
        Arc::new(baseline.finish()),
        count(|r| r.paired_items),
        float(|r| r.paired_mean_difference),
        float(|r| r.paired_ci_low),
        float(|r| r.paired_ci_high),
        Arc::new(version.finish()),
    ];
    RecordBatch::try_new(Table::ExperimentRollups.schema(), columns)
}

/// Recomputes the rollups of every experiment, project by project.
pub async fn run(pg: &Client, clickhouse: &ClickHouse, now_us: i64) -> Result<RollupReport, String> {
    let experiments = experiments(pg).await.map_err(|e| e.to_string())?;
    let mut report = RollupReport {
        experiments: experiments.len() as u64,
        ..RollupReport::default()
    };
    let mut by_project: BTreeMap<&str, Vec<Experiment>> = BTreeMap::new();
    for experiment in &experiments {
        by_project
            .entry(&experiment.project_id)
            .or_default()
            .push(experiment.clone());
    }
    for (project_id, experiments) in by_project {
        let ids: Vec<&str> = experiments.iter().map(|e| e.id.as_str()).collect();
        let (traces, scores) = read_project(clickhouse, project_id, &ids).await?;
        report.traces += traces.len() as u64;
        let rows = compute(&experiments, &traces, &scores).map_err(|e| e.to_string())?;
        if rows.is_empty() {
            continue;
        }
        report.rows += rows.len() as u64;
        let batch = to_batch(&rows, now_us).map_err(|e| e.to_string())?;
        clickhouse
            .insert_batches(Table::ExperimentRollups, std::slice::from_ref(&batch))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(id: &str, dataset: &str) -> (Experiment, Option<String>) {
        let experiment = Experiment {
            id: id.to_owned(),
            project_id: "p".to_owned(),
            dataset_id: dataset.to_owned(),
            baseline: None,
        };
        (experiment, None)
    }

    #[test]
    fn baselines_are_the_previous_experiment_on_the_dataset_unless_named() {
        let mut listed = vec![
            experiment("a", "d1"),
            experiment("b", "d2"),
            experiment("c", "d1"),
            experiment("d", "d1"),
        ];
        listed[3].1 = Some("a".to_owned());
        let chosen = choose_baselines(listed.clone());
        let baselines: Vec<Option<&str>> = chosen.iter().map(|e| e.baseline.as_deref()).collect();
        assert_eq!(baselines, [None, None, Some("a"), Some("a")]);
        // A named baseline on another dataset is ignored.
        listed[3].1 = Some("b".to_owned());
        assert_eq!(choose_baselines(listed)[3].baseline.as_deref(), Some("c"));
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_mean() {
        let differences: Vec<f64> = (0..50).map(|i| f64::from(i % 5) / 4.0 - 0.25).collect();
        let mean = differences.iter().sum::<f64>() / 50.0;
        let (low, high) = bootstrap_ci(&differences, 2_000, 7).unwrap();
        assert!(low < mean && mean < high, "{low} {mean} {high}");
        assert_eq!(bootstrap_ci(&differences, 2_000, 7), Some((low, high)));
        // A constant difference has a degenerate interval.
        assert_eq!(bootstrap_ci(&[0.5; 10], 100, 1), Some((0.5, 0.5)));
        assert_eq!(bootstrap_ci(&[], 100, 1), None);
    }

    #[test]
    fn rolls_up_scores_costs_and_pairs() {
        let experiments = choose_baselines(vec![experiment("base", "d"), experiment("new", "d")]);
        let mut traces = HashMap::new();
        for (trace, experiment, item, cost, latency) in [
            ("t1", "base", "i1", Some(0.5), 100.0),
            ("t2", "base", "i2", None, 300.0),
            ("t3", "new", "i1", Some(0.25), 200.0),
            ("t4", "new", "i2", Some(0.25), 400.0),
        ] {
            traces.insert(
                trace.to_owned(),
                TraceFacts {
                    experiment_id: experiment.to_owned(),
                    item_id: item.to_owned(),
                    cost,
                    input_tokens: 10,
                    output_tokens: 1,
                    latency_ms: Some(latency),
                },
            );
        }
        let score = |trace: &str, value: f64| ScoreValue {
            trace_id: trace.to_owned(),
            name: "correct".to_owned(),
            data_type: "boolean".to_owned(),
            value,
        };
        let scores = vec![
            score("t1", 1.0),
            score("t2", 0.0),
            score("t3", 1.0),
            score("t4", 1.0),
            score("elsewhere", 1.0),
        ];
        let rows = compute(&experiments, &traces, &scores).unwrap();
        let new = rows.iter().find(|r| r.experiment_id == "new").unwrap();
        assert_eq!((new.items, new.scores), (2, 2));
        assert_eq!(new.pass_rate, Some(1.0));
        assert_eq!(new.total_cost, Some(0.5));
        assert_eq!(new.latency_p50_ms, Some(300.0));
        assert_eq!(new.latency_p95_ms, Some(390.0));
        assert_eq!(new.input_tokens, 20);
        assert_eq!(new.baseline_experiment_id.as_deref(), Some("base"));
        assert_eq!(new.paired_items, 2);
        assert_eq!(new.paired_mean_difference, Some(0.5));
        let base = rows.iter().find(|r| r.experiment_id == "base").unwrap();
        assert_eq!(base.pass_rate, Some(0.5));
        // Only the priced trace counts towards the mean cost.
        assert_eq!((base.total_cost, base.mean_cost), (Some(0.5), Some(0.5)));
        assert_eq!(base.paired_mean_difference, None);
    }
}
