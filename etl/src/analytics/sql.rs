//! Analysts' read-only SQL, run over their project's rows only (see [`super::sql_guard`]).

use uuid::Uuid;

use crate::analytics::stream::{OutputFormat, stream_query};
use crate::analytics::{AnalyticsError, Download, sql_guard};
use crate::clickhouse::ClickHouse;

/// `POST /v1/query`'s body.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    /// `json` (default), `arrow` or `parquet`.
    #[schema(schema_with = crate::http::analytics::query_formats)]
    pub format: Option<String>,
}

/// Checks, scopes and runs one SELECT; ClickHouse enforces time and size limits.
pub async fn run_query(
    clickhouse: &ClickHouse,
    project: Uuid,
    request: &QueryRequest,
) -> Result<Download, AnalyticsError> {
    let format = OutputFormat::parse(request.format.as_deref().unwrap_or("json"))
        .map_err(AnalyticsError::InvalidFormat)?;
    let scoped = sql_guard::scope_to_project(&request.sql, project)?;
    // Server-side limits, on the URL where the query's own text cannot lift them (its
    // SETTINGS are refused by the guard and by `readonly`, which goes last since it freezes
    // the settings after it). A limit hit is a 422 naming it.
    let settings = [
        ("max_execution_time", "30"),
        ("max_result_rows", "1000000"),
        ("result_overflow_mode", "throw"),
        ("max_memory_usage", "2000000000"),
        ("max_rows_to_read", "1000000000"),
        ("max_bytes_to_read", "50000000000"),
        // The whole answer (at most the result limit) before the first byte, so a limit hit
        // midway is a status, not a stream broken after a 200.
        ("wait_end_of_query", "1"),
        ("readonly", "1"),
    ];
    // The caller's own SQL: what ClickHouse says of it is theirs to fix.
    let body = stream_query(clickhouse, &scoped, format, false, &settings)
        .await
        .map_err(AnalyticsError::QueryFailed)?;
    Ok(Download {
        body,
        format,
        file_name: format!("query.{}", format.extension()),
    })
}
