//! What the fuzz targets share: a fixed clock, and the ETL's conversion of a batch, which both
//! the edge's and the ETL's targets run.

use agenttrace_etl::ingest::pipeline::{OpenedBatch, batch_tables, convert};
use agenttrace_schemas::event::TimeWindow;
use agenttrace_schemas::{Event, SignedBatch, Timestamp};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The fuzzers' "now", so a run is repeatable; seeds carry timestamps near it.
pub fn now() -> Timestamp {
    Timestamp::parse("2026-11-25T12:00:00Z").expect("a valid timestamp")
}

/// A signed-batch body holding `events` (raw JSON each), as the edge sends it.
pub fn batch_body(events: Vec<Box<RawValue>>) -> Vec<u8> {
    let batch = SignedBatch {
        batch_id: Uuid::from_u128(1),
        edge_id: "fuzz".into(),
        project_id: Uuid::from_u128(2),
        public_key: "pk-at-fuzz".into(),
        created_at: now(),
        events,
    };
    serde_json::to_vec(&batch).expect("a batch serializes")
}

/// Runs the ETL's conversion of a parsed batch to the end (Arrow batches), checking that every
/// event is either converted or rejected. Returns how many were rejected.
pub fn convert_to_rows(batch: &OpenedBatch) -> usize {
    // What the one-pass read accepts, the field-by-field read (the one that names errors)
    // accepts as the same event.
    for raw in batch.raw_events() {
        if let Ok(event) = serde_json::from_str::<Event>(raw) {
            assert_eq!(Event::parse_in_parts(raw).ok(), Some(event), "{raw}");
        }
    }
    let window = TimeWindow::around(now());
    let converted = convert(
        batch_tables(batch, "fuzz"),
        batch,
        &window,
        &Default::default(),
        &Default::default(),
        |_| None,
    )
    .expect("valid events convert");
    let rejected = converted.rejected.len();
    assert!(rejected <= batch.event_count);
    let tables = converted
        .tables
        .finish("fuzz", now())
        .expect("converted rows finish");
    for (table, rows) in tables {
        let encoded = agenttrace_etl::clickhouse::native::encode(&rows)
            .unwrap_or_else(|e| panic!("{table:?} rows do not encode as Native: {e}"));
        let (decoded, _) = agenttrace_etl::clickhouse::native::decode::block(&encoded)
            .unwrap_or_else(|e| panic!("{table:?}'s Native encoding does not decode: {e:?}"));
        assert_eq!(decoded.num_rows(), rows.num_rows(), "{table:?}");
    }
    rejected
}
