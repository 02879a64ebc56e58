//! The ETL's HTTP service.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/batches` | a signed batch from the edge (gzip accepted) → per-event outcomes |
//! | `POST /v1/keys/verify` | signed by the edge: `{public_key, secret_key}` → project or reason |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | PostgreSQL and ClickHouse answer |
//! | `GET /metrics` | Prometheus metrics |

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::MAX_BATCH_BYTES;
use agenttrace_schemas::signature::{KEY_ID_HEADER, SIGNATURE_HEADER};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;
use tower_http::decompression::RequestDecompressionLayer;

use crate::clickhouse::ClickHouse;
use crate::ingest::{IngestError, Ingestor};
use crate::keys;

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: u32 = 2;

pub struct AppState {
    pub ingestor: Ingestor,
    pub clickhouse: ClickHouse,
    pub metrics: PrometheusHandle,
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

pub fn router(state: Arc<AppState>) -> Router {
    // The limit applies to the decompressed body, so a gzip bomb stops at MAX_BATCH_BYTES.
    let batches = Router::new()
        .route("/v1/batches", post(post_batch))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .layer(RequestDecompressionLayer::new());
    Router::new()
        .merge(batches)
        .route(
            "/v1/keys/verify",
            post(verify_key).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(state): State<Arc<AppState>>| async move { state.metrics.render() }),
        )
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (status, Json(json!({ "error": code, "message": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = match &self {
            IngestError::Auth(_) | IngestError::Key(_) | IngestError::WrongProject { .. } => {
                StatusCode::UNAUTHORIZED
            }
            IngestError::InvalidBatch(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.code(), &self.to_string())
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn post_batch(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let result = state
        .ingestor
        .ingest(
            &body,
            header_str(&headers, KEY_ID_HEADER),
            header_str(&headers, SIGNATURE_HEADER),
        )
        .await;
    metrics::histogram!("agenttrace_batch_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(response) => Json(response).into_response(),
        Err(error) => {
            metrics::counter!("agenttrace_batches_total", "outcome" => error.code()).increment(1);
            if matches!(error, IngestError::Internal(_)) {
                tracing::error!(%error, "batch failed");
            }
            error.into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    public_key: String,
    secret_key: String,
}

async fn verify_key(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = Timestamp::now().as_micros() / 1_000_000;
    let ingestor = &state.ingestor;
    if let Err(error) = ingestor.keyring.verify(
        header_str(&headers, KEY_ID_HEADER),
        header_str(&headers, SIGNATURE_HEADER),
        &body,
        now,
    ) {
        return IngestError::from(error).into_response();
    }
    let request: VerifyRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, "invalid_request", &error.to_string()),
    };
    let client = match ingestor.pool.get().await {
        Ok(client) => client,
        Err(error) => {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &error.to_string());
        }
    };
    match keys::verify_key(&**client, &request.public_key, &request.secret_key).await {
        Ok(Ok(key)) => Json(json!({ "project_id": key.project_id, "scopes": key.scopes })).into_response(),
        Ok(Err(rejection)) => {
            error_response(StatusCode::UNAUTHORIZED, rejection.code(), &rejection.to_string())
        }
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &error.to_string()),
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let postgres = match state.ingestor.pool.get().await {
        Ok(client) => client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    let clickhouse = state.clickhouse.ping().await.map_err(|e| e.to_string());
    let status = if postgres.is_ok() && clickhouse.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let describe = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_owned(),
        Err(error) => error.clone(),
    };
    (
        status,
        Json(json!({ "postgres": describe(&postgres), "clickhouse": describe(&clickhouse) })),
    )
        .into_response()
}

/// Everything `agenttrace serve` needs.
pub struct ServeConfig {
    pub database_url: String,
    pub clickhouse: ClickHouse,
    pub keyring: crate::auth::Keyring,
    pub key_cache_ttl: std::time::Duration,
    pub price_refresh: std::time::Duration,
    pub postgres_pool_size: usize,
    pub loader: crate::loader::LoaderOptions,
}

/// A running service; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(std::io::Error::other)?
    }

    /// Waits until the server stops on its own (it does not, short of an I/O error).
    pub async fn wait(self) -> std::io::Result<()> {
        let _keep_running = self.stop;
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds `listen` and serves until shut down.
pub async fn start(config: ServeConfig, listen: std::net::SocketAddr) -> Result<RunningServer, String> {
    let pool = crate::postgres::pool(&config.database_url, config.postgres_pool_size)?;
    let prices = crate::pricing::PriceCache::default();
    prices.spawn_refresh(pool.clone(), config.price_refresh);
    let sink = crate::loader::ClickHouseSink::start(config.clickhouse.clone(), config.loader);
    let state = Arc::new(AppState {
        ingestor: Ingestor {
            keyring: config.keyring,
            pool,
            sink,
            prices,
            key_cache: crate::auth::KeyCache::new(config.key_cache_ttl, 100_000),
        },
        clickhouse: config.clickhouse,
        metrics: metrics_handle(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, "ETL listening");
    Ok(RunningServer { addr, stop, task })
}
