//! The local ClickHouse cluster (`scripts/cluster.sh`: 2 shards × 2 replicas and ZooKeeper),
//! brought up for a test, with nodes to stop and start.

use std::process::Command;

use crate::repo_root;

#[derive(Debug, Clone)]
pub struct Cluster {
    /// The node migrations and the ETL talk to (s1r1).
    pub url: String,
    pub name: String,
    /// Every node's HTTP URL (`CLICKHOUSE_CLUSTER_URLS`).
    pub node_urls: Vec<String>,
}

fn script(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/cluster.sh"))
        .args(args)
        .output()
        .expect("running scripts/cluster.sh");
    assert!(
        output.status.success(),
        "scripts/cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Cluster {
    /// Starts what is not running (installing ZooKeeper when missing) and returns its address.
    pub fn up() -> Cluster {
        let printed = script(&["up"]);
        let value = |name: &str| {
            printed
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .map(|v| v.trim_matches('\'').to_owned())
                .unwrap_or_else(|| panic!("cluster.sh up printed no {name}: {printed}"))
        };
        Cluster {
            url: value("CLICKHOUSE_URL"),
            name: value("CLICKHOUSE_CLUSTER"),
            node_urls: value("CLICKHOUSE_CLUSTER_URLS")
                .split(',')
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Stops one node at once (SIGKILL): `s1r1`, `s1r2`, `s2r1` or `s2r2`.
    pub fn kill(&self, node: &str) {
        script(&["kill", node]);
    }

    /// Starts a stopped node and waits until it answers.
    pub fn start(&self, node: &str) {
        script(&["start", node]);
    }
}
