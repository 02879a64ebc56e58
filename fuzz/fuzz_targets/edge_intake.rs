//! The edge's intake of every ingest route: gzip, JSON and protobuf bodies, the native batch,
//! OTLP traces/logs/metrics and Langfuse's ingestion and scores.
//!
//! Input: one control byte, then the body. Control bits: 0–2 the route, 3 gzip the body before
//! sending it (a valid gzip stream), 4 declare `gzip` without compressing (arbitrary bytes to
//! the decompressor), 5 protobuf instead of JSON (OTLP routes).
//! Checked: no panic; a refusal is a 4xx; an answer's status agrees with what was accepted; and
//! every event the edge accepts as valid is accepted and converted by the ETL.
#![no_main]

use std::io::Write;

use agenttrace_edge::limits::Limits;
use agenttrace_edge::request::{Route, answer_bytes, intake};
use agenttrace_edge::score_configs::ConfigCheck;
use agenttrace_etl::ingest::pipeline::OpenedBatch;
use agenttrace_fuzz::{batch_body, convert_to_rows, now};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fuzz_target!(|input: &[u8]| {
    let Some((&control, body)) = input.split_first() else {
        return;
    };
    let route = Route::ALL[usize::from(control & 7) % Route::ALL.len()];
    let content_type = if control & 32 != 0 {
        "application/x-protobuf"
    } else {
        "application/json"
    };
    let gzipped;
    let (body, encoding) = if control & 8 != 0 {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(body).expect("writing to memory");
        gzipped = gzip.finish().expect("writing to memory");
        (&gzipped[..], Some("gzip"))
    } else if control & 16 != 0 {
        (body, Some("gzip"))
    } else {
        (body, None)
    };
    let limits = Limits::default();
    match intake(
        route,
        Some(content_type),
        encoding,
        body,
        now(),
        &limits,
        &mut ConfigCheck::unknown(),
    ) {
        Err(refusal) => assert!((400..500).contains(&refusal.status()), "{refusal:?}"),
        Ok((intake, answer)) => {
            let (status, _, _) = answer_bytes(&intake, answer);
            assert!(matches!(status, 200 | 202 | 207 | 400), "status {status}");
            let valid: Vec<Box<RawValue>> = intake
                .events
                .iter()
                .filter(|event| event.valid)
                .map(|event| RawValue::from_string(event.json.clone()).expect("buffered events are JSON"))
                .collect();
            if valid.is_empty() {
                return;
            }
            let count = valid.len();
            let batch = OpenedBatch::parse(batch_body(valid).into()).expect("the edge's batch opens");
            assert_eq!(batch.event_count, count);
            assert_eq!(
                convert_to_rows(&batch),
                0,
                "the ETL rejected an event the edge accepted"
            );
        }
    }
});
