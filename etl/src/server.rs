//! The ETL's HTTP service.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/batches` | a signed batch from the edge (gzip accepted) → per-event outcomes |
//! | `POST /v1/keys/verify` | signed by the edge: `{public_key, secret_key}` → project or reason |
//! | `GET /v1/export/{table}` | an API key with `export` scope: the project's rows as Arrow or Parquet |
//! | `POST /v1/query` | an API key with `query` scope: one read-only SELECT over the project's rows |
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

/// Every route and its method; `etl/api/openapi.json` must describe each (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/batches"),
    ("post", "/v1/keys/verify"),
    ("get", "/v1/export/{table}"),
    ("post", "/v1/query"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

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
        .route("/v1/export/{table}", get(export_table))
        .route(
            "/v1/query",
            post(run_query).layer(DefaultBodyLimit::max(256 * 1024)),
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

/// The project of an API key presented by an analyst, if the key has `scope` (or `admin`).
async fn authorize(state: &AppState, headers: &HeaderMap, scope: &str) -> Result<uuid::Uuid, Response> {
    let credentials = agenttrace_schemas::credentials::parse_authorization(header_str(
        headers,
        header::AUTHORIZATION.as_str(),
    ))
    .map_err(|e| error_response(StatusCode::UNAUTHORIZED, "invalid_credentials", &e.to_string()))?;
    let client = state
        .ingestor
        .pool
        .get()
        .await
        .map_err(|e| error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e.to_string()))?;
    let key = match keys::verify_key(&**client, &credentials.public_key, &credentials.secret_key).await {
        Ok(Ok(key)) => key,
        Ok(Err(rejection)) => {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                rejection.code(),
                &rejection.to_string(),
            ));
        }
        Err(error) => {
            return Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &error.to_string(),
            ));
        }
    };
    if !key.scopes.iter().any(|s| s == scope || s == "admin") {
        let message = format!(
            "this key lacks the `{scope}` scope; create one with `agenttrace key create --project {} --scope {scope}`",
            key.project_id
        );
        return Err(error_response(StatusCode::FORBIDDEN, "missing_scope", &message));
    }
    Ok(key.project_id)
}

fn streamed(
    body: crate::export::BodyStream,
    format: crate::export::OutputFormat,
    file_name: &str,
) -> Response {
    let mut response =
        axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn clickhouse_failure(error: crate::clickhouse::ClickHouseError) -> Response {
    if error.is_transient() {
        error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &error.to_string())
    } else {
        error_response(StatusCode::BAD_REQUEST, "query_failed", &error.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    from: Option<String>,
    to: Option<String>,
    columns: Option<String>,
    format: Option<String>,
}

/// The column each table's `from`/`to` range applies to.
fn time_column(table: crate::tables::Table) -> &'static str {
    use crate::tables::Table;
    match table {
        Table::Observations => "start_time_us",
        Table::DeadLetters => "received_at_us",
        Table::ExperimentRollups => "computed_at_us",
        _ => "timestamp_us",
    }
}

async fn export_table(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(table_name): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<ExportParams>,
    headers: HeaderMap,
) -> Response {
    use crate::export::{OutputFormat, stream_query};
    use crate::tables::Table;
    let project = match authorize(&state, &headers, "export").await {
        Ok(project) => project,
        Err(response) => return response,
    };
    let Some(table) = Table::ALL.into_iter().find(|t| t.name() == table_name) else {
        let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        let message = format!("no table {table_name:?}; exportable tables: {}", names.join(", "));
        return error_response(StatusCode::NOT_FOUND, "unknown_table", &message);
    };
    let format = match OutputFormat::parse(params.format.as_deref().unwrap_or("arrow")) {
        Ok(OutputFormat::Json) | Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_format",
                "format must be arrow or parquet",
            );
        }
        Ok(format) => format,
    };
    let bound = |value: &Option<String>, default: i64, name: &str| match value {
        None => Ok(default),
        Some(text) => Timestamp::parse(text)
            .map(Timestamp::as_micros)
            .map_err(|e| format!("{name}: {e}")),
    };
    let (from, to) = match (
        bound(&params.from, i64::MIN, "from"),
        bound(&params.to, i64::MAX, "to"),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(message), _) | (_, Err(message)) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_range", &message);
        }
    };
    let schema = table.schema();
    let columns = match &params.columns {
        None => "*".to_owned(),
        Some(list) => {
            let mut chosen = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let stored = [name.to_owned(), format!("{name}_us")]
                    .into_iter()
                    .find(|candidate| schema.field_with_name(candidate).is_ok());
                match stored {
                    Some(stored) => chosen.push(stored),
                    None => {
                        let message = format!("table {table_name} has no column {name:?}");
                        return error_response(StatusCode::BAD_REQUEST, "unknown_column", &message);
                    }
                }
            }
            chosen.join(", ")
        }
    };
    // Built here from checked parts (allowlisted table, known columns, integer bounds, the
    // caller's UUID), so it can use FINAL, which deduplicates while streaming; the analyst
    // query guard has to dedup with a sort instead (sqlparser cannot express FINAL).
    let column = time_column(table);
    let scoped = format!(
        "SELECT {columns} FROM {table_name} FINAL WHERE project_id = '{project}' AND {column} >= {from} AND {column} < {to}"
    );
    match stream_query(&state.clickhouse, &scoped, format, true, &[("readonly", "1")]).await {
        Ok(body) => {
            let extension = if format == OutputFormat::Parquet {
                "parquet"
            } else {
                "arrow"
            };
            streamed(body, format, &format!("{table_name}.{extension}"))
        }
        Err(error) => clickhouse_failure(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
    format: Option<String>,
}

async fn run_query(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    use crate::export::{OutputFormat, stream_query};
    let project = match authorize(&state, &headers, "query").await {
        Ok(project) => project,
        Err(response) => return response,
    };
    let request: QueryRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, "invalid_request", &error.to_string()),
    };
    let format = match OutputFormat::parse(request.format.as_deref().unwrap_or("json")) {
        Ok(format) => format,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "invalid_format", &message),
    };
    let scoped = match crate::query_guard::scope_to_project(&request.sql, project) {
        Ok(scoped) => scoped,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, "query_rejected", &error.to_string()),
    };
    // Server-side limits; `readonly` last, since it freezes the settings after it.
    let settings = [
        ("max_execution_time", "30"),
        ("max_result_rows", "1000000"),
        ("result_overflow_mode", "throw"),
        ("readonly", "1"),
    ];
    match stream_query(&state.clickhouse, &scoped, format, false, &settings).await {
        Ok(body) => {
            let extension = match format {
                OutputFormat::Arrow => "arrow",
                OutputFormat::Parquet => "parquet",
                OutputFormat::Json => "json",
            };
            streamed(body, format, &format!("query.{extension}"))
        }
        Err(error) => clickhouse_failure(error),
    }
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    #[test]
    fn the_openapi_document_describes_every_route() {
        let document: serde_json::Value = serde_json::from_str(include_str!("../api/openapi.json")).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is not in openapi.json"
            );
        }
        assert_eq!(
            paths
                .values()
                .map(|p| p.as_object().unwrap().len())
                .sum::<usize>(),
            ROUTES.len()
        );
    }
}
