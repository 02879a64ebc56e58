//! Redaction at the edge: known secrets sent through every ingest route (native, OTLP traces,
//! logs and metrics, Langfuse's ingestion and scores), valid events and invalid ones, then every
//! place anything persists is searched for them: the Durable Objects' SQLite files, every
//! ClickHouse table (dead letters included) and every PostgreSQL table. None may be found.

use std::path::Path;
use std::time::Duration;

use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use serde_json::json;

/// A distinct random tail, so that each run's secrets are its own.
fn tail(len: usize) -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .repeat(2)
        .chars()
        .take(len)
        .collect()
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_secret_sent_through_any_route_is_stored_anywhere() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let project = env
        .create_project_in(
            "sweep-org",
            "sweep",
            &[Scope::Ingest, Scope::Read, Scope::Export, Scope::Admin],
        )
        .await;
    let auth = project.basic_auth();
    let http = reqwest::Client::new();

    // Personal data too, with digests: the same email stays recognizable without being kept.
    let rules = json!({"detectors": ["llm_api_key", "cloud_key", "jwt", "bearer_token", "private_key",
                                     "url_password", "email"], "hash": true});
    let answer = http
        .put(format!(
            "{}/v1/projects/{}/redaction",
            etl.url, project.key.project_id
        ))
        .header("authorization", &auth)
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let edge = Edge::start(&etl.url, &[]).await;

    let openai = format!("sk-proj-{}", tail(40));
    let anthropic = format!("sk-ant-api03-{}", tail(60));
    let aws = format!("AKIA{}", tail(16).to_uppercase());
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{}.{}", tail(20), tail(30));
    let jwt_in_score = format!("eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOi{}.{}", tail(20), tail(30));
    let bearer = format!("tok{}", tail(30));
    let password = format!("pw{}", tail(20));
    let key_body = format!("MIIEpAIBAAKCAQEA{}", tail(40));
    let private_key = format!("-----BEGIN RSA PRIVATE KEY-----\n{key_body}\n-----END RSA PRIVATE KEY-----");
    let email = format!("jane.{}@example.com", tail(8));
    // No secret: the sweep must find it, or it searches nothing.
    let canary = format!("canary-{}", tail(12));
    let secrets = [
        &openai,
        &anthropic,
        &aws,
        &jwt,
        &jwt_in_score,
        &bearer,
        &password,
        &key_body,
        &email,
    ];

    let now = Timestamp::now();
    let nanos = (now.as_micros() * 1000).to_string();
    let sent = |path: &'static str, content_type: &'static str, body: String| {
        let request = http
            .post(format!("{}{path}", edge.url))
            .header("authorization", &auth)
            .header("content-type", content_type)
            .body(body);
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let redacted = answer
                .headers()
                .get("x-agenttrace-redacted")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
                .unwrap_or(0);
            let text = answer.text().await.unwrap();
            (status, redacted, text)
        }
    };

    // Native: a trace, a generation, a command whose output holds a private key, and an
    // invalid event (a dead letter) holding a JWT.
    let native = json!({"events": [
        {"id": "n1", "type": "trace", "timestamp": now, "body": {"id": "sweep-trace", "name": "fix",
            "user_id": email, "input": format!("use {openai} please {canary}")}},
        {"id": "n2", "type": "observation", "timestamp": now, "body": {"id": "sweep-gen", "trace_id": "sweep-trace",
            "type": "generation", "name": "llm", "start_time": now, "output": {"text": format!("AWS={aws}")}}},
        {"id": "n3", "type": "terminal_command", "timestamp": now, "body": {"id": "sweep-cmd", "trace_id": "sweep-trace",
            "command": "cat ~/.ssh/id_rsa", "stdout": private_key, "exit_code": 0}},
        {"id": "n4", "type": "observation", "timestamp": now, "body": {"id": "sweep-bad", "trace_id": "sweep-trace",
            "type": "generation", "name": format!("token {jwt}"), "usage": {"input_tokens": -1}}},
    ]});
    let (status, redacted, text) = sent("/v1/ingest", "application/json", native.to_string()).await;
    assert_eq!(status, 207, "{text}");
    assert_eq!(redacted, 5, "each secret once, the email once: {text}");

    // OTLP/JSON: a span's attributes, a log's body, a metric's attribute.
    let traces = json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "sweeper"}}]},
        "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "tool", "startTimeUnixNano": nanos, "endTimeUnixNano": nanos, "attributes": [
            {"key": "input.value", "value": {"stringValue": format!("curl -H 'Authorization: Bearer {bearer}'")}},
            {"key": "db.url", "value": {"stringValue": format!("postgres://app:{password}@db:5432/app")}}]}]}]}]});
    let (status, redacted, text) = sent("/v1/traces", "application/json", traces.to_string()).await;
    // The bearer token twice: the root span's input is its trace's input too.
    assert_eq!((status, redacted), (200, 3), "{text}");
    let logs = json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "sweeper"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": nanos,
            "body": {"stringValue": format!("read .env: ANTHROPIC_API_KEY={anthropic}")}}]}]}]});
    let (status, redacted, text) = sent("/v1/logs", "application/json", logs.to_string()).await;
    assert_eq!((status, redacted), (200, 1), "{text}");
    let metrics = json!({"resourceMetrics": [{"resource": {"attributes": []}, "scopeMetrics": [{"metrics": [
        {"name": "sweep.calls", "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
            {"asInt": "3", "timeUnixNano": nanos, "attributes": [
                {"key": "credentials", "value": {"stringValue": format!("aws {aws}")}}]}]}}]}]}]});
    let (status, redacted, text) = sent("/v1/metrics", "application/json", metrics.to_string()).await;
    assert_eq!((status, redacted), (200, 1), "{text}");

    // Langfuse: a trace, an event that cannot be read (kept raw as a dead letter), a score.
    let langfuse = json!({"batch": [
        {"id": "lf1", "type": "trace-create", "timestamp": now, "body": {"id": "sweep-lf", "name": "lf",
            "input": {"env": format!("OPENAI_API_KEY={openai}")}}},
        {"id": "lf2", "type": "span-create", "timestamp": now, "body": format!("not an object: {anthropic} {canary}")},
    ]});
    let (status, redacted, text) =
        sent("/api/public/ingestion", "application/json", langfuse.to_string()).await;
    assert_eq!((status, redacted), (207, 2), "{text}");
    let score = json!({"traceId": "sweep-lf", "name": "quality", "value": 1, "comment": format!("leaked {jwt_in_score}")});
    let (status, redacted, text) = sent("/api/public/scores", "application/json", score.to_string()).await;
    assert_eq!((status, redacted), (200, 1), "{text}");

    // Everything loaded: rows and dead letters.
    let p = project.key.project_id;
    for (sql, expected) in [
        (
            format!(
                "SELECT count() FROM traces FINAL WHERE project_id = '{p}' AND id IN ('sweep-trace', 'sweep-lf')"
            ),
            "2",
        ),
        (
            format!("SELECT count() FROM terminal_commands FINAL WHERE project_id = '{p}'"),
            "1",
        ),
        (
            format!("SELECT count() FROM scores FINAL WHERE project_id = '{p}'"),
            "1",
        ),
        (
            format!("SELECT count() > 0 FROM metrics WHERE project_id = '{p}'"),
            "1",
        ),
        (
            format!("SELECT count() >= 2 FROM observations FINAL WHERE project_id = '{p}'"),
            "1",
        ),
        (
            format!("SELECT count() FROM dead_letters WHERE project_id = '{p}'"),
            "2",
        ),
    ] {
        env.wait_until(&sql, expected, Duration::from_secs(60)).await;
    }
    let stored = env
        .ch(&format!(
            "SELECT input, ifNull(user_id, '') FROM traces FINAL WHERE project_id = '{p}' AND id = 'sweep-trace'"
        ))
        .await;
    assert!(stored.contains("use [REDACTED:llm_api_key:"), "{stored}");
    assert!(
        stored.contains("[REDACTED:email:"),
        "the user id is kept as its digest: {stored}"
    );

    // The sweep: every persisted byte, nowhere a secret.
    let mut found = Vec::new();
    let mut canaries = Vec::new();
    let edge_files = files(&edge.state_dir());
    assert!(
        edge_files.iter().any(|(file, _)| file.ends_with(".sqlite")),
        "the Durable Objects' SQLite is where the sweep looks: {:?}",
        edge_files.iter().map(|(file, _)| file).collect::<Vec<_>>()
    );
    for (file, bytes) in edge_files {
        for secret in secrets {
            if holds(&bytes, secret) {
                found.push(format!("{secret} in the edge's {file}"));
            }
        }
    }
    let tables = env
        .ch("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT IN ('View', 'MaterializedView')")
        .await;
    assert!(tables.lines().count() > 10, "{tables}");
    for table in tables.lines() {
        let rows = env.ch(&format!("SELECT * FROM `{table}`")).await;
        if rows.contains(&canary) {
            canaries.push(table.to_owned());
        }
        for secret in secrets {
            if rows.contains(secret.as_str()) {
                found.push(format!("{secret} in ClickHouse's {table}"));
            }
        }
    }
    let pg_tables = pg
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap();
    for row in pg_tables {
        let table: String = row.get(0);
        let rows = pg
            .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
            .await
            .unwrap();
        for row in rows {
            let text: String = row.get(0);
            for secret in secrets {
                if text.contains(secret.as_str()) {
                    found.push(format!("{secret} in PostgreSQL's {table}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "secrets persisted:\n{}", found.join("\n"));
    for table in ["traces", "dead_letters"] {
        assert!(
            canaries.iter().any(|t| t == table),
            "the canary is in {table}: {canaries:?}"
        );
    }

    // An export reads what is stored, so it holds none either.
    let export = http
        .get(format!("{}/v1/export/traces", etl.url))
        .header(
            "authorization",
            format!("Bearer {}:{}", project.key.public_key, project.secret_key),
        )
        .send()
        .await
        .unwrap();
    let status = export.status();
    let body = export.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(secrets.iter().all(|secret| !holds(&body, secret)));

    // A backup holds what is stored, so none either (PostgreSQL's compressed custom-format dump
    // read back as SQL, ClickHouse's Native files as they are).
    let dir = std::env::temp_dir().join(format!("agenttrace-sweep-backup-{}", uuid::Uuid::new_v4()));
    env.cli(&["backup", "--to", dir.to_str().unwrap()]).await.unwrap();
    let mut backup: Vec<(String, Vec<u8>)> = files(&dir)
        .into_iter()
        .filter(|(file, _)| !file.ends_with("postgres.dump"))
        .collect();
    let sql = tokio::process::Command::new("pg_restore")
        .arg("--file=-")
        .arg(dir.join("postgres.dump"))
        .output()
        .await
        .unwrap();
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    backup.push(("postgres.dump, as SQL".into(), sql.stdout));
    assert!(
        backup.iter().any(|(_, bytes)| holds(bytes, &canary)),
        "the canary is in the backup, so the sweep reads it"
    );
    for (file, bytes) in &backup {
        for secret in secrets {
            assert!(!holds(bytes, secret), "{secret} in the backup's {file}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
