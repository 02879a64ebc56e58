//! AgentTrace wire contracts, shared by the edge (wasm32) and the ETL (native).
//!
//! - [`event`]: the ingest envelope `{id, type, timestamp, body}` and the body of every event type.
//! - [`batch`]: the batch the edge signs and forwards to the ETL, the ETL's answer, and the key
//!   check the edge asks the ETL for.
//! - [`intake`]: what the edge answers an agent for a request of events.
//! - [`scope`]: what an API key may do.
//! - [`signature`]: the edge's signing keys and the HMAC-SHA256 signature over a batch, with
//!   timestamp and key id (and the headers that carry them).
//! - [`credentials`]: how agents and analysts present an API key (`Authorization` header).
//! - [`routes`]: the Langfuse routes and the MCP endpoint the edge forwards to the ETL.
//! - [`score_config`]: score configs and whether a score fits its config.
//!
//! The JSON Schemas in `schemas/json/` are generated from these types; a test fails when they drift.

pub mod batch;
pub mod credentials;
pub mod event;
pub mod intake;
pub mod json_schema;
pub mod routes;
pub mod scope;
pub mod score_config;
pub mod signature;
pub mod text;
pub mod time;

pub use batch::SignedBatch;
pub use event::{Event, EventError, EventType, Payload};
pub use scope::Scope;
pub use time::Timestamp;
