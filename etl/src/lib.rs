//! The AgentTrace ETL library: everything between a signed batch and a ClickHouse row.

pub mod clickhouse;
pub mod keys;
pub mod migrate;
pub mod postgres;
