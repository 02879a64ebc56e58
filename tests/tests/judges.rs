//! LLM judges and their model connections, against a real HTTP server speaking OpenAI's and
//! Anthropic's formats (errors included), the real databases and the real judge job.
//! Connections are stored through Langfuse's Python SDK and our API with the provider key
//! sealed: never in a response or a PostgreSQL column in clear.

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::api_keys;
use agenttrace_etl::control::datasets;
use agenttrace_etl::control::evaluators::{self, NewEvaluator};
use agenttrace_etl::control::experiments;
use agenttrace_etl::control::prices::{self, NewPrice};
use agenttrace_etl::control::projects;
use agenttrace_etl::control::sealing::Sealer;
use agenttrace_etl::ingest::to_arrow::TableBatches;
use agenttrace_etl::judge::preview;
use agenttrace_etl::judge::provider::ModelClient;
use agenttrace_jobs::judge::Setup;
use agenttrace_jobs::{Job, JobOutcome, run_job_with};
use agenttrace_schemas::event::Event;
use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::providers::FakeProvider;
use serde_json::{Value, json};
use uuid::Uuid;

const PROVIDER_KEY: &str = "sk-test-provider-key-0123456789";

#[tokio::test]
async fn connections_keep_their_key_sealed_and_test_against_real_wire_formats() {
    let env = TestEnv::migrated().await;
    let etl = env
        .start_etl(|config| config.allow_private_model_urls = true)
        .await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "judges-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "judges", None)
        .await
        .unwrap();
    let key = api_keys::create_key(&pg, project.id, &[Scope::Read, Scope::Manage], None)
        .await
        .unwrap();

    // Langfuse's SDK, unchanged: upsert, list, delete.
    let seen = agenttrace_tests::python_script(
        "langfuse_llm_connections.py",
        &[
            &etl.url,
            &key.public_key,
            &key.secret_key,
            &provider.base_url,
            PROVIDER_KEY,
        ],
    )
    .await;
    let created = &seen["created"];
    assert_eq!(created["provider"], "local-openai");
    assert_eq!(created["adapter"], "openai");
    assert_eq!(created["displaySecretKey"], "…6789");
    assert_eq!(created["baseURL"], provider.base_url.as_str());
    assert_eq!(created["extraHeaderKeys"], json!(["X-Team"]));
    assert_eq!(created["customModels"], json!(["judge-small"]));
    assert_eq!(seen["changed"]["id"], created["id"], "an upsert keeps the row");
    assert_eq!(seen["changed"]["config"]["model"], "judge-large");
    assert_eq!(seen["listed"].as_array().unwrap().len(), 2);
    assert_eq!(seen["after_delete"], json!(["local-openai"]));
    assert_eq!(seen["meta"], json!({"total": 1, "page": 1}));
    assert_eq!(seen["bedrock"], "400", "an adapter we cannot call is refused");
    assert!(
        !seen.to_string().contains(PROVIDER_KEY),
        "a response showed the key: {seen}"
    );

    // Sealed at rest: no column holds the key (or the extra header's value) in clear.
    let dump: String = pg
        .query_one("SELECT string_agg(t::text, ' ') FROM llm_connections t", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !dump.contains(PROVIDER_KEY) && !dump.contains(&hex_of(PROVIDER_KEY)),
        "{dump}"
    );

    // Our API: an Anthropic connection, then a test of each against the provider.
    let http = reqwest::Client::new();
    let base = format!("{}/v1/projects/{}/connections", etl.url, project.id);
    let basic = (key.public_key.as_str(), Some(key.secret_key.as_str()));
    let put = |body: Value| http.put(&base).basic_auth(basic.0, basic.1).json(&body).send();
    let response = put(json!({
        "provider": "claude", "adapter": "anthropic", "secretKey": PROVIDER_KEY,
        "baseURL": provider.base_url, "config": {"model": "claude-judge", "timeoutSecs": 2},
    }))
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let claude: Value = response.json().await.unwrap();
    let openai_id = created["id"].as_str().unwrap();
    let test = |id: String, model: &str| {
        let body = json!({"model": model});
        let http = http.clone();
        let url = format!("{base}/{id}/test");
        async move {
            let response = http
                .post(url)
                .basic_auth(basic.0, basic.1)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let ok = test(openai_id.into(), "judge-large").await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["answered_by"], "judge-large-2026-01-01");
    let ok = test(claude["id"].as_str().unwrap().into(), "claude-judge").await;
    assert_eq!(ok["ok"], true, "{ok}");
    for (model, kind, words) in [
        ("judge-rate-limited", "retry", "rate_limit"),
        ("judge-no-credit", "blocked", "insufficient_quota"),
        ("judge-down", "retry", "500"),
        ("judge-overloaded", "retry", "529"),
        ("judge-garbled", "invalid", "not JSON"),
        ("judge-slow", "retry", "no answer within 2 s"),
    ] {
        let id = if model == "judge-no-credit" {
            openai_id.to_owned()
        } else {
            claude["id"].as_str().unwrap().to_owned()
        };
        let outcome = test(id, model).await;
        assert_eq!(outcome["ok"], false, "{model}: {outcome}");
        assert_eq!(outcome["error_kind"], kind, "{model}: {outcome}");
        assert!(
            outcome["error"].as_str().unwrap().contains(words),
            "{model}: {outcome}"
        );
    }
    // What the provider received: the key in its own header, the schema as each format asks.
    let received = provider.received();
    let openai_call = received
        .iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(
        openai_call.headers["authorization"],
        format!("Bearer {PROVIDER_KEY}").as_str()
    );
    assert_eq!(openai_call.body["response_format"]["json_schema"]["strict"], true);
    let anthropic_call = received.iter().find(|r| r.path == "/v1/messages").unwrap();
    assert_eq!(anthropic_call.headers["x-api-key"], PROVIDER_KEY);
    assert_eq!(anthropic_call.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        anthropic_call.body["tool_choice"],
        json!({"type": "tool", "name": "judgment"})
    );

    // Azure, in Langfuse's form: the base ends in /deployments and the model names the deployment.
    let response = put(json!({
        "provider": "azure", "adapter": "azure", "secretKey": PROVIDER_KEY,
        "baseURL": provider.base_url.replace("/v1", "/openai/deployments"),
        "config": {"apiVersion": "2024-10-21"},
    }))
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let azure: Value = response.json().await.unwrap();
    let ok = test(azure["id"].as_str().unwrap().into(), "gpt-judge").await;
    assert_eq!(ok["ok"], true, "{ok}");
    let azure_call = provider.received().into_iter().last().unwrap();
    assert_eq!(azure_call.path, "/openai/deployments/gpt-judge/chat/completions");
    assert_eq!(azure_call.headers["api-key"], PROVIDER_KEY);

    // A key the provider refuses: blocked, with the provider's words, and still not shown.
    put(json!({"provider": "claude", "adapter": "anthropic", "secretKey": "sk-wrong-key-000000", "baseURL": provider.base_url}))
        .await
        .unwrap();
    let refused = test(claude["id"].as_str().unwrap().into(), "claude-judge").await;
    assert_eq!(refused["error_kind"], "blocked", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("authentication_error"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("sk-wrong-key"));
}

/// A connection may not aim the service at its own network unless the operator allows it.
#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "ssrf-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "ssrf", None)
        .await
        .unwrap();
    let key = api_keys::create_key(&pg, project.id, &[Scope::Read, Scope::Manage], None)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("{}/v1/projects/{}/connections", etl.url, project.id);
    for url in [
        provider.base_url.clone(),
        provider.base_url.replace("127.0.0.1", "localhost"),
    ] {
        let connection: Value = http
            .put(&base)
            .basic_auth(&key.public_key, Some(&key.secret_key))
            .json(&json!({"provider": "inside", "adapter": "openai", "secretKey": PROVIDER_KEY, "baseURL": url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let outcome: Value = http
            .post(format!("{base}/{}/test", connection["id"].as_str().unwrap()))
            .basic_auth(&key.public_key, Some(&key.secret_key))
            .json(&json!({"model": "judge"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["error_kind"], "blocked", "{url}: {outcome}");
        assert!(
            outcome["error"]
                .as_str()
                .unwrap()
                .contains("AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS"),
            "{outcome}"
        );
    }
    assert!(provider.received().is_empty(), "the private server was called");
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Generations of a few agent sessions (ids from `seed`), loaded into `project`'s tables;
/// returns how many.
async fn load_generations(env: &TestEnv, project: Uuid, seed: u64) -> u64 {
    let now = Timestamp::parse("2026-11-25T12:00:00Z").unwrap();
    let mut generator = SessionGenerator::new(seed);
    let mut tables = TableBatches::new(&project.to_string(), "judged");
    for event in (0..3).flat_map(|_| generator.session(now, 2)) {
        tables.push(&event, None).unwrap();
    }
    for (table, batch) in tables.finish("b", now).unwrap() {
        env.clickhouse.insert_batches(table, &[batch]).await.unwrap();
    }
    env.ch(&format!(
        "SELECT count() FROM observations FINAL WHERE project_id = '{project}' AND type = 'generation'"
    ))
    .await
    .trim()
    .parse()
    .unwrap()
}

async fn judge_run(env: &TestEnv, pg: &tokio_postgres::Client) -> String {
    let setup = Setup {
        sealer: Some(Sealer::from_hex(agenttrace_tests::etl::ENCRYPTION_KEY).unwrap()),
        client: ModelClient::new(true),
    };
    match run_job_with(Job::Judge, pg, &env.clickhouse, None, Some(&setup))
        .await
        .unwrap()
    {
        JobOutcome::Succeeded { summary, .. } => summary,
        JobOutcome::Skipped => panic!("skipped"),
    }
}

/// Judges score each new generation once: the answer's score and reasoning land as a score
/// beside the judge's own trace; a re-run calls nothing; an answer kept before a crash is
/// written without calling again; a rate-limited provider is tried again later; a daily spend
/// cap stops the calls after one and pauses the judge with the reason.
#[tokio::test]
async fn llm_judges_score_new_observations_once_within_their_limits() {
    let env = TestEnv::migrated().await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "judged-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "judged", None)
        .await
        .unwrap()
        .id;
    agenttrace_tests::providers::connect(
        &pg,
        project,
        Some(&provider),
        Some(json!({"model": "judge-small", "concurrency": 4})),
    )
    .await;
    // The budget judge's model is priced: $1 per million input tokens, $2 per million output.
    prices::set(
        &pg,
        &NewPrice {
            project_id: Some(project),
            model_pattern: "judge-budget.*".into(),
            provider: "local".into(),
            input: 1.0,
            output: 2.0,
            cache_read: 0.0,
            cache_write: 0.0,
            valid_from: None,
        },
    )
    .await
    .unwrap();
    let judge = |name: &str, config: Value| NewEvaluator {
        project_id: project,
        name: name.into(),
        kind: "llm_judge".into(),
        config,
        schedule: None,
    };
    let helpful = json!({
        "connection": "local",
        "prompt": "HELPFUL Question: {{input}}\nAnswer: {{output}}\nHow helpful is the answer?",
        "output": {"type": "numeric", "min": 0, "max": 1},
        "filter": {"type": ["generation"]},
        "score_name": "helpfulness",
    });
    evaluators::add(&pg, &judge("helpful", helpful)).await.unwrap();
    let mut limited = json!({"connection": "local", "model": "judge-rate-limited", "prompt": "LIMITED {{output}}",
        "output": {"type": "boolean"}, "filter": {"type": ["generation"]}});
    evaluators::add(&pg, &judge("limited", limited.clone()))
        .await
        .unwrap();
    let budget = json!({"connection": "local", "model": "judge-budget", "prompt": "BUDGET {{output}}",
        "output": {"type": "boolean"}, "filter": {"type": ["generation"]}, "daily_budget_usd": 0.0000001});
    evaluators::add(&pg, &judge("budget", budget.clone()))
        .await
        .unwrap();
    // A judge whose config cannot run is refused when it is added, naming the key.
    limited["filter"] = json!({"user": ["x"]});
    let refused = evaluators::add(&pg, &judge("bad", limited))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("config.filter.user"), "{refused}");

    let generations = load_generations(&env, project, 7).await;
    assert!(generations >= 3, "{generations}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let summary = judge_run(&env, &pg).await;

    let calls = |prefix: &str| {
        provider
            .received()
            .iter()
            .filter(|r| {
                r.body["messages"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(prefix)
            })
            .count() as u64
    };
    assert_eq!(calls("HELPFUL"), generations, "{summary}");
    let scores = env
        .ch(&format!(
            "SELECT count(), uniqExact(observation_id), min(value), max(value), any(comment), any(source) FROM scores FINAL \
             WHERE project_id = '{project}' AND name = 'helpfulness' AND evaluator_id != ''"
        ))
        .await;
    assert_eq!(
        scores.trim(),
        format!("{generations}\t{generations}\t0.75\t0.75\tThe answer addresses the question.\teval")
    );
    // The judge's own traces: its prompt, the model that answered, in their own environment.
    let traces = env
        .ch(&format!(
            "SELECT count() FROM traces FINAL WHERE project_id = '{project}' AND environment = 'agenttrace-judge'"
        ))
        .await;
    assert!(traces.trim().parse::<u64>().unwrap() > generations, "{traces}");
    let models = env
        .ch(&format!(
            "SELECT groupUniqArray(model) FROM observations FINAL WHERE project_id = '{project}' AND name = 'judge call'"
        ))
        .await;
    assert!(models.contains("judge-small-2026-01-01"), "{models}");

    // Rate limited: put back for later, with the provider's words, counted as one try.
    let limited_rows = pg
        .query(
            "SELECT j.status, j.attempts, j.error, j.next_attempt_at > now() + interval '4 seconds' AS later
             FROM judgments j JOIN evaluators e ON e.id = j.evaluator_id WHERE e.name = 'limited'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(limited_rows.len() as u64, generations);
    for row in &limited_rows {
        assert_eq!(row.get::<_, &str>("status"), "pending");
        assert_eq!(row.get::<_, i32>("attempts"), 1);
        assert!(row.get::<_, &str>("error").contains("rate_limit_exceeded"));
        assert!(row.get::<_, bool>("later"));
    }
    // Over budget after its first priced call: paused until tomorrow, with the reason.
    assert_eq!(calls("BUDGET"), 1, "{summary}");
    let (reason, paused): (String, bool) = {
        let row = pg
            .query_one(
                "SELECT blocked_reason, paused_until > now() AS paused FROM evaluators WHERE name = 'budget'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(reason.contains("daily spend cap") && paused, "{reason}");
    let spent: f64 = pg
        .query_one("SELECT sum(cost_usd) FROM judgments j JOIN evaluators e ON e.id = j.evaluator_id WHERE e.name = 'budget'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(spent > 0.0000001, "{spent}");

    // Again: nothing new, nothing called, the judges' own observations never judged.
    let before = provider.received().len();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = judge_run(&env, &pg).await;
    assert_eq!(provider.received().len(), before, "{again}");
    let queued: i64 = pg
        .query_one("SELECT count(*) FROM judgments j JOIN evaluators e ON e.id = j.evaluator_id WHERE e.name = 'helpful'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued as u64, generations);

    // A run that died after keeping an answer (lease expired): the score is written again
    // from the ledger, not paid for again.
    pg.execute(
        "UPDATE judgments SET status = 'answered', lease_until = now() - interval '1 second'
         WHERE evaluator_id = (SELECT id FROM evaluators WHERE name = 'helpful')",
        &[],
    )
    .await
    .unwrap();
    judge_run(&env, &pg).await;
    assert_eq!(provider.received().len(), before);
    let statuses: Vec<String> = pg
        .query(
            "SELECT DISTINCT status FROM judgments WHERE evaluator_id = (SELECT id FROM evaluators WHERE name = 'helpful')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(statuses, ["done"]);
    let scores_after = env
        .ch(&format!(
            "SELECT count() FROM scores FINAL WHERE project_id = '{project}' AND name = 'helpfulness' AND source = 'eval'"
        ))
        .await;
    assert_eq!(scores_after.trim(), generations.to_string());

    // A new config (a higher cap) lifts the pause; the next run checks the limits again.
    let budget_id: Uuid = pg
        .query_one("SELECT id FROM evaluators WHERE name = 'budget'", &[])
        .await
        .unwrap()
        .get(0);
    let mut raised = budget;
    raised["daily_budget_usd"] = json!(1.0);
    evaluators::update(&pg, project, budget_id, Some(&raised), None, None)
        .await
        .unwrap();
    let reason: Option<String> = pg
        .query_one(
            "SELECT blocked_reason FROM evaluators WHERE id = $1",
            &[&budget_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, None);
    judge_run(&env, &pg).await;
    assert_eq!(
        calls("BUDGET"),
        generations,
        "the rest judged once the cap was raised"
    );
}

/// `agenttrace connection`: add (the key never printed), list, test against the provider, delete.
#[tokio::test]
async fn the_cli_manages_and_tests_connections() {
    let env = TestEnv::migrated().await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "cli-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "cli", None)
        .await
        .unwrap()
        .id
        .to_string();
    let added = env
        .cli(&[
            "connection",
            "add",
            "--project",
            &project,
            "--name",
            "local",
            "--adapter",
            "openai",
            "--secret-key",
            PROVIDER_KEY,
            "--base-url",
            &provider.base_url,
            "--model",
            "judge-small",
            "--header",
            "X-Team: evals",
        ])
        .await
        .unwrap();
    assert!(
        added.starts_with("added connection local (openai, key …6789)"),
        "{added}"
    );
    let listed: Value = serde_json::from_str(
        &env.cli(&["connection", "list", "--project", &project, "--json"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(listed[0]["extraHeaderKeys"], json!(["X-Team"]));
    assert!(!listed.to_string().contains(PROVIDER_KEY));
    let tested = env
        .cli(&[
            "connection",
            "test",
            "--project",
            &project,
            "--name",
            "local",
            "--allow-private-model-urls",
        ])
        .await
        .unwrap();
    assert!(
        tested.starts_with("ok: judge-small-2026-01-01 answered"),
        "{tested}"
    );
    assert_eq!(provider.received()[0].headers["x-team"], "evals");
    // Explicitly off (the local stack's environment turns it on).
    let refused = env
        .cli_error(&[
            "connection",
            "test",
            "--project",
            &project,
            "--name",
            "local",
            "--allow-private-model-urls=false",
        ])
        .await;
    assert!(
        refused.contains("AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS"),
        "{refused}"
    );
    let deleted = env
        .cli(&["connection", "delete", "--project", &project, "--name", "local"])
        .await
        .unwrap();
    assert_eq!(deleted.trim(), "deleted local; 0 judges stopped");
}

/// A judge previewed on an observation (prompt only, then one call), another project's
/// observation not found, the built-in judges listed, and the judge's activity after a run.
#[tokio::test]
async fn a_judge_is_previewed_on_an_observation_and_reports_its_activity() {
    let env = TestEnv::migrated().await;
    let etl = env
        .start_etl(|config| config.allow_private_model_urls = true)
        .await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "preview-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "preview", None)
        .await
        .unwrap()
        .id;
    let other = projects::create_project(&pg, organization, "other", None)
        .await
        .unwrap()
        .id;
    let key = api_keys::create_key(&pg, project, &[Scope::Read, Scope::Manage], None)
        .await
        .unwrap();
    agenttrace_tests::providers::connect(
        &pg,
        project,
        Some(&provider),
        Some(json!({"model": "judge-small"})),
    )
    .await;
    evaluators::add(
        &pg,
        &NewEvaluator {
            project_id: project,
            name: "helpful".into(),
            kind: "llm_judge".into(),
            config: json!({"connection": "local", "template": "helpfulness"}),
            schedule: None,
        },
    )
    .await
    .unwrap();
    let judge = evaluators::list(&pg, project).await.unwrap()[0].id;
    load_generations(&env, project, 7).await;
    // Another seed: the other project's ids are its own.
    load_generations(&env, other, 8).await;
    let generation = |project: Uuid| {
        let env = &env;
        async move {
            let row = env
                .clickhouse
                .query_text(&format!(
                    "SELECT trace_id, id, output FROM observations FINAL WHERE project_id = '{project}' \
                     AND type = 'generation' ORDER BY id LIMIT 1 FORMAT JSONEachRow"
                ))
                .await
                .unwrap();
            serde_json::from_str::<Value>(row.trim()).unwrap()
        }
    };
    let mine = generation(project).await;
    let theirs = generation(other).await;
    let http = reqwest::Client::new();
    let base = format!("{}/v1/projects/{project}", etl.url);
    let post = |body: Value| {
        http.post(format!("{base}/evaluators/{judge}/preview"))
            .basic_auth(&key.public_key, Some(&key.secret_key))
            .json(&body)
            .send()
    };

    let shown: Value = post(json!({"trace_id": mine["trace_id"], "observation_id": mine["id"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["ran"], false);
    let output: Value = serde_json::from_str(mine["output"].as_str().unwrap()).unwrap();
    let output_text = match &output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    assert!(
        shown["prompt"].as_str().unwrap().contains(&output_text),
        "{shown}"
    );
    assert!(provider.received().is_empty());

    let ran: Value = post(json!({"trace_id": mine["trace_id"], "observation_id": mine["id"], "run": true}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ran["score"], 0.75, "{ran}");
    assert_eq!(ran["reasoning"], "The answer addresses the question.");
    assert_eq!(ran["model"], "judge-small-2026-01-01");
    assert_eq!(provider.received().len(), 1);
    // Another project's observation, named exactly: not found, and nothing called.
    let response = post(json!({"trace_id": theirs["trace_id"], "observation_id": theirs["id"], "run": true}))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(provider.received().len(), 1);

    let templates: Value = http
        .get(format!("{base}/judge-templates"))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = templates
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["helpfulness", "correctness", "hallucination", "tool_use"]);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    judge_run(&env, &pg).await;
    let activity: Value = http
        .get(format!("{base}/evaluators/{judge}/judgments?days=1"))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(activity["done"].as_i64().unwrap() > 0, "{activity}");
    assert_eq!(activity["failed"], 0);
    assert_eq!(activity["days"][0]["mean_score"], 0.75, "{activity}");
    assert_eq!(activity["blocked_reason"], Value::Null);

    // The judges' own traces stay out of the trace list unless asked for.
    let traces = |query: &'static str| {
        let http = http.clone();
        let url = format!("{}/v1/traces?limit=1000{query}", etl.url);
        let key = (key.public_key.clone(), key.secret_key.clone());
        async move {
            let page: Value = http
                .get(url)
                .basic_auth(key.0, Some(key.1))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["environment"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let listed = traces("").await;
    assert!(
        !listed.is_empty() && !listed.iter().any(|e| e == "agenttrace-judge"),
        "{listed:?}"
    );
    let judges = traces("&environment=agenttrace-judge").await;
    assert!(
        !judges.is_empty() && judges.iter().all(|e| e == "agenttrace-judge"),
        "{judges:?}"
    );
}

/// A project `name` (in organization `organization`) with a model connection `local` to the
/// provider, defaulting to `model` when given.
async fn project_calling(
    pg: &tokio_postgres::Client,
    organization: &str,
    name: &str,
    provider: &FakeProvider,
    model: Option<&str>,
) -> Uuid {
    let organization = projects::ensure_organization(pg, organization).await.unwrap();
    let project = projects::create_project(pg, organization, name, None)
        .await
        .unwrap()
        .id;
    agenttrace_tests::providers::connect(
        pg,
        project,
        Some(provider),
        model.map(|model| json!({"model": model})),
    )
    .await;
    project
}

/// Loads events (as the wire carries them) into `project`'s tables, as one batch.
async fn load_events(env: &TestEnv, project: Uuid, events: &[Value]) {
    let mut tables = TableBatches::new(&project.to_string(), "whole");
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

fn trace_event(id: &str, at: &str, body: Value) -> Value {
    let mut body = body;
    body["id"] = json!(id);
    body["timestamp"] = json!(at);
    json!({"id": format!("{id}-{at}"), "type": "trace", "timestamp": at, "body": body})
}

fn observation_event(
    id: &str,
    trace: &str,
    kind: &str,
    name: &str,
    at: &str,
    input: &str,
    output: &str,
) -> Value {
    json!({"id": format!("{id}-{at}"), "type": "observation", "timestamp": at, "body": {
        "id": id, "trace_id": trace, "type": kind, "name": name, "start_time": at, "end_time": at,
        "input": input, "output": output,
    }})
}

/// Judges of whole traces, sessions and experiment runs: a trace is judged with its tool calls;
/// a session once it has been quiet for the judge's time, once, however many traces it gained
/// meanwhile, with its whole conversation; an experiment's trace against its dataset item's
/// expected output, and the score shows in the experiment's rollup. A replay calls nothing; a
/// changed trace is judged again and keeps one score. Previews take the ids each kind needs.
#[tokio::test]
async fn whole_traces_sessions_and_experiment_runs_are_judged_once_quiet() {
    let env = TestEnv::migrated().await;
    let etl = env
        .start_etl(|config| config.allow_private_model_urls = true)
        .await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let project = project_calling(&pg, "whole-org", "whole", &provider, Some("judge-small")).await;
    let add = |name: &str, config: Value| {
        let pg = &pg;
        let evaluator = NewEvaluator {
            project_id: project,
            name: name.into(),
            kind: "llm_judge".into(),
            config,
            schedule: None,
        };
        async move { evaluators::add(pg, &evaluator).await.unwrap() }
    };
    add(
        "trace-judge",
        json!({"connection": "local", "target": "trace", "quiet_seconds": 0,
               "prompt": "TRACE {{name}}: {{input}} => {{output}} tools {{tool_calls}}",
               "filter": {"environment": ["production"]}, "score_name": "trace_quality"}),
    )
    .await;
    add(
        "session-judge",
        json!({"connection": "local", "target": "session", "quiet_seconds": 8,
               "prompt": "SESSION {{conversation}}", "output": {"type": "boolean"}, "score_name": "session_solved"}),
    )
    .await;
    add(
        "experiment-judge",
        json!({"connection": "local", "target": "experiment", "quiet_seconds": 0, "template": "correctness"}),
    )
    .await;

    // A dataset item with its expected output, and an experiment that ran it.
    let dataset = datasets::upsert(
        &pg,
        project,
        &datasets::NewDataset {
            name: "capitals".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let item = datasets::upsert_item(
        &pg,
        project,
        &datasets::NewItem {
            id: Some("capital-fr".into()),
            dataset_name: "capitals".into(),
            input: Some(json!("The capital of France?")),
            expected_output: Some(json!("Paris, the capital of France")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let experiment = experiments::upsert(&pg, project, dataset.id, "run-1")
        .await
        .unwrap();

    let production = |input: &str, output: &str| json!({"name": "turn", "session_id": "s-1", "environment": "production", "input": input, "output": output});
    load_events(
        &env,
        project,
        &[
            trace_event("t-1", "2026-12-01T10:00:00Z", production("What is 2+2?", "4")),
            observation_event("t-1-read", "t-1", "tool", "read_file", "2026-12-01T10:00:01Z", "notes.md", "2+2=4"),
            trace_event("t-2", "2026-12-01T10:01:00Z", production("And 3+3?", "6")),
            trace_event(
                "e-1",
                "2026-12-01T10:02:00Z",
                json!({"name": "eval", "environment": "experiment", "input": "The capital of France?",
                       "output": "Paris", "experiment_id": experiment.to_string(), "dataset_item_id": item.id}),
            ),
        ],
    )
    .await;
    let prompts = |prefix: &str| -> Vec<String> {
        provider
            .received()
            .iter()
            .filter_map(|r| r.body["messages"][0]["content"].as_str().map(str::to_owned))
            .filter(|content| content.starts_with(prefix))
            .collect()
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let summary = judge_run(&env, &pg).await;
    let traces = prompts("TRACE");
    assert_eq!(traces.len(), 2, "{summary}: {traces:?}");
    let first = traces.iter().find(|p| p.contains("What is 2+2?")).unwrap();
    assert!(first.contains("read_file") && first.contains("2+2=4"), "{first}");
    assert!(prompts("SESSION").is_empty(), "the session is not quiet yet");
    let experiment_prompts = prompts("Compare an AI system's output");
    assert_eq!(experiment_prompts.len(), 1, "{experiment_prompts:?}");
    assert!(
        experiment_prompts[0].contains("Paris, the capital of France")
            && experiment_prompts[0].contains("Actual output:\nParis"),
        "{}",
        experiment_prompts[0]
    );

    // The session goes on: its judgment waits for the new quiet time.
    load_events(
        &env,
        project,
        &[trace_event(
            "t-3",
            "2026-12-01T10:03:00Z",
            production("Thanks!", "You're welcome."),
        )],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    judge_run(&env, &pg).await;
    assert_eq!(prompts("TRACE").len(), 3);
    assert!(prompts("SESSION").is_empty(), "new turns restart the quiet time");
    // The quiet time is long enough that a loaded machine's judge run, which follows the
    // events within a second or two, does not find the session quiet before this.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    judge_run(&env, &pg).await;
    let sessions = prompts("SESSION");
    assert_eq!(sessions.len(), 1, "judged once, after it stopped");
    let conversation = &sessions[0];
    let order: Vec<usize> = ["What is 2+2?", "And 3+3?", "Thanks!"]
        .iter()
        .map(|turn| {
            conversation
                .find(turn)
                .unwrap_or_else(|| panic!("{turn} in {conversation}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{conversation}");
    let session_score = env
        .ch(&format!(
            "SELECT trace_id, ifNull(observation_id, ''), value, metadata_values FROM scores FINAL \
             WHERE project_id = '{project}' AND name = 'session_solved'"
        ))
        .await;
    assert!(
        session_score.starts_with("t-1\t\t") && session_score.contains("s-1"),
        "a session's score hangs on its first trace: {session_score}"
    );

    // A replay of what is stored calls nothing; a changed trace is judged again.
    let calls = provider.received().len();
    load_events(
        &env,
        project,
        &[trace_event(
            "t-1",
            "2026-12-01T10:00:00Z",
            production("What is 2+2?", "4"),
        )],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    judge_run(&env, &pg).await;
    assert_eq!(provider.received().len(), calls, "a replay is judged already");
    load_events(
        &env,
        project,
        &[trace_event(
            "t-2",
            "2026-12-01T10:05:00Z",
            production("And 3+3?", "6, checked twice"),
        )],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    judge_run(&env, &pg).await;
    let traces = prompts("TRACE");
    assert_eq!(traces.len(), 4, "{traces:?}");
    assert!(traces[3].contains("checked twice"), "{}", traces[3]);
    let trace_scores = env
        .ch(&format!(
            "SELECT count(), uniqExact(trace_id), countIf(isNull(observation_id)) FROM scores FINAL \
             WHERE project_id = '{project}' AND name = 'trace_quality'"
        ))
        .await;
    assert_eq!(
        trace_scores.trim(),
        "3\t3\t3",
        "one score per trace, on the trace"
    );

    // The experiment's rollup shows the judge's score.
    match run_job_with(Job::ExperimentRollups, &pg, &env.clickhouse, None, None)
        .await
        .unwrap()
    {
        JobOutcome::Succeeded { .. } => {}
        JobOutcome::Skipped => panic!("skipped"),
    }
    let rollup = env
        .ch(&format!(
            "SELECT score_name, scores, mean FROM experiment_rollups FINAL \
             WHERE project_id = '{project}' AND experiment_id = '{experiment}' AND score_name = 'correctness'"
        ))
        .await;
    assert_eq!(rollup.trim(), "correctness\t1\t0.75");

    // Previews take the ids each kind of target needs.
    let key = api_keys::create_key(&pg, project, &[Scope::Read, Scope::Manage], None)
        .await
        .unwrap();
    let judges = evaluators::list(&pg, project).await.unwrap();
    let id_of = |name: &str| judges.iter().find(|j| j.name == name).unwrap().id;
    let http = reqwest::Client::new();
    let preview = |judge: Uuid, body: Value| {
        http.post(format!(
            "{}/v1/projects/{project}/evaluators/{judge}/preview",
            etl.url
        ))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .json(&body)
        .send()
    };
    let shown: Value = preview(id_of("session-judge"), json!({"session_id": "s-1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown["prompt"].as_str().unwrap().contains("You're welcome."),
        "{shown}"
    );
    let missing = preview(id_of("session-judge"), json!({"trace_id": "t-1"}))
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let message = missing.text().await.unwrap();
    assert!(message.contains("session_id"), "{message}");
    let shown: Value = preview(id_of("trace-judge"), json!({"trace_id": "t-1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(shown["prompt"].as_str().unwrap().contains("read_file"), "{shown}");

    // The judges' own calls stay out of the project's metrics unless asked for.
    let count = |extra: &'static str| {
        let http = &http;
        let (url, key) = (&etl.url, &key);
        async move {
            let answer: Value = http
                .get(format!(
                    "{url}/v1/metrics?from=2026-11-01T00:00:00Z&to=2027-01-01T00:00:00Z&bucket=none{extra}"
                ))
                .basic_auth(&key.public_key, Some(&key.secret_key))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["count"].as_u64().unwrap())
                .sum::<u64>()
        }
    };
    assert_eq!(count("").await, 1, "the agent's one tool call");
    let calls = provider.received().len() as u64;
    assert_eq!(
        count("&include_judges=true").await,
        1 + calls,
        "and every judge call"
    );
}

/// Langfuse's v2 evaluators and evaluation rules, configured through its Python SDK unchanged,
/// run as judges: a rule judging production generations calls the model with the evaluator's
/// latest version (system and user messages, its variable mapping with a JSONPath, its output
/// definition's instructions) for exactly the observations its filter picks. The judges a
/// rule runs as cannot be changed by hand; deleting the evaluator disables the rule.
#[tokio::test]
async fn langfuse_v2_evaluators_and_rules_configure_judges_through_the_sdk() {
    let env = TestEnv::migrated().await;
    let etl = env
        .start_etl(|config| config.allow_private_model_urls = true)
        .await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let project = project_calling(&pg, "rules-org", "rules", &provider, None).await;
    let key = api_keys::create_key(&pg, project, &[Scope::Read, Scope::Manage], None)
        .await
        .unwrap();

    let seen = agenttrace_tests::python_script(
        "langfuse_evaluators.py",
        &[&etl.url, &key.public_key, &key.secret_key],
    )
    .await;
    let created = &seen["created"];
    assert_eq!(created["version"], 1, "{seen}");
    assert_eq!(created["type"], "llm_as_judge");
    assert_eq!(created["variables"], json!(["question", "answer"]));
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["modelConfig"],
        json!({"provider": "local", "model": "judge-small"})
    );
    assert_eq!(created["outputDefinition"]["dataType"], "NUMERIC");
    assert_eq!(seen["changed"]["version"], 2, "a new prompt is a new version");
    assert_eq!(seen["changed"]["id"], created["id"]);
    assert_eq!(seen["renamed"]["version"], 2, "a new name is not");
    assert_eq!(seen["renamed"]["name"], "sdk-helpful");
    assert_eq!(seen["renamed"]["description"], "Is the answer helpful?");
    assert_eq!(seen["versions"], json!([2, 1]));
    assert_eq!(seen["versions_paged"], json!([2, 1]));
    let rule = &seen["rule"];
    assert_eq!(rule["enabled"], true);
    assert_eq!(rule["evaluatorAssignments"][0]["evaluatorId"], created["id"]);
    assert_eq!(rule["filter"][1]["column"], "environment");
    assert_eq!(seen["rules"], json!([rule["id"]]));
    assert_eq!(seen["rule_sampled"], "production generations (all)");
    assert_eq!(seen["evaluator_rules"], json!([rule["id"]]));
    for (call, status) in [
        ("code", "400"),
        ("unmapped", "400"),
        ("bad_filter", "400"),
        ("nested_path", "400"),
        ("many_filters", "400"),
        ("missing", "404"),
    ] {
        assert_eq!(seen[call], status, "{call}: {seen}");
    }

    // A production generation (judged), a production span and a dev generation (not).
    let at = "2026-12-01T10:00:00Z";
    load_events(
        &env,
        project,
        &[
            trace_event("p-1", at, json!({"name": "chat", "environment": "production"})),
            observation_event(
                "p-1-gen",
                "p-1",
                "generation",
                "answer",
                at,
                r#"{"question": "What is 2+2?"}"#,
                "4",
            ),
            observation_event("p-1-span", "p-1", "span", "step", at, "x", "y"),
            trace_event("d-1", at, json!({"name": "chat", "environment": "dev"})),
            observation_event(
                "d-1-gen",
                "d-1",
                "generation",
                "answer",
                at,
                r#"{"question": "dev?"}"#,
                "no",
            ),
        ],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let summary = judge_run(&env, &pg).await;
    let received = provider.received();
    assert_eq!(received.len(), 1, "{summary}");
    let body = &received[0].body;
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You grade answers strictly."})
    );
    assert_eq!(
        body["messages"][1]["content"],
        "SDK-JUDGE v2 Question: What is 2+2?\nAnswer: 4"
    );
    assert_eq!(body["model"], "judge-small");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["properties"]["reasoning"]["description"],
        "One sentence on why."
    );
    let score = env
        .ch(&format!(
            "SELECT name, observation_id, value FROM scores FINAL WHERE project_id = '{project}' AND source = 'eval'"
        ))
        .await;
    assert_eq!(score.trim(), "sdk-helpful\tp-1-gen\t0.75");

    // The judge a rule runs as is the rule's to change.
    let derived = evaluators::list(&pg, project).await.unwrap();
    assert_eq!(derived.len(), 1);
    let refused = evaluators::update(&pg, project, derived[0].id, None, None, Some(false))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("evaluation rule"), "{refused}");

    // Deleting the evaluator removes its judge and disables the rule it leaves empty.
    let http = reqwest::Client::new();
    let deleted = http
        .delete(format!(
            "{}/api/public/v2/evaluators/{}",
            etl.url,
            created["id"].as_str().unwrap()
        ))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(evaluators::list(&pg, project).await.unwrap().is_empty());
    let rule_now: Value = http
        .get(format!(
            "{}/api/public/v2/evaluation-rules/{}",
            etl.url,
            rule["id"].as_str().unwrap()
        ))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rule_now["enabled"], false);
    assert_eq!(rule_now["evaluatorAssignments"], json!([]));
}

/// A judge added after its targets arrived judges none of them until asked: a backfill over a
/// time range adds them to its ledger (observations by start time, whole traces by their
/// time), once however often it is asked, and reports what it did.
#[tokio::test]
async fn a_backfill_judges_what_arrived_before_the_judge() {
    let env = TestEnv::migrated().await;
    let provider = FakeProvider::start(PROVIDER_KEY).await;
    let pg = env.postgres().await;
    let project = project_calling(&pg, "backfill-org", "backfill", &provider, Some("judge-small")).await;
    let generations = load_generations(&env, project, 11).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    judge_run(&env, &pg).await;
    let add = |name: &str, config: Value| {
        let pg = &pg;
        let evaluator = NewEvaluator {
            project_id: project,
            name: name.into(),
            kind: "llm_judge".into(),
            config,
            schedule: None,
        };
        async move {
            evaluators::add(pg, &evaluator).await.unwrap();
            evaluators::list(pg, project)
                .await
                .unwrap()
                .into_iter()
                .find(|e| e.name == evaluator.name)
                .unwrap()
                .id
        }
    };
    let late = add(
        "late",
        json!({"connection": "local", "prompt": "LATE {{output}}", "filter": {"type": ["generation"]}}),
    )
    .await;
    judge_run(&env, &pg).await;
    assert!(
        provider.received().is_empty(),
        "what arrived before the judge is not judged"
    );

    let day = |text: &str| Timestamp::parse(text).unwrap().as_micros();
    let (from, to) = (day("2026-11-20T00:00:00Z"), day("2026-12-01T00:00:00Z"));
    for (range, field) in [((to, from), "to"), ((from, from + 91 * 86_400_000_000), "to")] {
        let refused = preview::request_backfill(&pg, project, late, range.0, range.1)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, agenttrace_etl::control::ControlError::Invalid { field: f, .. } if f == field),
            "{refused}"
        );
    }
    let backfill = preview::request_backfill(&pg, project, late, from, to)
        .await
        .unwrap();
    assert_eq!(backfill.status, "pending");
    let summary = judge_run(&env, &pg).await;
    assert_eq!(provider.received().len() as u64, generations, "{summary}");
    let activity = preview::activity(&pg, project, late, 7).await.unwrap();
    let done = &activity.backfills[0];
    assert_eq!((done.status.as_str(), done.queued as u64), ("done", generations));
    assert_eq!(done.note, None);

    // Asked again: nothing is judged twice.
    preview::request_backfill(&pg, project, late, from, to)
        .await
        .unwrap();
    judge_run(&env, &pg).await;
    assert_eq!(provider.received().len() as u64, generations);
    let again = &preview::activity(&pg, project, late, 7).await.unwrap().backfills[0];
    assert_eq!((again.status.as_str(), again.queued), ("done", 0));

    // A whole-trace judge backfills through the traces' time.
    let traces: u64 = env
        .ch(&format!(
            "SELECT uniqExact(id) FROM traces FINAL WHERE project_id = '{project}' AND environment != 'agenttrace-judge'"
        ))
        .await
        .trim()
        .parse()
        .unwrap();
    let whole = add(
        "late-traces",
        json!({"connection": "local", "target": "trace", "prompt": "WHOLE {{input}}"}),
    )
    .await;
    preview::request_backfill(&pg, project, whole, from, to)
        .await
        .unwrap();
    judge_run(&env, &pg).await;
    let whole_calls = provider
        .received()
        .iter()
        .filter(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .starts_with("WHOLE")
        })
        .count() as u64;
    assert_eq!(whole_calls, traces);
}
