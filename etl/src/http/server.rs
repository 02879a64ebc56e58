//! The service's state, configuration and lifecycle (`agenttrace serve`).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::serve::ListenerExt;
use deadpool_postgres::Pool;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::clickhouse::ClickHouse;
use crate::clickhouse::loader::{ClickHouseSink, LoaderOptions};
use crate::control::sealing::Sealer;
use crate::http::throttle::{SignInGuard, SignInLimits};
use crate::http::tls::TlsListener;
use crate::ingest::Ingestor;
use crate::ingest::key_status::KeyCache;
use crate::ingest::pricing::PriceCache;
use crate::ingest::signing::Keyring;
use crate::judge::provider::ModelClient;

/// What every handler can reach.
pub struct AppState {
    pub ingestor: Ingestor,
    pub postgres: Pool,
    pub clickhouse: ClickHouse,
    /// What callers' reads, queries and exports run as (see [`ServeConfig::reader`]); a
    /// handler reads through `reader.for_project(project)`, checked by a test.
    pub reader: ClickHouse,
    pub sealer: Option<Sealer>,
    /// What judges and "test connection" call providers with.
    pub model_client: ModelClient,
    pub metrics: PrometheusHandle,
    /// What `GET /metrics` must bear, when set ([`crate::http::health::metrics`]).
    pub metrics_token: Option<String>,
    pub sign_in: SignInGuard,
}

/// The process-wide Prometheus recorder (installed once, shared by every server in a process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Everything `agenttrace serve` needs.
pub struct ServeConfig {
    pub database_url: String,
    pub clickhouse: ClickHouse,
    /// The connection for callers' reads: in production a ClickHouse user confined to the
    /// database with the read profile's limits (`docs/`), so a guard bug cannot write or
    /// leave the database.
    pub reader: ClickHouse,
    /// Seals provider keys (`AGENTTRACE_ENCRYPTION_KEY`); `None`: connections cannot be stored.
    pub sealer: Option<Sealer>,
    /// Whether model connections may reach loopback and private addresses (a local model server).
    pub allow_private_model_urls: bool,
    pub keyring: Keyring,
    pub key_cache_ttl: Duration,
    pub price_refresh: Duration,
    pub postgres_pool_size: usize,
    pub loader: LoaderOptions,
    /// Failed sign-ins allowed per client address and per email.
    pub sign_in_limits: SignInLimits,
    /// Serve HTTPS with this certificate ([`crate::http::tls::server_config`]); `None`: HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bearer token `GET /metrics` requires; `None`: anyone who reaches the ETL reads them.
    pub metrics_token: Option<String>,
}

/// A running service; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The deletion worker ([`crate::deletion::Worker`]), stopped with the server.
    deletions: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.deletions.abort();
        self.task.await.map_err(std::io::Error::other)?
    }

    /// Waits until the server stops on its own (it does not, short of an I/O error).
    pub async fn wait(self) -> std::io::Result<()> {
        let _keep_running = self.stop;
        self.task.await.map_err(std::io::Error::other)?
    }
}

enum Listener {
    Plain(tokio::net::TcpListener),
    Tls(TlsListener),
}

/// Binds `listen` and serves until shut down.
pub async fn start(config: ServeConfig, listen: std::net::SocketAddr) -> Result<RunningServer, String> {
    let pool = crate::postgres::pool(&config.database_url, config.postgres_pool_size)?;
    let prices = PriceCache::default();
    prices.spawn_refresh(pool.clone(), config.price_refresh);
    let sink = ClickHouseSink::start(config.clickhouse.clone(), config.loader);
    let deletions = crate::deletion::Worker {
        postgres: pool.clone(),
        clickhouse: config.clickhouse.clone(),
    }
    .spawn();
    let state = Arc::new(AppState {
        ingestor: Ingestor {
            keyring: config.keyring,
            pool: pool.clone(),
            clickhouse: config.clickhouse.clone(),
            sink,
            prices,
            key_cache: KeyCache::new(config.key_cache_ttl, 100_000),
        },
        postgres: pool,
        clickhouse: config.clickhouse,
        reader: config.reader,
        sealer: config.sealer,
        model_client: ModelClient::new(config.allow_private_model_urls),
        metrics: metrics_handle(),
        metrics_token: config.metrics_token,
        sign_in: SignInGuard::new(config.sign_in_limits),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = match config.tls {
        None => Listener::Plain(listener),
        Some(tls) => Listener::Tls(TlsListener::new(listener, tls).map_err(|e| e.to_string())?),
    };
    tracing::info!(%addr, https = matches!(listener, Listener::Tls(_)), "ETL listening");
    let task = tokio::spawn(async move {
        // The peer's address, for the sign-in throttle (`ClientAddress`).
        let service = crate::http::router::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let stopped = async {
            let _ = stopped.await;
        };
        match listener {
            Listener::Plain(tcp) => axum::serve(tcp, service).with_graceful_shutdown(stopped).await,
            // `tap_io` (a no-op here) is what gives any listener's connections their peer address.
            Listener::Tls(tls) => {
                axum::serve(tls.tap_io(|_| {}), service)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        }
    });
    Ok(RunningServer {
        addr,
        stop,
        task,
        deletions,
    })
}

#[cfg(test)]
mod tests {
    /// Every read of a caller's goes through `reader.for_project(..)`, so that on servers
    /// with row policies the project setting is sent with each of them.
    #[test]
    fn every_read_names_its_project() {
        let http = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut reads = 0;
        for dir in [http.clone(), http.join("control")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("server.rs") {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                for (at, _) in source.match_indices("state.reader") {
                    reads += 1;
                    assert!(
                        source[at..].starts_with("state.reader.for_project("),
                        "{}: a read through state.reader without .for_project(project)",
                        path.display()
                    );
                }
            }
        }
        assert!(reads >= 12, "{reads} reads found");
    }
}
