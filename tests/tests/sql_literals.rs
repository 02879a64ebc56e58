//! String values in the SQL the read routes build reach ClickHouse 18.16 exactly as sent: every
//! literal `analytics::conditions::literal` writes reads back byte for byte, and a read
//! filtered by such a value finds exactly its row.

use agenttrace_etl::clickhouse::quote;
use agenttrace_etl::control::api_keys;
use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::{Event, Scope, Timestamp};
use agenttrace_tests::TestEnv;
use serde_json::{Value, json};

/// Values that end, break or bend a string literal: quotes, backslashes, NUL, line breaks and
/// other control characters, multi-byte text, comment and wildcard characters.
const NASTY: &[&str] = &[
    "it's",
    "''",
    r"back\slash",
    r"ends in \",
    r"\'",
    r"\\'",
    "x' OR 1 = 1 --",
    "nul\0byte",
    "\u{0}7",
    "line\nbreak\r\n",
    "tab\there",
    "\u{8}\u{c}\u{7}\u{b}\u{1b}\u{7f}\u{1}F",
    r"\z \x41 \0",
    "é 日本語 🎉 Ünïcödé",
    "\u{85}\u{2028}\u{feff}",
    "/* -- # $$ `tick` \"double\" %_",
];

fn hex(value: &str) -> String {
    value.bytes().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn every_literal_reads_back_exactly() {
    let env = TestEnv::empty().await;
    let system = env.clickhouse.with_database("system");
    for value in NASTY {
        let quoted = quote(value);
        let got = system
            .query_text(&format!("SELECT hex({quoted}) FORMAT TabSeparated"))
            .await
            .unwrap_or_else(|e| panic!("{value:?} as {quoted}: {e}"));
        assert_eq!(got.trim(), hex(value), "{value:?} as {quoted}");
    }
}

fn event(kind: &str, body: Value) -> Event<'static> {
    let text = json!({
        "id": format!("e-{}", body["id"].as_str().unwrap()),
        "type": kind,
        "timestamp": Timestamp::now().to_string(),
        "body": body,
    });
    Event::parse(&text.to_string())
        .map(Event::into_static)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn reads_filtered_by_such_values_find_exactly_their_rows() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("literals").await;
    // One trace, observation and score per value, each named by it.
    let events: Vec<Event> = NASTY
        .iter()
        .enumerate()
        .flat_map(|(i, name)| {
            [
                event("trace", json!({"id": format!("t{i}"), "name": name})),
                event(
                    "observation",
                    json!({"id": format!("o{i}"), "trace_id": format!("t{i}"), "type": "span",
                           "name": name, "start_time": Timestamp::now()}),
                ),
                event(
                    "score",
                    json!({"id": format!("s{i}"), "trace_id": format!("t{i}"), "name": name, "value": 1.0}),
                ),
            ]
        })
        .collect();
    let response = etl.load(&project.key, &events).await;
    assert!(response.rejected.is_empty(), "{:?}", response.rejected);

    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, project.key.project_id, &[Scope::Read], None)
        .await
        .unwrap();
    let reader = format!("Bearer {}:{}", key.public_key, key.secret_key);
    let http = reqwest::Client::new();
    for (i, name) in NASTY.iter().enumerate() {
        for (route, prefix) in [("traces", "t"), ("observations", "o"), ("scores", "s")] {
            let response = http
                .get(format!("{}/v1/{route}", etl.url))
                .query(&[("name", name)])
                .header("authorization", &reader)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let page: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{route} named {name:?}: {page}");
            let ids: Vec<&str> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, [format!("{prefix}{i}")], "{route} named {name:?}");
            assert_eq!(page["data"][0]["name"], *name, "{route}");
        }
    }
}
