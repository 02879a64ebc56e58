//! The judge calibration job on real PostgreSQL and ClickHouse 18.16: LLM judges' scores
//! paired with people's on the same targets give the agreement figures of a hand-computed
//! fixture (a boolean judge's confusion matrix, accuracy and kappa; a numeric judge's mean
//! absolute error and Spearman correlation), another project's scores never pair in, a run
//! with nothing new recomputes nothing, and a new human score recomputes only its judge.

use agenttrace_etl::control::evaluators::{self, NewEvaluator};
use agenttrace_etl::control::projects;
use agenttrace_etl::ingest::to_arrow::TableBatches;
use agenttrace_jobs::{Job, JobOutcome, run_job};
use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::Event;
use agenttrace_tests::TestEnv;
use serde_json::{Value, json};
use uuid::Uuid;

const HOUR_US: i64 = 3_600 * 1_000_000;

async fn load_events(env: &TestEnv, project: Uuid, events: &[Value]) {
    let mut tables = TableBatches::new(&project.to_string(), "calibration");
    for event in events {
        let text = event.to_string();
        tables.push(&Event::parse(&text).unwrap(), None).unwrap();
    }
    for (table, batch) in tables
        .finish(&Uuid::new_v4().to_string(), Timestamp::now())
        .unwrap()
    {
        env.clickhouse.insert_batches(table, &[batch]).await.unwrap();
    }
}

/// A target (trace, observation), the judge's verdict, and what each person said.
type Target = (
    &'static str,
    Option<&'static str>,
    bool,
    &'static [(&'static str, bool)],
);

/// Who gave a score.
#[derive(Clone, Copy)]
enum By<'a> {
    Judge(Uuid),
    Person(&'a str),
    Api,
}

/// A score event of `name` on a trace (or one of its observations), given at `at_us`.
fn score(id: &str, target: (&str, Option<&str>), name: &str, value: Value, by: By<'_>, at_us: i64) -> Value {
    let at = Timestamp::from_micros(at_us).to_string();
    let mut body = json!({
        "id": id, "trace_id": target.0, "timestamp": at, "name": name, "value": value,
    });
    if let Some(observation) = target.1 {
        body["observation_id"] = json!(observation);
    }
    match by {
        By::Judge(evaluator) => {
            body["source"] = json!("eval");
            body["evaluator_id"] = json!(evaluator.to_string());
        }
        By::Person(author) => {
            body["source"] = json!("annotation");
            body["metadata"] = json!({"langfuse.authorUserId": author, "langfuse.queueId": "q1"});
        }
        By::Api => body["source"] = json!("api"),
    }
    json!({"id": format!("{id}-event"), "type": "score", "timestamp": at, "body": body})
}

/// A project with a model connection `local` (never called: the judges' scores are loaded).
async fn project_with_connection(pg: &tokio_postgres::Client, organization: Uuid, name: &str) -> Uuid {
    let project = projects::create_project(pg, organization, name, None)
        .await
        .unwrap()
        .id;
    agenttrace_tests::providers::connect(pg, project, None, Some(json!({"model": "judge-small"}))).await;
    project
}

async fn add_judge(
    pg: &tokio_postgres::Client,
    project: Uuid,
    name: &str,
    score_name: &str,
    output: Value,
) -> Uuid {
    evaluators::add(
        pg,
        &NewEvaluator {
            project_id: project,
            name: name.into(),
            kind: "llm_judge".into(),
            config: json!({
                "connection": "local",
                "prompt": "Question: {{input}}\nAnswer: {{output}}\nJudge the answer.",
                "output": output,
                "score_name": score_name,
            }),
            schedule: None,
        },
    )
    .await
    .unwrap();
    evaluators::list(pg, project)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap()
        .id
}

/// A judge's stored calibration.
#[derive(Debug)]
struct Row {
    score_name: String,
    data_type: Option<String>,
    pairs: i32,
    accuracy: Option<f64>,
    kappa: Option<f64>,
    mean_absolute_error: Option<f64>,
    spearman: Option<f64>,
    confusion: Option<Value>,
    disagreements: Value,
    computed_at: String,
}

async fn calibration(pg: &tokio_postgres::Client, judge: Uuid) -> Option<Row> {
    pg.query_opt(
        "SELECT score_name, data_type, pairs, accuracy, kappa, mean_absolute_error, spearman, confusion,
                disagreements, computed_at::text AS computed_at
         FROM judge_calibrations WHERE evaluator_id = $1",
        &[&judge],
    )
    .await
    .unwrap()
    .map(|row| Row {
        score_name: row.get("score_name"),
        data_type: row.get("data_type"),
        pairs: row.get("pairs"),
        accuracy: row.get("accuracy"),
        kappa: row.get("kappa"),
        mean_absolute_error: row.get("mean_absolute_error"),
        spearman: row.get("spearman"),
        confusion: row.get("confusion"),
        disagreements: row.get("disagreements"),
        computed_at: row.get("computed_at"),
    })
}

fn assert_close(got: Option<f64>, expected: f64) {
    let got = got.unwrap_or_else(|| panic!("expected {expected}, got NULL"));
    assert!((got - expected).abs() < 1e-12, "expected {expected}, got {got}");
}

async fn run(pg: &tokio_postgres::Client, env: &TestEnv) -> (i64, i64) {
    match run_job(Job::JudgeCalibration, pg, &env.clickhouse, None)
        .await
        .unwrap()
    {
        JobOutcome::Succeeded {
            rows_in, rows_out, ..
        } => (rows_in, rows_out),
        JobOutcome::Skipped => panic!("the calibration run was skipped"),
    }
}

#[tokio::test]
async fn judges_are_calibrated_against_people_on_the_targets_both_scored() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "calibration-org")
        .await
        .unwrap();
    let project = project_with_connection(&pg, organization, "calibrated").await;
    let other = project_with_connection(&pg, organization, "elsewhere").await;
    let correct = add_judge(&pg, project, "correctness", "correct", json!({"type": "boolean"})).await;
    let helpful = add_judge(
        &pg,
        project,
        "helpful",
        "helpfulness",
        json!({"type": "numeric", "min": 1, "max": 5}),
    )
    .await;
    // A judge nobody scored with or against: never computed.
    let silent = add_judge(&pg, project, "silent", "tone", json!({"type": "boolean"})).await;
    let elsewhere = add_judge(&pg, other, "correctness", "correct", json!({"type": "boolean"})).await;

    // Scored three hours ago: well inside the window a run reads (it ends 15 minutes ago).
    let at = Timestamp::now().as_micros() - 3 * HOUR_US;
    let mut events = Vec::new();
    // The boolean judge and people on ten targets, the eighth an observation, the last two
    // scored by two people each: one pair per human score, twelve pairs.
    let targets: [Target; 10] = [
        ("t0", None, false, &[("alice", false)]),
        ("t1", None, false, &[("alice", false)]),
        ("t2", None, true, &[("alice", false)]),
        ("t3", None, true, &[("alice", true)]),
        ("t4", None, true, &[("alice", true)]),
        ("t5", None, true, &[("alice", true)]),
        ("t6", None, true, &[("alice", true)]),
        ("t7", Some("o7"), true, &[("alice", true)]),
        ("t8", None, true, &[("alice", false), ("bob", true)]),
        ("t9", None, false, &[("alice", false), ("bob", true)]),
    ];
    for (trace, observation, judged, people) in targets {
        let target = (trace, observation);
        events.push(score(
            &format!("j-{trace}"),
            target,
            "correct",
            json!(judged),
            By::Judge(correct),
            at,
        ));
        for (person, said) in people {
            let id = format!("h-{trace}-{person}");
            events.push(score(&id, target, "correct", json!(said), By::Person(person), at));
        }
    }
    // What must not pair: an older judge score of t0 (the newest counts), a judged target no
    // person scored and the reverse, a person's score of t7's whole trace (the judge scored
    // its observation), another name, an API score, a categorical score under the name.
    events.extend([
        score(
            "j-t0-old",
            ("t0", None),
            "correct",
            json!(true),
            By::Judge(correct),
            at - HOUR_US,
        ),
        score(
            "j-t10",
            ("t10", None),
            "correct",
            json!(true),
            By::Judge(correct),
            at,
        ),
        score(
            "h-t11",
            ("t11", None),
            "correct",
            json!(false),
            By::Person("alice"),
            at,
        ),
        score(
            "h-t7-trace",
            ("t7", None),
            "correct",
            json!(false),
            By::Person("alice"),
            at,
        ),
        score(
            "h-t0-style",
            ("t0", None),
            "style",
            json!(false),
            By::Person("alice"),
            at,
        ),
        score("api-t3", ("t3", None), "correct", json!(false), By::Api, at),
        score(
            "h-t4-label",
            ("t4", None),
            "correct",
            json!("yes"),
            By::Person("carol"),
            at,
        ),
    ]);
    // The numeric judge (1 to 5) and carol on five traces.
    let numeric = [
        ("n0", 1.0, 2.0),
        ("n1", 2.0, 2.0),
        ("n2", 3.0, 4.0),
        ("n3", 4.0, 5.0),
        ("n4", 5.0, 4.0),
    ];
    for (trace, judged, said) in numeric {
        let target = (trace, None);
        events.push(score(
            &format!("j-{trace}"),
            target,
            "helpfulness",
            json!(judged),
            By::Judge(helpful),
            at,
        ));
        events.push(score(
            &format!("h-{trace}"),
            target,
            "helpfulness",
            json!(said),
            By::Person("carol"),
            at,
        ));
    }
    load_events(&env, project, &events).await;

    // Another project, same trace ids and names: its own judge agrees with its people on
    // every target, people there contradict the first project's, and scores there naming the
    // first project's judges contradict everything.
    let mut elsewhere_events = Vec::new();
    for (trace, observation, _, _) in targets {
        let target = (trace, observation);
        elsewhere_events.extend([
            score(
                &format!("j-{trace}"),
                target,
                "correct",
                json!(true),
                By::Judge(elsewhere),
                at,
            ),
            score(
                &format!("h-{trace}"),
                target,
                "correct",
                json!(true),
                By::Person("alice"),
                at,
            ),
            score(
                &format!("spoof-{trace}"),
                target,
                "correct",
                json!(false),
                By::Judge(correct),
                at,
            ),
        ]);
    }
    for (trace, _, _) in numeric {
        let target = (trace, None);
        elsewhere_events.extend([
            score(
                &format!("h-{trace}"),
                target,
                "helpfulness",
                json!(100.0),
                By::Person("carol"),
                at,
            ),
            score(
                &format!("spoof-{trace}"),
                target,
                "helpfulness",
                json!(-50.0),
                By::Judge(helpful),
                at,
            ),
        ]);
    }
    load_events(&env, other, &elsewhere_events).await;

    let (rows_in, rows_out) = run(&pg, &env).await;
    // Under the judges' names, by judges or people: 12 + 15 + 10 scores here, 40 there (the
    // API score and the other name do not count).
    assert_eq!(rows_in, 12 + 15 + 10 + 40);
    assert_eq!(rows_out, 3, "the three judges that were scored with or against");

    // The boolean judge. Rows are people, columns the judge, labels false then true:
    //   people false: judge false t0, t1, t9 (alice) = 3; judge true t2, t8 (alice) = 2
    //   people true:  judge false t9 (bob) = 1;           judge true t3-t7, t8 (bob) = 6
    // Accuracy (3 + 6) / 12. Kappa: chance = (5/12)(4/12) + (7/12)(8/12) = 76/144, so
    // (108/144 − 76/144) / (1 − 76/144) = 32/68.
    let row = calibration(&pg, correct).await.unwrap();
    assert_eq!(row.score_name, "correct");
    assert_eq!(row.data_type.as_deref(), Some("boolean"));
    assert_eq!(row.pairs, 12);
    assert_close(row.accuracy, 9.0 / 12.0);
    assert_close(row.kappa, 32.0 / 68.0);
    assert_eq!((row.mean_absolute_error, row.spearman), (None, None));
    assert_eq!(
        row.confusion,
        Some(json!({"labels": ["false", "true"], "counts": [[3, 2], [1, 6]]}))
    );
    assert_eq!(
        row.disagreements,
        json!([
            {"trace_id": "t2", "observation_id": null, "judge": true, "human": false, "author": "alice", "link": "#/traces/t2"},
            {"trace_id": "t8", "observation_id": null, "judge": true, "human": false, "author": "alice", "link": "#/traces/t8"},
            {"trace_id": "t9", "observation_id": null, "judge": false, "human": true, "author": "bob", "link": "#/traces/t9"},
        ])
    );

    // The numeric judge: |1−2| + |2−2| + |3−4| + |4−5| + |5−4| = 4 over 5 pairs. Spearman:
    // judge ranks 1..5; carol's values 2, 2, 4, 5, 4 rank 1.5, 1.5, 3.5, 5, 3.5; deviations
    // from 3 are (−2, −1, 0, 1, 2) and (−1.5, −1.5, 0.5, 2, 0.5): Σdxdy = 7.5, Σdx² = 10,
    // Σdy² = 9, so 7.5 / √90.
    let row = calibration(&pg, helpful).await.unwrap();
    assert_eq!(row.data_type.as_deref(), Some("numeric"));
    assert_eq!(row.pairs, 5);
    assert_close(row.mean_absolute_error, 4.0 / 5.0);
    assert_close(row.spearman, 7.5 / 90f64.sqrt());
    assert_eq!((row.accuracy, row.kappa, row.confusion), (None, None, None));
    let differing: Vec<&str> = row
        .disagreements
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(differing, ["n0", "n2", "n3", "n4"]);
    assert_eq!(row.disagreements[0]["judge"], json!(1.0));
    assert_eq!(row.disagreements[0]["human"], json!(2.0));
    assert_eq!(row.disagreements[0]["author"], json!("carol"));

    // The other project's judge saw only its own project: ten agreeing pairs, all "true", so
    // chance agreement is 1 and kappa is undefined.
    let row = calibration(&pg, elsewhere).await.unwrap();
    assert_eq!(row.pairs, 10);
    assert_close(row.accuracy, 1.0);
    assert_eq!(row.kappa, None);
    assert_eq!(
        row.confusion,
        Some(json!({"labels": ["false", "true"], "counts": [[0, 0], [0, 10]]}))
    );
    assert_eq!(row.disagreements, json!([]));
    assert!(calibration(&pg, silent).await.is_none());

    // Nothing new: nothing is recomputed (through the CLI, as an operator runs it).
    let before = |row: Row| row.computed_at;
    let (correct_at, helpful_at) = (
        before(calibration(&pg, correct).await.unwrap()),
        before(calibration(&pg, helpful).await.unwrap()),
    );
    let said = env.cli(&["jobs", "run", "judge_calibration"]).await.unwrap();
    assert_eq!(
        said.trim(),
        "judge_calibration: 0 judge or human scores given, 0 of 4 judges recalibrated from 0 pairs"
    );
    assert_eq!(calibration(&pg, correct).await.unwrap().computed_at, correct_at);
    assert_eq!(calibration(&pg, helpful).await.unwrap().computed_at, helpful_at);

    // Time passes: as if the last run had ended two hours ago, a person's new score (an hour
    // ago) is in the next window, and only its judge is recomputed.
    pg.execute(
        "UPDATE job_watermarks SET watermark = $1 WHERE job = 'judge_calibration'",
        &[&(at + HOUR_US)],
    )
    .await
    .unwrap();
    let new = score(
        "h-n1-dave",
        ("n1", None),
        "helpfulness",
        json!(5.0),
        By::Person("dave"),
        at + 2 * HOUR_US,
    );
    load_events(&env, project, &[new]).await;
    assert_eq!(run(&pg, &env).await, (1, 1));
    assert_eq!(calibration(&pg, correct).await.unwrap().computed_at, correct_at);
    // Six pairs now: judge 1, 2, 3, 4, 5, 2 against 2, 2, 4, 5, 4, 5. MAE (4 + 3) / 6.
    // Judge ranks 1, 2.5, 4, 5, 6, 2.5; people's 1.5, 1.5, 3.5, 5.5, 3.5, 5.5; deviations
    // from 3.5: (−2.5, −1, 0.5, 1.5, 2.5, −1) and (−2, −2, 0, 2, 0, 2): Σdxdy = 8, Σdx² = 17,
    // Σdy² = 16, so 8 / √272.
    let row = calibration(&pg, helpful).await.unwrap();
    assert_ne!(row.computed_at, helpful_at);
    assert_eq!(row.pairs, 6);
    assert_close(row.mean_absolute_error, 7.0 / 6.0);
    assert_close(row.spearman, 8.0 / 272f64.sqrt());
    assert_eq!(row.disagreements[0]["trace_id"], json!("n1"));
    assert_eq!(row.disagreements[0]["author"], json!("dave"));

    // The API reads the same numbers, with the judges' names; another project's key does not.
    let etl = env.start_etl(|_| {}).await;
    let key =
        agenttrace_etl::control::api_keys::create_key(&pg, project, &[agenttrace_schemas::Scope::Read], None)
            .await
            .unwrap();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", key.public_key, key.secret_key)
        )
    );
    let answer: Value = reqwest::Client::new()
        .get(format!("{}/v1/projects/{project}/calibrations", etl.url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let helpful_row = answer
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["evaluator_id"] == json!(helpful.to_string()))
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(helpful_row["pairs"], 6);
    assert!((helpful_row["mean_absolute_error"].as_f64().unwrap() - 7.0 / 6.0).abs() < 1e-9);
    assert_eq!(helpful_row["disagreements"][0]["author"], "dave");
}
