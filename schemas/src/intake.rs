//! What the edge answers an agent for a request of events (200 all valid, 207 some, 400 none).
//! Invalid events are still kept (dead-lettered by the ETL with their reason).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeResponse {
    /// Valid events now durable in the edge's buffer.
    pub accepted: usize,
    pub rejected: Vec<IntakeRejection>,
}

/// Why one event of a request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeRejection {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub error: String,
}
