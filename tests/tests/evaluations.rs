//! Evaluations against datasets and experiments, on real PostgreSQL and ClickHouse 18.16:
//! JSON Schema and dataset-match evaluators, evaluators on their own schedules, and experiment
//! rollups checked against values computed here, independently of the job.

use std::time::Duration;

use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::{Event, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::etl::{Etl, TestProject};
use serde_json::{Value, json};
use uuid::Uuid;

fn event(body: Value, kind: &str, at_us: i64) -> Event<'static> {
    let id = format!("e-{}", body["id"].as_str().unwrap());
    let text = json!({
        "id": id,
        "type": kind,
        "timestamp": Timestamp::from_micros(at_us).to_string(),
        "body": body,
    });
    Event::parse(&text.to_string())
        .map(Event::into_static)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn send(etl: &Etl, project: &TestProject, events: &[Event<'_>]) {
    let response = etl.load(&project.key, events).await;
    assert!(response.rejected.is_empty(), "{:?}", response.rejected);
    // The evaluation job reads completed ingest seconds only.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn dataset(pg: &tokio_postgres::Client, project: Uuid, name: &str) -> Uuid {
    pg.query_one(
        "INSERT INTO datasets (project_id, name) VALUES ($1, $2) RETURNING id",
        &[&project, &name],
    )
    .await
    .unwrap()
    .get(0)
}

async fn item(pg: &tokio_postgres::Client, dataset: Uuid, expected: Value) -> String {
    pg.query_one(
        "INSERT INTO dataset_items (dataset_id, input, expected_output) VALUES ($1, '{}', $2) RETURNING id",
        &[&dataset, &expected],
    )
    .await
    .unwrap()
    .get(0)
}

async fn evaluator(
    pg: &tokio_postgres::Client,
    project: Uuid,
    name: &str,
    kind: &str,
    config: Value,
) -> String {
    let id: Uuid = pg
        .query_one(
            "INSERT INTO evaluators (project_id, name, kind, config) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&project, &name, &kind, &config],
        )
        .await
        .unwrap()
        .get(0);
    id.to_string()
}

fn trace(id: &str, item: Option<&str>, experiment: Option<&str>, at_us: i64) -> Event<'static> {
    event(
        json!({"id": id, "name": "q", "dataset_item_id": item, "experiment_id": experiment}),
        "trace",
        at_us,
    )
}

fn generation(id: &str, trace: &str, output: Value, at_us: i64) -> Event<'static> {
    event(
        json!({
            "id": id, "trace_id": trace, "type": "generation", "name": "answer",
            "start_time": Timestamp::from_micros(at_us).to_string(),
            "end_time": Timestamp::from_micros(at_us + 250_000).to_string(),
            "output": output,
        }),
        "observation",
        at_us,
    )
}

#[tokio::test]
async fn json_schema_and_dataset_match_evaluators_score_known_data() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("answers").await;
    let other = env.create_project("someone-else").await;
    let pg = env.postgres().await;
    let p = project.key.project_id;

    let questions = dataset(&pg, p, "questions").await;
    let paris = item(&pg, questions, json!("Paris")).await;
    let answer = item(&pg, questions, json!({"answer": 42})).await;
    let hidden = item(&pg, questions, json!("hidden files")).await;

    let t = Timestamp::now().as_micros() - 60_000_000;
    let tool = event(
        json!({"id": "tool", "trace_id": "t1", "type": "tool_call", "name": "Bash",
               "start_time": Timestamp::from_micros(t).to_string(), "output": {"answer": "x"}}),
        "observation",
        t,
    );
    let events = vec![
        trace("t1", Some(&paris), None, t),
        trace("t2", Some(&answer), None, t),
        trace("t3", Some(&hidden), None, t),
        trace("t4", None, None, t),
        generation("g1", "t1", json!({"role": "assistant", "content": "Paris"}), t),
        // A text completion holding JSON is compared as the JSON it holds.
        generation("g2", "t2", json!("{\"answer\": 42}"), t),
        generation("g3", "t3", json!("hidden file"), t),
        generation("g4", "t4", json!({"answer": 7}), t),
        tool,
    ];
    send(&etl, &project, &events).await;
    // Another project's trace naming this project's dataset item gets no expected output.
    send(
        &etl,
        &other,
        &[
            trace("t1", Some(&paris), None, t),
            generation("g1", "t1", json!("Paris"), t),
        ],
    )
    .await;

    evaluator(&pg, p, "exact", "exact_match", json!({})).await;
    evaluator(&pg, p, "close", "fuzzy_match", json!({})).await;
    evaluator(
        &pg,
        p,
        "has-answer",
        "json_schema",
        json!({"schema": {"type": "object", "required": ["answer"],
                          "properties": {"answer": {"type": "integer"}}}}),
    )
    .await;
    evaluator(
        &pg,
        other.key.project_id,
        "exact-elsewhere",
        "exact_match",
        json!({}),
    )
    .await;

    let said = env.cli(&["jobs", "run", "evaluate"]).await.unwrap();
    assert_eq!(said, "evaluate: 6 observations evaluated, 11 scores written\n");
    let verdicts = env
        .ch(&format!(
            "SELECT name, observation_id, value, source FROM scores FINAL WHERE project_id = '{p}' \
             ORDER BY name, observation_id"
        ))
        .await;
    let expected = "close\tg1\t1\teval\nclose\tg2\t1\teval\nclose\tg3\t1\teval\n\
                    exact\tg1\t1\teval\nexact\tg2\t1\teval\nexact\tg3\t0\teval\n\
                    has-answer\tg1\t0\teval\nhas-answer\tg2\t1\teval\nhas-answer\tg3\t0\teval\n\
                    has-answer\tg4\t1\teval\nhas-answer\ttool\t0\teval";
    assert_eq!(verdicts, expected);
    assert_eq!(
        env.ch(&format!(
            "SELECT count() FROM scores WHERE project_id = '{}'",
            other.key.project_id
        ))
        .await,
        "0"
    );

    // Bad configs are named in the failed run; the good evaluators still score.
    evaluator(
        &pg,
        p,
        "bad-schema",
        "json_schema",
        json!({"schema": {"type": 12}}),
    )
    .await;
    evaluator(&pg, p, "bad-threshold", "fuzzy_match", json!({"threshold": 2})).await;
    send(&etl, &project, &[generation("g5", "t1", json!("Paris"), t)]).await;
    let failure = env.cli_error(&["jobs", "run", "evaluate"]).await;
    assert!(
        failure.contains("2 broken evaluator(s), the others wrote 3 scores"),
        "{failure}"
    );
    assert!(
        failure.contains("evaluator \"bad-schema\"") && failure.contains("invalid JSON Schema"),
        "{failure}"
    );
    assert!(
        failure.contains("evaluator \"bad-threshold\"") && failure.contains("from 0 to 1"),
        "{failure}"
    );

    // The run record as each project reads it: its own broken evaluators, named; another
    // project's, never (the run is every project's at once).
    let job_runs = |project: Uuid| {
        let etl_url = etl.url.clone();
        let pg = &pg;
        async move {
            let key = agenttrace_etl::control::api_keys::create_key(
                pg,
                project,
                &[agenttrace_schemas::Scope::Read],
                None,
            )
            .await
            .unwrap();
            reqwest::Client::new()
                .get(format!("{etl_url}/v1/projects/{project}/job-runs?job=evaluate"))
                .header(
                    "authorization",
                    format!("Bearer {}:{}", key.public_key, key.secret_key),
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let own = job_runs(p).await;
    assert!(
        own.contains("bad-schema") && own.contains("bad-threshold"),
        "{own}"
    );
    let theirs = job_runs(other.key.project_id).await;
    assert!(
        !theirs.contains("bad-schema") && !theirs.contains("bad-threshold"),
        "{theirs}"
    );
    assert!(theirs.contains("outside this project"), "{theirs}");
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_evaluator_with_its_own_schedule_runs_as_its_own_job() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("scheduled").await;
    let pg = env.postgres().await;
    let p = project.key.project_id;
    let t = Timestamp::now().as_micros() - 60_000_000;
    send(
        &etl,
        &project,
        &[
            trace("t1", None, None, t),
            generation("g1", "t1", json!("Done."), t),
        ],
    )
    .await;

    let every_second = evaluator(&pg, p, "says-done", "contains", json!({"pattern": "Done"})).await;
    pg.execute(
        "UPDATE evaluators SET schedule = '* * * * * *' WHERE id::text = $1",
        &[&every_second],
    )
    .await
    .unwrap();
    let bad = evaluator(&pg, p, "bad-schedule", "contains", json!({"pattern": "x"})).await;
    pg.execute(
        "UPDATE evaluators SET schedule = 'hourly' WHERE id::text = $1",
        &[&bad],
    )
    .await
    .unwrap();

    // The `evaluate` job leaves scheduled evaluators to their own schedule, and reads nothing
    // of a project it has no evaluator for.
    let said = env.cli(&["jobs", "run", "evaluate"]).await.unwrap();
    assert_eq!(said, "evaluate: 0 observations evaluated, 0 scores written\n");

    agenttrace_jobs::schedule::run_scheduler(
        Vec::new(),
        env.database_url.clone(),
        env.clickhouse.clone(),
        tokio::time::sleep(Duration::from_millis(2600)),
    )
    .await;
    // Runs started by the scheduler finish on their own tasks.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let runs = pg
        .query(
            "SELECT job, status, coalesce(error, '') FROM job_runs WHERE job LIKE 'evaluate:%' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let own: Vec<&str> = runs
        .iter()
        .filter(|r| r.get::<_, String>(0) == format!("evaluate:{every_second}"))
        .map(|r| r.get::<_, &str>(1))
        .collect();
    assert!(own.len() >= 2 && own.iter().all(|s| *s == "succeeded"), "{own:?}");
    let bad_runs: Vec<String> = runs
        .iter()
        .filter(|r| r.get::<_, String>(0) == format!("evaluate:{bad}"))
        .map(|r| format!("{} {}", r.get::<_, &str>(1), r.get::<_, &str>(2)))
        .collect();
    assert_eq!(bad_runs.len(), 1, "{bad_runs:?}");
    assert!(
        bad_runs[0].starts_with("failed evaluator \"bad-schedule\"")
            && bad_runs[0].contains("invalid cron expression"),
        "{bad_runs:?}"
    );
    assert_eq!(
        env.ch(&format!(
            "SELECT name, observation_id, value FROM scores FINAL WHERE project_id = '{p}'"
        ))
        .await,
        "says-done\tg1\t1"
    );
    // Run by hand too, under the same job name and watermark: nothing new.
    let said = env
        .cli(&["jobs", "run", &format!("evaluate:{every_second}")])
        .await
        .unwrap();
    assert_eq!(
        said,
        format!("evaluate:{every_second}: 0 observations evaluated, 0 scores written\n")
    );
    etl.server.shutdown().await.unwrap();
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// A small deterministic generator, independent of the job's.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One item's run in an experiment: item index, correct, quality, cost, latency (ms).
type Run = (usize, bool, f64, f64, i64);

#[tokio::test]
async fn experiment_rollups_match_an_independent_computation() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("experiments").await;
    let pg = env.postgres().await;
    let p = project.key.project_id;
    let questions = dataset(&pg, p, "questions").await;
    let mut items = Vec::new();
    for i in 0..40 {
        items.push(item(&pg, questions, json!(format!("answer {i}"))).await);
    }
    let mut experiments = Vec::new();
    for name in ["baseline", "candidate"] {
        let id: Uuid = pg
            .query_one(
                "INSERT INTO experiments (project_id, dataset_id, name) VALUES ($1, $2, $3) RETURNING id",
                &[&p, &questions, &name],
            )
            .await
            .unwrap()
            .get(0);
        experiments.push(id.to_string());
        // Distinct creation times: the later experiment's baseline is the earlier one.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Per experiment and item: a trace, a priced generation, a boolean and a numeric score.
    // The candidate skips the last five items, so only 35 items pair up.
    let mut rng = SplitMix(2026);
    let t = Timestamp::now().as_micros() - 3_600_000_000;
    let mut facts: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    let mut events = Vec::new();
    for (e, experiment) in experiments.iter().enumerate() {
        let count = if e == 0 { 40 } else { 35 };
        for (i, item) in items.iter().enumerate().take(count) {
            let correct = rng.unit() < if e == 0 { 0.5 } else { 0.75 };
            let quality = (rng.unit() * 100.0).round() / 100.0;
            let cost = (rng.next() % 1000) as f64 / 100_000.0;
            let latency_ms = 100 + (rng.next() % 5000) as i64;
            facts[e].push((i, correct, quality, cost, latency_ms));
            let trace_id = format!("{e}-{i}");
            let at = t + (i as i64) * 10_000_000;
            events.push(trace(&trace_id, Some(item), Some(experiment), at));
            events.push(event(
                json!({
                    "id": format!("{trace_id}-g"), "trace_id": trace_id, "type": "generation", "name": "answer",
                    "start_time": Timestamp::from_micros(at).to_string(),
                    "end_time": Timestamp::from_micros(at + latency_ms * 1000).to_string(),
                    "model": "test-model", "usage": {"input_tokens": 100, "output_tokens": 10},
                    "cost": {"total": cost},
                }),
                "observation",
                at,
            ));
            for (name, value) in [("correct", json!(correct)), ("quality", json!(quality))] {
                events.push(event(
                    json!({"id": format!("{trace_id}-{name}"), "trace_id": trace_id, "name": name, "value": value}),
                    "score",
                    at,
                ));
            }
        }
    }
    send(&etl, &project, &events).await;

    let said = env.cli(&["jobs", "run", "experiment_rollups"]).await.unwrap();
    assert_eq!(said, "experiment_rollups: 2 experiments, 4 rollup rows written\n");
    // A second run replaces the rows rather than adding to them.
    env.cli(&["jobs", "run", "experiment_rollups"]).await.unwrap();
    let rows = env
        .ch(&format!(
            "SELECT experiment_id, score_name, items, scores, mean, median, p95, ifNull(pass_rate, -1), \
             toString(total_cost), mean_cost, latency_p50_ms, latency_p95_ms, input_tokens, output_tokens, \
             ifNull(baseline_experiment_id, ''), paired_items, ifNull(paired_mean_difference, -99), \
             ifNull(paired_ci_low, -99), ifNull(paired_ci_high, -99) \
             FROM experiment_rollups FINAL WHERE project_id = '{p}' ORDER BY experiment_id = '{}', score_name",
            experiments[1]
        ))
        .await;
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 4, "{rows:?}");

    let close = |got: &str, want: f64, tolerance: f64, what: &str| {
        let got: f64 = got.parse().unwrap_or_else(|_| panic!("{what}: {got:?}"));
        assert!((got - want).abs() <= tolerance, "{what}: got {got}, want {want}");
    };
    for (row, (e, name)) in rows
        .iter()
        .zip([(0, "correct"), (0, "quality"), (1, "correct"), (1, "quality")])
    {
        let what = |field: &str| format!("{name} of experiment {e}: {field}");
        assert_eq!(row[0], experiments[e]);
        assert_eq!(row[1], name);
        let value = |f: &Run| if name == "correct" { f.1 as u8 as f64 } else { f.2 };
        let values: Vec<f64> = facts[e].iter().map(value).collect();
        let n = values.len();
        assert_eq!((row[2], row[3]), (n.to_string().as_str(), n.to_string().as_str()));
        let mean = values.iter().sum::<f64>() / n as f64;
        let ordered = sorted(values.clone());
        close(row[4], mean, 1e-9, &what("mean"));
        close(row[5], quantile(&ordered, 0.5), 1e-9, &what("median"));
        close(row[6], quantile(&ordered, 0.95), 1e-9, &what("p95"));
        close(
            row[7],
            if name == "correct" { mean } else { -1.0 },
            1e-9,
            &what("pass rate"),
        );
        let total_cost: f64 = facts[e].iter().map(|f| f.3).sum();
        close(row[8], total_cost, 1e-9, &what("total cost"));
        close(row[9], total_cost / n as f64, 1e-9, &what("mean cost"));
        let latencies = sorted(facts[e].iter().map(|f| f.4 as f64).collect());
        close(row[10], quantile(&latencies, 0.5), 1e-6, &what("latency p50"));
        close(row[11], quantile(&latencies, 0.95), 1e-6, &what("latency p95"));
        assert_eq!(
            (row[12], row[13]),
            ((n * 100).to_string().as_str(), (n * 10).to_string().as_str())
        );
        if e == 0 {
            assert_eq!((row[14], row[15], row[16]), ("", "0", "-99"));
            continue;
        }
        // Paired with the baseline on the 35 shared items, bootstrapped independently here.
        assert_eq!(row[14], experiments[0]);
        assert_eq!(row[15], "35");
        let differences: Vec<f64> = facts[1]
            .iter()
            .map(|f| value(f) - value(&facts[0][f.0]))
            .collect();
        let mean_difference = differences.iter().sum::<f64>() / differences.len() as f64;
        close(row[16], mean_difference, 1e-9, &what("paired mean difference"));
        let mut rng = SplitMix(7);
        let means = sorted(
            (0..20_000)
                .map(|_| {
                    (0..differences.len())
                        .map(|_| differences[(rng.next() % differences.len() as u64) as usize])
                        .sum::<f64>()
                        / differences.len() as f64
                })
                .collect(),
        );
        // Two bootstraps of the same data agree to Monte Carlo error (~0.005 here).
        close(row[17], quantile(&means, 0.025), 0.025, &what("CI low"));
        close(row[18], quantile(&means, 0.975), 0.025, &what("CI high"));
        let (low, high): (f64, f64) = (row[17].parse().unwrap(), row[18].parse().unwrap());
        assert!(low < mean_difference && mean_difference < high);
    }
    etl.server.shutdown().await.unwrap();
}
