//! Two experiments side by side: per score, each one's mean and the paired difference (B − A)
//! over the dataset items both ran, with a bootstrap 95% confidence interval, as the rollup job
//! computes against a baseline; and each item's scores in both, for drilling down.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::conditions::Conditions;
use crate::analytics::paging::{parse_json_rows, read};
use crate::clickhouse::ClickHouse;

/// Resamples of the paired differences; 2,000 puts the interval's ends within about 0.01 of a
/// standard error of where more would.
const RESAMPLES: usize = 2000;
/// Fixed, so the same data always shows the same interval.
const SEED: u64 = 0x5eed;

/// A run item: which trace ran which dataset item.
#[derive(Debug, Clone)]
pub struct Run {
    pub dataset_item_id: String,
    pub trace_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ScoreComparison {
    pub score_name: String,
    #[schema(required = true)]
    pub a_mean: Option<f64>,
    #[schema(required = true)]
    pub b_mean: Option<f64>,
    pub a_scores: usize,
    pub b_scores: usize,
    pub paired_items: usize,
    #[schema(required = true)]
    pub mean_difference: Option<f64>,
    #[schema(required = true)]
    pub ci_low: Option<f64>,
    #[schema(required = true)]
    pub ci_high: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ItemComparison {
    pub dataset_item_id: String,
    #[schema(required = true)]
    pub a_trace_id: Option<String>,
    #[schema(required = true)]
    pub b_trace_id: Option<String>,
    /// Per score name, the mean of the item's scores in each experiment.
    pub a_scores: BTreeMap<String, f64>,
    pub b_scores: BTreeMap<String, f64>,
}

/// The runs traces record themselves: traces carrying the experiment's id and a dataset item
/// (what AgentTrace's own clients and `agenttrace demo` send; the Langfuse SDK records run
/// items in PostgreSQL instead).
pub async fn traced_runs(
    clickhouse: &ClickHouse,
    project: Uuid,
    experiment: &str,
) -> Result<Vec<Run>, AnalyticsError> {
    let mut conditions = Conditions::project(project);
    conditions
        .eq("experiment_id", experiment)
        .raw("isNotNull(dataset_item_id)");
    let sql = format!(
        "SELECT id, dataset_item_id FROM traces FINAL
         {}
         ORDER BY id LIMIT 100000 FORMAT JSONEachRow",
        conditions.render()
    );
    let body = read(clickhouse, &sql).await?;
    Ok(parse_json_rows(&body)?
        .into_iter()
        .filter_map(|row| {
            Some(Run {
                trace_id: row["id"].as_str()?.to_owned(),
                dataset_item_id: row["dataset_item_id"].as_str()?.to_owned(),
            })
        })
        .collect())
}

/// Each run's trace's numeric scores (deduplicated), then the comparison.
pub async fn compare(
    clickhouse: &ClickHouse,
    project: Uuid,
    a: &[Run],
    b: &[Run],
) -> Result<(Vec<ScoreComparison>, Vec<ItemComparison>), AnalyticsError> {
    let traces: Vec<&str> = a.iter().chain(b).map(|run| run.trace_id.as_str()).collect();
    let mut scores: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    // Bounded: an experiment's traces, a key range each.
    for chunk in traces.chunks(5000) {
        let mut conditions = Conditions::project(project);
        conditions.in_list("trace_id", chunk);
        let sql = format!(
            "SELECT trace_id, name, value FROM (
                 SELECT trace_id, id, name, value, data_type FROM scores
                 {}
                 ORDER BY trace_id, id, version DESC LIMIT 1 BY trace_id, id)
             WHERE data_type != 'categorical' FORMAT JSONEachRow",
            conditions.render()
        );
        let body = read(clickhouse, &sql).await?;
        for row in parse_json_rows(&body)? {
            let (Some(trace), Some(name), Some(value)) = (
                row["trace_id"].as_str(),
                row["name"].as_str(),
                row["value"].as_f64(),
            ) else {
                continue;
            };
            scores
                .entry(trace.to_owned())
                .or_default()
                .push((name.to_owned(), value));
        }
    }
    Ok(compare_scores(a, b, &scores))
}

/// Per item, the mean of each score over the item's traces in one experiment.
fn item_means(
    runs: &[Run],
    scores: &HashMap<String, Vec<(String, f64)>>,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut sums: BTreeMap<String, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    for run in runs {
        let item = sums.entry(run.dataset_item_id.clone()).or_default();
        for (name, value) in scores.get(&run.trace_id).into_iter().flatten() {
            let entry = item.entry(name.clone()).or_insert((0.0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(item, by_name)| {
            let means = by_name
                .into_iter()
                .map(|(name, (sum, n))| (name, sum / n as f64))
                .collect();
            (item, means)
        })
        .collect()
}

/// The comparison of `a` and `b`, given each trace's scores.
pub fn compare_scores(
    a: &[Run],
    b: &[Run],
    scores: &HashMap<String, Vec<(String, f64)>>,
) -> (Vec<ScoreComparison>, Vec<ItemComparison>) {
    let a_means = item_means(a, scores);
    let b_means = item_means(b, scores);
    let mut names: Vec<String> = a_means
        .values()
        .chain(b_means.values())
        .flat_map(|by_name| by_name.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    let raw = |runs: &[Run], name: &str| -> Vec<f64> {
        runs.iter()
            .flat_map(|run| scores.get(&run.trace_id).into_iter().flatten())
            .filter(|(score, _)| score == name)
            .map(|(_, value)| *value)
            .collect()
    };
    let summaries = names
        .iter()
        .map(|name| {
            let (a_values, b_values) = (raw(a, name), raw(b, name));
            let differences: Vec<f64> = b_means
                .iter()
                .filter_map(|(item, by_name)| Some(by_name.get(name)? - a_means.get(item)?.get(name)?))
                .collect();
            let (ci_low, ci_high) = bootstrap_interval(&differences).unzip();
            ScoreComparison {
                score_name: name.clone(),
                a_mean: mean(&a_values),
                b_mean: mean(&b_values),
                a_scores: a_values.len(),
                b_scores: b_values.len(),
                paired_items: differences.len(),
                mean_difference: mean(&differences),
                ci_low,
                ci_high,
            }
        })
        .collect();
    let first_trace = |runs: &[Run], item: &str| {
        runs.iter()
            .find(|run| run.dataset_item_id == item)
            .map(|run| run.trace_id.clone())
    };
    let mut items: Vec<String> = a_means.keys().chain(b_means.keys()).cloned().collect();
    items.sort();
    items.dedup();
    let items = items
        .into_iter()
        .map(|item| ItemComparison {
            a_trace_id: first_trace(a, &item),
            b_trace_id: first_trace(b, &item),
            a_scores: a_means.get(&item).cloned().unwrap_or_default(),
            b_scores: b_means.get(&item).cloned().unwrap_or_default(),
            dataset_item_id: item,
        })
        .collect();
    (summaries, items)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The 2.5th and 97.5th percentiles of the resampled means; none under two pairs.
fn bootstrap_interval(differences: &[f64]) -> Option<(f64, f64)> {
    if differences.len() < 2 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let n = differences.len();
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| differences[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((RESAMPLES - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(item: &str, trace: &str) -> Run {
        Run {
            dataset_item_id: item.into(),
            trace_id: trace.into(),
        }
    }

    #[test]
    fn pairs_items_both_ran_and_brackets_the_mean_difference() {
        let a: Vec<Run> = (0..20)
            .map(|i| run(&format!("item{i}"), &format!("a{i}")))
            .collect();
        let mut b: Vec<Run> = (0..20)
            .map(|i| run(&format!("item{i}"), &format!("b{i}")))
            .collect();
        b.push(run("only-b", "b-extra"));
        let mut scores = HashMap::new();
        for i in 0..20 {
            scores.insert(format!("a{i}"), vec![("accuracy".to_owned(), 0.5)]);
            // B is better by 0.1 to 0.3.
            let lift = 0.1 + 0.2 * (i as f64 / 19.0);
            scores.insert(format!("b{i}"), vec![("accuracy".to_owned(), 0.5 + lift)]);
        }
        scores.insert("b-extra".into(), vec![("accuracy".to_owned(), 0.0)]);
        let (summary, items) = compare_scores(&a, &b, &scores);
        let accuracy = &summary[0];
        assert_eq!(accuracy.paired_items, 20);
        assert_eq!((accuracy.a_scores, accuracy.b_scores), (20, 21));
        let difference = accuracy.mean_difference.unwrap();
        assert!((difference - 0.2).abs() < 1e-9, "{difference}");
        let (low, high) = (accuracy.ci_low.unwrap(), accuracy.ci_high.unwrap());
        assert!(
            low > 0.1 && low < 0.2 && high > 0.2 && high < 0.3,
            "[{low}, {high}]"
        );
        assert_eq!(items.len(), 21);
        let extra = items.iter().find(|i| i.dataset_item_id == "only-b").unwrap();
        assert_eq!(extra.a_trace_id, None);
        assert_eq!(extra.b_scores["accuracy"], 0.0);
    }

    #[test]
    fn one_pair_has_a_difference_but_no_interval() {
        let scores = HashMap::from([
            ("a".to_owned(), vec![("s".to_owned(), 1.0)]),
            ("b".to_owned(), vec![("s".to_owned(), 0.0)]),
        ]);
        let (summary, _) = compare_scores(&[run("i", "a")], &[run("i", "b")], &scores);
        assert_eq!(summary[0].mean_difference, Some(-1.0));
        assert_eq!((summary[0].ci_low, summary[0].ci_high), (None, None));
    }
}
