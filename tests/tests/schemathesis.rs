//! Schemathesis (PyPI, pinned in dev.sh) against the ETL's OpenAPI document, over every route:
//! no answer is a 5xx, and every answer is one the document lists, in the shape it gives.
//!
//! A real ETL on this test's databases, a project with sessions in it, a project key with every
//! scope and a signed-in owner; the credentials each route carries are chosen in
//! `tests/python/schemathesis_hooks.py`. What would end the credentials the run uses acts on
//! things of its own instead (see `config`). Reproduce one route with
//! `AGENTTRACE_SCHEMATHESIS_ARGS='--include-path /v1/traces' cargo test -p agenttrace-tests
//! --test schemathesis`; when it fails, schemathesis's report is kept in the test's temporary
//! folder (`report.txt`).
//!
//! Known failure, skipped where it is named until it is fixed: `page_of`'s overflow on a page
//! past i64::MAX / limit (etl/src/http/request.rs; the hooks' `map_query` keeps pages lower).

use std::time::Instant;

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::annotation::{self, NewQueue};
use agenttrace_etl::control::comments;
use agenttrace_etl::control::connections::{self, ConnectionUpsert};
use agenttrace_etl::control::datasets::{self, NewDataset, NewItem};
use agenttrace_etl::control::evaluators::{self, NewEvaluator};
use agenttrace_etl::control::experiments::{self, NewRunItem};
use agenttrace_etl::control::identity::{self, Role};
use agenttrace_etl::control::judge_rules;
use agenttrace_etl::control::prices::{self, NewPrice};
use agenttrace_etl::control::prompts::{self, NewPromptVersion, PromptType};
use agenttrace_etl::control::score_configs::{self, NewScoreConfig};
use agenttrace_etl::control::sealing::Sealer;
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_schemas::score_config::ConfigDataType;
use agenttrace_schemas::{Event, Payload, Scope, Timestamp};
use agenttrace_tests::etl::SIGNING_KEYS;
use agenttrace_tests::{TestEnv, repo_root};
use serde_json::{Value, json};
use uuid::Uuid;

/// The seed of every run, so that a failure reproduces.
const SEED: u64 = 20_240_611;
/// Test cases per operation and phase: the whole run stays within a few minutes on 2 cores.
const MAX_EXAMPLES: u32 = 75;
/// The member whose sessions the run ends.
const BYSTANDER: &str = "bystander@schemathesis.test";

#[tokio::test]
async fn every_route_answers_as_the_openapi_document_says() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;

    // The owner's organization and its project, with data in it.
    let owner_password = "schemathesis owner password";
    let owner = identity::create_user(&pg, "owner@schemathesis.test", None, owner_password)
        .await
        .unwrap();
    let organization = projects::ensure_organization(&pg, "schemathesis").await.unwrap();
    identity::add_member(&pg, organization, owner.id, Role::Owner)
        .await
        .unwrap();
    let project = projects::create_project(&pg, organization, "agents", None)
        .await
        .unwrap()
        .id;
    let key = api_keys::create_key(&pg, project, &Scope::ALL, Some("schemathesis"))
        .await
        .unwrap();
    let ingest = agenttrace_cli::send::ProjectKey {
        project_id: project,
        public_key: key.public_key.clone(),
    };
    let events: Vec<Event> = {
        let mut generator = SessionGenerator::new(7);
        (0..3)
            .flat_map(|_| generator.session(Timestamp::now(), 3))
            .collect()
    };
    etl.load(&ingest, &events).await;

    let fixtures = fixtures(&env, organization, project, &owner, owner_password, &events).await;

    // The owner's session, the owner's second one that the run signs out, and the bystander's.
    let http = reqwest::Client::new();
    let mut sessions = Vec::new();
    for email in [&owner.email, &owner.email, BYSTANDER] {
        let signed_in: Value = http
            .post(format!("{}/v1/auth/sign-in", etl.url))
            .json(&json!({"email": email, "password": owner_password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions.push(signed_in["token"].as_str().unwrap().to_owned());
    }

    let dir = std::env::temp_dir().join(&env.name);
    std::fs::create_dir_all(&dir).unwrap();
    let document = dir.join("openapi.json");
    std::fs::write(&document, agenttrace_etl::http::openapi::document()).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, self::config(&fixtures)).unwrap();

    let mut command = tokio::process::Command::new("python3");
    command
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(&document)
        .args(["--url", &etl.url])
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", repo_root().join("tests/python"))
        .env("AGENTTRACE_EDGE_KEY", SIGNING_KEYS)
        .env(
            "AGENTTRACE_API_KEY",
            format!("{}:{}", key.public_key, key.secret_key),
        )
        .env("AGENTTRACE_SESSION", &sessions[0])
        .env("AGENTTRACE_SIGN_OUT_SESSION", &sessions[1])
        .env("AGENTTRACE_BYSTANDER_SESSION", &sessions[2])
        .current_dir(&dir);
    if let Ok(extra) = std::env::var("AGENTTRACE_SCHEMATHESIS_ARGS") {
        command.args(extra.split_whitespace());
    }
    let started = Instant::now();
    let output = command
        .output()
        .await
        .expect("python3 with schemathesis (dev.sh installs it)");
    let elapsed = started.elapsed();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(dir.join("report.txt"), &report).unwrap();
    assert!(
        output.status.success(),
        "schemathesis found failures ({} s; report in {}):\n{report}",
        elapsed.as_secs(),
        dir.display()
    );
    // Its summary: operations, phases, cases generated, warnings.
    let summary = report.find("SUMMARY").map_or("", |at| &report[at..]);
    eprintln!("schemathesis passed in {} s\n{summary}", elapsed.as_secs());
    etl.server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the run finds in the databases, for the configuration to pin parameters to: the ids a
/// generator would never guess, and things of their own for what would end the run's
/// credentials.
struct Fixtures {
    /// The project with the data and the key.
    project: Uuid,
    organization: Uuid,
    /// The project the run archives (`DELETE /v1/projects/{project}`), not the one it reads.
    doomed: Uuid,
    /// The project whose keys the run revokes, so that the key it uses stays.
    keyring: Uuid,
    keyring_keys: Vec<String>,
    /// The organization whose members the run adds and removes, so that the owner stays the
    /// owner of the one it uses; `leavers` are members it may remove.
    members: Uuid,
    leavers: Vec<Uuid>,
    /// A member whose sessions the run ends (ending the owner's would end the run's session).
    bystander: Uuid,
    /// Two for the owner, one of the main organization's.
    invitations: Vec<Uuid>,
    traces: Vec<String>,
    observations: Vec<String>,
    sessions: Vec<String>,
    prompts: Vec<String>,
    datasets: Vec<String>,
    items: Vec<String>,
    evaluators: Vec<Uuid>,
    experiments: Vec<Uuid>,
    prices: Vec<Uuid>,
    connections: Vec<Uuid>,
    judge_definitions: Vec<Uuid>,
    rules: Vec<Uuid>,
    score_configs: Vec<Uuid>,
    queues: Vec<Uuid>,
    queue_items: Vec<Uuid>,
    comments: Vec<Uuid>,
}

async fn fixtures(
    env: &TestEnv,
    organization: Uuid,
    project: Uuid,
    owner: &identity::User,
    password: &str,
    events: &[Event<'_>],
) -> Fixtures {
    let mut pg = env.postgres().await;
    let doomed = projects::create_project(&pg, organization, "archived by the run", None)
        .await
        .unwrap()
        .id;
    let keyring = projects::create_project(&pg, organization, "keys revoked by the run", None)
        .await
        .unwrap()
        .id;
    let mut keyring_keys = Vec::new();
    for _ in 0..3 {
        let key = api_keys::create_key(&pg, keyring, &[Scope::Read], None)
            .await
            .unwrap();
        keyring_keys.push(key.public_key);
    }
    let members = identity::create_organization(&pg, "members come and go")
        .await
        .unwrap()
        .id;
    identity::add_member(&pg, members, owner.id, Role::Owner)
        .await
        .unwrap();
    let user = |email: String| {
        let pg = &pg;
        async move {
            identity::create_user(pg, &email, None, password)
                .await
                .unwrap()
                .id
        }
    };
    let bystander = user(BYSTANDER.into()).await;
    identity::add_member(&pg, members, bystander, Role::Member)
        .await
        .unwrap();
    let mut leavers = Vec::new();
    for n in 0..3 {
        let leaver = user(format!("leaver-{n}@schemathesis.test")).await;
        identity::add_member(&pg, members, leaver, Role::Viewer)
            .await
            .unwrap();
        leavers.push(leaver);
    }

    // Invitations for the owner to accept or decline, and one of the main organization's.
    let mut invitations = Vec::new();
    for (organization, email) in [
        (None, &owner.email),
        (None, &owner.email),
        (Some(organization), &"guest@schemathesis.test".to_owned()),
    ] {
        let organization = match organization {
            Some(id) => id,
            None => {
                let name = format!("invites the owner {}", invitations.len());
                identity::create_organization(&pg, &name).await.unwrap().id
            }
        };
        let actor = identity::Actor::Role(Role::Owner);
        let invitation = identity::invite(&mut pg, organization, email, Role::Viewer, actor)
            .await
            .unwrap();
        invitations.push(invitation.id);
    }

    let (mut traces, mut observations, mut sessions) = (Vec::new(), Vec::new(), Vec::new());
    for event in events {
        match &event.payload {
            Payload::Trace(trace) => {
                traces.push(trace.id.to_string());
                sessions.extend(trace.session_id.as_ref().map(|s| s.to_string()));
            }
            Payload::Observation(observation) => observations.push(observation.id.to_string()),
            _ => {}
        }
    }
    sessions.dedup();

    let mut prompts = Vec::new();
    for (name, labels) in [("greeting", vec!["production"]), ("critic", vec!["staging"])] {
        for version in 0..2 {
            prompts::create_version(
                &mut pg,
                project,
                &NewPromptVersion {
                    name: name.into(),
                    kind: PromptType::Text,
                    prompt: json!(format!("hello {{{{name}}}} ({version})")),
                    config: json!({"temperature": 0.2}),
                    labels: if version == 1 {
                        labels.iter().map(|l| (*l).into()).collect()
                    } else {
                        Vec::new()
                    },
                    tags: vec!["schemathesis".into()],
                    commit_message: None,
                },
            )
            .await
            .unwrap();
        }
        prompts.push(name.to_owned());
    }
    let datasets = vec!["capitals".to_owned(), "questions".to_owned()];
    let mut items = Vec::new();
    for dataset in &datasets {
        datasets::upsert(
            &pg,
            project,
            &NewDataset {
                name: dataset.clone(),
                ..NewDataset::default()
            },
        )
        .await
        .unwrap();
        for n in 0..3 {
            let item = datasets::upsert_item(
                &pg,
                project,
                &NewItem {
                    id: Some(format!("{dataset}-{n}")),
                    dataset_name: dataset.clone(),
                    input: Some(json!({"q": n})),
                    expected_output: Some(json!(n)),
                    source_trace_id: traces.first().cloned(),
                    ..NewItem::default()
                },
            )
            .await
            .unwrap();
            items.push(item.id);
        }
    }
    let mut experiments = Vec::new();
    for run in ["baseline", "candidate"] {
        let item = experiments::record_run_item(
            &pg,
            project,
            &NewRunItem {
                run_name: run.into(),
                dataset_item_id: items[0].clone(),
                trace_id: traces.first().cloned(),
                ..NewRunItem::default()
            },
        )
        .await
        .unwrap();
        experiments.push(item.experiment_id);
    }
    for name in ["fast", "slow"] {
        evaluators::add(
            &pg,
            &NewEvaluator {
                project_id: project,
                name: name.into(),
                kind: "latency_threshold".into(),
                config: json!({"max_ms": 1000}),
                schedule: None,
            },
        )
        .await
        .unwrap();
    }
    let evaluators = evaluators::list(&pg, project)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let sealer = Sealer::from_hex(agenttrace_tests::etl::ENCRYPTION_KEY).unwrap();
    let mut connections = Vec::new();
    for (provider, adapter) in [("house-openai", "openai"), ("house-anthropic", "anthropic")] {
        let (connection, _) = connections::upsert(
            &pg,
            Some(&sealer),
            project,
            &ConnectionUpsert {
                provider: provider.into(),
                adapter: adapter.into(),
                secret_key: format!("sk-{provider}-0123456789"),
                // Refused by the server (a private address): a test call fails fast.
                base_url: Some("http://127.0.0.1:9/v1".into()),
                config: Some(json!({"model": "house-judge"})),
                ..ConnectionUpsert::default()
            },
        )
        .await
        .unwrap();
        connections.push(connection.id);
    }
    let mut judge_definitions = Vec::new();
    let mut rules = Vec::new();
    for name in ["house-helpful", "house-correct"] {
        let definition = judge_rules::create_definition(
            &mut pg,
            project,
            &json!({"name": name, "prompt": "Judge {{input}} and {{output}}", "outputDefinition": {"dataType": "BOOLEAN"}}),
        )
        .await
        .unwrap();
        let rule = judge_rules::create_rule(
            &mut pg,
            project,
            &json!({"name": format!("{name} rule"), "enabled": false,
                    "evaluatorAssignments": [{"evaluatorId": definition.id}]}),
        )
        .await
        .unwrap();
        judge_definitions.push(definition.id);
        rules.push(rule.id);
    }
    let mut score_configs = Vec::new();
    for (name, data_type) in [
        ("house-quality", ConfigDataType::Numeric),
        ("house-ok", ConfigDataType::Boolean),
    ] {
        let config = score_configs::create(
            &pg,
            project,
            NewScoreConfig {
                name: name.into(),
                data_type,
                min_value: None,
                max_value: None,
                categories: None,
                description: None,
            },
        )
        .await
        .unwrap();
        score_configs.push(config.id);
    }
    let queue = annotation::create_queue(
        &pg,
        project,
        NewQueue {
            name: "house-review".into(),
            description: None,
            score_config_ids: score_configs.clone(),
            annotators_per_item: None,
        },
    )
    .await
    .unwrap();
    let queue_items = annotation::add_items(
        &pg,
        project,
        queue.id,
        &traces
            .iter()
            .map(|trace| annotation::NewItem {
                object_type: "TRACE",
                object_id: trace.clone(),
                trace_id: Some(trace.clone()),
            })
            .collect::<Vec<_>>(),
        None,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|item| item.id)
    .collect();
    let comment = comments::create(&pg, project, "TRACE", &traces[0], "Looks right.", None)
        .await
        .unwrap();
    let mut prices = Vec::new();
    for model in ["house-small", "house-large"] {
        let price = prices::set(
            &pg,
            &NewPrice {
                project_id: Some(project),
                model_pattern: format!("{model}.*"),
                provider: "house".into(),
                input: 1.0,
                output: 2.0,
                cache_read: 0.0,
                cache_write: 0.0,
                valid_from: None,
            },
        )
        .await
        .unwrap();
        prices.push(price.id);
    }
    Fixtures {
        project,
        organization,
        doomed,
        keyring,
        keyring_keys,
        members,
        leavers,
        bystander,
        invitations,
        traces,
        observations,
        sessions,
        prompts,
        datasets,
        items,
        evaluators,
        experiments,
        prices,
        connections,
        judge_definitions,
        rules,
        score_configs,
        queues: vec![queue.id],
        queue_items,
        comments: vec![comment.id],
    }
}

/// A TOML array of strings.
fn toml_list<T: ToString>(values: &[T]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{:?}", v.to_string())).collect();
    format!("[{}]", quoted.join(", "))
}

/// schemathesis.toml: seed, checks, bounds, and what parameters are pinned to. A parameter
/// bound to a dictionary takes one of its values that often, and a generated one otherwise.
fn config(f: &Fixtures) -> String {
    let Fixtures {
        project,
        organization,
        doomed,
        keyring,
        members,
        bystander,
        ..
    } = f;
    let dictionaries = [
        ("traces", toml_list(&f.traces)),
        ("observations", toml_list(&f.observations)),
        ("sessions", toml_list(&f.sessions)),
        ("prompts", toml_list(&f.prompts)),
        ("datasets", toml_list(&f.datasets)),
        ("items", toml_list(&f.items)),
        ("evaluators", toml_list(&f.evaluators)),
        ("experiments", toml_list(&f.experiments)),
        ("prices", toml_list(&f.prices)),
        ("connections", toml_list(&f.connections)),
        ("judge_definitions", toml_list(&f.judge_definitions)),
        ("rules", toml_list(&f.rules)),
        ("score_configs", toml_list(&f.score_configs)),
        ("queues", toml_list(&f.queues)),
        ("queue_items", toml_list(&f.queue_items)),
        ("comments", toml_list(&f.comments)),
        ("keyring_keys", toml_list(&f.keyring_keys)),
        ("leavers", toml_list(&f.leavers)),
        ("invitations", toml_list(&f.invitations)),
    ]
    .map(|(name, values)| format!("{name} = {{ values = {values} }}\n"))
    .concat();
    let often = |dictionary: &str| format!("{{ dictionary = \"{dictionary}\", probability = 0.75 }}");
    let traces = often("traces");
    let sessions = often("sessions");
    format!(
        r#"seed = {SEED}
workers = 1
max-failures = 500
continue-on-failure = true
request-timeout = 30.0
suppress-health-check = ["all"]

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"

# No 5xx, and every answer one the document lists, in its shape; the other checks judge what
# the server accepts (negative_data_rejection, ...) or its headers, not what the issue asks.
[checks]
not_a_server_error.enabled = true
status_code_conformance.enabled = true
response_schema_conformance.enabled = true
content_type_conformance.enabled = false
response_headers_conformance.enabled = false
negative_data_rejection.enabled = false
positive_data_acceptance.enabled = false
missing_required_header.enabled = false
unsupported_method.enabled = false
use_after_free.enabled = false
ensure_resource_availability.enabled = false
ignored_auth.enabled = false

# Ids the generator could not guess are pinned below instead: a stateful run chains calls by
# the links it infers, for a time max-examples does not bound.
[phases.stateful]
enabled = false

[dictionaries]
{dictionaries}
[parameters]
"path.project" = "{project}"
"query.project_id" = "{project}"
"path.organization" = "{organization}"
"query.trace_id" = {traces}
"query.traceId" = {traces}
"query.session_id" = {sessions}
"query.sessionId" = {sessions}
"query.datasetName" = {datasets}

# Archiving a project: its own, not the one the run reads.
[[operations]]
include-path = "/v1/projects/{{project}}"
include-method = "DELETE"
parameters = {{ "path.project" = "{doomed}" }}

# Revoking keys: another project's, so that the run's own key stays.
[[operations]]
include-path = "/v1/projects/{{project}}/keys/{{public_key}}"
parameters = {{ "path.project" = "{keyring}", "path.public_key" = {keyring_keys} }}

# Ending a member's sessions: the bystander's, by the bystander (only a member themself may),
# not the owner's, whose session the run uses.
[[operations]]
include-path = "/v1/organizations/{{organization}}/members/{{user}}/sessions/revoke"
parameters = {{ "path.organization" = "{members}", "path.user" = "{bystander}" }}

# Members: another organization's, so that the owner stays the owner of the one the run uses.
[[operations]]
include-path-regex = "^/v1/organizations/\\{{organization\\}}/members"
parameters = {{ "path.organization" = "{members}", "path.user" = {leavers} }}

[[operations]]
include-path-regex = "^/v1/traces/"
parameters = {{ "path.id" = {traces}, "path.observation_id" = {observations} }}

[[operations]]
include-path-regex = "^/v1/sessions/"
parameters = {{ "path.id" = {sessions} }}

[[operations]]
include-path-regex = "/prompts/"
parameters = {{ "path.name" = {prompts} }}

[[operations]]
include-path-regex = "/datasets/|/dataset-items/"
parameters = {{ "path.name" = {datasets}, "path.id" = {items} }}

[[operations]]
include-path-regex = "^/v1/.*/evaluators/"
parameters = {{ "path.id" = {evaluators} }}

[[operations]]
include-path-regex = "^/api/public/v2/evaluators/"
parameters = {{ "path.id" = {judge_definitions} }}

[[operations]]
include-path-regex = "/evaluation-rules/"
parameters = {{ "path.id" = {rules} }}

[[operations]]
include-path-regex = "/experiments/"
parameters = {{ "path.id" = {experiments}, "query.a" = {experiments}, "query.b" = {experiments} }}

[[operations]]
include-path-regex = "/connections/|/llm-connections/"
parameters = {{ "path.id" = {connections} }}

[[operations]]
include-path-regex = "/score-configs/"
parameters = {{ "path.id" = {score_configs}, "path.configId" = {score_configs} }}

[[operations]]
include-path-regex = "/annotation-queues/"
parameters = {{ "path.queue" = {queues}, "path.queueId" = {queues}, "path.item" = {queue_items}, "path.itemId" = {queue_items} }}

[[operations]]
include-path-regex = "/comments/"
parameters = {{ "path.id" = {comments}, "path.commentId" = {comments} }}

[[operations]]
include-path-regex = "/prices/|/models/"
parameters = {{ "path.id" = {prices} }}

[[operations]]
include-path-regex = "/invitations/"
parameters = {{ "path.invitation" = {invitations} }}
"#,
        keyring_keys = often("keyring_keys"),
        leavers = often("leavers"),
        observations = often("observations"),
        prompts = often("prompts"),
        datasets = often("datasets"),
        items = often("items"),
        evaluators = often("evaluators"),
        experiments = often("experiments"),
        prices = often("prices"),
        connections = often("connections"),
        judge_definitions = often("judge_definitions"),
        rules = often("rules"),
        score_configs = often("score_configs"),
        queues = often("queues"),
        queue_items = often("queue_items"),
        comments = often("comments"),
        invitations = often("invitations"),
    )
}
