//! Turning a request into events the buffer keeps: the native JSON batch, and the common
//! per-event validation that OTLP-mapped events go through too.
//!
//! Every event is validated with the same parser the ETL uses, so the agent learns at once
//! which events are wrong and why. Invalid events are still buffered and forwarded: the ETL
//! keeps them in its dead-letter table with their reason, so nothing an agent sent is lost.

use agenttrace_schemas::event::{Event, TimeWindow};
use agenttrace_schemas::intake::{IntakeRejection, IntakeResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::limits::{Limits, RequestError};

/// One event as the buffer keeps it: its exact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub json: String,
    /// Whether it passed validation (an invalid one is forwarded to be dead-lettered).
    pub valid: bool,
}

/// The outcome of one request: what is buffered, and what was wrong.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Intake {
    pub events: Vec<Accepted>,
    pub rejected: Vec<IntakeRejection>,
}

impl Intake {
    pub fn accepted(&self) -> usize {
        self.events.iter().filter(|e| e.valid).count()
    }

    /// 200 when every event is valid, 207 when some are, 400 when none is.
    pub fn status(&self) -> u16 {
        match (self.rejected.is_empty(), self.accepted()) {
            (true, _) => 200,
            (false, 0) => 400,
            (false, _) => 207,
        }
    }

    /// The answer's body: `{"accepted": n, "rejected": [{index, id, error}]}`.
    pub fn response_json(&self) -> String {
        let response = IntakeResponse {
            accepted: self.accepted(),
            rejected: self.rejected.clone(),
        };
        serde_json::to_string(&response).expect("an intake response serializes")
    }

    /// Validates one event's JSON and records the outcome under `index`.
    pub fn push(&mut self, index: usize, json: String, window: &TimeWindow, limits: &Limits) {
        let outcome = if json.len() > limits.max_event_bytes {
            Err(format!(
                "the event is {} bytes; the limit is {} bytes",
                json.len(),
                limits.max_event_bytes
            ))
        } else {
            Event::parse_valid(&json, window)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        match outcome {
            Ok(()) => self.events.push(Accepted { json, valid: true }),
            Err(error) => {
                let id = serde_json::from_str::<IdOnly>(&json).ok().and_then(|e| e.id);
                self.rejected.push(IntakeRejection { index, id, error });
                // Oversized events are not forwarded: the ETL would refuse the batch.
                if json.len() <= limits.max_event_bytes {
                    self.events.push(Accepted { json, valid: false });
                }
            }
        }
    }
}

/// Replaces the secrets in every event to be buffered, valid or not (an invalid one becomes a
/// dead letter, kept as it is); how many of each kind.
/// An event that replacements made longer than `max_event_bytes` cannot be buffered, and its
/// original must not be: it becomes a dead letter that says so.
pub fn redact(
    events: &mut [Accepted],
    redactor: &agenttrace_redact::Redactor,
    max_event_bytes: usize,
) -> agenttrace_redact::Counts {
    let mut counts = agenttrace_redact::Counts::default();
    for event in events {
        let Some(redacted) = redactor.redact_event(&event.json, &mut counts) else {
            continue;
        };
        if redacted.len() <= max_event_bytes {
            event.json = redacted;
        } else {
            let id = serde_json::from_str::<IdOnly>(&event.json)
                .ok()
                .and_then(|e| e.id);
            event.json = serde_json::json!({
                "id": id,
                "redaction_overflow": format!(
                    "with its secrets replaced the event was {} bytes, over the limit of {max_event_bytes}; it was not kept",
                    redacted.len()
                ),
            })
            .to_string();
            event.valid = false;
        }
    }
    counts
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// `POST /v1/ingest`: `{"events": [...]}` or a bare array of events.
pub fn native(body: &[u8], window: &TimeWindow, limits: &Limits) -> Result<Intake, RequestError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| RequestError::Malformed(format!("the body is not UTF-8: {e}")))?;
    let malformed = |e: serde_json::Error| {
        RequestError::Malformed(format!(
            "the body must be {{\"events\": [...]}} or an array of events: {e}"
        ))
    };
    let events: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(malformed)?
    } else {
        serde_json::from_str::<Wrapped>(text).map_err(malformed)?.events
    };
    if events.len() > limits.max_events {
        return Err(RequestError::TooManyEvents {
            count: events.len(),
            limit: limits.max_events,
        });
    }
    let mut intake = Intake::default();
    for (index, event) in events.into_iter().enumerate() {
        intake.push(index, event.get().to_owned(), window, limits);
    }
    Ok(intake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenttrace_schemas::Timestamp;

    fn window() -> TimeWindow {
        TimeWindow::around(Timestamp::parse("2026-11-25T12:00:00Z").unwrap())
    }

    const GOOD: &str = r#"{"id":"e1","type":"trace","timestamp":"2026-11-25T11:59:00Z","body":{"id":"t1"}}"#;
    const BAD: &str = r#"{"id":"e2","type":"observation","timestamp":"2026-11-25T11:59:00Z","body":{"id":"o1","trace_id":"t1","type":"generation","name":"n","start_time":"2026-11-25T11:59:00Z","usage":{"input_tokens":"twelve"}}}"#;

    #[test]
    fn an_event_that_redaction_makes_too_long_becomes_a_dead_letter_saying_so() {
        let redactor = agenttrace_redact::Redactor::new(
            &agenttrace_redact::Rules {
                detectors: vec![agenttrace_redact::Detector::IpAddress],
                ..agenttrace_redact::Rules::default()
            },
            b"key",
        )
        .unwrap();
        let ips = "1.2.3.4 ".repeat(100);
        let event =
            serde_json::json!({"id": "e9", "type": "trace", "body": {"id": "t", "input": ips}}).to_string();
        let mut events = vec![Accepted {
            json: event.clone(),
            valid: true,
        }];
        let counts = redact(&mut events, &redactor, event.len() + 10);
        assert_eq!(counts.total(), 100);
        assert!(!events[0].valid);
        assert!(events[0].json.contains("redaction_overflow") && events[0].json.contains("\"e9\""));
        assert!(!events[0].json.contains("1.2.3.4"));
    }

    #[test]
    fn keeps_valid_events_and_names_each_error() {
        let body = format!(r#"{{"events": [{GOOD}, {BAD}]}}"#);
        let intake = native(body.as_bytes(), &window(), &Limits::default()).unwrap();
        assert_eq!(intake.status(), 207);
        assert_eq!(intake.accepted(), 1);
        assert_eq!(
            intake.events.len(),
            2,
            "the invalid event is forwarded to be dead-lettered"
        );
        assert_eq!(intake.rejected.len(), 1);
        let rejection = &intake.rejected[0];
        assert_eq!((rejection.index, rejection.id.as_deref()), (1, Some("e2")));
        assert!(
            rejection.error.contains("body.usage.input_tokens"),
            "{}",
            rejection.error
        );
        // The exact text is kept.
        assert_eq!(intake.events[0].json, GOOD);
        let response: serde_json::Value = serde_json::from_str(&intake.response_json()).unwrap();
        assert_eq!(response["accepted"], 1);
        assert_eq!(response["rejected"][0]["index"], 1);
    }

    #[test]
    fn whole_request_errors() {
        let limits = Limits {
            max_events: 1,
            ..Limits::default()
        };
        let body = format!("[{GOOD}, {GOOD}]");
        let error = native(body.as_bytes(), &window(), &limits).unwrap_err();
        assert_eq!(error.status(), 413);
        assert!(error.to_string().contains("holds 2 events; the limit is 1"));
        let error = native(b"{\"events\": [", &window(), &limits).unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(error.to_string().contains("EOF while parsing"), "{error}");
        let error = native(b"{\"evnts\": []}", &window(), &limits).unwrap_err();
        assert!(
            error.to_string().contains("must be {\"events\": [...]}"),
            "{error}"
        );
        let all_bad = native(format!("[{BAD}]").as_bytes(), &window(), &limits).unwrap();
        assert_eq!(all_bad.status(), 400);
    }

    #[test]
    fn oversized_events_are_rejected_alone() {
        let limits = Limits {
            max_event_bytes: 100,
            ..Limits::default()
        };
        let intake = native(format!("[{BAD}]").as_bytes(), &window(), &limits).unwrap();
        assert!(intake.rejected[0].error.contains("the limit is 100 bytes"));
        assert!(intake.events.is_empty());
    }
}
