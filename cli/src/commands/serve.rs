//! `agenttrace serve`: the ETL service, until SIGINT or SIGTERM (in-flight batches finish).

use std::time::Duration;

use agenttrace_etl::clickhouse::compression::Compression;
use agenttrace_etl::clickhouse::insert::WireFormat;
use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::http::ServeConfig;
use agenttrace_etl::http::throttle::SignInLimits;
use agenttrace_etl::ingest::signing::Keyring;
use clap::Args;

use crate::DatabaseArgs;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WireFormatArg {
    /// Choose from the server version (ArrowStream on 21.x and later, Native before).
    Auto,
    Native,
    ArrowStream,
}

/// How insert bodies travel to ClickHouse.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressionArg {
    /// ClickHouse's own LZ4 blocks: little CPU on either side.
    Lz4,
    /// gzip at `--gzip-level`: smaller, for a ClickHouse across a slow link.
    Gzip,
    None,
}

impl CompressionArg {
    pub fn with_level(self, gzip_level: u32) -> Compression {
        match self {
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Gzip => Compression::Gzip(gzip_level.clamp(1, 9)),
            CompressionArg::None => Compression::None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address and port to serve on.
    #[arg(long, env = "AGENTTRACE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Secrets the edge signs batches with: `id:secret[,id:secret...]` (several during rotation).
    #[arg(long, env = "AGENTTRACE_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: String,
    /// Let model connections reach loopback and private addresses (a local vLLM, Ollama or
    /// llama.cpp). Off by default: a tenant's base URL could otherwise reach this network.
    #[arg(
        long,
        env = "AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true"
    )]
    pub allow_private_model_urls: bool,
    /// How long API key answers are cached (0 disables the cache).
    #[arg(long, env = "AGENTTRACE_KEY_CACHE_TTL_SECS", default_value_t = 30)]
    pub key_cache_ttl_secs: u64,
    /// How often the model price table is read again, in seconds.
    #[arg(long, env = "AGENTTRACE_PRICE_REFRESH_SECS", default_value_t = 60)]
    pub price_refresh_secs: u64,
    /// PostgreSQL connections this process keeps at most.
    #[arg(long, env = "AGENTTRACE_POSTGRES_POOL_SIZE", default_value_t = 16)]
    pub postgres_pool_size: usize,
    /// Most rows coalesced into one ClickHouse insert.
    #[arg(long, env = "AGENTTRACE_MAX_ROWS_PER_INSERT", default_value_t = 200_000)]
    pub max_rows_per_insert: usize,
    /// Most MiB (of columns in memory) coalesced into one ClickHouse insert.
    #[arg(long, env = "AGENTTRACE_MAX_MIB_PER_INSERT", default_value_t = 64)]
    pub max_mib_per_insert: usize,
    /// Longest time rows wait for other requests' rows to share an insert, in milliseconds.
    #[arg(long, env = "AGENTTRACE_MAX_INSERT_WAIT_MS", default_value_t = 500)]
    pub max_insert_wait_ms: u64,
    /// How long an insert still waits, once no request is being prepared, for another to begin,
    /// in milliseconds.
    #[arg(
        long,
        env = "AGENTTRACE_INSERT_LINGER_MS",
        default_value_t = LoaderOptions::default().insert_linger.as_millis() as u64
    )]
    pub insert_linger_ms: u64,
    /// Concurrent inserts per table.
    #[arg(long, env = "AGENTTRACE_INSERTS_IN_FLIGHT", default_value_t = 2)]
    pub inserts_in_flight: usize,
    /// How insert bodies are compressed.
    #[arg(long, env = "AGENTTRACE_COMPRESSION", value_enum, default_value_t = CompressionArg::Lz4)]
    pub compression: CompressionArg,
    /// gzip level (1–9) with `--compression gzip`.
    #[arg(long, env = "AGENTTRACE_GZIP_LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub gzip_level: u32,
    /// The format of insert bodies.
    #[arg(long, env = "AGENTTRACE_WIRE_FORMAT", value_enum, default_value_t = WireFormatArg::Auto)]
    pub wire_format: WireFormatArg,
    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`); without it, plain HTTP
    /// for a proxy or a private network in front.
    #[arg(long, env = "AGENTTRACE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "AGENTTRACE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// A token `GET /metrics` then requires (`Authorization: Bearer …`): the metrics name every
    /// project by id. Required with `--tls-cert`; unset, anyone who reaches the ETL reads them.
    #[arg(long, env = "AGENTTRACE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl ServeArgs {
    pub fn config(&self, databases: &DatabaseArgs) -> anyhow::Result<ServeConfig> {
        let config = ServeConfig {
            database_url: databases.database_url.clone(),
            clickhouse: databases.clickhouse(),
            reader: databases.clickhouse_reader(),
            sealer: databases.sealer()?,
            allow_private_model_urls: self.allow_private_model_urls,
            keyring: Keyring::parse(&self.signing_keys).map_err(anyhow::Error::msg)?,
            key_cache_ttl: Duration::from_secs(self.key_cache_ttl_secs),
            price_refresh: Duration::from_secs(self.price_refresh_secs),
            postgres_pool_size: self.postgres_pool_size,
            loader: LoaderOptions {
                max_rows_per_insert: self.max_rows_per_insert,
                max_bytes_per_insert: self.max_mib_per_insert << 20,
                max_insert_wait: Duration::from_millis(self.max_insert_wait_ms),
                insert_linger: Duration::from_millis(self.insert_linger_ms),
                inserts_in_flight: self.inserts_in_flight,
                compression: self.compression.with_level(self.gzip_level),
                format: match self.wire_format {
                    WireFormatArg::Auto => None,
                    WireFormatArg::Native => Some(WireFormat::Native),
                    WireFormatArg::ArrowStream => Some(WireFormat::ArrowStream),
                },
                ..LoaderOptions::default()
            },
            sign_in_limits: SignInLimits::default(),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => {
                    Some(agenttrace_etl::http::tls::server_config(cert, key).map_err(anyhow::Error::msg)?)
                }
                _ => None,
            },
            metrics_token: self.metrics_token.clone().filter(|token| !token.is_empty()),
        };
        // Serving HTTPS means serving a network: the metrics name every project by id.
        anyhow::ensure!(
            config.tls.is_none() || config.metrics_token.is_some(),
            "--tls-cert serves the ETL to a network, where GET /metrics must not be open: set \
             AGENTTRACE_METRICS_TOKEN (or --metrics-token) to a secret Prometheus sends as a bearer \
             token (`openssl rand -hex 32` makes one)"
        );
        Ok(config)
    }
}

/// Longest a stop waits for requests in flight: above the longest a batch takes to be
/// acknowledged (its inserts' retries), under a supervisor's stop timeout.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

pub async fn run(args: ServeArgs, databases: &DatabaseArgs) -> anyhow::Result<()> {
    let server = agenttrace_etl::http::start(args.config(databases)?, args.listen)
        .await
        .map_err(anyhow::Error::msg)?;
    crate::until_stopped().await?;
    tracing::info!("shutting down: finishing in-flight batches");
    // Within a supervisor's stop timeout (docs/deploy.md: 30 s): a connection that never
    // finishes its request must not make every stop end in SIGKILL.
    match tokio::time::timeout(SHUTDOWN_DEADLINE, server.shutdown()).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            "connections still open {} s after the stop signal: exiting without them",
            SHUTDOWN_DEADLINE.as_secs()
        ),
    }
    Ok(())
}
