//! Building the batch the buffer sends to the ETL (DESIGN.md's contract); it is signed with
//! `agenttrace_schemas::signature::SigningKey`.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::SignedBatch;
use serde_json::value::RawValue;

/// A batch's JSON body; `events` are the buffered events' exact texts.
pub fn batch_body(
    batch_id: uuid::Uuid,
    edge_id: &str,
    project_id: uuid::Uuid,
    public_key: &str,
    created_at: Timestamp,
    events: Vec<String>,
) -> Result<String, String> {
    let events = events
        .into_iter()
        .map(|json| RawValue::from_string(json).map_err(|e| format!("a buffered event is not JSON: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = SignedBatch {
        batch_id,
        edge_id: edge_id.to_owned(),
        project_id,
        public_key: public_key.to_owned(),
        created_at,
        events,
    };
    serde_json::to_string(&batch).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_carry_the_buffered_events_verbatim() {
        let body = batch_body(
            uuid::Uuid::now_v7(),
            "edge-test",
            uuid::Uuid::nil(),
            "pk-at-1",
            Timestamp::parse("2026-11-25T12:00:00Z").unwrap(),
            vec![r#"{"id":"e1"}"#.to_owned()],
        )
        .unwrap();
        assert!(body.contains(r#""events":[{"id":"e1"}]"#), "{body}");
        let parsed: SignedBatch = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.edge_id, "edge-test");
        assert!(
            batch_body(
                uuid::Uuid::nil(),
                "e",
                uuid::Uuid::nil(),
                "pk",
                Timestamp::from_micros(0),
                vec!["{".into()]
            )
            .is_err()
        );
    }
}
