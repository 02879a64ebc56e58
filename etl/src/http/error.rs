//! The one error type every handler returns: it becomes `{error, message}` with its status,
//! and `Retry-After` when the caller should come back later.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::analytics::AnalyticsError;
use crate::control::ControlError;
use crate::control::api_keys::KeyRejection;
use crate::ingest::IngestError;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable code (`missing_scope`, `unavailable`, ...).
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A database is down or overloaded: 503 with `Retry-After`.
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<KeyRejection> for ApiError {
    fn from(rejection: KeyRejection) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, rejection.code(), rejection.to_string())
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        let status = match &error {
            IngestError::Auth(_) | IngestError::Key(_) | IngestError::WrongProject { .. } => {
                StatusCode::UNAUTHORIZED
            }
            IngestError::InvalidBatch(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<AnalyticsError> for ApiError {
    fn from(error: AnalyticsError) -> Self {
        let (status, code) = match &error {
            AnalyticsError::UnknownTable { .. } => (StatusCode::NOT_FOUND, "unknown_table"),
            AnalyticsError::InvalidFormat(_) => (StatusCode::BAD_REQUEST, "invalid_format"),
            AnalyticsError::InvalidRange(_) => (StatusCode::BAD_REQUEST, "invalid_range"),
            AnalyticsError::InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            AnalyticsError::UnknownColumn { .. } => (StatusCode::BAD_REQUEST, "unknown_column"),
            AnalyticsError::QueryRejected(_) => (StatusCode::BAD_REQUEST, "query_rejected"),
            AnalyticsError::ClickHouse(e) if e.is_transient() => return ApiError::unavailable(e),
            AnalyticsError::ClickHouse(_) => (StatusCode::BAD_REQUEST, "query_failed"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let (status, code) = match &error {
            ControlError::NoSuchProject(_) | ControlError::NoSuchKey(_) | ControlError::NotFound(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ControlError::ProjectExists { .. } | ControlError::Conflict(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            ControlError::AmbiguousOrganization(_) | ControlError::Invalid { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            ControlError::Postgres(_) => return ApiError::unavailable(error),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl From<crate::control::identity::SignInRefused> for ApiError {
    fn from(refused: crate::control::identity::SignInRefused) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refused.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        ApiError::unavailable(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let response = ApiError::unavailable("PostgreSQL is down").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = ApiError::bad_request("invalid_request", "x").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
