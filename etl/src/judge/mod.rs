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

/// How each judge trace's id begins (`judge-` and 32 hex characters), and the name of the
/// generation in it that called the model.
pub const JUDGE_TRACE_PREFIX: &str = "judge-";
pub const JUDGE_CALL_NAME: &str = "judge call";

/// The condition that leaves the judges' own model calls out of observation metrics: their
/// tokens and cost are the evaluation's, not the agents' (each judge's spend is in its ledger).
pub fn not_a_judge_call() -> String {
    format!(
        "NOT (startsWith(trace_id, {}) AND name = {})",
        crate::clickhouse::client::quote(JUDGE_TRACE_PREFIX),
        crate::clickhouse::client::quote(JUDGE_CALL_NAME)
    )
}
