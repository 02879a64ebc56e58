//! The clustered schema, as a transformation of the single-node migrations.
//!
//! A migration file is written for one server. On a cluster (`CLICKHOUSE_CLUSTER`, the name in
//! every node's `<remote_servers>`), each table `t` becomes two, created `ON CLUSTER`:
//!
//! - `t_local`, the data: the same columns and keys with the `Replicated` form of the engine,
//!   its ZooKeeper path per shard (`/clickhouse/agenttrace/tables/{shard}/<database>/t_local`,
//!   replica `{replica}`, from each node's `<macros>`);
//! - `t`, a `Distributed` table over `t_local` on every shard, sharded by [`sharding_key`], so
//!   every version of a row and every row of a trace land on one shard: deduplication and the
//!   merge stay shard-local, and a trace is still one key range on one server.
//!
//! Readers and writers keep using `t`. Materialized views run on each shard, from `s_local` to
//! `t_local`. `ALTER` applies to `t_local` (on one node per shard, replicated) and re-creates `t`, whose
//! columns follow; `RENAME` renames the local tables and re-creates the `Distributed` ones;
//! `INSERT ... SELECT` runs as written, through the `Distributed` tables. Any other statement is
//! refused: a migration the transformation does not understand must not half-apply.

use std::collections::BTreeSet;

use crate::clickhouse::{ClickHouse, ClickHouseError, quote};

/// One step of a clustered migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A statement to run as is.
    Sql(String),
    /// A statement to run on one replica of each shard, which replicates it to the others:
    /// [`on_each_shard`].
    OnEachShard(String),
    /// (Re-)create the `Distributed` table over `<table>_local`, whose columns are read from
    /// the server when the step runs: [`ClusterSchema::distributed_table`].
    Distributed(String),
}

/// Where each node keeps a replicated table's metadata in ZooKeeper.
const ZOOKEEPER_ROOT: &str = "/clickhouse/agenttrace/tables";

/// The key that places a row on a shard: a trace's rows together, every version of a row
/// with its first one.
pub fn sharding_key(table: &str) -> &'static str {
    let base = table.trim_end_matches("_reordered").trim_end_matches("_by_id");
    match base {
        "traces" | "traces_by_time" | "traces_by_ingest" => "cityHash64(project_id, id)",
        "observations"
        | "scores"
        | "scores_by_time"
        | "file_operations"
        | "terminal_commands"
        | "git_links"
        | "observations_by_time"
        | "observations_by_ingest"
        | "session_traces"
        | "trace_summaries"
        | "search_postings"
        | "search_terms" => "cityHash64(project_id, trace_id)",
        "dead_letters" => "cityHash64(project_id, batch_id)",
        // Rows replaced by id (rollups, metric points): by id. Sums (daily costs) sum across
        // shards when read, so any placement is right.
        "experiment_rollups" | "metrics" => "cityHash64(project_id, id)",
        // One row per run, read as a maximum over every shard.
        "trace_summary_runs" => "summarized_second",
        _ => "cityHash64(project_id)",
    }
}

/// Runs a mutation (`ALTER TABLE … DELETE WHERE …`, written after the table's name) of
/// `table`: on a cluster, on each shard's local table once, which replicates it to the shard's
/// other replicas.
pub async fn mutate(clickhouse: &ClickHouse, table: &str, mutation: &str) -> Result<(), ClickHouseError> {
    match clickhouse.cluster() {
        Some(_) => on_each_shard(clickhouse, &format!("ALTER TABLE {table}_local {mutation}")).await,
        None => {
            clickhouse
                .execute(&format!("ALTER TABLE {table} {mutation}"))
                .await
        }
    }
}

/// Runs `statement` (an `ALTER` of a replicated local table) on one node of each shard, reached
/// through the configured nodes ([`ClickHouse::nodes`]); the shard's other replicas follow
/// through ZooKeeper.
///
/// Not `ON CLUSTER`: there, 18.16's DDL worker has every replica of a shard race to run the
/// `ALTER` once, and the loser can fail creating the shard's `executed` node ("Node exists"),
/// after which that server's DDL worker stops taking tasks until it restarts (seen in CI).
pub async fn on_each_shard(clickhouse: &ClickHouse, statement: &str) -> Result<(), ClickHouseError> {
    let cluster = clickhouse.cluster().unwrap_or_default();
    let listing = clickhouse
        .query_text(&format!(
            "SELECT DISTINCT shard_num FROM system.clusters WHERE cluster = {} FORMAT TabSeparated",
            quote(cluster)
        ))
        .await?;
    let mut missing: BTreeSet<u32> = listing
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    let mut unreachable = Vec::new();
    for node in clickhouse.nodes() {
        if missing.is_empty() {
            break;
        }
        // 18.16 marks every replica of the node's own shard as local (it does not tell the
        // replicas of one host apart by port), so the node's shard is the one local shard.
        let shard = match node
            .query_text(&format!(
                "SELECT DISTINCT shard_num FROM system.clusters WHERE cluster = {} AND is_local FORMAT TabSeparated",
                quote(cluster)
            ))
            .await
        {
            // No line, or several (the node is in more than one shard): not used.
            Ok(answer) => answer.trim().parse::<u32>().ok(),
            Err(error) if error.is_transient() => {
                unreachable.push(format!("{} ({error})", node.url()));
                continue;
            }
            Err(error) => return Err(error),
        };
        if let Some(shard) = shard.filter(|shard| missing.contains(shard)) {
            node.execute_rerunnable(statement).await?;
            missing.remove(&shard);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ClickHouseError::Cluster(format!(
        "cluster {cluster}: no reachable node of shard(s) {missing:?} to run `{statement}` on; \
         list at least one node of every shard in CLICKHOUSE_CLUSTER_URLS (HTTP URLs, comma-separated){}",
        if unreachable.is_empty() {
            String::new()
        } else {
            format!("; unreachable: {}", unreachable.join(", "))
        }
    )))
}

/// `select` (over `system.<name>`, written `{system}.<name>`) on every replica of the cluster,
/// each replica's answer one part of a `UNION ALL`.
pub(crate) async fn on_every_replica(
    clickhouse: &ClickHouse,
    cluster: &str,
    select: &str,
) -> Result<String, ClickHouseError> {
    let replicas = clickhouse
        .query_text(&format!(
            "SELECT host_address, port FROM system.clusters WHERE cluster = {} FORMAT TabSeparated",
            quote(cluster)
        ))
        .await?;
    Ok(replicas
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(host, port)| {
            select
                .replace(
                    "{system}.mutations",
                    &format!("remote('{host}:{port}', system.mutations)"),
                )
                .replace(
                    "{system}.parts",
                    &format!("remote('{host}:{port}', system.parts)"),
                )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL "))
}

/// Mutations of `table` not done yet, on every replica of the cluster (or on the one server).
pub async fn pending_mutations(clickhouse: &ClickHouse, table: &str) -> Result<u64, ClickHouseError> {
    let database = quote(clickhouse.database());
    let sql = match clickhouse.cluster() {
        None => format!(
            "SELECT count() FROM system.mutations WHERE database = {database} AND table = {} AND is_done = 0",
            quote(table)
        ),
        Some(cluster) => {
            let per_replica = on_every_replica(
                clickhouse,
                cluster,
                &format!(
                    "SELECT count() AS pending FROM {{system}}.mutations \
                     WHERE database = {database} AND table = {} AND is_done = 0",
                    quote(&format!("{table}_local"))
                ),
            )
            .await?;
            format!("SELECT sum(pending) FROM ({per_replica})")
        }
    };
    let answer = clickhouse
        .query_text(&format!("{sql} FORMAT TabSeparated"))
        .await?;
    Ok(answer.trim().parse().unwrap_or(0))
}

/// Waits until `table`'s mutations are done on every replica, at most `timeout`; whether they
/// are. On a cluster a mutation still pending after a moment is nudged ([`nudge_mutations`]:
/// 18.16 holds back a partition's last quorum-inserted part), and again every few seconds while
/// it waits.
pub async fn wait_for_mutations(
    clickhouse: &ClickHouse,
    table: &str,
    timeout: std::time::Duration,
) -> Result<bool, ClickHouseError> {
    use std::time::{Duration, Instant};
    const NUDGE_AFTER: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let mut nudged_at: Option<Instant> = None;
    loop {
        if pending_mutations(clickhouse, table).await? == 0 {
            return Ok(true);
        }
        let due = match nudged_at {
            None => started.elapsed() > NUDGE_AFTER,
            Some(at) => at.elapsed() > 3 * NUDGE_AFTER,
        };
        if due {
            nudge_mutations(clickhouse, table).await?;
            nudged_at = Some(Instant::now());
        }
        if started.elapsed() > timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const DAY_US: i64 = 86_400 * 1_000_000;

/// The column each table is partitioned by (by month), and how many microseconds its unit
/// holds: microseconds, seconds (`ingested_second`) or days (`daily_costs.day`, a Date).
pub fn partition_column(table: &str) -> Option<(&'static str, i64)> {
    const SECOND: i64 = 1_000_000;
    Some(match table {
        "traces" | "traces_by_time" | "session_traces" | "scores" | "scores_by_time" | "file_operations"
        | "terminal_commands" | "git_links" | "trace_summaries" | "search_postings" => ("timestamp_us", 1),
        "observations" | "observations_by_time" => ("start_time_us", 1),
        "traces_by_ingest" | "observations_by_ingest" => ("ingested_second", SECOND),
        "metrics" => ("time_us", 1),
        "dead_letters" => ("received_at_us", 1),
        "experiment_rollups" => ("computed_at_us", 1),
        "daily_costs" => ("day", DAY_US),
        "observation_hour_touches" | "observation_hours" | "observation_hourly" => ("hour_us", 1),
        "observation_touch_log" => ("touched_second", SECOND),
        _ => return None,
    })
}

/// Rows per partition a nudge inserts, with different sharding values, so that every shard of a
/// small cluster gets at least one (two shards all missing one: 2 × 2⁻¹⁶).
const NUDGE_ROWS: usize = 16;

/// Lets a stalled mutation of `table` on a cluster proceed. On 18.16 the last part inserted
/// with a quorum in a partition is never given a mutation (`getDesiredMutationVersion` skips
/// the quorum's `last_part`), so a delete on a quiet, old partition would wait for good. A
/// further quorum insert into each of the table's partitions makes that part an ordinary one:
/// this inserts, through the Distributed table, rows that belong to no project
/// (`project_id = ''`, which no read, export or query names), a few per partition so every
/// shard gets one. Their ids repeat from nudge to nudge, so merges collapse them.
pub async fn nudge_mutations(clickhouse: &ClickHouse, table: &str) -> Result<(), ClickHouseError> {
    let (Some(cluster), Some((time_column, unit))) = (clickhouse.cluster(), partition_column(table)) else {
        return Ok(());
    };
    let partitions = on_every_replica(
        clickhouse,
        cluster,
        &format!(
            "SELECT partition_id FROM {{system}}.parts WHERE database = {} AND table = {} AND active",
            quote(clickhouse.database()),
            quote(&format!("{table}_local"))
        ),
    )
    .await?;
    let partitions = clickhouse
        .query_text(&format!(
            "SELECT DISTINCT partition_id FROM ({partitions}) FORMAT TabSeparated"
        ))
        .await?;
    // The second argument of the sharding key (`trace_id`, `id`, `batch_id`) spreads the rows.
    let spreader = sharding_key(table)
        .split_once(", ")
        .map(|(_, rest)| rest.trim_end_matches(')'));
    let mut rows = Vec::new();
    for partition in partitions.lines().filter(|p| !p.is_empty()) {
        // A Date partition (`daily_costs.day`) is written as its first day, as text.
        let at = match (unit, partition.get(..4), partition.get(4..6)) {
            (DAY_US, Some(year), Some(month)) => format!("'{year}-{month}-01'"),
            _ => (month_start_us(partition).unwrap_or(0) / unit).to_string(),
        };
        for k in 0..NUDGE_ROWS {
            rows.push(match spreader {
                Some(_) => format!("('', {at}, 'retention-nudge-{k}')"),
                // Sharded by the project alone: the rows' project ids (no project's: not a
                // uuid) spread them over the shards instead.
                None => format!("('retention-nudge-{k}', {at})"),
            });
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let columns = match spreader {
        Some(spreader) => format!("project_id, {time_column}, {spreader}"),
        None => format!("project_id, {time_column}"),
    };
    // Not deduplicated: a nudge repeats the rows of the one before, and a block the replicas
    // already saw would be dropped as a retry, which nudges nothing.
    clickhouse
        .query_with_settings(
            &format!("INSERT INTO {table} ({columns}) VALUES {}", rows.join(", ")),
            &[("insert_deduplicate", "0")],
        )
        .await
        .map(drop)
}

/// The first microsecond of the month a `toYYYYMM` partition id names (`202611`).
fn month_start_us(partition: &str) -> Option<i64> {
    if partition.len() != 6 {
        return None;
    }
    let year: i64 = partition[..4].parse().ok()?;
    let month: i64 = partition[4..].parse().ok()?;
    // Days from 1970-01-01 to the first of the month (civil-from-days, proleptic Gregorian).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400_000_000)
}

/// The statements of the single-node migrations, rewritten for a cluster; it learns the
/// tables each statement creates, renames and drops, so it is fed every migration in order
/// (applied ones too, with their output discarded).
#[derive(Debug, Clone)]
pub struct ClusterSchema {
    cluster: String,
    database: String,
    /// Tables that are a `_local` table plus a `Distributed` one (views are not).
    tables: BTreeSet<String>,
}

impl ClusterSchema {
    pub fn new(cluster: &str, database: &str) -> ClusterSchema {
        ClusterSchema {
            cluster: cluster.to_owned(),
            database: database.to_owned(),
            tables: BTreeSet::new(),
        }
    }

    /// The table that keeps the migration history on every node: one replicated table whose
    /// replicas are all the nodes (its path has no shard), read locally anywhere.
    pub fn migrations_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations ON CLUSTER {cluster} (
                version UInt32, name String, checksum String, applied_at DateTime
            ) ENGINE = ReplicatedReplacingMergeTree('{ZOOKEEPER_ROOT}/all/{db}/schema_migrations', '{{replica}}')
            ORDER BY version",
            db = self.database,
            cluster = self.cluster,
        )
    }

    pub fn create_database(&self) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS {} ON CLUSTER {}",
            self.database, self.cluster
        )
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{table}", self.database)
    }

    /// The query that lists `<table>_local`'s columns as [`ClusterSchema::distributed_table`]
    /// wants them (tab-separated: name, type, default kind, default expression).
    pub fn columns_query(&self, table: &str) -> String {
        format!(
            "SELECT name, type, default_kind, default_expression FROM system.columns \
             WHERE database = '{}' AND table = '{table}_local' FORMAT TabSeparated",
            self.database
        )
    }

    /// The `Distributed` table over `<table>_local`, given its columns (the answer to
    /// [`ClusterSchema::columns_query`]). A `MATERIALIZED` column is an `ALIAS` here: 18.16
    /// forwards a Distributed table's materialized columns to the shards, which refuse them,
    /// while an alias is computed from the stored column wherever it is read.
    pub fn distributed_table(&self, table: &str, columns_tsv: &str) -> Result<String, String> {
        let mut columns = Vec::new();
        for line in columns_tsv.lines().filter(|l| !l.is_empty()) {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, kind, default_kind, expression] = fields[..] else {
                return Err(format!("unexpected column description {line:?}"));
            };
            // TabSeparated escapes quotes and backslashes.
            let expression = expression.replace("\\'", "'").replace("\\\\", "\\");
            columns.push(match default_kind {
                "" => format!("`{name}` {kind}"),
                "MATERIALIZED" | "ALIAS" => format!("`{name}` {kind} ALIAS {expression}"),
                other => format!("`{name}` {kind} {other} {expression}"),
            });
        }
        if columns.is_empty() {
            return Err(format!("{table}_local has no columns (was it created?)"));
        }
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} ({columns}) \
             ENGINE = Distributed({cluster}, {db}, {table}_local, {key})",
            db = self.database,
            cluster = self.cluster,
            columns = columns.join(", "),
            key = sharding_key(table),
        ))
    }

    fn distributed(&self, table: &str) -> Step {
        Step::Distributed(table.to_owned())
    }

    fn drop_distributed(&self, table: &str) -> Step {
        Step::Sql(format!(
            "DROP TABLE IF EXISTS {} ON CLUSTER {}",
            self.qualified(table),
            self.cluster
        ))
    }

    /// The statements that do on the cluster what `statement` does on one server.
    pub fn transform(&mut self, statement: &str) -> Result<Vec<Step>, String> {
        let text = statement.trim();
        let words: Vec<String> = text
            .split_whitespace()
            .take(6)
            .map(|w| w.to_ascii_uppercase())
            .collect();
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        match (word(0), word(1)) {
            ("CREATE", "TABLE") => self.create_table(text),
            ("CREATE", "MATERIALIZED") => self.create_view(text),
            ("ALTER", "TABLE") => self.alter(text),
            ("RENAME", "TABLE") => self.rename(text),
            ("DROP", "TABLE") => self.drop(text),
            ("INSERT", "INTO") => Ok(vec![Step::Sql(text.to_owned())]),
            _ => Err(format!(
                "the cluster transformation does not know this statement; write it for a cluster: {}",
                first_line(text)
            )),
        }
    }

    fn create_table(&mut self, text: &str) -> Result<Vec<Step>, String> {
        let (name, rest) = after_name(text, &["CREATE", "TABLE"])?;
        let engine_at =
            find_keyword(rest, "ENGINE").ok_or_else(|| format!("no ENGINE in: {}", first_line(text)))?;
        let (shape, engine_clause) = rest.split_at(engine_at);
        let shape = shape.trim();
        // `(columns)` or `AS other`.
        let shape = match shape.strip_prefix("AS ").or_else(|| shape.strip_prefix("as ")) {
            Some(source) => {
                let source = source.trim();
                if !self.tables.contains(source) {
                    return Err(format!(
                        "{name} copies {source}, which the cluster schema does not have"
                    ));
                }
                format!("AS {}_local", self.qualified(source))
            }
            None => shape.to_owned(),
        };
        let engine_clause = engine_clause["ENGINE".len()..].trim_start();
        let engine_clause = engine_clause
            .strip_prefix('=')
            .ok_or_else(|| format!("expected `ENGINE =` in: {}", first_line(text)))?
            .trim_start();
        // A table that stores nothing (rows a view turns into another table's): each shard has
        // its own, which the Distributed table forwards rows to and the shard's views read.
        if engine_clause.trim_end_matches("()").eq_ignore_ascii_case("Null") {
            let local = format!(
                "CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER {cluster} {shape} ENGINE = Null",
                table = self.qualified(&name),
                cluster = self.cluster,
            );
            self.tables.insert(name.clone());
            return Ok(vec![Step::Sql(local), self.distributed(&name)]);
        }
        let open = engine_clause
            .find('(')
            .ok_or_else(|| format!("expected `ENGINE = Name(...)` in: {}", first_line(text)))?;
        let engine = engine_clause[..open].trim();
        let close = matching_paren(engine_clause, open)?;
        let arguments = engine_clause[open + 1..close].trim();
        let after = engine_clause[close + 1..].trim();
        if !engine.ends_with("MergeTree") || engine.starts_with("Replicated") {
            return Err(format!(
                "{name}: only single-node *MergeTree engines are transformed, not {engine}"
            ));
        }
        let path = format!(
            "'{ZOOKEEPER_ROOT}/{{shard}}/{}/{name}_local', '{{replica}}'",
            self.database
        );
        let arguments = if arguments.is_empty() {
            path
        } else {
            format!("{path}, {arguments}")
        };
        let local = format!(
            "CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER {cluster} {shape} ENGINE = Replicated{engine}({arguments}) {after}",
            table = self.qualified(&name),
            cluster = self.cluster,
        );
        self.tables.insert(name.clone());
        Ok(vec![
            Step::Sql(local.trim_end().to_owned()),
            self.distributed(&name),
        ])
    }

    fn create_view(&mut self, text: &str) -> Result<Vec<Step>, String> {
        let (name, rest) = after_name(text, &["CREATE", "MATERIALIZED", "VIEW"])?;
        let rest = rest.trim_start();
        let target_and_select = rest.strip_prefix("TO ").ok_or_else(|| {
            format!("{name}: a cluster view needs `TO target` (a view's own storage is not sharded)")
        })?;
        let (target, select) = target_and_select
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{name}: expected `TO target AS SELECT ...`"))?;
        let select = select
            .trim_start()
            .strip_prefix("AS")
            .ok_or_else(|| format!("{name}: expected `AS SELECT` after the target"))?;
        if !self.tables.contains(target) {
            return Err(format!(
                "{name} writes to {target}, which the cluster schema does not have"
            ));
        }
        Ok(vec![Step::Sql(format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {view} ON CLUSTER {cluster} TO {target}_local AS {select}",
            view = self.qualified(&name),
            cluster = self.cluster,
            target = self.qualified(target),
            select = self.localize(select.trim()),
        ))])
    }

    /// `FROM t` and `JOIN t` of the schema's tables read the shard's own `t_local`.
    fn localize(&self, select: &str) -> String {
        let mut out = String::with_capacity(select.len() + 32);
        let mut previous = String::new();
        for piece in select.split_inclusive(char::is_whitespace) {
            let word = piece.trim_end();
            let (name, tail) = word.split_at(
                word.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(word.len()),
            );
            if matches!(previous.as_str(), "FROM" | "JOIN") && self.tables.contains(name) {
                out.push_str(&format!("{}_local{tail}", self.qualified(name)));
                out.push_str(&piece[word.len()..]);
            } else {
                out.push_str(piece);
            }
            if !word.is_empty() {
                previous = word.to_ascii_uppercase();
            }
        }
        out
    }

    fn alter(&mut self, text: &str) -> Result<Vec<Step>, String> {
        let (name, rest) = after_name(text, &["ALTER", "TABLE"])?;
        if !self.tables.contains(&name) {
            return Err(format!("ALTER of {name}, which the cluster schema does not have"));
        }
        Ok(vec![
            Step::OnEachShard(format!(
                "ALTER TABLE {}_local {}",
                self.qualified(&name),
                rest.trim()
            )),
            // A Distributed table's columns are fixed when it is created.
            self.drop_distributed(&name),
            self.distributed(&name),
        ])
    }

    fn rename(&mut self, text: &str) -> Result<Vec<Step>, String> {
        let pairs_text = text["RENAME TABLE".len()..].trim();
        let mut pairs = Vec::new();
        for pair in pairs_text.split(',') {
            let words: Vec<&str> = pair.split_whitespace().collect();
            match words.as_slice() {
                [from, to_word, to] if to_word.eq_ignore_ascii_case("TO") => {
                    pairs.push((from.to_string(), to.to_string()))
                }
                _ => return Err(format!("cannot read the renaming {pair:?}")),
            }
        }
        for (from, _) in &pairs {
            if !self.tables.contains(from) {
                return Err(format!(
                    "RENAME of {from}, which the cluster schema does not have"
                ));
            }
        }
        let locals: Vec<String> = pairs
            .iter()
            .map(|(from, to)| format!("{}_local TO {}_local", self.qualified(from), self.qualified(to)))
            .collect();
        let mut statements = vec![Step::Sql(format!(
            "RENAME TABLE {} ON CLUSTER {}",
            locals.join(", "),
            self.cluster
        ))];
        statements.extend(pairs.iter().map(|(from, _)| self.drop_distributed(from)));
        for (from, _) in &pairs {
            self.tables.remove(from);
        }
        for (_, to) in &pairs {
            self.tables.insert(to.clone());
        }
        statements.extend(pairs.iter().map(|(_, to)| self.distributed(to)));
        Ok(statements)
    }

    fn drop(&mut self, text: &str) -> Result<Vec<Step>, String> {
        let (name, _) = after_name(text, &["DROP", "TABLE"])?;
        let mut statements = vec![self.drop_distributed(&name)];
        if self.tables.remove(&name) {
            statements.push(Step::Sql(format!(
                "DROP TABLE IF EXISTS {}_local ON CLUSTER {}",
                self.qualified(&name),
                self.cluster
            )));
        }
        Ok(statements)
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The name after `keywords` (and an optional `IF [NOT] EXISTS`), and the text after it.
fn after_name<'a>(text: &'a str, keywords: &[&str]) -> Result<(String, &'a str), String> {
    let mut rest = text;
    for keyword in keywords.iter().chain(&["IF", "NOT", "EXISTS"]) {
        let trimmed = rest.trim_start();
        let word_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        if trimmed[..word_end].eq_ignore_ascii_case(keyword) {
            rest = &trimmed[word_end..];
        } else if keywords.contains(keyword) {
            return Err(format!("expected {keyword} in: {}", first_line(text)));
        }
    }
    let trimmed = rest.trim_start();
    let end = trimmed
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    if end == 0 {
        return Err(format!("expected a table name in: {}", first_line(text)));
    }
    Ok((trimmed[..end].to_owned(), &trimmed[end..]))
}

/// Where `keyword` starts as a whole word outside parentheses and quotes.
fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let (mut depth, mut quoted) = (0i32, false);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ if depth == 0
                && !quoted
                && text[i..].len() >= keyword.len()
                && text[i..i + keyword.len()].eq_ignore_ascii_case(keyword)
                && (i == 0 || !(bytes[i - 1] as char).is_alphanumeric())
                && !text[i + keyword.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_') =>
            {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

fn matching_paren(text: &str, open: usize) -> Result<usize, String> {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(open + i);
                }
            }
            _ => {}
        }
    }
    Err(format!("unbalanced parentheses in: {}", first_line(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> ClusterSchema {
        ClusterSchema::new("agenttrace", "db")
    }

    /// Steps as text: a Distributed step as `<distributed t>`.
    fn run(s: &mut ClusterSchema, statement: &str) -> Vec<String> {
        s.transform(statement)
            .unwrap()
            .into_iter()
            .map(|step| match step {
                Step::Sql(sql) => sql,
                Step::OnEachShard(sql) => format!("<each shard> {sql}"),
                Step::Distributed(table) => format!("<distributed {table}>"),
            })
            .collect()
    }

    #[test]
    fn a_table_becomes_a_replicated_local_table_and_a_distributed_one() {
        let mut s = schema();
        let out = run(
            &mut s,
            "CREATE TABLE IF NOT EXISTS scores (\n project_id String, trace_id String, id String, version UInt64\n) ENGINE = ReplacingMergeTree(version)\nPARTITION BY x ORDER BY (project_id, id)",
        );
        assert!(
            out[0].starts_with(
                "CREATE TABLE IF NOT EXISTS db.scores_local ON CLUSTER agenttrace (\n project_id String"
            ),
            "{}",
            out[0]
        );
        assert!(out[0].contains("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/agenttrace/tables/{shard}/db/scores_local', '{replica}', version) PARTITION BY x ORDER BY (project_id, id)"), "{}", out[0]);
        assert_eq!(out[1], "<distributed scores>");
        let out = run(
            &mut s,
            "CREATE TABLE d (project_id String) ENGINE = SummingMergeTree() ORDER BY project_id",
        );
        assert!(out[0].contains("ReplicatedSummingMergeTree('/clickhouse/agenttrace/tables/{shard}/db/d_local', '{replica}') ORDER BY project_id"), "{}", out[0]);
    }

    /// A table that stores nothing is one per shard, written through a Distributed table; the
    /// view that reads it runs on each shard, into the shard's replicated table.
    #[test]
    fn a_null_table_is_local_to_each_shard_and_its_view_writes_the_shards_table() {
        let mut s = schema();
        run(
            &mut s,
            "CREATE TABLE postings (term String) ENGINE = ReplacingMergeTree() ORDER BY term",
        );
        let out = run(
            &mut s,
            "CREATE TABLE IF NOT EXISTS search_terms (\n project_id String,\n terms Array(String)\n) ENGINE = Null",
        );
        assert_eq!(
            out,
            [
                "CREATE TABLE IF NOT EXISTS db.search_terms_local ON CLUSTER agenttrace (\n project_id String,\n terms Array(String)\n) ENGINE = Null",
                "<distributed search_terms>"
            ]
        );
        let view = run(
            &mut s,
            "CREATE MATERIALIZED VIEW v TO postings AS\nSELECT term\nFROM search_terms\nARRAY JOIN terms AS term",
        );
        assert_eq!(
            view,
            [
                "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v ON CLUSTER agenttrace TO db.postings_local AS SELECT term\nFROM db.search_terms_local\nARRAY JOIN terms AS term"
            ]
        );
        assert_eq!(sharding_key("search_terms"), sharding_key("search_postings"));
    }

    #[test]
    fn a_distributed_table_reads_materialized_columns_as_aliases() {
        let columns = "project_id\tString\t\t\ntimestamp_us\tInt64\t\t\ntimestamp\tDateTime\tMATERIALIZED\ttoDateTime(intDiv(timestamp_us, 1000000))\nproject_name\tString\tDEFAULT\t\\'\\'\n";
        let sql = schema().distributed_table("traces", columns).unwrap();
        assert_eq!(
            sql,
            "CREATE TABLE IF NOT EXISTS db.traces ON CLUSTER agenttrace (`project_id` String, `timestamp_us` Int64, \
             `timestamp` DateTime ALIAS toDateTime(intDiv(timestamp_us, 1000000)), `project_name` String DEFAULT '') \
             ENGINE = Distributed(agenttrace, db, traces_local, cityHash64(project_id, id))"
        );
        assert!(schema().distributed_table("traces", "").is_err());
    }

    #[test]
    fn copies_views_alters_renames_and_drops_follow_the_local_tables() {
        let mut s = schema();
        run(
            &mut s,
            "CREATE TABLE traces (id String) ENGINE = ReplacingMergeTree(version) ORDER BY id",
        );
        run(
            &mut s,
            "CREATE TABLE by_time (id String) ENGINE = ReplacingMergeTree(version) ORDER BY id",
        );
        let copy = run(
            &mut s,
            "CREATE TABLE traces_reordered AS traces\nENGINE = ReplacingMergeTree(version) ORDER BY (project_id, id)\nSETTINGS index_granularity = 1024",
        );
        assert!(copy[0].contains("db.traces_reordered_local ON CLUSTER agenttrace AS db.traces_local ENGINE = ReplicatedReplacingMergeTree("), "{}", copy[0]);
        assert!(copy[0].ends_with("SETTINGS index_granularity = 1024"));
        let view = run(
            &mut s,
            "CREATE MATERIALIZED VIEW v TO by_time AS\nSELECT id, version\nFROM traces\nWHERE 1",
        );
        assert_eq!(
            view,
            [
                "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v ON CLUSTER agenttrace TO db.by_time_local AS SELECT id, version\nFROM db.traces_local\nWHERE 1"
            ]
        );
        let alter = run(&mut s, "ALTER TABLE traces ADD COLUMN public UInt8 DEFAULT 0");
        assert_eq!(
            alter,
            [
                "<each shard> ALTER TABLE db.traces_local ADD COLUMN public UInt8 DEFAULT 0",
                "DROP TABLE IF EXISTS db.traces ON CLUSTER agenttrace",
                "<distributed traces>"
            ]
        );
        let rename = run(
            &mut s,
            "RENAME TABLE\n traces TO traces_by_id,\n traces_reordered TO traces",
        );
        assert_eq!(
            rename,
            [
                "RENAME TABLE db.traces_local TO db.traces_by_id_local, db.traces_reordered_local TO db.traces_local ON CLUSTER agenttrace",
                "DROP TABLE IF EXISTS db.traces ON CLUSTER agenttrace",
                "DROP TABLE IF EXISTS db.traces_reordered ON CLUSTER agenttrace",
                "<distributed traces_by_id>",
                "<distributed traces>"
            ]
        );
        assert_eq!(run(&mut s, "DROP TABLE traces_by_id").len(), 2);
        assert_eq!(
            run(&mut s, "DROP TABLE IF EXISTS v"),
            ["DROP TABLE IF EXISTS db.v ON CLUSTER agenttrace"]
        );
        assert!(
            s.transform("OPTIMIZE TABLE traces FINAL")
                .unwrap_err()
                .contains("does not know")
        );
        assert!(s.transform("ALTER TABLE nowhere ADD COLUMN x UInt8").is_err());
    }

    #[test]
    fn a_partition_id_names_its_months_first_microsecond() {
        assert_eq!(month_start_us("197001"), Some(0));
        assert_eq!(month_start_us("202611"), Some(1_793_491_200_000_000));
        assert_eq!(month_start_us("202403"), Some(1_709_251_200_000_000));
        assert_eq!(month_start_us("all"), None);
    }

    #[test]
    fn every_version_of_a_row_and_a_traces_rows_share_a_shard() {
        assert_eq!(sharding_key("traces"), sharding_key("traces_reordered"));
        assert_eq!(sharding_key("observations"), "cityHash64(project_id, trace_id)");
        // A trace's own row hashes its id as observations hash their trace id.
        assert_eq!(sharding_key("traces"), "cityHash64(project_id, id)");
    }

    #[test]
    fn every_embedded_migration_transforms() {
        let set = crate::migrate::MigrationSet::embedded().unwrap();
        let mut s = schema();
        for migration in &set.clickhouse {
            for statement in crate::migrate::split_statements(&migration.sql) {
                s.transform(&statement)
                    .unwrap_or_else(|e| panic!("{}: {e}", migration.name));
            }
        }
        assert!(s.tables.contains("observations") && !s.tables.contains("observations_by_id"));
    }
}
