//! `agenttrace backup` and `restore`: a loaded system backed up and restored into empty
//! databases has the same rows (per-table counts and checksums, and PostgreSQL's records), and
//! takes replays of batches sent after the backup without showing anything twice.

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::clickhouse::backup::{base_tables, fingerprint};
use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::BatchStatus;
use agenttrace_tests::TestEnv;

#[tokio::test]
async fn a_backup_restores_into_empty_databases_with_equal_tables_and_takes_replays_once() {
    let source = TestEnv::migrated().await;
    let etl = source.start_etl(|_| {}).await;
    let project = source.create_project("backed-up").await;
    let mut generator = SessionGenerator::new(11);
    for _ in 0..4 {
        etl.load(&project.key, &generator.session(Timestamp::now(), 3))
            .await;
    }
    // A batch sent before the backup, and one after it: both are replayed after the restore.
    let before = etl
        .client
        .events_body(&project.key, &generator.session(Timestamp::now(), 2));
    let now_secs = Timestamp::now().as_micros() / 1_000_000;
    etl.client
        .post_body(before.clone(), now_secs, None)
        .await
        .unwrap()
        .response()
        .unwrap();

    let dir = std::env::temp_dir().join(format!("agenttrace-backup-{}", uuid::Uuid::new_v4()));
    let printed = source
        .cli(&["backup", "--to", dir.to_str().unwrap()])
        .await
        .unwrap();
    assert!(printed.contains("backed up to"), "{printed}");
    let after = etl
        .client
        .events_body(&project.key, &generator.session(Timestamp::now(), 2));
    etl.client
        .post_body(after.clone(), now_secs, None)
        .await
        .unwrap()
        .response()
        .unwrap();

    // A damaged file is refused before anything is restored.
    let damaged = TestEnv::empty().await;
    let copy = std::env::temp_dir().join(format!("agenttrace-damaged-{}", uuid::Uuid::new_v4()));
    copy_dir(&dir, &copy);
    let victim = std::fs::read_dir(copy.join("clickhouse"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let refused = damaged
        .cli_error(&["restore", "--from", copy.to_str().unwrap()])
        .await;
    assert!(refused.contains("is damaged"), "{refused}");

    let target = TestEnv::empty().await;
    let printed = target
        .cli(&["restore", "--from", dir.to_str().unwrap()])
        .await
        .unwrap();
    assert!(printed.contains("restored the backup"), "{printed}");
    // Restoring again over what is there is refused.
    let again = target
        .cli_error(&["restore", "--from", dir.to_str().unwrap()])
        .await;
    assert!(again.contains("restore into an empty"), "{again}");

    let backed_up: Vec<String> =
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("manifest.json")).unwrap())
            .unwrap()["clickhouse"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["table"].as_str().unwrap().to_owned())
            .collect();
    let tables = base_tables(&source.clickhouse).await.unwrap();
    assert_eq!(backed_up, tables);
    assert!(tables.contains(&"observations".to_owned()) && !tables.contains(&"traces_by_time".to_owned()));
    // The search index is written through a view over a table that stores nothing: it is data.
    assert!(tables.contains(&"search_postings".to_owned()), "{tables:?}");
    let restored_etl = target.start_etl(|_| {}).await;
    let (before_rows, _) = fingerprint(&target.clickhouse, "observations").await.unwrap();
    assert!(before_rows > 0);
    // The derived tables were refilled by the views as the rows were restored.
    for (derived, source_table) in [
        ("observations_by_time", "observations"),
        ("traces_by_time", "traces"),
    ] {
        assert_eq!(
            target.ch(&format!("SELECT count() FROM {derived} FINAL")).await,
            target
                .ch(&format!("SELECT count() FROM {source_table} FINAL"))
                .await,
            "{derived}"
        );
    }
    // PostgreSQL's records came back: the project, its key, the batch ledger.
    let pg_source = source.postgres().await;
    let pg_target = target.postgres().await;
    for table in ["projects", "api_keys", "accepted_batches"] {
        let count = |row: tokio_postgres::Row| row.get::<_, i64>(0);
        let sql = format!("SELECT count(*) FROM {table}");
        let at_backup = count(pg_target.query_one(&sql, &[]).await.unwrap());
        assert!(at_backup > 0, "{table}");
        if table != "accepted_batches" {
            assert_eq!(
                at_backup,
                count(pg_source.query_one(&sql, &[]).await.unwrap()),
                "{table}"
            );
        }
    }

    // Replays: the batch from before the backup is already accepted; the one sent after it
    // loads; neither shows a row twice.
    let replay_before = restored_etl
        .client
        .post_body(before, now_secs, None)
        .await
        .unwrap()
        .response()
        .unwrap();
    assert_eq!(replay_before.status, BatchStatus::AlreadyAccepted);
    let replay_after = restored_etl
        .client
        .post_body(after, now_secs, None)
        .await
        .unwrap()
        .response()
        .unwrap();
    assert_eq!(replay_after.status, BatchStatus::Accepted);
    let p = project.key.project_id;
    for table in ["observations", "traces", "scores"] {
        assert_eq!(
            target
                .ch(&format!(
                    "SELECT count() FROM {table} FINAL WHERE project_id = '{p}'"
                ))
                .await,
            source
                .ch(&format!(
                    "SELECT count() FROM {table} FINAL WHERE project_id = '{p}'"
                ))
                .await,
            "{table} after the replays"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&copy).ok();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
