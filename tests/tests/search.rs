//! Full-text search on real ClickHouse 18.16 through the ETL's `/v1/search`: results equal an
//! independent scan of generated data in English, Chinese, Japanese, Korean, Arabic and code;
//! a replaced text no longer matches its old words; another project's rows never match; pages
//! by cursor neither repeat nor skip; bad queries get a 400 naming `q`; the CLI prints hits.

use std::collections::BTreeSet;

use agenttrace_etl::control::api_keys;
use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::{Event, Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::etl::Etl;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Invented words of one length, so that no word is part of another.
fn latin_words() -> Vec<String> {
    let (consonants, vowels) = (["k", "r", "t", "m", "s", "v"], ["a", "e", "o", "u"]);
    let mut words = Vec::new();
    for a in consonants {
        for b in vowels {
            for c in ["l", "n", "d"] {
                words.push(format!("{a}{b}{c}{b}{a}"));
            }
        }
    }
    words
}

/// Sentences of scripts written without spaces (a query is any two or three characters of one).
const CJK: [&str; 6] = [
    "数据库连接失败",
    "请检查配置文件",
    "東京タワーに行く",
    "テストが失敗しました",
    "서울에서 만나요",
    "파일을 저장했습니다",
];
/// Arabic words, each also sent with its short vowels (harakat) somewhere.
const ARABIC: [(&str, &str); 3] = [("كتاب", "كِتَاب"), ("مدرسة", "مَدْرَسَة"), ("خطأ", "خَطَأ")];
/// Identifiers, none part of another; each part query lists the identifiers holding it.
const IDENTIFIERS: [&str; 6] = [
    "parse_config",
    "BillingService",
    "src/billing/invoice.rs",
    "std::collections::HashMap",
    "UserService",
    "retry_backoff_ms",
];
const PARTS: [(&str, &[&str]); 3] = [
    ("service", &["BillingService", "UserService"]),
    ("invoice", &["src/billing/invoice.rs"]),
    ("hashmap", &["std::collections::HashMap"]),
];

/// One generated trace: what each searchable field holds, and its session.
#[derive(Debug, Clone)]
struct Doc {
    trace_id: String,
    session: String,
    /// (field, text) of every row of the trace.
    fields: Vec<(&'static str, String)>,
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn sentence(rng: &mut StdRng, words: &[String]) -> String {
    let mut parts: Vec<String> = (0..rng.random_range(3..8))
        .map(|_| pick(rng, words).clone())
        .collect();
    match rng.random_range(0..4) {
        0 => parts.push(pick(rng, &CJK).to_string()),
        1 => {
            let (plain, voweled) = pick(rng, &ARABIC);
            parts.push(if rng.random_bool(0.5) { plain } else { voweled }.to_string());
        }
        2 => parts.push(pick(rng, &IDENTIFIERS).to_string()),
        _ => {}
    }
    // Capitals somewhere: search folds case.
    if rng.random_bool(0.3) {
        parts[0] = parts[0].to_uppercase();
    }
    parts.join(" ")
}

/// The events of one trace (a trace, a generation, a terminal command, a file operation) and
/// what the independent scan needs to know of them.
fn trace_events(
    rng: &mut StdRng,
    words: &[String],
    prefix: &str,
    i: usize,
    at: Timestamp,
) -> (Vec<Value>, Doc) {
    let trace_id = format!("{prefix}-trace-{i}");
    let session = format!("{prefix}-session-{}", i % 7);
    let t = |offset_ms: i64| Timestamp::from_micros(at.as_micros() + offset_ms * 1000).to_string();
    let (question, answer, command, stdout) = (
        sentence(rng, words),
        sentence(rng, words),
        format!("cargo test {}", pick(rng, words)),
        sentence(rng, words),
    );
    let path = format!("src/{}.rs", pick(rng, words));
    let events = vec![
        json!({"id": format!("{trace_id}-e1"), "type": "trace", "timestamp": t(0), "body": {
            "id": trace_id, "name": "agent turn", "session_id": session,
            "input": {"messages": [{"role": "user", "content": question}]}}}),
        json!({"id": format!("{trace_id}-e2"), "type": "observation", "timestamp": t(1), "body": {
            "id": format!("{trace_id}-gen"), "trace_id": trace_id, "type": "generation", "name": "llm",
            "start_time": t(1), "end_time": t(900), "output": answer}}),
        json!({"id": format!("{trace_id}-e3"), "type": "terminal_command", "timestamp": t(2), "body": {
            "id": format!("{trace_id}-cmd"), "trace_id": trace_id, "command": command, "stdout": stdout}}),
        json!({"id": format!("{trace_id}-e4"), "type": "file_operation", "timestamp": t(3), "body": {
            "id": format!("{trace_id}-file"), "trace_id": trace_id, "operation": "edit", "path": path}}),
    ];
    let doc = Doc {
        trace_id,
        session,
        fields: vec![
            ("name", "agent turn".into()),
            ("input", question),
            ("name", "llm".into()),
            ("output", answer),
            ("command", command),
            ("stdout", stdout),
            ("path", path),
        ],
    };
    (events, doc)
}

fn parse(events: &[Value]) -> Vec<Event<'static>> {
    events
        .iter()
        .map(|e| Event::parse(&e.to_string()).unwrap().into_static())
        .collect()
}

/// The scan's idea of text: lower case, no Arabic short vowels.
fn plain(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| !('\u{064B}'..='\u{065F}').contains(c))
        .collect()
}

/// Whether `text` holds `word`, as the scan defines it: CJK by substring, an identifier part
/// by the identifiers holding it, anything else as a whole space-separated word.
fn holds(text: &str, word: &str) -> bool {
    let (text, word) = (plain(text), plain(word));
    if word
        .chars()
        .any(|c| c as u32 >= 0x3000 && !('\u{0600}'..='\u{06FF}').contains(&c))
    {
        return text.contains(&word);
    }
    if let Some((_, identifiers)) = PARTS.iter().find(|(part, _)| *part == word) {
        return identifiers.iter().any(|id| holds(&text, id));
    }
    // A path is also found by its parts (`src/kalak.rs` by `kalak`).
    text.split_whitespace()
        .any(|w| w == word || (w.contains('/') && w.split(['/', '.']).any(|part| part == word)))
}

/// One clause of a query, as the scan checks it.
struct Expect {
    fields: Option<&'static [&'static str]>,
    text: String,
    phrase: bool,
    excluded: bool,
}

fn clause_holds(doc: &Doc, clause: &Expect) -> bool {
    doc.fields.iter().any(|(field, text)| {
        clause.fields.is_none_or(|fields| fields.contains(field))
            && if clause.phrase {
                plain(text).contains(&plain(&clause.text))
            } else {
                holds(text, &clause.text)
            }
    })
}

/// The traces of `docs` every clause of `query` holds for, by the scan.
fn scan(docs: &[Doc], query: &[Expect]) -> BTreeSet<String> {
    docs.iter()
        .filter(|doc| query.iter().all(|c| clause_holds(doc, c) != c.excluded))
        .map(|doc| doc.trace_id.clone())
        .collect()
}

fn word(text: &str) -> Expect {
    Expect {
        fields: None,
        text: text.into(),
        phrase: false,
        excluded: false,
    }
}

async fn search_all(etl: &Etl, auth: &str, query: &[(&str, &str)], limit: usize) -> Vec<Value> {
    search_pages(etl, auth, query, limit).await.concat()
}

/// Every page of a search, following its cursors.
async fn search_pages(etl: &Etl, auth: &str, query: &[(&str, &str)], limit: usize) -> Vec<Vec<Value>> {
    let limit = limit.to_string();
    let mut params: Vec<(&str, &str)> = query.to_vec();
    params.push(("limit", &limit));
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = search_page(etl, auth, &params, cursor.as_deref()).await;
        pages.push(page["data"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 1_000, "{query:?}: pages go on");
    }
}

/// One page of a search.
async fn search_page(etl: &Etl, auth: &str, query: &[(&str, &str)], cursor: Option<&str>) -> Value {
    let mut params = query.to_vec();
    if let Some(cursor) = cursor {
        params.push(("cursor", cursor));
    }
    let response = reqwest::Client::new()
        .get(format!("{}/v1/search", etl.url))
        .query(&params)
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let page: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{query:?}: {page}");
    page
}

fn trace_ids(results: &[Value]) -> BTreeSet<String> {
    let ids: Vec<String> = results
        .iter()
        .map(|r| r["trace"]["id"].as_str().unwrap().to_owned())
        .collect();
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "a trace listed twice: {ids:?}");
    set
}

async fn bearer(env: &TestEnv, project: uuid::Uuid) -> String {
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, project, &[Scope::Read], None)
        .await
        .unwrap();
    format!("Bearer {}:{}", key.public_key, key.secret_key)
}

#[tokio::test]
async fn search_equals_an_independent_scan_in_every_language_and_stays_in_its_project() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("search-a").await;
    let b = env.create_project("search-b").await;
    let words = latin_words();
    let mut rng = StdRng::seed_from_u64(39);
    let now = Timestamp::now().as_micros();
    let mut docs = Vec::new();
    for (project, prefix) in [(&a, "a"), (&b, "b")] {
        let mut events = Vec::new();
        for i in 0..80 {
            // Spread over two days, so that pages cross time windows.
            let at = Timestamp::from_micros(now - (i as i64) * 36 * 60_000_000 - 60_000_000);
            let (trace, doc) = trace_events(&mut rng, &words, prefix, i, at);
            events.extend(trace);
            if prefix == "a" {
                docs.push(doc);
            }
        }
        for chunk in parse(&events).chunks(100) {
            etl.load(&project.key, chunk).await;
        }
    }
    let auth = bearer(&env, a.key.project_id).await;

    // Words and phrases that occur, in each language, and some that do not.
    let some_input = docs[3].fields[1].1.clone();
    let two_words: Vec<&str> = some_input.split_whitespace().take(2).collect();
    let phrase = two_words.join(" ");
    let (w1, w2) = (words[0].clone(), words[5].clone());
    let mut queries: Vec<(String, Vec<Expect>)> = vec![
        (w1.clone(), vec![word(&w1)]),
        (w1.to_uppercase(), vec![word(&w1)]),
        (format!("{w1} {w2}"), vec![word(&w1), word(&w2)]),
        (
            format!("{w1} -{w2}"),
            vec![
                word(&w1),
                Expect {
                    excluded: true,
                    ..word(&w2)
                },
            ],
        ),
        (
            format!("\"{phrase}\""),
            vec![Expect {
                phrase: true,
                ..word(&phrase)
            }],
        ),
        (
            format!("input:{w1}"),
            vec![Expect {
                fields: Some(&["input"]),
                ..word(&w1)
            }],
        ),
        (
            format!("command:{w2}"),
            vec![Expect {
                fields: Some(&["command"]),
                ..word(&w2)
            }],
        ),
        (
            format!("output:{w2}"),
            vec![Expect {
                fields: Some(&["output", "stdout"]),
                ..word(&w2)
            }],
        ),
        ("数据库".into(), vec![word("数据库")]),
        ("失败".into(), vec![word("失败")]),
        ("タワー".into(), vec![word("タワー")]),
        ("서울".into(), vec![word("서울")]),
        ("كتاب".into(), vec![word("كتاب")]),
        ("مَدْرَسَة".into(), vec![word("مدرسة")]),
        ("parse_config".into(), vec![word("parse_config")]),
        ("billingservice".into(), vec![word("BillingService")]),
        ("service".into(), vec![word("service")]),
        ("invoice".into(), vec![word("invoice")]),
        (
            "std::collections::HashMap".into(),
            vec![word("std::collections::HashMap")],
        ),
        ("hashmap".into(), vec![word("hashmap")]),
        ("zzqxv".into(), vec![word("zzqxv")]),
    ];
    queries.push((format!("{w1} 数据库"), vec![word(&w1), word("数据库")]));
    let mut matched_some = 0;
    for (q, expect) in &queries {
        let expected = scan(&docs, expect);
        matched_some += usize::from(!expected.is_empty());
        let found = trace_ids(&search_all(&etl, &auth, &[("q", q)], 7).await);
        assert_eq!(found, expected, "q={q}");
    }
    assert!(
        matched_some >= queries.len() - 3,
        "the data exercises the queries"
    );

    // Results come newest match first, each with a snippet that highlights what matched.
    let results = search_all(&etl, &auth, &[("q", "数据库")], 100).await;
    let times: Vec<i64> = results
        .iter()
        .map(|r| r["matched_at_us"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    for result in &results {
        let found = &result["matches"][0];
        let snippet = found["snippet"].as_str().unwrap();
        let [start, end] = [0, 1].map(|i| found["highlights"][0][i].as_u64().unwrap() as usize);
        assert_eq!(&snippet[start..end], "数据库", "{result}");
    }

    // Observations: the generation (or command, or file) that holds the word, not its trace.
    let observations = search_all(
        &etl,
        &auth,
        &[("q", &format!("output:{w2}")), ("results", "observations")],
        50,
    )
    .await;
    for result in &observations {
        assert!(
            result["observation"]["id"].as_str().unwrap().ends_with("-gen"),
            "{result}"
        );
    }
    let expected_observations = docs
        .iter()
        .filter(|d| d.fields.iter().any(|(f, t)| *f == "output" && holds(t, &w2)))
        .count();
    assert_eq!(observations.len(), expected_observations);

    // Sessions: each once on a page.
    let sessions = search_all(&etl, &auth, &[("q", &w1), ("results", "sessions")], 100).await;
    let listed: Vec<&str> = sessions
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    let expected_sessions: BTreeSet<&str> = docs
        .iter()
        .filter(|d| scan(std::slice::from_ref(d), &[word(&w1)]).len() == 1)
        .map(|d| d.session.as_str())
        .collect();
    assert_eq!(listed.iter().copied().collect::<BTreeSet<_>>(), expected_sessions);
    assert_eq!(listed.len(), expected_sessions.len());

    // Filters of the trace list apply: a session's traces only.
    let in_session = search_all(&etl, &auth, &[("q", &w1), ("session_id", "a-session-3")], 100).await;
    let expected: BTreeSet<String> = scan(&docs, &[word(&w1)])
        .into_iter()
        .filter(|id| {
            docs.iter()
                .any(|d| d.trace_id == *id && d.session == "a-session-3")
        })
        .collect();
    assert_eq!(trace_ids(&in_session), expected);

    // B's key finds B's traces only.
    let b_auth = bearer(&env, b.key.project_id).await;
    let b_found = trace_ids(&search_all(&etl, &b_auth, &[("q", &w1)], 100).await);
    assert!(
        !b_found.is_empty() && b_found.iter().all(|id| id.starts_with("b-")),
        "{b_found:?}"
    );
    // And A's never does, whatever the query names.
    for q in ["a-trace-1", "agent turn", "src"] {
        let found = trace_ids(&search_all(&etl, &b_auth, &[("q", q)], 100).await);
        assert!(found.iter().all(|id| id.starts_with("b-")), "{q}: {found:?}");
    }
}

#[tokio::test]
async fn a_replaced_text_no_longer_matches_its_old_words_and_replays_show_once() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("search-replace").await;
    let auth = bearer(&env, a.key.project_id).await;
    let now = Timestamp::now().as_micros();
    let at = |offset_s: i64| Timestamp::from_micros(now - 600_000_000 + offset_s * 1_000_000).to_string();
    let first = parse(&[
        json!({"id": "v1", "type": "trace", "timestamp": at(0), "body": {"id": "t-replace", "timestamp": at(0),
            "input": "the quokka escaped"}}),
        json!({"id": "o-v1", "type": "observation", "timestamp": at(0), "body": {"id": "o-replace",
            "trace_id": "t-replace", "type": "span", "name": "step", "start_time": at(0), "output": "wombat report"}}),
    ]);
    etl.load(&a.key, &first).await;
    etl.load(&a.key, &first).await;
    let found = |q: &'static str| {
        let (etl, auth) = (&etl, &auth);
        async move { trace_ids(&search_all(etl, auth, &[("q", q)], 10).await) }
    };
    let only = BTreeSet::from(["t-replace".to_owned()]);
    assert_eq!(found("quokka").await, only, "a replay lists its trace once");
    assert_eq!(found("wombat").await, only);

    // The trace is replaced (a newer version), and the observation updated by a patch.
    etl.load(
        &a.key,
        &parse(&[
            json!({"id": "v2", "type": "trace", "timestamp": at(5), "body": {"id": "t-replace", "timestamp": at(0),
                "input": "the platypus escaped"}}),
            json!({"id": "o-v2", "type": "observation_patch", "timestamp": at(6), "body": {"id": "o-replace",
                "trace_id": "t-replace", "type": "span", "output": "echidna report"}}),
        ]),
    )
    .await;
    assert_eq!(
        found("quokka").await,
        BTreeSet::new(),
        "the old words no longer match"
    );
    assert_eq!(found("wombat").await, BTreeSet::new());
    assert_eq!(found("platypus").await, only);
    assert_eq!(found("echidna").await, only);
    assert_eq!(
        found("escaped").await,
        only,
        "the words both versions share still match, once"
    );
    assert_eq!(found("\"platypus escaped\"").await, only);
}

/// Words with more postings than a search counts (100K) are counted only that far, and the
/// longest such word's span is then read whole: a phrase of two words with 120K postings each
/// (on older traces that hold only one of them) still finds the one trace that holds it.
#[tokio::test]
async fn words_past_the_counted_postings_still_find_their_trace() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("search-common").await;
    let auth = bearer(&env, a.key.project_id).await;
    let now = Timestamp::now().as_micros();
    let at = Timestamp::from_micros(now - 600_000_000).to_string();
    etl.load(
        &a.key,
        &parse(
            &[json!({"id": "e-real", "type": "trace", "timestamp": at, "body": {
            "id": "t-real", "timestamp": at, "input": "a wombat lemur pair"}})],
        ),
    )
    .await;
    env.clickhouse
        .execute(&format!(
            "INSERT INTO search_postings
             (project_id, term, timestamp_us, trace_id, observation_id, source, id, field)
             SELECT '{project}', term, {oldest} + number * 1000, concat(term, '-', toString(number)),
                    '', 'traces', '', 'input'
             FROM numbers(120000) ARRAY JOIN ['wombat', 'lemur'] AS term",
            project = a.key.project_id,
            oldest = now - 2 * 86_400_000_000,
        ))
        .await
        .unwrap();
    // The first page only: the pages after it go through the 240K postings' traces.
    for q in ["\"wombat lemur\"", "lemur wombat"] {
        let page = search_page(&etl, &auth, &[("q", q), ("limit", "5")], None).await;
        assert_eq!(
            trace_ids(page["data"].as_array().unwrap()),
            BTreeSet::from(["t-real".to_owned()]),
            "{q}"
        );
    }
}

/// A query whose words every row holds but whose phrase only the oldest row does makes every
/// row a candidate, each checked by reading its text: one request reads about 32 MiB of text
/// and ends its page there with a cursor, and the pages after it go on to the match.
#[tokio::test]
async fn a_request_stops_at_its_text_budget_and_its_cursor_goes_on() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("search-budget").await;
    let auth = bearer(&env, a.key.project_id).await;
    // 190 inputs of ~200 KB: 38 MB of text, more than one request's 32 MiB.
    let filler = "the agent read the build log and kept going with the next step ".repeat(3_200);
    let now = Timestamp::now().as_micros();
    for first in (0..190).step_by(10) {
        let events: Vec<Value> = (first..first + 10)
            .map(|i| {
                // Trace 0 is the oldest, and the only one with the phrase.
                let at = Timestamp::from_micros(now - 3_600_000_000 + i as i64 * 1_000_000).to_string();
                let words = if i == 0 { "zebra giraffe" } else { "giraffe zebra" };
                json!({"id": format!("e-{i}"), "type": "trace", "timestamp": at, "body": {
                    "id": format!("t-{i}"), "timestamp": at, "input": format!("{words} {filler}")}})
            })
            .collect();
        etl.load(&a.key, &parse(&events)).await;
    }
    let pages: Vec<BTreeSet<String>> = search_pages(&etl, &auth, &[("q", "\"zebra giraffe\"")], 20)
        .await
        .iter()
        .map(|page| trace_ids(page))
        .collect();
    assert!(
        pages.len() >= 2,
        "one request read every candidate's text: {pages:?}"
    );
    assert!(pages[0].is_empty(), "{pages:?}");
    let found: BTreeSet<String> = pages.into_iter().flatten().collect();
    assert_eq!(found, BTreeSet::from(["t-0".to_owned()]));
}

#[tokio::test]
async fn bad_queries_are_refused_naming_q_and_the_cli_prints_hits() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("search-cli").await;
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, a.key.project_id, &[Scope::Read], None)
        .await
        .unwrap();
    let auth = format!("Bearer {}:{}", key.public_key, key.secret_key);
    let http = reqwest::Client::new();
    for (query, field, says) in [
        (vec![], "q", "missing"),
        (vec![("q", "\"unclosed")], "q", "closing"),
        (vec![("q", "-only")], "q", "only excludes"),
        (vec![("q", "x"), ("level", "bad")], "level", ""),
        (vec![("q", "x"), ("results", "spans")], "results", ""),
        (vec![("q", "x"), ("limit", "1000")], "limit", "between"),
    ] {
        let response = http
            .get(format!("{}/v1/search", etl.url))
            .query(&query)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{query:?}: {text}");
        // The query-string extractor's refusals are plain text on the read routes.
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        assert!(
            message.contains(field) && message.contains(says),
            "{query:?}: {message}"
        );
    }

    let now = Timestamp::now().as_micros();
    let at = |s: i64| Timestamp::from_micros(now - 60_000_000 + s * 1000).to_string();
    etl.load(
        &a.key,
        &parse(&[
            json!({"id": "e1", "type": "trace", "timestamp": at(0), "body": {"id": "t-cli", "name": "fix billing"}}),
            json!({"id": "e2", "type": "observation", "timestamp": at(1), "body": {"id": "o-cli", "trace_id": "t-cli",
                "type": "span", "name": "Bash", "start_time": at(1), "end_time": at(5),
                "output": "error[E0425]: cannot find value `invoice_total`"}}),
        ]),
    )
    .await;
    let api = agenttrace_cli::commands::analyst::ApiArgs {
        url: etl.url.clone(),
        api_key: format!("{}:{}", key.public_key, key.secret_key),
    };
    let mut out = Vec::new();
    agenttrace_cli::commands::search::search(
        agenttrace_cli::commands::search::SearchArgs {
            query: "invoice_total".into(),
            results: "traces".into(),
            from: None,
            to: None,
            user_id: None,
            session_id: None,
            tags: None,
            environment: None,
            level: None,
            limit: 10,
            cursor: None,
            tree: false,
            json: true,
            api: api.clone(),
        },
        &mut out,
    )
    .await
    .unwrap();
    let page: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(page["data"][0]["trace"]["id"], "t-cli", "{page}");
    assert_eq!(page["data"][0]["matches"][0]["observation_id"], "o-cli");

    let mut out = Vec::new();
    agenttrace_cli::commands::search::trace(
        agenttrace_cli::commands::search::TraceArgs {
            id: "t-cli".into(),
            json: true,
            api,
        },
        &mut out,
    )
    .await
    .unwrap();
    let detail: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(detail["observations"][0]["id"], "o-cli");
}
