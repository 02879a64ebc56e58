//! The batch the edge signs and forwards to the ETL (see `signature` for the header).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::Event;
use crate::time::Timestamp;

/// Most events in one signed batch; the edge flushes before reaching it.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Largest signed batch body, in bytes (uncompressed).
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// A batch of events for one project, accepted by the edge under one API key.
///
/// Events travel as raw JSON: the ETL validates each one on its own, loads the valid ones and
/// dead-letters the rest with their exact text.
// `E` is how a raw event is held: owned (`Box<RawValue>`, the default, for building batches) or
// borrowed from the request body (`&RawValue`, so the ETL parses a batch without copying events).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "SignedBatch")]
pub struct SignedBatch<E = Box<RawValue>> {
    /// UUIDv7; a batch re-sent with the same id is acknowledged without being loaded again.
    pub batch_id: Uuid,
    /// Which edge location produced the batch (for tracing deliveries).
    pub edge_id: String,
    pub project_id: Uuid,
    /// The public key the events were accepted under; the ETL re-checks it is not revoked.
    pub public_key: String,
    pub created_at: Timestamp,
    #[schemars(with = "Vec<Event>")]
    pub events: Vec<E>,
}

/// The ETL's answer to a signed batch: every event not listed in `rejected` is durable.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub batch_id: Uuid,
    pub status: BatchStatus,
    pub accepted: u32,
    pub rejected: Vec<EventRejection>,
    /// Events of traces deleted in the project, refused: nothing of them is stored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Loaded now.
    Accepted,
    /// Loaded by an earlier delivery of the same batch id; nothing was loaded again.
    AlreadyAccepted,
}

/// One event of a batch that failed validation (it is kept as a dead letter).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRejection {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub field: String,
    pub message: String,
}

/// The edge asks the ETL about an agent's key (`POST /v1/keys/verify`, signed like a batch).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCheckRequest {
    pub public_key: String,
    pub secret_key: String,
}

/// The ETL's answer when the key pair is valid (a refusal is `{error, message}` with 401).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCheckResponse {
    pub project_id: Uuid,
    pub scopes: Vec<crate::scope::Scope>,
    /// What the edge redacts for the project before buffering its events (absent from an
    /// older ETL: the edge then applies the default).
    #[serde(default)]
    pub redaction: agenttrace_redact::Rules,
}

/// The edge asks the ETL for the score configs that scores name (`POST /v1/score-configs/lookup`,
/// signed like a batch), so it can answer 400 for a score that does not fit its config. The
/// ETL looks them up in the project of the key pair, never in one the edge names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfigLookup {
    pub public_key: String,
    pub secret_key: String,
    /// At most [`ScoreConfigLookup::MAX_IDS`].
    pub ids: Vec<String>,
}

impl ScoreConfigLookup {
    pub const MAX_IDS: usize = 100;
}

/// The configs of the asked ids that the key's project holds; an id missing here is unknown
/// there.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreConfigLookupResponse {
    pub configs: Vec<crate::score_config::ScoreConfig>,
}
