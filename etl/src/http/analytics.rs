//! Analysts' routes: table exports and read-only SQL, each for the key's project only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::analytics::Download;
use crate::analytics::export::{self, ExportParams};
use crate::analytics::sql::{self, QueryRequest};
use crate::clickhouse::catalog::Table;
use crate::http::auth::{ApiKey, scope};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::server::AppState;

/// `{table}` of an export.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExportPath {
    #[param(schema_with = table_names)]
    table: String,
}

/// A string, one of `values`.
fn one_of(values: &[&str], default: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(Some(default.into()))
        .build()
}

/// Every table's name ([`Table::ALL`]).
fn table_names() -> Object {
    ObjectBuilder::new()
        .description(Some("The table to export"))
        .schema_type(Type::String)
        .enum_values(Some(Table::ALL.map(Table::name)))
        .build()
}

/// An export's `format`.
pub(crate) fn export_formats() -> Object {
    one_of(&["arrow", "parquet"], "arrow")
}

/// A query's `format`.
pub(crate) fn query_formats() -> Object {
    one_of(&["json", "arrow", "parquet"], "json")
}

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

#[utoipa::path(
    get,
    path = "/v1/export/{table}",
    summary = "Export a table of the caller's project",
    description = "Streamed (chunked) with bounded memory. Rows are deduplicated as FINAL would return them. `*_us` columns become Arrow Timestamp(µs, UTC) named without the suffix. The row count is in the footer: Arrow IPC file custom metadata and Parquet key/value metadata `agenttrace.row_count` (Parquet's own num_rows too); a file without it was cut short.",
    security(("apiKey" = ["export"])),
    params(ExportPath, ExportParams),
    responses(
        (status = 200, description = "The rows", content(
            (Vec<u8> = "application/vnd.apache.arrow.file"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        )),
        (status = 400, description = "An error", body = ErrorBody),
        (status = 401, description = "An error", body = ErrorBody),
        (status = 403, description = "An error", body = ErrorBody),
        (status = 404, description = "An error", body = ErrorBody),
        (status = 503, description = "An error", body = ErrorBody),
    ),
)]
pub async fn export_table(
    State(state): State<Arc<AppState>>,
    caller: ApiKey<scope::Export>,
    Path(ExportPath { table }): Path<ExportPath>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let download = export::export_table(
        &state.reader.for_project(caller.key.project_id),
        caller.key.project_id,
        &table,
        &params,
    )
    .await?;
    Ok(streamed(download))
}

#[utoipa::path(
    post,
    path = "/v1/query",
    summary = "Run one read-only SELECT over the caller's project",
    description = "Parsed with sqlparser (ClickHouse dialect). Refused with 400 `query_rejected` and the reason when it is not a single SELECT, names a table outside the allowlist or in another database, uses table functions, system tables, SETTINGS, FORMAT, INTO, dictionaries or functions that reach outside. Every table reference is replaced by the caller's deduplicated rows. Limits, answered as 422 `limit_exceeded` naming the setting: 30 s, 1,000,000 result rows, 2 GB of memory, 10⁹ rows or 50 GB read; readonly. Too many of one user's queries at once: 429 with `Retry-After`.",
    security(("apiKey" = ["query"])),
    request_body = QueryRequest,
    responses(
        (status = 200, description = "The result (JSON as ClickHouse's JSON format: meta, data, rows)", content(
            (Object = "application/json"),
            (Vec<u8> = "application/vnd.apache.arrow.file"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        )),
        (status = 400, description = "An error", body = ErrorBody),
        (status = 401, description = "An error", body = ErrorBody),
        (status = 403, description = "An error", body = ErrorBody),
        (status = 422, description = "A limit was exceeded (`limit_exceeded`, naming it)", body = ErrorBody),
        (status = 429, description = "Too many queries at once; retry after `Retry-After`", body = ErrorBody),
        (status = 503, description = "An error", body = ErrorBody),
    ),
)]
pub async fn run_query(
    State(state): State<Arc<AppState>>,
    caller: ApiKey<scope::Query>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: QueryRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request("invalid_request", error.to_string()))?;
    let download = sql::run_query(
        &state.reader.for_project(caller.key.project_id),
        caller.key.project_id,
        &request,
    )
    .await?;
    Ok(streamed(download))
}
