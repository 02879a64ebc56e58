//! One ingest request, from its body and headers to validated events and the answer to send
//! once they are buffered. Pure: the Worker calls it, and so do the fuzz targets and tests.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::event::TimeWindow;

use crate::ingest::Intake;
use crate::langfuse;
use crate::limits::{Encoding, Limits, RequestError, decode_body};
use crate::otlp;
use crate::score_configs::ConfigCheck;

/// The kind of ingest request, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Native,
    Traces,
    Logs,
    Metrics,
    LangfuseIngestion,
    LangfuseScores,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::Native,
        Route::Traces,
        Route::Logs,
        Route::Metrics,
        Route::LangfuseIngestion,
        Route::LangfuseScores,
    ];

    /// Whether the route takes JSON only (the OTLP routes take protobuf too).
    pub fn json_only(self) -> bool {
        matches!(
            self,
            Route::Native | Route::LangfuseIngestion | Route::LangfuseScores
        )
    }
}

/// What the intake of a request answers, once its events are buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Json(u16, String),
    /// OTLP's partial-success answer in the request's encoding, counting this field.
    Otlp(Encoding, &'static str),
}

/// Decodes (gzip), parses and validates one request's body for `route`; Langfuse scores that
/// name a config are checked by `configs`.
pub fn intake(
    route: Route,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    encoded: &[u8],
    now: Timestamp,
    limits: &Limits,
    configs: &mut ConfigCheck,
) -> Result<(Intake, Answer), RequestError> {
    let encoding = Encoding::from_content_type(content_type, route.json_only())?;
    let body = decode_body(encoded, content_encoding, limits)?;
    let window = TimeWindow::around(now);
    let otlp = |field| move |intake| (intake, Answer::Otlp(encoding, field));
    match route {
        Route::Native => crate::ingest::native(&body, &window, limits).map(|intake| {
            let answer = Answer::Json(intake.status(), intake.response_json());
            (intake, answer)
        }),
        Route::Traces => otlp::decode_traces(&body, encoding)
            .and_then(|request| {
                otlp::intake(
                    otlp::spans::map(&request, limits.max_attribute_bytes),
                    &window,
                    limits,
                )
            })
            .map(otlp("rejectedSpans")),
        Route::Logs => otlp::decode_logs(&body, encoding)
            .and_then(|request| {
                otlp::intake(
                    otlp::logs::map(&request, limits.max_attribute_bytes),
                    &window,
                    limits,
                )
            })
            .map(otlp("rejectedLogRecords")),
        Route::Metrics => otlp::decode_metrics(&body, encoding)
            .and_then(|request| otlp::intake(otlp::metrics::map(&request), &window, limits))
            .map(otlp("rejectedDataPoints")),
        Route::LangfuseIngestion => {
            langfuse::ingestion(&body, now, &window, limits, configs).map(|ingestion| {
                let answer = Answer::Json(207, ingestion.response_json());
                (ingestion.intake, answer)
            })
        }
        Route::LangfuseScores => langfuse::scores(&body, now, &window, limits, configs)
            .map(|(intake, status, answer)| (intake, Answer::Json(status, answer))),
    }
}

/// The answer's status and body bytes (an OTLP answer in the request's encoding).
pub fn answer_bytes(intake: &Intake, answer: Answer) -> (u16, Vec<u8>, &'static str) {
    match answer {
        Answer::Json(status, body) => (status, body.into_bytes(), "application/json"),
        Answer::Otlp(encoding, field) => {
            let (status, body) = otlp::response(intake, encoding, field);
            (status, body, encoding.content_type())
        }
    }
}
