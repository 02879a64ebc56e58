//! When the Durable Object buffer flushes to the ETL, and how it retries.
//!
//! Accepted events sit in durable storage until the ETL acknowledges them. A buffer flushes
//! when it holds enough events or bytes, or when its oldest event has waited long enough (an
//! alarm fires then). A failed delivery is retried with capped exponential backoff and jitter;
//! a permanent rejection is recorded instead of retried forever.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits that trigger a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub max_events: usize,
    pub max_bytes: usize,
    /// Longest an accepted event waits before a flush is attempted.
    pub max_age: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_events: 1_000,
            max_bytes: 4 * 1024 * 1024,
            max_age: Duration::from_secs(2),
        }
    }
}

/// What a buffer holds, as far as the policy cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferState {
    pub events: usize,
    pub bytes: usize,
    /// Milliseconds since the epoch at which the oldest buffered event was accepted.
    pub oldest_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    Events,
    Bytes,
    Age,
}

impl FlushPolicy {
    /// Whether to flush now (`now_ms`: milliseconds since the epoch).
    pub fn flush_reason(&self, state: &BufferState, now_ms: u64) -> Option<FlushReason> {
        if state.events == 0 {
            None
        } else if state.events >= self.max_events {
            Some(FlushReason::Events)
        } else if state.bytes >= self.max_bytes {
            Some(FlushReason::Bytes)
        } else if state
            .oldest_ms
            .is_some_and(|oldest| now_ms.saturating_sub(oldest) >= self.max_age.as_millis() as u64)
        {
            Some(FlushReason::Age)
        } else {
            None
        }
    }

    /// When the age alarm should fire for this buffer, if it holds anything.
    pub fn alarm_at_ms(&self, state: &BufferState) -> Option<u64> {
        state
            .oldest_ms
            .filter(|_| state.events > 0)
            .map(|oldest| oldest + self.max_age.as_millis() as u64)
    }
}

/// How the ETL answered a delivery, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx: the batch is durable; delete it.
    Acknowledged,
    /// 401 (revoked key, unknown project): retrying cannot succeed; record and drop from the
    /// retry loop.
    Rejected,
    /// Network errors, 5xx, 429: try again later.
    RetryLater,
}

impl Delivery {
    pub fn from_status(status: u16) -> Delivery {
        match status {
            200..=299 => Delivery::Acknowledged,
            401 | 403 => Delivery::Rejected,
            // 400/413 from the ETL mean the edge built a bad batch: keep it (nothing is lost)
            // and retry, so a fixed deployment delivers it.
            _ => Delivery::RetryLater,
        }
    }
}

/// Delay before retry number `attempt` (1-based): 1 s doubling to at most 5 minutes, scaled by
/// `jitter` in [0, 1) to between 50% and 100% so that many buffers do not retry in lockstep.
pub fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    const BASE_MS: u64 = 1_000;
    const CAP_MS: u64 = 300_000;
    let exponential = BASE_MS
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(CAP_MS);
    let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    Duration::from_millis((exponential as f64 * factor) as u64)
}

/// Who sent a request's events, as the Worker tells its buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendHeader {
    pub project_id: String,
    pub public_key: String,
    pub count: i64,
}

/// The body the Worker hands the Durable Object: a JSON header line, then `count` events' exact
/// texts joined by commas (one or more requests' events, see [`crate::coalesce`]). Bytes, not a
/// JS string (no UTF-16 round trip), and the events are stored as they come, never parsed again.
pub fn append_body(project_id: &str, public_key: &str, count: usize, events: &[u8]) -> Vec<u8> {
    let header = AppendHeader {
        project_id: project_id.to_owned(),
        public_key: public_key.to_owned(),
        count: count as i64,
    };
    let header = serde_json::to_vec(&header).expect("a header serializes");
    let mut body = Vec::with_capacity(header.len() + 1 + events.len());
    body.extend_from_slice(&header);
    body.push(b'\n');
    body.extend_from_slice(events);
    body
}

/// Splits an [`append_body`] into its header and its comma-joined events.
pub fn parse_append(body: &[u8]) -> Result<(AppendHeader, &[u8]), String> {
    let newline = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("an append body starts with a header line")?;
    let header = serde_json::from_slice(&body[..newline]).map_err(|e| format!("append header: {e}"))?;
    Ok((header, &body[newline + 1..]))
}

/// A stored row's events as a comma-joined list. Rows written before events were stored as
/// bytes hold a JSON array (`[..]`); events themselves are objects, so the bracket tells.
pub fn stored_events(row: &[u8]) -> &[u8] {
    match row {
        [b'[', inner @ .., b']'] => inner,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(events: usize, bytes: usize, oldest_ms: u64) -> BufferState {
        BufferState {
            events,
            bytes,
            oldest_ms: Some(oldest_ms),
        }
    }

    #[test]
    fn flushes_on_count_bytes_or_age() {
        let policy = FlushPolicy {
            max_events: 100,
            max_bytes: 1000,
            max_age: Duration::from_secs(2),
        };
        assert_eq!(policy.flush_reason(&BufferState::default(), 10_000), None);
        assert_eq!(
            policy.flush_reason(&state(100, 10, 9_000), 10_000),
            Some(FlushReason::Events)
        );
        assert_eq!(
            policy.flush_reason(&state(5, 1000, 9_000), 10_000),
            Some(FlushReason::Bytes)
        );
        assert_eq!(
            policy.flush_reason(&state(5, 10, 8_000), 10_000),
            Some(FlushReason::Age)
        );
        assert_eq!(policy.flush_reason(&state(5, 10, 8_001), 10_000), None);
        assert_eq!(policy.alarm_at_ms(&state(5, 10, 8_001)), Some(10_001));
        assert_eq!(policy.alarm_at_ms(&BufferState::default()), None);
    }

    #[test]
    fn append_bodies_round_trip_and_old_rows_still_read() {
        let body = append_body("p1", "pk-at-1", 2, br#"{"id":"a"},{"id":"b"}"#);
        let (header, joined) = parse_append(&body).unwrap();
        assert_eq!(
            header,
            AppendHeader {
                project_id: "p1".into(),
                public_key: "pk-at-1".into(),
                count: 2
            }
        );
        assert_eq!(joined, br#"{"id":"a"},{"id":"b"}"#);
        assert_eq!(stored_events(joined), joined);
        assert_eq!(stored_events(br#"[{"id":"a"},{"id":"b"}]"#), joined);
        assert!(parse_append(b"no header").is_err());
    }

    #[test]
    fn classifies_etl_answers() {
        assert_eq!(Delivery::from_status(200), Delivery::Acknowledged);
        assert_eq!(Delivery::from_status(401), Delivery::Rejected);
        assert_eq!(Delivery::from_status(503), Delivery::RetryLater);
        assert_eq!(Delivery::from_status(400), Delivery::RetryLater);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(retry_delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(retry_delay(30, 1.0), Duration::from_secs(300));
        assert_eq!(retry_delay(u32::MAX, 0.0), Duration::from_secs(150));
    }
}
