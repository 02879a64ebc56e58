//! Analysts' reads of their project's rows, always scoped to the caller's project.
//!
//! - [`export`]: a whole table (deduplicated, time range, chosen columns) as Arrow or Parquet.
//! - [`sql`]: one read-only `SELECT`, checked and rewritten by [`sql_guard`].
//! - [`traces`]: traces and sessions as people read them: lists, a trace's observation tree.
//! - [`observations`], [`scores`], [`metrics`]: the other read routes; [`paging`] is what
//!   they share (cursors, time windows, rows as people read them); [`langfuse`] the same reads
//!   in Langfuse's v2 shapes.
//! - [`experiments`]: two experiments compared per score and per item.
//! - [`dead_letters`]: the events the ETL refused, with their reasons.
//! - [`stream`]: ClickHouse results streamed out as Arrow IPC, Parquet or JSON, bounded memory.

pub mod dead_letters;
pub mod experiments;
pub mod export;
pub mod langfuse;
pub mod metrics;
pub mod observations;
pub mod paging;
pub mod scores;
pub mod sql;
pub mod sql_guard;
pub mod stream;
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
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}
