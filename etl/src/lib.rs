//! The AgentTrace ETL library: everything between a signed batch and a ClickHouse row.

pub mod auth;
pub mod clickhouse;
pub mod export;
pub mod ingest;
pub mod keys;
pub mod loader;
pub mod migrate;
pub mod native;
pub mod postgres;
pub mod pricing;
pub mod query_guard;
pub mod server;
pub mod tables;
