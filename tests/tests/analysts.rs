//! Export and query APIs on real ClickHouse 18.16, read back with pyarrow, Polars and DuckDB.

use std::process::Command;

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::control::api_keys;
use agenttrace_schemas::Scope;
use agenttrace_schemas::{Event, Payload, Timestamp};
use agenttrace_tests::{TestEnv, repo_root};
use serde_json::Value;

struct Analyst {
    bearer: String,
}

async fn analyst_key(env: &TestEnv, project: uuid::Uuid, scopes: &[Scope]) -> Analyst {
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, project, scopes, Some("analyst"))
        .await
        .unwrap();
    Analyst {
        bearer: format!("Bearer {}:{}", key.public_key, key.secret_key),
    }
}

#[tokio::test]
async fn exports_read_back_equal_in_pyarrow_polars_and_duckdb_and_queries_stay_in_project() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let a = env.create_project("analytics-a").await;
    let b = env.create_project("analytics-b").await;
    let now = Timestamp::now();
    let sessions_a: Vec<Event> = {
        let mut generator = SessionGenerator::new(21);
        (0..3).flat_map(|_| generator.session(now, 4)).collect()
    };
    let sessions_b = SessionGenerator::new(22).session(now, 4);
    etl.load(&a.key, &sessions_a).await;
    // The same events again in a new batch: exports must not show them twice.
    etl.load(&a.key, &sessions_a).await;
    etl.load(&b.key, &sessions_b).await;

    let analyst = analyst_key(&env, a.key.project_id, &[Scope::Export, Scope::Query]).await;
    let http = reqwest::Client::new();
    let dir = std::env::temp_dir().join(&env.name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for format in ["arrow", "parquet"] {
        let response = http
            .get(format!("{}/v1/export/observations?format={format}", etl.url))
            .header("authorization", &analyst.bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{format}");
        let path = dir.join(format!("observations.{format}"));
        std::fs::write(&path, response.bytes().await.unwrap()).unwrap();
        files.push(path);
    }
    let output = Command::new("python3")
        .arg(repo_root().join("tests/python/read_exports.py"))
        .args(&files)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();

    let mut expected: Vec<_> = sessions_a
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Observation(o) => Some(o.clone()),
            _ => None,
        })
        .collect();
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    let n = expected.len();
    for key in [
        "arrow_rows",
        "parquet_rows",
        "parquet_footer_rows",
        "polars_rows",
        "polars_ipc_rows",
        "duckdb_parquet_rows",
        "duckdb_arrow_rows",
    ] {
        assert_eq!(seen[key], n, "{key}: {seen}");
    }
    assert_eq!(seen["arrow_footer"]["agenttrace.row_count"], n.to_string());
    assert_eq!(seen["parquet_metadata"]["agenttrace.row_count"], n.to_string());
    assert_eq!(seen["parquet_compression"], "ZSTD");
    assert_eq!(seen["parquet_equals_arrow"], true);
    assert_eq!(seen["arrow_schema"]["start_time"], "timestamp[us, tz=UTC]");
    assert_eq!(seen["arrow_schema"]["end_time"], "timestamp[us, tz=UTC]");
    assert_eq!(
        seen["polars_start_time_dtype"],
        "Datetime(time_unit='us', time_zone='UTC')"
    );
    let rows = seen["rows"].as_array().unwrap();
    for (row, observation) in rows.iter().zip(&expected) {
        assert_eq!(row["id"], observation.id.as_str());
        assert_eq!(row["name"], observation.name.as_str());
        assert_eq!(
            row["start_time_exact"],
            observation.start_time.to_string().replace('Z', "+00:00")
        );
        assert_eq!(row["end_time_is_null"], observation.end_time.is_none());
        assert_eq!(
            row["parent_observation_id"].as_str(),
            observation.parent_observation_id.as_deref()
        );
        assert_eq!(
            row["input"].as_str(),
            observation.input.as_ref().map(|j| j.as_str())
        );
        assert_eq!(row["model"].as_str(), observation.model.as_deref());
    }

    // Query: JSON answers come only from the caller's project, deduplicated.
    let query = |sql: &str, format: &str, bearer: &str| {
        http.post(format!("{}/v1/query", etl.url))
            .header("authorization", bearer)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "sql": sql, "format": format }).to_string())
            .send()
    };
    let response = query(
        "SELECT count() AS n FROM traces WHERE 1 = 1 OR project_id != ''",
        "json",
        &analyst.bearer,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["data"][0]["n"], "3", "{answer}");
    let response = query(
        "SELECT id, start_time_us FROM observations ORDER BY id",
        "arrow",
        &analyst.bearer,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..6], b"ARROW1", "an Arrow IPC file");

    let refused = query("SELECT * FROM system.tables", "json", &analyst.bearer)
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let refused: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(refused["error"], "query_rejected");
    assert!(
        refused["message"].as_str().unwrap().contains("system.tables"),
        "{refused}"
    );

    // A limit of the read profile is a 422 that names it, not a 503 to retry forever.
    let limited = query(
        "SELECT arrayJoin(range(1500000)) AS n FROM traces",
        "json",
        &analyst.bearer,
    )
    .await
    .unwrap();
    assert_eq!(limited.status(), 422);
    let limited: Value = serde_json::from_slice(&limited.bytes().await.unwrap()).unwrap();
    assert_eq!(limited["error"], "limit_exceeded", "{limited}");
    assert!(
        limited["message"].as_str().unwrap().contains("max_result_rows"),
        "{limited}"
    );

    // One caller's queries at once are bounded (two), so it cannot take every slot: the rest
    // are 429 with Retry-After at once, while another caller's query still runs.
    let slow = "SELECT count() FROM (SELECT arrayJoin(range(10000000)) AS n FROM traces) WHERE cityHash64(n) % 7 = 3";
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = query(slow, "json", &analyst.bearer);
        running.spawn(async move { request.await.unwrap() });
    }
    let other = analyst_key(&env, a.key.project_id, &[Scope::Query]).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let others = query("SELECT count() FROM traces", "json", &other.bearer)
        .await
        .unwrap();
    assert_eq!(others.status(), 200, "another caller is not held up");
    let (mut answered, mut turned_away) = (0, 0);
    while let Some(response) = running.join_next().await {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => answered += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                turned_away += 1;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(
        answered >= 2 && turned_away >= 1,
        "{answered} answered, {turned_away} turned away"
    );

    let bad_sql = query("SELECT no_such_column FROM traces", "json", &analyst.bearer)
        .await
        .unwrap();
    assert_eq!(bad_sql.status(), 400);
    assert!(bad_sql.text().await.unwrap().contains("no_such_column"));

    // Keys: the ingest-only key cannot export; a wrong secret is refused.
    let ingest_only = format!("Bearer {}:{}", a.key.public_key, a.secret_key);
    let forbidden = http
        .get(format!("{}/v1/export/traces", etl.url))
        .header("authorization", &ingest_only)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    assert!(forbidden.text().await.unwrap().contains("--scope export"));
    let wrong = format!("Bearer {}:sk-at-wrong", a.key.public_key);
    assert_eq!(query("SELECT 1", "json", &wrong).await.unwrap().status(), 401);
    let unknown = http
        .get(format!("{}/v1/export/users", etl.url))
        .header("authorization", &analyst.bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // A range holding no rows is a whole file with the table's columns and no rows (18.16
    // sends an empty result as no bytes at all); so is an empty query answer.
    for format in ["parquet", "arrow"] {
        let empty = http
            .get(format!(
                "{}/v1/export/traces?to=2000-01-01T00:00:00Z&format={format}",
                etl.url
            ))
            .header("authorization", &analyst.bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(empty.status(), 200, "{format}");
        let bytes = empty.bytes().await.unwrap();
        if format == "parquet" {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
            assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
            let schema = reader.schema().clone();
            assert!(schema.field_with_name("id").is_ok(), "{schema:?}");
            assert!(schema.field_with_name("timestamp").is_ok(), "{schema:?}");
        } else {
            assert!(bytes.len() > 64 && bytes.starts_with(b"ARROW1") && bytes.ends_with(b"ARROW1"));
        }
    }
    let empty_query = query("SELECT id, name FROM traces WHERE 0", "parquet", &analyst.bearer)
        .await
        .unwrap();
    assert_eq!(empty_query.status(), 200);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        empty_query.bytes().await.unwrap(),
    )
    .unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    assert_eq!(reader.schema().fields().len(), 2);

    // The CLI: files land whole, the footer's row count is checked and reported.
    let api_key = analyst.bearer.trim_start_matches("Bearer ").to_owned();
    let parquet = dir.join("cli.parquet");
    let said = env
        .cli(&[
            "export",
            "observations",
            "--format",
            "parquet",
            "-o",
            parquet.to_str().unwrap(),
            "--url",
            &etl.url,
            "--api-key",
            &api_key,
        ])
        .await
        .unwrap();
    assert!(said.starts_with(&format!("wrote {n} rows")), "{said}");
    let arrow = dir.join("cli.arrow");
    let said = env
        .cli(&[
            "query",
            "SELECT id, name FROM traces",
            "--format",
            "arrow",
            "-o",
            arrow.to_str().unwrap(),
            "--url",
            &etl.url,
            "--api-key",
            &api_key,
        ])
        .await
        .unwrap();
    assert!(said.starts_with("wrote 3 rows"), "{said}");
    let json = env
        .cli(&[
            "query",
            "SELECT count() AS n FROM git_links",
            "--url",
            &etl.url,
            "--api-key",
            &api_key,
        ])
        .await
        .unwrap();
    assert!(json.contains(r#"{"columns":["n"],"rows":[{"n":"3"}]}"#), "{json}");
    let refused = env
        .cli(&[
            "query",
            "SELECT * FROM system.one",
            "--url",
            &etl.url,
            "--api-key",
            &api_key,
        ])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("qualified table names"), "{refused}");

    std::fs::remove_dir_all(dir).unwrap();
    etl.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn experiment_rollups_export_with_the_newest_run_only() {
    use std::sync::Arc;

    use agenttrace_etl::clickhouse::Table;
    use arrow_array::builder::Decimal128Builder;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("rollups").await;
    let analyst = analyst_key(&env, project.key.project_id, &[Scope::Export]).await;

    // Two runs of the rollup job for the same experiment and score: the second replaces the first.
    for (version, mean) in [(1u64, 0.5), (2, 0.75)] {
        let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        let float = |v: Option<f64>| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
        let uint = |v: u64| Arc::new(UInt64Array::from(vec![v])) as ArrayRef;
        let mut cost = Decimal128Builder::new().with_precision_and_scale(18, 12).unwrap();
        cost.append_value(1_250_000_000_000);
        let columns: Vec<ArrayRef> = vec![
            text(&project.key.project_id.to_string()),
            text("exp-1/quality"),
            text("exp-1"),
            text("dataset-1"),
            text("quality"),
            Arc::new(Int64Array::from(vec![1_764_072_000_000_000 + version as i64])),
            uint(20),
            uint(20),
            float(Some(mean)),
            float(Some(0.8)),
            float(Some(0.99)),
            float(Some(0.9)),
            Arc::new(cost.finish()),
            float(Some(0.0625)),
            float(Some(850.0)),
            float(Some(2400.0)),
            uint(12_000),
            uint(3_400),
            Arc::new(StringArray::from(vec![None::<&str>])),
            uint(0),
            float(None),
            float(None),
            float(None),
            uint(version),
        ];
        let batch = RecordBatch::try_new(Table::ExperimentRollups.schema(), columns).unwrap();
        env.clickhouse
            .insert_batches(Table::ExperimentRollups, &[batch])
            .await
            .unwrap();
    }

    let response = reqwest::Client::new()
        .get(format!("{}/v1/export/experiment_rollups?format=parquet", etl.url))
        .header("authorization", &analyst.bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 1, "a re-run replaces the earlier rollup");
    let batch = &batches[0];
    assert_eq!(
        batch
            .column_by_name("mean")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        0.75
    );
    assert_eq!(
        batch
            .schema()
            .field_with_name("computed_at")
            .unwrap()
            .data_type()
            .to_string(),
        "Timestamp(µs, \"UTC\")"
    );
    etl.server.shutdown().await.unwrap();
}
