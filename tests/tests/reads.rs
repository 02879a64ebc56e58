//! The read API (traces, trace lists, sessions) on real ClickHouse 18.16: each answer equals what
//! the agent sent, computed here independently from the generated events; replays never show
//! twice; another project's key sees nothing.

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

#[tokio::test]
async fn trace_lists_and_sessions_filter_summarize_and_page_every_trace_exactly_once() {
    use agenttrace_schemas::event::Level;
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("reads-list").await;
    let now = Timestamp::now();
    let mut generator = SessionGenerator::new(51);
    let events: Vec<Event> = (0..4).flat_map(|_| generator.session(now, 3)).collect();
    etl.load(&project.key, &events).await;
    etl.load(&project.key, &events).await;
    let reader = bearer(&env, project.key.project_id, &[Scope::Read]).await;
    let http = reqwest::Client::new();
    let list = |query: String| {
        let http = http.clone();
        let url = format!("{}/v1/traces?{query}", etl.url);
        let reader = reader.clone();
        async move {
            let response = http
                .get(url)
                .header("authorization", reader)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // Each trace's summary, computed here from the events.
    struct Expected {
        name: Option<String>,
        session: Option<String>,
        tags: Vec<String>,
        observations: u64,
        input_tokens: u64,
        worst: Level,
        scores: BTreeSet<String>,
    }
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for event in &events {
        if let Payload::Trace(t) = &event.payload {
            expected.insert(
                t.id.clone(),
                Expected {
                    name: t.name.clone(),
                    session: t.session_id.clone(),
                    tags: t.tags.clone(),
                    observations: 0,
                    input_tokens: 0,
                    worst: Level::Default,
                    scores: BTreeSet::new(),
                },
            );
        }
    }
    for event in &events {
        match &event.payload {
            Payload::Observation(o) => {
                let e = expected.get_mut(&o.trace_id).unwrap();
                e.observations += 1;
                e.input_tokens += o.usage.input_tokens;
                if matches!(o.level, Level::Warning | Level::Error) && !matches!(e.worst, Level::Error) {
                    e.worst = o.level;
                }
            }
            Payload::Score(s) => {
                expected
                    .get_mut(&s.trace_id)
                    .unwrap()
                    .scores
                    .insert(s.name.clone());
            }
            _ => {}
        }
    }

    let (status, all) = list("limit=1000".into()).await;
    assert_eq!(status, 200, "{all}");
    let rows = all["data"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "replays must not show twice");
    assert!(all["next_cursor"].is_null());
    let mut previous: Option<(i64, String)> = None;
    for row in rows {
        let id = row["id"].as_str().unwrap();
        let e = &expected[id];
        assert_eq!(row["name"].as_str(), e.name.as_deref());
        assert_eq!(row["observation_count"], e.observations, "{row}");
        assert_eq!(row["input_tokens"], e.input_tokens, "{row}");
        let level = match e.worst {
            Level::Error => "error",
            Level::Warning => "warning",
            _ => "default",
        };
        assert_eq!(row["level"], level, "{row}");
        // Newest first, ties by id.
        let key = (row["timestamp_us"].as_i64().unwrap(), id.to_owned());
        if let Some(previous) = &previous {
            assert!(previous > &key, "order: {previous:?} then {key:?}");
        }
        previous = Some(key);
    }

    // Each filter returns exactly the traces it should.
    let some = expected.values().find(|e| e.session.is_some()).unwrap();
    let session = some.session.clone().unwrap();
    let tag = expected.values().find_map(|e| e.tags.first().cloned());
    let score = expected.values().find_map(|e| e.scores.first().cloned());
    type Wanted = Box<dyn Fn(&Expected) -> bool>;
    let mut cases: Vec<(String, Wanted)> = vec![
        (
            format!("session_id={session}"),
            Box::new(move |e: &Expected| e.session.as_deref() == Some(session.as_str())),
        ),
        (
            "level=warning".into(),
            Box::new(|e: &Expected| !matches!(e.worst, Level::Default | Level::Debug)),
        ),
    ];
    if let Some(name) = some.name.clone() {
        cases.push((
            format!("name={}", urlencode(&name)),
            Box::new(move |e: &Expected| e.name.as_deref() == Some(name.as_str())),
        ));
    }
    if let Some(tag) = tag {
        cases.push((
            format!("tags={}", urlencode(&tag)),
            Box::new(move |e: &Expected| e.tags.contains(&tag)),
        ));
    }
    if let Some(score) = score {
        cases.push((
            format!("score_name={}", urlencode(&score)),
            Box::new(move |e: &Expected| e.scores.contains(&score)),
        ));
    }
    for (query, wanted) in &cases {
        let (status, page) = list(format!("{query}&limit=1000")).await;
        assert_eq!(status, 200, "{query}: {page}");
        let got: BTreeSet<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = expected
            .iter()
            .filter(|(_, e)| wanted(e))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(got, want, "{query}");
    }
    // A cost threshold keeps exactly the rows at or above it.
    let costs: Vec<f64> = rows.iter().map(|r| r["total_cost"].as_f64().unwrap()).collect();
    let threshold = costs.iter().copied().fold(0.0, f64::max) / 2.0;
    let (_, costly) = list(format!("min_cost={threshold}&limit=1000")).await;
    assert_eq!(
        costly["data"].as_array().unwrap().len(),
        costs.iter().filter(|c| **c >= threshold).count()
    );

    // A session reads oldest first, page by page, with exactly its traces.
    let (session, _) = expected
        .values()
        .filter_map(|e| e.session.clone())
        .map(|s| {
            let n = expected
                .values()
                .filter(|e| e.session.as_deref() == Some(s.as_str()))
                .count();
            (s, n)
        })
        .max_by_key(|(_, n)| *n)
        .unwrap();
    let want: BTreeSet<String> = expected
        .iter()
        .filter(|(_, e)| e.session.as_deref() == Some(session.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let mut in_session: Vec<(i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/sessions/{}?limit=2", etl.url, urlencode(&session));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .header("authorization", &reader)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["session_id"], session.as_str(), "{page}");
        for row in page["data"].as_array().unwrap() {
            in_session.push((
                row["timestamp_us"].as_i64().unwrap(),
                row["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(
        in_session.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {in_session:?}"
    );
    assert_eq!(
        in_session.into_iter().map(|(_, id)| id).collect::<BTreeSet<_>>(),
        want
    );
    let missing = http
        .get(format!("{}/v1/sessions/no-such-session", etl.url))
        .header("authorization", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Pages of 3, with new traces arriving between pages: every original trace exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut more = SessionGenerator::new(52);
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=3&cursor={c}"),
            None => "limit=3".into(),
        };
        let (status, page) = list(query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        etl.load(&project.key, &more.session(Timestamp::now(), 1)).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let originals: Vec<&String> = seen.iter().filter(|id| expected.contains_key(*id)).collect();
    assert_eq!(
        originals.len(),
        expected.len(),
        "each original trace once: {seen:?}"
    );
    assert_eq!(originals.iter().collect::<BTreeSet<_>>().len(), expected.len());

    // Bad parameters are named.
    for (query, field) in [
        ("limit=0", "limit"),
        ("from=yesterday", "from"),
        ("level=loud", "level"),
        ("cursor=nonsense", "cursor"),
    ] {
        let (status, error) = list(query.into()).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{query}: {error}"
        );
    }
    etl.server.shutdown().await.unwrap();
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
