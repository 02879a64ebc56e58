//! Alerts on real PostgreSQL and ClickHouse 18.16, delivered to a webhook receiver on loopback
//! that checks every signature as the API documents it (`x-agenttrace-signature: t=…,v1=<hex
//! HMAC-SHA256 of "t.body">`) and a Slack-style receiver (`{text}`). A rule grouped by user
//! fires once per user crossing it, resolves when the user falls back, is retried while the
//! receiver answers 500 and delivered once it recovers; silences record without sending; a rule
//! that cannot be evaluated says so once; a run cut short at any point neither loses nor
//! doubles a notification.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenttrace_etl::control::alerts::{self, NewAlertChannel, NewAlertRule};
use agenttrace_etl::control::sealing::Sealer;
use agenttrace_etl::judge::provider::ModelClient;
use agenttrace_jobs::alerts::{Setup, run};
use agenttrace_schemas::Timestamp;
use agenttrace_tests::TestEnv;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// What the receiver does with the next requests.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    Fail,
    Hang,
}

#[derive(Default)]
struct Inbox {
    /// (delivery id, body) of every request answered 2xx, signatures checked.
    accepted: Vec<(String, Value)>,
    attempts: u64,
    bad_signatures: u64,
}

struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
    mode: Arc<Mutex<Mode>>,
    secret: Arc<Mutex<String>>,
}

/// What the receiver's handler shares with the test.
type Shared = (Arc<Mutex<Inbox>>, Arc<Mutex<Mode>>, Arc<Mutex<String>>);

async fn receive(State((inbox, mode, secret)): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let current = *mode.lock().unwrap();
    inbox.lock().unwrap().attempts += 1;
    match current {
        Mode::Fail => return StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return StatusCode::OK;
        }
        Mode::Accept => {}
    }
    let signature = headers
        .get("x-agenttrace-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (t, v1) = signature
        .split_once(',')
        .map(|(t, v)| (t.trim_start_matches("t="), v.trim_start_matches("v1=")))
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.lock().unwrap().as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&body);
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    let valid = hex::decode(v1).is_ok_and(|v| mac.verify_slice(&v).is_ok());
    if !(valid && fresh) {
        inbox.lock().unwrap().bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("x-agenttrace-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inbox.lock().unwrap().accepted.push((id, body));
    StatusCode::OK
}

async fn receiver(path: &str) -> Receiver {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let mode = Arc::new(Mutex::new(Mode::Fail));
    let secret = Arc::new(Mutex::new(String::new()));
    let app =
        Router::new()
            .route(path, post(receive))
            .with_state((inbox.clone(), mode.clone(), secret.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url,
        inbox,
        mode,
        secret,
    }
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn accepted(&self) -> Vec<(String, Value)> {
        self.inbox.lock().unwrap().accepted.clone()
    }
    fn attempts(&self) -> u64 {
        self.inbox.lock().unwrap().attempts
    }
}

/// A trace of `user` with one generation costing `cost`, `minutes_ago` (whole minutes, so a
/// later version of the same row keeps its time, as the ETL's merge keeps it); `version`
/// replaces an earlier one of the same id.
async fn spend(env: &TestEnv, project: Uuid, user: &str, cost: f64, minutes_ago: i64, version: u64) {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let minute = 60_000_000;
    let start = *START.get_or_init(|| Timestamp::now().as_micros() / minute);
    let at = (start - minutes_ago) * minute;
    let trace = format!("trace-{user}");
    env.clickhouse
        .execute(&format!(
            "INSERT INTO traces (project_id, id, timestamp_us, user_id, environment, version)
             VALUES ('{project}', '{trace}', {at}, '{user}', 'production', {version})"
        ))
        .await
        .unwrap();
    env.clickhouse
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, end_time_us, level, model, total_cost, version, api_key)
             SELECT '{project}', 'gen-{user}', '{trace}', 'generation', 'chat', {at}, {end}, 'default', 'gpt-5', toDecimal64({cost}, 12), {version}, '{key}'",
            end = at + 1_500_000,
            // Users u1 and u2 send with one API key, everyone else with another.
            key = if user <= "u2" { "pk-a" } else { "pk-b" },
        ))
        .await
        .unwrap();
}

async fn count(pg: &tokio_postgres::Client, sql: &str, rule: Uuid) -> i64 {
    pg.query_one(sql, &[&rule]).await.unwrap().get(0)
}

/// Makes every rule due for evaluation now (a rule over an hour is evaluated once a minute),
/// then runs the job.
async fn run_now(
    pg: &tokio_postgres::Client,
    clickhouse: &agenttrace_etl::clickhouse::ClickHouse,
    setup: &Setup,
) -> agenttrace_jobs::alerts::AlertsReport {
    pg.execute("UPDATE alert_rules SET last_evaluated_at = NULL", &[])
        .await
        .unwrap();
    run(pg, clickhouse, setup, Timestamp::now().as_micros())
        .await
        .unwrap()
}

/// Makes every pending delivery due now (the backoff is tested by its own unit test).
async fn due_now(pg: &tokio_postgres::Client) {
    pg.execute(
        "UPDATE alert_deliveries SET next_attempt_at = now() WHERE status = 'pending'",
        &[],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_grouped_rule_fires_per_user_retries_until_delivered_and_resolves() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let project = env.new_project("alerts").await;
    let sealer = Sealer::from_hex(KEY).unwrap();
    let setup = Setup {
        sealer: Some(sealer.clone()),
        client: ModelClient::new(true),
    };
    let hook = receiver("/hook").await;
    let slack = receiver("/services/T0/B0/x").await;
    let webhook = alerts::create_channel(
        &pg,
        Some(&sealer),
        true,
        project,
        &NewAlertChannel {
            name: "ops webhook".into(),
            kind: "webhook".into(),
            url: hook.url.clone(),
        },
    )
    .await
    .unwrap();
    assert!(webhook.secret.starts_with("at-whsec_") && webhook.secret.len() == 9 + 64);
    *hook.secret.lock().unwrap() = webhook.secret.clone();
    let slack_channel = alerts::create_channel(
        &pg,
        Some(&sealer),
        true,
        project,
        &NewAlertChannel {
            name: "ops slack".into(),
            kind: "slack".into(),
            url: slack.url.clone(),
        },
    )
    .await
    .unwrap();
    *slack.secret.lock().unwrap() = slack_channel.secret.clone();
    // Channels never show their URL or secret again.
    let listed = serde_json::to_string(&alerts::list_channels(&pg, project).await.unwrap()).unwrap();
    assert!(
        !listed.contains("/hook") && !listed.contains(&webhook.secret),
        "{listed}"
    );

    let rule = alerts::create_rule(
        &pg,
        project,
        &NewAlertRule {
            name: "a user spends over $1 an hour".into(),
            metric: "cost".into(),
            filters: serde_json::Map::new(),
            comparison: ">".into(),
            threshold: 1.0,
            window_minutes: 60,
            group_by: Some("user".into()),
            channels: vec![webhook.channel.id, slack_channel.channel.id],
        },
    )
    .await
    .unwrap();
    for (user, cost) in [("alice", 5.0), ("bob", 0.5), ("carol", 3.0)] {
        spend(&env, project, user, cost, 10, 1).await;
    }
    // Spend outside the window does not count.
    spend(&env, project, "old-dave", 50.0, 120, 1).await;

    // The receivers answer 500: both users fire once, nothing is delivered yet.
    let report = run_now(&pg, &env.clickhouse, &setup).await;
    assert_eq!(
        (report.fired, report.resolved, report.delivered),
        (2, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.retrying, 4);
    assert_eq!(hook.attempts() + slack.attempts(), 4);
    let firing = alerts::get_rule(&pg, project, rule.id).await.unwrap().firing;
    let groups: Vec<&str> = firing.iter().map(|f| f.group.as_str()).collect();
    assert_eq!(groups, ["alice", "carol"]);
    let pending = alerts::deliveries(&pg, project, None, 100).await.unwrap();
    assert!(
        pending
            .iter()
            .all(|d| d.status == "pending" && d.attempts == 1 && d.last_status == Some(500))
    );

    // Not due yet: the backoff holds them.
    let report = run_now(&pg, &env.clickhouse, &setup).await;
    assert_eq!((report.fired, report.delivered, report.retrying), (0, 0, 0));

    // Recovered: each delivered once, signed, and no new event for groups still firing.
    hook.set(Mode::Accept);
    slack.set(Mode::Accept);
    due_now(&pg).await;
    let report = run_now(&pg, &env.clickhouse, &setup).await;
    assert_eq!((report.fired, report.delivered), (0, 4), "{report:?}");
    let delivered = hook.accepted();
    assert_eq!(delivered.len(), 2);
    assert_eq!(hook.inbox.lock().unwrap().bad_signatures, 0);
    let by_group: BTreeMap<String, Value> = delivered
        .iter()
        .map(|(_, body)| (body["group"].as_str().unwrap().to_owned(), body.clone()))
        .collect();
    assert_eq!(by_group.keys().collect::<Vec<_>>(), ["alice", "carol"]);
    assert_eq!(by_group["alice"]["type"], "alert.firing");
    assert_eq!(by_group["alice"]["value"], json!(5.0));
    assert_eq!(by_group["alice"]["rule"]["groupBy"], "user");
    let texts: Vec<String> = slack
        .accepted()
        .iter()
        .map(|(_, body)| body["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("alice") && t.contains("5.000000")),
        "{texts:?}"
    );
    let again = run_now(&pg, &env.clickhouse, &setup).await;
    assert_eq!((again.fired, again.delivered), (0, 0));

    // Alice's generation is updated to cost nothing (a newer version): she resolves.
    spend(&env, project, "alice", 0.0, 10, 2).await;
    let report = run_now(&pg, &env.clickhouse, &setup).await;
    assert_eq!(
        (report.fired, report.resolved, report.delivered),
        (0, 1, 2),
        "{report:?}"
    );
    assert_eq!(hook.accepted().last().unwrap().1["type"], "alert.resolved");
    assert_eq!(hook.accepted().last().unwrap().1["group"], "alice");

    // Silenced: dave's crossing is recorded, nothing is sent.
    let silence = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    alerts::change_rule(
        &pg,
        project,
        rule.id,
        &alerts::AlertRuleChange {
            silenced_until: Some(silence),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    spend(&env, project, "dave", 9.0, 5, 1).await;
    let report = run_now(&pg, &env.clickhouse, &setup).await;
    assert_eq!((report.fired, report.delivered), (1, 0));
    let events = alerts::events(&pg, project, Some(rule.id), 10).await.unwrap();
    assert!(events[0].silenced && events[0].group == "dave");
    assert_eq!(hook.accepted().len(), 3);

    // A rule that cannot be evaluated is reported once, not every minute.
    pg.execute(
        "UPDATE alert_rules SET filters = '{\"colour\": \"red\"}' WHERE id = $1",
        &[&rule.id],
    )
    .await
    .unwrap();
    alerts::change_rule(
        &pg,
        project,
        rule.id,
        &alerts::AlertRuleChange {
            silenced_until: Some(String::new()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..2 {
        run_now(&pg, &env.clickhouse, &setup).await;
    }
    let errors = count(
        &pg,
        "SELECT count(*) FROM alert_events WHERE rule_id = $1 AND kind = 'error'",
        rule.id,
    )
    .await;
    assert_eq!(errors, 1);
    let shown = alerts::get_rule(&pg, project, rule.id).await.unwrap();
    assert!(shown.last_error.unwrap().contains("colour"));
    assert!(
        hook.accepted()
            .iter()
            .any(|(_, body)| body["type"] == "alert.error")
    );
}

#[tokio::test]
async fn runs_cut_short_at_any_point_neither_lose_nor_double_a_notification() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let project = env.new_project("alerts-cut").await;
    let sealer = Sealer::from_hex(KEY).unwrap();
    let hook = receiver("/hook").await;
    let channel = alerts::create_channel(
        &pg,
        Some(&sealer),
        true,
        project,
        &NewAlertChannel {
            name: "hook".into(),
            kind: "webhook".into(),
            url: hook.url.clone(),
        },
    )
    .await
    .unwrap();
    *hook.secret.lock().unwrap() = channel.secret.clone();
    let mut rules = Vec::new();
    for (name, group) in [
        ("per model", Some("model")),
        ("per user", Some("user")),
        ("per API key", Some("api_key")),
        ("overall", None),
    ] {
        rules.push(
            alerts::create_rule(
                &pg,
                project,
                &NewAlertRule {
                    name: name.into(),
                    metric: "cost".into(),
                    filters: serde_json::Map::new(),
                    comparison: ">".into(),
                    threshold: 1.0,
                    window_minutes: 60,
                    group_by: group.map(str::to_owned),
                    channels: vec![channel.channel.id],
                },
            )
            .await
            .unwrap(),
        );
    }
    for user in ["u1", "u2", "u3", "u4"] {
        spend(&env, project, user, 2.0, 3, 1).await;
    }
    // Cut short again and again: while rules are evaluated, and while a delivery hangs.
    hook.set(Mode::Hang);
    for attempt in 0..12u64 {
        let (pg_cut, clickhouse) = (env.postgres().await, env.clickhouse.clone());
        let setup = Setup {
            sealer: Some(sealer.clone()),
            client: ModelClient::new(true),
        };
        let task =
            tokio::spawn(
                async move { run(&pg_cut, &clickhouse, &setup, Timestamp::now().as_micros()).await },
            );
        tokio::time::sleep(Duration::from_millis(5 + attempt * 25)).await;
        task.abort();
        let _ = task.await;
        due_now(&pg).await;
    }
    hook.set(Mode::Accept);
    let setup = Setup {
        sealer: Some(sealer.clone()),
        client: ModelClient::new(true),
    };
    // Claims left by cut runs lapse; then everything is delivered.
    pg.execute(
        "UPDATE alert_deliveries SET next_attempt_at = now() WHERE status = 'pending'",
        &[],
    )
    .await
    .unwrap();
    run_now(&pg, &env.clickhouse, &setup).await;
    // One firing event per group crossing: model gpt-5, four users, two keys, the project
    // overall.
    for (rule, expected) in rules.iter().zip([1, 4, 2, 1]) {
        let fired = count(
            &pg,
            "SELECT count(*) FROM alert_events WHERE rule_id = $1 AND kind = 'firing'",
            rule.id,
        )
        .await;
        assert_eq!(fired, expected, "{}", rule.name);
    }
    let deliveries = alerts::deliveries(&pg, project, None, 100).await.unwrap();
    assert_eq!(deliveries.len(), 8);
    assert!(
        deliveries.iter().all(|d| d.status == "delivered"),
        "{deliveries:#?}"
    );
    // Each notification reached the receiver; a delivery whose acknowledgement was cut off
    // came again with the same id, which the receiver deduplicates on.
    let ids: BTreeSet<String> = hook.accepted().into_iter().map(|(id, _)| id).collect();
    let expected: BTreeSet<String> = deliveries.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn the_cli_adds_lists_silences_and_explains_mistakes() {
    let env = TestEnv::migrated().await;
    let project = env.new_project("alerts-cli").await.to_string();
    let added = env
        .cli(&[
            "alerts",
            "add",
            "--project",
            &project,
            "--name",
            "tokens per model",
            "--metric",
            "tokens",
            "--above",
            "100000",
            "--window",
            "30",
            "--group-by",
            "model",
            "--filter",
            "type=generation",
            "--json",
        ])
        .await
        .unwrap();
    let rule: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(rule["groupBy"], "model");
    assert_eq!(rule["filters"]["type"], "generation");
    let id = rule["id"].as_str().unwrap();
    let listed = env
        .cli(&["alerts", "list", "--project", &project, "--json"])
        .await
        .unwrap();
    assert!(listed.contains("tokens per model"));
    let silenced = env
        .cli(&["alerts", "silence", "--project", &project, id, "--minutes", "30"])
        .await
        .unwrap();
    assert!(silenced.contains("silenced until"), "{silenced}");
    // A channel from the CLI (a pipe gets JSON), its secret printed once, the URL never listed.
    let channel = env
        .cli(&[
            "alerts",
            "channel",
            "--project",
            &project,
            "--name",
            "slack",
            "--kind",
            "slack",
            "--url",
            "https://hooks.slack.com/services/T000/B000/cli-secret-path",
        ])
        .await
        .unwrap();
    let channel: Value = serde_json::from_str(&channel).unwrap();
    assert!(
        channel["secret"].as_str().unwrap().starts_with("at-whsec_"),
        "{channel}"
    );
    let channels = env
        .cli(&["alerts", "channels", "--project", &project])
        .await
        .unwrap();
    assert!(
        channels.contains("https://hooks.slack.com/") && !channels.contains("cli-secret-path"),
        "{channels}"
    );
    let mistake = env
        .cli_error(&[
            "alerts",
            "channel",
            "--project",
            &project,
            "--name",
            "plain",
            "--url",
            "http://example.com/hook",
        ])
        .await;
    assert!(mistake.contains("https"), "{mistake}");
    let mistake = env
        .cli_error(&[
            "alerts",
            "add",
            "--project",
            &project,
            "--name",
            "x",
            "--metric",
            "spend",
            "--above",
            "1",
        ])
        .await;
    assert!(
        mistake.contains("metric") && mistake.contains("cost"),
        "{mistake}"
    );
    let mistake = env
        .cli_error(&[
            "alerts",
            "add",
            "--project",
            &project,
            "--name",
            "y",
            "--metric",
            "cost",
            "--above",
            "1",
            "--group-by",
            "evaluator",
        ])
        .await;
    assert!(mistake.contains("groupBy"), "{mistake}");
}

#[tokio::test]
async fn hostile_group_values_and_too_many_groups_do_not_stop_the_job() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let project = env.new_project("alerts-hostile").await;
    let setup = Setup {
        sealer: Some(Sealer::from_hex(KEY).unwrap()),
        client: ModelClient::new(true),
    };
    let rule = |name: &str| NewAlertRule {
        name: name.into(),
        metric: "requests".into(),
        filters: serde_json::Map::new(),
        comparison: ">=".into(),
        threshold: 1.0,
        window_minutes: 60,
        group_by: Some("user".into()),
        channels: vec![],
    };
    // A user id PostgreSQL cannot store as text, and one longer than any key should be.
    spend(&env, project, "nul\0user", 1.0, 5, 1).await;
    spend(&env, project, &"long".repeat(2000), 1.0, 5, 1).await;
    let hostile = alerts::create_rule(&pg, project, &rule("per user"))
        .await
        .unwrap();
    run_now(&pg, &env.clickhouse, &setup).await;
    let firing = alerts::get_rule(&pg, project, hostile.id).await.unwrap().firing;
    assert_eq!(firing.len(), 2, "{firing:?}");
    assert!(firing.iter().any(|f| f.group == "nul\u{fffd}user"));
    assert!(firing.iter().all(|f| f.group.chars().count() <= 256));

    // More groups cross than a rule may track: reported once, and other rules still run.
    let at = Timestamp::now().as_micros() - 5 * 60_000_000;
    env.clickhouse
        .execute(&format!(
            "INSERT INTO traces (project_id, id, timestamp_us, user_id, environment, version)
             SELECT '{project}', concat('many-', toString(number)), {at}, concat('user-', toString(number)), 'production', 1
             FROM system.numbers LIMIT 1001"
        ))
        .await
        .unwrap();
    env.clickhouse
        .execute(&format!(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time_us, level, version)
             SELECT '{project}', concat('many-gen-', toString(number)), concat('many-', toString(number)), 'generation', 'chat', {at}, 'default', 1
             FROM system.numbers LIMIT 1001"
        ))
        .await
        .unwrap();
    let overall = alerts::create_rule(
        &pg,
        project,
        &NewAlertRule {
            group_by: None,
            ..rule("overall")
        },
    )
    .await
    .unwrap();
    for _ in 0..2 {
        run_now(&pg, &env.clickhouse, &setup).await;
    }
    let shown = alerts::get_rule(&pg, project, hostile.id).await.unwrap();
    assert!(
        shown.last_error.unwrap().contains("more groups cross"),
        "too many groups"
    );
    let errors = count(
        &pg,
        "SELECT count(*) FROM alert_events WHERE rule_id = $1 AND kind = 'error'",
        hostile.id,
    )
    .await;
    assert_eq!(errors, 1);
    let overall = alerts::get_rule(&pg, project, overall.id).await.unwrap();
    assert_eq!(overall.firing.len(), 1, "the other rule was evaluated");
}
