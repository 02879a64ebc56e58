//! The edge's routes: signed batches in, key checks, and the score configs scores name.

use std::sync::Arc;
use std::time::Instant;

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::{
    BatchResponse, KeyCheckRequest, KeyCheckResponse, ScoreConfigLookup, ScoreConfigLookupResponse,
};
use agenttrace_schemas::signature::{KEY_ID_HEADER, SIGNATURE_HEADER};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;

use crate::control::api_keys::verify_key as verify_key_pair;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::server::AppState;
use crate::ingest::IngestError;

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON body the edge signed (refused with 401 otherwise).
fn signed_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let now = Timestamp::now().as_micros() / 1_000_000;
    state
        .ingestor
        .keyring
        .verify(
            header_str(headers, KEY_ID_HEADER),
            header_str(headers, SIGNATURE_HEADER),
            body,
            now,
        )
        .map_err(IngestError::from)?;
    serde_json::from_slice(body).map_err(|error| ApiError::bad_request("invalid_request", error.to_string()))
}

#[utoipa::path(
    post,
    path = "/v1/batches",
    summary = "Load a signed batch (from the edge)",
    security(("edgeSignature" = [])),
    request_body(
        description = "schemas/json/signed-batch.schema.json; gzip accepted (Content-Encoding: gzip), 32 MiB decompressed at most.",
        content = Object,
    ),
    responses(
        (status = 200, description = "Durable in ClickHouse; rejected events are in dead_letters", body = BatchResponse),
        (status = 400, description = "An error", body = ErrorBody),
        (status = 401, description = "An error", body = ErrorBody),
        (status = 413, description = "An error", body = ErrorBody),
        (status = 503, description = "An error", body = ErrorBody),
    ),
)]
pub async fn post_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchResponse>, ApiError> {
    let started = Instant::now();
    let result = state
        .ingestor
        .ingest(
            body,
            header_str(&headers, KEY_ID_HEADER),
            header_str(&headers, SIGNATURE_HEADER),
        )
        .await;
    metrics::histogram!("agenttrace_batch_seconds").record(started.elapsed().as_secs_f64());
    result.map(Json).map_err(|error| {
        metrics::counter!("agenttrace_batches_total", "outcome" => error.code()).increment(1);
        if matches!(error, IngestError::Internal(_)) {
            tracing::error!(%error, "batch failed");
        }
        error.into()
    })
}

#[utoipa::path(
    post,
    path = "/v1/keys/verify",
    summary = "Check an API key (for the edge)",
    security(("edgeSignature" = [])),
    request_body = KeyCheckRequest,
    responses(
        (status = 200, description = "Valid", body = KeyCheckResponse),
        (status = 400, description = "The body is not `{public_key, secret_key}`", body = ErrorBody),
        (status = 401, description = "An error", body = ErrorBody),
        (status = 503, description = "An error", body = ErrorBody),
    ),
)]
pub async fn verify_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<KeyCheckResponse>, ApiError> {
    let request: KeyCheckRequest = signed_json(&state, &headers, &body)?;
    let client = state.postgres.get().await?;
    let key = verify_key_pair(&**client, &request.public_key, &request.secret_key)
        .await
        .map_err(|error| ApiError::unavailable("PostgreSQL", error))??;
    let redaction = crate::control::redaction::rules(&**client, key.project_id).await?;
    Ok(Json(KeyCheckResponse {
        project_id: key.project_id,
        scopes: key.scopes,
        redaction,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/score-configs/lookup",
    summary = "The score configs that scores name (for the edge)",
    description = "The configs of `ids` in the project of the key pair (an id it does not hold is left out), so the edge can answer 400 for a score that does not fit its config. At most 100 ids.",
    security(("edgeSignature" = [])),
    request_body = ScoreConfigLookup,
    responses(
        (status = 200, description = "The configs found", body = ScoreConfigLookupResponse),
        (status = 400, description = "The body is not `{public_key, secret_key, ids}`, or names over 100 ids", body = ErrorBody),
        (status = 401, description = "An error", body = ErrorBody),
        (status = 503, description = "An error", body = ErrorBody),
    ),
)]
pub async fn lookup_score_configs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScoreConfigLookupResponse>, ApiError> {
    let request: ScoreConfigLookup = signed_json(&state, &headers, &body)?;
    if request.ids.len() > ScoreConfigLookup::MAX_IDS {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "ids: {} ids, at most {} per lookup",
                request.ids.len(),
                ScoreConfigLookup::MAX_IDS
            ),
        ));
    }
    let client = state.postgres.get().await?;
    let key = verify_key_pair(&**client, &request.public_key, &request.secret_key)
        .await
        .map_err(|error| ApiError::unavailable("PostgreSQL", error))??;
    let configs = crate::control::score_configs::for_check(&**client, key.project_id, &request.ids)
        .await?
        .into_values()
        .collect();
    Ok(Json(ScoreConfigLookupResponse { configs }))
}
