//! The real edge Worker in workerd, through `wrangler dev`, pointed at a test's ETL.
//!
//! The Worker is built once (`scripts/build-edge.sh`; `dev.sh test` builds it before the tests
//! and sets `AGENTTRACE_EDGE_PREBUILT=1`). Each edge gets its own directory with a generated
//! `wrangler.toml` naming the built Worker, its own `.dev.vars` (the signing key) and its own
//! Durable Object storage, so tests run side by side.

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::etl::SIGNING_KEYS;
use crate::ports::free_port;
use crate::repo_root;

/// The environment the edge tools need (`scripts/edge-tools.sh` installs them when missing),
/// with the Worker built.
fn tool_environment() -> &'static HashMap<String, String> {
    static ENVIRONMENT: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let root = repo_root();
        let output = Command::new("bash")
            .arg("-c")
            .arg(r#"set -e; eval "$(scripts/edge-tools.sh)"; bash scripts/build-edge.sh; env -0"#)
            .current_dir(&root)
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/edge-tools.sh");
        assert!(
            output.status.success(),
            "scripts/edge-tools.sh or build-edge.sh failed"
        );
        output
            .stdout
            .split(|b| *b == 0)
            .filter_map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (key, value) = entry.split_once('=')?;
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    })
}

pub struct Edge {
    child: Child,
    pub url: String,
    dir: PathBuf,
}

impl Edge {
    /// Starts an edge that forwards to `etl_url`; `vars` override wrangler.toml's `[vars]`
    /// (e.g. a short `FLUSH_MAX_AGE_MS`).
    pub async fn start(etl_url: &str, vars: &[(&str, &str)]) -> Edge {
        let environment = tool_environment();
        let root = repo_root();
        let dir = std::env::temp_dir().join(format!("agenttrace-edge-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut settings: Vec<(String, String)> = vec![
            ("ETL_URL".into(), etl_url.into()),
            ("EDGE_ID".into(), "test-edge".into()),
            ("KEY_CACHE_TTL_MS".into(), "1000".into()),
            ("BUFFER_SHARDS".into(), "2".into()),
            ("FLUSH_MAX_EVENTS".into(), "1000".into()),
            ("FLUSH_MAX_AGE_MS".into(), "200".into()),
        ];
        for (name, value) in vars {
            settings.retain(|(n, _)| n != name);
            settings.push(((*name).into(), (*value).into()));
        }
        let vars: String = settings
            .iter()
            .map(|(name, value)| format!("{name} = {value:?}\n"))
            .collect();
        let config = format!(
            "name = \"agenttrace-edge-test\"\nmain = {main:?}\ncompatibility_date = \"2025-11-01\"\n\n[vars]\n{vars}\n\
             [[durable_objects.bindings]]\nname = \"BUFFER\"\nclass_name = \"Buffer\"\n\n\
             [[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Buffer\"]\n",
            main = root.join("edge/build/worker/shim.mjs").display().to_string(),
        );
        std::fs::write(dir.join("wrangler.toml"), config).unwrap();
        std::fs::write(
            dir.join(".dev.vars"),
            format!("EDGE_SIGNING_KEY={SIGNING_KEYS}\n"),
        )
        .unwrap();
        // A port can still be taken between our check and wrangler's bind: start again on
        // other ports when that is why wrangler stopped.
        let (child, url) = spawn_wrangler(environment, &dir, free_port());
        let mut edge = Edge { child, url, dir };
        for attempt in 1.. {
            match edge.wait_until_healthy().await {
                Ok(()) => break,
                Err(log) if attempt < 4 && log.contains("Address already in use") => {
                    edge.stop();
                    (edge.child, edge.url) = spawn_wrangler(environment, &edge.dir, free_port());
                }
                Err(log) => panic!("the edge did not start; its log:\n{log}"),
            }
        }
        edge
    }
}

/// `wrangler dev` serving the Worker configured in `dir` on `port`; returns its URL.
fn spawn_wrangler(environment: &HashMap<String, String>, dir: &Path, port: u16) -> (Child, String) {
    let log = std::fs::File::create(dir.join("wrangler.log")).unwrap();
    let child = Command::new("wrangler")
        .args([
            "dev",
            "--local",
            "--ip",
            "127.0.0.1",
            "--show-interactive-dev-session=false",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--inspector-port",
            &free_port().to_string(),
        ])
        .args(["--persist-to", &dir.join("state").display().to_string()])
        .current_dir(dir)
        .env_clear()
        .envs(environment)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("starting wrangler dev");
    (child, format!("http://127.0.0.1:{port}"))
}

impl Edge {
    /// Waits for `/healthz`; on failure (wrangler exited, or 60 s passed) returns its log.
    async fn wait_until_healthy(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/healthz", self.url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            // wrangler reports a lost bind and then idles: read the log too.
            if exited || Instant::now() >= deadline || self.log().contains("Address already in use") {
                return Err(self.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where the Worker's Durable Objects keep their SQLite files.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// What wrangler and the Worker printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("wrangler.log")).unwrap_or_default()
    }
}

impl Edge {
    /// Kills wrangler and workerd at once (SIGKILL: a crash, not a shutdown).
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }

    /// Starts the edge again on the same port and Durable Object storage.
    pub async fn restart(&mut self) {
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        (self.child, self.url) = spawn_wrangler(tool_environment(), &self.dir, port);
        if let Err(log) = self.wait_until_healthy().await {
            panic!("the edge did not restart; its log:\n{log}");
        }
    }

    fn stop(&mut self) {
        // wrangler runs workerd as a child: stop the whole process group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
