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
    // Server-side limits; `readonly` last, since it freezes the settings after it.
    let settings = [
        ("max_execution_time", "30"),
        ("max_result_rows", "1000000"),
        ("result_overflow_mode", "throw"),
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
