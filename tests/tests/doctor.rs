//! `agenttrace doctor` against real PostgreSQL, ClickHouse and a running ETL: a sound setup
//! passes, and each kind of broken setting it checks is reported, naming what to fix.

use agenttrace_cli::{Cli, DatabaseArgs};
use agenttrace_tests::TestEnv;
use clap::Parser;
use serde_json::Value;

/// Runs `agenttrace doctor --json` with `databases`; its checks by name, and whether it failed.
async fn doctor(databases: DatabaseArgs, extra: &[&str]) -> (Vec<(String, String, String)>, bool) {
    let argv: Vec<&str> = ["agenttrace", "doctor", "--json"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let mut cli = Cli::try_parse_from(argv).unwrap();
    cli.databases = databases;
    let mut out = Vec::new();
    let failed = agenttrace_cli::run(cli, &mut out).await.is_err();
    let checks: Vec<Value> = serde_json::from_slice(&out).unwrap();
    let checks = checks
        .into_iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (checks, failed)
}

/// Runs doctor with `databases`, which must fail, and check `name` with it: every check, and
/// that one's detail.
async fn failing(databases: DatabaseArgs, name: &str) -> (Vec<(String, String, String)>, String) {
    let (checks, failed) = doctor(databases, &[]).await;
    assert!(failed, "{checks:?}");
    let (status, detail) = find(&checks, name);
    assert_eq!(status, "fail", "{name}: {checks:?}");
    let detail = detail.to_owned();
    (checks, detail)
}

fn find<'a>(checks: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    let (_, status, detail) = checks
        .iter()
        .find(|(check, _, _)| check == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"));
    (status, detail)
}

#[tokio::test]
async fn a_sound_setup_passes_and_each_broken_setting_is_named() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;

    let (checks, failed) = doctor(env.database_args(), &["--etl-url", &etl.url]).await;
    assert!(!failed, "{checks:?}");
    for name in [
        "postgresql",
        "clickhouse",
        "migrations",
        "clocks",
        "encryption key",
        "etl",
    ] {
        assert_eq!(find(&checks, name).0, "ok", "{name}: {checks:?}");
    }
    assert!(
        find(&checks, "migrations").1.starts_with("up to date"),
        "{checks:?}"
    );

    // ClickHouse unreachable: named, and the migrations left unchecked.
    let (checks, detail) = failing(
        DatabaseArgs {
            clickhouse_url: "http://127.0.0.1:1".into(),
            ..env.database_args()
        },
        "clickhouse",
    )
    .await;
    assert!(detail.contains("CLICKHOUSE_URL"), "{detail}");
    assert_eq!(find(&checks, "migrations").0, "fail");

    // PostgreSQL unreachable, its password never printed.
    let (_, detail) = failing(
        DatabaseArgs {
            database_url: "postgres://app:s3cret@127.0.0.1:1/agenttrace".into(),
            ..env.database_args()
        },
        "postgresql",
    )
    .await;
    assert!(
        detail.contains("DATABASE_URL") && !detail.contains("s3cret"),
        "{detail}"
    );

    // Databases nobody migrated: every migration named as pending.
    let fresh = TestEnv::empty().await;
    let (_, detail) = failing(fresh.database_args(), "migrations").await;
    assert!(
        detail.contains("0001_")
            && detail.contains("0014_search_terms.sql")
            && detail.contains("agenttrace migrate"),
        "{detail}"
    );

    // A malformed encryption key.
    let (_, detail) = failing(
        DatabaseArgs {
            encryption_key: Some("not-hex".into()),
            ..env.database_args()
        },
        "encryption key",
    )
    .await;
    assert!(detail.contains("AGENTTRACE_ENCRYPTION_KEY"), "{detail}");

    // The reader user with a wrong password; and, where the stack made one, the right one.
    let (_, detail) = failing(
        DatabaseArgs {
            clickhouse_reader_user: Some("agenttrace_reader".into()),
            clickhouse_reader_password: Some("wrong".into()),
            ..env.database_args()
        },
        "clickhouse reader",
    )
    .await;
    assert!(detail.contains("CLICKHOUSE_READER_PASSWORD"), "{detail}");
    if let (Ok(user), Ok(password)) = (
        std::env::var("CLICKHOUSE_READER_USER"),
        std::env::var("CLICKHOUSE_READER_PASSWORD"),
    ) {
        let (checks, _) = doctor(
            DatabaseArgs {
                clickhouse_reader_user: Some(user),
                clickhouse_reader_password: Some(password),
                ..env.database_args()
            },
            &[],
        )
        .await;
        let (status, detail) = find(&checks, "clickhouse reader");
        assert_eq!(status, "ok", "{detail}");
        assert!(detail.contains("limits"), "{detail}");
    }

    // An ETL that does not answer, and an edge that is not there.
    let (checks, failed) = doctor(
        env.database_args(),
        &[
            "--etl-url",
            "http://127.0.0.1:1",
            "--edge-url",
            "http://127.0.0.1:1",
        ],
    )
    .await;
    assert!(failed);
    assert_eq!(find(&checks, "etl").0, "fail");
    assert_eq!(find(&checks, "edge").0, "fail");
    etl.server.shutdown().await.unwrap();
}
