//! LLM judges' model connections: stored through Langfuse's Python SDK and our API with the
//! provider key sealed (never in a response or a PostgreSQL column in clear), tested against a
//! real HTTP server speaking OpenAI's and Anthropic's formats, errors included.

use agenttrace_etl::control::api_keys;
use agenttrace_etl::control::projects;
use agenttrace_schemas::Scope;
use agenttrace_tests::TestEnv;
use agenttrace_tests::providers::FakeProvider;
use serde_json::{Value, json};

const PROVIDER_KEY: &str = "sk-test-provider-key-0123456789";

async fn sdk(args: &[&str]) -> Value {
    let script = agenttrace_tests::repo_root().join("tests/python/langfuse_llm_connections.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

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
    let seen = sdk(&[
        &etl.url,
        &key.public_key,
        &key.secret_key,
        &provider.base_url,
        PROVIDER_KEY,
    ])
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
