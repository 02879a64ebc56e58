//! Every route, its method, its body limit and its handler.
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

use std::sync::Arc;

use agenttrace_schemas::batch::MAX_BATCH_BYTES;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::decompression::RequestDecompressionLayer;

use crate::http::error::ApiError;
use crate::http::server::AppState;
use crate::http::{analytics, health, ingest};

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

pub fn router(state: Arc<AppState>) -> Router {
    // The limit applies to the decompressed body, so a gzip bomb stops at MAX_BATCH_BYTES.
    let batches = Router::new()
        .route("/v1/batches", post(ingest::post_batch))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .layer(RequestDecompressionLayer::new());
    Router::new()
        .merge(batches)
        .route(
            "/v1/keys/verify",
            post(ingest::verify_key).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/v1/export/{table}", get(analytics::export_table))
        .route(
            "/v1/query",
            post(analytics::run_query).layer(DefaultBodyLimit::max(256 * 1024)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    #[test]
    fn the_openapi_document_describes_every_route() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("../../api/openapi.json")).unwrap();
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
