//! `agenttrace doctor`: checks a deployment the way the ETL will need it — both databases
//! reachable and of a supported version, every migration applied, the ClickHouse user callers'
//! reads run as signing in with its limits, the clocks in step, the provider-key encryption key valid, the ETL and the
//! edge answering — and says what is wrong and what to do. A table on a terminal, JSON for a
//! pipe; it fails (exit 1) when any check fails.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
use agenttrace_etl::migrate::{MigrationSet, pending};
use agenttrace_etl::postgres;
use clap::Args;
use serde::Serialize;

use crate::DatabaseArgs;
use crate::commands::output::json_wanted;

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// The ETL to check (`GET /readyz`).
    #[arg(long, env = "AGENTTRACE_URL")]
    pub etl_url: Option<String>,
    /// The edge to check (`GET /healthz`).
    #[arg(long)]
    pub edge_url: Option<String>,
    /// A PEM CA certificate to trust besides the public ones, for an ETL serving a certificate
    /// of a private CA (`agenttrace serve --tls-cert`).
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print JSON even on a terminal; a pipe always gets JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(check: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
    }
}

/// How long any one check waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Skew past which signed batches start to be refused (the edge signs, the ETL checks within
/// ±300 s) is a failure; past a couple of seconds, time windows of reads and jobs drift.
const SKEW_WARN_S: f64 = 2.0;
const SKEW_FAIL_S: f64 = 60.0;

/// A clock `skew` seconds off this machine's.
pub fn judge_skew(skew: f64) -> Status {
    match skew.abs() {
        s if s > SKEW_FAIL_S => Status::Fail,
        s if s > SKEW_WARN_S => Status::Warn,
        _ => Status::Ok,
    }
}

/// Major and minor of a version string (`15.19 (Debian …)`, `18.16.1`).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    Some((
        parts.next()?.parse().ok()?,
        parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
    ))
}

/// Ok when `version` is at least `oldest` (major, minor), else a failure naming what is needed.
fn version_check(name: &'static str, product: &str, version: &str, oldest: (u32, u32), shown: &str) -> Check {
    if major_minor(version).is_some_and(|v| v >= oldest) {
        check(name, Status::Ok, format!("{product} {version}"))
    } else {
        check(
            name,
            Status::Fail,
            format!("{product} {version}: AgentTrace needs {shown} or newer"),
        )
    }
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn timed<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer in {} s", TIMEOUT.as_secs()))?
}

/// Every check, in order.
pub async fn checks(args: &DoctorArgs, databases: &DatabaseArgs) -> Vec<Check> {
    let mut out = Vec::new();
    let set = MigrationSet::embedded();

    let pg = timed(async { Ok(postgres::connect(&databases.database_url).await?) }).await;
    let pg = match pg {
        Ok(pg) => {
            let version = pg
                .query_one("SHOW server_version", &[])
                .await
                .map(|row| row.get::<_, String>(0))
                .unwrap_or_default();
            out.push(version_check("postgresql", "PostgreSQL", &version, (14, 0), "14"));
            Some(pg)
        }
        Err(e) => {
            out.push(check(
                "postgresql",
                Status::Fail,
                format!(
                    "cannot reach {}: {e:#}; check DATABASE_URL",
                    crate::redact(&databases.database_url)
                ),
            ));
            None
        }
    };

    let clickhouse = databases.clickhouse();
    let ch_version = timed(async { Ok(clickhouse.version().await?) }).await;
    let ch_up = match ch_version {
        Ok(version) => {
            out.push(version_check(
                "clickhouse",
                "ClickHouse",
                version.trim(),
                (18, 16),
                "18.16",
            ));
            true
        }
        Err(e) => {
            out.push(check(
                "clickhouse",
                Status::Fail,
                format!(
                    "cannot reach {}: {e:#}; check CLICKHOUSE_URL and its user",
                    databases.clickhouse_url
                ),
            ));
            false
        }
    };

    match (&pg, ch_up, set) {
        (Some(pg), true, Ok(set)) => match timed(async { Ok(pending(pg, &clickhouse, &set).await?) }).await {
            Ok(report) if report.postgres.is_empty() && report.clickhouse.is_empty() => out.push(check(
                "migrations",
                Status::Ok,
                format!(
                    "up to date ({} PostgreSQL, {} ClickHouse)",
                    set.postgres.len(),
                    set.clickhouse.len()
                ),
            )),
            Ok(report) => {
                let names: Vec<String> = report
                    .postgres
                    .iter()
                    .chain(&report.clickhouse)
                    .cloned()
                    .collect();
                out.push(check(
                    "migrations",
                    Status::Fail,
                    format!(
                        "{} not applied ({}): run `agenttrace migrate`",
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
            Err(e) => out.push(check("migrations", Status::Fail, format!("{e:#}"))),
        },
        (_, _, Err(e)) => out.push(check(
            "migrations",
            Status::Fail,
            format!("the binary's migrations: {e:#}"),
        )),
        _ => out.push(check(
            "migrations",
            Status::Fail,
            "not checked: a database is unreachable",
        )),
    }

    out.push(reader_check(databases).await);

    let mut skews = Vec::new();
    if let Some(pg) = &pg
        && let Ok(row) = pg
            .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
            .await
    {
        skews.push(("PostgreSQL", row.get::<_, f64>(0) - now_s()));
    }
    if ch_up
        && let Ok(text) = clickhouse
            .query_on_server("SELECT toUnixTimestamp(now()) FORMAT TabSeparated")
            .await
        && let Ok(seconds) = text.trim().parse::<f64>()
    {
        // ClickHouse's now() is whole seconds: allow the one it truncated.
        skews.push(("ClickHouse", seconds + 0.5 - now_s()));
    }
    if skews.is_empty() {
        out.push(check("clocks", Status::Fail, "not checked: no database answered"));
    } else {
        let worst = skews
            .iter()
            .map(|(_, skew)| judge_skew(*skew))
            .max_by_key(|status| *status as u8)
            .unwrap_or(Status::Ok);
        let detail: Vec<String> = skews
            .iter()
            .map(|(name, skew)| format!("{name} {skew:+.1} s"))
            .collect();
        let advice = match worst {
            Status::Ok => String::new(),
            _ => format!(
                "; run NTP on every host (signed batches are refused past ±300 s, warned past ±{SKEW_WARN_S} s)"
            ),
        };
        out.push(check(
            "clocks",
            worst,
            format!("against this host: {}{advice}", detail.join(", ")),
        ));
    }

    out.push(match databases.sealer() {
        Ok(Some(_)) => check(
            "encryption key",
            Status::Ok,
            "valid (provider keys can be sealed)",
        ),
        Ok(None) => check(
            "encryption key",
            Status::Warn,
            "AGENTTRACE_ENCRYPTION_KEY unset: model connections (LLM judges) cannot be stored",
        ),
        Err(e) => check(
            "encryption key",
            Status::Fail,
            format!("AGENTTRACE_ENCRYPTION_KEY: {e:#}; it must be 64 hex characters"),
        ),
    });

    let client = http_client(args.ca_cert.as_deref());
    for (name, url, path) in [
        ("etl", &args.etl_url, "/readyz"),
        ("edge", &args.edge_url, "/healthz"),
    ] {
        let Some(url) = url else { continue };
        let target = format!("{}{path}", url.trim_end_matches('/'));
        let client = match &client {
            Ok(client) => client,
            Err(e) => {
                out.push(check(name, Status::Fail, e.clone()));
                continue;
            }
        };
        let answer = timed(async { Ok(client.get(&target).send().await?) }).await;
        out.push(match answer {
            Ok(response) if response.status().is_success() => check(
                name,
                Status::Ok,
                format!("{target} answers {}", response.status()),
            ),
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                check(
                    name,
                    Status::Fail,
                    format!("{target} answers {status}: {}", body.trim()),
                )
            }
            Err(e) => check(name, Status::Fail, format!("cannot reach {target}: {e:#}")),
        });
    }
    out
}

/// The client the services are checked with: trusting `ca_cert` too, when given.
fn http_client(ca_cert: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let Some(path) = ca_cert else {
        return Ok(reqwest::Client::new());
    };
    let named = |e: &dyn std::fmt::Display| format!("--ca-cert {}: {e}", path.display());
    let pem = std::fs::read(path).map_err(|e| named(&e))?;
    let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| named(&e))?;
    reqwest::Client::builder()
        .add_root_certificate(certificate)
        .build()
        .map_err(|e| named(&e))
}

/// The ClickHouse user callers' reads run as: it must sign in, with its profile's limits.
async fn reader_check(databases: &DatabaseArgs) -> Check {
    let Some(user) = databases.clickhouse_reader_user.clone().filter(|u| !u.is_empty()) else {
        return check(
            "clickhouse reader",
            Status::Warn,
            "CLICKHOUSE_READER_USER unset: callers' reads use the main user; create a read-only one (docs/security.md)",
        );
    };
    let reader = ClickHouse::new(ClickHouseConfig {
        url: databases.clickhouse_url.clone(),
        database: databases.clickhouse_database.clone(),
        user: Some(user.clone()),
        password: databases.clickhouse_reader_password.clone(),
        cluster: None,
        node_urls: Vec::new(),
    });
    // The profile keeps readonly=0 on purpose (18.16 refuses settings on the URL under a
    // read-only profile; the service sends readonly=1 with every read): what it must carry is
    // the limits.
    let limits = timed(async {
        Ok(reader
            .query_on_server(
                "SELECT name, value FROM system.settings \
                 WHERE name IN ('max_memory_usage', 'max_execution_time') FORMAT TabSeparated",
            )
            .await?)
    })
    .await;
    match limits {
        Ok(text) => {
            let unset: Vec<&str> = text
                .lines()
                .filter_map(|line| line.split_once('\t'))
                .filter(|(_, value)| value.trim() == "0")
                .map(|(name, _)| name)
                .collect();
            if unset.is_empty() {
                check(
                    "clickhouse reader",
                    Status::Ok,
                    format!(
                        "{user} signs in, with its profile's limits ({})",
                        text.trim().replace(['\t', '\n'], " ")
                    ),
                )
            } else {
                check(
                    "clickhouse reader",
                    Status::Warn,
                    format!(
                        "{user} has no {}: give it the reader profile (docs/security.md)",
                        unset.join(" or ")
                    ),
                )
            }
        }
        Err(e) => check(
            "clickhouse reader",
            Status::Fail,
            format!(
                "{user} cannot sign in: {e:#}; check CLICKHOUSE_READER_USER and CLICKHOUSE_READER_PASSWORD"
            ),
        ),
    }
}

pub async fn doctor(args: DoctorArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let checks = checks(&args, databases).await;
    if json_wanted(args.json) {
        writeln!(out, "{}", serde_json::to_string(&checks)?)?;
    } else {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
            .set_header(["check", "status", "detail"]);
        for c in &checks {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            table.add_row([c.check, status, &c.detail]);
        }
        writeln!(out, "{table}")?;
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.check)
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} check(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_judged_against_the_signature_window() {
        assert_eq!(judge_skew(0.4), Status::Ok);
        assert_eq!(judge_skew(-3.0), Status::Warn);
        assert_eq!(judge_skew(120.0), Status::Fail);
    }

    #[test]
    fn versions_read_as_people_write_them() {
        assert_eq!(major_minor("15.19 (Debian 15.19-0+deb12u1)"), Some((15, 19)));
        assert_eq!(major_minor("18.16.1"), Some((18, 16)));
        assert_eq!(major_minor("25.3.2.1"), Some((25, 3)));
    }
}
