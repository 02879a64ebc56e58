//! ClickHouse: where events are stored and read.
//!
//! - [`client`]: the HTTP client (statements, queries, streamed reads, raw inserts).
//! - [`catalog`]: every table and what AgentTrace knows about it (schema, time column, dedup).
//! - [`compression`]: insert bodies as ClickHouse's LZ4 blocks or gzip.
//! - [`native`]: the `Native` format, encoded from and decoded into Arrow.
//! - [`insert`]: one insert of Arrow batches (wire format, statement); jobs insert through it.
//! - [`loader`]: the ingest path's group-commit loader, where validated rows are **loaded**.

pub mod backup;
pub mod catalog;
pub mod client;
pub mod cluster;
pub mod compression;
pub mod insert;
pub mod loader;
pub mod native;

pub use catalog::Table;
pub use client::{
    ClickHouse, ClickHouseConfig, ClickHouseError, ExceededLimit, quote, quote_identifier, quote_list,
};
