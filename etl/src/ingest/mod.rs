//! Ingest: one signed batch from the edge, from bytes to durable rows.
//!
//! - [`signing`]: the edge's signing keys; every batch's signature is checked first.
//! - [`key_status`]: whether the API key the events were accepted under still may send (cached).
//! - [`layout`]: where a batch's events lie, found without reading them (they are read once,
//!   in `pipeline`).
//! - [`pipeline`]: the batch, step by step: events are **validated** here (with the
//!   `schemas` parser), invalid ones dead-lettered, generations priced, rows handed to the loader.
//! - [`merge`]: partial updates (Langfuse's `*-update` events) merged into full rows.
//! - [`pricing`]: model prices from PostgreSQL, for generations that arrive without a cost.
//! - [`to_arrow`]: valid events **converted** into one Arrow batch per ClickHouse table; each
//!   table ingest writes is declared there once, every column with what fills it, and
//!   [`crate::clickhouse::catalog`] takes those tables' schemas from it.
//! - [`direct`]: events the ETL makes itself (people's annotation scores), loaded straight.
//! - [`memory_sink`]: a sink that keeps what would be loaded in memory (tests, fuzzing).
//!
//! Loading is [`crate::clickhouse::loader`]'s job; the HTTP route is in [`crate::http`].

pub mod direct;
pub mod key_status;
pub mod layout;
pub mod memory_sink;
pub mod merge;
pub mod pipeline;
pub mod pricing;
pub mod signing;
pub mod to_arrow;

pub use pipeline::{IngestError, Ingestor};
