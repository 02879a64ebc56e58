//! The one error type every handler returns: it becomes `{error, message}` with its status,
//! and `Retry-After` when the caller should come back later (every 503, and a 429).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::analytics::AnalyticsError;
use crate::clickhouse::ExceededLimit;
use crate::control::ControlError;
use crate::control::api_keys::KeyRejection;
use crate::ingest::IngestError;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 2;

/// What every error answers: a stable code and a message for a person.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// [`ApiError::code`].
    pub error: &'static str,
    /// [`ApiError::message`].
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable code (`missing_scope`, `unavailable`, ...).
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// Seconds the caller should wait before trying again (`Retry-After`); a 503 or a 429
    /// without one gets [`RETRY_AFTER_SECS`].
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, asking the caller to wait `seconds` before trying again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials, or credentials that prove nothing.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the caller is known but may not do this; the message says what it would take.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such thing, or none the caller may see (the two look the same).
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A database is down or overloaded: 503 with `Retry-After`, naming which one (`PostgreSQL`,
    /// `ClickHouse`) and nothing of its error (addresses, statements, the server's words), which
    /// goes to the log.
    pub fn unavailable(database: &str, detail: impl std::fmt::Display) -> Self {
        tracing::warn!(database, %detail, "a database is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{database} is unavailable; retry later"),
        )
    }

    /// A read ran into a limit of the read profile: 422 naming it, or 429 with `Retry-After`
    /// when too many of the caller's queries run at once.
    pub fn limit_exceeded(limit: ExceededLimit) -> Self {
        let status = if limit.busy {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        ApiError::new(
            status,
            "limit_exceeded",
            format!("the query exceeded the limit {}: {}", limit.setting, limit.advice),
        )
    }

    /// The server's own fault: logged in full, answered as a 500 that tells the caller nothing
    /// it could misuse and no reason to retry.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer this request; the failure is in its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        // Every 503 and 429 says when to come back: its own time, else RETRY_AFTER_SECS.
        let retry_after = match self.retry_after {
            Some(seconds) => Some(seconds),
            None if matches!(
                self.status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ) =>
            {
                Some(u64::from(RETRY_AFTER_SECS))
            }
            None => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
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
            IngestError::Unavailable { database, detail } => return ApiError::unavailable(database, detail),
            IngestError::Internal(_) => return ApiError::internal(error),
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
            AnalyticsError::QueryFailed(e) | AnalyticsError::ClickHouse { source: e, .. }
                if e.exceeded_limit().is_some() =>
            {
                return ApiError::limit_exceeded(e.exceeded_limit().expect("checked"));
            }
            AnalyticsError::QueryFailed(e) | AnalyticsError::ClickHouse { source: e, .. }
                if e.is_transient() =>
            {
                return ApiError::unavailable("ClickHouse", e);
            }
            AnalyticsError::QueryFailed(_) => (StatusCode::BAD_REQUEST, "query_failed"),
            // SQL the server wrote and ClickHouse refused is the server's bug, not the caller's:
            // logged, and answered as a 500 that shows neither the statement nor ClickHouse's words.
            AnalyticsError::ClickHouse { statement, source } => {
                return ApiError::internal(format!(
                    "ClickHouse refused a query the server built: {source}; the query: {statement}"
                ));
            }
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
            ControlError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ControlError::AmbiguousOrganization(_) | ControlError::Invalid { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            ControlError::Unavailable(detail) => return ApiError::unavailable("PostgreSQL", detail),
            ControlError::Internal(_) => return ApiError::internal(error),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl From<crate::control::identity::SignInRefused> for ApiError {
    fn from(refused: crate::control::identity::SignInRefused) -> Self {
        ApiError::unauthorized(refused.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        ApiError::unavailable("PostgreSQL", error)
    }
}

/// The most an error body of those routes is read to add its `code`.
const ERROR_BODY_LIMIT: usize = 1024 * 1024;

/// Langfuse's SDK reads its v2 evaluator and evaluation-rule routes' errors as `{message, code}` with `code` one of its own
/// (`invalid_request`, `resource_not_found`, ...): every error answer of those routes, the
/// extractors' refusals included, gets the `code` for its status beside our `error`.
pub(crate) async fn with_langfuse_error_code(response: axum::response::Response) -> axum::response::Response {
    use axum::http::StatusCode;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let code = match status {
        StatusCode::UNAUTHORIZED => "authentication_failed",
        StatusCode::FORBIDDEN => "access_denied",
        StatusCode::NOT_FOUND => "resource_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        status if status.is_client_error() => "invalid_request",
        _ => "internal_error",
    };
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let mut error: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::json!({"message": String::from_utf8_lossy(&bytes)}));
    if let Some(object) = error.as_object_mut() {
        // An extractor's plain-text refusal has neither: it gets both, like every other error.
        object.entry("error").or_insert_with(|| code.into());
        object.entry("code").or_insert_with(|| code.into());
    }
    let body = serde_json::to_vec(&error).unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let response = ApiError::unavailable("PostgreSQL", "connection refused").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = ApiError::bad_request("invalid_request", "x").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn only_a_transient_postgres_failure_asks_for_a_retry() {
        let down = ApiError::from(ControlError::Unavailable(
            "error connecting to server: Connection refused (os error 111)".into(),
        ));
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            down.message, "PostgreSQL is unavailable; retry later",
            "a 503 names the database, not its error"
        );
        let ours = ApiError::from(ControlError::Internal(
            "PostgreSQL: column \"x\" does not exist".into(),
        ));
        assert_eq!(ours.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !ours.message.contains("column"),
            "a 500 names no database internals"
        );
        assert!(ours.into_response().headers().get(header::RETRY_AFTER).is_none());
    }
}
