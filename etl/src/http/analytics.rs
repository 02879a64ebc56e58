//! Analysts' routes: table exports and read-only SQL, each for the key's project only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::analytics::Download;
use crate::analytics::export::{self, ExportParams};
use crate::analytics::sql::{self, QueryRequest};
use crate::http::auth::{ApiKey, scope};
use crate::http::error::ApiError;
use crate::http::server::AppState;

/// A download as a streamed body with its content type and file name.
fn streamed(download: Download) -> Response {
    let mut response =
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(download.body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(download.format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", download.file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

pub async fn export_table(
    State(state): State<Arc<AppState>>,
    caller: ApiKey<scope::Export>,
    Path(table): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let download = export::export_table(&state.clickhouse, caller.key.project_id, &table, &params).await?;
    Ok(streamed(download))
}

pub async fn run_query(
    State(state): State<Arc<AppState>>,
    caller: ApiKey<scope::Query>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: QueryRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request("invalid_request", error.to_string()))?;
    let download = sql::run_query(&state.clickhouse, caller.key.project_id, &request).await?;
    Ok(streamed(download))
}
