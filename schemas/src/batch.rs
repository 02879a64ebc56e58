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
