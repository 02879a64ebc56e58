//! OTLP/HTTP intake: decoding (protobuf or JSON, the request's `Content-Type` decides), mapping
//! to AgentTrace events, and OTLP's partial-success answer in the request's encoding.

pub mod chat;
pub mod common;
pub mod logs;
pub mod metrics;
pub mod proto;
pub mod spans;

use agenttrace_schemas::event::TimeWindow;
use prost::Message;

use agenttrace_schemas::intake::IntakeRejection;

use crate::ingest::Intake;
use crate::limits::{Encoding, Limits, RequestError};
use proto::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportPartialSuccess, ExportResponse,
    ExportTraceServiceRequest,
};

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    encoding: Encoding,
    what: &str,
) -> Result<T, RequestError> {
    match encoding {
        Encoding::Protobuf => T::decode(body)
            .map_err(|e| RequestError::Malformed(format!("the body is not a protobuf {what}: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| RequestError::Malformed(format!("the body is not an OTLP JSON {what}: {e}"))),
    }
}

pub fn decode_traces(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, RequestError> {
    decode(body, encoding, "ExportTraceServiceRequest")
}

pub fn decode_logs(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, RequestError> {
    decode(body, encoding, "ExportLogsServiceRequest")
}

pub fn decode_metrics(body: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, RequestError> {
    decode(body, encoding, "ExportMetricsServiceRequest")
}

/// Validates mapped items like native events; an item that could not be mapped is a rejection.
pub fn intake(
    mapped: Vec<common::Mapped>,
    window: &TimeWindow,
    limits: &Limits,
) -> Result<Intake, RequestError> {
    if mapped.len() > limits.max_events {
        return Err(RequestError::TooManyEvents {
            count: mapped.len(),
            limit: limits.max_events,
        });
    }
    let mut intake = Intake::default();
    for (index, item) in mapped.into_iter().enumerate() {
        match item {
            Ok(events) => {
                for event in events {
                    intake.push(index, event.to_string(), window, limits);
                }
            }
            Err(error) => intake.rejected.push(IntakeRejection {
                index,
                id: None,
                error,
            }),
        }
    }
    Ok(intake)
}

/// OTLP's answer: 200 with `partial_success` naming what was rejected (400 if nothing was
/// accepted), in the request's encoding.
/// `rejected_field` is the JSON name of the count: `rejectedSpans`, `rejectedLogRecords` or
/// `rejectedDataPoints`.
pub fn response(intake: &Intake, encoding: Encoding, rejected_field: &str) -> (u16, Vec<u8>) {
    let status = if intake.accepted() == 0 && !intake.rejected.is_empty() {
        400
    } else {
        200
    };
    let partial_success = (!intake.rejected.is_empty()).then(|| {
        let mut errors: Vec<String> = intake
            .rejected
            .iter()
            .take(5)
            .map(|r| format!("item {}: {}", r.index, r.error))
            .collect();
        if intake.rejected.len() > 5 {
            errors.push(format!("and {} more", intake.rejected.len() - 5));
        }
        ExportPartialSuccess {
            rejected: intake.rejected.len() as i64,
            error_message: errors.join("; "),
        }
    });
    let body = match encoding {
        Encoding::Protobuf => ExportResponse { partial_success }.encode_to_vec(),
        Encoding::Json => match partial_success {
            Some(p) => serde_json::json!({
                "partialSuccess": { rejected_field: p.rejected.to_string(), "errorMessage": p.error_message }
            }),
            None => serde_json::json!({}),
        }
        .to_string()
        .into_bytes(),
    };
    (status, body)
}

#[cfg(test)]
mod tests;
