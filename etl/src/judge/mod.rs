//! LLM judges: what a judge asks a model and how its answer becomes a score. The scheduler that
//! runs them is the `judge` job in `agenttrace-jobs`; the HTTP API's "test connection" calls
//! through [`provider`] too.

pub mod preview;
pub mod provider;
pub mod targets;
pub mod template;

/// The environment of the judges' own traces (each judgment's prompt, answer and cost). Trace
/// lists leave it out unless asked for it; targets there are never judged.
pub const JUDGE_ENVIRONMENT: &str = "agenttrace-judge";
