//! The control plane: everything PostgreSQL holds, as library functions that the CLI and the
//! HTTP API both call. Each file is one kind of record:
//!
//! - [`identity`]: users, sessions, organizations, members' roles, organization keys.
//! - [`projects`]: organizations and projects.
//! - [`api_keys`]: project API keys (secrets hashed, compared in constant time).
//! - [`evaluators`]: what the evaluation job scores observations with, and when.
//! - [`connections`]: model connections LLM judges call, their keys sealed ([`sealing`]).
//! - [`datasets`]: datasets and their items (inputs and expected outputs).
//! - [`experiments`]: runs of a dataset whose traces the rollup job compares, and their items.
//! - [`prompts`]: prompt templates, their immutable versions and labels.
//! - [`score_configs`]: what a score of a name means, which scores sent with a config id must fit.
//! - [`models`]: Langfuse's model definitions, a view of [`prices`] with a name.
//! - [`prices`]: model prices, defaults and per-project overrides from a date on.
//! - [`annotation`]: annotation queues, their items, locks and reviews.
//! - [`calibrations`]: how well each LLM judge agrees with people (the job's results).
//! - [`comments`]: comments on traces, observations, sessions and prompts.
//! - [`shares`]: traces made public at a share link.
//! - [`redaction`]: what the edge redacts for each project before anything is buffered.
//! - [`deletions`]: deletion jobs' records and the ledger of deleted traces.
//! - [`audit`]: the append-only audit log of control-plane changes.
//! - [`job_runs`]: the scheduled jobs' run records.
//!
//! Rows are read by column name: each record type has one `from_row` and one column list (a
//! `COLUMNS` const) that the statements feeding it select, aliased where a join would clash.
//! Times are selected as `timestamptz` and written as text here, by [`time`].

pub mod alerts;
pub mod annotation;
pub mod api_keys;
pub mod audit;
pub mod calibrations;
pub mod comments;
pub mod connections;
pub mod datasets;
pub mod deletions;
pub mod evaluators;
pub mod experiments;
pub mod identity;
pub mod job_runs;
pub mod judge_rules;
pub mod models;
pub mod prices;
pub mod projects;
pub mod prompts;
pub mod redaction;
pub mod score_configs;
pub mod sealing;
pub mod shares;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
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
    /// The caller is known but may not do this; the message says what it would take.
    #[error("{0}")]
    Forbidden(String),
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
        use tokio_postgres::error::SqlState;
        // Text PostgreSQL cannot store (NUL): the request's fault, not a reason to retry. The
        // HTTP layer refuses NUL before, naming the field; this is for whatever it missed.
        if error.code().is_some_and(|code| {
            *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *code == SqlState::UNTRANSLATABLE_CHARACTER
        }) {
            return ControlError::Invalid {
                field: "request",
                message: "a text in it holds a character PostgreSQL cannot store (NUL, \\u0000)".into(),
            };
        }
        // Two writers racing for one name, or a row referred to that another just deleted.
        if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            return ControlError::Conflict(
                "it already exists (a concurrent request made it); try again".into(),
            );
        }
        if error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
            return ControlError::Conflict(
                "it refers to something that no longer exists, or something still refers to it".into(),
            );
        }
        if crate::postgres::is_transient(&error) {
            ControlError::Unavailable(crate::postgres::describe(&error))
        } else {
            ControlError::Internal(format!("PostgreSQL: {}", crate::postgres::describe(&error)))
        }
    }
}

/// A request's field at fault, and what to do: the 400 every control-plane check answers with.
pub fn invalid(field: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::Invalid {
        field,
        message: message.into(),
    }
}

/// The rows before page `page` (from 1) of `limit` rows: saturating, so that a page far past the
/// end is an empty page, never an overflow.
pub fn offset(page: i64, limit: i64) -> i64 {
    (page.max(1) - 1).saturating_mul(limit.max(0))
}

/// How much of the second a time written as text keeps (truncated, never rounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `2026-01-02T03:04:05Z`
    Seconds,
    /// `2026-01-02T03:04:05.678Z`, what the API answers with.
    Millis,
    /// `2026-01-02T03:04:05.678900Z`, for prices' `valid_from`: part of a price's key, so shown exactly.
    Micros,
}

/// A time as RFC 3339 text in UTC, as PostgreSQL's `to_char(t AT TIME ZONE 'UTC',
/// 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` (`.US`, or no fraction) writes it.
pub fn rfc3339(time: DateTime<Utc>, precision: Precision) -> String {
    let format = match precision {
        Precision::Seconds => "%Y-%m-%dT%H:%M:%SZ",
        Precision::Millis => "%Y-%m-%dT%H:%M:%S%.3fZ",
        Precision::Micros => "%Y-%m-%dT%H:%M:%S%.6fZ",
    };
    time.format(format).to_string()
}

/// The `timestamptz` column `column` of a row, as [`rfc3339`] text.
pub fn time(row: &Row, column: &str, precision: Precision) -> String {
    rfc3339(row.get(column), precision)
}

/// The nullable `timestamptz` column `column` of a row, as [`rfc3339`] text.
pub fn optional_time(row: &Row, column: &str, precision: Precision) -> Option<String> {
    row.get::<_, Option<DateTime<Utc>>>(column)
        .map(|time| rfc3339(time, precision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_saturate() {
        assert_eq!(offset(1, 50), 0);
        assert_eq!(offset(3, 50), 100);
        assert_eq!(offset(0, 50), 0);
        assert_eq!(offset(61_489_146_912_365_174, 150), i64::MAX);
        assert_eq!(offset(i64::MAX, 1000), i64::MAX);
    }

    #[test]
    fn times_are_truncated_to_their_precision() {
        let time = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.6789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(time, Precision::Seconds), "2026-01-02T03:04:05Z");
        assert_eq!(rfc3339(time, Precision::Millis), "2026-01-02T03:04:05.678Z");
        assert_eq!(rfc3339(time, Precision::Micros), "2026-01-02T03:04:05.678900Z");
        let whole = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(whole, Precision::Millis), "2026-01-02T03:04:05.000Z");
    }
}
