//! The AgentTrace ETL library and service, one folder per role; data flows
//! `http` → `ingest` → `clickhouse` for writes and `http` → `analytics` → `clickhouse` for reads.
//!
//! - [`ingest`]: a signed batch from the edge: signature, key status, **validation**, pricing,
//!   **conversion** to Arrow.
//! - [`clickhouse`]: the client, the table catalog, the Native codec, and the **loader**.
//! - [`analytics`]: analysts' **exports** and read-only SQL (the SQL guard).
//! - [`control`]: the control plane over PostgreSQL (projects, API keys, evaluators, datasets,
//!   experiments): the functions the CLI and the HTTP API both call.
//! - [`http`]: routes, the error type, auth extractors, the server's lifecycle.
//! - [`deletion`]: deletion jobs (a trace, a session, a user id, a project) run until a read of
//!   every table finds nothing.
//! - [`judge`]: LLM judges' calls to model providers, in their wire formats.
//! - [`mcp`]: the MCP server's tools (search, traces, sessions, metrics, prompts) as text for
//!   coding agents; its transport is `http::mcp`.
//! - [`cpu`]: the fixed pool CPU-bound work runs on.
//! - [`postgres`]: connections; [`migrate`]: both databases' migrations.

pub mod analytics;
pub mod clickhouse;
pub mod control;
pub mod cpu;
pub mod deletion;
pub mod http;
pub mod ingest;
pub mod judge;
pub mod mcp;
pub mod migrate;
pub mod postgres;
pub mod search;
