//! The edge's routes: one table that the Worker's router matches on (and names in its 404), and
//! the Langfuse routes it forwards to the ETL (`agenttrace_schemas::routes`, the ETL's list too).

use agenttrace_schemas::routes::{MCP_PATH, langfuse_forwarded};

use crate::request::Route;

/// What serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /healthz`, answered without configuration.
    Health,
    /// The caller's batches the ETL refused for good.
    RejectedBatches,
    /// Events, for the buffer.
    Ingest(Route),
    /// Langfuse's control plane: passed to the ETL as it came (any method; the ETL answers 405).
    Forward,
    /// The ETL's MCP server (`/mcp`): passed to it as it came once its `Origin` (if any) names
    /// this edge, with the transport's headers (any method; the ETL answers 405 but to POST).
    Mcp,
}

/// Every route the edge answers itself: path, method, endpoint.
pub const ROUTES: &[(&str, &str, Endpoint)] = &[
    ("/healthz", "GET", Endpoint::Health),
    ("/v1/buffer/rejected", "GET", Endpoint::RejectedBatches),
    ("/v1/ingest", "POST", Endpoint::Ingest(Route::Native)),
    ("/v1/traces", "POST", Endpoint::Ingest(Route::Traces)),
    ("/v1/logs", "POST", Endpoint::Ingest(Route::Logs)),
    ("/v1/metrics", "POST", Endpoint::Ingest(Route::Metrics)),
    (
        "/api/public/otel/v1/traces",
        "POST",
        Endpoint::Ingest(Route::Traces),
    ),
    ("/api/public/otel/v1/logs", "POST", Endpoint::Ingest(Route::Logs)),
    (
        "/api/public/otel/v1/metrics",
        "POST",
        Endpoint::Ingest(Route::Metrics),
    ),
    (
        "/api/public/ingestion",
        "POST",
        Endpoint::Ingest(Route::LangfuseIngestion),
    ),
    (
        "/api/public/scores",
        "POST",
        Endpoint::Ingest(Route::LangfuseScores),
    ),
];

/// Why a request has no endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    NotFound,
    /// The path takes this method only.
    MethodNotAllowed(&'static str),
}

/// The endpoint for a request's path and method.
pub fn resolve(path: &str, method: &str) -> Result<Endpoint, Unrouted> {
    match ROUTES.iter().find(|(route, ..)| *route == path) {
        Some((_, allowed, endpoint)) if *allowed == method => Ok(*endpoint),
        Some((_, allowed, _)) => Err(Unrouted::MethodNotAllowed(allowed)),
        None if langfuse_forwarded(path) => Ok(Endpoint::Forward),
        None if path == MCP_PATH => Ok(Endpoint::Mcp),
        None => Err(Unrouted::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ingest_route_has_a_path_and_no_path_is_listed_twice() {
        for route in Route::ALL {
            assert!(
                ROUTES
                    .iter()
                    .any(|(.., endpoint)| *endpoint == Endpoint::Ingest(route)),
                "{route:?} has no path"
            );
        }
        for (i, (path, ..)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..].iter().any(|(other, ..)| other == path),
                "{path} twice"
            );
            assert!(!langfuse_forwarded(path), "{path} is also forwarded");
            assert_ne!(*path, MCP_PATH, "{path} is also forwarded");
        }
    }

    #[test]
    fn requests_resolve_by_path_then_method() {
        assert_eq!(resolve("/healthz", "GET"), Ok(Endpoint::Health));
        assert_eq!(
            resolve("/api/public/otel/v1/logs", "POST"),
            Ok(Endpoint::Ingest(Route::Logs))
        );
        assert_eq!(
            resolve("/v1/ingest", "GET"),
            Err(Unrouted::MethodNotAllowed("POST"))
        );
        assert_eq!(
            resolve("/api/public/v2/prompts/p1", "DELETE"),
            Ok(Endpoint::Forward)
        );
        assert_eq!(resolve("/api/public/health", "GET"), Ok(Endpoint::Forward));
        assert_eq!(resolve("/mcp", "POST"), Ok(Endpoint::Mcp));
        assert_eq!(resolve("/mcp", "GET"), Ok(Endpoint::Mcp));
        assert_eq!(resolve("/mcp/x", "POST"), Err(Unrouted::NotFound));
        assert_eq!(resolve("/api/public/v2/promptsx", "GET"), Err(Unrouted::NotFound));
        assert_eq!(resolve("/v1/nothing", "GET"), Err(Unrouted::NotFound));
    }
}
