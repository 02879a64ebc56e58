//! Jobs on real PostgreSQL and ClickHouse 18.16: retention deletes exactly the rows past a
//! project's window; the daily-costs check passes on clean data and reports replay drift.

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::projects;
use agenttrace_etl::ingest::to_arrow::TableBatches;
use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::IntoStatic;
use agenttrace_tests::TestEnv;
use uuid::Uuid;

const DAY_US: i64 = 86_400 * 1_000_000;

async fn load(env: &TestEnv, project: Uuid, seed: u64, end: Timestamp) {
    let mut tables = TableBatches::new(&project.to_string(), "test");
    for event in SessionGenerator::new(seed).session(end, 3) {
        tables.push(&event, None).unwrap();
    }
    for (table, batch) in tables.finish("b", end).unwrap() {
        env.clickhouse.insert_batches(table, &[batch]).await.unwrap();
    }
}

/// Rows per table of a project, split into older and newer than `cutoff_us`.
async fn counts(env: &TestEnv, project: Uuid, cutoff_us: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, column) in [
        ("traces", "timestamp_us"),
        ("observations", "start_time_us"),
        ("scores", "timestamp_us"),
        ("file_operations", "timestamp_us"),
        ("terminal_commands", "timestamp_us"),
        ("git_links", "timestamp_us"),
        ("search_postings", "timestamp_us"),
    ] {
        let split = env
            .ch(&format!(
                "SELECT countIf({column} < {cutoff_us}), countIf({column} >= {cutoff_us}) FROM {table} \
                 WHERE project_id = '{project}'"
            ))
            .await;
        out.push((table.to_owned(), split));
    }
    out
}

#[tokio::test]
async fn retention_removes_exactly_the_rows_past_each_projects_window() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let organization = projects::ensure_organization(&pg, "retention").await.unwrap();
    let short = projects::create_project(&pg, organization, "keeps-7-days", Some(7))
        .await
        .unwrap()
        .id;
    let forever = projects::create_project(&pg, organization, "keeps-forever", None)
        .await
        .unwrap()
        .id;
    let now = Timestamp::now().as_micros();
    let (old, recent) = (
        Timestamp::from_micros(now - 10 * DAY_US),
        Timestamp::from_micros(now - DAY_US),
    );
    for (project, seed) in [(short, 1), (forever, 2)] {
        load(&env, project, seed, old).await;
        load(&env, project, seed + 10, recent).await;
    }
    pg.execute(
        "INSERT INTO accepted_batches (batch_id, project_id, edge_id, events, dead_lettered, accepted_at)
         VALUES ($1, $3, 'e', 1, 0, now() - interval '40 days'), ($2, $3, 'e', 1, 0, now())",
        &[&Uuid::now_v7(), &Uuid::now_v7(), &short],
    )
    .await
    .unwrap();

    let cutoff = now - 7 * DAY_US;
    let short_before = counts(&env, short, cutoff).await;
    let forever_before = counts(&env, forever, cutoff).await;
    let old_rows = |split: &String| split.split('\t').next().unwrap().parse::<u64>().unwrap();
    assert!(
        short_before.iter().map(|(_, split)| old_rows(split)).sum::<u64>() > 10,
        "{short_before:?}"
    );

    let said = env.cli(&["jobs", "run", "retention"]).await.unwrap();
    let deleted: u64 = short_before.iter().map(|(_, split)| old_rows(split)).sum();
    assert_eq!(
        said,
        format!("retention: 1 projects with retention, {deleted} rows deleted, 1 batch ids pruned\n")
    );

    let short_after = counts(&env, short, cutoff).await;
    for ((table, before), (_, after)) in short_before.iter().zip(&short_after) {
        let kept = before.split('\t').nth(1).unwrap();
        assert_eq!(
            after,
            &format!("0\t{kept}"),
            "{table}: old rows gone, recent rows kept"
        );
    }
    assert_eq!(
        counts(&env, forever, cutoff).await,
        forever_before,
        "another project's rows are untouched"
    );
    let ledger: i64 = pg
        .query_one("SELECT count(*) FROM accepted_batches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, 1);

    let status = env.cli(&["jobs", "status"]).await.unwrap();
    assert!(
        status.starts_with(&format!("retention\tsucceeded\tin 1\tout {deleted}")),
        "{status}"
    );
    // A second run finds nothing left to delete.
    let again = env.cli(&["jobs", "run", "retention"]).await.unwrap();
    assert!(again.contains(" 0 rows deleted"), "{again}");
    assert!(
        env.cli(&["jobs", "run", "nonsense"])
            .await
            .unwrap_err()
            .to_string()
            .contains("unknown job")
    );
}

#[tokio::test]
async fn the_daily_costs_check_passes_on_clean_data_and_reports_replay_drift() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("costs").await;
    let events = SessionGenerator::new(3).session(Timestamp::now(), 4);
    etl.load(&project.key, &events).await;

    let said = env.cli(&["jobs", "run", "daily_costs"]).await.unwrap();
    assert!(
        said.starts_with("daily_costs: ") && said.contains("groups match"),
        "{said}"
    );

    // The same events in a new batch (an agent retry): FINAL counts them once, the view twice.
    // (A replicated table on a cluster drops the identical block at insert: nothing drifts.)
    etl.load(&project.key, &events).await;
    if env.clickhouse.cluster().is_some() {
        let said = env.cli(&["jobs", "run", "daily_costs"]).await.unwrap();
        assert!(said.contains("groups match"), "{said}");
        return;
    }
    let error = env.cli_error(&["jobs", "run", "daily_costs"]).await;
    assert!(
        error.contains("daily_costs differs from observations in 1 of 1 groups"),
        "{error}"
    );
    assert!(error.contains(&project.key.project_id.to_string()), "{error}");
    let status = env.cli(&["jobs", "status"]).await.unwrap();
    assert!(
        status.starts_with("daily_costs\tfailed"),
        "failures are listed first: {status}"
    );
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_schedulers_started_at_once_run_each_tick_once() {
    use agenttrace_jobs::schedule::{ScheduledJob, run_scheduler};

    let env = TestEnv::migrated().await;
    let every_second = || vec![ScheduledJob::parse("daily_costs=* * * * * *").unwrap()];
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(run_scheduler(
        every_second(),
        env.database_url.clone(),
        env.clickhouse.clone(),
        async {
            let _ = stopped_a.await;
        },
    ));
    let b = tokio::spawn(run_scheduler(
        every_second(),
        env.database_url.clone(),
        env.clickhouse.clone(),
        async {
            let _ = stopped_b.await;
        },
    ));
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let _ = (stop_a.send(()), stop_b.send(()));
    let _ = (a.await, b.await);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let pg = env.postgres().await;
    let per_second: Vec<i64> = pg
        .query(
            "SELECT count(*) FROM job_runs WHERE job = 'daily_costs'
             GROUP BY date_trunc('second', started_at) ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(per_second.len() >= 2, "the schedule fired: {per_second:?}");
    assert!(
        per_second.iter().all(|runs| *runs == 1),
        "each tick ran once: {per_second:?}"
    );
    let succeeded: i64 = pg
        .query_one(
            "SELECT count(*) FROM job_runs WHERE job = 'daily_costs' AND status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(succeeded as usize, per_second.len());
}

#[tokio::test]
async fn evaluators_score_known_data_once_and_a_broken_one_fails_visibly() {
    use agenttrace_schemas::Event;

    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("evaluated").await;
    let other = env.create_project("not-evaluated").await;
    let t = Timestamp::now().as_micros() - 60_000_000;
    let at = |offset_ms: i64| Timestamp::from_micros(t + offset_ms * 1000).to_string();
    let observation = |id: &str, body: String| {
        Event::parse(&format!(
            r#"{{"id":"e-{id}","type":"observation","timestamp":"{}","body":{{"id":"{id}","trace_id":"t1","name":"n",{body}}}}}"#,
            at(0)
        ))
        .unwrap()
        .into_static()
    };
    let events = vec![
        observation(
            "g1",
            format!(
                r#""type":"generation","start_time":"{}","end_time":"{}","output":{{"content":"Done."}},"usage":{{"input_tokens":100,"output_tokens":20}},"cost":{{"total":0.01}}"#,
                at(0),
                at(500)
            ),
        ),
        observation(
            "g2",
            format!(
                r#""type":"generation","start_time":"{}","end_time":"{}","output":"TODO: {{broken","usage":{{"input_tokens":5000,"output_tokens":100}},"cost":{{"total":2.0}}"#,
                at(0),
                at(5000)
            ),
        ),
        observation(
            "t1",
            format!(
                r#""type":"tool_call","start_time":"{}","end_time":"{}","level":"warning","status_message":"exit code 1""#,
                at(0),
                at(100)
            ),
        ),
        observation(
            "t2",
            format!(
                r#""type":"tool_call","start_time":"{}","end_time":"{}""#,
                at(0),
                at(100)
            ),
        ),
    ];
    etl.load(&project.key, &events).await;
    // The job reads completed ingest seconds only.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let pg = env.postgres().await;
    let evaluators = [
        ("starts-with-brace", "regex", r#"{"pattern": "^\\{"}"#),
        ("says-done", "contains", r#"{"pattern": "Done"}"#),
        ("no-todo", "not_contains", r#"{"pattern": "TODO"}"#),
        ("json-output", "valid_json", "{}"),
        ("fast", "latency_threshold", r#"{"max_ms": 1000}"#),
        ("cheap", "cost_threshold", r#"{"max_usd": 1.0}"#),
        ("short", "token_threshold", r#"{"max_tokens": 1000}"#),
        ("tools-ok", "tool_call_failure", "{}"),
        ("broken", "regex", r#"{"pattern": "(["}"#),
    ];
    for (name, kind, config) in evaluators {
        let config: serde_json::Value = serde_json::from_str(config).unwrap();
        pg.execute(
            "INSERT INTO evaluators (project_id, name, kind, config) VALUES ($1, $2, $3, $4)",
            &[&project.key.project_id, &name, &kind, &config],
        )
        .await
        .unwrap();
    }
    // Another project's evaluator never scores this project's observations.
    pg.execute(
        "INSERT INTO evaluators (project_id, name, kind, config) VALUES ($1, 'elsewhere', 'contains', '{\"pattern\": \"Done\"}')",
        &[&other.key.project_id],
    )
    .await
    .unwrap();

    let failure = env.cli_error(&["jobs", "run", "evaluate"]).await;
    assert!(
        failure.contains("1 broken evaluator(s), the others wrote 18 scores"),
        "{failure}"
    );
    assert!(
        failure.contains("evaluator \"broken\"") && failure.contains("invalid regex"),
        "{failure}"
    );

    let verdicts = env
        .ch(&format!(
            "SELECT name, observation_id, value FROM scores FINAL WHERE project_id = '{}' ORDER BY name, observation_id",
            project.key.project_id
        ))
        .await;
    let expected = "cheap\tg1\t1\ncheap\tg2\t0\n\
                    fast\tg1\t1\nfast\tg2\t0\nfast\tt1\t1\nfast\tt2\t1\n\
                    json-output\tg1\t1\njson-output\tg2\t0\n\
                    no-todo\tg1\t1\nno-todo\tg2\t0\n\
                    says-done\tg1\t1\nsays-done\tg2\t0\n\
                    short\tg1\t1\nshort\tg2\t0\n\
                    starts-with-brace\tg1\t1\nstarts-with-brace\tg2\t0\n\
                    tools-ok\tt1\t0\ntools-ok\tt2\t1";
    assert_eq!(verdicts, expected);

    // The failed run kept the watermark: the next run evaluates the same window again, and
    // the re-written scores are not visible twice.
    env.cli(&["jobs", "run", "evaluate"]).await.unwrap_err();
    let count = |sql: &str| {
        let sql = sql.replace("{p}", &project.key.project_id.to_string());
        let env = &env;
        async move { env.ch(&sql).await }
    };
    assert_eq!(
        count("SELECT count() FROM scores FINAL WHERE project_id = '{p}'").await,
        "18"
    );
    // Stored twice until a merge on one server; a replicated table (on a cluster) drops the
    // identical second block at insert.
    let stored_copies = if env.clickhouse.cluster().is_some() {
        "18"
    } else {
        "36"
    };
    assert_eq!(
        count("SELECT count() FROM scores WHERE project_id = '{p}'").await,
        stored_copies
    );

    // Fixed: the run succeeds, the watermark moves, and a further run has nothing new.
    pg.execute("UPDATE evaluators SET active = false WHERE name = 'broken'", &[])
        .await
        .unwrap();
    let said = env.cli(&["jobs", "run", "evaluate"]).await.unwrap();
    assert_eq!(said, "evaluate: 4 observations evaluated, 18 scores written\n");
    let said = env.cli(&["jobs", "run", "evaluate"]).await.unwrap();
    assert_eq!(said, "evaluate: 0 observations evaluated, 0 scores written\n");

    // A late event (its own time ten minutes before everything else) is still evaluated: the
    // watermark is the ingest time, not the event time.
    let late = observation(
        "g3",
        format!(
            r#""type":"generation","start_time":"{}","end_time":"{}","output":{{"content":"Done."}},"usage":{{"input_tokens":1,"output_tokens":1}},"cost":{{"total":0.01}}"#,
            at(-600_000),
            at(-599_900)
        ),
    );
    etl.load(&project.key, &[late]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let said = env.cli(&["jobs", "run", "evaluate"]).await.unwrap();
    assert_eq!(said, "evaluate: 1 observations evaluated, 7 scores written\n");
    // 18 from the first window (once each, despite three runs over it) + 7 for the late one.
    assert_eq!(
        count("SELECT count() FROM scores FINAL WHERE project_id = '{p}'").await,
        "25"
    );
    etl.server.shutdown().await.unwrap();
}
