//! On servers with row policies (modern ClickHouse, which this machine cannot run: Debian has
//! 18.16 only, and chDB has no access control), every read of a caller's carries the project in
//! the custom setting the policy reads, before `readonly=1`, so the query's own text can lift
//! neither. Checked against an HTTP server speaking ClickHouse's HTTP interface that records
//! each request's URL and answers every query with no rows.

use std::sync::{Arc, Mutex};

use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
use agenttrace_etl::control::api_keys;
use agenttrace_schemas::Scope;
use agenttrace_tests::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A ClickHouse HTTP endpoint that records request lines and answers 200 with an empty body.
async fn recording_clickhouse() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request: its head, then as many body bytes as it declares.
                    let head_end = loop {
                        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|line| {
                            line.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buffer.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..head_end + length);
                    record
                        .lock()
                        .unwrap()
                        .push(head.lines().next().unwrap_or_default().to_owned());
                    if socket
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn every_read_sends_the_project_for_the_row_policy_before_readonly() {
    let env = TestEnv::migrated().await;
    let (url, seen) = recording_clickhouse().await;
    let reader = ClickHouse::new(ClickHouseConfig {
        url,
        database: "agenttrace".into(),
        user: Some("agenttrace_reader".into()),
        password: Some("secret".into()),
        cluster: None,
        node_urls: Vec::new(),
    })
    .reader(None)
    .with_project_setting(Some("agenttrace_project"));
    let etl = env.start_etl(|config| config.reader = reader).await;
    let project = env.create_project("row-policy").await.key.project_id;
    let pg = env.postgres().await;
    let key = api_keys::create_key(&pg, project, &[Scope::Read], None)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    for path in [
        "/v1/traces",
        "/v1/sessions",
        "/v1/observations",
        "/v1/scores",
        "/v1/traces/t1",
    ] {
        http.get(format!("{}{path}", etl.url))
            .header(
                "authorization",
                format!("Bearer {}:{}", key.public_key, key.secret_key),
            )
            .send()
            .await
            .unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 5, "{seen:?}");
    let scoped = format!("agenttrace_project={project}&readonly=1");
    for request in &seen {
        let url = request.split(' ').nth(1).unwrap_or_default();
        assert!(
            url.ends_with(&scoped),
            "a read without its project last before readonly: {request}"
        );
    }
}
