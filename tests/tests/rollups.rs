//! Hourly rollups of the observation metrics on ClickHouse 18.16: a metrics answer that reads
//! the rollups equals a full deduplicated scan of the same rows, before and after replays,
//! partial updates, late events and deletions, and touched hours are read raw until the job
//! rolls them up again. Per-trace summaries: trace lists filtered by level, cost or latency
//! answer as summarizing every trace does, before and after the summaries' job runs.

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::analytics::hourly::{self, HOUR_US};
use agenttrace_etl::analytics::metrics::{self, MetricsParams, MetricsQuery};
use agenttrace_etl::analytics::{summaries, traces};
use agenttrace_etl::clickhouse::cluster::{mutate, wait_for_mutations};
use agenttrace_etl::ingest::to_arrow::TableBatches;
use agenttrace_jobs::{Job, JobOutcome, run_job};
use agenttrace_schemas::Timestamp;
use agenttrace_tests::TestEnv;
use serde_json::Value;
use uuid::Uuid;

/// One session of `seed`, sent by one of two API keys (`pk-0`, `pk-1`) by the seed's parity.
async fn load(env: &TestEnv, project: Uuid, seed: u64, end: Timestamp) {
    let mut tables = TableBatches::new(&project.to_string(), "test").sent_by(&format!("pk-{}", seed % 2));
    for event in SessionGenerator::new(seed).session(end, 4) {
        tables.push(&event, None).unwrap();
    }
    for (table, batch) in tables.finish("b", end).unwrap() {
        env.clickhouse.insert_batches(table, &[batch]).await.unwrap();
    }
}

fn query(pairs: &[(&str, &str)]) -> MetricsQuery {
    let object: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| {
            let value = match *v {
                "true" => Value::Bool(true),
                text => Value::String(text.to_owned()),
            };
            ((*k).to_owned(), value)
        })
        .collect();
    let params: MetricsParams = serde_json::from_value(Value::Object(object)).unwrap();
    MetricsQuery::from_params(&params).unwrap()
}

/// The answers must agree: counts, sums and rates exactly, latency percentiles (estimates in
/// both paths) within a tenth.
fn assert_same(label: &str, rolled: &[Value], raw: &[Value]) {
    assert_eq!(rolled.len(), raw.len(), "{label}: groups\n{rolled:#?}\n{raw:#?}");
    for (a, b) in rolled.iter().zip(raw) {
        for (key, expected) in b.as_object().unwrap() {
            let got = &a[key];
            if key.starts_with("latency_") {
                match (got.as_f64(), expected.as_f64()) {
                    (Some(x), Some(y)) => assert!(
                        (x - y).abs() <= 0.1 * y.abs().max(1.0),
                        "{label}: {key} {x} vs {y}"
                    ),
                    _ => assert_eq!(got, expected, "{label}: {key}"),
                }
            } else if let (Some(x), Some(y)) = (got.as_f64(), expected.as_f64()) {
                assert!(
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                    "{label}: {key} {x} vs {y}\n{a}\n{b}"
                );
            } else {
                assert_eq!(got, expected, "{label}: {key}\n{a}\n{b}");
            }
        }
    }
}

/// Every shape of query the dashboards ask, answered through the rollups and by a full scan.
async fn check_exact(env: &TestEnv, project: Uuid, from: &str, to: &str) -> usize {
    let shapes: Vec<Vec<(&str, &str)>> = vec![
        vec![("bucket", "day"), ("dimensions", "model"), ("type", "generation")],
        vec![("bucket", "hour"), ("dimensions", "type,level")],
        vec![("bucket", "none"), ("dimensions", "tool")],
        vec![("bucket", "week"), ("dimensions", "name")],
        vec![("bucket", "day"), ("include_judges", "true")],
        vec![("bucket", "hour"), ("dimensions", "api_key,model")],
        vec![("bucket", "day"), ("api_key", "pk-1")],
    ];
    let mut used = 0;
    for shape in shapes {
        let mut pairs = vec![("from", from), ("to", to)];
        pairs.extend(shape.iter().copied());
        let query = query(&pairs);
        assert!(query.rollup_eligible());
        let rolled = metrics::metrics(&env.clickhouse, project, &query).await.unwrap();
        let raw = metrics::metrics_from(&env.clickhouse, project, &query, &[])
            .await
            .unwrap();
        assert!(!raw.data.is_empty(), "{shape:?}: no data");
        assert_same(&format!("{shape:?}"), &rolled.data, &raw.data);
        used += 1;
    }
    used
}

/// Rolls up everything touched so far: nothing is in flight, so once the clock has passed the
/// last touch's second, nothing needs to settle.
async fn roll_all(env: &TestEnv, watermark: Option<i64>) -> hourly::RollReport {
    let second = env.clickhouse.clock().await.unwrap();
    env.clickhouse.wait_past(second).await.unwrap();
    hourly::roll(&env.clickhouse, watermark, 0).await.unwrap()
}

async fn current(env: &TestEnv, project: Uuid, from_us: i64, to_us: i64) -> Vec<(i64, u32)> {
    hourly::current_hours(&env.clickhouse, project, from_us, to_us)
        .await
        .unwrap()
}

/// An observation stored again with `changes` (column → SQL) and a newer version: what a
/// partial update or a replay becomes in the table (ClickHouse stamps its arrival, as for a
/// load).
async fn store_again(env: &TestEnv, project: Uuid, id: &str, changes: &[(&str, &str)]) {
    store_again_where(env, project, &format!("id = '{id}'"), changes).await
}

/// [`store_again`] for every observation matching `condition`.
async fn store_again_where(env: &TestEnv, project: Uuid, condition: &str, changes: &[(&str, &str)]) {
    let columns = env
        .ch(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'observations'
             AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') AND name != 'ingested_at'",
        )
        .await;
    let columns: Vec<&str> = columns.lines().collect();
    let values: Vec<String> = columns
        .iter()
        .map(|column| {
            changes
                .iter()
                .find(|(c, _)| c == column)
                .map_or_else(|| (*column).to_owned(), |(_, v)| (*v).to_owned())
        })
        .collect();
    env.clickhouse
        .execute(&format!(
            "INSERT INTO observations ({}) SELECT {} FROM observations FINAL WHERE project_id = '{project}' AND {condition}",
            columns.join(", "),
            values.join(", ")
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn rollups_answer_exactly_under_replays_updates_late_events_and_deletions() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let project = env.new_project("rollups").await;
    let now = Timestamp::now().as_micros();
    let day_start = now.div_euclid(86_400_000_000) * 86_400_000_000;
    let (from_us, to_us) = (day_start - 3 * 86_400_000_000, day_start + 86_400_000_000);
    let (from, to) = (
        Timestamp::from_micros(from_us).to_string(),
        Timestamp::from_micros(to_us).to_string(),
    );
    for (seed, hours_ago) in [(1, 50), (2, 30), (3, 26), (4, 5)] {
        load(
            &env,
            project,
            seed,
            Timestamp::from_micros(now - hours_ago * HOUR_US),
        )
        .await;
    }

    // The scheduled job leaves hours touched in the last five minutes for later.
    let outcome = run_job(Job::MetricRollups, &pg, &env.clickhouse, None)
        .await
        .unwrap();
    let JobOutcome::Succeeded {
        rows_in, rows_out, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(rows_in > 0, "touched hours found");
    assert_eq!(rows_out, 0, "nothing settled yet");
    assert!(current(&env, project, from_us, to_us).await.is_empty());

    // Rolled up with nothing in flight: every touched hour is current and answers exactly.
    let report = roll_all(&env, None).await;
    assert!(report.rolled >= 4, "{report:?}");
    let hours = current(&env, project, from_us, to_us).await;
    assert!(hours.len() >= 4, "{hours:?}");
    check_exact(&env, project, &from, &to).await;
    // A second run finds nothing new to do.
    let again = roll_all(&env, Some(report.watermark)).await;
    assert_eq!(again.rolled, 0, "{again:?}");

    // A replay of a whole session (the same rows again), a partial update (a generation's cost
    // and level changed by a newer version) and a late session into an hour already rolled up.
    load(&env, project, 2, Timestamp::from_micros(now - 30 * HOUR_US)).await;
    let generation = env
        .ch(&format!(
            "SELECT id FROM observations FINAL WHERE project_id = '{project}' AND type = 'generation'
             AND start_time_us < {} ORDER BY id LIMIT 1",
            now - 40 * HOUR_US
        ))
        .await;
    store_again(
        &env,
        project,
        generation.trim(),
        &[
            ("version", "version + 1"),
            ("total_cost", "toNullable(toDecimal64(7.25, 12))"),
            ("level", "'error'"),
        ],
    )
    .await;
    load(&env, project, 9, Timestamp::from_micros(now - 26 * HOUR_US)).await;
    let after = current(&env, project, from_us, to_us).await;
    assert!(after.len() < hours.len(), "touched hours are read raw: {after:?}");
    check_exact(&env, project, &from, &to).await;

    let report = roll_all(&env, Some(report.watermark)).await;
    assert!(report.rolled >= 1, "{report:?}");
    assert_eq!(current(&env, project, from_us, to_us).await.len(), hours.len());
    check_exact(&env, project, &from, &to).await;
    let cost: f64 = env
        .ch(&format!(
            "SELECT max(toFloat64(total_cost)) FROM observation_hourly WHERE project_id = '{project}' AND type = 'generation' AND level = 'error'"
        ))
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(cost >= 7.25, "the updated cost is in the new rollup");

    // A deletion's mutation inserts nothing: the job's invalidation makes the rollups stale
    // until they are rolled up again.
    // (On a cluster, once per shard, waited for on every replica.)
    let condition = format!("DELETE WHERE project_id = '{project}' AND type = 'tool'");
    mutate(&env.clickhouse, "observations_by_time", &condition)
        .await
        .unwrap();
    assert!(
        wait_for_mutations(
            &env.clickhouse,
            "observations_by_time",
            std::time::Duration::from_secs(120)
        )
        .await
        .unwrap()
    );
    hourly::invalidate(&env.clickhouse, project, None).await.unwrap();
    assert!(current(&env, project, from_us, to_us).await.is_empty());
    check_exact(&env, project, &from, &to).await;
    roll_all(&env, Some(report.watermark)).await;
    assert_eq!(current(&env, project, from_us, to_us).await.len(), hours.len());
    check_exact(&env, project, &from, &to).await;

    // The user is the trace's and can change without touching an observation: read raw.
    assert!(!query(&[("from", &from), ("to", &to), ("dimensions", "user")]).rollup_eligible());
    assert!(!query(&[("from", &from), ("to", &to), ("bucket", "minute")]).rollup_eligible());
}

/// Every page of the trace list for `filter`, following cursors.
async fn all_pages(env: &TestEnv, project: Uuid, filter: &traces::TraceFilter) -> Vec<Value> {
    let mut filter = filter.clone();
    let mut rows = Vec::new();
    loop {
        let page = traces::trace_list(&env.clickhouse, project, &filter)
            .await
            .unwrap();
        rows.extend(page.data);
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return rows,
        }
    }
}

#[tokio::test]
async fn trace_lists_filtered_by_summaries_answer_as_summarizing_every_trace_does() {
    let env = TestEnv::migrated().await;
    let project = env.new_project("summaries").await;
    let now = Timestamp::now().as_micros();
    for (seed, hours_ago) in [(11, 40), (12, 20), (13, 6), (14, 2)] {
        load(
            &env,
            project,
            seed,
            Timestamp::from_micros(now - hours_ago * HOUR_US),
        )
        .await;
    }
    // Generations priced (the loader's pricing is not in this path): some traces cost more.
    store_again_where(
        &env,
        project,
        "type = 'generation'",
        &[
            ("version", "version + 1"),
            (
                "total_cost",
                "toNullable(toDecimal64(cityHash64(id) % 100 / 10000, 12))",
            ),
        ],
    )
    .await;
    let filters: Vec<traces::TraceFilter> = vec![
        traces::TraceFilter {
            level: Some("warning".into()),
            limit: Some(2),
            ..Default::default()
        },
        traces::TraceFilter {
            min_cost: Some(0.02),
            limit: Some(3),
            ..Default::default()
        },
        traces::TraceFilter {
            min_latency_ms: Some(1.0),
            ..Default::default()
        },
        traces::TraceFilter {
            min_cost: Some(1e9),
            ..Default::default()
        },
    ];
    // Before any summary is kept, every trace of each window is summarized: the reference.
    let mut expected = Vec::new();
    for filter in &filters {
        expected.push(all_pages(&env, project, filter).await);
    }
    assert!(
        expected[1].len() >= 2,
        "some traces cost something: {:?}",
        expected[1]
    );
    assert!(expected[3].is_empty());

    let second = env.clickhouse.clock().await.unwrap();
    env.clickhouse.wait_past(second).await.unwrap();
    let report = summaries::summarize(&env.clickhouse, 0).await.unwrap();
    assert!(report.traces >= 4, "{report:?}");
    for (filter, expected) in filters.iter().zip(&expected) {
        assert_eq!(&all_pages(&env, project, filter).await, expected, "{filter:?}");
    }

    // A trace that arrives after the run is summarized by the reader; a generation updated to
    // an error level is found by the level filter before the next run and after it.
    load(&env, project, 15, Timestamp::from_micros(now - HOUR_US)).await;
    store_again_where(
        &env,
        project,
        "type = 'generation' AND isNull(total_cost)",
        &[
            ("version", "version + 1"),
            ("total_cost", "toNullable(toDecimal64(0.5, 12))"),
        ],
    )
    .await;
    let generation = env
        .ch(&format!(
            "SELECT id FROM observations FINAL WHERE project_id = '{project}' AND level = 'default'
             AND start_time_us < {} ORDER BY id LIMIT 1",
            now - 30 * HOUR_US
        ))
        .await;
    store_again(
        &env,
        project,
        generation.trim(),
        &[("version", "version + 1"), ("level", "'error'")],
    )
    .await;
    let errors = traces::TraceFilter {
        level: Some("error".into()),
        ..Default::default()
    };
    let trace_of = env
        .ch(&format!(
            "SELECT trace_id FROM observations FINAL WHERE project_id = '{project}' AND id = '{}'",
            generation.trim()
        ))
        .await;
    let listed = all_pages(&env, project, &errors).await;
    assert!(
        listed.iter().any(|row| row["id"] == trace_of.trim()),
        "{listed:?}"
    );
    let costly = all_pages(&env, project, &filters[1]).await;
    assert!(
        costly.len() > expected[1].len(),
        "the new traces' costs count before a run"
    );
    let second = env.clickhouse.clock().await.unwrap();
    env.clickhouse.wait_past(second).await.unwrap();
    summaries::summarize(&env.clickhouse, 0).await.unwrap();
    assert_eq!(all_pages(&env, project, &errors).await, listed);
    assert_eq!(all_pages(&env, project, &filters[1]).await, costly);
}
