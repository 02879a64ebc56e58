//! A small ClickHouse HTTP client: statements, text queries and raw-body inserts.
//!
//! HTTP works the same on ClickHouse 18.16 and on modern servers, and lets the loader stream
//! pre-encoded columnar bodies (`Native`, `ArrowStream`) without a row-oriented client layer.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;

use crate::clickhouse::compression::Compression;

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse is unreachable at {url}: {source}")]
    Unavailable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("ClickHouse answered HTTP {status}: {message}")]
    Server {
        status: u16,
        code: Option<u32>,
        message: String,
    },
    /// The cluster cannot be reached as configured (a shard none of its listed nodes is on).
    #[error("{0}")]
    Cluster(String),
}

/// A limit of the read profile a query ran into (ClickHouse's error code says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceededLimit {
    /// The ClickHouse setting, as the docs name it.
    pub setting: &'static str,
    /// What the caller can do about it.
    pub advice: &'static str,
    /// Too many queries at once: the same query may pass later.
    pub busy: bool,
}

impl ClickHouseError {
    /// The limit this error reports, when it reports one.
    pub fn exceeded_limit(&self) -> Option<ExceededLimit> {
        let ClickHouseError::Server { code: Some(code), .. } = self else {
            return None;
        };
        let narrow = "narrow it: a shorter time range, fewer columns, or aggregate in the query";
        let (setting, advice, busy) = match code {
            158 => ("max_rows_to_read / max_result_rows", narrow, false),
            159 => ("max_execution_time", narrow, false),
            241 => ("max_memory_usage", narrow, false),
            307 => ("max_bytes_to_read / max_result_bytes", narrow, false),
            396 => (
                "max_result_rows / max_result_bytes",
                "ask for fewer rows (LIMIT) or export the table",
                false,
            ),
            202 => (
                "max_concurrent_queries_for_user",
                "retry after the Retry-After seconds",
                true,
            ),
            _ => return None,
        };
        Some(ExceededLimit {
            setting,
            advice,
            busy,
        })
    }

    /// Whether retrying the same request later may succeed (the server is down, overloaded
    /// or hit a limit), as opposed to a request that is wrong and will fail again.
    pub fn is_transient(&self) -> bool {
        match self {
            ClickHouseError::Unavailable { .. } => true,
            ClickHouseError::Server { status, code, .. } => {
                // 159 timeout, 202 too many queries, 203 no free connection, 209/210 socket
                // timeout / network error, 241 memory limit, 252 too many parts,
                // 242 table is read only, 319 unknown status of insert, 425 system error;
                // on a cluster: 279 no shard replica reachable, 285 too few live replicas,
                // 286 the previous quorum write is unfinished, 999 ZooKeeper.
                matches!(
                    code,
                    Some(159 | 202 | 203 | 209 | 210 | 241 | 242 | 252 | 279 | 285 | 286 | 319 | 425 | 999)
                ) || (code.is_none() && *status >= 500)
            }
            ClickHouseError::Cluster(_) => false,
        }
    }

    /// Whether this refuses an `ADD COLUMN` because the column is there already (18.16 has no
    /// `ADD COLUMN IF NOT EXISTS`): what re-running an interrupted migration meets.
    pub fn is_existing_column(&self) -> bool {
        matches!(self, ClickHouseError::Server { code: Some(44), message, .. }
            if message.contains("column with this name already exists"))
    }
}

/// Whether `statement` is an `ALTER` that adds columns.
fn adds_columns(statement: &str) -> bool {
    let upper = statement.to_ascii_uppercase();
    upper.trim_start().starts_with("ALTER TABLE") && upper.contains("ADD COLUMN")
}

/// Extracts `N` from ClickHouse's `Code: N, e.displayText() = ...` error text.
fn error_code(message: &str) -> Option<u32> {
    let rest = message.trim_start().strip_prefix("Code: ")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The cluster (its name in the servers' `<remote_servers>`) when ClickHouse is one: the
    /// schema is then the clustered one (`cluster.rs`) and mutations run on every shard.
    pub cluster: Option<String>,
    /// The HTTP URLs of the cluster's nodes (`CLICKHOUSE_CLUSTER_URLS`), at least one replica
    /// of each shard: statements that must run once per shard (`cluster::on_each_shard`) go
    /// to them. Empty means `url` alone.
    pub node_urls: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ClickHouse {
    http: reqwest::Client,
    config: ClickHouseConfig,
    /// Every request carries `readonly=1`, last on the URL (see [`ClickHouse::reader`]).
    read_only: bool,
    /// The custom setting a row policy on `project_id` reads (modern ClickHouse; see
    /// `docs/security.md`), and the project a [`ClickHouse::for_project`] handle reads for.
    project_setting: Option<String>,
    project: Option<String>,
}

impl ClickHouse {
    pub fn new(config: ClickHouseConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("the HTTP client builds with static settings");
        ClickHouse {
            http,
            config,
            read_only: false,
            project_setting: None,
            project: None,
        }
    }

    pub fn cluster(&self) -> Option<&str> {
        self.config.cluster.as_deref()
    }

    pub fn database(&self) -> &str {
        &self.config.database
    }

    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The same server and database for callers' reads: every request is `readonly=1`
    /// whatever its call site sends, as `credentials` (the reader user, confined to the
    /// database with the read profile's limits) when given.
    pub fn reader(&self, credentials: Option<(&str, Option<&str>)>) -> Self {
        let mut config = self.config.clone();
        if let Some((user, password)) = credentials {
            config.user = Some(user.to_owned());
            config.password = password.map(str::to_owned);
        }
        ClickHouse {
            http: self.http.clone(),
            config,
            read_only: true,
            project_setting: self.project_setting.clone(),
            project: None,
        }
    }

    /// Reads through this handle also send `setting=<project>` (before `readonly`), for a row
    /// policy `USING project_id = getSetting('<setting>')` on servers that have row policies.
    pub fn with_project_setting(mut self, setting: Option<&str>) -> Self {
        self.project_setting = setting.filter(|s| !s.is_empty()).map(str::to_owned);
        self
    }

    /// This reader for one project's reads: with a project setting configured, the server's
    /// row policy confines them to `project` whatever the SQL says.
    pub fn for_project(&self, project: uuid::Uuid) -> Self {
        ClickHouse {
            project: Some(project.to_string()),
            ..self.clone()
        }
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        let mut config = self.config.clone();
        config.database = database.to_owned();
        ClickHouse {
            http: self.http.clone(),
            config,
            read_only: self.read_only,
            project_setting: self.project_setting.clone(),
            project: self.project.clone(),
        }
    }

    pub fn node_urls(&self) -> &[String] {
        &self.config.node_urls
    }

    /// The cluster's nodes to reach one by one: `node_urls`, or the configured server alone.
    pub fn nodes(&self) -> Vec<ClickHouse> {
        let urls = if self.config.node_urls.is_empty() {
            std::slice::from_ref(&self.config.url)
        } else {
            &self.config.node_urls[..]
        };
        urls.iter()
            .map(|url| {
                let mut config = self.config.clone();
                config.url = url.clone();
                ClickHouse {
                    http: self.http.clone(),
                    config,
                    read_only: self.read_only,
                    project_setting: self.project_setting.clone(),
                    project: self.project.clone(),
                }
            })
            .collect()
    }

    fn unavailable(&self, source: reqwest::Error) -> ClickHouseError {
        ClickHouseError::Unavailable {
            url: self.config.url.clone(),
            source,
        }
    }

    /// Sends one request; a non-2xx answer becomes an error carrying ClickHouse's message.
    async fn request(
        &self,
        params: &[(&str, &str)],
        body: Bytes,
        compression: Compression,
    ) -> Result<reqwest::Response, ClickHouseError> {
        // `readonly` goes last: it freezes every setting after it.
        let readonly = ("readonly", "1");
        let mut query: Vec<(&str, &str)> = params.iter().copied().filter(|p| *p != readonly).collect();
        if self.read_only
            && let (Some(setting), Some(project)) = (&self.project_setting, &self.project)
        {
            query.push((setting, project));
        }
        if self.read_only || params.contains(&readonly) {
            query.push(readonly);
        }
        let mut request = self.http.post(&self.config.url).query(&query).body(body);
        if let Some(user) = &self.config.user {
            request = request.basic_auth(user, self.config.password.as_deref());
        }
        match compression {
            Compression::None => {}
            Compression::Lz4 => request = request.query(&[("decompress", "1")]),
            Compression::Gzip(_) => request = request.header(reqwest::header::CONTENT_ENCODING, "gzip"),
        }
        let response = request.send().await.map_err(|e| self.unavailable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(|e| self.unavailable(e))?;
        let message = String::from_utf8_lossy(&body).trim().to_owned();
        Err(ClickHouseError::Server {
            status: status.as_u16(),
            code: error_code(&message),
            message,
        })
    }

    async fn send(
        &self,
        database: Option<&str>,
        query: Option<&str>,
        body: Bytes,
        compression: Compression,
    ) -> Result<Bytes, ClickHouseError> {
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(database) = database {
            params.push(("database", database));
        }
        if let Some(query) = query {
            params.push(("query", query));
        }
        let response = self.request(&params, body, compression).await?;
        response.bytes().await.map_err(|e| self.unavailable(e))
    }

    /// Runs one statement in the configured database.
    pub async fn execute(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.query(sql).await.map(drop)
    }

    /// Runs a schema statement that may be a re-run: an `ADD COLUMN` that finds its column
    /// already there counts as done, so a migration interrupted after some of its columns were
    /// added can run again whole.
    pub async fn execute_rerunnable(&self, statement: &str) -> Result<(), ClickHouseError> {
        match self.execute(statement).await {
            Err(error) if error.is_existing_column() && adds_columns(statement) => Ok(()),
            result => result,
        }
    }

    /// Runs one statement outside any database (to create or drop one).
    pub async fn execute_on_server(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.send(
            None,
            None,
            Bytes::copy_from_slice(sql.as_bytes()),
            Compression::None,
        )
        .await
        .map(drop)
    }

    /// Runs a query outside any database (the database may not exist yet) and returns its text.
    pub async fn query_on_server(&self, sql: &str) -> Result<String, ClickHouseError> {
        let body = self
            .send(
                None,
                None,
                Bytes::copy_from_slice(sql.as_bytes()),
                Compression::None,
            )
            .await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Runs a query and returns the response body (use a `FORMAT` clause to pick its shape).
    pub async fn query(&self, sql: &str) -> Result<Bytes, ClickHouseError> {
        self.send(
            Some(&self.config.database),
            None,
            Bytes::copy_from_slice(sql.as_bytes()),
            Compression::None,
        )
        .await
    }

    /// Runs a query with `settings` (on the URL, in order: put `readonly` last) and returns the
    /// whole body; for answers known to be small.
    pub async fn query_with_settings(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<Bytes, ClickHouseError> {
        let response = self.query_streaming(sql, settings).await?;
        response.bytes().await.map_err(|e| self.unavailable(e))
    }

    /// The server's clock, in whole seconds since the epoch: what `ingested_second` is read by.
    pub async fn clock(&self) -> Result<i64, String> {
        self.query_text("SELECT toUInt32(now()) FORMAT TabSeparated")
            .await
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|e| format!("reading ClickHouse's clock: {e}"))
    }

    /// Waits until the server's clock has passed `second` (a job reads completed seconds only).
    pub async fn wait_past(&self, second: i64) -> Result<(), String> {
        while self.clock().await? <= second {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Runs a query and returns its text output.
    pub async fn query_text(&self, sql: &str) -> Result<String, ClickHouseError> {
        let body = self.query(sql).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends `data` for an `INSERT ... FORMAT ...` statement, compressed as `compression` says.
    pub async fn insert(
        &self,
        insert_sql: &str,
        data: Bytes,
        compression: Compression,
    ) -> Result<(), ClickHouseError> {
        self.send(Some(&self.config.database), Some(insert_sql), data, compression)
            .await
            .map(drop)
    }

    /// Starts a query and returns the response once ClickHouse has accepted it, so its body
    /// can be read chunk by chunk. `settings` go on the URL, in order (put `readonly` last).
    pub async fn query_streaming(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClickHouseError> {
        let mut params: Vec<(&str, &str)> = vec![("database", &self.config.database)];
        params.extend_from_slice(settings);
        self.request(&params, Bytes::copy_from_slice(sql.as_bytes()), Compression::None)
            .await
    }

    /// The server version, e.g. `18.16.1` or `25.3.2.39`.
    pub async fn version(&self) -> Result<String, ClickHouseError> {
        let body = self
            .send(
                None,
                None,
                Bytes::from_static(b"SELECT version()"),
                Compression::None,
            )
            .await?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }

    pub async fn ping(&self) -> Result<(), ClickHouseError> {
        self.send(None, None, Bytes::from_static(b"SELECT 1"), Compression::None)
            .await
            .map(drop)
    }
}

/// `value` as a ClickHouse string literal. A backslash and a quote are escaped, so the literal
/// ends where it should on every ClickHouse version; control characters are escaped as well,
/// so a statement stays on one line and free of NUL bytes when it is logged. The rest, UTF-8
/// included, is kept as it is.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii_control() => {
                write!(out, "\\x{:02X}", u32::from(c)).expect("writing to a String cannot fail")
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Each value quoted ([`quote`]), comma-separated: the inside of an `IN (…)` list.
pub fn quote_list<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> String {
    values
        .into_iter()
        .map(|v| quote(v.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Quotes an identifier (database, table or column name).
pub fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_column_is_recognised_only_in_an_add_column() {
        let existing = ClickHouseError::Server {
            status: 500,
            code: Some(44),
            message: "Code: 44, e.displayText() = DB::Exception: Cannot add column a: column with this name already exists".into(),
        };
        assert!(existing.is_existing_column());
        let other = ClickHouseError::Server {
            status: 500,
            code: Some(44),
            message: "Code: 44, e.displayText() = DB::Exception: Illegal column".into(),
        };
        assert!(!other.is_existing_column());
        assert!(adds_columns("ALTER TABLE db.t_local ADD COLUMN a UInt8"));
        assert!(adds_columns("alter table t add column a UInt8 DEFAULT 0"));
        assert!(!adds_columns("ALTER TABLE t DELETE WHERE 1"));
        assert!(!adds_columns("CREATE TABLE t (a UInt8) ENGINE = Memory"));
    }

    #[test]
    fn parses_error_codes() {
        assert_eq!(
            error_code("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist"),
            Some(60)
        );
        assert_eq!(error_code("Code: 252. DB::Exception: Too many parts"), Some(252));
        assert_eq!(error_code("Bad Gateway"), None);
    }

    #[test]
    fn transient_errors_are_retryable_and_mistakes_are_not() {
        let server = |status, message: &str| ClickHouseError::Server {
            status,
            code: error_code(message),
            message: message.into(),
        };
        assert!(server(500, "Code: 252, e.displayText() = Too many parts").is_transient());
        assert!(server(503, "Service Unavailable").is_transient());
        assert!(!server(500, "Code: 62, e.displayText() = Syntax error").is_transient());
        assert!(!server(404, "Code: 60, e.displayText() = Unknown table").is_transient());
    }

    #[test]
    fn quotes_literals_and_identifiers() {
        assert_eq!(quote(r"it's a \ test"), r"'it\'s a \\ test'");
        assert_eq!(quote_identifier("we`ird"), r"`we\`ird`");
    }
}
