//! The control plane: everything PostgreSQL holds, as library functions that the CLI and the
//! HTTP API both call. Each file is one kind of record:
//!
//! - [`identity`]: users, sessions, organizations, members' roles, organization keys.
//! - [`projects`]: organizations and projects.
//! - [`api_keys`]: project API keys (secrets hashed, compared in constant time).
//! - [`evaluators`]: what the evaluation job scores observations with, and when.
//! - [`datasets`]: datasets and their items (inputs and expected outputs).
//! - [`experiments`]: runs of a dataset whose traces the rollup job compares, and their items.
//! - [`prompts`]: prompt templates, their immutable versions and labels.
//! - [`prices`]: model prices, defaults and per-project overrides from a date on.
//! - [`job_runs`]: the scheduled jobs' run records.

pub mod api_keys;
pub mod datasets;
pub mod evaluators;
pub mod experiments;
pub mod identity;
pub mod job_runs;
pub mod prices;
pub mod projects;
pub mod prompts;

use uuid::Uuid;

/// Why a control-plane call failed, worded for the caller.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no project with id {0}")]
    NoSuchProject(Uuid),
    #[error("no API key {0}")]
    NoSuchKey(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("several organizations are named {0:?}; pass its id instead")]
    AmbiguousOrganization(String),
    #[error("a project named {name:?} already exists in that organization")]
    ProjectExists { name: String },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// PostgreSQL is down, overloaded or failed this transaction for reasons of its own: the
    /// same call may pass later.
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    /// A failure that will not pass by itself (a query or a value of ours PostgreSQL refused, a
    /// password that could not be hashed): the server's fault, logged, never the caller's.
    #[error("{0}")]
    Internal(String),
}

impl From<tokio_postgres::Error> for ControlError {
    fn from(error: tokio_postgres::Error) -> Self {
        if crate::postgres::is_transient(&error) {
            ControlError::Unavailable(crate::postgres::describe(&error))
        } else {
            ControlError::Internal(format!("PostgreSQL: {}", crate::postgres::describe(&error)))
        }
    }
}
