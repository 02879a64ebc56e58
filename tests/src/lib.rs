//! Test harness: every test gets its own PostgreSQL database and ClickHouse database on the
//! real servers named by `DATABASE_URL` and `CLICKHOUSE_URL` (see `scripts/stack.sh`), so tests
//! run in parallel without seeing each other's rows. Databases are dropped when the test ends.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agenttrace_cli::{Cli, DatabaseArgs};
use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
use agenttrace_etl::{migrate, postgres};

use crate::cluster::Cluster;
use clap::Parser as _;

pub use agenttrace_cli;

pub mod cluster;
pub mod edge;
pub mod etl;
pub mod people;
pub mod ports;
pub mod providers;
pub mod readback;
pub mod servers;

/// The shared PostgreSQL (`DATABASE_URL`, as scripts/stack.sh env prints it).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/agenttrace".into())
}

fn clickhouse_url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// The shared server is a cluster when `CLICKHOUSE_CLUSTER` names one (scripts/cluster.sh
/// env); a test's private server never is.
fn default_cluster(url: &str) -> Option<Cluster> {
    let name = std::env::var("CLICKHOUSE_CLUSTER")
        .ok()
        .filter(|_| url == clickhouse_url())?;
    let node_urls = std::env::var("CLICKHOUSE_CLUSTER_URLS")
        .map(|urls| urls.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    Some(Cluster {
        url: url.to_owned(),
        name,
        node_urls,
    })
}

fn clickhouse_config(url: &str, database: &str, cluster: Option<&Cluster>) -> ClickHouseConfig {
    ClickHouseConfig {
        url: url.to_owned(),
        database: database.to_owned(),
        user: std::env::var("CLICKHOUSE_USER").ok(),
        password: std::env::var("CLICKHOUSE_PASSWORD").ok(),
        cluster: cluster.map(|cluster| cluster.name.clone()),
        node_urls: cluster
            .map(|cluster| cluster.node_urls.clone())
            .unwrap_or_default(),
    }
}

/// The server part of a PostgreSQL URL with another database name.
fn with_database(url: &str, database: &str) -> String {
    let (server, _) = url.rsplit_once('/').expect("DATABASE_URL has a database name");
    format!("{server}/{database}")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `agenttrace` binary of this build (built here if the test run did not build it), for
/// tests that run it as a process.
pub fn agenttrace_binary() -> PathBuf {
    // target/<profile>/deps/<test>-<hash> → target
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "agenttrace-cli",
            "--bin",
            "agenttrace",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(repo_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building agenttrace");
    target.join("debug/agenttrace")
}

/// Isolated databases for one test.
pub struct TestEnv {
    pub name: String,
    pub database_url: String,
    pub clickhouse: ClickHouse,
    admin_url: String,
}

impl TestEnv {
    /// Empty databases (nothing migrated) on the shared servers.
    pub async fn empty() -> TestEnv {
        TestEnv::empty_on(&database_url(), &clickhouse_url()).await
    }

    /// Empty databases on the given servers (`database_url` names any database on the server).
    pub async fn empty_on(database_url: &str, clickhouse_url: &str) -> TestEnv {
        TestEnv::empty_on_cluster(database_url, clickhouse_url, default_cluster(clickhouse_url)).await
    }

    /// Empty databases, ClickHouse's on the cluster `cluster` (through its node at
    /// `clickhouse_url`) when one is named.
    pub async fn empty_on_cluster(
        database_url: &str,
        clickhouse_url: &str,
        cluster: Option<Cluster>,
    ) -> TestEnv {
        let name = format!("at_test_{}", uuid::Uuid::new_v4().simple());
        let admin_url = with_database(database_url, "postgres");
        let admin = postgres::connect(&admin_url)
            .await
            .expect("PostgreSQL is running (scripts/stack.sh up)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let clickhouse = ClickHouse::new(clickhouse_config(clickhouse_url, &name, cluster.as_ref()));
        clickhouse
            .ping()
            .await
            .expect("ClickHouse is running (scripts/stack.sh up)");
        TestEnv {
            database_url: with_database(database_url, &name),
            name,
            clickhouse,
            admin_url,
        }
    }

    /// Databases with every migration applied, on the given servers.
    /// Databases with every migration applied, ClickHouse's on a cluster (`scripts/cluster.sh`).
    pub async fn migrated_on_cluster(cluster: &Cluster) -> TestEnv {
        let env = TestEnv::empty_on_cluster(&database_url(), &cluster.url, Some(cluster.clone())).await;
        env.migrate().await;
        env
    }

    /// Databases with every migration applied: PostgreSQL's on `database_url`'s server,
    /// ClickHouse's on `cluster`.
    pub async fn migrated_on_cluster_with(database_url: &str, cluster: &Cluster) -> TestEnv {
        let env = TestEnv::empty_on_cluster(database_url, &cluster.url, Some(cluster.clone())).await;
        env.migrate().await;
        env
    }

    pub async fn migrated_on(database_url: &str, clickhouse_url: &str) -> TestEnv {
        let env = TestEnv::empty_on(database_url, clickhouse_url).await;
        env.migrate().await;
        env
    }

    async fn migrate(&self) {
        let mut pg = self.postgres().await;
        migrate::migrate(
            &mut pg,
            &self.clickhouse,
            &migrate::MigrationSet::embedded().unwrap(),
        )
        .await
        .unwrap();
    }

    /// Databases with every migration applied.
    pub async fn migrated() -> TestEnv {
        let env = TestEnv::empty().await;
        let mut pg = env.postgres().await;
        migrate::migrate(
            &mut pg,
            &env.clickhouse,
            &migrate::MigrationSet::embedded().unwrap(),
        )
        .await
        .unwrap();
        env
    }

    pub async fn postgres(&self) -> tokio_postgres::Client {
        postgres::connect(&self.database_url).await.unwrap()
    }

    pub fn database_args(&self) -> DatabaseArgs {
        DatabaseArgs {
            database_url: self.database_url.clone(),
            clickhouse_url: self.clickhouse.url().to_owned(),
            clickhouse_database: self.name.clone(),
            clickhouse_user: None,
            clickhouse_password: None,
            // The reader user is confined to the main database, not this test's.
            clickhouse_reader_user: None,
            clickhouse_reader_password: None,
            clickhouse_project_setting: None,
            clickhouse_cluster: self.clickhouse.cluster().map(str::to_owned),
            clickhouse_cluster_urls: self.clickhouse.node_urls().to_vec(),
            encryption_key: Some(etl::ENCRYPTION_KEY.to_owned()),
        }
    }

    /// A new project named `name`, in an organization of the same name.
    pub async fn new_project(&self, name: &str) -> uuid::Uuid {
        let pg = self.postgres().await;
        let organization = agenttrace_etl::control::projects::ensure_organization(&pg, name)
            .await
            .unwrap();
        agenttrace_etl::control::projects::create_project(&pg, organization, name, None)
            .await
            .unwrap()
            .id
    }

    /// Runs the `agenttrace` CLI against this test's databases and returns its stdout.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let argv = std::iter::once("agenttrace").chain(args.iter().copied());
        let mut cli = Cli::try_parse_from(argv)?;
        cli.databases = self.database_args();
        cli.args = args.iter().map(|arg| (*arg).to_owned()).collect();
        let mut out = Vec::new();
        agenttrace_cli::run(cli, &mut out).await?;
        Ok(String::from_utf8(out)?)
    }

    /// Runs the CLI where it must fail, and returns its error's text.
    pub async fn cli_error(&self, args: &[&str]) -> String {
        match self.cli(args).await {
            Ok(out) => panic!("agenttrace {args:?} succeeded: {out}"),
            Err(error) => error.to_string(),
        }
    }

    /// Waits until `sql` answers `expected`, or fails after `timeout` with what it answered.
    pub async fn wait_until(&self, sql: &str, expected: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.ch(sql).await;
            if got == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql}:\n{got}\nexpected:\n{expected}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Runs a ClickHouse query and returns its TabSeparated output, trimmed.
    pub async fn ch(&self, sql: &str) -> String {
        self.clickhouse
            .query_text(&format!("{sql} FORMAT TabSeparated"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .trim()
            .to_owned()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Drop needs its own runtime: the test's runtime may be shutting down.
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        let clickhouse_url = self.clickhouse.url().to_owned();
        let cluster = self.clickhouse.cluster().map(|cluster| Cluster {
            url: clickhouse_url.clone(),
            name: cluster.to_owned(),
            node_urls: self.clickhouse.node_urls().to_vec(),
        });
        let cleanup = std::thread::spawn(move || {
            // A fresh client: pooled connections belong to the (blocked) test runtime.
            let clickhouse = ClickHouse::new(clickhouse_config(&clickhouse_url, &name, cluster.as_ref()));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = postgres::connect(&admin_url).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
                let on_cluster = clickhouse
                    .cluster()
                    .map(|cluster| format!(" ON CLUSTER {cluster}"))
                    .unwrap_or_default();
                let _ = clickhouse
                    .execute_on_server(&format!("DROP DATABASE IF EXISTS {name}{on_cluster}"))
                    .await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Runs SQL statements in chDB (modern ClickHouse, in-process) and returns each output.
pub fn chdb(statements: &[String]) -> Result<Vec<String>, String> {
    python_json("tests/chdb/run.py", &statements)
}

/// Runs a script of `tests/python/` with `args` (a real client: the Langfuse SDK, ...) and reads
/// the JSON it prints on its last line; fails the test with its output when it fails.
pub async fn python_script(script: &str, args: &[&str]) -> serde_json::Value {
    let script = repo_root().join("tests/python").join(script);
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

/// Runs a Python script of the repository with `input` as JSON on stdin and reads its JSON
/// answer from stdout.
pub fn python_json<T: serde::de::DeserializeOwned>(
    script: &str,
    input: &impl serde::Serialize,
) -> Result<T, String> {
    let mut child = Command::new("python3")
        .arg(repo_root().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting python3: {e}"))?;
    let input = serde_json::to_vec(input).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&input)
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}
