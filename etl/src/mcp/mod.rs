//! The MCP server's tools: what a coding agent can ask of its own history (search, traces,
//! sessions, metrics, prompts), answered as compact text an agent reads. The transport, the
//! JSON-RPC messages and authentication are [`crate::http::mcp`]'s; this module is what the
//! tools are and do.
//!
//! - [`tools`]: each tool's name, description and JSON Schema, its arguments checked against
//!   that schema, and its call: the read API's library functions (`analytics`, `search`,
//!   `control::prompts`) for one project, never a query of its own.
//! - [`render`]: their answers as text, cut to [`tools::MAX_TEXT_CHARS`].

pub mod render;
pub mod tools;
