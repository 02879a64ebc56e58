//! Analysts' reads of their project's rows, always scoped to the caller's project.
//!
//! - [`export`]: a whole table (deduplicated, time range, chosen columns) as Arrow or Parquet.
//! - [`sql`]: one read-only `SELECT`, checked and rewritten by [`sql_guard`].
//! - [`traces`]: traces and sessions as people read them: lists, a trace's observation tree.
//! - [`observations`], [`scores`], [`metrics`]: the other read routes; [`paging`] is what
//!   they share (cursors, time windows, rows as people read them), [`conditions`] how they
//!   write their conditions; [`langfuse`] the same reads in Langfuse's v2 shapes.
//! - [`rows`]: the JSON schemas of the rows those reads answer with, from the catalog.
//! - [`experiments`]: two experiments compared per score and per item.
//! - [`dead_letters`]: the events the ETL refused, with their reasons.
//! - [`stream`]: ClickHouse results streamed out as Arrow IPC, Parquet or JSON, bounded memory.

pub mod answers;
pub mod conditions;
pub mod dead_letters;
pub mod experiments;
pub mod export;
pub mod hourly;
pub mod langfuse;
pub mod metrics;
pub mod observations;
pub mod paging;
pub mod queue_rules;
pub mod rows;
pub mod scores;
pub mod sql;
pub mod sql_guard;
pub mod stream;
pub mod summaries;
pub mod traces;

use crate::clickhouse::ClickHouseError;
use stream::{BodyStream, OutputFormat};

/// A result on its way to the caller.
pub struct Download {
    pub body: BodyStream,
    pub format: OutputFormat,
    /// A name for the file (`observations.parquet`), for `Content-Disposition`.
    pub file_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("no table {name:?}; exportable tables: {known}")]
    UnknownTable { name: String, known: String },
    #[error("{0}")]
    InvalidFormat(String),
    #[error("{0}")]
    InvalidRange(String),
    #[error("{field}: {message}")]
    InvalidParameter { field: &'static str, message: String },
    #[error("table {table} has no column {column:?}")]
    UnknownColumn { table: &'static str, column: String },
    #[error(transparent)]
    QueryRejected(#[from] sql_guard::GuardError),
    /// ClickHouse refused, or could not run, the caller's own SQL (`POST /v1/query`).
    #[error(transparent)]
    QueryFailed(ClickHouseError),
    /// ClickHouse refused, or could not run, a statement the server built.
    #[error("ClickHouse refused a query the server built: {source}")]
    ClickHouse {
        statement: String,
        #[source]
        source: ClickHouseError,
    },
}

impl AnalyticsError {
    /// ClickHouse's refusal of `statement`, which the server built; the statement is kept for
    /// the log.
    pub fn built(statement: &str, source: ClickHouseError) -> Self {
        AnalyticsError::ClickHouse {
            statement: statement.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::http::error::ApiError;

    fn refusal(code: u32) -> ClickHouseError {
        ClickHouseError::Server {
            status: 500,
            code: Some(code),
            message: format!("Code: {code}, e.displayText() = DB::Exception: ..."),
        }
    }

    /// Checked here, beside the variants: the mapping lives in `http::error`.
    #[test]
    fn refusals_map_to_whose_mistake_they_are() {
        // 62: a syntax error; 241: the memory limit, which passes.
        let statement = "SELECT * FROM traces WHERE project_id = 'p' AND id IN ()";
        let built = ApiError::from(AnalyticsError::built(statement, refusal(62)));
        assert_eq!(
            (built.status, built.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        // The statement, and ClickHouse's words (which quote it), go to the log, not to the caller.
        assert!(!built.message.contains(statement), "{}", built.message);
        assert!(!built.message.contains("DB::Exception"), "{}", built.message);
        let callers = ApiError::from(AnalyticsError::QueryFailed(refusal(62)));
        assert_eq!(
            (callers.status, callers.code),
            (StatusCode::BAD_REQUEST, "query_failed")
        );
        // 241: the memory limit of the read profile, named; 202: too many at once, retried.
        for limited in [
            AnalyticsError::built(statement, refusal(241)),
            AnalyticsError::QueryFailed(refusal(241)),
        ] {
            let answer = ApiError::from(limited);
            assert_eq!(
                (answer.status, answer.code),
                (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
            );
            assert!(answer.message.contains("max_memory_usage"), "{}", answer.message);
        }
        let busy = ApiError::from(AnalyticsError::QueryFailed(refusal(202)));
        assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS);
        // 210: the network, which passes.
        let transient = ApiError::from(AnalyticsError::QueryFailed(refusal(210)));
        assert_eq!(
            (transient.status, transient.code),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
    }
}
