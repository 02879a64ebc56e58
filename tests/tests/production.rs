//! The production-shaped run (`scripts/prod.sh`, the steps of `docs/deploy.md`): two ETL
//! replicas serving HTTPS with a local CA's certificate, the edge in workerd forwarding to both,
//! the ClickHouse reader user, the scheduler. The demo agent sends through the edge while both
//! replicas are rolled one at a time, as an upgrade does, and every event it was told was
//! accepted is stored once. The short version of `./dev.sh prod`: the tests' debug build, not a
//! release build.
//!
//! With `AGENTTRACE_UPGRADE_FROM=REF` (a commit of an earlier release), the stack starts on REF's
//! build instead and is upgraded to this checkout's under load, in the guide's order: migrate
//! while the old ETLs serve, roll them onto the new build, restart the scheduler, then the edge
//! (`./dev.sh upgrade-check REF`). The test command rolls onto the same build: a second build
//! of the whole workspace is longer than CI has.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// What `scripts/prod.sh` needs to run apart from everything else on the machine.
struct Prod {
    home: PathBuf,
    database: String,
    target: PathBuf,
}

impl Prod {
    fn script(&self, args: &[&str]) -> Command {
        let mut command = Command::new(agenttrace_tests::repo_root().join("scripts/prod.sh"));
        command
            .args(args)
            .env("AGENTTRACE_HOME", self.home.as_path())
            .env("PROD_PROFILE", "debug")
            // Ports of its own, beside a developer's `./dev.sh prod` on the defaults.
            .env("PROD_ETL_PORTS", "8453 8454")
            .env("PROD_EDGE_PORT", "8791")
            .env("PROD_CLICKHOUSE_HTTP_PORT", "8126")
            .env("PROD_CLICKHOUSE_TCP_PORT", "9126")
            .env(
                "PROD_DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{}", self.database),
            )
            .env("CARGO_TARGET_DIR", &self.target)
            .env_remove("DATABASE_URL")
            .env_remove("CLICKHOUSE_URL")
            // An earlier release's binary does not know it, and would refuse to start.
            .env_remove("AGENTTRACE_UPGRADE_FROM");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        succeed(self.script(args))
    }

    fn prod_home(&self) -> PathBuf {
        self.home.as_path().join("prod")
    }

    fn clickhouse(&self, sql: &str) -> String {
        let output = Command::new("curl")
            .args([
                "-fsS",
                "--data-binary",
                sql,
                "http://127.0.0.1:8126/?database=agenttrace",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Prod {
    fn drop(&mut self) {
        let _ = self.script(&["down"]).output();
        let _ = Command::new("psql")
            .args([
                "postgres://postgres@127.0.0.1:5432/postgres",
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The output of `command` (a `scripts/prod.sh` run), which must succeed.
fn succeed(mut command: Command) -> Output {
    let output = command.output().expect("running scripts/prod.sh");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl").args(args).output().unwrap()
}

#[test]
fn a_deployment_as_the_guide_says_serves_and_rolls_without_losing_an_event() {
    // target/<profile>/deps/production-<hash> → target
    let exe = std::env::current_exe().unwrap();
    let prod = Prod {
        home: std::env::temp_dir().join(format!("agenttrace-prod-{}", std::process::id())),
        database: format!("agenttrace_prod_{}", std::process::id()),
        target: exe.ancestors().nth(3).unwrap().to_path_buf(),
    };
    let upgrade_from = std::env::var("AGENTTRACE_UPGRADE_FROM")
        .ok()
        .filter(|reference| !reference.is_empty());
    // The earlier release's binary and Worker: `PROD_BIN=…` and `PROD_EDGE_BUILD=…` lines.
    let old_build: Vec<(String, String)> = match &upgrade_from {
        Some(reference) => String::from_utf8(prod.run(&["release", reference]).stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        None => Vec::new(),
    };
    let mut up = prod.script(&["up"]);
    up.envs(old_build);
    let up = succeed(up);
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(printed.contains("Production-shaped stack is up"), "{printed}");
    let ca = prod.prod_home().join("tls/ca.pem");
    let ca = ca.to_str().unwrap();

    // HTTPS only, verified against the local CA; the UI on the same origin as the API.
    let ui = curl(&["-fsS", "--cacert", ca, "https://localhost:8453/"]);
    assert!(ui.status.success(), "{}", String::from_utf8_lossy(&ui.stderr));
    assert!(String::from_utf8_lossy(&ui.stdout).contains("<html"), "the UI");
    let untrusted = curl(&["-fsS", "https://localhost:8454/readyz"]);
    assert!(
        !untrusted.status.success(),
        "a client without the CA must not connect"
    );
    let plain = curl(&["-fsS", "--max-time", "5", "http://127.0.0.1:8453/readyz"]);
    assert!(!plain.status.success(), "plain HTTP on the TLS port");
    // The metrics name every project: only the bearer of the metrics token reads them.
    let metrics = |token: &str| {
        let output = curl(&[
            "-sS",
            "--cacert",
            ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "https://localhost:8453/metrics",
        ]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let token = std::fs::read_to_string(prod.prod_home().join("metrics-token")).unwrap();
    assert_eq!(metrics(token.trim()), "200");
    assert_eq!(metrics("guess"), "401");

    // The demo agent sends through the edge while both replicas are rolled, one at a time.
    let mut demo = prod
        .script(&["demo", "--seed", "7", "--interval-ms", "60"])
        .env("PROD_SESSIONS", "150")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if upgrade_from.is_some() {
        // The new build's migrations, while the old ETLs serve.
        prod.run(&["migrate"]);
    }
    prod.run(&["roll"]);
    if upgrade_from.is_some() {
        prod.run(&["scheduler"]);
    }
    assert!(
        demo.try_wait().unwrap().is_none(),
        "the demo ended before the roll did: the roll was not under load"
    );
    let demo = demo.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&demo.stdout).into_owned();
    assert!(
        demo.status.success(),
        "the demo (it waits until ClickHouse holds every accepted event):\n{said}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let accepted_in = |said: &str| -> usize {
        said.split("events accepted")
            .next()
            .and_then(|head| head.rsplit(' ').nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{said}"))
    };
    let mut accepted = accepted_in(&said);
    assert!(accepted > 1000, "{said}");
    let mut sessions = 150;
    if upgrade_from.is_some() {
        // Last, the edge: the new Worker over the same Durable Object storage, and a few
        // sessions through it.
        prod.run(&["edge"]);
        let mut more = prod.script(&["demo", "--seed", "8"]);
        more.env("PROD_SESSIONS", "5");
        let more = succeed(more);
        let said = String::from_utf8_lossy(&more.stdout);
        accepted += accepted_in(&said);
        sessions += 5;
    }

    // Each replica went through a graceful shutdown and served again.
    for replica in ["etl-0", "etl-1"] {
        let log = std::fs::read_to_string(prod.prod_home().join(format!("{replica}.log"))).unwrap();
        assert!(
            log.contains("shutting down: finishing in-flight batches"),
            "{replica}: {log}"
        );
        assert_eq!(log.matches("ETL listening").count(), 2, "{replica}: {log}");
    }

    // Every accepted event is a row, once: the demo's sessions' traces, each stored once.
    let key: Value =
        serde_json::from_slice(&std::fs::read(prod.prod_home().join("demo-key.json")).unwrap()).unwrap();
    let project = key["project_id"].as_str().unwrap();
    let stored = || -> usize {
        [
            "traces",
            "observations",
            "scores",
            "terminal_commands",
            "file_operations",
            "git_links",
        ]
        .iter()
        .map(|table| {
            prod.clickhouse(&format!(
                "SELECT count() FROM {table} FINAL WHERE project_id = '{project}'"
            ))
            .parse::<usize>()
            .unwrap()
        })
        .sum()
    };
    // The demo waits for as many rows as it sent, which a second run into the project has at
    // once: the upgrade's last sessions may still be on their way from the edge.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut rows = stored();
    while rows < accepted && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        rows = stored();
    }
    assert_eq!(rows, accepted, "{said}");
    let counted = prod.clickhouse(&format!(
        "SELECT count(), uniqExact(id) FROM observations FINAL WHERE project_id = '{project}' FORMAT TSV"
    ));
    let (rows, ids) = counted.split_once('\t').unwrap();
    assert_eq!(rows, ids, "an observation stored twice");
    assert_eq!(
        prod.clickhouse(&format!(
            "SELECT uniqExact(id) FROM traces FINAL WHERE project_id = '{project}'"
        )),
        sessions.to_string()
    );
    // Every observation is in the search index, whichever build stored it.
    assert_eq!(
        prod.clickhouse(&format!(
            "SELECT count() FROM (SELECT DISTINCT id FROM observations WHERE project_id = '{project}') \
             WHERE id NOT IN (SELECT observation_id FROM search_postings \
                              WHERE project_id = '{project}' AND source = 'observations')"
        )),
        "0",
        "observations missing from the search index"
    );

    // `agenttrace doctor` ran in `up` and passed (the script stops otherwise); run it again,
    // after the roll (and the upgrade), for what it says about each part.
    let env = String::from_utf8(prod.run(&["env"]).stdout).unwrap();
    let doctor = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{env}\n\"$1\" doctor --json --etl-url https://localhost:8454 --ca-cert \"$2\" --edge-url http://127.0.0.1:8791"
        ))
        .args(["doctor", prod.target.join("debug/agenttrace").to_str().unwrap(), ca])
        .env("AGENTTRACE_HOME", prod.home.as_path())
        .output()
        .unwrap();
    let checks: Vec<Value> = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&doctor.stderr)));
    for check in &checks {
        assert_eq!(check["status"], "ok", "{checks:#?}");
    }
    assert_eq!(checks.len(), 8, "{checks:#?}");

    // The guide's scheduled backup.
    let backup = prod.home.join("backup");
    let said = prod.run(&["backup", backup.to_str().unwrap()]);
    assert!(
        backup.join("manifest.json").exists(),
        "{}",
        String::from_utf8_lossy(&said.stdout)
    );
}

/// The dashboard and the alert rules of `docs/deploy.md` name only metrics the ETL exports.
#[test]
fn the_dashboard_and_alerts_name_exported_metrics() {
    let root = agenttrace_tests::repo_root();
    let mut exported = std::collections::BTreeSet::new();
    collect_metric_names(&root.join("etl/src"), &mut exported);
    assert!(exported.contains("agenttrace_batches_total"), "{exported:?}");
    for file in [
        "docs/monitoring/grafana-dashboard.json",
        "docs/monitoring/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        if file.ends_with(".json") {
            serde_json::from_str::<Value>(&text).unwrap();
        }
        let mut named = 0;
        for (at, _) in text.match_indices("agenttrace_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            if base == "agenttrace_" || name.starts_with("agenttrace_etl") {
                continue; // the dashboard's uid, the scrape job's name
            }
            assert!(
                exported.contains(base),
                "{file} names {name}, which the ETL does not export"
            );
            named += 1;
        }
        assert!(named >= 6, "{file}");
    }
}

fn collect_metric_names(dir: &Path, out: &mut std::collections::BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_metric_names(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["counter!(", "histogram!(", "gauge!("] {
                for (at, _) in source.match_indices(macro_name) {
                    let rest = source[at + macro_name.len()..].trim_start();
                    if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                        out.insert(name.to_owned());
                    }
                }
            }
        }
    }
}

/// The guide's Cloudflare step, short of an account: `wrangler deploy --dry-run` with the repo's
/// `wrangler.toml` builds the Worker, binds the Durable Object and fits the plan's size limit.
#[test]
fn the_edge_builds_for_cloudflare_as_the_guide_says() {
    let out_dir = std::env::temp_dir().join(format!("agenttrace-edge-dry-run-{}", std::process::id()));
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"set -e; eval "$(scripts/edge-tools.sh)"; wrangler deploy --dry-run --outdir "$1""#)
        .arg("dry-run")
        .arg(&out_dir)
        .current_dir(agenttrace_tests::repo_root())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("env.BUFFER (Buffer)") && said.contains("Durable Object"),
        "{said}"
    );
    // "Total Upload: 2882.81 KiB / gzip: 1031.87 KiB": Workers Paid takes 10 MB compressed.
    let gzip_kib: f64 = said
        .split("gzip: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(gzip_kib < 10.0 * 1024.0, "{said}");
}

/// A setting misspelt or malformed stops `agenttrace serve` at start, naming the setting and
/// what to change, before it touches a database.
#[test]
fn a_wrong_setting_stops_the_start_and_is_named() {
    let binary = agenttrace_tests::agenttrace_binary();
    let serve = |env: &[(&str, &str)]| {
        let output = Command::new(&binary)
            .arg("serve")
            .env("AGENTTRACE_SIGNING_KEYS", "k1:0123456789abcdef0123456789abcdef")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{env:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let said = serve(&[("AGENTTRACE_LISTN", "0.0.0.0:8080")]);
    assert!(
        said.contains("AGENTTRACE_LISTN") && said.contains("did you mean AGENTTRACE_LISTEN?"),
        "{said}"
    );
    let said = serve(&[("AGENTTRACE_LISTEN", "8080")]);
    assert!(
        said.contains("'--listen <LISTEN>'") && said.contains("environment variable AGENTTRACE_LISTEN"),
        "{said}"
    );
    let said = serve(&[("AGENTTRACE_GZIP_LEVEL", "12")]);
    assert!(
        said.contains("--gzip-level") && said.contains("AGENTTRACE_GZIP_LEVEL"),
        "{said}"
    );
    let said = serve(&[("AGENTTRACE_COMPRESSION", "brotli")]);
    assert!(said.contains("--compression") && said.contains("lz4"), "{said}");
    let said = serve(&[("AGENTTRACE_TLS_CERT", "/etc/hostname")]);
    assert!(
        said.contains("--tls-key"),
        "a certificate without its key: {said}"
    );
    let said = serve(&[
        ("AGENTTRACE_TLS_CERT", "/nonexistent/etl.pem"),
        ("AGENTTRACE_TLS_KEY", "/nonexistent/etl-key.pem"),
    ]);
    assert!(said.contains("--tls-cert /nonexistent/etl.pem"), "{said}");
    let said = serve(&[
        ("AGENTTRACE_TLS_CERT", "/etc/hostname"),
        ("AGENTTRACE_TLS_KEY", "/etc/hostname"),
    ]);
    assert!(said.contains("no PEM certificate"), "{said}");
    // A real certificate, but no metrics token: HTTPS serves a network, /metrics must be closed.
    let dir = std::env::temp_dir().join(format!("at-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("etl.pem"), dir.join("etl-key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=localhost", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let said = serve(&[
        ("AGENTTRACE_TLS_CERT", cert.to_str().unwrap()),
        ("AGENTTRACE_TLS_KEY", key.to_str().unwrap()),
    ]);
    assert!(said.contains("AGENTTRACE_METRICS_TOKEN"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
    let said = serve(&[("AGENTTRACE_ENCRYPTION_KEY", "not-hex")]);
    assert!(
        said.contains("AGENTTRACE_ENCRYPTION_KEY must be 64 hex characters"),
        "{said}"
    );
}
