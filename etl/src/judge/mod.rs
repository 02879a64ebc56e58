//! LLM judges: what a judge asks a model and how its answer becomes a score. The scheduler that
//! runs them is the `judge` job in `agenttrace-jobs`; the HTTP API's "test connection" calls
//! through [`provider`] too.

pub mod preview;
pub mod provider;
pub mod targets;
pub mod template;
