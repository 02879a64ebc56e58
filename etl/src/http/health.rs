//! Liveness, readiness and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::server::AppState;

/// Each database's state: `ok`, or `PostgreSQL is unavailable` (why is in the log, not here).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    postgres: String,
    clickhouse: String,
}

/// 200 when PostgreSQL and ClickHouse both answer, else 503; each one's state in the body.
#[utoipa::path(
    get,
    path = "/readyz",
    summary = "PostgreSQL and ClickHouse reachable",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "a database is down", body = Readiness),
    ),
)]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Readiness>) {
    let postgres = match state.postgres.get().await {
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
    let describe = |database: &str, result: &Result<(), String>| match result {
        Ok(()) => "ok".to_owned(),
        Err(error) => {
            tracing::warn!(database, %error, "not ready");
            format!("{database} is unavailable")
        }
    };
    (
        status,
        Json(Readiness {
            postgres: describe("PostgreSQL", &postgres),
            clickhouse: describe("ClickHouse", &clickhouse),
        }),
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "prometheus_metrics",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "text exposition format"),
        (status = 401, description = "`AGENTTRACE_METRICS_TOKEN` is set and the request does not bear it", body = crate::http::error::ErrorBody),
    ),
)]
/// With `AGENTTRACE_METRICS_TOKEN` set, only `Authorization: Bearer <token>` reads them: they
/// name every project by id.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<String, ApiError> {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return Err(ApiError::unauthorized(
                "GET /metrics needs `Authorization: Bearer` with the ETL's AGENTTRACE_METRICS_TOKEN",
            ));
        }
    }
    Ok(state.metrics.render())
}

#[utoipa::path(
    get,
    path = "/healthz",
    summary = "Liveness",
    responses(
        (status = 200, description = "ok", body = String, content_type = "text/plain"),
    ),
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}
