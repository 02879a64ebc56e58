//! Routes the edge and the ETL agree on: the Langfuse routes and the MCP endpoint the edge
//! forwards, and the `Origin` check both make on the MCP endpoint.

/// Langfuse's control-plane routes and v2 reads, which the ETL serves and the edge passes to it
/// as they came (so an agent configures one base URL, the edge's): each path, and every path
/// below it (`/api/public/v2/prompts/{name}`, ...). Plain data: the edge compiles to wasm32.
pub const LANGFUSE_FORWARDED: &[&str] = &[
    "/api/public/health",
    "/api/public/projects",
    "/api/public/v2/prompts",
    "/api/public/v2/datasets",
    "/api/public/dataset-items",
    "/api/public/dataset-run-items",
    "/api/public/v2/observations",
    "/api/public/v2/metrics",
    "/api/public/llm-connections",
    "/api/public/v2/evaluators",
    "/api/public/v2/evaluation-rules",
    "/api/public/score-configs",
    "/api/public/v3/scores",
    "/api/public/models",
    "/api/public/comments",
    "/api/public/annotation-queues",
    "/api/public/traces",
];

/// Langfuse paths whose own route the edge answers (`POST /api/public/scores`: events for the
/// buffer) and whose paths below it the ETL serves (`/api/public/scores/{scoreId}`).
pub const LANGFUSE_FORWARDED_BELOW: &[&str] = &["/api/public/scores"];

/// Whether `path` is one of [`LANGFUSE_FORWARDED`] or below one, or below one of
/// [`LANGFUSE_FORWARDED_BELOW`]; a path or route template (`/api/public/v2/prompts/{name}`) alike.
pub fn langfuse_forwarded(path: &str) -> bool {
    LANGFUSE_FORWARDED.iter().any(|root| at_or_below(root, path))
        || LANGFUSE_FORWARDED_BELOW
            .iter()
            .any(|root| path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/')))
}

/// The MCP server's endpoint (streamable HTTP): served by the ETL, forwarded by the edge with
/// the caller's credentials, any method (the ETL answers `POST` and refuses the rest with 405).
pub const MCP_PATH: &str = "/mcp";

/// Whether a browser's `Origin` header names the host the request was sent to (`Host`), as the
/// MCP transport asks of servers against DNS rebinding: `http://127.0.0.1:3000` matches
/// `127.0.0.1:3000`, `https://example.com` matches `example.com` and `example.com:443`. An
/// opaque origin (`null`) or one that is not `scheme://authority` matches nothing.
pub fn origin_matches_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return false;
    }
    let normalized = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        // The port, unless the host is a bare IPv6 literal (`[::1]`).
        match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') && port == default_port => host.to_owned(),
            _ => authority,
        }
    };
    normalized(authority) == normalized(host.trim())
}

fn at_or_below(root: &str, path: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_routes_are_langfuse_roots_listed_once() {
        for (i, root) in LANGFUSE_FORWARDED.iter().enumerate() {
            assert!(root.starts_with("/api/public/") && !root.ends_with('/'), "{root}");
            // A root below another would be listed for nothing.
            for (j, other) in LANGFUSE_FORWARDED.iter().enumerate() {
                assert!(i == j || !at_or_below(other, root), "{root} is below {other}");
            }
        }
    }

    #[test]
    fn a_root_covers_itself_and_the_paths_below_it_only() {
        assert!(langfuse_forwarded("/api/public/v2/prompts"));
        assert!(langfuse_forwarded(
            "/api/public/v2/prompts/{name}/versions/{version}"
        ));
        assert!(langfuse_forwarded("/api/public/dataset-items/item-1"));
        assert!(!langfuse_forwarded("/api/public/v2/promptsx"));
        assert!(!langfuse_forwarded("/api/public/dataset-items-x"));
        assert!(!langfuse_forwarded("/api/public/ingestion"));
        assert!(!langfuse_forwarded("/api/public/otel/v1/traces"));
        assert!(!langfuse_forwarded("/v1/traces"));
        assert!(!langfuse_forwarded("/api/public/scores"));
        assert!(langfuse_forwarded("/api/public/scores/{scoreId}"));
        assert!(!langfuse_forwarded(MCP_PATH));
    }

    #[test]
    fn an_origin_matches_only_the_host_it_was_sent_to() {
        assert!(origin_matches_host("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(origin_matches_host(
            "https://Edge.example.com",
            "edge.example.com"
        ));
        assert!(origin_matches_host(
            "https://edge.example.com",
            "edge.example.com:443"
        ));
        assert!(origin_matches_host(
            "http://edge.example.com:80/",
            "edge.example.com"
        ));
        assert!(origin_matches_host("http://[::1]:8080", "[::1]:8080"));
        assert!(!origin_matches_host("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!origin_matches_host(
            "https://edge.example.com:80",
            "edge.example.com"
        ));
        assert!(!origin_matches_host("http://evil.example", "edge.example.com"));
        assert!(!origin_matches_host("null", "edge.example.com"));
        assert!(!origin_matches_host("file://", "edge.example.com"));
        assert!(!origin_matches_host(
            "http://user@edge.example.com",
            "edge.example.com"
        ));
    }
}
