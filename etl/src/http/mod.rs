//! The ETL's HTTP service. Handlers are thin: they extract, call a library function, and
//! return [`error::ApiError`] on failure, which becomes `{error, message}` with its status.
//!
//! - [`router`]: every route; [`openapi`]: the OpenAPI document generated from them.
//! - [`server`]: state, configuration, start and shutdown.
//! - [`error`]: the one error type every handler returns.
//! - [`auth`]: the extractors that authenticate the caller and authorize what a route needs
//!   (`ApiKey<scope>`, `ProjectAccess<need>`, `OrganizationAccess<role>`, `KeyProject<need>`).
//! - [`ingest`], [`analytics`], [`health`]: the handlers, by who calls them; [`langfuse`]:
//!   Langfuse's control-plane routes; [`control`]: AgentTrace's own (`/v1/...`), one file per
//!   resource; [`request`]: what the control-plane handlers share (JSON bodies, pages);
//!   [`read`]: the read API; [`mcp`]: the MCP server over streamable HTTP; [`ui`]: the embedded
//!   web UI.
//! - [`audit`]: every change, export and sign-in appended to the audit log as it is answered.
//! - [`throttle`]: sign-ins' bounded password hashing and their per-address and per-email limits.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod control;
pub mod error;
pub mod health;
pub mod ingest;
pub mod langfuse;
pub mod langfuse_scores;
pub mod limits;
pub mod mcp;
pub mod openapi;
pub mod read;
pub mod request;
pub mod router;
pub mod server;
pub mod throttle;
pub mod tls;
pub mod ui;

pub use server::{RunningServer, ServeConfig, start};
