//! The ETL's signed-batch path: the signature headers, the envelope, and every event's
//! validation and conversion into Arrow rows (then Native, decoded back).
//!
//! Input: one control byte, then bytes. Control 0–63: the bytes are a whole batch body, signed
//! correctly so the parser behind the signature is reached, and whatever serde_json reads as a
//! batch must open to the same events; 64–127: the bytes are one event,
//! wrapped in a valid envelope; 128–255: the bytes are `signature header \n body`, checked as
//! sent (a forged or malformed signature must be refused, never accepted).
#![no_main]

use agenttrace_etl::ingest::IngestError;
use agenttrace_etl::ingest::pipeline::OpenedBatch;
use agenttrace_etl::ingest::signing::Keyring;
use agenttrace_fuzz::{batch_body, convert_to_rows, now};
use agenttrace_schemas::SignedBatch;
use agenttrace_schemas::batch::MAX_BATCH_EVENTS;
use agenttrace_schemas::signature::sign;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

const SECRET: &str = "fuzzing-secret-fuzzing-secret-0123456789";

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let keyring = Keyring::parse(&format!("k1:{SECRET}")).expect("a valid keyring");
    let now_secs = now().as_micros() / 1_000_000;
    let opened = match control {
        0..=63 => {
            let signature = sign(SECRET.as_bytes(), now_secs, data);
            let opened = OpenedBatch::open(
                &keyring,
                data.to_vec().into(),
                Some("k1"),
                Some(&signature),
                now_secs,
            );
            // Whatever serde_json reads as a batch opens to the same events (the ETL finds them
            // with a scan of its own, `ingest::layout`).
            if let Ok(batch) = serde_json::from_slice::<SignedBatch<&RawValue>>(data)
                && batch.events.len() <= MAX_BATCH_EVENTS
            {
                let opened = opened.as_ref().expect("a batch serde_json reads opens");
                let events: Vec<&str> = batch.events.iter().map(|e| e.get()).collect();
                assert_eq!(opened.raw_events().collect::<Vec<_>>(), events);
                assert_eq!(opened.batch_id, batch.batch_id);
                assert_eq!(opened.public_key, batch.public_key);
            }
            opened
        }
        64..=127 => {
            let Ok(text) = std::str::from_utf8(data) else {
                return;
            };
            let Ok(event) = RawValue::from_string(text.to_owned()) else {
                return;
            };
            let body = batch_body(vec![event]);
            let signature = sign(SECRET.as_bytes(), now_secs, &body);
            let opened = OpenedBatch::open(&keyring, body.into(), Some("k1"), Some(&signature), now_secs);
            Ok(opened.expect("a well-formed envelope around one JSON value opens"))
        }
        _ => {
            let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
            let Ok(header) = std::str::from_utf8(&data[..split]) else {
                return;
            };
            let body = data.get(split + 1..).unwrap_or_default();
            let opened =
                OpenedBatch::open(&keyring, body.to_vec().into(), Some("k1"), Some(header), now_secs);
            if opened.is_ok() {
                // Only a header that really is the MAC of this body, fresh, may pass.
                let expected = sign(SECRET.as_bytes(), now_secs, body);
                let mac = |h: &str| h.rsplit("v1=").next().map(str::to_ascii_lowercase);
                assert_eq!(
                    mac(header),
                    mac(&expected),
                    "a forged signature was accepted: {header}"
                );
            }
            opened
        }
    };
    match opened {
        Ok(batch) => {
            convert_to_rows(&batch);
        }
        Err(IngestError::InvalidBatch(reason) | IngestError::TooLarge(reason)) => assert!(!reason.is_empty()),
        Err(IngestError::Auth(_)) => {}
        Err(other) => panic!("unexpected error opening a batch: {other}"),
    }
});
