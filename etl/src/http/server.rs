//! The service's state, configuration and lifecycle (`agenttrace serve`).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
        let router = crate::http::router::router(state);
        let stopped = async {
            let _ = stopped.await;
        };
        match listener {
            Listener::Plain(tcp) => serve(tcp, router, stopped, HEADER_READ_TIMEOUT).await,
            Listener::Tls(tls) => serve(tls, router, stopped, HEADER_READ_TIMEOUT).await,
        }
        Ok(())
    });
    Ok(RunningServer {
        addr,
        stop,
        task,
        deletions,
    })
}

/// How long a connection may take to send a request's headers, counted from when it is ready
/// for one (so a connection left idle that long is closed too): a client that opens connections
/// and sends nothing, or a byte at a time, does not keep them.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener`'s connections until `stopped`, then lets the open ones finish
/// their requests. Each connection's requests carry its peer's address (`ConnectInfo`, for the
/// sign-in throttle) and must send their headers within `header_timeout`.
async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    stopped: impl Future<Output = ()>,
    header_timeout: Duration,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower_layer::Layer;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => break,
        };
        let service = axum::Extension(axum::extract::ConnectInfo(peer)).layer(router.clone());
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::extract::ConnectInfo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection that sends its headers too slowly (or nothing) is closed; one that sends
    /// them in time is answered, with its peer's address known to the handler; stopping lets
    /// an open request finish.
    #[tokio::test]
    async fn slow_headers_are_cut_off_and_requests_know_their_peer() {
        let router = axum::Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve(
            tcp,
            router,
            async {
                let _ = stopped.await;
            },
            Duration::from_millis(300),
        ));

        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
        assert!(
            read.is_ok(),
            "a connection that never finished its headers is closed"
        );
        let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut Vec::new())).await;
        assert!(read.is_ok(), "an idle connection is closed");

        let mut prompt = tokio::net::TcpStream::connect(addr).await.unwrap();
        let local = prompt.local_addr().unwrap();
        prompt
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        prompt.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&local.to_string()), "{answer}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops")
            .unwrap();
    }
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
