//! The AgentTrace edge: a Cloudflare Worker (Rust → wasm32) in front of the ETL.
//!
//! The logic lives in plain modules that compile and are tested natively; the Worker glue
//! (routes, Durable Object storage, alarms) sits behind `cfg(target_arch = "wasm32")`.
//! Credential parsing is shared with the ETL: `agenttrace_schemas::credentials`.

pub mod auth;
pub mod buffer;
pub mod coalesce;
pub mod forward;
pub mod ingest;
pub mod langfuse;
pub mod limits;
pub mod otlp;
pub mod prompt_cache;
pub mod request;
pub mod routes;
pub mod score_configs;
#[cfg(target_arch = "wasm32")]
mod worker;
