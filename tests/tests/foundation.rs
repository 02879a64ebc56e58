//! Foundation: migrations on PostgreSQL, ClickHouse 18.16 and chDB; deduplication; API keys.

use agenttrace_etl::control::api_keys::{self as keys, KeyRejection};
use agenttrace_etl::migrate::{MigrationSet, split_statements};
use agenttrace_schemas::Scope;
use agenttrace_tests::{TestEnv, chdb, repo_root};

const EVENT_TABLES: [&str; 8] = [
    "traces",
    "observations",
    "scores",
    "file_operations",
    "terminal_commands",
    "git_links",
    "metrics",
    "dead_letters",
];

#[tokio::test]
async fn migrations_apply_from_empty_then_again_as_a_no_op() {
    let env = TestEnv::empty().await;

    let first = env.cli(&["migrate"]).await.unwrap();
    assert!(first.contains("PostgreSQL: applied 0001_core.sql"), "{first}");
    assert!(
        first.contains(
            "ClickHouse: applied 0001_event_tables.sql, 0002_daily_costs.sql, 0003_experiment_rollups.sql, 0004_observation_ingest_time.sql"
        ),
        "{first}"
    );

    let second = env.cli(&["migrate"]).await.unwrap();
    assert_eq!(second, "PostgreSQL: up to date\nClickHouse: up to date\n");

    let pg = env.postgres().await;
    for table in [
        "projects",
        "api_keys",
        "evaluators",
        "model_prices",
        "job_runs",
        "experiments",
    ] {
        let exists: bool = pg
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(exists, "PostgreSQL table {table} missing");
    }
    let tables = env.ch("SHOW TABLES").await;
    for table in EVENT_TABLES.iter().chain(&["daily_costs", "daily_costs_mv"]) {
        assert!(
            tables.lines().any(|t| t == *table),
            "ClickHouse table {table} missing in {tables}"
        );
    }
    assert_eq!(
        env.ch("SELECT count() FROM schema_migrations FINAL").await,
        MigrationSet::embedded().unwrap().clickhouse.len().to_string()
    );
}

#[tokio::test]
async fn a_migration_interrupted_after_some_of_its_columns_were_added_runs_again_whole() {
    let env = TestEnv::empty().await;
    // Every migration before 0006 applied, then 0006 stopped after its first two ALTERs (a
    // server restarting, or on a cluster a shard out of reach).
    let dir = copy_migrations(&env, |target, name| target == "postgres" || name < "0006");
    env.cli(&["migrate", "--migrations-dir", dir.to_str().unwrap()])
        .await
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let interrupted = MigrationSet::embedded()
        .unwrap()
        .clickhouse
        .into_iter()
        .find(|m| m.name == "0006_project_name.sql")
        .unwrap();
    for statement in split_statements(&interrupted.sql).iter().take(2) {
        env.clickhouse.execute(statement).await.unwrap();
    }

    let rerun = env.cli(&["migrate"]).await.unwrap();
    assert!(
        rerun.contains("ClickHouse: applied 0006_project_name.sql, 0007_read_layout.sql"),
        "{rerun}"
    );
    assert_eq!(
        env.ch(
            "SELECT count() FROM system.columns WHERE database = currentDatabase() AND name = 'project_name'"
        )
        .await,
        "7"
    );
}

#[tokio::test]
async fn a_migration_edited_after_it_was_applied_is_refused() {
    let env = TestEnv::empty().await;
    let dir = copy_migrations(&env, |_, _| true);
    let dir_arg = dir.to_str().unwrap();
    env.cli(&["migrate", "--migrations-dir", dir_arg]).await.unwrap();

    let edited = dir.join("clickhouse/0002_daily_costs.sql");
    let sql = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(
        &edited,
        sql.replace("count() AS generations", "count() * 2 AS generations"),
    )
    .unwrap();
    let err = env.cli_error(&["migrate", "--migrations-dir", dir_arg]).await;
    assert!(
        err.contains("ClickHouse migration 0002_daily_costs.sql changed after it was applied"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn clickhouse_migrations_apply_on_chdb_the_modern_engine() {
    let mut statements = vec![
        "CREATE DATABASE agenttrace".to_owned(),
        "USE agenttrace".to_owned(),
    ];
    for migration in MigrationSet::embedded().unwrap().clickhouse {
        statements.extend(split_statements(&migration.sql));
    }
    statements.push(
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, level, \
         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_cost, cost_source, \
         metadata_keys, metadata_values, event_id, version) VALUES \
         ('p', 'o1', 't', 'generation', 'chat', 1764072000000001, 'default', 10, 5, 0, 0, 0.25, 'agent', [], [], 'e1', 1), \
         ('p', 'o1', 't', 'generation', 'chat', 1764072000000001, 'default', 10, 5, 0, 0, 0.25, 'agent', [], [], 'e1', 1)"
            .to_owned(),
    );
    // The read layout: the trace's key range, and the time index filled by its view.
    statements.push(
        "SELECT sorting_key, (SELECT count() FROM observations_by_time FINAL) FROM system.tables \
         WHERE database = 'agenttrace' AND name = 'observations'"
            .to_owned(),
    );
    statements.push("SELECT count(), sum(total_cost), any(start_time) FROM observations FINAL".to_owned());
    statements.push("SELECT name FROM system.tables WHERE database = 'agenttrace' ORDER BY name".to_owned());
    let outputs = chdb(&statements).unwrap_or_else(|e| panic!("chDB: {e}"));
    let n = outputs.len();
    assert_eq!(outputs[n - 3], "project_id, trace_id, id\t1\n");
    assert_eq!(outputs[n - 2], "1\t0.25\t2025-11-25 12:00:00\n");
    let read_indexes = ["traces_by_time", "session_traces", "observations_by_time"];
    for table in EVENT_TABLES
        .iter()
        .chain(&["daily_costs", "daily_costs_mv"])
        .chain(&read_indexes)
    {
        assert!(
            outputs[n - 1].lines().any(|t| t == *table),
            "{table} missing on chDB: {}",
            outputs[n - 1]
        );
    }
}

#[tokio::test]
async fn a_replayed_insert_of_the_same_ids_counts_once_with_final() {
    let env = TestEnv::migrated().await;
    let rows = [
        (
            "traces",
            "(project_id, id, timestamp_us, environment, tags, metadata_keys, metadata_values, event_id, version) \
                    VALUES ('p1', 't1', 1764072000000000, 'default', [], [], [], 'e1', 1)",
        ),
        (
            "scores",
            "(project_id, id, trace_id, timestamp_us, name, data_type, value, source, metadata_keys, metadata_values, event_id, version) \
                    VALUES ('p1', 's1', 't1', 1764072000000000, 'q', 'numeric', 0.5, 'api', [], [], 'e2', 1)",
        ),
        (
            "git_links",
            "(project_id, id, trace_id, timestamp_us, repository, commit_sha, files_changed, insertions, deletions, event_id, version) \
                       VALUES ('p1', 'g1', 't1', 1764072000000000, 'acme/app', 'abcdef1', 1, 2, 3, 'e3', 1)",
        ),
    ];
    for _replay in 0..2 {
        for (table, values) in rows {
            env.clickhouse
                .execute(&format!("INSERT INTO {table} {values}"))
                .await
                .unwrap();
        }
    }
    // The same id in another project is a different row.
    env.clickhouse
        .execute(
            "INSERT INTO traces (project_id, id, timestamp_us, environment, tags, metadata_keys, metadata_values, event_id, version) \
             VALUES ('p2', 't1', 1764072000000000, 'default', [], [], [], 'e1', 1)",
        )
        .await
        .unwrap();
    for (table, _) in rows {
        assert_eq!(
            env.ch(&format!(
                "SELECT count() FROM {table} FINAL WHERE project_id = 'p1'"
            ))
            .await,
            "1",
            "{table}"
        );
    }
    assert_eq!(env.ch("SELECT count() FROM traces FINAL").await, "2");
}

#[tokio::test]
async fn a_key_created_by_the_cli_verifies_and_a_revoked_one_does_not() {
    let env = TestEnv::migrated().await;
    let created = env
        .cli(&["project", "create", "checkout-agent", "--json"])
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let public_key = created["public_key"].as_str().unwrap();
    let secret_key = created["secret_key"].as_str().unwrap();

    let pg = env.postgres().await;
    let verified = keys::verify_key(&pg, public_key, secret_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        verified.project_id.to_string(),
        created["project_id"].as_str().unwrap()
    );
    assert_eq!(verified.scopes, vec![Scope::Ingest]);

    // Only a hash is stored: the secret appears nowhere in the database.
    let stored: i64 = pg
        .query_one(
            "SELECT count(*) FROM api_keys WHERE secret_hint = $1 OR encode(secret_hash, 'escape') LIKE $2",
            &[&secret_key, &format!("%{secret_key}%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);

    let wrong = format!("{}x", &secret_key[..secret_key.len() - 1]);
    assert_eq!(
        keys::verify_key(&pg, public_key, &wrong).await.unwrap(),
        Err(KeyRejection::WrongSecret)
    );
    assert_eq!(
        keys::verify_key(&pg, "pk-at-unknown", secret_key).await.unwrap(),
        Err(KeyRejection::UnknownPublicKey)
    );

    let revoked = env.cli(&["key", "revoke", public_key]).await.unwrap();
    assert_eq!(revoked, format!("revoked {public_key}\n"));
    assert_eq!(
        keys::verify_key(&pg, public_key, secret_key).await.unwrap(),
        Err(KeyRejection::Revoked)
    );

    // A second key for the same project, with more scopes, still works.
    let project = created["project_id"].as_str().unwrap();
    let second = env
        .cli(&[
            "key",
            "create",
            "--project",
            project,
            "--scope",
            "ingest",
            "--scope",
            "export",
            "--json",
        ])
        .await
        .unwrap();
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    let verified = keys::verify_key(
        &pg,
        second["public_key"].as_str().unwrap(),
        second["secret_key"].as_str().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(verified.scopes, vec![Scope::Ingest, Scope::Export]);
    let listing = env.cli(&["key", "list", "--project", project]).await.unwrap();
    assert_eq!(listing.lines().count(), 2);
    assert!(listing.contains("\trevoked\t"), "{listing}");
    assert!(!listing.contains(secret_key), "listing leaks a secret");
}

/// Copies the migrations that `keep(target, file name)` selects into a directory of the test's
/// own, for `migrate --migrations-dir`.
fn copy_migrations(env: &TestEnv, keep: impl Fn(&str, &str) -> bool) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(&env.name);
    for target in ["postgres", "clickhouse"] {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        for entry in std::fs::read_dir(repo_root().join("migrations").join(target)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if keep(target, name) {
                std::fs::copy(&path, dir.join(target).join(name)).unwrap();
            }
        }
    }
    dir
}
