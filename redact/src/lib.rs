//! Redaction at the edge: the secrets and personal data that coding agents' telemetry is full
//! of (API keys pasted into prompts, `.env` files a tool read, tokens in terminal output,
//! customers' emails in diffs) are replaced before anything is durable.
//!
//! - [`rules`]: what a project redacts (built-in detectors on or off, its own patterns, digests).
//! - [`redactor`]: the rules compiled, applied to texts and to events' JSON.
//!
//! A regular expression finds what looks like a secret; it cannot find a secret that looks like
//! anything else (a password in plain words, a key split across two events, an encoded one).

mod detectors;
pub mod redactor;
pub mod rules;

pub use redactor::{Counts, Redactor, count_markers, project_digest_key};
pub use rules::{CustomPattern, Detector, Invalid, Rules};

#[cfg(test)]
mod tests;
