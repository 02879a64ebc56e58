//! Prices per project and date, and `recompute_costs`: after a price change exactly the
//! generations priced from the table change; costs agents sent and other projects' rows stay.

use agenttrace_etl::control::prices::{self, NewPrice};
use agenttrace_jobs::{Job, JobOutcome, run_job};
use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::{Event, Timestamp};
use agenttrace_tests::TestEnv;
use serde_json::json;

fn generation(id: &str, model: &str, cost: Option<f64>, at: Timestamp) -> Event<'static> {
    let mut body = json!({"id": id, "trace_id": "t", "type": "generation", "name": "llm", "start_time": at,
                          "model": model, "usage": {"input_tokens": 1000, "output_tokens": 200}});
    if let Some(total) = cost {
        body["cost"] = json!({"total": total});
    }
    Event::parse(
        &json!({"id": format!("e-{id}"), "type": "observation", "timestamp": at, "body": body}).to_string(),
    )
    .unwrap()
    .into_static()
}

#[tokio::test]
async fn a_price_change_reprices_exactly_the_table_priced_generations() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let ours = env.create_project("ours").await;
    let theirs = env.create_project("theirs").await;
    let now = Timestamp::now();
    etl.load(
        &ours.key,
        &[
            generation("table", "gpt-4.1-mini", None, now),
            generation("agent", "gpt-4.1-mini", Some(0.5), now),
            generation("unknown", "house-model-7", None, now),
        ],
    )
    .await;
    etl.load(&theirs.key, &[generation("table", "gpt-4.1-mini", None, now)])
        .await;
    let costs = |project: uuid::Uuid| {
        let env = &env;
        async move {
            env.ch(&format!(
                "SELECT id, toString(total_cost), cost_source FROM observations FINAL WHERE project_id = '{project}' ORDER BY id"
            ))
            .await
        }
    };
    // gpt-4.1-mini lists at $0.40 / $1.60 per million input / output tokens.
    assert_eq!(
        costs(ours.key.project_id).await,
        "agent\t0.500000000000\tagent\ntable\t0.000720000000\tprice_table\nunknown\t\\N"
    );

    // Our own price for this model, from a year ago: $1 / $2.
    let pg = env.postgres().await;
    prices::set(
        &pg,
        &NewPrice {
            project_id: Some(ours.key.project_id),
            model_pattern: "gpt-4\\.1-mini".into(),
            provider: "openai".into(),
            input: 1.0,
            output: 2.0,
            cache_read: 0.0,
            cache_write: 0.0,
            valid_from: Some("2025-11-30T00:00:00Z".into()),
        },
    )
    .await
    .unwrap();
    let outcome = run_job(Job::RecomputeCosts, &pg, &env.clickhouse, None)
        .await
        .unwrap();
    let JobOutcome::Succeeded { rows_out, .. } = outcome else {
        panic!("the job did not run: {outcome:?}")
    };
    assert_eq!(rows_out, 1, "one generation re-priced");
    assert_eq!(
        costs(ours.key.project_id).await,
        "agent\t0.500000000000\tagent\ntable\t0.001400000000\tprice_table\nunknown\t\\N"
    );
    assert_eq!(
        costs(theirs.key.project_id).await,
        "table\t0.000720000000\tprice_table",
        "another project keeps the default price"
    );
    // Running it again changes nothing.
    let again = run_job(Job::RecomputeCosts, &pg, &env.clickhouse, None)
        .await
        .unwrap();
    assert!(
        matches!(again, JobOutcome::Succeeded { rows_out: 0, .. }),
        "{again:?}"
    );
    // A price that is not a valid pattern is refused with the field named.
    let refused = prices::set(
        &pg,
        &NewPrice {
            project_id: None,
            model_pattern: "gpt-(".into(),
            provider: "openai".into(),
            input: 1.0,
            output: 1.0,
            cache_read: 0.0,
            cache_write: 0.0,
            valid_from: None,
        },
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().starts_with("model_pattern:"), "{refused}");
    etl.server.shutdown().await.unwrap();
}

/// Langfuse's model definitions, through its Python SDK unchanged, are the project's prices:
/// per token there, per million tokens here; the defaults are read-only; generations are priced
/// by what the SDK set.
#[tokio::test]
async fn langfuse_models_are_the_projects_prices() {
    let env = TestEnv::migrated().await;
    // Prices reloaded often, so a generation loaded right after is priced by the new model.
    let etl = env
        .start_etl(|config| config.price_refresh = std::time::Duration::from_millis(100))
        .await;
    let project = env.create_project("models").await;
    let pg = env.postgres().await;
    let manager = agenttrace_etl::control::api_keys::create_key(
        &pg,
        project.key.project_id,
        &[agenttrace_schemas::Scope::Read, agenttrace_schemas::Scope::Manage],
        None,
    )
    .await
    .unwrap();
    let seen = agenttrace_tests::python_script(
        "langfuse_models.py",
        &[&etl.url, &manager.public_key, &manager.secret_key],
    )
    .await;
    let created = &seen["created"];
    assert_eq!(created["modelName"], "house-llm", "{seen}");
    assert_eq!(created["inputPrice"], 0.000002);
    assert_eq!(created["prices"]["output"]["price"], 0.000008);
    assert_eq!(created["isLangfuseManaged"], false);
    assert_eq!(seen["got"], "house-llm");
    assert_eq!(seen["replaced"]["id"], created["id"], "replaced under its id");
    assert_eq!(seen["replaced"]["name"], "house-llm-v2");
    assert_eq!(seen["own"], json!(["house-llm-v2"]));
    assert!(seen["defaults"].as_u64().unwrap() > 5, "{seen}");
    for (call, status) in [
        ("delete_default", "403"),
        ("tiers", "400"),
        ("bad_pattern", "400"),
    ] {
        assert_eq!(seen[call], status, "{call}: {seen}");
    }
    assert_eq!(seen["after_delete"], json!(["house-llm-v2"]));

    // The project's price, per million tokens, prices its generations: 1000 × $3 + 200 × $9.
    let own: Vec<_> = prices::list(&pg, project.key.project_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.project_id.is_some())
        .map(|p| (p.model_pattern, p.input_per_mtok, p.output_per_mtok))
        .collect();
    assert_eq!(own, [("(?i)^house-llm(-.*)?$".to_owned(), 3.0, 9.0)]);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    etl.load(
        &project.key,
        &[generation("priced", "house-llm-small", None, Timestamp::now())],
    )
    .await;
    assert_eq!(
        env.ch(&format!(
            "SELECT toString(total_cost), cost_source FROM observations FINAL WHERE project_id = '{}'",
            project.key.project_id
        ))
        .await,
        "0.004800000000\tprice_table"
    );

    // Patterns are bounded (every project's are compiled into each ETL), and so is their count.
    let auth = format!("Bearer {}:{}", manager.public_key, manager.secret_key);
    let url = format!("{}/v1/projects/{}/prices", etl.url, project.key.project_id);
    let set = |pattern: String| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let answer = reqwest::Client::new()
                .post(url)
                .header("authorization", auth)
                .json(&json!({"model_pattern": pattern, "input": 1.0, "output": 2.0}))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, long) = set("m".repeat(201)).await;
    assert_eq!(status, 400, "{long}");
    assert_eq!(long["message"], "model_pattern: 1 to 200 characters, not 201");
    let (status, huge) = set("(a{1000}){1000}".into()).await;
    assert_eq!(status, 400, "{huge}");
    // With the house-llm price above, the project holds the most it may.
    pg.execute(
        "INSERT INTO model_prices (project_id, model_pattern, provider, input_per_mtok, output_per_mtok, priority)
         SELECT $1, 'filler-' || n, 'filler', 1, 1, 0 FROM generate_series(1::bigint, $2) AS n",
        &[&project.key.project_id, &(prices::MAX_PROJECT_PRICES - 1)],
    )
    .await
    .unwrap();
    let (status, full) = set("one-more".into()).await;
    assert_eq!(status, 409, "{full}");
    let (status, replaced) = set("filler-1".into()).await;
    assert_eq!(status, 201, "replacing a price is allowed at the cap: {replaced}");
    etl.server.shutdown().await.unwrap();
}
