//! People in the loop in the web UI: two people review one annotation queue at once in two
//! headless Chromium sessions (`tests/js/ui_review.mjs`), never shown the same item, and finish
//! it together; the calibration job then compares an LLM judge with what they said, and the
//! evaluations page shows it; a comment, and a trace shared by link and opened signed out until
//! it is made private. Screenshots go to `$AGENTTRACE_SCREENSHOTS` (the README's are in
//! `docs/screenshots`).

use agenttrace_etl::control::annotation::{self, NewItem, NewQueue};
use agenttrace_etl::control::evaluators::{self, NewEvaluator};
use agenttrace_etl::control::identity::{self, Role};
use agenttrace_etl::control::score_configs::{self, NewScoreConfig};
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_etl::ingest::direct;
use agenttrace_jobs::{Job, run_job};
use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::score_config::ConfigDataType;
use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use serde_json::{Value, json};

const PASSWORD: &str = "a password for the review test";
const TRACES: [&str; 6] = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];

/// Runs one phase of the browser script; what it printed last, as JSON.
async fn browser(phase: &str, vars: &[(&str, String)]) -> Value {
    let screenshots = std::env::var("AGENTTRACE_SCREENSHOTS")
        .map(|dir| agenttrace_tests::repo_root().join(dir))
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("agenttrace-review-{}", uuid::Uuid::new_v4())));
    let mut command = tokio::process::Command::new("node");
    command
        .arg(agenttrace_tests::repo_root().join("tests/js/ui_review.mjs"))
        .current_dir(agenttrace_tests::repo_root().join("tests/js"))
        .env("UI_PHASE", phase)
        .env("UI_PASSWORD", PASSWORD)
        .env("UI_SCREENSHOTS", &screenshots);
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command
        .output()
        .await
        .expect("node runs (scripts/edge-tools.sh installs Node 22)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test ({phase}) failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

#[tokio::test]
async fn two_people_review_a_queue_in_the_browser_and_the_judge_is_calibrated_against_them() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let mut pg = env.postgres().await;
    let alice = identity::create_user(&pg, "alice@review-ui.test", None, PASSWORD)
        .await
        .unwrap();
    let bob = identity::create_user(&pg, "bob@review-ui.test", None, PASSWORD)
        .await
        .unwrap();
    let organization = identity::found_organization(&mut pg, "review-ui", alice.id)
        .await
        .unwrap()
        .id;
    identity::add_member(&pg, organization, bob.id, Role::Member)
        .await
        .unwrap();
    let project = projects::create_project(&pg, organization, "agents", None)
        .await
        .unwrap();
    let p = project.id;
    let key = api_keys::create_key(&pg, p, &[Scope::Ingest], None)
        .await
        .unwrap();
    let at = Timestamp::now();
    let events: Vec<_> = TRACES
        .iter()
        .flat_map(|id| {
            [
                json!({"id": format!("{id}-t"), "type": "trace", "timestamp": at, "body": {
                    "id": id, "timestamp": at, "name": "fix-bug",
                    "input": format!("Fix the failing test in {id}"), "output": format!("Patched {id}")}}),
                json!({"id": format!("{id}-o"), "type": "observation", "timestamp": at, "body": {
                    "id": format!("{id}-gen"), "trace_id": id, "type": "generation", "name": "answer",
                    "model": "claude-sonnet-4-5", "start_time": at,
                    "input": format!("Fix the failing test in {id}"), "output": format!("Patched {id}")}}),
            ]
        })
        .map(|event| {
            agenttrace_schemas::Event::parse(&event.to_string())
                .unwrap()
                .into_static()
        })
        .collect();
    etl.load(
        &agenttrace_cli::send::ProjectKey {
            project_id: p,
            public_key: key.public_key.clone(),
        },
        &events,
    )
    .await;

    // A judge that says t-0..t-3 are right and t-4, t-5 wrong (its scores loaded as it writes them).
    agenttrace_tests::providers::connect(&pg, p, None, Some(json!({"model": "judge-small"}))).await;
    evaluators::add(
        &pg,
        &NewEvaluator {
            project_id: p,
            name: "fixed-it".into(),
            kind: "llm_judge".into(),
            config: json!({"connection": "local", "prompt": "Did {{output}} fix {{input}}?",
                           "output": {"type": "boolean"}, "score_name": "correct", "target": "trace"}),
            schedule: None,
        },
    )
    .await
    .unwrap();
    let judge = evaluators::list(&pg, p)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.name == "fixed-it")
        .unwrap()
        .id;
    let judged: Vec<(String, Option<agenttrace_schemas::event::Cost>)> = TRACES
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": format!("judge-{id}"), "type": "score", "timestamp": at, "body": {
                "id": format!("judge-{id}"), "trace_id": id, "name": "correct", "value": i < 4,
                "source": "eval", "evaluator_id": judge.to_string(), "timestamp": at}})
            .to_string()
        })
        .map(|text| (text, None))
        .collect();
    direct::load(&env.clickhouse, p, "agents", "judge", &judged)
        .await
        .unwrap();

    let config = score_configs::create(
        &pg,
        p,
        NewScoreConfig {
            name: "correct".into(),
            data_type: ConfigDataType::Boolean,
            min_value: None,
            max_value: None,
            categories: None,
            description: Some("Did the agent fix what it was asked to?".into()),
        },
    )
    .await
    .unwrap();
    let queue = annotation::create_queue(
        &pg,
        p,
        NewQueue {
            name: "Did the agent fix it?".into(),
            description: Some("Read the trace; say whether the fix is right.".into()),
            score_config_ids: vec![config.id],
            annotators_per_item: None,
        },
    )
    .await
    .unwrap();
    let items: Vec<NewItem> = TRACES
        .iter()
        .map(|id| NewItem {
            object_type: "TRACE",
            object_id: id.to_string(),
            trace_id: Some(id.to_string()),
        })
        .collect();
    annotation::add_items(&pg, p, queue.id, &items, None)
        .await
        .unwrap();

    let vars = [
        ("UI_URL", etl.url.clone()),
        ("UI_PROJECT", p.to_string()),
        ("UI_QUEUE", queue.id.to_string()),
        ("UI_TRACE", "t-4".to_owned()),
        ("UI_ALICE", "alice@review-ui.test".to_owned()),
        ("UI_BOB", "bob@review-ui.test".to_owned()),
    ];
    let review = browser("review", &vars).await;
    let (by_alice, by_bob) = (&review["reviewed"]["alice"], &review["reviewed"]["bob"]);
    let mut all: Vec<&str> = by_alice
        .as_array()
        .unwrap()
        .iter()
        .chain(by_bob.as_array().unwrap())
        .map(|v| v.as_str().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, TRACES, "together they reviewed each item once: {review}");
    assert!(
        !by_alice.as_array().unwrap().is_empty() && !by_bob.as_array().unwrap().is_empty(),
        "{review}"
    );
    assert_eq!(
        review["reopened"],
        by_bob.as_array().unwrap().last().unwrap().clone()
    );

    // People said: Alice's items right, Bob's wrong. The judge: t-0..t-3 right.
    let said = |author: uuid::Uuid| {
        let env = &env;
        async move {
            env.ch(&format!(
                "SELECT trace_id, value FROM scores FINAL WHERE project_id = '{p}' AND source = 'annotation'
                 AND metadata_values[indexOf(metadata_keys, 'langfuse.authorUserId')] = '{author}' ORDER BY trace_id"
            ))
            .await
        }
    };
    let mut agree = 0;
    for (author, value) in [(alice.id, "1"), (bob.id, "0")] {
        for line in said(author).await.lines() {
            let (trace, given) = line.split_once('\t').unwrap();
            assert_eq!(given, value, "{line}");
            let judge_said = if TRACES.iter().position(|t| *t == trace).unwrap() < 4 {
                "1"
            } else {
                "0"
            };
            agree += usize::from(given == judge_said);
        }
    }
    run_job(Job::JudgeCalibration, &pg, &env.clickhouse, None)
        .await
        .unwrap();
    let row = pg
        .query_one(
            "SELECT pairs, accuracy FROM judge_calibrations WHERE evaluator_id = $1",
            &[&judge],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 6);
    let accuracy: f64 = row.get(1);
    assert!(
        (accuracy - agree as f64 / 6.0).abs() < 1e-9,
        "{accuracy} vs {agree}/6"
    );

    let after = browser("after", &vars).await;
    let shown = after["calibration"].as_str().unwrap();
    assert!(shown.contains("fixed-it") && shown.contains("6 pairs"), "{shown}");
    assert!(shown.contains(&format!("{:.1}%", accuracy * 100.0)), "{shown}");
    assert_eq!(
        after["shared_shows_comments"], 0,
        "a shared trace shows no comments"
    );
    assert!(
        after["after_private"]
            .as_str()
            .unwrap()
            .contains("no public trace"),
        "{after}"
    );
    assert!(
        after["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#/share/{p}/t-4")),
        "{after}"
    );
}
