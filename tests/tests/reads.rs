//! The read API on real ClickHouse 18.16: each answer equals what the agent sent, computed here
//! independently from the generated events; replays never show twice; another project's key
//! sees nothing.

use std::collections::{BTreeMap, BTreeSet};

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::admin::api_keys;
use agenttrace_schemas::{Event, Payload, Scope, Timestamp};
use agenttrace_tests::TestEnv;
use serde_json::Value;

async fn bearer(env: &TestEnv, project: uuid::Uuid, scopes: &[Scope]) -> String {
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, project, scopes, None).await.unwrap();
    format!("Bearer {}:{}", key.public_key, key.secret_key)
}

/// (observation id → parent id as the tree nests it), every id seen once.
fn flatten(nodes: &[Value], parent: Option<&str>, into: &mut BTreeMap<String, Option<String>>) {
    for node in nodes {
        let id = node["id"].as_str().unwrap().to_owned();
        assert!(
            into.insert(id.clone(), parent.map(str::to_owned)).is_none(),
            "{id} shows twice"
        );
        flatten(node["children"].as_array().unwrap(), Some(&id), into);
    }
}

fn ids(rows: &Value) -> BTreeSet<String> {
    let rows = rows.as_array().unwrap();
    let set: BTreeSet<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), rows.len(), "a row shows twice: {rows:?}");
    set
}

#[tokio::test]
async fn a_trace_reads_back_as_its_tree_and_records_once_and_only_in_its_project() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("reads-a").await;
    let b = env.create_project("reads-b").await;
    let now = Timestamp::now();
    let mut generator = SessionGenerator::new(41);
    let events: Vec<Event> = (0..2).flat_map(|_| generator.session(now, 3)).collect();
    etl.load(&a.key, &events).await;
    // A replay of the same events must not show twice.
    etl.load(&a.key, &events).await;
    etl.load(&b.key, &SessionGenerator::new(42).session(now, 2)).await;

    let reader = bearer(&env, a.key.project_id, &[Scope::Read]).await;
    let http = reqwest::Client::new();
    let get = |id: &str, auth: &str| {
        http.get(format!("{}/v1/traces/{id}", etl.url))
            .header("authorization", auth)
            .send()
    };
    let traces: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Trace(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(traces.len() >= 2, "{} traces", traces.len());
    for trace in &traces {
        // What the agent sent for this trace, computed from the events themselves.
        let mut expected_tree = BTreeMap::new();
        let mut expected: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for event in &events {
            match &event.payload {
                Payload::Observation(o) if o.trace_id == trace.id => {
                    expected_tree.insert(o.id.clone(), o.parent_observation_id.clone());
                }
                Payload::Score(s) if s.trace_id == trace.id => {
                    expected.entry("scores").or_default().insert(s.id.clone());
                }
                Payload::FileOperation(f) if f.trace_id == trace.id => {
                    expected
                        .entry("file_operations")
                        .or_default()
                        .insert(f.id.clone());
                }
                Payload::TerminalCommand(c) if c.trace_id == trace.id => {
                    expected
                        .entry("terminal_commands")
                        .or_default()
                        .insert(c.id.clone());
                }
                Payload::GitLink(g) if g.trace_id == trace.id => {
                    expected.entry("git_links").or_default().insert(g.id.clone());
                }
                _ => {}
            }
        }
        let response = get(&trace.id, &reader).await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["trace"]["id"], trace.id.as_str());
        assert_eq!(answer["trace"]["name"].as_str(), trace.name.as_deref());
        assert_eq!(answer["observation_count"], expected_tree.len());
        assert_eq!(answer["observations_truncated"], false);
        let mut tree = BTreeMap::new();
        flatten(answer["observations"].as_array().unwrap(), None, &mut tree);
        assert_eq!(tree, expected_tree, "trace {}", trace.id);
        for key in ["scores", "file_operations", "terminal_commands", "git_links"] {
            assert_eq!(
                ids(&answer[key]),
                expected.remove(key).unwrap_or_default(),
                "{key} of trace {}",
                trace.id
            );
        }
        assert!(
            answer["trace"].get("project_id").is_none(),
            "no storage bookkeeping"
        );
    }

    // Nothing of project a through project b's key; nothing under an unknown id.
    let other = bearer(&env, b.key.project_id, &[Scope::Read]).await;
    assert_eq!(get(&traces[0].id, &other).await.unwrap().status(), 404);
    let unknown = get("no-such-trace", &reader).await.unwrap();
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["message"], "no trace \"no-such-trace\" in this project");
    // A key without the read scope is told which it lacks.
    let ingest_only = bearer(&env, a.key.project_id, &[Scope::Ingest]).await;
    let refused = get(&traces[0].id, &ingest_only).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("`read`"));
    etl.server.shutdown().await.unwrap();
}
