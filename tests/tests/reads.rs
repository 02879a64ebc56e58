//! The read API (traces, trace lists, sessions) on real ClickHouse 18.16: each answer equals what
//! the agent sent, computed here independently from the generated events; replays never show
//! twice; another project's key sees nothing.

use std::collections::{BTreeMap, BTreeSet};

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::api_keys;
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
                    expected_tree.insert(
                        o.id.to_string(),
                        o.parent_observation_id.as_deref().map(str::to_owned),
                    );
                }
                Payload::Score(s) if s.trace_id == trace.id => {
                    expected.entry("scores").or_default().insert(s.id.to_string());
                }
                Payload::FileOperation(f) if f.trace_id == trace.id => {
                    expected
                        .entry("file_operations")
                        .or_default()
                        .insert(f.id.to_string());
                }
                Payload::TerminalCommand(c) if c.trace_id == trace.id => {
                    expected
                        .entry("terminal_commands")
                        .or_default()
                        .insert(c.id.to_string());
                }
                Payload::GitLink(g) if g.trace_id == trace.id => {
                    expected.entry("git_links").or_default().insert(g.id.to_string());
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
                t.id.to_string(),
                Expected {
                    name: t.name.as_deref().map(str::to_owned),
                    session: t.session_id.as_deref().map(str::to_owned),
                    tags: t.tags.iter().map(|tag| tag.to_string()).collect(),
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
                let e = expected.get_mut(o.trace_id.as_str()).unwrap();
                e.observations += 1;
                e.input_tokens += o.usage.input_tokens;
                if matches!(o.level, Level::Warning | Level::Error) && !matches!(e.worst, Level::Error) {
                    e.worst = o.level;
                }
            }
            Payload::Score(s) => {
                expected
                    .get_mut(s.trace_id.as_str())
                    .unwrap()
                    .scores
                    .insert(s.name.to_string());
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

/// GETs `path` (with its query) as `auth`, expecting 200, and returns the JSON body.
async fn get_json(http: &reqwest::Client, url: String, auth: &str) -> Value {
    let response = http.get(&url).header("authorization", auth).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// The events' payloads of one kind, as sent.
fn payloads<'e, 'a, T: Clone + 'e>(
    events: &'e [Event<'a>],
    pick: impl Fn(&'e Payload<'a>) -> Option<&'e T>,
) -> Vec<T> {
    events.iter().filter_map(|e| pick(&e.payload).cloned()).collect()
}

/// Every row of a cursor-paged list, following `next_cursor` until it is null.
async fn all_pages(http: &reqwest::Client, url: &str, auth: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if url.contains('?') { '&' } else { '?' };
        let page_url = match &cursor {
            Some(c) => format!("{url}{separator}cursor={c}"),
            None => url.to_owned(),
        };
        let page = get_json(http, page_url, auth).await;
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return rows,
        }
    }
}

/// The quantile a t-digest of a small group gives (ClickHouse's `quantilesTDigest`, which the
/// metrics use, keeps each of fewer than 50 values as its own centroid): value `k` of `n`
/// (sorted) sits at rank `k + ½`, and a level between two values interpolates linearly.
fn quantile(sorted: &[f64], level: f64) -> f64 {
    let rank = level * sorted.len() as f64 - 0.5;
    if rank <= 0.0 {
        return sorted[0];
    }
    let low = rank.floor() as usize;
    if low + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    sorted[low] + (rank - low as f64) * (sorted[low + 1] - sorted[low])
}

#[tokio::test]
async fn observations_scores_sessions_and_metrics_equal_an_independent_computation_over_thirty_days() {
    use agenttrace_schemas::event::Level;
    const DAY_US: i64 = 86_400_000_000;
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("reads-wide").await;
    let other = env.create_project("reads-other").await;
    let now = Timestamp::now().as_micros();
    // Sessions spread over 30 days (so pages cross many time windows), each loaded twice.
    let mut generator = SessionGenerator::new(61);
    let events: Vec<Event> = (0..12)
        .flat_map(|k| {
            generator.session(
                Timestamp::from_micros(now - k * 2 * DAY_US - k * 3_600_000_000),
                2,
            )
        })
        .collect();
    etl.load(&project.key, &events).await;
    etl.load(&project.key, &events).await;
    etl.load(
        &other.key,
        &SessionGenerator::new(62).session(Timestamp::now(), 2),
    )
    .await;
    let reader = bearer(&env, project.key.project_id, &[Scope::Read]).await;
    let outsider = bearer(&env, other.key.project_id, &[Scope::Read]).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", etl.url);

    let observations = payloads(&events, |p| match p {
        Payload::Observation(o) => Some(o),
        _ => None,
    });
    let traces = payloads(&events, |p| match p {
        Payload::Trace(t) => Some(t),
        _ => None,
    });
    let scores = payloads(&events, |p| match p {
        Payload::Score(s) => Some(s),
        _ => None,
    });
    let kind = |o: &agenttrace_schemas::event::Observation| serde_json::to_value(o.kind).unwrap();

    // Observations: small pages, every one exactly once, newest first.
    let listed = all_pages(&http, &url("/v1/observations?limit=7"), &reader).await;
    let keys: Vec<(i64, String)> = listed
        .iter()
        .map(|r| {
            (
                r["start_time_us"].as_i64().unwrap(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(
        ids(&Value::Array(listed.clone())),
        observations.iter().map(|o| o.id.to_string()).collect()
    );
    let some_generation = observations
        .iter()
        .find(|o| o.model.is_some())
        .expect("a generation");
    let some_tool = observations
        .iter()
        .find_map(|o| o.tool_name.clone())
        .expect("a tool call");
    type Pick = Box<dyn Fn(&agenttrace_schemas::event::Observation) -> bool>;
    let model = some_generation.model.clone().unwrap();
    let name = some_generation.name.clone();
    let generation_kind = kind(some_generation);
    let cases: Vec<(String, Pick)> = vec![
        (
            format!("type={}", generation_kind.as_str().unwrap()),
            Box::new(move |o| kind(o) == generation_kind),
        ),
        (
            format!("model={}", urlencode(&model)),
            Box::new(move |o| o.model.as_deref() == Some(model.as_str())),
        ),
        (
            format!("tool={}", urlencode(&some_tool)),
            Box::new(move |o| o.tool_name.as_deref() == Some(some_tool.as_str())),
        ),
        (
            format!("name={}", urlencode(&name)),
            Box::new(move |o| o.name == name),
        ),
        (
            "level=warning".into(),
            Box::new(|o| matches!(o.level, Level::Warning | Level::Error)),
        ),
        (
            format!(
                "from={}&to={}",
                urlencode(&Timestamp::from_micros(now - 10 * DAY_US).to_string()),
                urlencode(&Timestamp::from_micros(now - 3 * DAY_US).to_string())
            ),
            Box::new(move |o| {
                let t = o.start_time.as_micros();
                t >= now - 10 * DAY_US && t < now - 3 * DAY_US
            }),
        ),
    ];
    for (query, pick) in &cases {
        let got = all_pages(&http, &url(&format!("/v1/observations?limit=5&{query}")), &reader).await;
        let want: BTreeSet<String> = observations
            .iter()
            .filter(|o| pick(o))
            .map(|o| o.id.to_string())
            .collect();
        assert_eq!(ids(&Value::Array(got)), want, "{query}");
    }

    // Scores: all once; by name.
    let listed_scores = all_pages(&http, &url("/v1/scores?limit=4"), &reader).await;
    assert_eq!(
        ids(&Value::Array(listed_scores)),
        scores.iter().map(|s| s.id.to_string()).collect()
    );
    if let Some(score) = scores.first() {
        let got = all_pages(
            &http,
            &url(&format!("/v1/scores?name={}", urlencode(&score.name))),
            &reader,
        )
        .await;
        let want: BTreeSet<String> = scores
            .iter()
            .filter(|s| s.name == score.name)
            .map(|s| s.id.to_string())
            .collect();
        assert_eq!(ids(&Value::Array(got)), want);
    }

    // Sessions: each once, most recently active first, with its traces' span and count.
    let mut sessions: BTreeMap<String, (i64, i64, u64)> = BTreeMap::new();
    for trace in &traces {
        if let Some(session) = &trace.session_id {
            let at = trace.timestamp.unwrap().as_micros();
            let entry = sessions.entry(session.to_string()).or_insert((at, at, 0));
            entry.0 = entry.0.min(at);
            entry.1 = entry.1.max(at);
            entry.2 += 1;
        }
    }
    assert!(sessions.len() >= 5, "{} sessions", sessions.len());
    let listed_sessions = all_pages(&http, &url("/v1/sessions?limit=2"), &reader).await;
    assert_eq!(
        ids(&Value::Array(listed_sessions.clone())),
        sessions.keys().cloned().collect()
    );
    let order: Vec<(i64, String)> = listed_sessions
        .iter()
        .map(|s| {
            (
                s["last_us"].as_i64().unwrap(),
                s["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "most recent first: {order:?}"
    );
    for row in &listed_sessions {
        let (first, last, count) = sessions[row["id"].as_str().unwrap()];
        assert_eq!(row["first_us"], first, "{row}");
        assert_eq!(row["last_us"], last, "{row}");
        assert_eq!(row["trace_count"], count, "{row}");
    }
    let in_sessions = observations
        .iter()
        .filter(|o| {
            traces
                .iter()
                .any(|t| t.id == o.trace_id && t.session_id.is_some())
        })
        .count() as u64;
    let summed: u64 = listed_sessions
        .iter()
        .map(|s| s["observation_count"].as_u64().unwrap())
        .sum();
    assert_eq!(summed, in_sessions, "sessions' observation counts");
    // Once the summaries' job has run, sessions total the kept trace summaries: the same page.
    let second = env.clickhouse.clock().await.unwrap();
    env.clickhouse.wait_past(second).await.unwrap();
    let report = agenttrace_etl::analytics::summaries::summarize(&env.clickhouse, 0)
        .await
        .unwrap();
    assert!(report.traces > 0, "{report:?}");
    let summarized = all_pages(&http, &url("/v1/sessions?limit=2"), &reader).await;
    assert_eq!(summarized, listed_sessions, "sessions from kept summaries");

    // Metrics: generations by day and model over the 30 days, against the events.
    let from = Timestamp::from_micros(now - 31 * DAY_US).to_string();
    let to = Timestamp::from_micros(now + DAY_US).to_string();
    let answer = get_json(
        &http,
        url(&format!(
            "/v1/metrics?from={}&to={}&bucket=day&dimensions=model&type=generation",
            urlencode(&from),
            urlencode(&to)
        )),
        &reader,
    )
    .await;
    #[derive(Default)]
    struct Group {
        count: u64,
        input_tokens: u64,
        errors: u64,
        latencies: Vec<f64>,
    }
    let mut groups: BTreeMap<(i64, String), Group> = BTreeMap::new();
    for o in observations.iter().filter(|o| kind(o) == "generation") {
        let day = o.start_time.as_micros().div_euclid(DAY_US) * DAY_US;
        let group = groups
            .entry((day, o.model.as_deref().unwrap_or_default().to_owned()))
            .or_default();
        group.count += 1;
        group.input_tokens += o.usage.input_tokens;
        group.errors += u64::from(matches!(o.level, Level::Error));
        if let Some(end) = o.end_time {
            group
                .latencies
                .push((end.as_micros() - o.start_time.as_micros()) as f64 / 1000.0);
        }
    }
    let rows = answer["data"].as_array().unwrap();
    assert_eq!(rows.len(), groups.len(), "{answer}");
    for row in rows {
        let day = Timestamp::parse(row["bucket"].as_str().unwrap())
            .unwrap()
            .as_micros();
        let group = &groups[&(day, row["model"].as_str().unwrap().to_owned())];
        assert_eq!(row["count"], group.count, "{row}");
        assert_eq!(row["input_tokens"], group.input_tokens, "{row}");
        let error_rate = group.errors as f64 / group.count as f64;
        assert!(
            (row["error_rate"].as_f64().unwrap() - error_rate).abs() < 1e-9,
            "{row}"
        );
        let mut latencies = group.latencies.clone();
        latencies.sort_by(f64::total_cmp);
        for (field, level) in [
            ("latency_p50_ms", 0.5),
            ("latency_p95_ms", 0.95),
            ("latency_p99_ms", 0.99),
        ] {
            match latencies.is_empty() {
                true => assert!(row[field].is_null(), "{row}"),
                // A t-digest answers in single precision.
                false => {
                    let expected = quantile(&latencies, level);
                    assert!(
                        (row[field].as_f64().unwrap() - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                        "{field} {row} vs {expected} of {latencies:?}"
                    )
                }
            }
        }
    }
    // The metric's cost is the listed generations' cost.
    let metric_cost: f64 = rows.iter().map(|r| r["total_cost"].as_f64().unwrap()).sum();
    let listed_cost: f64 = listed
        .iter()
        .filter(|r| r["type"] == "generation")
        .map(|r| r["total_cost"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        metric_cost > 0.0 && (metric_cost - listed_cost).abs() < 1e-6,
        "{metric_cost} vs {listed_cost}"
    );
    // Scores by name: count and mean.
    let answer = get_json(
        &http,
        url(&format!(
            "/v1/metrics?view=scores&from={}&to={}&bucket=none&dimensions=name",
            urlencode(&from),
            urlencode(&to)
        )),
        &reader,
    )
    .await;
    for row in answer["data"].as_array().unwrap() {
        let named: Vec<Value> = scores
            .iter()
            .filter(|s| s.name == row["name"].as_str().unwrap())
            .map(|s| serde_json::to_value(&s.value).unwrap())
            .collect();
        assert_eq!(row["count"], named.len(), "{row}");
        // Numbers and booleans (1 or 0) have a mean; categories do not.
        let values: Vec<f64> = named
            .iter()
            .filter_map(|v| v.as_f64().or_else(|| v.as_bool().map(f64::from)))
            .collect();
        if values.is_empty() {
            assert!(row["mean"].is_null(), "{row}");
        } else {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            assert!((row["mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{row}");
        }
    }
    // Bad parameters are named.
    for (query, field) in [
        ("from=x&to=y", "from"),
        (
            "view=logs&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
            "view",
        ),
    ] {
        let response = http
            .get(url(&format!("/v1/metrics?{query}")))
            .header("authorization", &reader)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{error}"
        );
    }

    // Another project's key sees none of it.
    let ours: BTreeSet<String> = observations
        .iter()
        .map(|o| o.id.to_string())
        .chain(scores.iter().map(|s| s.id.to_string()))
        .chain(traces.iter().map(|t| t.id.to_string()))
        .chain(sessions.keys().cloned())
        .collect();
    for path in ["/v1/observations", "/v1/scores", "/v1/sessions", "/v1/traces"] {
        let theirs = all_pages(&http, &url(path), &outsider).await;
        assert!(!theirs.is_empty(), "{path}: the other project has its own rows");
        assert!(
            theirs.iter().all(|r| !ours.contains(r["id"].as_str().unwrap())),
            "{path}"
        );
    }
    etl.server.shutdown().await.unwrap();
}

/// `events`' rows inserted into the columns the tables have now (an older schema's).
async fn load_into_existing_columns(env: &TestEnv, project: uuid::Uuid, events: &[Event<'_>]) {
    use agenttrace_etl::clickhouse::compression::Compression;
    use agenttrace_etl::clickhouse::insert::WireFormat;
    // An older ETL wrote no search postings.
    let mut tables =
        agenttrace_etl::ingest::to_arrow::TableBatches::new(&project.to_string(), "reads-migration")
            .without_search_index();
    for event in events {
        tables.push(event, None).unwrap();
    }
    for (table, batch) in tables.finish("migration", Timestamp::now()).unwrap() {
        let existing = env
            .ch(&format!(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = '{}'",
                table.name()
            ))
            .await;
        let existing: BTreeSet<&str> = existing.lines().collect();
        let schema = batch.schema();
        let kept: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| existing.contains(schema.field(i).name().as_str()))
            .collect();
        let batch = batch.project(&kept).unwrap();
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let body = WireFormat::Native.encode(&[batch]).unwrap();
        env.clickhouse
            .insert(
                &format!(
                    "INSERT INTO {} ({}) FORMAT Native",
                    table.name(),
                    names.join(", ")
                ),
                body.into(),
                Compression::None,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_read_layout_migration_keeps_every_row_and_fills_the_time_indexes() {
    use agenttrace_etl::migrate::{self, MigrationSet};
    let env = TestEnv::empty().await;
    let all = MigrationSet::embedded().unwrap();
    let mut before = all.clone();
    before.clickhouse.retain(|m| m.name.as_str() < "0007");
    let mut pg = env.postgres().await;
    migrate::migrate(&mut pg, &env.clickhouse, &before).await.unwrap();
    let project = env.create_project("reads-migration").await;
    let mut generator = SessionGenerator::new(71);
    let events: Vec<Event> = (0..3)
        .flat_map(|_| generator.session(Timestamp::now(), 3))
        .collect();
    // Loaded as the ETL of that time did: the columns later migrations add are not there yet.
    for _ in 0..2 {
        load_into_existing_columns(&env, project.key.project_id, &events).await;
    }
    let tables = [
        "traces",
        "observations",
        "scores",
        "file_operations",
        "terminal_commands",
        "git_links",
    ];
    // Every stored column but `ingested_at`: the batch is loaded twice, and which of two
    // copies of the same version a copy keeps (they differ only in when they were loaded) is
    // arbitrary once rows come from several shards.
    let mut selects = Vec::new();
    for table in tables {
        let columns = env
            .ch(&format!(
                "SELECT arrayStringConcat(groupArray(name), ', ') FROM system.columns
                 WHERE database = currentDatabase() AND table = '{table}'
                   AND name != 'ingested_at' AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')"
            ))
            .await;
        selects.push(format!(
            "SELECT {} FROM {table} FINAL ORDER BY project_id, id",
            columns.trim()
        ));
    }
    let mut snapshot = Vec::new();
    for select in &selects {
        snapshot.push(env.ch(select).await);
    }
    assert!(
        snapshot.iter().all(|rows| !rows.is_empty()),
        "every table has rows"
    );

    migrate::migrate(&mut pg, &env.clickhouse, &all).await.unwrap();
    for ((table, select), rows) in tables.iter().zip(&selects).zip(&snapshot) {
        let after = env.ch(select).await;
        assert_eq!(&after, rows, "{table} changed in the migration");
    }
    // On a cluster the data (and its key) is in the shards' local tables.
    let stored = if env.clickhouse.cluster().is_some() {
        "observations_local"
    } else {
        "observations"
    };
    assert_eq!(
        env.ch(&format!(
            "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = '{stored}'"
        ))
        .await
        .replace(' ', ""),
        "project_id,trace_id,id"
    );
    // The time indexes hold exactly the source rows' projections.
    // (On a cluster 18.16's FINAL needs the key's first column in the query: the project.)
    let mine = format!(
        "project_id = {}",
        agenttrace_etl::clickhouse::quote(&project.key.project_id.to_string())
    );
    for (index, source) in [
        (
            format!(
                "SELECT id, timestamp_us, name, user_id, session_id, tags FROM traces_by_time FINAL WHERE {mine} ORDER BY id"
            ),
            format!(
                "SELECT id, timestamp_us, name, user_id, session_id, tags FROM traces FINAL WHERE {mine} ORDER BY id"
            ),
        ),
        (
            format!(
                "SELECT session_id, trace_id, timestamp_us FROM session_traces FINAL WHERE {mine} ORDER BY trace_id"
            ),
            format!(
                "SELECT session_id, id, timestamp_us FROM traces FINAL WHERE {mine} AND isNotNull(session_id) ORDER BY id"
            ),
        ),
        (
            format!(
                "SELECT id, trace_id, type, start_time_us, total_cost, version FROM observations_by_time FINAL WHERE {mine} ORDER BY id"
            ),
            format!(
                "SELECT id, trace_id, type, start_time_us, total_cost, version FROM observations FINAL WHERE {mine} ORDER BY id"
            ),
        ),
        (
            format!(
                "SELECT id, trace_id, timestamp_us, name, value, version FROM scores_by_time FINAL WHERE {mine} ORDER BY id"
            ),
            format!(
                "SELECT id, trace_id, timestamp_us, name, value, version FROM scores FINAL WHERE {mine} ORDER BY id"
            ),
        ),
    ] {
        assert_eq!(env.ch(&index).await, env.ch(&source).await, "{index}");
    }
    // Loading after the migration fills the indexes too, and a replay still shows once.
    let etl = env.start_etl(|_| {}).await;
    let later: Vec<Event> = SessionGenerator::new(72).session(Timestamp::now(), 2);
    etl.load(&project.key, &later).await;
    etl.load(&project.key, &later).await;
    let observations = events
        .iter()
        .chain(&later)
        .filter(|e| matches!(e.payload, Payload::Observation(_)))
        .count();
    assert_eq!(
        env.ch("SELECT count() FROM observations_by_time FINAL").await,
        observations.to_string()
    );
    assert_eq!(
        env.ch("SELECT count() FROM observations FINAL").await,
        observations.to_string()
    );
    etl.server.shutdown().await.unwrap();
}

/// A filter nothing matches must not make one request read a whole project: Langfuse's exact
/// `level` (ours is "at least", so the exact one is kept after reading) reads at most 20 pages
/// of 1,000 per answer, then answers short with a cursor where the search stopped.
#[tokio::test]
async fn an_exact_level_search_reads_a_bounded_number_of_pages() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("level-scan").await.key.project_id;
    env.clickhouse
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, level,
                                       cost_source, event_id, version)
             SELECT '{project}', concat('o', toString(number)), concat('t', toString(intDiv(number, 100))),
                    'span', 'step', 1764000000000000 + number, 'default', 'none', toString(number), 1
             FROM system.numbers LIMIT 25000"
        ))
        .await
        .unwrap();
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, project, &[Scope::Read], None)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let page = |cursor: Option<String>| {
        let mut url = format!("{}/api/public/v2/observations?level=DEBUG&limit=10", etl.url);
        if let Some(cursor) = cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        http.get(url)
            .basic_auth(&key.public_key, Some(&key.secret_key))
            .send()
    };
    let first: Value = page(None).await.unwrap().json().await.unwrap();
    assert_eq!(first["data"], serde_json::json!([]), "{first}");
    let cursor = first["meta"]["cursor"]
        .as_str()
        .expect("a cursor where the search stopped");
    // The rest of the project, and then the end.
    let second: Value = page(Some(cursor.to_owned())).await.unwrap().json().await.unwrap();
    assert_eq!(second["data"], serde_json::json!([]), "{second}");
    assert!(second["meta"]["cursor"].is_null(), "{second}");
}

/// A trace's detail carries each observation's payloads cut to their first 1,000 characters
/// (so one answer stays small whatever an agent sent), says which were cut, and the whole
/// observation is one request away, for its project only.
#[tokio::test]
async fn a_trace_carries_payload_previews_and_each_observation_reads_whole() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("previews").await.key.project_id;
    let other = env.create_project("previews-other").await.key.project_id;
    let long = "{\"text\": \"".to_owned() + &"0123456789".repeat(500) + "\"}";
    env.clickhouse
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, level,
                                       input, output, metadata_keys, metadata_values, cost_source,
                                       event_id, version)
             VALUES ('{project}', 'big', 't1', 'generation', 'llm', 1764000000000000, 'default',
                     '{long}', '{{\"ok\": true}}', ['note'], ['{note}'], 'none', 'e1', 1)",
            note = "n".repeat(1500)
        ))
        .await
        .unwrap();
    let reader = bearer(&env, project, &[Scope::Read]).await;
    let http = reqwest::Client::new();
    let get = |path: String, key: String| {
        http.get(format!("{}{path}", etl.url))
            .header("authorization", key)
            .send()
    };

    let detail: Value = get("/v1/traces/t1".into(), reader.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let observation = &detail["observations"][0];
    assert_eq!(
        observation["input"].as_str().unwrap().chars().count(),
        1000,
        "{observation}"
    );
    assert_eq!(observation["input_truncated"], true);
    assert_eq!(
        observation["output"],
        serde_json::json!({"ok": true}),
        "a short payload is whole JSON"
    );
    assert_eq!(observation["output_truncated"], false);
    assert_eq!(observation["metadata"]["note"].as_str().unwrap().len(), 1000);
    assert_eq!(observation["metadata_truncated"], true);

    let whole = get("/v1/traces/t1/observations/big".into(), reader.clone())
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(whole["input"]["text"].as_str().unwrap().len(), 5000, "{whole}");
    assert_eq!(whole["metadata"]["note"].as_str().unwrap().len(), 1500);

    // Another project's key, and a wrong trace: nothing.
    let outsider = bearer(&env, other, &[Scope::Read]).await;
    assert_eq!(
        get("/v1/traces/t1/observations/big".into(), outsider)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/v1/traces/t2/observations/big".into(), reader)
            .await
            .unwrap()
            .status(),
        404
    );
}
