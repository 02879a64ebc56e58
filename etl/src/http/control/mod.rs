//! AgentTrace's own control-plane routes under `/v1/`, one file per resource; each handler
//! states what it needs in its signature ([`ProjectAccess`] with a [`need`], or
//! [`OrganizationAccess`] with a [`role`]), which is checked before it runs, for users, project
//! keys and organization keys alike. The work itself is in [`crate::control`].
//!
//! - [`sessions`]: sign-in, sign-out, who am I.
//! - [`organizations`]: organizations, their members and the invitations they sent.
//! - [`invitations`]: the invitations a signed-in user received: list, accept, decline.
//! - [`projects`]: an organization's projects, a project's settings, archiving.
//! - [`keys`]: a project's API keys.
//! - [`prompts`], [`datasets`] (with their items), [`evaluators`], [`experiments`] (with run
//!   items and comparisons), [`prices`].
//! - [`judges`]: built-in LLM judges, a judge previewed on an observation, its activity.
//! - [`connections`]: model connections LLM judges call (and Langfuse's `llm-connections`).
//! - [`judge_rules`]: Langfuse's v2 evaluators (versioned judge definitions) and evaluation rules.
//! - [`models`]: Langfuse's model definitions, over the project's prices.
//! - [`score_configs`]: what scores of a name mean (and Langfuse's `score-configs`).
//! - [`alerts`]: alert rules, their state and history, channels and deliveries.
//! - [`annotation`]: annotation queues, reviewers' next item, completing and skipping it
//!   (and Langfuse's `annotation-queues`).
//! - [`comments`]: comments on traces, observations, sessions, prompts (and Langfuse's).
//! - [`shares`]: a trace made public, and read signed out.
//! - [`redaction`]: what the edge redacts for the project.
//! - [`deletions`]: deletion jobs (and Langfuse's trace deletes).
//! - [`audit`]: an organization's audit log.
//! - [`operations`]: what the pipeline did for a project: scheduled job runs, dead letters.
//!
//! [`ProjectAccess`]: crate::http::auth::ProjectAccess
//! [`OrganizationAccess`]: crate::http::auth::OrganizationAccess
//! [`need`]: crate::http::auth::need
//! [`role`]: crate::http::auth::role

pub mod alerts;
pub mod annotation;
pub mod audit;
pub mod comments;
pub mod connections;
pub mod datasets;
pub mod deletions;
pub mod evaluators;
pub mod experiments;
pub mod invitations;
pub mod judge_rules;
pub mod judges;
pub mod keys;
pub mod models;
pub mod operations;
pub mod organizations;
pub mod prices;
pub mod projects;
pub mod prompts;
pub mod redaction;
pub mod score_configs;
pub mod sessions;
pub mod shares;

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`) in a PATCH body.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(Some(Option::deserialize(deserializer)?))
}

use serde::Deserialize as _;
