//! The web UI as a person uses it: Debian's headless Chromium, driven by playwright-core
//! (`tests/js/ui_e2e.mjs`), against the real ETL serving its embedded UI, with the demo's data
//! (`agenttrace demo --experiments`, the demo prompt, evaluators and jobs) in real PostgreSQL
//! and ClickHouse. Screenshots go to `$AGENTTRACE_SCREENSHOTS` (the README's are in
//! `docs/screenshots`, refreshed with `AGENTTRACE_SCREENSHOTS=docs/screenshots`).

use agenttrace_cli::send::ProjectKey;
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_schemas::batch::BatchResponse;
use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::etl::SIGNING_KEYS;
use serde_json::value::to_raw_value;
use serde_json::{Value, json};

const EMAIL: &str = "owner@ui.test";
const PASSWORD: &str = "a password for the ui test";
/// A trace this size opens in the UI (the bound is 2 s; the test prints the time).
const BIG_TRACE_OBSERVATIONS: usize = 10_000;

#[tokio::test]
async fn a_person_signs_in_and_reads_traces_sessions_dashboards_experiments_and_prompts() {
    let env = TestEnv::migrated().await;
    let etl = env
        .start_etl(|config| config.allow_private_model_urls = true)
        .await;
    let provider = agenttrace_tests::providers::FakeProvider::start("sk-ui-test-provider-key").await;
    let pg = env.postgres().await;
    let owner: Value = serde_json::from_str(
        &env.cli(&[
            "user",
            "create-owner",
            "--organization",
            "demo-org",
            "--email",
            EMAIL,
            "--password",
            PASSWORD,
            "--json",
        ])
        .await
        .unwrap(),
    )
    .unwrap();
    let organization = owner["organization_id"].as_str().unwrap().parse().unwrap();
    let project = projects::create_project(&pg, organization, "demo", None)
        .await
        .unwrap();
    let other = projects::create_project(&pg, organization, "other", None)
        .await
        .unwrap();
    let key = api_keys::create_key(&pg, project.id, &[Scope::Ingest], None)
        .await
        .unwrap();
    let key_file = std::env::temp_dir().join(format!("at-ui-key-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(
        &key_file,
        json!({"project_id": project.id, "public_key": key.public_key, "secret_key": key.secret_key})
            .to_string(),
    )
    .unwrap();
    let project_id = project.id.to_string();
    for (name, kind) in [
        ("tools-succeed", "tool_call_failure"),
        ("answer-exact", "exact_match"),
    ] {
        env.cli(&[
            "evaluator",
            "add",
            "--project",
            &project_id,
            "--name",
            name,
            "--kind",
            kind,
        ])
        .await
        .unwrap();
    }
    env.cli(&[
        "demo",
        "--etl-url",
        &etl.url,
        "--signing-keys",
        SIGNING_KEYS,
        "--key-file",
        key_file.to_str().unwrap(),
        "--sessions",
        "8",
        "--experiments",
    ])
    .await
    .unwrap();
    std::fs::remove_file(&key_file).ok();
    // A refused event (no name), so the dead-letter view has something to show.
    let key_of = ProjectKey {
        project_id: project.id,
        public_key: key.public_key.clone(),
    };
    let refused = send_raw(
        &etl,
        &key_of,
        vec![json!({"type": "observation", "id": "refused", "timestamp": Timestamp::now().to_string(),
                    "body": {"id": "refused", "trace_id": "t", "type": "span", "start_time": Timestamp::now().to_string()}})],
    )
    .await;
    assert_eq!(refused.rejected.len(), 1, "{refused:?}");
    // Jobs read completed ingest seconds only.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.cli(&["jobs", "run", "evaluate"]).await.unwrap();
    env.cli(&["jobs", "run", "experiment_rollups"]).await.unwrap();

    let project_sql = agenttrace_etl::clickhouse::quote(&project_id);
    let with_command = env
        .ch(&format!(
            "SELECT trace_id, exit_code FROM terminal_commands FINAL WHERE project_id = {project_sql}
             ORDER BY exit_code DESC, trace_id LIMIT 1"
        ))
        .await;
    let (trace, exit_code) = with_command
        .trim()
        .split_once('\t')
        .expect("the demo ran terminal commands");
    let big_trace = load_big_trace(&etl, &key_of).await;
    // A model connection for the judge the person adds, and a generation to try it on.
    agenttrace_tests::providers::connect(
        &pg,
        project.id,
        Some(&provider),
        Some(json!({"model": "judge-small"})),
    )
    .await;
    let generation = env
        .ch(&format!(
            "SELECT trace_id, id FROM observations FINAL WHERE project_id = {project_sql} AND type = 'generation'
             ORDER BY id LIMIT 1"
        ))
        .await;
    let (judge_trace, judge_observation) = generation
        .trim()
        .split_once('\t')
        .expect("the demo made generations");

    let screenshots = std::env::var("AGENTTRACE_SCREENSHOTS")
        .map(|dir| agenttrace_tests::repo_root().join(dir))
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("agenttrace-ui-{}", uuid::Uuid::new_v4())));
    let output = tokio::process::Command::new("node")
        .arg(agenttrace_tests::repo_root().join("tests/js/ui_e2e.mjs"))
        .current_dir(agenttrace_tests::repo_root().join("tests/js"))
        .env("UI_URL", &etl.url)
        .env("UI_EMAIL", EMAIL)
        .env("UI_PASSWORD", PASSWORD)
        .env("UI_PROJECT", &project_id)
        .env("UI_OTHER_PROJECT", other.id.to_string())
        .env("UI_TRACE", trace)
        .env("UI_EXIT_CODE", exit_code)
        .env("UI_BIG_TRACE", &big_trace)
        .env("UI_PROMPT", "coding-agent-system")
        .env("UI_JUDGE_TRACE", judge_trace)
        .env("UI_JUDGE_OBSERVATION", judge_observation)
        .env("UI_SCREENSHOTS", &screenshots)
        .output()
        .await
        .expect("node runs (scripts/edge-tools.sh installs Node 22)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stderr}\n{stdout}"
    );
    println!("{stdout}");
    let results: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert!(results["big_trace_rendered_rows"].as_u64().unwrap() > 0);
    let detectors = results["privacy_detectors"].as_array().unwrap();
    assert!(
        detectors.contains(&json!("email")) && detectors.contains(&json!("llm_api_key")),
        "{results}"
    );
    assert_eq!(results["deleted_trace_listed"], false, "{results}");
    assert!(results["search_hits"].as_u64().unwrap() >= 1, "{results}");
    assert!(results["audit_rows"].as_u64().unwrap() >= 3, "{results}");
    assert_eq!(results["alert_secret_prefix"], "at-whsec_", "{results}");
    assert_eq!(results["alert_channels_show_secret"], false, "{results}");
    assert_eq!(
        results["alert_rules"],
        json!([["a user over a cent an hour", "user", 1]]),
        "{results}"
    );
    assert!(
        results["judge_preview"].as_str().unwrap().contains("0.75"),
        "{results}"
    );
    assert_eq!(provider.received().len(), 1, "one call, from \"Run once\"");
}

/// Sends events as JSON (`{type, id, timestamp, body}`), signed as the edge signs them.
async fn send_raw(etl: &agenttrace_tests::etl::Etl, key: &ProjectKey, events: Vec<Value>) -> BatchResponse {
    let raw = events.iter().map(|e| to_raw_value(e).unwrap()).collect();
    let body = etl.client.batch_body(key, uuid::Uuid::now_v7(), raw);
    etl.client
        .post_body(body, Timestamp::now().as_micros() / 1_000_000, None)
        .await
        .unwrap()
        .response()
        .unwrap()
}

/// One trace of `BIG_TRACE_OBSERVATIONS` observations: agent steps of 50 tool calls and
/// generations each, under one root (an agent that ran for an hour), as `bench trace` makes it.
async fn load_big_trace(etl: &agenttrace_tests::etl::Etl, key: &ProjectKey) -> String {
    let trace_id = format!("big-{}", uuid::Uuid::new_v4().simple());
    let events = agenttrace_cli::bench::trace::trace_events(&trace_id, BIG_TRACE_OBSERVATIONS);
    for chunk in events.chunks(2000) {
        let answer = send_raw(etl, key, chunk.to_vec()).await;
        assert!(answer.rejected.is_empty(), "{:?}", answer.rejected.first());
    }
    trace_id
}
